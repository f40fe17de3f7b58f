"""Interrupted training: SIGKILL then ``--from`` resumes from the last complete checkpoint; Ctrl-C is recorded."""

import json
import signal
import sys

from mlx_core.testing import spawn

from .conftest import TINY, device, ok, sets, wait_for_checkpoint


def test_sigkill_mid_training_then_from_resumes(killed_run):
    run_dir, killed = killed_run["run_dir"], killed_run["killed"]
    assert killed["stages"]["train"]["status"] == "running"  # the kill left the stage unfinished
    assert "export" not in killed["stages"] or killed["stages"]["export"]["status"] != "completed"

    again = ok(killed_run["resumed"])
    assert again.run_dir == run_dir
    resumed_from = again.data["records"]["resumed_from"]
    step = int(resumed_from.rsplit("-", 1)[1])
    assert step == 6, resumed_from  # epoch 1's checkpoint, saved before the kill: not a fresh start
    assert not killed["stages"]["train"].get("history")  # killed before epoch 1's row reached run.json
    err = killed_run["resumed"].stderr
    assert "resuming from" in err and resumed_from.rsplit("/", 1)[1] in err
    assert {s: again.data["stages"][s]["status"] for s in ("train", "export")} == {
        "train": "completed",
        "export": "completed",
    }
    # epoch 1's row comes from its checkpoint's trainer_state.json: no epoch is lost, none is twice
    assert [h["step"] for h in again.data["stages"]["train"]["history"]] == [1, 2, 3, 4]
    # the untrained BLEU is the one measured before the kill, not re-measured on a half-trained model
    assert again.data["metrics"]["bleu_untrained"] == killed["metrics"]["bleu_untrained"]
    assert (run_dir / "data" / "corpus.jsonl").read_bytes() == killed_run["corpus"]  # data reused, not regenerated
    checkpoints = run_dir / "train" / "checkpoints"
    state = json.loads((checkpoints / "checkpoint-24" / "trainer_state.json").read_text())
    assert state["global_step"] == 24 and state["epoch"] == 4
    assert len(list(checkpoints.glob("checkpoint-*"))) <= 3  # save_total_limit


def test_ctrl_c_marks_training_interrupted_and_says_how_to_resume(tmp_path):
    cmd = [sys.executable, "-m", "mlx_core", "run", "translation", "train", "--runs-dir", str(tmp_path),
           "--device", device(), *sets(*TINY, "train.epochs=40")]  # fmt: skip
    proc = spawn(cmd)
    try:
        run_dir = wait_for_checkpoint(tmp_path, 6, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    m = json.loads((run_dir / "run.json").read_text())
    assert m["stages"]["train"]["status"] == "interrupted"
    note = next(n for n in m["notes"] if n.startswith("training interrupted"))
    assert f"--from {run_dir}" in note and "checkpoint-" in note
