"""Typed, validated views of the sections of ``params.yaml``.

Every stage declares a frozen dataclass for its section; :func:`parse_section` checks names, types and
ranges before any heavy work and raises :class:`ParamError` naming ``section.key``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ruamel.yaml import YAML, YAMLError

from .errors import ParamError

T = TypeVar("T")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParamError(f"{path}: params file not found")
    try:
        # YAML 1.2 (as DVC reads params): ``1e-9`` is a float, not a string as in PyYAML.
        data = YAML(typ="safe", pure=True).load(path.read_text())
    except YAMLError as err:
        raise ParamError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ParamError(f"{path}: expected a mapping of sections at the top level")
    return data


def check(predicate: Callable[[Any], bool], description: str) -> dict[str, Any]:
    """Field metadata: ``field(metadata=check(lambda v: v > 0, "> 0"))``."""
    return {"check": (predicate, description)}


positive = check(lambda v: v > 0, "> 0")
non_negative = check(lambda v: v >= 0, ">= 0")
open_unit = check(lambda v: 0 < v < 1, "in the open interval (0, 1)")
unit = check(lambda v: 0 <= v <= 1, "in [0, 1]")


def _matches(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(annotation)
        item = args[0] if args else Any
        return all(_matches(v, item) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            return False
        kt, vt = typing.get_args(annotation) or (Any, Any)
        return all(_matches(k, kt) and _matches(v, vt) for k, v in value.items())
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _dataclass_values(annotation: Any) -> type | None:
    """The value type of a ``dict[str, <dataclass>]`` annotation, else None."""
    if typing.get_origin(annotation) is dict:
        args = typing.get_args(annotation)
        if len(args) == 2 and dataclasses.is_dataclass(args[1]):
            return args[1]
    return None


def parse_section(cls: type[T], values: Mapping[str, Any] | None, section: str) -> T:
    """Build ``cls`` from a params section, failing with a message that names ``section.key``."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ParamError(f"params section '{section}' must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ParamError(
            f"unknown param(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
            f"known: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        key = f"{section}.{name}"
        if name not in values:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ParamError(f"missing param {key}")
            continue
        value = values[name]
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = parse_section(hints[name], value, key)
            continue
        item_cls = _dataclass_values(hints[name])
        if item_cls is not None:  # dict[str, SomeParams]: a named collection of sub-sections
            if not isinstance(value, Mapping) or not value:
                raise ParamError(f"param {key} must be a non-empty mapping of name: {{...}}, got {value!r}")
            kwargs[name] = {str(k): parse_section(item_cls, v, f"{key}.{k}") for k, v in value.items()}
            continue
        if not _matches(value, hints[name]):
            raise ParamError(f"param {key} must be {_type_name(hints[name])}, got {value!r}")
        if hints[name] is float and isinstance(value, int):
            value = float(value)
        if "check" in field.metadata and value is not None:
            predicate, description = field.metadata["check"]
            items = value if isinstance(value, (list, tuple)) else [value]
            if not all(predicate(v) for v in items):
                raise ParamError(f"param {key} must be {description}, got {value!r}")
        kwargs[name] = value
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(section)
    return obj


def subset(cls: type[T], obj: Any) -> T:
    """The ``cls`` view of a params object that has (at least) all of ``cls``'s fields."""
    return cls(**{f.name: getattr(obj, f.name) for f in dataclasses.fields(cls)})  # type: ignore[arg-type]


def stage_params(cls: type[T], section: str, path: str | Path = "params.yaml") -> T:
    """Read and validate one section of ``params.yaml``."""
    params = load_params(path)
    if section not in params:
        raise ParamError(f"{path}: section '{section}' is missing")
    return parse_section(cls, params[section], section)
