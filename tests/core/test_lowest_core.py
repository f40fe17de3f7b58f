"""noxfile's lowest-core lookup: which commit's core a ``<plugin>-lowest-core`` session builds for
a plugin's ``mlx-core>=X`` requirement (git history of core/pyproject.toml)."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

pytest.importorskip("nox")
ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("mlx_noxfile", ROOT / "noxfile.py")
noxfile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(noxfile)


def git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false", *args]
    return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def set_core_version(repo: Path, version: str, commit: bool = True) -> str | None:
    (repo / "core").mkdir(exist_ok=True)
    (repo / "core" / "pyproject.toml").write_text(f'[project]\nname = "mlx-core"\nversion = "{version}"\n')
    if not commit:
        return None
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"core {version}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def history(tmp_path):
    """A repository whose core went 0.1.0 -> 0.1.1 -> 0.1.2 (twice committed) -> 0.1.3 (not committed)."""
    git(tmp_path, "init", "-q")
    commits = {v: set_core_version(tmp_path, v) for v in ("0.1.0", "0.1.1", "0.1.2")}
    (tmp_path / "README").write_text("unrelated change\n")
    (tmp_path / "core" / "pyproject.toml").write_text(
        '[project]\nname = "mlx-core"\nversion = "0.1.2"\ndescription = "still 0.1.2"\n'
    )
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "core: a change at 0.1.2")
    set_core_version(tmp_path, "0.1.3", commit=False)
    return tmp_path, commits


@pytest.mark.parametrize(
    "requirement, version",
    [
        ("mlx-core>=0.1.1,<0.2", "0.1.1"),
        ("mlx-core>=0.1.2", "0.1.2"),
        ("mlx-core>=0.1", "0.1.0"),
        ("mlx-core", "0.1.0"),
    ],
)
def test_the_oldest_commit_that_set_the_lowest_admitted_version(history, requirement, version):
    repo, commits = history
    assert noxfile.lowest_core(Requirement(requirement), root=repo) == (commits[version], Version(version))


def test_the_working_tree_core_when_the_lowest_is_the_current_version(history):
    repo, _ = history
    assert noxfile.lowest_core(Requirement("mlx-core>=0.1.3"), root=repo) == (None, Version("0.1.3"))


def test_no_admitted_version_anywhere_is_an_error_naming_the_requirement(history):
    repo, _ = history
    with pytest.raises(LookupError, match=r"mlx-core>=0.2.*full history"):
        noxfile.lowest_core(Requirement("mlx-core>=0.2"), root=repo)


def test_every_plugin_declares_a_core_this_repository_has():
    for name, row in noxfile.PLUGINS.items():
        req = noxfile.core_requirement(row["path"])
        assert req.specifier, f"{name} declares no lower bound for mlx-core"
        noxfile.lowest_core(req)  # raises when no commit (or the working tree) satisfies it
