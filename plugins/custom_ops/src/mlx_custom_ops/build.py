"""Build and load the C++ operators once, cached in a directory keyed by a hash of what goes in.

The key covers the sources, the framework version and install path (the library links against
that install's shared objects), the compile flags and the CPU model, so an
import of an unchanged operator never recompiles: it loads the shared library directly without
touching a compiler. ``MLX_CUSTOM_OPS_CACHE`` moves the cache (default
``~/.cache/mlx_custom_ops``). A file lock keeps two processes from building the same key at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import shlex
import shutil
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

from mlx_core import PluginError

CSRC = Path(__file__).parent / "csrc"
CXX_FLAGS = ["-O3", "-march=native", "-fopenmp"]
LD_FLAGS = ["-fopenmp"]

#: what the last ensure_* call did per backend: {"built": bool, "seconds": float, "path": str}
LAST_BUILD: dict[str, dict] = {}
_LOADED: dict[str, object] = {}


def cache_root() -> Path:
    return Path(os.environ.get("MLX_CUSTOM_OPS_CACHE") or Path.home() / ".cache" / "mlx_custom_ops")


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def build_key(sources: list[Path], *parts: str) -> str:
    h = hashlib.sha256()
    for src in sorted(sources) + sorted(CSRC.glob("*.h")):
        h.update(src.name.encode())
        h.update(src.read_bytes())
    for p in (*parts, " ".join(CXX_FLAGS), _cpu_model(), platform.machine(), sys.version.split()[0]):
        h.update(p.encode())
    return h.hexdigest()[:16]


def _first_word(cmd: str | None) -> str | None:
    if not cmd:
        return None
    words = shlex.split(cmd)
    return words[0] if words else None


def required_compilers(backend: str) -> dict[str, str]:
    """The compiler commands ``backend``'s extension builder will call: {what: command}."""
    cxx = os.environ.get("CXX") or "c++"
    if backend == "torch":
        return {"C++ compiler ($CXX or c++, used by torch.utils.cpp_extension)": cxx}
    # Paddle compiles through setuptools (sysconfig CC, overridden by $CC) and checks $CXX's ABI.
    cc = _first_word(os.environ.get("CC")) or _first_word(sysconfig.get_config_var("CC")) or "cc"
    return {
        "C compiler ($CC or Python's sysconfig CC, used by paddle.utils.cpp_extension)": cc,
        "C++ compiler ($CXX or c++, checked by paddle.utils.cpp_extension)": cxx,
    }


def check_compilers(backend: str) -> None:
    """Raise a one-line PluginError naming every compiler the build needs but cannot find."""
    missing = [f"{what} {cmd!r}" for what, cmd in required_compilers(backend).items() if shutil.which(cmd) is None]
    if missing:
        raise PluginError(
            f"cannot build the {backend} involution operator: no C++ compiler found: "
            + "; ".join(missing)
            + " is not on PATH (install g++ or point CC/CXX at one)"
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def paddle_has_cuda() -> bool:
    import paddle

    return bool(paddle.is_compiled_with_cuda()) and shutil.which("nvcc") is not None


def ensure_paddle_op(verbose: bool = False):
    """The module with ``involution(x, w, kernel_size, stride)`` as a Paddle custom op."""
    if "paddle" in _LOADED:
        return _LOADED["paddle"]
    import paddle
    from paddle.utils.cpp_extension import load
    from paddle.utils.cpp_extension.extension_utils import _import_module_from_library

    cuda = paddle_has_cuda()
    sources = [CSRC / "paddle_involution.cc"] + ([CSRC / "paddle_involution.cu"] if cuda else [])
    key = build_key(sources, "paddle", paddle.__version__, f"cuda={cuda}", str(Path(paddle.__file__).parent))
    name = "mlx_involution_paddle"
    build_dir = cache_root() / f"paddle-{key}"
    lib_dir = build_dir / name
    so = lib_dir / f"{name}.so"
    t0 = time.perf_counter()
    built = False
    with _locked(cache_root() / f"paddle-{key}.lock"):
        if so.exists():
            module = _import_module_from_library(name, str(lib_dir), verbose)
        else:
            check_compilers("paddle")
            build_dir.mkdir(parents=True, exist_ok=True)
            cflags = [*CXX_FLAGS, f"-I{CSRC}"] + (["-DMLX_WITH_CUDA"] if cuda else [])
            try:
                module = load(
                    name=name,
                    sources=[str(s) for s in sources],
                    extra_cxx_cflags=cflags,
                    extra_cuda_cflags=["-O3", f"-I{CSRC}"] if cuda else None,
                    extra_ldflags=LD_FLAGS,
                    build_directory=str(build_dir),
                    verbose=verbose,
                )
            except Exception as exc:  # noqa: BLE001 - any build failure becomes one line; the compiler output went to stderr
                shutil.rmtree(lib_dir, ignore_errors=True)
                raise PluginError(
                    f"building the Paddle involution operator in {build_dir} failed: {exc}".splitlines()[0]
                ) from None
            built = True
    LAST_BUILD["paddle"] = {
        "built": built,
        "seconds": round(time.perf_counter() - t0, 2),
        "path": str(so),
        "cuda": cuda,
    }
    _LOADED["paddle"] = module
    return module


def ensure_torch_op(verbose: bool = False) -> None:
    """Register ``torch.ops.mlx_custom_ops.involution`` (C++ kernels) in this process."""
    if "torch" in _LOADED:
        return
    import torch

    sources = [CSRC / "torch_involution.cpp"]
    key = build_key(sources, "torch", torch.__version__, str(Path(torch.__file__).parent))
    name = "mlx_involution_torch"
    build_dir = cache_root() / f"torch-{key}"
    so = build_dir / f"{name}.so"
    t0 = time.perf_counter()
    built = False
    with _locked(cache_root() / f"torch-{key}.lock"):
        if not so.exists():
            check_compilers("torch")
            from torch.utils.cpp_extension import load

            build_dir.mkdir(parents=True, exist_ok=True)
            try:
                load(
                    name=name,
                    sources=[str(s) for s in sources],
                    extra_cflags=[*CXX_FLAGS, f"-I{CSRC}"],
                    extra_ldflags=LD_FLAGS,
                    build_directory=str(build_dir),
                    is_python_module=False,
                    verbose=verbose,
                )
            except Exception as exc:  # noqa: BLE001 - any build failure becomes one line
                with contextlib.suppress(OSError):
                    so.unlink()
                raise PluginError(
                    f"building the torch involution operator in {build_dir} failed: {exc}".splitlines()[0]
                ) from None
            built = True
        else:
            torch.ops.load_library(str(so))
    LAST_BUILD["torch"] = {"built": built, "seconds": round(time.perf_counter() - t0, 2), "path": str(so)}
    from . import torch_library

    torch_library.register_python_parts()
    _LOADED["torch"] = True
