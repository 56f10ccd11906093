"""Profiles: a YAML overlay of params, turned into ``dvc exp run -S key=value`` arguments.

    dvc exp run -n gpu $(python -m tsfmlab.profile profiles/gpu.yaml)
    dvc exp run $(python -m tsfmlab.profile profiles/gpu.yaml profiles/gpu_rehearsal.yaml)   # stacked

Every leaf of the overlay (nested mappings give dotted keys) must already exist in ``params.yaml``, so a
typo fails here instead of silently adding an unused param -- except inside the *named collections*
(:data:`COLLECTIONS`: models, datasets, encoders, backbones by name), where a profile may add an entry.
It is passed as ``-S +key=value`` (Hydra's syntax for a new key), so the entries already there stay.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .errors import ParamError, TsfmlabError
from .params import load_params

COLLECTIONS = (
    "classification.encoders",
    "evaluate_forecast.models",
    "evaluate_forecast.datasets",
    "timae.backbones",
)


def _new_collection_entry(key: str, params: dict[str, Any]) -> bool:
    """``key`` lies in an entry of a named collection that ``params`` does not have yet (a typo inside an
    existing entry is still refused)."""
    for collection in COLLECTIONS:
        if key.startswith(collection + "."):
            entry = f"{collection}.{key[len(collection) + 1 :].split('.')[0]}"
            return not any(p == entry or p.startswith(entry + ".") for p in params)
    return False


def leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of the non-mapping leaves (lists and empty mappings are leaves)."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(leaves(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def is_param(key: str, params: dict[str, Any]) -> bool:
    """Whether dotted ``key`` names a param (a leaf or a section) among ``params`` (:func:`leaves`)."""
    return key in params or any(p.startswith(key + ".") for p in params)


def overlay_leaves(overlay: Any, params: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of ``overlay``'s leaves; a mapping given for a param that is null (a null
    ``overrides``) is one leaf, that param's whole value."""
    if isinstance(overlay, dict) and overlay and (params is not None or not prefix):
        out: dict[str, Any] = {}
        for k, v in overlay.items():
            inner = params.get(k, {}) if isinstance(params, dict) else {}
            out.update(overlay_leaves(v, inner, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: overlay}


def hydra_value(value: Any) -> str:
    """A value as DVC's ``-S`` (Hydra's override grammar) reads it: JSON, but mapping keys unquoted."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, separators=(",", ":"))


def merged(base: Any, later: Any) -> Any:
    """``later`` over ``base``: mappings merge key by key; anything else (a null, a list) is replaced."""
    if isinstance(base, dict) and isinstance(later, dict):
        return {**base, **{k: merged(base.get(k), v) for k, v in later.items()}}
    return later


def set_arguments(
    overlay_path: str | Path | list[str | Path], params_path: str | Path = "params.yaml"
) -> list[str]:
    """The ``-S`` arguments of one overlay, or of several applied in order (a later one wins)."""
    paths = overlay_path if isinstance(overlay_path, list) else [overlay_path]
    overlay: dict[str, Any] = {}
    for path in paths:
        overlay = merged(overlay, load_params(path))
    overlay_path = " + ".join(str(p) for p in paths)
    tree = load_params(params_path)
    params = leaves(tree)
    args = []
    for key, value in overlay_leaves(overlay, tree).items():
        known = is_param(key, params)
        if not known and not _new_collection_entry(key, params):
            raise ParamError(f"{overlay_path}: {key} is not a param of {params_path}")
        prefix = "" if known else "+"  # DVC's (Hydra's) syntax for adding a key
        # JSON is YAML flow syntax, which is how DVC parses -S values; no spaces, so that the arguments
        # survive the shell's word splitting of $(...)
        text = hydra_value(value)
        if any(c.isspace() for c in text):
            raise ParamError(f"{overlay_path}: {key}: values with whitespace cannot be passed this way")
        args += ["-S", f"{prefix}{key}={text}"]
    return args


def main(argv: list[str]) -> None:
    if not argv:
        print("usage: python -m tsfmlab.profile PROFILE.yaml [MORE.yaml ...]  (later files win)", file=sys.stderr)
        sys.exit(2)
    try:
        print(" ".join(set_arguments(list(argv))))
    except TsfmlabError as err:
        print(f"profile: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
