from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field

from mlx_core import ConfigError, Section
from mlx_core.config import describe, field_paths, parse_override, parse_value, resolve


class Train(Section):
    epochs: int = Field(3, ge=1, description="epochs")
    lr: float = Field(0.1, gt=0, description="lr")
    name: str = Field("x", description="a name")


class Cfg(Section):
    seed: int = 0
    train: Train = Field(default_factory=Train)


class Opts(Section):
    scheme: str = "none"


def test_parse_value_types():
    assert parse_value("3") == 3
    assert parse_value("0.5") == 0.5
    assert parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value('"3"') == "3"
    assert parse_value("/data/voc") == "/data/voc"
    assert parse_value("executorch") == "executorch"


@given(st.integers())
def test_parse_value_integers_roundtrip(n):
    assert parse_value(str(n)) == n


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_parse_override_never_crashes_and_keeps_text(value):
    keys, parsed = parse_override(f"train.name={value}")
    assert keys == ["train", "name"]
    if isinstance(parsed, str) and parsed != value.strip():
        # only TOML strings are unquoted
        assert value.strip()[0] in "\"'"


@given(st.sampled_from(["", "=", ".a=1", "a..b=1", "a.=1", "noequals"]))
def test_bad_override_is_config_error(item):
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override(item)


def test_resolve_layers_base_file_and_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("seed = 4\n[train]\nepochs = 7\n")
    cfg, opts = resolve(
        Cfg,
        base={"train": {"lr": 0.5}},
        file=f,
        overrides=["train.epochs=9", "quant.scheme=int8"],
        options={"quant": Opts},
    )
    assert (cfg.seed, cfg.train.epochs, cfg.train.lr) == (4, 9, 0.5)
    assert opts["quant"].scheme == "int8"


def test_resolve_error_names_key_and_source(tmp_path):
    with pytest.raises(ConfigError, match=r"'train.epochs' in --set"):
        resolve(Cfg, overrides=["train.epochs=abc"])


def test_schema_rows():
    rows = {r["key"]: r for r in describe(Cfg)}
    assert set(rows) == set(field_paths(Cfg)) == {"seed", "train.epochs", "train.lr", "train.name"}
    assert rows["train.lr"]["default"] == 0.1 and "gt=0" in rows["train.lr"]["constraints"]


class Numbers(Section):
    flag: bool = False
    maybe: int | None = None
    either: int | str = 0
    train: Train = Field(default_factory=Train)


@pytest.mark.parametrize(
    "item, key", [("seed=true", "'seed'"), ("train.lr=false", "'train.lr'"), ("train.epochs=true", "'train.epochs'")]
)
def test_boolean_for_a_number_is_an_error(item, key):
    with pytest.raises(ConfigError) as exc:
        resolve(Cfg, overrides=[item])
    msg = str(exc.value)
    assert key in msg and "--set" in msg and "not a boolean" in msg


def test_boolean_for_a_number_in_a_config_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nlr = true\n")
    with pytest.raises(
        ConfigError, match=r"'train.lr' in config file .*c.toml: expected a number \(float\), not a boolean"
    ):
        resolve(Cfg, file=path)


def test_boolean_for_an_optional_number_is_an_error_and_booleans_stay_allowed():
    with pytest.raises(ConfigError, match="'maybe'"):
        resolve(Numbers, overrides=["maybe=true"])
    # a bool field, and a union that admits more than numbers, take true as before
    cfg, _ = resolve(Numbers, overrides=["flag=true", "either=true", "train.epochs=2"])
    assert cfg.flag is True and cfg.train.epochs == 2


def test_boolean_for_a_number_option_is_an_error():
    class NumOpts(Section):
        bits: int = 8

    with pytest.raises(ConfigError, match="'quant.bits'"):
        resolve(Cfg, overrides=["quant.bits=true"], options={"quant": NumOpts})
