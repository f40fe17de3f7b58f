"""``model.weights``: the involution authors' released RedNet checkpoint layout (mmcls), mapped by name.

The checkpoint is built from a module tree with the authors' names (cls/mmcls/models/backbones/rednet.py
of github.com/d-li14/involution: ConvModule ``conv``/``bn``, ``involution.conv1``/``conv2``, ``layer<i>``,
``downsample.{0,1}``, ``ImageClassifier.backbone``/``head.fc``) and their forward, so the test checks
both the names and that the mapped weights compute what the authors' network computes."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from mlx_core import ConfigError, DataError

ARCH26 = (1, 2, 4, 1)
STEM, WIDTH, CLASSES = 32, 16, 10


class ConvModule(nn.Module):
    """mmcv.cnn.ConvModule's parameter names: ``conv`` (bias only without a norm), ``bn``."""

    def __init__(self, cin, cout, k, stride=1, padding=0, norm=True, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, bias=not norm)
        self.bn = nn.BatchNorm2d(cout) if norm else None
        self.act = act

    def forward(self, x):
        x = self.conv(x)
        x = self.bn(x) if self.bn is not None else x
        return torch.relu(x) if self.act else x


class involution(nn.Module):  # the authors' class name
    def __init__(self, channels, kernel_size, stride):
        super().__init__()
        self.kernel_size, self.stride, self.channels = kernel_size, stride, channels
        self.group_channels = 16
        self.groups = channels // 16
        self.conv1 = ConvModule(channels, channels // 4, 1)
        self.conv2 = ConvModule(channels // 4, kernel_size**2 * self.groups, 1, norm=False, act=False)
        self.avgpool = nn.AvgPool2d(stride, stride) if stride > 1 else None
        self.unfold = nn.Unfold(kernel_size, 1, (kernel_size - 1) // 2, stride)

    def forward(self, x):
        weight = self.conv2(self.conv1(x if self.stride == 1 else self.avgpool(x)))
        b, c, h, w = weight.shape
        weight = weight.view(b, self.groups, self.kernel_size**2, h, w).unsqueeze(2)
        out = self.unfold(x).view(b, self.groups, self.group_channels, self.kernel_size**2, h, w)
        return (weight * out).sum(dim=3).view(b, self.channels, h, w)


class Bottleneck(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        mid = cout // 4
        self.conv1, self.bn1 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv2, self.bn2 = involution(mid, 7, stride), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:  # avg_down=False: a strided 1x1 conv and BN
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class AuthorsRedNet(nn.Module):
    def __init__(self, arch=ARCH26, stem=STEM, base=WIDTH):
        super().__init__()
        self.stem = nn.Sequential(ConvModule(3, stem // 2, 3, 2, 1), involution(stem // 2, 3, 1),
                                  nn.BatchNorm2d(stem // 2), nn.ReLU(), ConvModule(stem // 2, stem, 3, 1, 1))  # fmt: skip
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin, cout = stem, base * 4
        for i, n in enumerate(arch):
            blocks = [Bottleneck(cin if j == 0 else cout, cout, (1, 2, 2, 2)[i] if j == 0 else 1) for j in range(n)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            cin, cout = cout, cout * 2

    def forward(self, x):
        x = self.maxpool(self.stem(x))
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
        return x


class ImageClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = AuthorsRedNet()
        self.head = nn.Module()
        self.head.fc = nn.Linear(WIDTH * 4 * 8, CLASSES)

    def forward(self, x):
        return self.head.fc(self.backbone(x).mean((2, 3)))


def released_checkpoint(path):
    """``{"meta", "state_dict"}`` as mmcv's save_checkpoint writes it, with random weights and BN statistics."""
    torch.manual_seed(0)
    ref = ImageClassifier()
    with torch.no_grad():
        for name, t in ref.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) * 0.5 + 0.5 if "running_var" in name else torch.randn_like(t) * 0.3)
    torch.save({"meta": {"mmcv_version": "1.3.1", "epoch": 130, "CLASSES": [str(i) for i in range(CLASSES)]},
                "state_dict": ref.state_dict()}, path)  # fmt: skip
    return ref.eval()


def ours(backend, num_classes=CLASSES, downsample="conv"):
    from mlx_custom_ops.model import make

    return make(backend, num_classes, depth=26, width=WIDTH, stem_channels=STEM, kernel_size=7, stem_kernel_size=3,
                group_channels=16, reduction=4, impl="composite", downsample=downsample)  # fmt: skip


def test_released_rednet_layout_loads_into_the_torch_twin_and_computes_the_same(tmp_path):
    from mlx_custom_ops.weights import load_rednet_weights

    ref = released_checkpoint(tmp_path / "rednet26.pth")
    net = ours("torch")
    report = load_rednet_weights(net, tmp_path / "rednet26.pth", "torch", "conv")
    assert report["layout"] == "mmcls"
    assert report["left_random"] == 0 and report["skipped"] == 0
    assert report["loaded"] == len(ref.state_dict()) == len(net.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), ref(x), atol=1e-4, rtol=1e-4)
    # ImageNet weights into a 5-class model: the classifier is listed and stays random
    report = load_rednet_weights(ours("torch", 5), tmp_path / "rednet26.pth", "torch", "conv")
    assert report["skipped_shape_mismatch"] == ["fc.bias [10] (model: [5])", "fc.weight [10, 512] (model: [5, 512])"]
    assert report["left_random_names"] == ["fc.bias", "fc.weight"]
    with pytest.raises(ConfigError, match="is an mmcls RedNet, .* set model.downsample=conv"):
        load_rednet_weights(ours("torch", downsample="avgpool"), tmp_path / "rednet26.pth", "torch", "avgpool")


def test_released_rednet_layout_loads_into_the_paddle_twin(tmp_path):
    import numpy as np
    import paddle
    from mlx_custom_ops.weights import load_rednet_weights

    ref = released_checkpoint(tmp_path / "rednet26.pth")
    net = ours("paddle")
    report = load_rednet_weights(net, tmp_path / "rednet26.pth", "paddle", "conv")
    # Paddle keeps no num_batches_tracked: those are the only tensors it does not take
    assert report["left_random"] == 0 and all(k.endswith("num_batches_tracked") for k in report["skipped_unknown"])
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype("float32")
    net.eval()
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net(paddle.to_tensor(x)).numpy(), want, atol=1e-4, rtol=1e-4)


def test_bad_weight_files_are_one_line_errors(tmp_path):
    from mlx_custom_ops.weights import load_rednet_weights

    net = ours("torch")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"junk.pth: not a torch checkpoint .*; expected the involution authors'"):
        load_rednet_weights(net, tmp_path / "junk.pth", "torch", "conv")
    torch.save({"state_dict": {"encoder.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(DataError, match=r"other.pth: no RedNet parameter names \(first key 'encoder.weight'\)"):
        load_rednet_weights(net, tmp_path / "other.pth", "torch", "conv")
    with pytest.raises(DataError, match="nothere.pth does not exist"):
        load_rednet_weights(net, tmp_path / "nothere.pth", "torch", "conv")


def test_model_stage_records_the_load_report(tmp_path):
    import types

    from mlx_custom_ops.config import CustomOpsConfig
    from mlx_custom_ops.model import build

    from mlx_core.runs import Manifest
    from mlx_core.testing import stage_context

    released_checkpoint(tmp_path / "rednet26.pth")
    cfg = CustomOpsConfig.model_validate({"model": {
        "backend": "torch", "impl": "composite", "width": WIDTH, "stem_channels": STEM, "group_channels": 16,
        "downsample": "conv", "weights": str(tmp_path / "rednet26.pth")}})  # fmt: skip
    ctx = stage_context(tmp_path / "run", "custom_ops", cfg, stage="model")
    build(ctx, types.SimpleNamespace(num_classes=3))
    records = Manifest.load(tmp_path / "run").data["records"]
    w = records["weights"]
    assert (w["layout"], w["left_random_names"]) == ("mmcls", ["fc.bias", "fc.weight"]), json.dumps(w)[:400]
    assert w["loaded"] == len(ours("torch").state_dict()) - 2
    assert records["trained"] is False
