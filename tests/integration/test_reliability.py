"""Interrupted training, for every installed plugin with a train stage (issue 11).

For each plugin: a small training run is killed hard (SIGKILL) right after its first epoch has
been checkpointed, then ``mlx run P train --from RUN_DIR`` resumes it; its final train metrics must
equal those of an uninterrupted run with the same seed (within the plugin's stated tolerance), and
the weights in its newest checkpoint must be bit-identical to that run's (``WEIGHTS``).
Ctrl-C (SIGINT) must stop cleanly: exit 130, the stage marked ``interrupted``, the lock released.
Two runs started together must get their own directories.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from mlx_core.runs import TEMP_NAME, sha256
from mlx_core.testing import cli, sets, spawn

# plugin -> (overrides for a small training run of at least 3 epochs, tolerance (relative and
# absolute) of the final metrics after a resume; 0.0 means bit-identical). The overrides are
# the plugins' own TINY test configurations with more epochs. multimodal: a WordPiece budget
# below what the questions need makes the `tokenizers` trainer break ties between merges in
# hash order, so two fresh runs get different vocabularies; 400 leaves no merge to choose.
# quant: its LoRA steps take ~15 ms, so 6 epochs (14 steps and an evaluation each) leave the kill
# time to land before the end.
RESUME: dict[str, tuple[list[str], float]] = {
    "custom_ops": (
        ["data.image_size=32", "data.sample_classes=2", "data.sample_per_class=8", "data.sample_valid_per_class=4",
         "model.width=4", "model.stem_channels=8", "model.group_channels=4", "model.kernel_size=3",
         "train.epochs=3", "train.batch_size=8", "export.batch=2"],
        1e-6,
    ),
    "multimodal": (
        ["data.n_train=48", "data.n_val=16", "data.image_size=16", "data.wordpiece_vocab_size=400",
         "model.hidden_size=16", "model.image_layers=1", "model.text_layers=1", "model.patch_size=8",
         "train.epochs=3", "train.batch_size=16"],
        1e-6,
    ),
    "quant": (
        ["model.hidden_size=32", "model.ffn_dim=64", "model.layers=2", "data.documents=24", "data.seq_len=32",
         "data.max_eval_windows=4", "export.latency_repeats=1", "train.epochs=6"],
        1e-6,
    ),
    "recsys": (
        ["data.examples=3000", "data.users=100", "data.products=300", "data.categories=10", "data.batch_size=64",
         'model.tables=[{name="product_table",embedding_dim=8,num_embeddings=512,feature_names=["product","history"]},'
         '{name="user_table",embedding_dim=8,num_embeddings=256,feature_names=["user"]},'
         '{name="category_table",embedding_dim=8,num_embeddings=16,feature_names=["category"]}]',
         "model.dense_arch=[16]", "model.over_arch=[16]", "train.epochs=3"],
        1e-6,
    ),
    "segmentation": (
        ["data.image_size=32", "data.sample_train=8", "data.sample_val=4", "train.batch_size=4", "train.epochs=3"],
        1e-6,
    ),
    "translation": (
        ["data.size=120", "data.vocab_size=150", "model.d_model=32", "model.d_ff=64", "model.num_heads=2",
         "model.num_layers=1", "train.epochs=3", "train.batch_size=16", "train.eval_samples=8",
         "train.generation_max_length=16"],
        1e-6,
    ),
}  # fmt: skip

TIMING = ("time", "seconds", "_s", "per_s", "throughput", "latency", "wall")

# plugin -> (its newest checkpoint: a glob under the run directory, newest = highest number in the
# name; the entry of that file holding the trained weights, None for the whole file). After a
# SIGKILL and --from, these weights must be bit-identical to an uninterrupted run's.
WEIGHTS: dict[str, tuple[str, str | None]] = {
    "custom_ops": ("checkpoints/epoch_*.pdparams", None),  # the Paddle backend (the default)
    "multimodal": ("checkpoints/epoch-*.pt", "model"),
    "quant": ("checkpoints/epoch-*.pt", "model"),  # the LoRA adapters: the only weights it trains and saves
    "recsys": ("checkpoints/last.pt", "model"),
    "segmentation": ("checkpoints/epoch-*.pt", "model"),
    "translation": ("train/checkpoints/checkpoint-*/model.safetensors", None),
}


def final_weights(name: str, run_dir: Path) -> dict[str, object]:
    """The trained weights of the run's newest checkpoint as numpy arrays, by name."""
    import numpy as np

    pattern, key = WEIGHTS[name]
    found = sorted(
        run_dir.glob(pattern), key=lambda p: [int(n) for n in re.findall(r"\d+", str(p.relative_to(run_dir)))]
    )
    assert found, f"{name}: no checkpoint matches {pattern} in {run_dir}"
    path = found[-1]
    if path.suffix == ".pt":
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
    elif path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:  # .pdparams: the run's own Paddle checkpoint (a pickle; see docs/reliability.md)
        import paddle

        state = paddle.load(str(path), return_numpy=True)
    state = state[key] if key else state
    out = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in state.items()}
    assert out, f"{name}: {path} holds no weights"
    return out


def installed() -> set[str]:
    proc = cli("plugins", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    return {r["name"] for r in json.loads(proc.stdout) if r["status"] == "ok"}


CASES = sorted(set(RESUME) & installed())


def mlx(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlx_core", *args]


def wait_for_epoch(runs: Path, name: str, proc: subprocess.Popen, timeout: float = 300) -> Path:
    """The run directory, once its train stage has logged (and so checkpointed) an epoch >= 1
    (some plugins log the untrained model's evaluation as step 0)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"{name} ended before its first epoch was logged: {proc.communicate()[1][-2000:]}"
        for manifest in runs.glob(f"{name}/*/run.json"):
            data = json.loads(manifest.read_text())  # atomic writes: always valid JSON
            if any(row["step"] >= 1 for row in data["stages"].get("train", {}).get("history", [])):
                return manifest.parent
        time.sleep(0.05)
    raise AssertionError(f"{name}: no epoch logged within {timeout} s")


def final_metrics(run_dir: Path) -> dict[str, float]:
    metrics = json.loads((run_dir / "run.json").read_text())["stages"]["train"].get("metrics", {})
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not any(t in k for t in TIMING)
    }


@pytest.mark.parametrize("name", CASES)
def test_sigkill_then_from_matches_uninterrupted_run(name, tmp_path):
    overrides, tolerance = RESUME[name]
    killed = subprocess.Popen(
        mlx("run", name, "train", "--runs-dir", str(tmp_path / "killed"), *sets(*overrides)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    run_dir = wait_for_epoch(tmp_path / "killed", name, killed)
    killed.kill()
    killed.wait(timeout=60)
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["stages"]["train"]["status"] == "running"  # it never got to say otherwise

    resumed = subprocess.run(mlx("run", name, "train", "--from", str(run_dir)), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    train = json.loads((run_dir / "run.json").read_text())["stages"]["train"]
    assert train["status"] == "completed"
    steps = [row["step"] for row in train["history"]]
    # the history survives the kill; a run that started over instead of resuming repeats its steps
    assert steps == sorted(set(steps)), f"{name} restarted training instead of resuming: steps {steps}"

    clean = subprocess.run(
        mlx("run", name, "train", "--runs-dir", str(tmp_path / "clean"), *sets(*overrides)),
        capture_output=True,
        text=True,
    )
    assert clean.returncode == 0, clean.stderr[-3000:]
    clean_dir = Path(clean.stdout.strip().splitlines()[-1])

    got, want = final_metrics(run_dir), final_metrics(clean_dir)
    assert want, f"{name} logged no train metrics"
    assert got.keys() == want.keys()
    for key in want:
        assert math.isclose(got[key], want[key], rel_tol=tolerance, abs_tol=tolerance), (key, got[key], want[key])
    # and the weights themselves: bit-identical, every tensor (docs/reliability.md)
    import numpy as np

    got_w, want_w = final_weights(name, run_dir), final_weights(name, clean_dir)
    assert got_w.keys() == want_w.keys()
    differ = [k for k in want_w if not np.array_equal(got_w[k], want_w[k])]
    assert not differ, f"{name}: {len(differ)} of {len(want_w)} weight tensors differ after resume, e.g. {differ[:3]}"


@pytest.mark.parametrize("name", CASES)
def test_ctrl_c_marks_training_interrupted_and_from_finishes_it(name, tmp_path):
    overrides, _ = RESUME[name]
    proc = spawn(mlx("run", name, "train", "--runs-dir", str(tmp_path), *sets(*overrides)))
    run_dir = wait_for_epoch(tmp_path, name, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # training finished before the signal arrived: nothing to check
        pytest.skip(f"{name} finished its training before Ctrl-C reached it")
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    train = json.loads((run_dir / "run.json").read_text())["stages"]["train"]
    assert train["status"] == "interrupted"
    assert not (run_dir / ".lock").exists()
    logged = [row["step"] for row in train["history"]]
    # a clean stop leaves a checkpoint behind every logged epoch: --from finishes from there
    resumed = subprocess.run(mlx("run", name, "train", "--from", str(run_dir)), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    train = json.loads((run_dir / "run.json").read_text())["stages"]["train"]
    assert train["status"] == "completed"
    steps = [row["step"] for row in train["history"]]
    assert steps[: len(logged)] == logged and steps == sorted(set(steps)), f"{name}: steps {logged} -> {steps}"


@pytest.mark.parametrize("name", CASES)
def test_runs_started_together_get_their_own_directories(name, tmp_path):
    overrides, _ = RESUME[name]
    procs = [
        subprocess.Popen(
            mlx("run", name, "data", "--runs-dir", str(tmp_path), *sets(*overrides)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    dirs = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        dirs.append(Path(out.strip().splitlines()[-1]))
    assert dirs[0] != dirs[1]
    for run_dir in dirs:
        manifest = json.loads((run_dir / "run.json").read_text())
        assert manifest["stages"]["data"]["status"] == "completed"
        for artifact in manifest["artifacts"]:
            path = Path(artifact["path"])
            path = path if path.is_absolute() else run_dir / path
            assert run_dir in path.resolve().parents or not path.is_relative_to(tmp_path), path


# --- kills during export ----------------------------------------------------------------------
# Extra overrides for the export tests: quant's resume case trains 6 epochs so a kill can land
# mid-run; an export needs only a trained adapter.
EXPORT_EXTRA: dict[str, list[str]] = {"quant": ["train.epochs=1"]}
KILL_POLL_S = 0.005


def is_temp(rel: Path) -> bool:
    return any(TEMP_NAME.match(part) for part in rel.parts)


def final_files(run_dir: Path) -> dict[str, Path]:
    """Every file under its final name (not a writer's temporary, not the lock)."""
    return {
        str(p.relative_to(run_dir)): p
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and not is_temp(p.relative_to(run_dir)) and p.name != ".lock"
    }


def whole_file_problem(path: Path) -> str | None:
    """None if ``path`` is a whole file of its format, else what is wrong; ``"unknown"`` for a
    format this check cannot read (those are compared with a complete export instead)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            json.loads(path.read_text())
        elif suffix in (".png", ".jpg"):
            from PIL import Image

            with Image.open(path) as im:
                im.load()
        elif suffix == ".npy":
            import numpy as np

            np.load(path, allow_pickle=False)
        elif suffix in (".pt", ".pt2", ".pth", ".zip"):  # torch.save, TorchScript and torch.export are zips
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
            return None if bad is None else f"zip member {bad} is corrupt"
        elif suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), "np") as fh:
                list(fh.keys())
        elif suffix == ".onnx":
            import onnx

            onnx.load(str(path), load_external_data=False)
        elif suffix == ".pte":
            from executorch.runtime import Runtime

            Runtime.get().load_program(path)
        else:
            return "unknown"
    except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    return None


def export_killed_when(name: str, run_dir: Path, trigger) -> tuple[bool, str]:
    """Start ``mlx run NAME export --from RUN_DIR`` and SIGKILL it the first time ``trigger()``
    holds once its export stage is running; returns (killed, what the trigger saw)."""
    proc = subprocess.Popen(mlx("run", name, "export", "--from", str(run_dir)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    seen = ""
    try:
        while proc.poll() is None:
            stages = json.loads((run_dir / "run.json").read_text())["stages"]
            if stages.get("export", {}).get("status") == "running":
                seen = trigger()
                if seen:
                    proc.kill()
                    break
            time.sleep(KILL_POLL_S)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"{name} export failed on its own: {err[-2000:]}")
    return proc.returncode == -signal.SIGKILL, seen


def temp_writes(folder: Path, skip: str = "") -> str:
    """The final name of a file or folder being written (under a temporary name) in ``folder``,
    other than ``skip``."""
    if not folder.is_dir():
        return ""
    for p in folder.rglob("*"):
        if TEMP_NAME.match(p.name):
            final = p.name[1:].rsplit(".", 2)[0]  # .<final>.<8 chars>.tmp
            if final != skip:
                return final
    return ""


def strace_writes(name: str, run_dir: Path, log: Path) -> subprocess.CompletedProcess | None:
    """Run the export under strace, recording every open and rename (None if strace cannot run here)."""
    if not shutil.which("strace"):
        return None
    probe = subprocess.run(["strace", "-f", "-o", os.devnull, "true"], capture_output=True)
    if probe.returncode != 0:  # ptrace not allowed in this container
        return None
    cmd = ["strace", "-f", "-y", "-qq", "--seccomp-bpf", "-e", "trace=open,openat,creat", "-o", str(log),
           *mlx("run", name, "export", "--from", str(run_dir))]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True)


OPEN_FOR_WRITE = re.compile(r'(?:open|openat|creat)\((?:[^,]*, )?"[^"]*", ([A-Z_|]+).*\) = \d+<(?P<path>[^>]+)>$')


def writes_under_final_names(log: Path, run_dir: Path) -> list[str]:
    """Paths in ``run_dir`` that some process opened for writing under their final name."""
    root = str(run_dir.resolve())
    bad = set()
    for line in log.read_text(errors="replace").splitlines():
        m = OPEN_FOR_WRITE.search(line)
        if not m or not any(f in m.group(1) for f in ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")):
            continue
        path = Path(m.group("path"))
        if not str(path).startswith(root + os.sep):
            continue
        rel = path.relative_to(root)
        if not is_temp(rel) and rel.name != ".lock":
            bad.add(str(rel))
    return sorted(bad)


@pytest.mark.parametrize("name", CASES)
def test_export_killed_at_any_moment_leaves_only_whole_files(name, tmp_path):
    """SIGKILL the export (1) in the middle of its first file, (2) in the middle of a later one;
    after each kill every file under a final name must be whole and ``run.json`` valid. Then an
    export under strace completes, removes what the kills left, and never opened a file of the
    run directory for writing under its final name: so no instant of a kill can leave half a file."""
    trained = subprocess.run(
        mlx("run", name, "train", "--runs-dir", str(tmp_path), *sets(*RESUME[name][0], *EXPORT_EXTRA.get(name, []))),
        capture_output=True, text=True,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    run_dir = Path(trained.stdout.strip().splitlines()[-1])
    before = {rel: p.read_bytes() for rel, p in final_files(run_dir).items() if rel != "run.json"}
    export_dir = run_dir / "export"

    first = {"name": ""}
    unknown: dict[str, bytes] = {}
    kills = 0
    for label in ("first write", "later write"):
        killed, seen = export_killed_when(name, run_dir, lambda: temp_writes(export_dir, skip=first["name"]))
        first["name"] = first["name"] or seen
        kills += killed
        manifest = json.loads((run_dir / "run.json").read_text())  # valid JSON after any kill
        status = manifest["stages"]["export"]["status"]
        assert status == ("running" if killed else "completed"), (label, status)
        for rel, path in final_files(run_dir).items():
            if before.get(rel) == path.read_bytes() or rel == "run.json":
                continue
            problem = whole_file_problem(path)
            if problem == "unknown":
                unknown[rel] = path.read_bytes()
            else:
                assert problem is None, f"{name}: killed during {label} ({seen}): {rel} is not whole: {problem}"

    assert kills, f"{name}: no kill landed during export (it wrote nothing under a temporary name?)"

    log = tmp_path / "strace.log"
    done = strace_writes(name, run_dir, log)
    if done is None:
        done = subprocess.run(mlx("run", name, "export", "--from", str(run_dir)), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["stages"]["export"]["status"] == "completed"
    assert not [p for p in run_dir.rglob("*") if is_temp(p.relative_to(run_dir))], "partial files left behind"
    # every registered artifact is the whole file its manifest entry describes
    for art in manifest["artifacts"]:
        path = run_dir / art["path"] if not Path(art["path"]).is_absolute() else Path(art["path"])
        if path.is_file():
            assert sha256(path) == art["sha256"], f"{art['path']} differs from its manifest entry"
    # files this check cannot parse must be what a complete export writes (all are deterministic)
    for rel, data in unknown.items():
        assert (run_dir / rel).read_bytes() == data, f"{name}: {rel} after a kill differs from a complete export"
    if log.exists():
        in_place = writes_under_final_names(log, run_dir)
        assert not in_place, f"{name} wrote these under their final names (not atomically): {in_place}"
    else:
        pytest.skip("strace is not usable here: the write audit did not run (the kill checks did)")
