"""``model.weights``: FLAVA weights from torchmultimodal's or Hugging Face's checkpoints, mapped by name.

Three layouts are recognised from their key names (never from the file name):

- **torchmultimodal**: the state dict of ``FLAVAForClassification`` / ``FLAVAForPreTraining``
  (``model.image_encoder...``, ``model.text_encoder...``, ``model.mm_encoder...``, ``classifier...``,
  and for pre-training ``loss...`` and ``image_codebook...``), as ``torch.save`` writes it (also under
  ``state_dict``/``model``).
- **Hugging Face** (``facebook/flava-full``): ``FlavaModel`` keys (``image_model.*``, ``text_model.*``,
  ``multimodal_model.*``, projections) or ``FlavaForPreTraining`` keys (the same under ``flava.`` plus
  ``mim_head``/``mlm_head``/``itm_head``/``mmm_*_head``/``image_codebook``), in a folder with
  ``model.safetensors`` (or shards named by ``model.safetensors.index.json``) or ``pytorch_model.bin``,
  or one such file.
- **mlx**: this plugin's own ``VQAClassifier`` keys (``flava.*``), e.g. ``checkpoints/last.pt`` of a run.

Files are read safely: ``safetensors`` or ``torch.load(weights_only=True)`` (no unpickling of code).
Pre-training heads are skipped by name; a tensor whose shape differs from the model's (a classifier
with another number of answers, another vocabulary) is skipped and listed; whatever the model has
that the file does not fill stays at its random initialisation. The report says all three.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mlx_core import DataError

EXPECTED = (
    "a torchmultimodal FLAVA state dict (.pt), a Hugging Face FLAVA folder (model.safetensors or "
    "pytorch_model.bin) or file, or an mlx multimodal checkpoint"
)

#: key prefixes of pre-training-only parts (torchmultimodal and Hugging Face names)
PRETRAINING_HEADS = ("loss.", "image_codebook.", "mim_head.", "mlm_head.", "itm_head.", "mmm_image_head.",
                     "mmm_text_head.", "logit_scale", "flava.logit_scale")  # fmt: skip

#: Hugging Face FLAVA name pieces -> torchmultimodal's, applied in order
HF_RULES = [
    (r"^image_model\.", "model.image_encoder."),
    (r"^text_model\.", "model.text_encoder."),
    (r"^multimodal_model\.", "model.mm_encoder."),
    (r"^(image_projection|text_projection|image_to_mm_projection|text_to_mm_projection)\.", r"model.\1."),
    (r"\.attention\.attention\.(query|key|value)\.", r".attention.\1."),
    (r"\.attention\.output\.dense\.", ".attention.output."),
    (r"\.intermediate\.dense\.", ".feedforward.model.0."),
    (r"(\.layer\.\d+)\.output\.dense\.", r"\1.feedforward.model.2."),
    (r"\.layernorm_before\.", ".attention_layernorm."),
    (r"\.layernorm_after\.", ".feedforward_layernorm."),
    (r"\.embeddings\.LayerNorm\.", ".embeddings.layer_norm."),
]


def _fail(path: Path, why: str) -> DataError:
    return DataError(f"model.weights {path}: {why}; expected {EXPECTED}")


def _torch_load(path: Path) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle/zip errors of all kinds, and refused globals
        raise _fail(path, f"not a torch checkpoint ({type(exc).__name__})") from None


def _safetensors_load(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise _fail(path, f"not a safetensors file ({str(exc).splitlines()[0][:80] if str(exc) else ''})") from None


def _read_folder(p: Path) -> dict:
    index = p / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise _fail(index, "not a safetensors index (no weight_map)") from None
        state: dict = {}
        for name in shards:
            if not (p / name).is_file():
                raise _fail(p / name, "missing shard named by model.safetensors.index.json")
            state.update(_safetensors_load(p / name))
        return state
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (p / name).is_file():
            return _safetensors_load(p / name) if name.endswith(".safetensors") else _torch_load(p / name)
    raise _fail(p, "folder has neither model.safetensors nor pytorch_model.bin")


def read_state(path: str | Path) -> dict:
    """The file's (or folder's) tensors by name: one-line ``DataError`` for anything else."""
    import torch

    p = Path(path).expanduser()
    if p.is_dir():
        state = _read_folder(p)
    elif p.is_file():
        with open(p, "rb") as f:
            head = f.read(16)
        # a safetensors file opens with an 8-byte header length then '{'; torch files are zip/pickle
        state = _safetensors_load(p) if head[8:9] == b"{" else _torch_load(p)
    else:
        raise DataError(f"model.weights {p} does not exist (expected {EXPECTED})")
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not state:
        raise _fail(p, f"holds a {type(state).__name__}, not a dict of tensors")
    tensors = {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise _fail(p, "holds no named tensors")
    return tensors


def detect_layout(keys: list[str]) -> str:
    """``hf``, ``torchmultimodal`` or ``mlx`` from the key names; ``unknown`` otherwise."""
    if any(k.startswith(("flava.model.", "flava.classifier.")) for k in keys):
        return "mlx"
    if any(k.startswith(("image_model.", "text_model.", "flava.image_model.", "flava.text_model.")) for k in keys):
        return "hf"
    if any(k.startswith(("model.image_encoder.", "model.text_encoder.", "model.mm_encoder.")) for k in keys):
        return "torchmultimodal"
    return "unknown"


def target_name(key: str, layout: str) -> str | None:
    """The ``VQAClassifier`` parameter ``key`` of a ``layout`` checkpoint goes to; None: a pre-training head."""
    if layout == "hf":
        key = key.removeprefix("flava.")
        if key.startswith(PRETRAINING_HEADS) or key.endswith("embeddings.position_ids"):
            return None
        for pattern, repl in HF_RULES:
            key = re.sub(pattern, repl, key)
        return f"flava.{key}"
    if layout == "torchmultimodal":
        return None if key.startswith(PRETRAINING_HEADS) else f"flava.{key}"
    return key


def load_flava_weights(model: Any, path: str | Path) -> dict[str, Any]:
    """Copy the checkpoint's FLAVA tensors into ``model`` (a ``VQAClassifier``); the load report."""
    import torch

    state = read_state(path)
    layout = detect_layout(list(state))
    if layout == "unknown":
        raise _fail(Path(path).expanduser(), f"no FLAVA parameter names (first key {next(iter(state))!r:.60})")
    own = model.state_dict()
    loaded, heads, mismatched, unknown = [], [], [], []
    updates = {}
    for key, value in state.items():
        target = target_name(key, layout)
        if target is None:
            heads.append(key)
        elif target not in own:
            unknown.append(key)
        elif tuple(own[target].shape) != tuple(value.shape):
            mismatched.append(f"{key} {list(value.shape)} (model: {list(own[target].shape)})")
        else:
            updates[target] = value.to(own[target].dtype)
            loaded.append(target)
    if not updates:
        raise _fail(Path(path).expanduser(), f"{layout} layout, but no tensor fits this model "
                    f"({len(mismatched)} of another shape, {len(unknown)} unknown)")  # fmt: skip
    with torch.no_grad():
        for target, value in updates.items():
            own[target].copy_(value)
    random = sorted(set(own) - set(loaded))
    return {
        "path": str(path),
        "layout": layout,
        "loaded": len(loaded),
        "skipped": len(heads) + len(mismatched) + len(unknown),
        "left_random": len(random),
        "skipped_pretraining_heads": sorted(heads),
        "skipped_shape_mismatch": sorted(mismatched),
        "skipped_unknown": sorted(unknown),
        "left_random_names": random,
        "loaded_names": sorted(loaded),
    }
