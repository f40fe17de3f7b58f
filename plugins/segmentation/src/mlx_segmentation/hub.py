"""Model entry points published through ``mlx_models`` (and the checkout's ``hubconf.py``).

Light module: torch and torchvision are imported inside each function, so listing them is cheap.
Each returns a torchvision segmentation model whose ``forward`` gives ``{"out": logits, ...}``.
"""

from __future__ import annotations

from typing import Any


def _make(arch: str, num_classes: int, weights: str | None, aux_loss: bool, eval_mode: bool) -> Any:
    from .model import build, load_weights

    model = build(arch, num_classes, aux_loss)
    if weights:
        load_weights(model, weights, arch)
    return model.eval() if eval_mode else model


def deeplabv3_mobilenet_v3_large(
    num_classes: int = 21, weights: str | None = None, aux_loss: bool = False, eval_mode: bool = True
):
    """DeepLabV3 with a MobileNetV3-Large backbone (torchvision), the mobile-friendly default.

    num_classes: output channels (21 = background + the 20 VOC classes).
    weights: path of a local torchvision .pth state dict (e.g. a run's checkpoint or torchvision's
    released file); None: random init (untrained; nothing is downloaded).
    aux_loss: build the auxiliary classifier head. eval_mode: return the model in eval mode.
    """
    return _make("deeplabv3_mobilenet_v3_large", num_classes, weights, aux_loss, eval_mode)


def deeplabv3_resnet50(
    num_classes: int = 21, weights: str | None = None, aux_loss: bool = False, eval_mode: bool = True
):
    """DeepLabV3 with a ResNet-50 backbone (torchvision).

    num_classes: output channels (21 = VOC). weights: local .pth state dict path, or None for
    random init. aux_loss: build the auxiliary FCN head. eval_mode: return the model in eval mode.
    """
    return _make("deeplabv3_resnet50", num_classes, weights, aux_loss, eval_mode)


def deeplabv3_resnet101(
    num_classes: int = 21, weights: str | None = None, aux_loss: bool = False, eval_mode: bool = True
):
    """DeepLabV3 with a ResNet-101 backbone (torchvision).

    num_classes: output channels (21 = VOC). weights: local .pth state dict path, or None for
    random init. aux_loss: build the auxiliary FCN head. eval_mode: return the model in eval mode.
    """
    return _make("deeplabv3_resnet101", num_classes, weights, aux_loss, eval_mode)


def fcn_resnet50(num_classes: int = 21, weights: str | None = None, aux_loss: bool = False, eval_mode: bool = True):
    """FCN with a ResNet-50 backbone (torchvision).

    num_classes: output channels (21 = VOC). weights: local .pth state dict path, or None for
    random init. aux_loss: build the auxiliary FCN head. eval_mode: return the model in eval mode.
    """
    return _make("fcn_resnet50", num_classes, weights, aux_loss, eval_mode)


MODELS = {f.__name__: f for f in (deeplabv3_mobilenet_v3_large, deeplabv3_resnet50, deeplabv3_resnet101, fcn_resnet50)}
