"""``mlx plugins install / uninstall / freeze``: install only the plugins you name.

Inside a checkout of the mlx monorepo, ``install NAME`` installs ``plugins/NAME`` (with the
extra and the extra steps its ``[tool.mlx.nox]`` table declares for the chosen hardware);
elsewhere it installs the distribution ``mlx-NAME[hardware]`` from the package index. ``uv``
is used when it is on PATH (much faster), else pip. ``freeze`` writes a lock file of the
installed plugins and the versions of the libraries they run on; ``install -r FILE`` restores it.
"""

from __future__ import annotations

import importlib.metadata as md
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w
import tomllib

from .errors import UsageError
from .libraries import LOCKED_DISTRIBUTIONS
from .runs import atomic_write

LOCK_VERSION = 1
#: distributions whose versions a lock file records (what plugins run on; the table in libraries.py)
RUNTIME_DISTS = LOCKED_DISTRIBUTIONS


@dataclass
class Step:
    """One installer invocation: ``args`` for ``pip`` / ``uv pip``."""

    args: list[str]
    why: str = ""


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)

    def commands(self) -> list[list[str]]:
        return [installer() + s.args for s in self.steps]


def installer() -> list[str]:
    if shutil.which("uv"):
        return ["uv", "pip"]
    return [sys.executable, "-m", "pip"]


def _fix(args: list[str]) -> list[str]:
    """uv pip targets the running interpreter explicitly; pip uninstall needs -y."""
    if installer()[0] == "uv":
        return [args[0], "--python", sys.executable, *args[1:]]
    if args[0] == "uninstall":
        return ["uninstall", "-y", *args[1:]]
    return args


def find_checkout(start: Path | None = None) -> Path | None:
    """The monorepo root above ``start`` (a folder with core/pyproject.toml and plugins/)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "core" / "pyproject.toml").is_file() and (folder / "plugins").is_dir():
            return folder
    return None


def _nox_table(plugin_dir: Path) -> dict:
    meta = tomllib.loads((plugin_dir / "pyproject.toml").read_text())
    return meta.get("tool", {}).get("mlx", {}).get("nox", {})


def _local_libs(checkout: Path, plugin_dir: Path) -> list[str]:
    """Folders of the checkout's ``libs/*`` distributions that the plugin depends on."""
    from packaging.requirements import Requirement

    libs = {
        tomllib.loads(p.read_text())["project"]["name"]: p.parent
        for p in sorted(checkout.glob("libs/*/pyproject.toml"))
    }
    deps = tomllib.loads((plugin_dir / "pyproject.toml").read_text()).get("project", {}).get("dependencies", [])
    return [str(libs[name]) for name in dict.fromkeys(Requirement(d).name for d in deps) if name in libs]


def plan_install(
    names: list[str], hardware: str, checkout: Path | None, versions: dict[str, str] | None = None
) -> Plan:
    if hardware not in ("cpu", "cuda"):
        raise UsageError(f"unknown hardware {hardware!r}: expected cpu or cuda")
    if not names:
        raise UsageError("name at least one plugin to install (or -r LOCKFILE)")
    plan = Plan()
    for name in names:
        version = (versions or {}).get(name)
        local = checkout / "plugins" / name if checkout else None
        if local is not None and (local / "pyproject.toml").is_file():
            table = _nox_table(local)
            supported = table.get("hardware", ["cpu"])
            if hardware not in supported:
                raise UsageError(f"plugin {name!r} does not support {hardware}; it supports: {', '.join(supported)}")
            extra = table.get("extras", {}).get(hardware)
            # the checkout's libraries it depends on (libs/*, e.g. mlx-torch) are not on the index:
            # installed from their folders in the same resolve
            libs = _local_libs(checkout, local)
            target = f"{local}[{extra}]" if extra else str(local)
            plan.steps.append(Step(["install", *libs, target], f"{name} from {local}"))
            for step in table.get("after", {}).get(hardware, []):
                plan.steps.append(Step(list(step), f"{name}: {hardware} step"))
        else:
            if checkout is not None:
                available = sorted(p.name for p in (checkout / "plugins").iterdir() if (p / "pyproject.toml").is_file())
                raise UsageError(
                    f"unknown plugin {name!r} in {checkout}/plugins; available: {', '.join(available) or 'none'}"
                )
            dist = f"mlx-{name.replace('_', '-')}[{hardware}]" + (f"=={version}" if version else "")
            plan.steps.append(Step(["install", dist], f"{name} from the package index"))
    return plan


def run_plan(plan: Plan, dry_run: bool, echo) -> None:
    for step in plan.steps:
        cmd = installer() + _fix(step.args)
        echo(" ".join(cmd) + (f"    # {step.why}" if step.why else ""))
        if dry_run:
            continue
        proc = subprocess.run(cmd)
        if proc.returncode != 0:
            raise UsageError(f"installer failed (exit {proc.returncode}): {' '.join(cmd)}")


def uninstall_plan(names: list[str]) -> Plan:
    from .plugins import Registry

    reg = Registry(load=False)
    reg.load_entry_points()
    steps = []
    for name in names:
        rec = reg.records.get(name)
        if rec is None or not rec.distribution:
            raise UsageError(f"plugin {name!r} is not installed; installed: {', '.join(sorted(reg.records)) or 'none'}")
        steps.append(Step(["uninstall", rec.distribution], name))
    return Plan(steps)


def _dist_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def freeze() -> dict:
    """The installed plugins and the runtime they run on (read from metadata, nothing imported)."""
    from . import API_VERSION, __version__
    from .hardware import gpu_names
    from .plugins import Registry

    reg = Registry()
    runtime = {d: v for d in RUNTIME_DISTS if (v := _dist_version(d))}
    torch_local = (runtime.get("torch") or "").partition("+")[2]
    cuda = None
    if torch_local.startswith("cu") and torch_local[2:].isdigit():
        digits = torch_local[2:]
        cuda = f"{digits[:-1]}.{digits[-1]}"
    plugins = []
    for rec in sorted(reg.records.values(), key=lambda r: r.name):
        entry = {
            "name": rec.name,
            "distribution": rec.distribution or "",
            "version": rec.version or "",
            "status": rec.status,
        }
        plugins.append(entry)
    return {
        "lock_version": LOCK_VERSION,
        "environment": {
            "python": platform.python_version(),
            "mlx-core": __version__,
            "core_api": API_VERSION,
            "torch_cuda": cuda or "none",
            "gpus": list(gpu_names()),
            "hardware": "cuda" if gpu_names() else "cpu",
        },
        "runtime": runtime,
        "plugins": plugins,
    }


def write_lock(path: Path) -> dict:
    data = freeze()
    atomic_write(path, tomli_w.dumps(data))
    return data


def read_lock(path: Path) -> dict:
    if not path.is_file():
        raise UsageError(f"lock file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"lock file {path} is not valid TOML: {exc}") from None
    if data.get("lock_version") != LOCK_VERSION or not isinstance(data.get("plugins"), list):
        raise UsageError(f"{path} is not an mlx plugin lock file (lock_version {LOCK_VERSION} with a plugins list)")
    return data


def _local_dists(checkout: Path | None) -> dict[str, Path]:
    """Distribution name -> plugin folder, for the plugins of a checkout."""
    out: dict[str, Path] = {}
    for pyproject in sorted(checkout.glob("plugins/*/pyproject.toml")) if checkout else []:
        out[tomllib.loads(pyproject.read_text())["project"]["name"]] = pyproject.parent
    return out


def plan_restore(data: dict, hardware: str | None, checkout: Path | None) -> Plan:
    """Install the locked plugin distributions at their versions, with the locked runtime pinned.

    A distribution the checkout holds is installed from it (a version that differs from the
    lock is pointed out); any other from the package index at exactly the locked version.
    """
    hw = hardware or data.get("environment", {}).get("hardware", "cpu")
    plan = Plan()
    pins = [
        f"{d}=={v}"
        for d, v in data.get("runtime", {}).items()
        if d in ("torch", "torchvision", "paddlepaddle", "torchrec")
    ]
    if pins:
        plan.steps.append(Step(["install", *pins], "runtime pinned by the lock file"))
    local = _local_dists(checkout)
    seen: set[str] = set()
    for p in data["plugins"]:
        dist, version = p.get("distribution", ""), p.get("version", "")
        if not dist or dist in seen:
            continue
        seen.add(dist)
        if dist in local:
            steps = plan_install([local[dist].name], hw, checkout).steps
            have = tomllib.loads((local[dist] / "pyproject.toml").read_text())["project"]["version"]
            if version and have != version:
                steps[0].why += f" (locked {version}, the checkout has {have})"
            plan.steps += steps
        else:
            plan.steps.append(
                Step(["install", f"{dist}[{hw}]=={version}" if version else f"{dist}[{hw}]"], f"{p['name']} (locked)")
            )
    return plan
