"""The export stage reads the saved Paddle program for the involution custom operator."""

from __future__ import annotations

import pytest

from mlx_core import StageFailed


def _save(tmp_path, impl):
    import paddle
    from mlx_custom_ops.model import make
    from paddle.static import InputSpec

    net = make("paddle", 2, depth=26, width=4, stem_channels=8, kernel_size=3, stem_kernel_size=3,
               group_channels=4, reduction=4, impl=impl)  # fmt: skip
    net.eval()
    static = paddle.jit.to_static(net, input_spec=[InputSpec([None, 3, 32, 32], "float32", "image")], full_graph=True)
    paddle.jit.save(static, str(tmp_path / impl / "model"))
    return net, tmp_path / impl / "model"


def test_composite_program_has_no_involution_op_and_a_claim_of_one_fails(tmp_path):
    from mlx_custom_ops.export import _check_program
    from mlx_custom_ops.program_ops import program_ops

    net, prefix = _save(tmp_path, "composite")
    ops = program_ops(prefix)
    assert ops.get("involution", 0) == 0 and ops["conv2d"] > 0 and ops["unfold"] == 9
    assert _check_program(prefix, net, custom=False) == 0
    with pytest.raises(StageFailed, match=r"model.json holds 0 'involution' custom op\(s\), expected 9"):
        _check_program(prefix, net, custom=True)


def test_custom_program_holds_one_involution_op_per_layer(tmp_path, paddle_op):
    from mlx_custom_ops.export import _check_program
    from mlx_custom_ops.program_ops import program_ops

    net, prefix = _save(tmp_path, "custom")
    assert program_ops(prefix)["involution"] == 9
    assert _check_program(prefix, net, custom=True) == 9
