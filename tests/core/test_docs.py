from __future__ import annotations

from pathlib import Path

from mlx_core import docs, hookspecs

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def test_hook_reference_is_fresh():
    assert docs.render(DOC.read_text()) == DOC.read_text(), "run: python -m mlx_core.docs docs/plugins.md"


def test_every_hookspec_is_documented_in_the_reference():
    text = DOC.read_text()
    names = [n for n in dir(hookspecs) if n.startswith("mlx_") and hasattr(getattr(hookspecs, n), "mlx_spec")]
    assert len(names) >= 7
    for name in names:
        assert f"### `{name}(" in text
        assert getattr(hookspecs, name).__doc__.strip(), f"{name} has no docstring"


def test_check_mode_detects_staleness(tmp_path):
    stale = tmp_path / "plugins.md"
    stale.write_text(DOC.read_text().replace("first result wins", "whatever", 1))
    assert docs.main(["--check", str(stale)]) == 1
    assert docs.main([str(stale)]) == 0
    assert docs.main(["--check", str(stale)]) == 0
