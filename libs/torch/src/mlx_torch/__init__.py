"""mlx-torch: the training engine of mlx's plain-torch plugins, on pytorch-ignite.

``from mlx_torch.fit import fit`` inside a train stage. Importing this package (or its
``config`` module, which plugin configs embed) imports neither torch nor ignite, so a plugin's
config stays cheap for ``mlx plugins list``.
"""

from __future__ import annotations

__all__ = ["fit"]


def __getattr__(name: str):  # lazy: ``mlx_torch.fit`` imports torch and ignite
    if name == "fit":
        from .fit import fit

        return fit
    raise AttributeError(name)
