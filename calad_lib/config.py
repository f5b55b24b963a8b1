"""Chapter parameters: presets, validation and the one-line errors that stop a bad run early.

Each chapter ``NN_name`` has

* a schema, ``params/schema/NN_name.yaml``: for every parameter its ``type`` (``int``,
  ``float``, ``str``, ``bool``, ``list``), optional ``min``/``max``, ``choices``, ``items``
  (the type of list items), ``nullable`` and ``doc``;
* one preset file per scale, ``params/<preset>/NN_name.yaml`` (``smoke``, ``default``,
  ``thesis``), a flat mapping that papermill can read with ``-f``.

The notebook's ``parameters`` cell holds the ``smoke`` values. Its next cell calls
:func:`calad_lib.chapter.setup`, which validates whatever papermill injected *before any
computation*: an unknown key, a wrong type or an out-of-range value raises :class:`ParameterError`
with one line that names the key and what is allowed. Run configurations (the trainer's, an
experiment's) are checked against the rules of ``params/schema/configs/`` (:func:`check_config`),
which the chapter schemas refer to, so every range is written once.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from .paths import params_dir

__all__ = ["ParameterError", "Params", "chapters", "schema", "presets", "load_preset",
           "validate", "resolve_params", "parse_override", "config_schema", "check_config"]

PRESETS = ("smoke", "default", "thesis")


class ParameterError(ValueError):
    """A chapter parameter is unknown, missing, of the wrong type or out of range."""


class Params(dict):
    """Validated chapter parameters; values are reachable as attributes (``P.epochs``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no parameter {name!r}; known: {', '.join(sorted(self))}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("parameters are read-only; pass overrides with papermill -p or calad run -p")


def chapters() -> list[str]:
    """All chapters that have a parameter schema, e.g. ``['01_theory', ...]``."""
    return sorted(p.stem for p in (params_dir() / "schema").glob("*.yaml"))


def resolve_chapter(name: str) -> str:
    """Accept ``05``, ``5``, ``detection`` or ``05_detection`` and return the full chapter name."""
    known = chapters()
    if name in known:
        return name
    hits = [c for c in known if c.split("_", 1)[0].lstrip("0") == name.lstrip("0") and name.strip("0").isdigit()]
    hits = hits or [c for c in known if c.split("_", 1)[1] == name]
    if len(hits) == 1:
        return hits[0]
    raise ParameterError(f"unknown chapter {name!r}; choose one of: {', '.join(known)}")


def schema(chapter: str) -> dict[str, dict]:
    """The parameter schema of ``chapter`` (read from ``params/schema/<chapter>.yaml``)."""
    path = params_dir() / "schema" / f"{chapter}.yaml"
    if not path.exists():
        raise ParameterError(f"no parameter schema for chapter {chapter!r} (expected {path.name} in params/schema/)")
    with open(path) as fh:
        spec = yaml.safe_load(fh) or {}
    spec = {k: _resolve(v) for k, v in spec.items()}
    spec.setdefault("preset", {"type": "str", "doc": "name of the preset these values come from"})
    return spec


def presets(chapter: str) -> list[str]:
    """Preset names available for ``chapter``."""
    return sorted(p.parent.name for p in params_dir().glob(f"*/{chapter}.yaml") if p.parent.name != "schema")


#: what a preset's name may look like: it names a folder of params/ and of figures/
PRESET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def check_preset_name(name: str) -> str:
    """``name`` if it can name a preset folder (no path separators, no ``..``); else a one-line error."""
    if not isinstance(name, str) or not PRESET_NAME.match(name) or ".." in name:
        raise ParameterError(f"preset name {name!r} must be letters, digits, '_', '-', '.' or '+' (it names a folder); "
                             "give a preset name or the path of a preset YAML file")
    return name


def load_preset(chapter: str, preset: str) -> dict[str, Any]:
    """The raw values of ``preset`` (a name under ``params/`` or a path to a YAML file) for ``chapter``."""
    path = Path(preset)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        check_preset_name(preset)
        path = params_dir() / preset / f"{chapter}.yaml"
        if not path.exists():
            avail = presets(chapter)
            raise ParameterError(f"unknown preset {preset!r} for {chapter}; choose one of: {', '.join(avail)} "
                                 "or give a path to a YAML file")
    try:
        with open(path) as fh:
            values = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise ParameterError(f"preset file {path.name} is not valid YAML ({str(exc).splitlines()[0]}); fix or restore it") from None
    if not isinstance(values, dict):
        raise ParameterError(f"preset file {path.name} must be a mapping of parameter: value")
    # labelled by its folder under params/ (smoke, default, ...), or a preset file elsewhere by its name
    in_params = path.resolve().parent.parent == params_dir().resolve()
    values.setdefault("preset", path.resolve().parent.name if in_params else path.stem)
    return values


def resolve_params(chapter: str, preset: str, overrides: Mapping[str, Any] | None = None) -> Params:
    """The validated parameters of ``chapter`` for ``preset`` (a name or a YAML file) plus ``overrides``."""
    values = dict(load_preset(chapter, preset))
    values.update(overrides or {})
    return validate(chapter, values)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` (the value read as YAML: ``3``, ``1e-3``, ``[0, 1]``, ``true``, ``cifar10``)."""
    if "=" not in text:
        raise ParameterError(f"override {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _describe(spec: Mapping) -> str:
    kind = spec.get("type", "any")
    if kind == "list":
        kind = f"a list of {spec.get('items', 'values')}"
    parts = [kind]
    if "choices" in spec:
        parts.append("one of " + ", ".join(map(str, spec["choices"])))
    if "min" in spec:
        parts.append(f">= {spec['min']}")
    if "gt" in spec:
        parts.append(f"> {spec['gt']}")
    if "max" in spec:
        parts.append(f"<= {spec['max']}")
    if "lt" in spec:
        parts.append(f"< {spec['lt']}")
    if spec.get("nullable"):
        parts.append("or null")
    return " ".join(parts)


def _check_scalar(key: str, value: Any, kind: str, spec: Mapping, where: str, what: str = "parameter") -> Any:
    def fail(why: str) -> None:
        raise ParameterError(f"{what} {key!r}{where} = {value!r} {why}; allowed: {_describe(spec)}")

    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                fail("is not an integer")
        value = int(value)
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            fail("is not a number")
        value = float(value)
        if not math.isfinite(value):
            fail("is not a finite number")
    elif kind == "str":
        if not isinstance(value, str):
            fail("is not a string")
    elif kind == "bool":
        if not isinstance(value, bool):
            fail("is not true/false")
    if "choices" in spec and value not in spec["choices"]:
        fail("is not a known choice")
    if "min" in spec and value < spec["min"]:
        fail("is below the minimum")
    if "gt" in spec and not value > spec["gt"]:
        fail("is not above the bound")
    if "max" in spec and value > spec["max"]:
        fail("is above the maximum")
    if "lt" in spec and not value < spec["lt"]:
        fail("is not below the bound")
    return value


def _check_value(key: str, value: Any, rule: Mapping, what: str = "parameter") -> Any:
    """``value`` checked against one rule of a schema (and converted: ints, floats, tuples to lists)."""
    if value is None:
        if rule.get("nullable"):
            return None
        raise ParameterError(f"{what} {key!r} = None is not allowed; allowed: {_describe(rule)}")
    kind = rule.get("type", "any")
    if kind == "list":
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ParameterError(f"{what} {key!r} = {value!r} is not a list; allowed: {_describe(rule)}")
        if "min_len" in rule and len(value) < rule["min_len"]:
            raise ParameterError(f"{what} {key!r} needs at least {rule['min_len']} item(s); got {value!r}")
        item_rule = {k: v for k, v in rule.items() if k in ("choices", "min", "max", "gt", "lt")}
        return [_check_scalar(key, v, rule.get("items", "any"), item_rule, f"[{i}]", what) for i, v in enumerate(value)]
    if kind != "any":
        return _check_scalar(key, value, kind, rule, "", what)
    return value


@functools.lru_cache(maxsize=None)
def config_schema(name: str) -> dict[str, dict]:
    """The rules of a run configuration (``params/schema/configs/<name>.yaml``): the library's contract
    for :class:`calad_lib.train.TrainConfig` (``train``), :class:`calad_lib.detection.ExperimentConfig`
    (``experiment``), ... Chapter schemas refer to them (``{from: train.epochs}``) instead of repeating them."""
    path = params_dir() / "schema" / "configs" / f"{name}.yaml"
    if not path.exists():
        raise ParameterError(f"no configuration schema {name!r} (expected params/schema/configs/{name}.yaml)")
    with open(path) as fh:
        rules = yaml.safe_load(fh) or {}
    return {k: _resolve(v) for k, v in rules.items()}


def check_config(config: Any, name: str) -> None:
    """Check every field of a run configuration (a dataclass) that ``config_schema(name)`` has a rule for.

    Raises :class:`ParameterError` (a ``ValueError``) in one line naming the configuration, the field
    and what is allowed.
    """
    rules = config_schema(name)
    what = type(config).__name__
    for f in dataclasses.fields(config):
        if f.name in rules:
            _check_value(f.name, getattr(config, f.name), rules[f.name], what)


def _resolve(rule: Mapping) -> dict:
    """A chapter's rule with ``from: <config>.<field>`` replaced by that field's rule (doc and extras kept)."""
    if "from" not in rule:
        return dict(rule)
    ref = str(rule["from"])
    name, _, key = ref.partition(".")
    base = config_schema(name).get(key)
    if base is None:
        raise ParameterError(f"schema rule refers to {ref!r}, which params/schema/configs/{name}.yaml does not define")
    return {**base, **{k: v for k, v in rule.items() if k != "from"}}


def validate(chapter: str, values: Mapping[str, Any], *, require_all: bool = True) -> Params:
    """Check ``values`` against the schema of ``chapter``; return them as :class:`Params`.

    Raises :class:`ParameterError` (one line) on the first unknown key, missing key,
    wrong type or out-of-range value.
    """
    spec = schema(chapter)
    for key in values:
        if key not in spec:
            raise ParameterError(f"unknown parameter {key!r} for chapter {chapter}; "
                                 f"known: {', '.join(sorted(spec))}")
    out: dict[str, Any] = {}
    for key, rule in spec.items():
        if key not in values:
            if require_all and "default" not in rule:
                raise ParameterError(f"parameter {key!r} is missing for chapter {chapter}; expected {_describe(rule)}")
            if "default" in rule:
                out[key] = rule["default"]
            continue
        value = _check_value(key, values[key], rule)
        if key == "preset":
            check_preset_name(value)
        out[key] = value
    return Params(out)
