"""The cross-plugin data contract: what one plugin may ask of another plugin's data and model.

Cross-cutting plugins process other plugins' models (quant quantizes them, custom_ops swaps
their layers). They do not guess at attribute names; they ask through the contract:

- **the model object** a domain plugin's model stage returns is, for torch plugins, a
  ``torch.nn.Module`` whose ``model(*inputs)`` runs on the inputs of its examples;
- **examples**: the domain plugin names a function under ``examples`` in its stage table
  (hook ``mlx_examples``); ``ctx.examples(data, n, split)`` returns at most ``n``
  ``(inputs, target)`` pairs, ``inputs`` a tuple of batched tensors and ``target`` a tensor
  (class ids, masks) or ``None``, drawn from ``split`` ``"calibration"`` (the training side) or
  ``"eval"`` (held out);
- **evaluation** is the caller's: quant scores the quantized model against the float one on
  the ``eval`` examples (argmax agreement, mIoU or accuracy from the target's shape).

``check_examples`` is what the conformance kit asserts about an answer; torch-free (it looks at
shapes through duck typing), so the core never imports torch.
"""

from __future__ import annotations

from typing import Any, Literal

Split = Literal["calibration", "eval"]
SPLITS: tuple[str, ...] = ("calibration", "eval")
#: ``(inputs, target)``: ``inputs`` a tuple of batched tensors for ``model(*inputs)``
Example = tuple[tuple[Any, ...], Any]


def check_examples(answer: Any, n: int) -> list[str]:
    """Contract violations of an ``mlx_examples`` answer for ``n`` examples (empty when valid)."""
    if not isinstance(answer, list):
        return [f"examples must be a list of (inputs, target) pairs, got {type(answer).__name__}"]
    out: list[str] = []
    if not answer:
        out.append("examples returned no examples")
    if len(answer) > n:
        out.append(f"asked for at most {n} examples, got {len(answer)}")
    for i, item in enumerate(answer):
        if not (isinstance(item, tuple) and len(item) == 2):
            out.append(f"example {i} is {type(item).__name__}, expected an (inputs, target) tuple")
            continue
        inputs, _target = item
        if not isinstance(inputs, tuple) or not inputs:
            out.append(f"example {i}: inputs must be a non-empty tuple of tensors, got {type(inputs).__name__}")
            continue
        for j, x in enumerate(inputs):
            shape = getattr(x, "shape", None)
            if shape is None or len(shape) < 1:
                out.append(f"example {i}: input {j} has no batch dimension (shape {shape})")
    return out
