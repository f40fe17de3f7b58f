"""Search spaces of ``mlx sweep``: ``--space KEY=DIST(ARGS)`` parsed and checked against the plugin's
config schema before any trial runs, and ``--space-from-schema KEY`` derived from a field's bounds.

Distributions and the field types they fit (anything else is one line, exit 2):

    uniform(a, b)      float fields (linear scale)
    loguniform(a, b)   float fields, 0 < a < b (log scale: learning rates)
    int(a, b)          int fields, and float fields (an integer is a valid float)
    choice(v1, v2...)  any field whose values are numbers, strings or booleans (Literal, bool, str...)

Both ends of a range and every choice are validated like ``--set KEY=VALUE`` on top of the
sweep's own ``--config`` / ``--set``: a range outside the field's ``ge``/``gt``/``le``/``lt`` or a
choice outside its ``Literal`` names the value and the rule it breaks. No Optuna import here.
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass
from typing import Any

import tomllib
from pydantic import BaseModel, ValidationError

from . import config as cfgmod
from .errors import UsageError

KINDS = ("uniform", "loguniform", "int", "choice")
_SPEC = re.compile(r"^\s*(?P<key>[^=\s]+)\s*=\s*(?P<kind>[A-Za-z_]+)\s*\((?P<args>.*)\)\s*$", re.S)
_PRIMITIVE = (bool, int, float, str)


@dataclass(frozen=True)
class Dim:
    """One dimension of a search space."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Any, ...] = ()

    @property
    def text(self) -> str:
        """The canonical ``--space`` spelling (what sweep.json and the table show)."""
        args = self.choices if self.kind == "choice" else (self.low, self.high)
        return f"{self.key}={self.kind}({', '.join(_literal(a) for a in args)})"

    @property
    def values(self) -> list[Any]:
        """The values a grid visits (choice only) or the two ends of the range."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]

    def suggest(self, trial: Any) -> Any:
        """Draw this dimension's value from an ``optuna.trial.Trial``."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high))  # type: ignore[arg-type]
        return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.kind == "loguniform")  # type: ignore[arg-type]


def _literal(value: Any) -> str:
    """A value as TOML (and so as ``--set`` reads it back): ``0.001``, ``true``, ``"adamw"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        import json

        return json.dumps(value)  # a JSON string is a valid TOML basic string
    return repr(value)


def override(key: str, value: Any) -> str:
    """``--set`` text for one sampled value."""
    return f"{key}={_literal(value)}"


def _parse_args(text: str) -> list[Any]:
    """``1e-4, 0.1`` or ``'a', "b"`` as TOML; bare words (``adamw, sgd``) as ``--set`` reads them."""
    if not text.strip():
        return []
    try:
        return list(tomllib.loads(f"v = [{text}]")["v"])
    except tomllib.TOMLDecodeError:
        return [cfgmod.parse_value(part.strip()) for part in text.split(",")]


def parse(spec: str) -> Dim:
    """``train.lr=loguniform(1e-4,1e-1)`` -> Dim (syntax only; :func:`check` holds it to the schema)."""
    m = _SPEC.match(spec)
    if not m:
        raise UsageError(
            f"invalid --space {spec!r}: expected KEY=DIST(ARGS), e.g. train.lr=loguniform(1e-4,1e-1); "
            f"DIST is one of {', '.join(KINDS)}"
        )
    key, kind, args = m["key"], m["kind"], _parse_args(m["args"])
    if kind not in KINDS:
        raise UsageError(f"invalid --space {spec!r}: unknown distribution {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "choice":
        if not args:
            raise UsageError(f"invalid --space {spec!r}: choice(...) needs at least one value")
        bad = [a for a in args if not isinstance(a, _PRIMITIVE)]
        if bad:
            raise UsageError(
                f"invalid --space {spec!r}: choice value {bad[0]!r} is not a number, string or boolean "
                "(Optuna's categorical values)"
            )
        if len(set(map(repr, args))) != len(args):
            raise UsageError(f"invalid --space {spec!r}: choice(...) lists a value twice")
        return Dim(key, kind, choices=tuple(args))
    if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise UsageError(f"invalid --space {spec!r}: {kind}(a, b) needs two numbers, got {len(args)} argument(s)")
    low, high = args
    if kind == "int" and not all(isinstance(a, int) for a in args):
        raise UsageError(f"invalid --space {spec!r}: int(a, b) needs two integers, got {low!r}, {high!r}")
    if not low < high:
        raise UsageError(f"invalid --space {spec!r}: the low end {low!r} must be below the high end {high!r}")
    if kind == "loguniform" and low <= 0:
        raise UsageError(f"invalid --space {spec!r}: loguniform(a, b) needs 0 < a, got a = {low!r}")
    return Dim(key, kind, low=low, high=high)


# --- the schema ---------------------------------------------------------------------------------
def field_of(model: type[BaseModel], key: str) -> Any:
    """The pydantic ``FieldInfo`` of a dotted key (``train.lr``), or ``None``."""
    cls: Any = model
    parts = key.split(".")
    for i, part in enumerate(parts):
        f = getattr(cls, "model_fields", {}).get(part)
        if f is None:
            return None
        if i == len(parts) - 1:
            return f
        cls = cfgmod._submodel(f.annotation)
        if cls is None:
            return None
    return None


def _types(annotation: Any) -> tuple[str, tuple[Any, ...]]:
    """The field's kind for matching distributions: ``literal`` (with its values), ``bool``, ``int``,
    ``float``, ``str`` or ``other``; ``Optional[X]`` is X (a sweep never samples None)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "literal", typing.get_args(annotation)
    args = typing.get_args(annotation)
    if args and type(None) in args:  # Optional[X] / X | None
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _types(rest[0])
        return "other", ()
    for t, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if annotation is t:
            return name, ()
    return "other", ()


_KIND_FITS = {"uniform": {"float"}, "loguniform": {"float"}, "int": {"int", "float"}}
_ADVICE = {
    "int": "an integer: use int(a, b) or choice(...)",
    "bool": "a boolean: use choice(true, false)",
    "str": "a string: use choice(...)",
    "literal": "one of {values}: use choice(...)",
    "other": "of type {type}: use choice(...)",
}


def _check_value(model: type[BaseModel], base: dict[str, Any], dim: Dim, value: Any, spec: str) -> None:
    tree = cfgmod.merge(base, {})
    cfgmod.set_path(tree, dim.key.split("."), value)
    try:
        model.model_validate(tree)
    except ValidationError as exc:
        raise UsageError(cfgmod.validation_message(exc, model, f"--space {spec}")) from None


def check(model: type[BaseModel], base: dict[str, Any], dim: Dim, spec: str | None = None) -> Dim:
    """Hold ``dim`` to the plugin's schema; ``base`` is the sweep's resolved config (a dict)."""
    spec = spec or dim.text
    f = field_of(model, dim.key)
    if f is None or cfgmod._submodel(f.annotation) is not None:
        paths = cfgmod.field_paths(model)
        raise UsageError(f"unknown config key {dim.key!r} in --space {spec}{cfgmod._closest(dim.key, paths)}")
    kind, literal = _types(f.annotation)
    if dim.kind != "choice" and kind not in _KIND_FITS[dim.kind]:
        advice = _ADVICE.get(kind, _ADVICE["other"]).format(
            values=", ".join(repr(v) for v in literal), type=cfgmod._type_name(f.annotation)
        )
        raise UsageError(f"invalid --space {spec}: {dim.kind}(...) does not fit {dim.key!r}, which is {advice}")
    for value in dim.values:
        _check_value(model, base, dim, value, spec)
    return dim


def _bounds(f: Any) -> tuple[float | None, bool, float | None, bool]:
    """(low, low_inclusive, high, high_inclusive) from a field's ge/gt/le/lt metadata."""
    low = high = None
    low_incl = high_incl = True
    for m in f.metadata:
        for attr, is_low, incl in (("ge", True, True), ("gt", True, False), ("le", False, True), ("lt", False, False)):
            v = getattr(m, attr, None)
            if v is None:
                continue
            if is_low:
                low, low_incl = v, incl
            else:
                high, high_incl = v, incl
    return low, low_incl, high, high_incl


def from_schema(model: type[BaseModel], base: dict[str, Any], key: str) -> Dim:
    """The space a field's own schema declares: every ``Literal`` value, both booleans, or the whole
    ``ge``/``gt``..``le``/``lt`` range (uniform for floats, int(a, b) for integers)."""
    spec = f"--space-from-schema {key}"
    f = field_of(model, key)
    if f is None or cfgmod._submodel(f.annotation) is not None:
        raise UsageError(f"unknown config key {key!r} in {spec}{cfgmod._closest(key, cfgmod.field_paths(model))}")
    kind, literal = _types(f.annotation)
    if kind == "literal":
        dim = Dim(key, "choice", choices=tuple(literal))
    elif kind == "bool":
        dim = Dim(key, "choice", choices=(False, True))
    elif kind in ("int", "float"):
        low, low_incl, high, high_incl = _bounds(f)
        if low is None or high is None:
            missing = "lower" if low is None else "upper"
            raise UsageError(
                f"{spec}: {key!r} ({kind}) has no {missing} bound in the plugin's schema; "
                f"give a range instead, e.g. --space '{key}={'int' if kind == 'int' else 'uniform'}(a, b)'"
            )
        if kind == "int":  # exclusive integer bounds step to the next integer inside
            dim = Dim(key, "int", low=int(low) + (0 if low_incl else 1), high=int(high) - (0 if high_incl else 1))
        else:  # exclusive float bounds step to the next float inside: the sampler may draw either end
            lo = float(low) if low_incl else math.nextafter(float(low), math.inf)
            hi = float(high) if high_incl else math.nextafter(float(high), -math.inf)
            dim = Dim(key, "uniform", low=lo, high=hi)
    else:
        raise UsageError(
            f"{spec}: {key!r} ({cfgmod._type_name(f.annotation)}) has no bounds or choices in the plugin's "
            f"schema; give --space '{key}=choice(...)'"
        )
    return check(model, base, dim, spec)


def build(model: type[BaseModel], base: dict[str, Any], specs: list[str], schema_keys: list[str]) -> list[Dim]:
    """Every ``--space`` and ``--space-from-schema`` dimension, checked; a key given twice is an error."""
    dims = [check(model, base, parse(s), s.strip()) for s in specs]
    dims += [from_schema(model, base, k) for k in schema_keys]
    seen: set[str] = set()
    for d in dims:
        if d.key in seen:
            raise UsageError(f"--space: key {d.key!r} is given more than once")
        seen.add(d.key)
    if not dims:
        raise UsageError("mlx sweep needs a search space: --space KEY=DIST(ARGS) or --space-from-schema KEY")
    return dims
