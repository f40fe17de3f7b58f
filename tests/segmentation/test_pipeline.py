"""End to end through the CLI with tiny configs: export parity, predict, resume with --from."""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from mlx_core.testing import cli

from .seg_helpers import DEVICE, run, run_dir_of

FORMATS = {"executorch": "model.pte", "torchscript": "model.pt", "onnx": "model.onnx"}


def manifest(run_dir):
    return json.loads((run_dir / "run.json").read_text())


def test_export_writes_every_format_with_parity_recorded(exported_run):
    m = manifest(exported_run)
    assert m["status"] == "completed"
    assert all(m["stages"][s]["status"] == "completed" for s in ("data", "model", "train", "export"))
    models = {a["format"]: a for a in m["artifacts"] if a["stage"] == "export" and a["kind"] == "model"}
    assert set(models) == set(FORMATS)
    for fmt, name in FORMATS.items():
        art = models[fmt]
        assert art["path"].endswith(name) and art["size"] > 100_000 and len(art["sha256"]) == 64
        assert 0 <= art["max_abs_diff"] <= 1e-3 and art["mask_agreement"] >= 0.999 and art["parity_ok"]
        assert m["stages"]["export"]["metrics"][f"{fmt}_max_abs_diff"] == art["max_abs_diff"]
    assert models["executorch"]["runtime"].startswith("executorch.runtime")
    assert (exported_run / "export" / FORMATS["executorch"]).read_bytes()[4:8] == b"ET12"  # flatbuffer identifier
    info = json.loads((exported_run / "export" / "model_info.json").read_text())
    # the ASPP map is 2x2 at 32x32: its dilated convolutions were exported as their centre taps,
    # and the parity above was measured against the original model
    aspp = [r for r in info["rewrites"] if ".convs." in r["module"]]
    assert {r["dilation"][0] for r in aspp} == {12, 24, 36} and all(r["kind"] == "centre tap" for r in aspp)
    assert info["input"]["shape"] == [1, 3, 32, 32] and info["output"]["shape"] == [1, 21, 32, 32]
    assert info["trained"] is True and len(info["classes"]) == 21
    overlay = Image.open(exported_run / "export" / "sample_overlay.png")
    assert overlay.format == "PNG" and overlay.mode == "RGB"
    assert (exported_run / "train" / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert m["records"]["model"]["arch"] == "deeplabv3_mobilenet_v3_large"
    notes = " ".join(m["notes"])
    assert "random init" in notes and "trained from random init" in notes


def test_exported_runtimes_agree_with_eager_on_a_new_image(exported_run):
    """Reload each artifact with its own runtime and compare with the eager model from the checkpoint."""
    import torch
    from mlx_segmentation.data import eval_transform, load_image
    from mlx_segmentation.model import LogitsOnly, build
    from mlx_segmentation.runtimes import load

    ckpt = sorted((exported_run / "checkpoints").glob("epoch-*.pt"))[-1]
    model = build("deeplabv3_mobilenet_v3_large", 21, False)
    model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    net = LogitsOnly(model).eval()
    image = load_image(sorted((exported_run / "data/voc-sample/JPEGImages").glob("*.jpg"))[-1])
    x, _ = eval_transform(image, None, 32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)[None]).numpy()
    for fmt, name in FORMATS.items():
        out = load(fmt, exported_run / "export" / name)(x[None])
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() < 1e-3, fmt


def test_parity_failure_fails_the_stage(exported_run, tmp_path):
    """A tolerance below the drift measured for an exported format makes export fail with
    StageFailed: exit 1, the format named, the stage recorded as failed."""
    m = manifest(exported_run)
    measured = {
        a["format"]: a["max_abs_diff"] for a in m["artifacts"] if a["stage"] == "export" and a["kind"] == "model"
    }
    fmt, diff = max(measured.items(), key=lambda kv: kv[1])
    # XNNPACK and ONNX Runtime sum floats in another order than eager PyTorch (README: ~5e-6)
    assert diff > 0, measured
    run_dir = shutil.copytree(exported_run, tmp_path / "run")  # the shared run stays as it was
    proc = cli(
        "run", "segmentation", "export", "--from", str(run_dir), "--device", DEVICE,
        "--set", f"export.max_abs_diff={diff / 2!r}", "--set", f'export.formats=["{fmt}"]',
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and f"export parity check failed for {fmt}: max |logit diff|" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    m = manifest(run_dir)
    assert m["stages"]["export"]["status"] == "failed"
    assert "parity check failed" in m["stages"]["export"]["error"]


def test_predict_writes_mask_and_overlay_pngs(exported_run, tmp_path):
    image = Image.new("L", (45, 30), 128)  # grayscale input: converted, not rejected
    path = tmp_path / "gray.png"
    image.save(path)
    sample = sorted((exported_run / "data/voc-sample/JPEGImages").glob("*.jpg"))[0]
    for fmt in ("onnx", "executorch"):
        proc = cli("predict", "segmentation", str(exported_run), str(sample), str(path), "--json", "--device", DEVICE,
                   "--set", f"predict.format={fmt}")  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        rows = json.loads(proc.stdout)
        assert [r["format"] for r in rows] == [fmt, fmt]
        for row, size in zip(rows, [Image.open(sample).size, (45, 30)], strict=True):
            overlay, mask = Image.open(row["overlay"]), Image.open(row["mask"])
            assert overlay.format == "PNG" and overlay.size == size
            assert mask.mode == "P" and mask.size == size
            assert set(np.unique(np.array(mask)).tolist()) <= set(range(21))


def test_resume_from_adds_epochs_from_the_last_checkpoint(tmp_path):
    first = run("train", tmp_path / "runs")
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = run_dir_of(first)
    assert [p.name for p in sorted((run_dir / "checkpoints").glob("*.pt"))] == ["epoch-001.pt"]
    again = cli("run", "segmentation", "train", "--from", str(run_dir), "--device", DEVICE, "--set", "train.epochs=2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from checkpoints/epoch-001.pt" in again.stderr
    assert "reusing the sample data" in again.stderr
    m = manifest(run_dir)
    assert m["records"]["resumed_from_epoch"] == 1
    assert m["stages"]["train"]["metrics"]["epochs"] == 2
    assert [p.name for p in sorted((run_dir / "checkpoints").glob("*.pt"))] == ["epoch-001.pt", "epoch-002.pt"]
    state = __import__("torch").load(run_dir / "checkpoints" / "epoch-002.pt", weights_only=True)
    assert [h["epoch"] for h in state["history"]] == [0, 1, 2]
