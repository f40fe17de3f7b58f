"""Typed plugin configs: defaults in a pydantic model, a TOML file and ``--set a.b=value`` on top.

Plugins subclass ``Section`` for their config and its stage groups::

    class TrainConfig(Section):
        epochs: int = Field(3, ge=1, description="passes over the training split")

    class MyConfig(Section):
        seed: int = 0
        train: TrainConfig = Field(default_factory=TrainConfig)
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

import tomllib
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError


class Section(BaseModel):
    """Base for plugin configs: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def parse_value(text: str) -> Any:
    """A ``--set`` value: TOML syntax when it parses (``3``, ``0.1``, ``true``, ``[1, 2]``,
    ``"quoted"``), otherwise the raw string (``executorch``, ``/data/voc``)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_override(item: str) -> tuple[list[str], Any]:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"invalid --set {item!r}: expected KEY=VALUE, e.g. train.epochs=3")
    return key.split("."), parse_value(value.strip())


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def set_path(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    for k in keys[:-1]:
        node = tree.get(k)
        if not isinstance(node, dict):
            node = tree[k] = {}
        tree = node
    tree[keys[-1]] = value


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every settable dotted key of a config class."""
    out: list[str] = []
    for name, f in model.model_fields.items():
        sub = _submodel(f.annotation)
        if sub is not None:
            out.extend(field_paths(sub, f"{prefix}{name}."))
        else:
            out.append(f"{prefix}{name}")
    return out


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def describe(model: type[BaseModel], prefix: str = "") -> list[dict[str, Any]]:
    """The schema as rows (key, type, default, description, constraints) for ``plugins info``."""
    rows: list[dict[str, Any]] = []

    def walk(cls: type[BaseModel], inst: BaseModel, prefix: str) -> None:
        for name, f in cls.model_fields.items():
            sub = _submodel(f.annotation)
            value = getattr(inst, name)
            if sub is not None:
                walk(sub, value, f"{prefix}{name}.")
                continue
            constraints = [str(m) for m in f.metadata]
            rows.append(
                {
                    "key": f"{prefix}{name}",
                    "type": _type_name(f.annotation),
                    "default": value.model_dump() if isinstance(value, BaseModel) else value,
                    "description": f.description or "",
                    "constraints": ", ".join(constraints),
                }
            )

    walk(model, model(), prefix)
    return rows


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{args}]" if name not in ("Union", "UnionType") else args.replace(", ", " | ")
    return getattr(annotation, "__name__", str(annotation))


def _is_number_field(annotation: Any) -> bool:
    """``int``/``float`` (or an optional/union of them) without ``bool`` among the choices."""
    if annotation in (int, float):
        return True
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_number_field(args[0])
    if origin in (typing.Union, types.UnionType) and args:
        return all(_is_number_field(a) for a in args)
    return False


def bool_for_number(model: type[BaseModel], tree: dict[str, Any], prefix: str = "") -> tuple[str, bool] | None:
    """The first key of ``tree`` that gives ``true``/``false`` to a number field of ``model``.

    pydantic's lax mode reads ``True`` as ``1``/``1.0``, so ``--set seed=true`` would quietly
    become a seed of 1; a boolean where a number is expected is a mistake, not a number."""
    for name, f in model.model_fields.items():
        if name not in tree:
            continue
        value, sub = tree[name], _submodel(f.annotation)
        if sub is not None and isinstance(value, dict):
            found = bool_for_number(sub, value, f"{prefix}{name}.")
            if found:
                return found
        elif isinstance(value, bool) and _is_number_field(f.annotation):
            return f"{prefix}{name}", value
    return None


def _reject_bool_for_number(
    model: type[BaseModel], tree: dict[str, Any], sources: dict[str, str], prefix: str = ""
) -> None:
    found = bool_for_number(model, tree)
    if found:
        key, value = found
        src = sources.get(key.split(".")[0], "config")
        expected = _type_name(_field_annotation(model, key))
        raise ConfigError(
            f"invalid value {str(value).lower()} for config key {prefix + key!r} in {src}: expected a number ({expected}), not a boolean"
        )


def _field_annotation(model: type[BaseModel], key: str) -> Any:
    *parents, last = key.split(".")
    for part in parents:
        model = _submodel(model.model_fields[part].annotation)  # type: ignore[assignment]
    return model.model_fields[last].annotation


def _closest(key: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(key, choices, n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else ""


def validation_message(exc: ValidationError, model: type[BaseModel], source: str, prefix: str = "") -> str:
    """One line for the first error of a pydantic ValidationError."""
    err = exc.errors()[0]
    key = prefix + ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown config key {key!r} in {source}{_closest(key, [prefix + p for p in field_paths(model)])}"
    if err["type"] == "missing":
        return f"missing config key {key!r} in {source}"
    given = err.get("input")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"invalid value {given!r} for config key {key!r} in {source}: {err['msg']}{more}"


def resolve(
    model: type[BaseModel],
    base: dict[str, Any] | None = None,
    file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    options: dict[str, type[BaseModel]] | None = None,
) -> tuple[BaseModel, dict[str, BaseModel]]:
    """Validate defaults <- ``base`` (an earlier run's config) <- TOML ``file`` <- ``overrides``.

    Top-level keys named after a cross-cutting plugin in ``options`` (``quant.scheme=...``) are
    validated against that plugin's options class instead. Returns (config, options).
    """
    options = options or {}
    tree: dict[str, Any] = dict(base or {})
    sources: dict[str, str] = {}
    if file is not None:
        loaded = load_toml(file)
        if "launch" not in model.model_fields:  # the core's [launch] table (mlx_core.launch), not the plugin's
            loaded.pop("launch", None)
        tree = merge(tree, loaded)
        sources.update({k: f"config file {file}" for k in loaded})
    for item in overrides:
        keys, value = parse_override(item)
        set_path(tree, keys, value)
        sources.setdefault(keys[0], "--set")
        if keys[0] in sources and sources[keys[0]] != "--set":
            sources[keys[0]] = f"{sources[keys[0]]} / --set"

    own = set(model.model_fields)
    opt_values: dict[str, BaseModel] = {}
    for name, cls in options.items():
        if name in own:
            continue
        section = tree.pop(name, {})
        src = sources.get(name, "--set")
        if not isinstance(section, dict):
            raise ConfigError(
                f"invalid value {section!r} for config key {name!r} in {src}: expected a table of {name} options"
            )
        _reject_bool_for_number(cls, section, {k: src for k in section}, prefix=f"{name}.")
        try:
            opt_values[name] = cls.model_validate(section)
        except ValidationError as exc:
            raise ConfigError(validation_message(exc, cls, src, prefix=f"{name}.")) from None
    _reject_bool_for_number(model, tree, sources)
    try:
        cfg = model.model_validate(tree)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        src = sources.get(str(loc[0]) if loc else "", "config")
        raise ConfigError(validation_message(exc, model, src)) from None
    return cfg, opt_values
