"""Test sessions, generated from the plugins' own declarations.

Each plugin declares its hardware matrix and install steps in ``plugins/<name>/pyproject.toml``::

    [tool.mlx.nox]
    hardware = ["cpu", "cuda"]          # sessions <name>-cpu and <name>-cuda
    extras = { cpu = "cpu", cuda = "cuda" }            # optional: extra of the plugin per kind
    after = { cpu = [["uninstall", "fbgemm-gpu"], ["install", "fbgemm-gpu-cpu==1.9.0"]] }
                                        # optional: `uv pip` / `pip` steps after the install
    core_extras = ["sweep"]             # optional: mlx-core extras its tests need (mlx sweep)

so a new plugin adds no session code here. Sessions: lint, core, <plugin>-<hardware>,
integration (everything together), bench (not run by default).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nox
import tomllib

ROOT = Path(__file__).parent
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

TEST_TOOLS = ["pytest>=8", "hypothesis>=6.100"]
# pytest exits 5 when it collected no tests; a plugin folder without tests yet is not a failure
# of the toolkit, but it is reported.
PYTEST_OK = [0, 5]
# mlx-core's opt-in tracker libraries (`mlx run --track ...`), for the core and integration tests
#: extras of mlx-core the core and integration tests need: trackers and sweeps
CORE_TEST_EXTRAS = ("mlflow", "tensorboard", "sweep")


def plugin_table() -> dict[str, dict]:
    table = {}
    for pyproject in sorted(ROOT.glob("plugins/*/pyproject.toml")):
        meta = tomllib.loads(pyproject.read_text())
        decl = meta.get("tool", {}).get("mlx", {}).get("nox", {})
        table[pyproject.parent.name] = {
            "path": pyproject.parent,
            "hardware": decl.get("hardware", ["cpu"]),
            "extras": decl.get("extras", {}),
            "after": decl.get("after", {}),
            "core_extras": decl.get("core_extras", []),
        }
    return table


PLUGINS = plugin_table()


def has_gpu() -> bool:
    if not shutil.which("nvidia-smi"):
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


def pip(session: nox.Session, *args: str) -> None:
    """``uv pip`` in uv venvs, plain pip otherwise."""
    if session.venv_backend == "uv":
        session.run("uv", "pip", *args, external=True)
    else:
        session.run("python", "-m", "pip", *args)


def install_plugins(
    session: nox.Session, names: list[str], hardware: str, *extra: str, core_extras: tuple[str, ...] = ()
) -> None:
    """Install the core and the named plugins (with their extras for ``hardware``) in one resolve,
    then run each plugin's ``after`` steps."""
    targets = []
    for name in names:
        extra_name = PLUGINS[name]["extras"].get(hardware)
        targets.append(str(PLUGINS[name]["path"]) + (f"[{extra_name}]" if extra_name else ""))
    session.install(core_target(*core_extras), *targets, *extra)
    for name in names:
        for step in PLUGINS[name]["after"].get(hardware, []):
            if step[0] == "uninstall" and session.venv_backend != "uv":
                step = [step[0], "-y", *step[1:]]
            pip(session, *step)


def core_target(*extras: str) -> str:
    """The core as an install target, with extras (``core[sweep]``)."""
    return str(ROOT / "core") + (f"[{','.join(extras)}]" if extras else "")


def pytest(session: nox.Session, *paths: str) -> None:
    code = session.run("pytest", *paths, *session.posargs, success_codes=PYTEST_OK)
    if code == 5:
        session.warn(f"no tests collected in {paths}")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def core(session: nox.Session) -> None:
    """The core alone, with the test plugins installed through real entry points (numpy and
    Pillow only for the tests of mlx_core.hostile's image helpers; the core never imports them),
    and the sweep extra (Optuna, matplotlib) for tests/core/test_sweep.py."""
    session.install(core_target("sweep"), str(ROOT / "tests/core/testplugins"), *TEST_TOOLS, "numpy", "pillow")
    pytest(session, "tests/core")


def _make_plugin_session(name: str, hardware: str) -> None:
    def session_fn(session: nox.Session) -> None:
        if hardware == "cuda" and not has_gpu():
            session.skip(f"{name}-cuda needs an NVIDIA GPU; nvidia-smi found none on this machine")
        install_plugins(session, [name], hardware, *TEST_TOOLS, core_extras=tuple(PLUGINS[name]["core_extras"]))
        session.env["MLX_TEST_DEVICE"] = hardware
        pytest(session, f"tests/{name}")

    session_fn.__doc__ = f"tests/{name} with only mlx-core and mlx-{name} installed ({hardware})."
    nox.session(name=f"{name}-{hardware}")(session_fn)


for _name, _row in PLUGINS.items():
    for _hw in _row["hardware"]:
        _make_plugin_session(_name, _hw)


@nox.session
def integration(session: nox.Session) -> None:
    """Every plugin installed together; cross-plugin tests in tests/integration."""
    hardware = "cuda" if has_gpu() else "cpu"
    names = [name for name, row in PLUGINS.items() if hardware in row["hardware"]]
    install_plugins(session, names, hardware, *TEST_TOOLS, core_extras=CORE_TEST_EXTRAS)
    pytest(session, "tests/integration")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (all, or those named: `nox -s bench -- core segmentation`), with every plugin
    installed as users would have them; tables, JSON and PNG charts go to benchmarks/results."""
    hardware = "cuda" if has_gpu() else "cpu"
    names = [name for name, row in PLUGINS.items() if hardware in row["hardware"]]
    install_plugins(session, names, hardware, "matplotlib", "rich")
    names = session.posargs or [p.stem for p in sorted((ROOT / "benchmarks").glob("*.py"))]
    for bench_name in names:
        session.run("python", f"benchmarks/{bench_name}.py")
