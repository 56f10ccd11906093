"""GluonTS Arrow corpora: few large shards, written atomically, read with clear errors.

A corpus is a directory of ``part-XXXXX-of-YYYYY.arrow`` files (or a single ``.arrow`` file) in the
format of ``gluonts.dataset.arrow.ArrowWriter``: a ``start`` timestamp, a ``target`` that is (T,) for
univariate or (D, T) for multivariate series, and any metadata columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from gluonts.dataset.arrow import ArrowFile, ArrowWriter

from ..errors import DataError
from ..io.atomic import atomic_file

START = pd.Timestamp("2000-01-01 00:00")
FREQ = "h"  # the nominal frequency Chronos assigns to its training corpora
SUFFIX = ".arrow"


def shard_name(shard_index: int, num_shards: int) -> str:
    return f"part-{shard_index:05d}-of-{num_shards:05d}{SUFFIX}"


def write_series(
    entries: Iterable[dict[str, Any]], path: str | Path, compression: str | None = "lz4"
) -> Path:
    """Write entries (each with a ``target``) to one Arrow file, atomically."""
    path = Path(path)
    entries = [_with_start(e) for e in entries]
    with atomic_file(path, suffix=SUFFIX) as tmp:
        ArrowWriter(compression=compression).write_to_file(entries, tmp)
    return path


def _with_start(entry: dict[str, Any]) -> dict[str, Any]:
    if "target" not in entry:
        raise ValueError("every entry needs a 'target'")
    out = {"start": START, **entry}
    out["target"] = np.asarray(entry["target"], dtype=np.float32)
    return out


def corpus_files(path: str | Path) -> list[Path]:
    """The Arrow files of a corpus given as a file or a directory of shards (names starting with ``.``
    or ``_`` are not shards: temporary files, the index of :mod:`tsfmlab.data.corpus`)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == SUFFIX and not p.name.startswith((".", "_")))
        if not files:
            raise DataError(f"{path}: no {SUFFIX} files in this corpus directory")
        return files
    raise DataError(f"{path}: corpus not found (run the stage that produces it, e.g. `dvc repro`)")


def validate_file(path: Path) -> int:
    """Open an Arrow file fully enough to detect corruption; return its row count."""
    try:
        with pa.memory_map(str(path)) as source:
            reader = pa.ipc.open_file(source)
            if "target" not in reader.schema.names:
                raise DataError(f"{path}: Arrow file has no 'target' column")
            n = 0
            for i in range(reader.num_record_batches):
                batch = reader.get_batch(i)
                batch.validate(full=True)
                n += batch.num_rows
            return n
    except DataError:
        raise
    except (pa.ArrowException, OSError, ValueError) as err:
        raise DataError(f"{path}: corrupted or not an Arrow IPC file ({err})") from err


def iter_series(path: str | Path) -> Iterator[dict[str, Any]]:
    """Iterate over the entries of a corpus (file or shard directory)."""
    for file in corpus_files(path):
        validate_file(file)
        yield from ArrowFile(file)


def read_series(path: str | Path) -> list[dict[str, Any]]:
    return list(iter_series(path))


def read_targets(path: str | Path) -> list[np.ndarray]:
    """All targets of a corpus as float32 arrays, each (T,) or (D, T)."""
    return [np.asarray(e["target"], dtype=np.float32) for e in iter_series(path)]


class SeriesStats:
    """Content statistics of univariate series, accumulated one series at a time (channels of (D, T)
    targets count as series): the mean standard deviation and the mean lag-1 autocorrelation."""

    def __init__(self) -> None:
        self.std_sum = self.ac_sum = 0.0
        self.n = 0

    def add(self, x: np.ndarray) -> None:
        for ch in np.atleast_2d(np.asarray(x, dtype=np.float64)):
            ch = ch[np.isfinite(ch)]
            if len(ch) < 3:
                continue
            d = ch - ch.mean()
            denom = float(d @ d)
            self.std_sum += float(ch.std())
            self.ac_sum += float(d[1:] @ d[:-1]) / denom if denom > 0 else 0.0
            self.n += 1

    def result(self) -> dict[str, float]:
        if not self.n:
            return {"std_mean": float("nan"), "lag1_autocorr_mean": float("nan")}
        return {
            "std_mean": round(self.std_sum / self.n, 6),
            "lag1_autocorr_mean": round(self.ac_sum / self.n, 6),
        }


def corpus_stats(series: Iterable[np.ndarray]) -> dict[str, float]:
    """:class:`SeriesStats` of some series."""
    stats = SeriesStats()
    for x in series:
        stats.add(x)
    return stats.result()
