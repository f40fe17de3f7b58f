"""Model stage: ``flava_model_for_classification(num_classes=len(answers))``, full or reduced.

``VQAClassifier`` wraps torchmultimodal's ``FLAVAForClassification`` with a forward of
(image, token ids) -> logits that runs the image, text and multimodal encoders once each (the
library's own forward also runs the image encoder a second time for its masked-image branch
and requires labels); it is what training, export and the benchmark call. The weights are the
library model's: ``wrapper.flava`` is the ``FLAVAForClassification``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mlx_core import ConfigError


def flava_kwargs(size: str, *, hidden: int = 64, heads: int = 2, image_layers: int = 2, text_layers: int = 2,
                 mm_layers: int = 1, image_size: int = 32, patch_size: int = 8, vocab_size: int = 30522,
                 max_length: int = 512, pad_token_id: int = 0) -> dict[str, Any]:  # fmt: skip
    """Keyword arguments of ``flava_model_for_classification`` for the full or reduced FLAVA."""
    if size == "full":
        # the published FLAVA sizes (768 hidden, 12/12/6 layers, 224px images in 16px patches)
        return {"classifier_in_dim": 768, "classifier_hidden_sizes": 768, "image_size": image_size, "patch_size": 16,
                "vocab_size": max(vocab_size, 30522), "pad_token_id": pad_token_id,
                "max_position_embeddings": max(512, max_length)}  # fmt: skip
    if hidden % heads:
        raise ConfigError(f"model.hidden_size={hidden} is not divisible by model.heads={heads}")
    if image_size % patch_size:
        raise ConfigError(f"image size {image_size} is not a multiple of model.patch_size={patch_size}")
    inter = 4 * hidden
    return {
        "classifier_in_dim": hidden, "classifier_hidden_sizes": hidden,
        "image_hidden_size": hidden, "image_num_attention_heads": heads, "image_num_hidden_layers": image_layers,
        "image_intermediate_size": inter, "image_size": image_size, "patch_size": patch_size,
        "text_hidden_size": hidden, "text_num_attention_heads": heads, "text_num_hidden_layers": text_layers,
        "text_intermediate_size": inter, "vocab_size": vocab_size, "pad_token_id": pad_token_id,
        "max_position_embeddings": max_length,
        "multimodal_hidden_size": hidden, "multimodal_num_attention_heads": heads,
        "multimodal_num_hidden_layers": mm_layers, "multimodal_intermediate_size": inter,
        "text_and_image_proj_size": hidden,
    }  # fmt: skip


class VQAClassifier(nn.Module):
    """(image [B,3,S,S] normalised float, token ids [B,L]) -> answer logits [B, num_classes]."""

    def __init__(self, flava: nn.Module) -> None:
        super().__init__()
        self.flava = flava

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        m = self.flava.model
        image_out = m.encode_image(image)
        text_out = m.encode_text(text)
        mm = m.encode_mm(image_out.hidden_states[-1], text_out.hidden_states[-1])
        return self.flava.classifier(mm.last_hidden_state[:, 0])

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.flava.loss(logits, labels)


def make_classifier(num_classes: int, kwargs: dict[str, Any], dropout: float = 0.1) -> VQAClassifier:
    from torchmultimodal.models.flava.model import flava_model_for_classification

    flava = flava_model_for_classification(
        num_classes=num_classes, classifier_dropout=dropout, pretrained=False, **kwargs
    )  # fmt: skip
    return VQAClassifier(flava)


def model_kwargs(cfg: Any, data: Any) -> dict[str, Any]:
    m = cfg.model
    return flava_kwargs(
        m.size, hidden=m.hidden_size, heads=m.heads, image_layers=m.image_layers, text_layers=m.text_layers,
        mm_layers=m.multimodal_layers, image_size=data.preprocess["image_size"], patch_size=m.patch_size,
        vocab_size=data.vocab_size, max_length=data.preprocess["max_length"], pad_token_id=data.pad_token_id,
    )  # fmt: skip


def load_weights(model: nn.Module, path: str) -> dict[str, Any]:
    """Load a torchmultimodal / Hugging Face / mlx FLAVA checkpoint by name (``weights.py``); its report."""
    from .weights import load_flava_weights

    return load_flava_weights(model, path)


def build_model(ctx: Any, data: Any) -> VQAClassifier:
    torch.manual_seed(ctx.seed)
    kwargs = model_kwargs(ctx.config, data)
    model = make_classifier(len(data.answers), kwargs, ctx.config.model.dropout)
    n = sum(p.numel() for p in model.parameters())
    ctx.record("model_kwargs", kwargs)
    ctx.log_metrics({"parameters": n, "num_classes": len(data.answers)})
    if ctx.config.model.weights:
        report = load_weights(model, ctx.config.model.weights)
        ctx.record("weights", report)
        ctx.note(f"model.weights ({report['layout']}): {report['loaded']} tensors loaded, {report['skipped']} "
                 f"skipped, {report['left_random']} left random")  # fmt: skip
        ctx.record("trained", report["left_random"] == 0)
    else:
        ctx.record("trained", False)
    return model.to(ctx.device)
