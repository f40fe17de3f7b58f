"""``ctx.dist``: where this process stands in a launched job (torch-free; read from the environment).

``mlx run ... --nproc N`` starts its workers with ``python -m torch.distributed.run``, which
sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE and GROUP_RANK (the node's rank) for every
worker; outside a launched job the single-process defaults hold. The plugin's framework
(torch.distributed ``init_method="env://"``, ignite.distributed, HF Trainer, TorchRec) builds
its process group from the same variables; the core never imports torch for this.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: seconds a collective may wait for a peer before it fails (``init_process_group(timeout=)``):
#: a rank that died on another node ends the survivors' run within this time instead of the
#: 30 minutes torch waits by default. The launcher hands it to every worker as this variable.
COLLECTIVE_TIMEOUT_ENV = "MLX_COLLECTIVE_TIMEOUT"
COLLECTIVE_TIMEOUT_S = 300.0


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        return default


@dataclass(frozen=True)
class DistInfo:
    """rank / world_size: global; local_rank / local_world_size: on this node; node_rank:
    torchrun's GROUP_RANK; is_main: the one process (global rank 0) that writes ``run.json``,
    checkpoints and artifacts; launched: started by ``torch.distributed.run``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    node_rank: int = 0
    launched: bool = False
    timeout_s: float = COLLECTIVE_TIMEOUT_S

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls) -> DistInfo:
        launched = "TORCHELASTIC_RUN_ID" in os.environ or "WORLD_SIZE" in os.environ
        try:
            timeout = float(os.environ.get(COLLECTIVE_TIMEOUT_ENV, "") or COLLECTIVE_TIMEOUT_S)
        except ValueError:
            timeout = COLLECTIVE_TIMEOUT_S
        world = _int("WORLD_SIZE", 1)
        return cls(
            rank=_int("RANK", 0),
            world_size=world,
            local_rank=_int("LOCAL_RANK", 0),
            local_world_size=_int("LOCAL_WORLD_SIZE", world),
            node_rank=_int("GROUP_RANK", 0),
            launched=launched,
            timeout_s=timeout,
        )
