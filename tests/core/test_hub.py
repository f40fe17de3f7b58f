from __future__ import annotations

import json

from mlx_core import UsageError, hub
from mlx_core.testing import one_line_error


def test_hub_lists_and_loads_published_models():
    assert "linreg_line" in hub.list()
    assert hub.list("linreg") == ["linreg_line"]
    assert hub.load("linreg_line", slope=2, intercept=1) == {"w": 2.0, "b": 1.0}
    text = hub.help("linreg_line")
    assert text.startswith("linreg_line(slope: float = 1.0, intercept: float = 0.0)")
    assert "A fixed line" in text


def test_hub_errors_are_clear():
    import pytest

    with pytest.raises(UsageError, match="unknown model 'linreg_lin'; did you mean 'linreg_line'"):
        hub.load("linreg_lin")
    with pytest.raises(UsageError, match="takes no argument 'slop'"):
        hub.load("linreg_line", slop=2)


def test_models_cli(mlx):
    proc = mlx("models", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["linreg_line"]["plugin"] == "linreg" and rows["linreg_line"]["summary"].startswith("A fixed line")
    helped = mlx("models", "help", "linreg_line")
    assert helped.returncode == 0 and "intercept" in helped.stdout
    one_line_error(mlx("models", "help", "nope"))
    one_line_error(mlx("models", "list", "nope"))
