"""Test sessions, generated from the plugins' own declarations.

Each plugin declares its hardware matrix and install steps in ``plugins/<name>/pyproject.toml``::

    [tool.mlx.nox]
    hardware = ["cpu", "cuda"]          # sessions <name>-cpu and <name>-cuda
    extras = { cpu = "cpu", cuda = "cuda" }            # optional: extra of the plugin per kind
    after = { cpu = [["uninstall", "fbgemm-gpu"], ["install", "fbgemm-gpu-cpu==1.9.0"]] }
                                        # optional: `uv pip` / `pip` steps after the install
    core_extras = ["sweep", "serve"]    # optional: mlx-core extras its tests need (mlx sweep, mlx serve)
    tests = ["tests/torch"]             # optional: more test folders its session runs

A plugin that depends on one of the checkout's libraries (``libs/*``, e.g. ``mlx-torch``: not on
PyPI) gets that folder installed in the same resolve, in every session that installs the plugin.

so a new plugin adds no session code here. Sessions: lint, core, <plugin>-<hardware>,
<plugin>-lowest-core, integration (everything together), bench (not run by default).

``MLX_NOX_SHARD=K/N nox`` runs the K-th of N shards of the default sessions, balanced by the
minutes each took in the last full CI run (``SESSION_MINUTES``): ``.ci/run`` starts ``nox`` once
per shard, at the same time, because a test session keeps about one of the machine's two cores
busy (its CPU time about equals its wall time), so two shards finish the same work in about half
the time. Without the variable ``nox`` runs every default session, one after the other.

``<plugin>-lowest-core`` installs the plugin with the lowest mlx-core its ``mlx-core>=X``
dependency admits: the core as it was in the oldest commit whose ``core/pyproject.toml`` sets a
version satisfying that requirement (read from git history, so CI clones need their full
history), and runs only the tests marked ``lowest_core`` (the conformance kit, data stage
included). A plugin that silently needs a newer core fails there instead of on a user's machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import nox
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).parent
# Python writes bytecode caches into the sessions' venvs: on images that set PYTHONDONTWRITEBYTECODE
# (Docker's habit) every one of the hundreds of `mlx run` subprocesses the tests start would
# otherwise compile torch, transformers and friends from source again (about 2.5 s a torch
# import on 2 cores). An empty value is "unset" for Python; sessions inherit this environment.
os.environ["PYTHONDONTWRITEBYTECODE"] = ""
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

TEST_TOOLS = ["pytest>=8", "hypothesis>=6.100"]
# pytest exits 5 when it collected no tests; a plugin folder without tests yet is not a failure
# of the toolkit, but it is reported.
PYTEST_OK = [0, 5]
# mlx-core's opt-in tracker libraries (`mlx run --track ...`), for the core and integration tests
#: extras of mlx-core the core and integration tests need: trackers, sweeps, serving
CORE_TEST_EXTRAS = ("mlflow", "tensorboard", "sweep", "serve")


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
            "tests": decl.get("tests", []),
            "dependencies": [Requirement(d).name for d in meta.get("project", {}).get("dependencies", [])],
        }
    return table


def lib_table() -> dict[str, Path]:
    """The checkout's shared libraries by distribution name: ``{"mlx-torch": ROOT/"libs/torch"}``."""
    return {
        tomllib.loads(p.read_text())["project"]["name"]: p.parent for p in sorted(ROOT.glob("libs/*/pyproject.toml"))
    }


PLUGINS = plugin_table()
LIBS = lib_table()


def local_libs(names: list[str]) -> list[str]:
    """Install targets for the checkout's libraries the named plugins depend on."""
    return sorted({str(LIBS[dep]) for name in names for dep in PLUGINS[name]["dependencies"] if dep in LIBS})


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
    session: nox.Session,
    names: list[str],
    hardware: str,
    *extra: str,
    core_extras: tuple[str, ...] = (),
    core: Path = ROOT / "core",
) -> None:
    """Install the core (from ``core``: the working tree's by default, with ``core_extras``) and
    the named plugins (with their extras for ``hardware``) in one resolve, then run each
    plugin's ``after`` steps."""
    targets = []
    for name in names:
        extra_name = PLUGINS[name]["extras"].get(hardware)
        targets.append(str(PLUGINS[name]["path"]) + (f"[{extra_name}]" if extra_name else ""))
    session.install(core_target(*core_extras, core=core), *local_libs(names), *targets, *extra)
    for name in names:
        for step in PLUGINS[name]["after"].get(hardware, []):
            if step[0] == "uninstall" and session.venv_backend != "uv":
                step = [step[0], "-y", *step[1:]]
            pip(session, *step)


def core_target(*extras: str, core: Path = ROOT / "core") -> str:
    """The core (a folder) as an install target, with extras (``core[sweep]``)."""
    return str(core) + (f"[{','.join(extras)}]" if extras else "")


def pytest(session: nox.Session, *paths: str) -> None:
    # the slowest tests in every CI log: the 40-minute budget is kept by reading these
    code = session.run("pytest", "--durations=12", *paths, *session.posargs, success_codes=PYTEST_OK)
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
    Pillow only for the tests of mlx_core.hostile's image helpers and the report screenshot, nox
    for the tests of this file's lowest-core lookup; the core never imports them), the tracker
    extras (MLflow, TensorBoard), the sweep extra (Optuna, matplotlib) and the serve extra (FastAPI, uvicorn)."""
    session.install(
        core_target(*CORE_TEST_EXTRAS), str(ROOT / "tests/core/testplugins"), *TEST_TOOLS, "numpy", "pillow", "nox"
    )
    pytest(session, "tests/core")


def _make_plugin_session(name: str, hardware: str) -> None:
    def session_fn(session: nox.Session) -> None:
        if hardware == "cuda" and not has_gpu():
            session.skip(f"{name}-cuda needs an NVIDIA GPU; nvidia-smi found none on this machine")
        install_plugins(session, [name], hardware, *TEST_TOOLS, core_extras=tuple(PLUGINS[name]["core_extras"]))
        session.env["MLX_TEST_DEVICE"] = hardware
        pytest(session, f"tests/{name}", *PLUGINS[name]["tests"])

    more = "".join(f" and {t}" for t in PLUGINS[name]["tests"])
    session_fn.__doc__ = (
        f"tests/{name}{more} with only mlx-core, mlx-{name} and the checkout libraries it needs installed ({hardware})."
    )
    nox.session(name=f"{name}-{hardware}")(session_fn)


for _name, _row in PLUGINS.items():
    for _hw in _row["hardware"]:
        _make_plugin_session(_name, _hw)


# --- each plugin against the lowest core it declares ----------------------------------------
def core_requirement(plugin_dir: Path) -> Requirement:
    """The plugin's ``mlx-core`` dependency (``mlx-core>=0.1.1,<0.2``)."""
    deps = tomllib.loads((plugin_dir / "pyproject.toml").read_text())["project"].get("dependencies", [])
    for dep in deps:
        req = Requirement(dep)
        if req.name == "mlx-core":
            return req
    raise ValueError(f"{plugin_dir / 'pyproject.toml'} does not depend on mlx-core")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def core_versions_in_history(root: Path = ROOT) -> list[tuple[str, Version]]:
    """(commit, core version) of every commit that touched core/pyproject.toml, oldest first."""
    out = []
    for commit in git(root, "log", "--reverse", "--format=%H", "--", "core/pyproject.toml").split():
        text = git(root, "show", f"{commit}:core/pyproject.toml")
        out.append((commit, Version(tomllib.loads(text)["project"]["version"])))
    return out


def lowest_core(req: Requirement, root: Path = ROOT) -> tuple[str | None, Version]:
    """The lowest core version ``req`` admits and the oldest commit that set it; commit None when
    that is the working tree's own version (then the current core is the lower bound)."""
    current = Version(tomllib.loads((root / "core" / "pyproject.toml").read_text())["project"]["version"])
    history = [(c, v) for c, v in core_versions_in_history(root) if req.specifier.contains(v, prereleases=True)]
    if req.specifier.contains(current, prereleases=True):
        history.append((None, current))
    if not history:
        raise LookupError(
            f"no mlx-core version in the git history of core/pyproject.toml satisfies {req} "
            "(a shallow clone? CI must fetch the full history)"
        )
    lowest = min(v for _, v in history)
    if lowest == current:
        return None, current
    return next(c for c, v in history if v == lowest), lowest


def _make_lowest_core_session(name: str) -> None:
    def session_fn(session: nox.Session) -> None:
        req = core_requirement(PLUGINS[name]["path"])
        commit, version = lowest_core(req)
        with tempfile.TemporaryDirectory(prefix="mlx-lowest-core-") as tmp:
            if commit is None:
                session.log(f"{name} declares {req}: its lowest core is the current one, mlx-core {version}")
                core_dir = ROOT / "core"
            else:
                session.log(f"{name} declares {req}: testing against mlx-core {version} from commit {commit[:12]}")
                archive = subprocess.run(["git", "archive", commit, "core"], cwd=ROOT, check=True, capture_output=True)
                subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
                core_dir = Path(tmp) / "core"
            install_plugins(session, [name], "cpu", *TEST_TOOLS, core=core_dir)
            # a reused venv may hold another build of the same version (the working tree's, or a
            # commit's): the installer would call that satisfied
            pip(session, "install", "--no-deps", "--force-reinstall", str(core_dir))
            installed = session.run("python", "-c", "from importlib.metadata import version; print(version('mlx-core'))",
                                    silent=True).strip()  # fmt: skip
            if Version(installed) != version:
                session.error(f"expected mlx-core {version} in the session, found {installed}")
            files = sorted(str(p) for p in (ROOT / "tests" / name).glob("test_*.py") if "lowest_core" in p.read_text())
            if not files:
                session.error(f"tests/{name} marks no test lowest_core (its conformance tests should be)")
            session.env["MLX_TEST_DEVICE"] = "cpu"
            session.run("pytest", "-m", "lowest_core", *files, *session.posargs)  # nothing collected fails too

    session_fn.__doc__ = f"tests/{name} marked lowest_core, with the lowest mlx-core mlx-{name} declares (cpu)."
    nox.session(name=f"{name}-lowest-core")(session_fn)


for _name in PLUGINS:
    _make_lowest_core_session(_name)


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


# --- shards: `MLX_NOX_SHARD=K/N nox` -----------------------------------------------------------
#: minutes each session took in the last full sequential CI run on 2 cores (sessions not listed
#: count as DEFAULT_MINUTES); only the balance of the shards depends on these
SESSION_MINUTES = {
    "integration": 15, "segmentation-cpu": 10, "core": 4, "multimodal-cpu": 4, "quant-cpu": 4,
    "translation-cpu": 4, "custom_ops-cpu": 3, "recsys-cpu": 3, "lint": 0.1,
}  # fmt: skip
DEFAULT_MINUTES = 0.4  # a lowest-core session: 10-30 s


def minutes(name: str) -> float:
    if name.endswith("-cuda") and name not in SESSION_MINUTES:
        return 0.05  # skips in a second without a GPU
    return SESSION_MINUTES.get(name, DEFAULT_MINUTES)


def shard(names: list[str], spec: str) -> list[str]:
    """The sessions of shard ``K/N`` (1-based): longest first, each to the shard with the fewest
    minutes so far; every name lands in exactly one shard, in ``names``' order within it."""
    try:
        k, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise SystemExit(f"MLX_NOX_SHARD={spec!r}: expected K/N with 1 <= K <= N, e.g. 1/2") from None
    if not 1 <= k <= n:
        raise SystemExit(f"MLX_NOX_SHARD={spec!r}: expected K/N with 1 <= K <= N, e.g. 1/2")
    load, owner = [0.0] * n, {}
    for name in sorted(names, key=lambda s: -minutes(s)):
        i = min(range(n), key=lambda j: (load[j], j))
        load[i] += minutes(name)
        owner[name] = i
    return [name for name in names if owner[name] == k - 1]


def default_sessions() -> list[str]:
    return [name for name, func in nox.registry.get().items() if getattr(func, "default", True)]


if os.environ.get("MLX_NOX_SHARD"):
    nox.options.sessions = shard(default_sessions(), os.environ["MLX_NOX_SHARD"])
