"""Entry point wrapper for stage scripts: bad input ends with one clear line, not a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from . import numerics
from .errors import TsfmlabError


def run_stage(main: Callable[[], None]) -> None:
    stage = Path(sys.argv[0]).stem
    try:
        numerics.check()
        main()
    except TsfmlabError as err:
        print(f"{stage}: error: {err}", file=sys.stderr)
        sys.exit(2)


def stage_args(*names: str, **paths: str) -> argparse.Namespace:
    """A stage script's command line: ``names`` positionally (a grid cell's keys), then ``--<path> DIR`` for
    each path it reads or writes that another stage writes or reads (``paths``: name -> help). dvc.yaml's
    cmd passes them from its ``paths`` vars, the same ``${paths.<name>}`` its deps and outs declare: each
    such path is typed once. A missing or unknown argument ends with argparse's usage line (status 2)."""
    parser = argparse.ArgumentParser(prog=f"stages/{Path(sys.argv[0]).name}")
    for name in names:
        parser.add_argument(name)
    for name, help_ in paths.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=Path, required=True, help=help_)
    return parser.parse_args()
