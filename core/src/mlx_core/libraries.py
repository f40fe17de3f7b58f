"""The one table of the libraries the core knows by name, and the lists derived from it.

A row says how a library is imported (``module``), which distributions install it, whether its
import is heavy (``mlx plugins list`` must never import it: the conformance kit checks), and
whether a lock file pins it (``mlx plugins freeze``: what plugins run on). Every row's version goes
into ``run.json`` when a stage has imported the module, and ``mlx doctor`` lists every installed
distribution of the table. A new library is one row here, not an edit of four lists.
"""

from __future__ import annotations

from typing import NamedTuple


class Library(NamedTuple):
    module: str  #: the top-level import name (a key of ``sys.modules``)
    distributions: tuple[str, ...]  #: the distributions (PyPI names) that install it
    heavy: bool = False  #: slow to import (seconds): never imported by listing plugins
    locked: bool = False  #: its version is pinned in lock files


LIBRARIES: tuple[Library, ...] = (
    Library("torch", ("torch",), heavy=True, locked=True),
    Library("torchvision", ("torchvision",), heavy=True, locked=True),
    Library("torchrec", ("torchrec",), heavy=True, locked=True),
    Library("fbgemm_gpu", ("fbgemm-gpu", "fbgemm-gpu-cpu"), heavy=True, locked=True),
    Library("torchmultimodal", ("torchmultimodal-nightly",), heavy=True),
    Library("paddle", ("paddlepaddle", "paddlepaddle-gpu"), heavy=True, locked=True),
    Library("executorch", ("executorch",), heavy=True, locked=True),
    Library("onnx", ("onnx",)),
    Library("onnxruntime", ("onnxruntime",), heavy=True, locked=True),
    Library("transformers", ("transformers",), heavy=True, locked=True),
    Library("datasets", ("datasets",), heavy=True, locked=True),
    Library("tokenizers", ("tokenizers",)),
    Library("sacrebleu", ("sacrebleu",)),
    Library("bitsandbytes", ("bitsandbytes",), heavy=True, locked=True),
    Library("torchao", ("torchao",), locked=True),
    Library("peft", ("peft",)),
    Library("accelerate", ("accelerate",)),
    Library("tensorflow", ("tensorflow",), heavy=True),
    Library("jax", ("jax",), heavy=True),
    Library("mlflow", ("mlflow",), heavy=True),  # trackers: imported only by a run that asks for one
    Library("tensorboard", ("tensorboard",), heavy=True),
    Library("tensorboardX", ("tensorboardX",), heavy=True),
    Library("wandb", ("wandb",), heavy=True),
    Library("clearml", ("clearml",), heavy=True),
    Library("fastapi", ("fastapi",), heavy=True),  # the server: imported only by `mlx serve`
    Library("uvicorn", ("uvicorn",), heavy=True),
    Library("starlette", ("starlette",), heavy=True),
    Library("numpy", ("numpy",)),
    Library("PIL", ("pillow",)),
)

#: the core's own runtime distributions (``mlx doctor`` lists them beside the table's)
CORE_DISTRIBUTIONS = ("pluggy", "typer", "rich", "pydantic")

#: modules whose versions go into run.json when a stage has imported them
TRACKED_MODULES = tuple(lib.module for lib in LIBRARIES)
#: modules ``mlx plugins list`` must not import
HEAVY_MODULES = tuple(lib.module for lib in LIBRARIES if lib.heavy)
#: distributions a lock file records
LOCKED_DISTRIBUTIONS = tuple(d for lib in LIBRARIES if lib.locked for d in lib.distributions)
#: distributions ``mlx doctor`` reports when installed
DOCTOR_DISTRIBUTIONS = (*(d for lib in LIBRARIES for d in lib.distributions), *CORE_DISTRIBUTIONS)
