"""Typed, validated views of the sections of ``params.yaml``.

Every stage declares a frozen dataclass for its section, next to the code that reads it. Every key is
required: the values live in ``params.yaml`` only. :func:`parse_section` checks names, types (pydantic,
strict: no string-to-number or float-to-int coercion) and ranges before any heavy work and raises
:class:`ParamError` naming ``section.key``; :func:`json_schema` publishes the same rules as JSON Schema
(``docs/params.schema.json``, made by ``scripts/params_schema.py``), so editors complete and check
``params.yaml``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ruamel.yaml import YAML, YAMLError

from .errors import ParamError

T = TypeVar("T")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The params file as a fresh dict (the caller may change it); a text already parsed is not parsed
    again (a stage reads params.yaml several times, and pure-Python YAML takes ~60 ms a parse)."""
    path = Path(path)
    if not path.is_file():
        raise ParamError(f"{path}: params file not found")
    return copy.deepcopy(_parsed(path.read_text(), str(path)))


@functools.lru_cache(maxsize=8)
def _parsed(text: str, name: str) -> dict[str, Any]:
    try:
        # YAML 1.2 (as DVC reads params): ``1e-9`` is a float, not a string as in PyYAML.
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as err:
        raise ParamError(f"{name}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ParamError(f"{name}: expected a mapping of sections at the top level")
    return data


def check(predicate: Callable[[Any], bool], description: str, **schema: float) -> dict[str, Any]:
    """Field metadata: ``field(metadata=check(lambda v: v > 0, "> 0", exclusiveMinimum=0))``; ``schema``
    holds the JSON Schema keywords that say the same (applied to each item of a list)."""
    return {"check": (predicate, description), "schema": schema}


positive = check(lambda v: v > 0, "> 0", exclusiveMinimum=0)
non_negative = check(lambda v: v >= 0, ">= 0", minimum=0)
open_unit = check(lambda v: 0 < v < 1, "in the open interval (0, 1)", exclusiveMinimum=0, exclusiveMaximum=1)
unit = check(lambda v: 0 <= v <= 1, "in [0, 1]", minimum=0, maximum=1)
below_one = check(lambda v: 0 <= v < 1, "in [0, 1)", minimum=0, exclusiveMaximum=1)
#: Field metadata of a setting several stages share: its value is ``shared.<field name>``, not a key of
#: the section (``field(metadata=shared)``).
shared = {"shared": True}


@functools.cache
def _adapter(annotation: Any):
    from pydantic import TypeAdapter

    return TypeAdapter(annotation)


def _validated(value: Any, annotation: Any, key: str) -> Any:
    """``value`` checked against ``annotation`` by pydantic in strict mode (ints pass as floats)."""
    from pydantic import ValidationError

    if isinstance(value, tuple):  # a sequence built in code (YAML gives lists)
        value = list(value)
    try:
        return _adapter(annotation).validate_python(value, strict=True)
    except ValidationError:
        raise ParamError(f"param {key} must be {_type_name(annotation)}, got {value!r}") from None


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if origin is not None:
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", str(annotation))


def _dataclass_values(annotation: Any) -> type | None:
    """The value type of a ``dict[str, <dataclass>]`` annotation, else None."""
    if typing.get_origin(annotation) is dict:
        args = typing.get_args(annotation)
        if len(args) == 2 and dataclasses.is_dataclass(args[1]):
            return args[1]
    return None


def parse_section(
    cls: type[T], values: Mapping[str, Any] | None, section: str, shared: Mapping[str, Any] | None = None
) -> T:
    """Build ``cls`` from a params section, failing with a message that names ``section.key``. Fields
    marked :data:`shared` take their value from ``shared`` (the ``shared`` section) instead."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ParamError(f"params section '{section}' must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    own = {name for name, f in fields.items() if not f.metadata.get("shared")}
    unknown = sorted(set(values) - own)
    if unknown:
        raise ParamError(
            f"unknown param(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
            f"known: {', '.join(sorted(own))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        key = f"{section}.{name}"
        if name not in own:
            key = f"shared.{name}"
            if not shared or name not in shared:
                raise ParamError(f"missing param {key}")
            values = {**values, name: shared[name]}
            trace(key)
        if name not in values:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ParamError(f"missing param {key}")
            continue
        value = values[name]
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = parse_section(hints[name], value, key, shared)
            continue
        item_cls = _dataclass_values(hints[name])
        if item_cls is not None:  # dict[str, SomeParams]: a named collection of sub-sections
            if not isinstance(value, Mapping) or not value:
                raise ParamError(f"param {key} must be a non-empty mapping of name: {{...}}, got {value!r}")
            kwargs[name] = {str(k): parse_section(item_cls, v, f"{key}.{k}", shared) for k, v in value.items()}
            continue
        value = _validated(value, hints[name], key)
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


#: A file to which every read of a param by key is appended as ``<stage>\t<key>`` (the stage: DVC's
#: ``DVC_STAGE``, else the script's name): the record the params header test checks against dvc.yaml.
TRACE_ENV = "TSFMLAB_PARAMS_TRACE"


def trace(key: str) -> None:
    path = os.environ.get(TRACE_ENV)
    if path:
        stage = os.environ.get("DVC_STAGE") or Path(sys.argv[0]).stem
        with open(path, "a") as f:
            f.write(f"{stage}\t{key}\n")


def param(key: str, path: str | Path = "params.yaml") -> Any:
    """The value at a dotted key of ``params.yaml`` (a section, a block of it, or one setting). Stages
    read every param through this (or :func:`stage_params`), and declare each key they read in dvc.yaml."""
    node: Any = load_params(path)
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            known = f" (known: {', '.join(map(str, node))})" if isinstance(node, Mapping) else ""
            raise ParamError(f"{path}: missing param {key}{known}")
        node = node[part]
    trace(key)
    return node


def stage_params(cls: type[T], key: str, path: str | Path = "params.yaml") -> T:
    """Read and validate a section (or a block at a dotted key, e.g. ``shared.train``) of ``params.yaml``;
    the fields marked :data:`shared` from the ``shared`` section."""
    return parse_section(cls, param(key, path), key, load_params(path).get("shared"))


def json_schema(cls: type) -> dict[str, Any]:
    """The JSON Schema of a params section: the dataclass's keys (all required, no others), each value's
    type (pydantic's schema of its annotation) and range (the JSON Schema of its ``check``)."""
    hints = typing.get_type_hints(cls)
    properties = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.metadata.get("shared"):
            continue  # its value is shared.<name>
        annotation = hints[f.name]
        item_cls = _dataclass_values(annotation)
        if dataclasses.is_dataclass(annotation):
            prop = json_schema(annotation)  # type: ignore[arg-type]
        elif item_cls is not None:
            prop = {"type": "object", "additionalProperties": json_schema(item_cls), "minProperties": 1}
        else:
            prop = _inline(_adapter(annotation).json_schema())
            bounds = f.metadata.get("schema", {})
            if bounds:
                _bound(prop, bounds)
        properties[f.name] = prop
    doc = (cls.__doc__ or "").strip()
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": list(properties)}
    schema["additionalProperties"] = False
    if doc and not doc.startswith(cls.__name__ + "("):  # not the dataclass's generated signature
        schema["description"] = " ".join(doc.split())
    return schema


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic's schema without ``$defs`` (leaf annotations hold no models) and without titles."""
    schema.pop("$defs", None)
    schema.pop("title", None)
    return schema


def _bound(schema: dict[str, Any], bounds: dict[str, float]) -> None:
    """Apply range keywords to the numbers of ``schema`` (items of arrays, members of unions)."""
    if "anyOf" in schema:
        for member in schema["anyOf"]:
            _bound(member, bounds)
    elif schema.get("type") == "array" and "items" in schema:
        _bound(schema["items"], bounds)
    elif schema.get("type") in ("integer", "number"):
        schema.update(bounds)
