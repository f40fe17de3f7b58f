"""The criteo preset (a day file, one table per C1..C26) and the memory-mapped parse cache."""

from __future__ import annotations

import json
import os

import pytest
import torch
from mlx_recsys import cache as C
from mlx_recsys import criteo
from mlx_recsys import data as D
from mlx_recsys.config import RecsysConfig

from mlx_core import DataError
from mlx_core import config as cfgmod

from .conftest import line, run_ok

CRITEO = ["model.preset=criteo", "model.table_rows=64", "model.table_dim=8"]


def criteo_schema() -> D.Schema:
    cfg, _ = cfgmod.resolve(RecsysConfig, overrides=CRITEO)
    return D.Schema.from_config(cfg)


def spec_of(path, schema, folder=None) -> dict:
    return {"path": str(path), "on_bad_line": "error", "val_fraction": 0.2, "cache": str(folder) if folder else None,
            "schema": {"features": schema.features, "columns": schema.columns, "rows": schema.rows,
                       "sep": schema.sep}}  # fmt: skip


def same(a, b) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x[0], y[0]) and torch.equal(x[2], y[2]) and x[1].keys() == y[1].keys()
        and torch.equal(x[1].values(), y[1].values()) and torch.equal(x[1].lengths(), y[1].lengths())
        for x, y in zip(a, b, strict=True)
    )  # fmt: skip


def test_preset_makes_one_table_per_column():
    cfg, _ = cfgmod.resolve(RecsysConfig, overrides=[*CRITEO, "model.table_rows=[" + ",".join(["5"] * 25) + ",9]"])
    assert [t.name for t in cfg.model.tables] == [f"t_C{i}" for i in range(1, 27)]
    assert [t.feature_names for t in cfg.model.tables][:2] == [["C1"], ["C2"]]
    assert cfg.model.tables[-1].num_embeddings == 9 and cfg.model.tables[0].embedding_dim == 8
    assert cfg.data.categorical_names == [f"C{i}" for i in range(1, 27)]
    again, _ = cfgmod.resolve(RecsysConfig, base=cfg.model_dump())  # --from: the expanded config reads back
    assert again == cfg
    from mlx_core import ConfigError

    with pytest.raises(ConfigError, match=r"model.table_rows.*expected one number or 26"):
        cfgmod.resolve(RecsysConfig, overrides=[*CRITEO, "model.table_rows=[1,2]"])


def test_day_file_is_parsed_once_into_a_memmap_cache_that_reads_as_the_text(tmp_path, monkeypatch):
    day = tmp_path / "day_0"
    criteo.write_day_file(day, 700, seed=1, missing=0.2)
    schema, stats = criteo_schema(), D.ScanStats()
    folder, built = C.build(day, schema, "error", tmp_path / "cache", stats)
    assert built and stats.good == 700 and (folder / "labels.f32").stat().st_size == 700 * 4
    text, cached = spec_of(day, schema), spec_of(day, schema, folder)
    for rank in (0, 1):  # each rank's share, with empty bags and missing dense cells
        assert same(list(D.train_batches(text, 64, rank, 2)), list(D.train_batches(cached, 64, rank, 2)))
    assert same(list(D.eval_batches(text, 50)), list(D.eval_batches(cached, 50)))
    dense, kjt, _ = next(D.eval_batches(cached, 700))
    assert kjt.keys() == [f"C{i}" for i in range(1, 27)] and int(kjt.values().max()) < 64  # hashed into the table
    assert (dense == 0).any() and 0 in kjt.lengths().tolist()  # missing values: 0 and empty bags
    assert json.loads((folder / "meta.json").read_text())["source"]["size"] == day.stat().st_size

    # the same file again: the cache answers, the text is not parsed
    def no_parse(*a, **k):
        raise AssertionError("parsed again")

    monkeypatch.setattr(D, "parse_line", no_parse)
    again = D.ScanStats()
    assert C.build(day, schema, "error", tmp_path / "cache", again) == (folder, False) and again.good == 700
    monkeypatch.undo()
    # an edited file (new mtime) or another table size is another cache
    other = D.Schema(schema.features, schema.columns, [32] * len(schema.rows), schema.sep)
    assert C.build(day, other, "error", tmp_path / "cache", D.ScanStats())[0] != folder
    os.utime(day, ns=(day.stat().st_atime_ns, day.stat().st_mtime_ns + 10**9))
    assert C.build(day, schema, "error", tmp_path / "cache", D.ScanStats())[0] != folder


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (line()[:-1] + "\textra\n", r"day_0:3: expected 40 tab-separated columns .* got 41"),
        (line(ints=["1"] * 12 + ["7.5"]), r"day_0:3: integer column I13: '7\.5' is not an integer"),
    ],
)
def test_a_bad_day_file_is_one_line_naming_file_and_line(tmp_path, bad, message):
    day = tmp_path / "day_0"
    day.write_text(line() + line("0") + bad)
    with pytest.raises(DataError, match=message) as info:
        C.build(day, criteo_schema(), "error", tmp_path / "cache", D.ScanStats())
    assert "\n" not in str(info.value)
    assert not any((tmp_path / "cache").glob("*/meta.json"))  # no half cache left behind


def test_criteo_preset_trains_from_a_day_file_through_the_cli(tmp_path):
    day = tmp_path / "day_0"
    criteo.write_day_file(day, 600, seed=2)
    _, m = run_ok("train", tmp_path / "runs", *CRITEO, f"data.path={day}", "data.batch_size=64", "train.epochs=2",
                  "model.dense_arch=[8]", "model.over_arch=[8]", f"data.cache_dir={tmp_path / 'cache'}")  # fmt: skip
    assert [t["name"] for t in m["config"]["model"]["tables"]] == [f"t_C{i}" for i in range(1, 27)]
    assert m["records"]["data_cache"]["built"] is True and m["records"]["data_cache"]["examples"] == 600
    assert m["stages"]["train"]["status"] == "completed"
    assert len(list((tmp_path / "cache").glob("*/meta.json"))) == 1
