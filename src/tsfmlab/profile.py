"""Profiles: a YAML overlay of params, turned into ``dvc exp run -S key=value`` arguments.

    dvc exp run -n gpu $(python -m tsfmlab.profile profiles/gpu.yaml)

Every leaf of the overlay (nested mappings give dotted keys) must already exist in ``params.yaml``, so a
typo fails here instead of silently adding an unused param.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .errors import ParamError, TsfmlabError
from .params import load_params


def leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of the non-mapping leaves (lists and empty mappings are leaves)."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(leaves(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def set_arguments(overlay_path: str | Path, params_path: str | Path = "params.yaml") -> list[str]:
    overlay = load_params(overlay_path)
    params = leaves(load_params(params_path))
    args = []
    for key, value in leaves(overlay).items():
        if key not in params and not any(p.startswith(key + ".") for p in params):
            raise ParamError(f"{overlay_path}: {key} is not a param of {params_path}")
        # JSON is YAML flow syntax, which is how DVC parses -S values; no spaces, so that the arguments
        # survive the shell's word splitting of $(...)
        text = json.dumps(value, separators=(",", ":"))
        if any(c.isspace() for c in text):
            raise ParamError(f"{overlay_path}: {key}: values with whitespace cannot be passed this way")
        args += ["-S", f"{key}={text}"]
    return args


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        print("usage: python -m tsfmlab.profile PROFILE.yaml", file=sys.stderr)
        sys.exit(2)
    try:
        print(" ".join(set_arguments(argv[0])))
    except TsfmlabError as err:
        print(f"profile: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
