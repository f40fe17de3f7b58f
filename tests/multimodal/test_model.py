"""The model stage's FLAVA classifier, in process."""

from __future__ import annotations

import pytest
import torch
from mlx_multimodal.model import flava_kwargs, make_classifier

from mlx_core import ConfigError


def tiny(num_classes: int = 5):
    torch.manual_seed(0)
    kw = flava_kwargs("reduced", hidden=16, heads=2, image_layers=1, text_layers=1, mm_layers=1, image_size=16,
                      patch_size=8, vocab_size=50, max_length=8)  # fmt: skip
    return make_classifier(num_classes, kw).eval()


def test_forward_equals_the_library_classifier():
    model = tiny()
    image, text = torch.randn(3, 3, 16, 16), torch.randint(5, 50, (3, 8))
    with torch.no_grad():
        ours = model(image, text)
        lib = model.flava(image=image, text=text, labels=torch.zeros(3, dtype=torch.long))
    assert ours.shape == (3, 5)
    torch.testing.assert_close(ours, lib.logits)


def test_reduced_sizes_are_checked():
    with pytest.raises(ConfigError, match="hidden_size=30 is not divisible by model.heads=4"):
        flava_kwargs("reduced", hidden=30, heads=4)
    with pytest.raises(ConfigError, match="image size 20 is not a multiple of model.patch_size=8"):
        flava_kwargs("reduced", image_size=20, patch_size=8)


def test_full_configuration_is_the_published_flava():
    kw = flava_kwargs("full", image_size=224, vocab_size=400)
    model = make_classifier(3129, kw)
    n = sum(p.numel() for p in model.parameters())
    assert 235e6 < n < 255e6, n
    assert model.flava.model.text_encoder.embeddings.word_embeddings.num_embeddings == 30522
