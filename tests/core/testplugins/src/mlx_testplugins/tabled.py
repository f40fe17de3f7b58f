"""A test plugin in the API 1.2 style: a stage table and no stage hooks (no ``ctx.plugin`` guard).

Its stage functions live in ``tabled_stages``, which nothing imports until a run reaches a stage
(the core tests check that listing leaves it unimported)."""

from __future__ import annotations

from pydantic import Field

from mlx_core import PluginInfo, Section, hookimpl


class TrainConfig(Section):
    epochs: int = Field(3, ge=1, le=1000, description="passes that each log one history row")


class TabledConfig(Section):
    seed: int = Field(0, ge=0, description="random seed of the generated numbers")
    n: int = Field(20, ge=2, le=10_000, description="how many numbers the data stage generates")
    train: TrainConfig = Field(default_factory=TrainConfig)


@hookimpl
def mlx_plugin():
    return PluginInfo(
        name="tabled",
        summary="mean of generated numbers (core test plugin, stage table)",
        stages={
            "data": "mlx_testplugins.tabled_stages:data",
            "model": "mlx_testplugins.tabled_stages:model",
            "train": "mlx_testplugins.tabled_stages:train",
            "export": "mlx_testplugins.tabled_stages:export",
            "predict": "mlx_testplugins.tabled_stages:predict",
            "examples": "mlx_testplugins.tabled_stages:examples",
        },
        config=TabledConfig,
        core_api=">=1.2,<2",
        profiler="none",
    )
