"""The export-time rewrite of dilated convolutions that read mostly zero padding is exact."""

from __future__ import annotations

import pytest
import torch
from mlx_segmentation.model import LogitsOnly, build
from mlx_segmentation.padding_taps import SparseTaps, centre_tap, padding_only, rewrite, work
from torch import nn


@pytest.mark.parametrize(("dilation", "padding_only_expected"), [(12, False), (24, False), (25, True), (36, True)])
def test_rewritten_convolutions_equal_the_dense_one_on_a_25x25_map(dilation, padding_only_expected):
    torch.manual_seed(dilation)
    conv = nn.Conv2d(16, 8, 3, padding=dilation, dilation=dilation).eval()
    x = torch.randn(2, 16, 25, 25)
    with torch.no_grad():
        dense = conv(x)
        assert torch.allclose(SparseTaps(conv, (25, 25))(x), dense, atol=1e-5)
        # the centre tap alone is right exactly when every other tap reads padding (dilation >= 25)
        assert padding_only(conv, (25, 25)) is padding_only_expected
        assert torch.allclose(centre_tap(conv)(x), dense, atol=1e-5) is padding_only_expected
    assert work(conv, (25, 25)) == pytest.approx(
        ((25 - dilation) * 2 + 25) ** 2 / (9 * 625) if dilation < 25 else 1 / 9
    )


def test_rewrite_of_deeplabv3_is_exact_recorded_and_leaves_the_model_alone():
    torch.manual_seed(0)
    net = LogitsOnly(build("deeplabv3_mobilenet_v3_large", 3, False)).eval()
    x = torch.randn(1, 3, 96, 96)  # the ASPP map is 6x6: every dilation (12, 24, 36) reads padding only
    fast, done = rewrite(net, x)
    aspp = {r.module: r for r in done if ".convs." in r.module}
    assert {r.dilation[0] for r in aspp.values()} == {12, 24, 36} and {r.kind for r in aspp.values()} == {"centre tap"}
    assert all(r.map_size == (6, 6) for r in aspp.values())
    with torch.no_grad():
        assert (fast(x) - net(x)).abs().max().item() <= 1e-5
    assert isinstance(net.get_submodule(next(iter(aspp))), nn.Conv2d)  # the original keeps its 3x3
    assert net.get_submodule(next(iter(aspp))).kernel_size == (3, 3)
    # a stride-2 or unpadded convolution is never touched
    assert not padding_only(nn.Conv2d(4, 4, 3, stride=2, padding=36, dilation=36), (6, 6))
    assert not padding_only(nn.Conv2d(4, 4, 3, padding=0, dilation=36), (6, 6))
    with pytest.raises(ValueError, match="built for a 25x25 map"):
        SparseTaps(nn.Conv2d(4, 4, 3, padding=12, dilation=12), (25, 25))(torch.randn(1, 4, 26, 26))
