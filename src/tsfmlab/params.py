"""Typed, validated views of the sections of ``params.yaml``.

Every stage declares a :class:`Params` model (pydantic, frozen, strict: no string-to-number or
float-to-int coercion; unknown keys refused) for its section, next to the code that reads it. Every key
is required: the values live in ``params.yaml`` only. Ranges are the constrained types defined here
(:data:`PositiveInt`, :data:`Unit`, :data:`Distinct` ...), rules between fields the models' validators.
:func:`parse_section` checks a section before any heavy work and raises :class:`ParamError` naming
``section.key``; :func:`json_schema` publishes the same rules as JSON Schema (``docs/params.schema.json``,
made by ``scripts/params_schema.py``), so editors complete and check ``params.yaml``.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML, YAMLError

from .errors import ParamError

T = TypeVar("T")
P = TypeVar("P", bound="Params")


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


# --------------------------------------------------------------------------------------------------
# constrained types


def described(description: str, *errors: str) -> WrapValidator:
    """Annotated metadata: the value's own ``errors`` (pydantic error types; default: its range) are
    reported as "must be ``description``" (the rule itself stays pydantic's, and so its JSON Schema)."""
    kinds = set(errors or ("greater_than", "greater_than_equal", "less_than", "less_than_equal"))

    def check(value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError as err:
            if all(e["type"] in kinds and not e["loc"] for e in err.errors()):
                raise PydanticCustomError(
                    "param", "must be {description}", {"description": description}
                ) from None
            raise

    return WrapValidator(check)


def _no_repeats(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise PydanticCustomError("param", "must not repeat a value")
    return values


def _increasing(values: list[Any]) -> list[Any]:
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise PydanticCustomError("param", "must be increasing")
    return values


def _positive_sum(weights: Any) -> Any:
    if sum(weights.values() if isinstance(weights, dict) else weights) <= 0:
        raise PydanticCustomError("param", "must have a positive sum")
    return weights


PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
#: a series length: at least 2 steps
Length = Annotated[int, Field(ge=2)]
#: a share or probability strictly between 0 and 1
OpenUnit = Annotated[float, Field(gt=0, lt=1), described("in the open interval (0, 1)")]
#: a share or probability, 0 and 1 included
Unit = Annotated[float, Field(ge=0, le=1), described("in [0, 1]")]
#: a dropout or warm-up share: 0 included, 1 not
BelowOne = Annotated[float, Field(ge=0, lt=1), described("in [0, 1)")]
#: a non-empty list without repeats (``Distinct[str]``)
Distinct = Annotated[
    list[T], Field(min_length=1), AfterValidator(_no_repeats),
    described("a non-empty list without repeats", "too_short", "param"),
]  # fmt: skip
#: a non-empty, strictly increasing list (``Increasing[OpenUnit]``)
Increasing = Annotated[
    list[T], Field(min_length=1), AfterValidator(_increasing),
    described("increasing and non-empty", "too_short", "param"),
]  # fmt: skip
#: the forecasts' quantile levels (``shared.quantile_levels``)
QuantileLevels = Increasing[OpenUnit]
#: weights that are not all 0 (``Weights[list[NonNegativeFloat]]``, or a dict of them by name)
Weights = Annotated[T, AfterValidator(_positive_sum)]
#: a non-empty mapping of name: block (``Named[TaskParams]``)
Named = Annotated[
    dict[str, T],
    Field(min_length=1),
    described("a non-empty mapping of name: {...}", "dict_type", "too_short"),
]


class _Shared:
    def __repr__(self) -> str:
        return "SHARED"


#: Annotated metadata of a setting several stages share: its value is ``shared.<field name>``, not a key
#: of the section (``quantile_levels: Shared[list[Unit]]``).
SHARED = _Shared()
Shared = Annotated[T, SHARED]


# --------------------------------------------------------------------------------------------------
# models


class Invalid(ValueError):
    """Raised by a params model's validator: ``key`` (relative to the model; "" or a field validator:
    where the error is) is wrong as ``message`` says. :class:`ParamError` names the key in full,
    ``param <section>.<key> <message>``, and so the other fields of the model that the message names
    (``refs``)."""

    def __init__(self, message: str, key: str = "", refs: tuple[str, ...] = ()):
        super().__init__(message)
        self.key, self.refs = key, refs


class Params(BaseModel):
    """A params section or a block of one: frozen, strict, every key known. :func:`parse_section` builds
    it from params.yaml (a wrong value: a :class:`ParamError` naming ``section.key``); code may build one
    by keyword (a wrong value: pydantic's ``ValidationError``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, protected_namespaces=())

    @classmethod
    def shared_fields(cls) -> list[str]:
        """The fields marked :data:`SHARED`: values of the ``shared`` section."""
        return [name for name, f in cls.model_fields.items() if SHARED in f.metadata]


def same_length(model: Params, first: str, *others: str) -> None:
    """For a validator: the list fields ``others`` hold one value per item of ``first``."""
    n = len(getattr(model, first))
    for name in others:
        if len(getattr(model, name)) != n:
            raise Invalid(f"and {name} differ in length ({n} vs {len(getattr(model, name))})", first, (name,))


def ordered(model: Params, low: str, high: str, strict: bool = False) -> None:
    """For a validator: field ``low`` is at most (``strict``: below) field ``high``."""
    a, b = getattr(model, low), getattr(model, high)
    if strict and a >= b:
        raise Invalid(f"must be < {high} ({b}), got {a}", low, (high,))
    if a > b:
        raise Invalid(f"={a} exceeds {high}={b}", low, (high,))


def section_of(info: Any, default: str = "") -> str:
    """The section being parsed, for a validator's message (:func:`parse_section` passes it as context)."""
    return (info.context or {}).get("section", default)


def parse_section(
    cls: type[P], values: Mapping[str, Any] | None, section: str, shared: Mapping[str, Any] | None = None
) -> P:
    """Build ``cls`` from a params section, failing with a message that names ``section.key``. Fields
    marked :data:`SHARED` take their value from ``shared`` (the ``shared`` section) instead."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ParamError(f"params section '{section}' must be a mapping, got {type(values).__name__}")
    shared_names = cls.shared_fields()
    own = [name for name in cls.model_fields if name not in shared_names]
    unknown = sorted(set(values) - set(own))
    if unknown:
        keys = ", ".join(f"{section}.{k}" for k in unknown)
        raise ParamError(f"unknown param(s) {keys}; known: {', '.join(sorted(own))}")
    values = _as_yaml(dict(values))
    for name in shared_names:
        if not shared or name not in shared:
            raise ParamError(f"missing param shared.{name}")
        values[name] = _as_yaml(shared[name])
        trace(f"shared.{name}")
    try:
        return cls.model_validate(values, context={"section": section})
    except ValidationError as err:
        raise param_error(err, cls, section) from None


def _as_yaml(value: Any) -> Any:
    """``value`` with the tuples of a section built in code as the lists YAML gives (strict list fields
    refuse tuples)."""
    if isinstance(value, dict):
        return {k: _as_yaml(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_yaml(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------------
# pydantic's errors as ParamError, naming the dotted key


def param_error(err: ValidationError, cls: Any, section: str) -> ParamError:
    """One :class:`ParamError` for all of ``err``'s problems, each naming its key below ``section`` (of a
    value of type ``cls``: a :class:`Params` model, or any annotation)."""
    messages: list[str] = []
    unknown: dict[str, tuple[list[str], list[str]]] = {}  # parent key: (unknown keys, known keys)
    for e in err.errors():
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, ParamError):
            return cause  # a check that names its param itself
        loc = [*e["loc"], *(cause.key.split(".") if isinstance(cause, Invalid) and cause.key else [])]
        key, annotation, whole = _locate(cls, loc, section)
        if e["type"] == "value_error":  # a validator's: the message says what, the key is named here
            text = str(cause)
            model = _locate(cls, e["loc"], section)[0]
            for ref in getattr(cause, "refs", ()):  # other fields of the model, named in full too
                text = re.sub(rf"\b{re.escape(ref)}\b", f"{model}.{ref}" if model else ref, text)
            messages.append(f"param {key}{'' if text[:1] in ':=' else ' '}{text}")
            continue
        if loc and loc[-1] == "[key]":  # a key of a dict, not its value
            parent, mapping, _ = _locate(cls, loc[:-2], section)
            key_type = typing.get_args(_bare(mapping))[0] if mapping is not None else None
            if typing.get_origin(key_type) is typing.Literal:
                known = ", ".join(map(str, typing.get_args(key_type)))
                messages.append(f"param {parent}: unknown key {e['input']!r}; known: {known}")
            else:
                messages.append(f"param {parent}: key {e['input']!r} must be {_type_name(key_type)}")
            continue
        if e["type"] == "extra_forbidden":
            parent, model, _ = _locate(cls, loc[:-1], section)
            names = sorted(getattr(_bare(model), "model_fields", {}))
            unknown.setdefault(parent, ([], names))[0].append(key)
            continue
        if whole:
            message = _message(e, key, annotation)
        else:  # an error inside a union member: the union's own type is what the value must be
            message = f"param {key} must be {_type_name(annotation)}, got {e['input']!r}"
        if message not in messages:
            messages.append(message)
    for keys, known in unknown.values():
        messages.insert(0, f"unknown param(s) {', '.join(keys)}; known: {', '.join(known)}")
    return ParamError("; ".join(messages))


BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _message(e: Any, key: str, annotation: Any) -> str:
    kind, ctx, got = e["type"], e.get("ctx") or {}, f", got {e['input']!r}"
    if kind == "missing":
        return f"missing param {key}"
    if kind == "param":
        return f"param {key} {e['msg']}{got}"
    if kind == "literal_error":
        return f"param {key} must be one of {ctx['expected'].replace(' or ', ', ')}{got}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = f"{key}.{ctx['discriminator'].strip(chr(39))}"
        if kind == "union_tag_not_found":
            return f"missing param {key}"
        return f"param {key} must be one of {ctx['expected_tags']}, got {ctx['tag']!r}"
    if kind in BOUNDS:
        bound = next(iter(ctx.values()))
        bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
        return f"param {key} must be {BOUNDS[kind]} {bound}{got}"
    if kind == "too_short":
        return f"param {key} must not be empty{got}"
    if annotation is not None:
        return f"param {key} must be {_type_name(annotation)}{got}"
    return f"param {key}: {e['msg']}{got}"


def _locate(cls: Any, loc: list[Any], section: str) -> tuple[str, Any, bool]:
    """The dotted key of an error's ``loc`` (list items as ``[i]``), the annotation there, and whether the
    walk followed the whole ``loc`` (it stops at a union whose member the loc goes into, naming the union)."""
    key, annotation = section, cls
    if loc and isinstance(cls, type) and issubclass(cls, Params) and loc[0] in cls.shared_fields():
        key = "shared"
    for part in loc:
        bare = _bare(annotation)
        members = _members(bare)
        if members:  # a discriminated union's loc names the member's tag; another union's, a type
            tagged = [m for m in members if part in _tags(m)]
            if not tagged:
                return key, annotation, False
            annotation = tagged[0]
            continue
        if isinstance(part, int):
            key += f"[{part}]"
            args = typing.get_args(bare)
            annotation = args[0] if args else None
            continue
        key = f"{key}.{part}" if key else str(part)
        if isinstance(bare, type) and issubclass(bare, BaseModel) and part in bare.model_fields:
            annotation = bare.model_fields[part].annotation
        elif typing.get_origin(bare) is dict:
            annotation = typing.get_args(bare)[1]
        else:
            annotation = None
    return key, annotation, True


def _bare(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` metadata and without ``| None``."""
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        members = _members(annotation, keep_none=True)
        if members and type(None) in members and len(members) == 2:
            annotation = next(m for m in members if m is not type(None))
            continue
        return annotation


def _members(annotation: Any, keep_none: bool = False) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        return args if keep_none else tuple(a for a in args if a is not type(None))
    return ()


def _tags(annotation: Any) -> tuple[Any, ...]:
    """The ``Literal`` values of a model's ``backbone``-like discriminator fields."""
    bare = _bare(annotation)
    if not (isinstance(bare, type) and issubclass(bare, BaseModel)):
        return ()
    return tuple(
        v for f in bare.model_fields.values() if typing.get_origin(f.annotation) is typing.Literal
        for v in typing.get_args(f.annotation)
    )  # fmt: skip


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a mapping"
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', origin)}[{args}]"
    return getattr(annotation, "__name__", str(annotation))


# --------------------------------------------------------------------------------------------------
# reading params.yaml

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


def typed_param(annotation: Any, key: str, path: str | Path = "params.yaml") -> Any:
    """:func:`param` checked against ``annotation`` (strict, as a section's field)."""
    value = param(key, path)
    try:
        return _adapter(annotation).validate_python(value, strict=True)
    except ValidationError as err:
        raise param_error(err, annotation, key) from None


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter:
    return TypeAdapter(annotation)


def stage_params(cls: type[P], key: str, path: str | Path = "params.yaml") -> P:
    """Read and validate a section (or a block at a dotted key, e.g. ``shared.train``) of ``params.yaml``;
    the fields marked :data:`SHARED` from the ``shared`` section."""
    return parse_section(cls, param(key, path), key, load_params(path).get("shared"))


# --------------------------------------------------------------------------------------------------
# JSON Schema


def json_schema(cls: type[Params]) -> dict[str, Any]:
    """The JSON Schema of a params section: pydantic's, self-contained (no ``$ref``), without titles and
    defaults, every key required and no others (``extra="forbid"``: ``additionalProperties: false``); the
    :data:`SHARED` fields left out (``shared`` holds them)."""
    schema = cls.model_json_schema()
    defs = schema.pop("$defs", {})
    schema = _inline(schema, defs)
    for name in cls.shared_fields():
        del schema["properties"][name]
    schema["required"] = list(schema["properties"])
    return schema


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    out = {k: _inline(v, defs) for k, v in node.items() if k not in ("title", "default", "discriminator")}
    if isinstance(out.get("description"), str):  # a docstring, on one line
        out["description"] = " ".join(out["description"].split())
    if out.get("type") == "object" and "properties" in out:
        out["required"] = list(out["properties"])
    if "properties" in out:  # property names are keys, not schema keywords
        out["properties"] = {k: _inline(v, defs) for k, v in node["properties"].items()}
    return out
