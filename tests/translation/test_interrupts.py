"""A run SIGKILLed mid-training finishes with ``--from`` from its last complete checkpoint."""

import json

from conftest import ok


def test_sigkill_mid_training_then_from_resumes(killed_run):
    run_dir, killed = killed_run["run_dir"], killed_run["killed"]
    assert killed["stages"]["train"]["status"] == "running"  # the kill left the stage unfinished
    assert "export" not in killed["stages"] or killed["stages"]["export"]["status"] != "completed"

    again = ok(killed_run["resumed"])
    assert again.run_dir == run_dir
    resumed_from = again.data["records"]["resumed_from"]
    step = int(resumed_from.rsplit("-", 1)[1])
    assert step in (6, 12, 18), resumed_from  # an epoch checkpoint saved before the kill, not a fresh start
    err = killed_run["resumed"].stderr
    assert "resuming from" in err and resumed_from.rsplit("/", 1)[1] in err
    assert {s: again.data["stages"][s]["status"] for s in ("train", "export")} == {
        "train": "completed",
        "export": "completed",
    }
    assert {h["step"] for h in again.data["stages"]["train"]["history"]} == {1, 2, 3, 4}
    # the untrained BLEU is the one measured before the kill, not re-measured on a half-trained model
    assert again.data["metrics"]["bleu_untrained"] == killed["metrics"]["bleu_untrained"]
    assert (run_dir / "data" / "corpus.jsonl").read_bytes() == killed_run["corpus"]  # data reused, not regenerated
    checkpoints = run_dir / "train" / "checkpoints"
    state = json.loads((checkpoints / "checkpoint-24" / "trainer_state.json").read_text())
    assert state["global_step"] == 24 and state["epoch"] == 4
    assert len(list(checkpoints.glob("checkpoint-*"))) <= 3  # save_total_limit
