"""Every user error is one line on stderr, exit code 2, no traceback (unless --verbose)."""

from __future__ import annotations

import pytest

from mlx_core.hardware import has_cuda
from mlx_core.testing import one_line_error


def test_unknown_plugin_names_installed_and_closest(mlx):
    line = one_line_error(mlx("run", "linrg", "data"))
    assert "'linrg'" in line and "did you mean 'linreg'" in line and "stamp" in line


def test_unknown_stage(mlx):
    line = one_line_error(mlx("run", "linreg", "deploy"))
    assert "'deploy'" in line and "data, model, train, export" in line


def test_unknown_set_key_suggests(mlx, tmp_path):
    line = one_line_error(mlx("run", "linreg", "data", "--runs-dir", str(tmp_path), "--set", "train.epoch=3"))
    assert "'train.epoch'" in line and "did you mean 'train.epochs'" in line
    assert not (tmp_path / "linreg").exists(), "nothing may be written for a config error"


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.epochs=many", "'many'"),
        ("train.epochs=0", "greater than or equal to 1"),
        ("train.lr=-1", "greater than 0"),
        ("export.format=xml", "'xml'"),
        ("train.epochs", "expected KEY=VALUE"),
        ("seed=true", "expected a number (int), not a boolean"),
        ("train.lr=true", "expected a number (float), not a boolean"),
    ],
)
def test_wrong_type_or_range(mlx, tmp_path, override, fragment):
    line = one_line_error(mlx("run", "linreg", "data", "--runs-dir", str(tmp_path), "--set", override))
    assert fragment in line


def test_missing_config_file(mlx, tmp_path):
    line = one_line_error(mlx("run", "linreg", "data", "--config", str(tmp_path / "nope.toml")))
    assert "nope.toml" in line and "does not exist" in line


def test_malformed_config_file(mlx, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nepochs = 3\n")
    line = one_line_error(mlx("run", "linreg", "data", "--config", str(bad)))
    assert "bad.toml" in line and "not valid TOML" in line


def test_config_file_with_wrong_type(mlx, tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text('[train]\nepochs = "x"\n')
    line = one_line_error(mlx("run", "linreg", "data", "--config", str(bad), "--runs-dir", str(tmp_path)))
    assert "train.epochs" in line and "c.toml" in line


@pytest.mark.skipif(has_cuda(), reason="this machine has a GPU")
def test_cuda_without_gpu(mlx, tmp_path):
    line = one_line_error(mlx("run", "linreg", "data", "--device", "cuda", "--runs-dir", str(tmp_path)))
    assert "--device cuda" in line and "no NVIDIA GPU" in line


def test_unknown_device(mlx):
    line = one_line_error(mlx("run", "linreg", "data", "--device", "tpu"))
    assert "'tpu'" in line


def test_from_run_of_another_plugin(mlx, tmp_path):
    import json

    other = tmp_path / "other"
    other.mkdir()
    (other / "run.json").write_text(json.dumps({"plugin": "segmentation", "stages": {}}))
    line = one_line_error(mlx("run", "linreg", "train", "--from", str(other)))
    assert "'segmentation'" in line and "not 'linreg'" in line


def test_from_missing_dir(mlx, tmp_path):
    line = one_line_error(mlx("run", "linreg", "train", "--from", str(tmp_path / "gone")))
    assert "does not exist" in line


def test_from_dir_without_manifest(mlx, tmp_path):
    line = one_line_error(mlx("run", "linreg", "train", "--from", str(tmp_path)))
    assert "no run.json" in line


def test_data_error_from_plugin(mlx, tmp_path):
    bad = tmp_path / "points.csv"
    bad.write_text("x,y\n1,2\n3,oops\n")
    line = one_line_error(
        mlx("run", "linreg", "data", "--runs-dir", str(tmp_path / "r"), "--set", f"data.path={bad}"), during_run=True
    )
    assert "points.csv:3" in line


def test_verbose_shows_traceback(mlx):
    proc = mlx("--verbose", "run", "linrg", "data")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr


def test_unknown_plugin_for_info(mlx):
    line = one_line_error(mlx("plugins", "info", "nope"))
    assert "'nope'" in line


def test_predict_bad_input(mlx, linreg_run):
    line = one_line_error(mlx("predict", "linreg", str(linreg_run), "abc"))
    assert "'abc'" in line


def test_stage_check_failure_is_exit_1_and_recorded(mlx, tmp_path):
    proc = mlx(
        "run",
        "linreg",
        "export",
        "--runs-dir",
        str(tmp_path),
        "--set",
        "export.fail_parity=true",
        "--set",
        "train.epochs=3",
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: exported model differs")
    from .conftest import manifest

    run_dir = next((tmp_path / "linreg").iterdir())
    m = manifest(run_dir)
    assert m["stages"]["export"]["status"] == "failed"
    assert "differs" in m["stages"]["export"]["error"]
    assert m["stages"]["train"]["status"] == "completed"


@pytest.mark.parametrize(
    "args, fragment, usage",
    [
        (("run", "linreg"), "Missing argument 'stage'", "usage: mlx run"),
        (("run", "linreg", "data", "--bogus"), "No such option: --bogus", "usage: mlx run"),
        (("plugins", "info"), "Missing argument 'name'", "usage: mlx plugins info"),
        (("nosuchcommand",), "No such command 'nosuchcommand'", "usage: mlx"),
        (("run", "linreg", "data", "--runs-dir"), "Option '--runs-dir' requires an argument", ""),
    ],
)
def test_usage_errors_are_one_line(mlx, args, fragment, usage):
    line = one_line_error(mlx(*args))
    assert fragment in line
    assert usage in line  # the usage click prints on lines of its own, where click knows it


def test_no_arguments_still_prints_the_help(mlx):
    proc = mlx()
    assert proc.returncode == 2
    assert "Usage: mlx" in proc.stdout + proc.stderr and "error:" not in proc.stderr


@pytest.mark.parametrize("flag", ["--verbose", "-v"])
def test_verbose_after_the_subcommand(mlx, flag):
    proc = mlx("run", "linrg", "data", flag)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" in proc.stderr and "No such option" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown plugin 'linrg'")


def test_verbose_after_a_double_dash_is_an_argument_not_the_flag():
    from mlx_core.cli import hoist_verbose

    assert hoist_verbose(["run", "p", "data", "-v"]) == ["-v", "run", "p", "data"]
    assert hoist_verbose(["predict", "p", "r", "--", "-v"]) == ["predict", "p", "r", "--", "-v"]
