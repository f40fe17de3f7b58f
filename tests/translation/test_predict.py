"""``mlx predict translation``: sentences from arguments and files, options, errors."""

import json
import shutil

from mlx_core.testing import cli

from .conftest import device, one_error_line


def predict(run_dir, *args):
    return cli("predict", "translation", str(run_dir), *args, "--device", device())


def test_predict_from_args_and_file_with_beams(tiny_run, tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("The red car.\n\nI see two dogs.\n")
    proc = predict(
        tiny_run, "The cat is blue.", str(f), "--json", "--set", "predict.num_beams=2", "--set", "predict.batch_size=2"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout)
    assert [r["source"] for r in rows] == ["The cat is blue.", "The red car.", "I see two dogs."]
    assert all(isinstance(r["translation"], str) for r in rows)
    written = sorted((tiny_run / "predictions").glob("*/translations.jsonl"))[-1]
    assert [json.loads(line)["source"] for line in written.read_text().splitlines()] == [r["source"] for r in rows]


def test_exported_backend_gives_the_eager_greedy_translations(tiny_run):
    from mlx_translation.predict import Translator

    texts = ["The cat.", "A dog is under the seven red tables."]
    proc = predict(
        tiny_run, *texts, "--json", "--set", "predict.backend=exported", "--set", "predict.max_new_tokens=12"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    eager = Translator(tiny_run / "export" / "hf")(texts, max_new_tokens=12, do_sample=False, num_beams=1)
    assert [r["translation"] for r in json.loads(proc.stdout)] == [r["translation_text"] for r in eager]


def test_sampling_options_reach_generate(tiny_run):
    import torch
    from mlx_translation.config import PredictConfig
    from mlx_translation.predict import Translator, generation_kwargs

    gen = generation_kwargs(PredictConfig(do_sample=True, top_k=5, top_p=0.9, num_beams=1, max_new_tokens=7))
    assert gen == {"max_new_tokens": 7, "num_beams": 1, "do_sample": True, "top_k": 5, "top_p": 0.9, "temperature": 1.0}
    assert generation_kwargs(PredictConfig()) == {"max_new_tokens": 40, "num_beams": 1, "do_sample": False}
    translator = Translator(tiny_run / "export" / "hf")
    torch.manual_seed(0)
    out = translator(["The cat.", "The dog."], **gen)
    assert len(out) == 2
    ids = translator.generate(["The cat."], **gen)
    assert ids.shape[1] <= 1 + 7  # start token + max_new_tokens


def test_predict_errors(tiny_run, tmp_path):
    one_error_line(
        predict(tiny_run, "x", "--set", "predict.backend=exported", "--set", "predict.do_sample=true"),
        "predict.do_sample",
    )
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    one_error_line(predict(tiny_run, str(empty)), "empty.txt")
    one_error_line(predict(tiny_run, "x", "--set", "predict.num_beams=0"), "predict.num_beams")
    one_error_line(predict(tiny_run, "   "), "empty")
    not_exported = tmp_path / "data-only-run"
    not_exported.mkdir()
    shutil.copy(tiny_run / "run.json", not_exported / "run.json")
    one_error_line(predict(not_exported, "x"), "no exported model")
