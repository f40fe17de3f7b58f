"""Model stage: a RedNet of the configured depth/width in Paddle or PyTorch."""

from __future__ import annotations

from mlx_core import ConfigError, DeviceError

from .shapes import InvolutionShapeError


def make(backend: str, num_classes: int, **kw):
    if backend == "paddle":
        from .rednet_paddle import RedNet
    else:
        from .rednet_torch import RedNet
    return RedNet(num_classes=num_classes, **kw)


def layer_kwargs(cfg) -> dict:
    return {k: getattr(cfg, k) for k in ("depth", "width", "stem_channels", "kernel_size", "stem_kernel_size",
                                         "group_channels", "reduction", "impl", "downsample")}  # fmt: skip


def probe(net, backend: str, image_size: int, device: str = "cpu") -> None:
    """One tiny forward pass so shape problems (a stride that does not divide a feature map)
    surface now, as a config error, rather than in the middle of training."""
    import numpy as np

    x = np.zeros((1, 3, image_size, image_size), dtype=np.float32)
    if backend == "paddle":
        import paddle

        net.eval()
        with paddle.no_grad():
            net(paddle.to_tensor(x))
        net.train()
    else:
        import torch

        net.eval()
        with torch.no_grad():
            net(torch.from_numpy(x).to(device))
        net.train()


def build(ctx, data):
    cfg = ctx.config.model
    size = ctx.config.data.image_size
    num_classes = data.num_classes if data is not None else 2
    if cfg.backend == "paddle":
        import paddle

        from .build import paddle_has_cuda

        if ctx.device == "cuda" and not paddle.is_compiled_with_cuda():
            raise DeviceError(
                f"--device cuda: paddlepaddle {paddle.__version__} here is a CPU build (install paddlepaddle-gpu)"
            )
        if ctx.device == "cuda" and cfg.impl == "custom" and not paddle_has_cuda():
            raise DeviceError("--device cuda with model.impl=custom needs nvcc on PATH to compile the CUDA kernels")
        paddle.seed(ctx.seed)
        paddle.set_device("gpu" if ctx.device == "cuda" else "cpu")
    else:
        import torch

        if ctx.device == "cuda" and cfg.impl == "custom":
            raise ConfigError(
                "model.impl=custom with model.backend=torch has CPU kernels only; "
                "use model.impl=composite on cuda (or model.backend=paddle)"
            )
        torch.manual_seed(ctx.seed)
    try:
        net = make(cfg.backend, num_classes, **layer_kwargs(cfg))
    except InvolutionShapeError as exc:
        raise ConfigError(f"model: {exc}") from None
    if cfg.backend == "torch" and ctx.device == "cuda":
        net = net.cuda()
    try:
        probe(net, cfg.backend, size, "cuda" if ctx.device == "cuda" else "cpu")
    except InvolutionShapeError as exc:
        raise ConfigError(
            f"data.image_size={size}: {exc} (RedNet halves the size 5 times: use a multiple of 32)"
        ) from None
    # trainable only: Paddle lists BN running statistics among parameters, torch among buffers
    params = sum(int(p.numel()) for p in net.parameters() if not getattr(p, "stop_gradient", not p.requires_grad))
    ctx.log_metrics({"parameters": params})
    ctx.record("model", {"arch": f"RedNet-{cfg.depth}", "backend": cfg.backend, "impl": cfg.impl, "parameters": params})
    trained = False
    if cfg.weights:  # the authors' released RedNet or one of ours, mapped by name (weights.py)
        from .weights import load_rednet_weights

        report = load_rednet_weights(net, cfg.weights, cfg.backend, cfg.downsample)
        ctx.record("weights", report)
        ctx.note(f"model.weights ({report['layout']}): {report['loaded']} tensors loaded, {report['skipped']} "
                 f"skipped, {report['left_random']} left random")  # fmt: skip
        trained = report["left_random"] == 0
    ctx.record("trained", trained)
    return net


def paddle_to_torch_state(paddle_net) -> dict:
    """A torch ``state_dict`` with the weights of a Paddle RedNet/Involution (same structure).

    Names match one to one except BN statistics (``_mean``/``_variance`` vs
    ``running_mean``/``running_var``); Paddle's Linear weight is [in, out], torch's [out, in].
    """
    import torch
    from paddle import nn as pnn

    linear = {name for name, layer in paddle_net.named_sublayers() if isinstance(layer, pnn.Linear)}
    out = {}
    for name, value in paddle_net.state_dict().items():
        owner, _, leaf = name.rpartition(".")
        leaf = {"_mean": "running_mean", "_variance": "running_var"}.get(leaf, leaf)
        arr = value.numpy()
        if owner in linear and leaf == "weight":
            arr = arr.T
        out[f"{owner}.{leaf}" if owner else leaf] = torch.from_numpy(arr.copy())
    return out
