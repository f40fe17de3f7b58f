"""``mlx predict translation``: sentences from arguments and files, options, errors."""

import json

from mlx_core.testing import cli

from conftest import device, one_error_line, run_cli


def predict(run_dir, *args):
    return cli("predict", "translation", str(run_dir), *args, "--device", device())


def test_predict_from_args_and_file(tiny_run, tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("The red car.\n\nI see two dogs.\n")
    proc = predict(tiny_run, "The cat is blue.", str(f), "--json", "--set", "predict.num_beams=2", "--set", "predict.batch_size=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout)
    assert [r["source"] for r in rows] == ["The cat is blue.", "The red car.", "I see two dogs."]
    assert all(isinstance(r["translation"], str) for r in rows)
    written = sorted((tiny_run / "predictions").glob("*/translations.jsonl"))[-1]
    assert len(written.read_text().splitlines()) == 3


def test_predict_sampling_and_exported_backend_agree_with_options(tiny_run):
    proc = predict(tiny_run, "The cat.", "--json", "--set", "predict.do_sample=true", "--set", "predict.top_k=5", "--set", "predict.max_new_tokens=5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    greedy_eager = json.loads(predict(tiny_run, "The cat.", "A dog.", "--json").stdout)
    greedy_exported = json.loads(predict(tiny_run, "The cat.", "A dog.", "--json", "--set", "predict.backend=exported").stdout)
    assert [r["translation"] for r in greedy_eager] == [r["translation"] for r in greedy_exported]


def test_predict_errors(tiny_run, tmp_path):
    one_error_line(predict(tiny_run, "x", "--set", "predict.backend=exported", "--set", "predict.do_sample=true"), "predict.do_sample")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    one_error_line(predict(tiny_run, str(empty)), "empty.txt")
    one_error_line(predict(tiny_run, "x", "--set", "predict.num_beams=0"), "predict.num_beams")
    data_only = run_cli("data", tmp_path / "runs")
    run_dir = data_only.stdout.strip().splitlines()[-1]
    one_error_line(predict(run_dir, "x"), "no exported model")
