"""Entry point wrapper for stage scripts: bad input ends with one clear line, not a traceback."""

from __future__ import annotations

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
