"""Atomic writes: everything is written to a temporary sibling and renamed into place."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import DataError


@contextlib.contextmanager
def atomic_file(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces the directory ``path`` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_file(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


#: where every stage's results go (dvc.yaml declares each file as the stage's out or metric)
REPORTS, METRICS = "reports", "metrics"


def write_results(name: str, details: Any, headline: dict[str, Any] | None = None) -> None:
    """A stage's results: ``reports/<name>.json`` holds everything it measured, ``metrics/<name>.json``
    its headline numbers only (the columns of ``dvc exp show``; none for a stage without one)."""
    write_json(f"{REPORTS}/{name}.json", details)
    if headline is not None:
        write_json(f"{METRICS}/{name}.json", headline)


def read_results(name: str, hint: str) -> tuple[Any, Path]:
    """``(details, path)`` of what :func:`write_results` wrote as ``name``; a missing or unreadable file
    fails with its path and ``hint`` (what to run)."""
    path = Path(f"{REPORTS}/{name}.json")
    try:
        return json.loads(path.read_text()), path
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: missing or not JSON ({type(err).__name__}); {hint}") from err


def write_text(path: str | Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
