"""Published models: ``mlx_models`` through the core hub and the checkout's hubconf.py (torch.hub)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # the checkout: tests/segmentation/test_hub.py -> repo root
NAMES = {"deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50", "deeplabv3_resnet101", "fcn_resnet50"}


def test_torch_hub_lists_and_loads_from_the_checkout():
    import torch

    assert (ROOT / "hubconf.py").is_file()
    # torch.hub.list/help take GitHub repos only (no source="local" in torch 2.14); list the local
    # hubconf the way torch.hub.list does: its public callables
    hubconf = torch.hub._import_module("hubconf", str(ROOT / "hubconf.py"))
    listed = {name for name in dir(hubconf) if callable(getattr(hubconf, name)) and not name.startswith("_")}
    assert NAMES <= listed
    model = torch.hub.load(str(ROOT), "deeplabv3_mobilenet_v3_large", source="local", num_classes=21)
    assert not model.training
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))["out"]
    assert out.shape == (1, 21, 64, 64)
    doc = hubconf.fcn_resnet50.__doc__
    assert "num_classes" in doc and "weights" in doc


def test_core_hub_finds_the_models_with_docs():
    from mlx_core import hub

    entries = hub.entries(plugin="segmentation")
    assert set(entries) == NAMES
    for entry in entries.values():
        assert entry.summary and "num_classes" in str(entry.signature)


def test_hub_model_loads_a_local_checkpoint(tmp_path):
    import torch
    from mlx_segmentation.hub import deeplabv3_mobilenet_v3_large

    a = deeplabv3_mobilenet_v3_large(num_classes=4)
    path = tmp_path / "w.pth"
    torch.save({"model": a.state_dict()}, path)  # torchvision reference-script layout
    b = deeplabv3_mobilenet_v3_large(num_classes=4, weights=str(path))
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(a(x)["out"], b(x)["out"])
    from mlx_core import DataError

    with pytest.raises(DataError, match="does not fit"):
        deeplabv3_mobilenet_v3_large(num_classes=5, weights=str(path))
