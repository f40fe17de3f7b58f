"""Bad input: exit code 2 and exactly one ``error:`` line that names the offending value."""

from __future__ import annotations

import json
from pathlib import Path

from mlx_core.testing import one_line_error

from .conftest import run_quant


def test_8bit_and_4bit_both_requested(tmp_path):
    proc = run_quant(tmp_path, "data", "model.load_in_4bit=true")
    err = one_line_error(proc, during_run=True)
    assert "load_in_8bit" in err and "load_in_4bit" in err and "both" in err


def test_removed_step_keys_name_train_epochs(tmp_path):
    # LoRA moved to the shared engine, which counts epochs: the old step keys are one line each
    for key in ("train.steps=6", "train.checkpoint_every=2"):
        err = one_line_error(run_quant(tmp_path, "data", key))
        assert f"{key.split('=')[0]} was removed" in err and "train.epochs" in err


def test_quant_type_other_than_nf4_fp4(tmp_path):
    proc = run_quant(tmp_path, "data", "model.load_in_8bit=false", "model.load_in_4bit=true",
                     "model.bnb_4bit_quant_type=int4")  # fmt: skip
    err = one_line_error(proc)
    assert "bnb_4bit_quant_type" in err and "int4" in err and "nf4" in err


def test_skip_module_absent_lists_close_names(tmp_path):
    proc = run_quant(tmp_path, "model", "model.llm_int8_skip_modules=['fc_2']")
    err = one_line_error(proc, during_run=True)
    assert "'fc_2'" in err and "llm_int8_skip_modules" in err
    assert "fc2" in err.split("close names:")[1]  # the near miss is offered


def test_model_folder_that_is_not_a_transformers_model(tmp_path):
    folder = tmp_path / "notamodel"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"hello": "world"}))
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    proc = run_quant(tmp_path / "runs", "model", f"model.path={folder}")
    err = one_line_error(proc, during_run=True)
    assert str(folder) in err and "not a transformers model" in err

    empty = tmp_path / "empty"
    empty.mkdir()
    err = one_line_error(run_quant(tmp_path / "runs", "data", f"model.path={empty}"), during_run=True)
    assert str(empty) in err and "config.json" in err


def test_remote_code_is_not_run_by_default(tmp_path):
    """trust_remote_code is off: a folder that ships its own model code is refused, the code never runs."""
    folder = tmp_path / "custom"
    folder.mkdir()
    sentinel = tmp_path / "code-ran"
    (folder / "configuration_evil.py").write_text(
        f"open({str(sentinel)!r}, 'w').write('ran')\n"
        "from transformers import PretrainedConfig\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n"
    )
    (folder / "config.json").write_text(json.dumps({
        "model_type": "evil", "auto_map": {"AutoConfig": "configuration_evil.EvilConfig"}}))  # fmt: skip
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    proc = run_quant(tmp_path / "runs", "model", f"model.path={folder}")
    err = one_line_error(proc, during_run=True)
    assert str(folder) in err and "trust_remote_code" in err
    assert not sentinel.exists()


def test_source_run_without_exported_model(tmp_path, run_inproc):
    """A run of another plugin that stopped before export has nothing to quantize."""
    manifest = run_inproc("tinyseg", "model", [])
    proc = run_quant(tmp_path / "runs", "export", f"source.run={manifest.run_dir}")
    err = one_line_error(proc, during_run=True)
    assert str(manifest.run_dir) in err and "no exported model" in err

    not_a_run = tmp_path / "nothing"
    not_a_run.mkdir()
    err = one_line_error(run_quant(tmp_path / "runs", "export", f"source.run={not_a_run}"), during_run=True)
    assert str(not_a_run) in err


def test_bad_text_file(tmp_path):
    bad = tmp_path / "c.csv"
    bad.write_text("a,b\n")
    err = one_line_error(run_quant(tmp_path / "runs", "data", f"data.path={bad}"), during_run=True)
    assert str(bad) in err and ".txt or .jsonl" in err
    short = tmp_path / "short.txt"
    short.write_text("hi\n")
    err = one_line_error(run_quant(tmp_path / "runs", "data", f"data.path={short}"), during_run=True)
    assert str(short) in err and "1 document" in err


def test_unknown_option_of_quant_on_another_plugin(tmp_path):
    """quant's cross-cutting options are validated too (here against tinyseg, installed in-process)."""
    import mlx_quant
    import pytest
    import tinyseg

    from mlx_core import ConfigError
    from mlx_core import config as cfgmod

    with pytest.raises(ConfigError, match="int4_static"):
        cfgmod.resolve(tinyseg.TinyConfig, overrides=["quant.scheme=int4_static"],
                       options={"quant": mlx_quant.mlx_plugin().options})  # fmt: skip
    assert Path(tinyseg.__file__).is_file()
