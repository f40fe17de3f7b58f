"""Inference export: int8 row-wise quantized embedding tables (torchrec.quant's
EmbeddingBagCollection, fbgemm int-N TBE kernels) + the float dense part, traced with
torchrec.fx and saved as TorchScript. Loading needs only ``torch`` and ``fbgemm_gpu`` (for the
kernels), not torchrec nor this plugin."""

# no `from __future__ import annotations`: torch.fx codegen needs real annotations on Scorer.forward

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from .config import RecsysConfig

MODEL_FILE = ("export", "model_int8.pt")
FLOAT_FILE = ("export", "model_float.pt")
META_FILE = ("export", "meta.json")


class Scorer(torch.nn.Module):
    """Plain-tensor interface: (dense [B,13], values [N], lengths [F*B]) -> click probability [B]."""

    def __init__(self, dlrm: torch.nn.Module, keys: list[str]):
        super().__init__()
        self.dlrm = dlrm
        self.keys = keys

    def forward(self, dense: torch.Tensor, values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

        kjt = KeyedJaggedTensor(keys=self.keys, values=values, lengths=lengths)
        return torch.sigmoid(self.dlrm(dense, kjt).squeeze(-1))


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    import torchrec.fx

    with warnings.catch_warnings():  # TorchScript deprecation / annotation notices: not actionable here
        warnings.simplefilter("ignore")
        return torch.jit.script(torchrec.fx.symbolic_trace(module))


def table_bytes(state: dict[str, torch.Tensor]) -> int:
    return sum(v.numel() * v.element_size() for k, v in state.items() if "embedding_bags" in k)


def load_scorer(path: str | Path) -> torch.jit.ScriptModule:
    import fbgemm_gpu  # noqa: F401  (registers the fbgemm operators the scripted module calls)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")


def score(module: Any, batches) -> tuple[torch.Tensor, torch.Tensor]:
    probs, labels = [], []
    with torch.no_grad():
        for dense, kjt, y in batches:
            probs.append(module(dense, kjt.values(), kjt.lengths()))
            labels.append(y)
    return torch.cat(probs), torch.cat(labels)


def export(ctx: Any, spec: dict[str, Any], checkpoint: Path) -> dict[str, Any]:
    from torchrec.inference.modules import quantize_embeddings

    from mlx_core import StageFailed

    from . import data as D
    from .metrics import auc
    from .model import build_float

    cfg: RecsysConfig = ctx.config
    ck = torch.load(checkpoint, weights_only=True)
    float_model = build_float(cfg, ck["model"])
    keys = list(spec["schema"]["features"])

    float_scorer = Scorer(float_model, keys).eval()
    q_model = quantize_embeddings(build_float(cfg, ck["model"]), dtype=torch.qint8, inplace=True)
    q_scorer = Scorer(q_model, keys).eval()

    out: dict[str, Any] = {}
    for label, module, parts in (("float", float_scorer, FLOAT_FILE), ("int8", q_scorer, MODEL_FILE)):
        with ctx.atomic_path(*parts) as tmp:
            script(module).save(str(tmp))
        out[label] = ctx.path(*parts)

    meta = {
        "inputs": ["dense [B, 13] float32 (log1p of the integer features)", "values [N] int64", "lengths [F*B] int64"],
        "output": "click probability [B]",
        "features": keys,
        "schema": spec["schema"],
        "tables": [t.model_dump() for t in cfg.model.tables],
        "load": "import torch, fbgemm_gpu; m = torch.jit.load(path)",
    }
    with ctx.atomic_path(*META_FILE) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")

    # score both reloaded files on the held-out split
    aucs = {}
    for label in ("float", "int8"):
        p, y = score(load_scorer(out[label]), D.eval_batches(spec, 1024, "val"))
        aucs[label] = auc(p, y)
    f_bytes = table_bytes(float_model.state_dict())
    q_bytes = table_bytes(q_model.state_dict())
    metrics = {
        "float_auc": aucs["float"],
        "int8_auc": aucs["int8"],
        "auc_diff": aucs["int8"] - aucs["float"],
        "float_table_bytes": f_bytes,
        "int8_table_bytes": q_bytes,
        "table_size_ratio": f_bytes / q_bytes,
        "float_file_bytes": out["float"].stat().st_size,
        "int8_file_bytes": out["int8"].stat().st_size,
        "file_size_ratio": out["float"].stat().st_size / out["int8"].stat().st_size,
    }
    ctx.log_metrics(metrics)
    ctx.add_artifact(out["float"], kind="model", format="torchscript", precision="float32", val_auc=aucs["float"])
    ctx.add_artifact(
        out["int8"], kind="model", format="torchscript", precision="int8-rowwise-tables", val_auc=aucs["int8"]
    )
    ctx.add_artifact(ctx.path(*META_FILE), kind="metadata")
    drop = aucs["float"] - aucs["int8"]
    if drop > cfg.export.max_auc_drop:
        raise StageFailed(
            f"int8 export loses {drop:.4f} AUC on the held-out split (limit export.max_auc_drop={cfg.export.max_auc_drop})"
        )
    return {"int8": str(out["int8"]), "float": str(out["float"]), **metrics}
