"""``PluginInfo``: what a plugin's ``mlx_plugin()`` hook returns.

Kept free of heavy imports: ``mlx plugins list`` builds one of these per plugin.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

STAGES: tuple[str, ...] = ("data", "model", "train", "export")
#: what a stage table may name: the four stages, ``predict`` and ``examples`` (the cross-plugin
#: data contract, see ``mlx_core.contract``)
TABLE_KEYS: tuple[str, ...] = (*STAGES, "predict", "examples")
_TARGET = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
HARDWARE: tuple[str, ...] = ("cpu", "cuda")
Profiler = Literal["auto", "torch", "paddle", "none"]
PROFILERS: tuple[str, ...] = ("auto", "torch", "paddle", "none")
#: how a plugin's training distributes under ``mlx run --nproc N`` (see mlx_core.launch)
DISTRIBUTE: tuple[str, ...] = ("none", "torch-ddp", "torchrec-dmp", "hf-trainer", "paddle")


@dataclass(frozen=True)
class PluginInfo:
    """A plugin's description of itself.

    name:      the plugin's name; must equal its entry-point name in the ``mlx`` group.
    summary:   one line shown by ``mlx plugins list``.
    stages:    the stage table (API 1.2): ``{"data": "mlx_x.data:build", "model": ..., "predict": ...}``,
               one ``"module:function"`` per stage it implements, imported only when a run reaches
               that stage; the core dispatches each run's stage to its own plugin's function, so
               the plugin writes no hook functions and no ``ctx.plugin`` guard. Keys: ``STAGES``
               plus ``predict`` and ``examples``. The older form, a tuple of stage names with a
               hook function (and guard) per stage, still works. ``info.stages`` always reads back
               as the tuple of stage names; ``info.table`` holds the mapping.
    hardware:  the devices it can run on: ``("cpu",)``, ``("cuda",)`` or ``("cpu", "cuda")``.
    config:    a pydantic model class with defaults for every field: the plugin's run config.
               Fields named after stages (``data``, ``model``, ``train``, ``export``,
               ``predict``) group that stage's settings; ``--set train.epochs=3`` addresses them.
    options:   for cross-cutting plugins: a pydantic model class of the options a user gives
               when the plugin wraps *another* plugin's run (``--set quant.scheme=int8``).
    core_api:  a PEP 440 specifier of the core API versions it was built for, e.g. ``">=1,<2"``.
    requires:  import names of libraries it needs (checked with ``importlib.util.find_spec``,
               without importing them); a missing one makes it "unavailable here".
    profiler:  which profiler ``--profile`` wraps its stages in: ``torch``, ``paddle``, ``none``
               (``--profile`` then only times the stages) or ``auto`` (the default): ``torch``
               if ``requires`` names torch, else ``paddle`` if it names paddle, else ``none``;
               resolved when the description is built.
    version:   its version; ``None`` means: read it from the installed distribution.
    distribute: how its stages run on many processes under ``mlx run --nproc N --nnodes M``
               (API 1.3): ``none`` (one process only: the launcher refuses), ``torch-ddp``
               (torch.distributed / ignite.distributed from torchrun's environment),
               ``torchrec-dmp`` (DistributedModelParallel), ``hf-trainer`` (transformers'
               Trainer) or ``paddle`` (paddle.distributed).
    """

    name: str
    summary: str
    stages: tuple[str, ...] | Mapping[str, str] = STAGES
    hardware: tuple[str, ...] = ("cpu",)
    config: type[BaseModel] | None = None
    options: type[BaseModel] | None = None
    core_api: str = ">=1,<2"
    requires: tuple[str, ...] = ()
    profiler: Profiler = "auto"
    version: str | None = None
    distribute: str = "none"
    extra: dict = field(default_factory=dict)
    table: dict[str, str] = field(default_factory=dict, init=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # frozen: normalise through object.__setattr__. A table keeps every key (also unknown
        # ones, so that problems() can name them); stages reads back as the stage names in order.
        if isinstance(self.stages, Mapping):
            table = {str(k): v for k, v in self.stages.items()}
            object.__setattr__(self, "table", table)
            names = tuple(s for s in STAGES if s in table) + tuple(k for k in table if k not in TABLE_KEYS)
            object.__setattr__(self, "stages", names)
        else:
            object.__setattr__(self, "stages", tuple(self.stages))
        if self.profiler == "auto":  # a plugin without torch must not get the torch profiler
            kind = next((lib for lib in ("torch", "paddle") if lib in self.requires), "none")
            object.__setattr__(self, "profiler", kind)

    def _choice_problems(self) -> list[str]:
        return [
            f"{attr} {getattr(self, attr)!r}; expected one of {list(allowed)}"
            for attr, allowed in (("profiler", PROFILERS), ("distribute", DISTRIBUTE))
            if getattr(self, attr) not in allowed
        ]

    def problems(self) -> list[str]:
        """Contract violations of this description (empty when it is valid)."""
        out: list[str] = []
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            out.append(f"invalid name {self.name!r}")
        bad = [s for s in self.stages if s not in STAGES]
        if bad:
            out.append(f"unknown stages {bad}; expected a subset of {list(STAGES)}")
        bad_keys = [k for k in self.table if k not in TABLE_KEYS and k not in bad]
        if bad_keys:
            out.append(f"unknown stage table keys {bad_keys}; expected some of {list(TABLE_KEYS)}")
        for key, target in self.table.items():
            if not isinstance(target, str) or not _TARGET.match(target):
                out.append(f"stage table entry {key!r} is {target!r}; expected 'package.module:function'")
        out += self._choice_problems()
        bad = [h for h in self.hardware if h not in HARDWARE]
        if bad or not self.hardware:
            out.append(f"hardware {list(self.hardware)}; expected a non-empty subset of {list(HARDWARE)}")
        for attr in ("config", "options"):
            cls = getattr(self, attr)
            if cls is not None and not (isinstance(cls, type) and issubclass(cls, BaseModel)):
                out.append(f"{attr} must be a pydantic BaseModel subclass, got {cls!r}")
        if self.config is not None and not out:
            try:
                self.config()
            except Exception as exc:  # noqa: BLE001 - a config without defaults cannot be run with no arguments
                out.append(f"config {self.config.__name__} has no valid defaults: {exc}".splitlines()[0])
        return out
