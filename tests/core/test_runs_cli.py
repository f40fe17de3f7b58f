"""`mlx runs list/show/diff/verify/gc/report`: reading run.json back (mlx_core.runsdb, cli_runs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mlx_core.runs import atomic_write_json, run_lock
from mlx_core.testing import cli, one_line_error

from .conftest import manifest


def _run(runs: Path, *sets: str, stage: str = "export") -> Path:
    args = [x for s in ("train.epochs=30", *sets) for x in ("--set", s)]
    proc = cli("run", "linreg", stage, "--runs-dir", str(runs), *args)
    assert proc.returncode in (0, 2), proc.stderr
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("run "))
    return Path(line[4:].strip())


def _as(src: Path, runs: Path, plugin: str, run_id: str, **changes) -> Path:
    """A copy of a real run's folder presented as another plugin's run (run.json is all mlx runs reads)."""
    dst = runs / plugin / run_id
    shutil.copytree(src, dst)
    data = manifest(dst)
    data.update(plugin=plugin, id=run_id, **changes)
    atomic_write_json(dst / "run.json", data)
    return dst


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, Path]:
    """Runs of three plugins: completed, failed, interrupted, killed and one truncated run.json."""
    runs = tmp_path_factory.mktemp("zoo") / "runs"
    good = _run(runs)
    bad = _run(runs, "data.path=/nonexistent/points.csv")
    seg = _as(good, runs, "segmentation", "20260101-000000-aaaaaa", created="2026-01-01T00:00:00.000+00:00")
    data = manifest(seg)
    data["stages"]["train"]["status"] = "interrupted"
    data["stages"]["export"] = {"status": "pending"}
    data["status"] = "interrupted"
    data["metrics"]["val_miou"] = 0.7
    atomic_write_json(seg / "run.json", data)
    rec = _as(good, runs, "recsys", "20260102-000000-bbbbbb", status="running", created="2026-01-02T00:00:00.000+00:00")
    cut = _as(good, runs, "recsys", "20260103-000000-cccccc")
    text = (cut / "run.json").read_text()
    (cut / "run.json").write_text(text[: len(text) // 2])
    return {"runs": runs, "good": good, "bad": bad, "seg": seg, "killed": rec, "cut": cut}


def _rows(runs: Path, *args: str) -> list[dict]:
    proc = cli("runs", "list", "--runs-dir", str(runs), "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_list_shows_three_plugins_failed_interrupted_killed_and_unreadable(zoo):
    rows = {r["id"]: r for r in _rows(zoo["runs"])}
    assert {r["plugin"] for r in rows.values()} == {"linreg", "segmentation", "recsys"}
    assert rows[zoo["good"].name]["status"] == "completed"
    assert rows[zoo["good"].name]["stages"] == dict.fromkeys(("data", "model", "train", "export"), "completed")
    assert rows[zoo["good"].name]["parity"] == "max diff 0"
    assert rows[zoo["good"].name]["headline"] == {"val_mse": pytest.approx(manifest(zoo["good"])["metrics"]["val_mse"])}
    assert rows[zoo["bad"].name]["status"] == "failed" and "nonexistent" in rows[zoo["bad"].name]["error"]
    assert rows[zoo["seg"].name]["status"] == "interrupted"
    assert rows[zoo["killed"].name]["status"] == "killed"  # says running, but no process holds its lock
    cut = rows[zoo["cut"].name]
    assert cut["status"] == "unreadable" and "not valid JSON" in cut["reason"]
    text = cli("runs", "list", "--runs-dir", str(zoo["runs"]))
    assert text.returncode == 0, text.stderr
    assert "unreadable" in text.stdout and "not valid JSON" in text.stdout and "segmentation" in text.stdout


def test_list_filters_sorts_and_limits(zoo):
    runs = zoo["runs"]
    assert [r["plugin"] for r in _rows(runs, "--plugin", "segmentation")] == ["segmentation"]
    assert [r["id"] for r in _rows(runs, "--status", "failed")] == [zoo["bad"].name]
    assert [r["id"] for r in _rows(runs, "--status", "unreadable")] == [zoo["cut"].name]
    assert [r["id"] for r in _rows(runs, "--where", "val_miou>0.6")] == [zoo["seg"].name]
    assert _rows(runs, "--where", "val_miou>0.75") == []
    both = _rows(runs, "--where", "config.train.epochs>=30", "--where", "plugin=linreg")
    assert {r["id"] for r in both} == {zoo["good"].name, zoo["bad"].name}
    assert _rows(runs, "--where", "config.train.epochs>30") == []
    recent = {r["id"] for r in _rows(runs, "--where", "started>=2026-06-01")}  # text compares as text
    assert recent == {zoo["good"].name, zoo["bad"].name}
    ids = [r["id"] for r in _rows(runs)]  # newest first; unreadable (no start time) last
    assert ids[0] == zoo["bad"].name and ids[-1] == zoo["cut"].name
    assert [r["id"] for r in _rows(runs, "--sort", "started", "--limit", "1")] == [zoo["seg"].name]
    assert [r["id"] for r in _rows(runs, "--sort", "-val_miou", "--limit", "2")][0] == zoo["seg"].name


def test_where_and_sort_reject_bad_input_in_one_line(zoo):
    for args, named in (
        (["--where", "val_miou"], "val_miou"),
        (["--where", "val_miou>"], "val_miou>"),
        (["--where", "__import__('os')"], "__import__"),
        (["--sort", "no_such_metric"], "no_such_metric"),
        (["--limit", "-1"], "-1"),
    ):
        proc = cli("runs", "list", "--runs-dir", str(zoo["runs"]), *args)
        assert named in one_line_error(proc), args


def test_show_names_config_versions_stages_and_artifacts_with_sha256(zoo):
    run = zoo["good"]
    proc = cli("runs", "show", run.name, "--runs-dir", str(zoo["runs"]))
    assert proc.returncode == 0, proc.stderr
    data = manifest(run)
    art = next(a for a in data["artifacts"] if a["path"] == "export/model.json")
    for text in ("train.epochs = 30", "mlx-core", art["sha256"], str(art["size"]), "export/model.json", "completed"):
        assert text in proc.stdout, text
    shown = json.loads(cli("runs", "show", str(run), "--json").stdout)
    assert shown["artifacts"] == data["artifacts"] and shown["status"] == "completed"
    assert "unreadable" in one_line_error(cli("runs", "show", str(zoo["cut"])))
    assert "no run 'nope'" in one_line_error(cli("runs", "show", "nope", "--runs-dir", str(zoo["runs"])))


def test_run_ids_resolve_by_unique_prefix_and_ambiguity_is_named(zoo):
    proc = cli("runs", "show", "20260101", "--runs-dir", str(zoo["runs"]), "--json")
    assert json.loads(proc.stdout)["id"] == zoo["seg"].name
    assert "ambiguous" in one_line_error(cli("runs", "show", "2026", "--runs-dir", str(zoo["runs"])))


def test_diff_and_verify_on_an_artifact_changed_by_one_byte(tmp_path):
    runs = tmp_path / "runs"
    a = _run(runs)
    b = _run(runs, "train.lr=0.05")
    model = b / "export" / "model.json"
    raw = bytearray(model.read_bytes())
    raw[-2] = ord("0") if raw[-2] != ord("0") else ord("1")  # one byte, same size
    model.write_bytes(bytes(raw))

    ok = cli("runs", "verify", str(a))
    assert ok.returncode == 0, ok.stderr
    bad = cli("runs", "verify", str(b))
    assert bad.returncode == 1, bad.stderr
    assert "export/model.json" in bad.stderr and "changed" in bad.stderr and "Traceback" not in bad.stderr
    (b / "data" / "points.csv").unlink()
    gone = json.loads(cli("runs", "verify", str(b), "--json").stdout)
    assert {r["path"]: r["status"] for r in gone["artifacts"]} == {
        "data/points.csv": "missing",
        "export/model.json": "changed",
    }

    proc = cli("runs", "diff", str(a), str(b), "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["config"] == [{"key": "train.lr", "a": 0.1, "b": 0.05}]
    assert {m["key"] for m in d["metrics"]} >= {"val_mse", "w", "b"}
    w = next(m for m in d["metrics"] if m["key"] == "w")
    assert w["delta"] == pytest.approx(w["b"] - w["a"])
    assert d["versions"] == []
    assert {x["key"] for x in d["artifacts"]} == {"export/model.json", "data/points.csv"}
    assert next(x for x in d["artifacts"] if x["key"] == "data/points.csv")["b"] == "missing"
    text = cli("runs", "diff", str(a), str(b))
    assert "train.lr" in text.stdout and "export/model.json" in text.stdout and "versions: no difference" in text.stdout


def test_gc_keeps_the_newest_and_never_a_run_whose_lock_is_held(tmp_path):
    runs = tmp_path / "runs"
    old, held, newest = (_run(runs, stage="data") for _ in range(3))
    other = _run(runs, stage="data")
    moved = runs / "other" / other.name
    moved.parent.mkdir()
    other.rename(moved)
    cut = runs / "linreg" / "00000000-000000-000000"  # sorts oldest, but cannot be dated: kept
    shutil.copytree(old, cut)
    (cut / "run.json").write_text("{")
    with run_lock(held):
        listed = {r["id"]: r["status"] for r in _rows(runs)}
        assert listed[held.name] == "running"
        dry = json.loads(cli("runs", "gc", "--keep", "1", "--runs-dir", str(runs), "--dry-run", "--json").stdout)
        assert dry["deleted"] == [str(old)] and old.exists()
        proc = cli("runs", "gc", "--keep", "1", "--runs-dir", str(runs), "--json")
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
    assert result["deleted"] == [str(old)] and not old.exists()
    assert result["running"] == [str(held)] and held.exists() and newest.exists() and moved.exists()
    assert result["unreadable"] == [str(cut)] and cut.exists()
    assert not [p for p in (runs / "linreg").iterdir() if p.name.startswith(".")]  # no leftover temp folder
    proc = cli("runs", "gc", "--keep", "0", "--plugin", "other", "--runs-dir", str(runs), "--json")
    assert json.loads(proc.stdout)["deleted"] == [str(moved)] and held.exists()
    assert "--keep -1" in one_line_error(cli("runs", "gc", "--keep", "-1", "--runs-dir", str(runs)))


def test_runs_dir_comes_from_mlx_runs_dir(zoo):
    proc = cli("runs", "list", "--json", env={"MLX_RUNS_DIR": str(zoo["runs"])})
    assert {r["id"] for r in json.loads(proc.stdout)} >= {zoo["good"].name, zoo["cut"].name}


# --- report ------------------------------------------------------------------------------------
def test_report_is_one_self_contained_page_with_curves_and_tables(zoo, tmp_path):
    out = tmp_path / "report.html"
    proc = cli("runs", "report", str(zoo["good"]), str(zoo["bad"]), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert "<script" not in page and "src=" not in page and "href=" not in page and "@import" not in page
    assert page.count("<svg") == 1 and "<polyline" in page  # the only stepped metric: train_mse
    assert "train_mse" in page and "export/model.json" in page and "max_abs_diff=0" in page
    assert "#1f77b4" in page  # the first run's colour
    assert "unreadable" in one_line_error(cli("runs", "report", str(zoo["cut"]), "-o", str(tmp_path / "x.html")))
    assert not (tmp_path / "x.html").exists()


def _screenshot(page: Path, png: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={png}",
            "--window-size=1200,900",
            page.resolve().as_uri(),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert png.exists(), proc.stderr[-2000:]


def _plot_area(img, background: str) -> tuple[int, int, int, int]:
    """The bounding box of the pixels in the plot area's own fill colour."""
    import numpy as np

    rgb = np.array([int(background[i : i + 2], 16) for i in (1, 3, 5)])
    arr = np.asarray(img.convert("RGB")).astype(int)
    ys, xs = np.nonzero((np.abs(arr - rgb) <= 2).all(axis=-1))
    assert len(xs) > 10_000, "no plot area on the screenshot"
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _count(img, colour: str, box: tuple[int, int, int, int], tol: int = 40) -> int:
    import numpy as np

    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    left, top, right, bottom = box
    arr = np.asarray(img.convert("RGB")).astype(int)[top:bottom, left:right]
    return int((np.abs(arr - rgb) <= tol).all(axis=-1).sum())


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="needs chromium")
def test_report_renders_the_overlaid_curves_in_headless_chromium(tmp_path):
    from PIL import Image

    from mlx_core.report import PALETTE, PLOT_BACKGROUND

    runs = tmp_path / "runs"
    a, b = _run(runs, "train.epochs=60"), _run(runs, "train.epochs=60", "train.lr=0.03")
    html = tmp_path / "report.html"
    assert cli("runs", "report", str(a), str(b), "-o", str(html)).returncode == 0
    png = tmp_path / "report.png"
    _screenshot(html, png)
    img = Image.open(png)
    box = _plot_area(img, PLOT_BACKGROUND)
    counts = [_count(img, c, box) for c in PALETTE[:2]]
    assert all(n > 300 for n in counts), (box, counts)  # a curve of each run inside the plot area
    blank = tmp_path / "blank.html"
    blank.write_text(html.read_text().replace(PALETTE[0], "#ffffff").replace(PALETTE[1], "#ffffff"))
    _screenshot(blank, tmp_path / "blank.png")  # the check itself: without the curves it finds none
    assert [_count(Image.open(tmp_path / "blank.png"), c, box) for c in PALETTE[:2]] == [0, 0]
    if os.environ.get("MLX_TEST_SCREENSHOT"):  # where to keep the screenshot for a person to look at
        shutil.copy(png, os.environ["MLX_TEST_SCREENSHOT"])
