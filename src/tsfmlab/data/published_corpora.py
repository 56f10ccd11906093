"""The published Chronos training corpora as training corpora, streamed into cached Arrow shards.

``training_corpus_tsmixup_10m`` (10M TSMixup series) and ``training_corpus_kernel_synth_1m`` (1M
KernelSynth series) of ``autogluon/chronos_datasets`` are Parquet files with one row per series:
``id`` (string), ``timestamp`` (a list of timestamps) and ``target`` (a list of float64). A training
corpus path (``teacher.data.training_data_paths`` and the others) may name them:

* ``chronos:training_corpus_tsmixup_10m``: streamed from the hub with ``datasets`` (online);
* a local directory (or file) of Parquet files in that schema, e.g. the hub's
  ``training_corpus/tsmixup_10m/`` downloaded beforehand (offline).

Either is converted once, a record batch at a time, into a corpus of :mod:`tsfmlab.data.corpus` (float32
targets, the ``id`` column kept as ``item_id``, the timestamps dropped: Chronos trains on values only)
under the cache directory ``$TSFMLAB_CACHE/corpora`` (default ``~/.cache/tsfmlab/corpora``). The
cache entry is keyed by the name, or by the Parquet files' names, sizes and footers, and written
atomically under a file lock, so concurrent ranks convert it once. Arrow corpora are used in place.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io.atomic import atomic_dir

HUB_REPO = "autogluon/chronos_datasets"  # the Chronos training corpora's and benchmarks' hub repository
HUB_PREFIX = "chronos:"
TRAINING_CORPORA = ("training_corpus_tsmixup_10m", "training_corpus_kernel_synth_1m")
SHARD_SIZE = 65536
READ_ROWS = 1024  # Parquet rows decoded at a time


def cache_root() -> Path:
    root = os.environ.get("TSFMLAB_CACHE") or Path.home() / ".cache" / "tsfmlab"
    return Path(root) / "corpora"


def parquet_files(path: Path) -> list[Path]:
    if path.is_file() and path.suffix == ".parquet":
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*.parquet") if not p.name.startswith((".", "_")))
    return []


def open_corpus(path: str | Path):
    """A training corpus by path, as a :class:`tsfmlab.data.corpus.Corpus` (read a window at a time): a corpus
    directory or Arrow file (in place), a Parquet corpus or a published corpus name (converted once)."""
    from .corpus import Corpus

    return Corpus(resolve(path))


def resolve(path: str | Path) -> Path:
    """The Arrow corpus a training path stands for (converting a Parquet or hub corpus first)."""
    text = str(path)
    if text.startswith(HUB_PREFIX):
        name = text[len(HUB_PREFIX) :]
        if name not in TRAINING_CORPORA:
            raise DataError(
                f"{text}: unknown published training corpus; known: "
                + ", ".join(HUB_PREFIX + n for n in TRAINING_CORPORA)
            )
        return _cached(name, lambda: _hub_rows(name), source=text)
    path = Path(path)
    files = parquet_files(path)
    if files and not any(path.glob("*.arrow")):
        return _cached(f"{path.name}-{_fingerprint(files)}", lambda: _parquet_rows(files), source=str(path))
    return path


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        digest.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:  # the footer: schema, row groups and their statistics
            fh.seek(max(0, size - 65536))
            digest.update(fh.read())
    return digest.hexdigest()[:16]


def _cached(key: str, rows, source: str) -> Path:
    from filelock import FileLock

    from .corpus import CorpusWriter

    target = cache_root() / key
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_dir():
            return target
        n = 0
        with atomic_dir(target) as tmp:
            with CorpusWriter(tmp, SHARD_SIZE) as writer:
                for item_id, values in rows():
                    writer.add({"target": values, "item_id": item_id})
                    n += 1
            if n == 0:
                raise DataError(f"{source}: no series")
        print(f"{source}: {n} series cached as Arrow shards in {target}")
    return target


def _batch_rows(batch, source: str) -> Iterator[tuple[str, np.ndarray]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if "target" not in batch.schema.names:
        raise DataError(f"{source}: no 'target' column (expected id, timestamp, target)")
    target = batch.column("target")
    kind = target.type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not (
        pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)
    ):
        raise DataError(f"{source}: 'target' must be a list of numbers, got {kind}")
    values = pc.fill_null(pc.cast(target.flatten(), pa.float32()), float("nan")).to_numpy()
    offsets = target.offsets.to_numpy()
    offsets = offsets - offsets[0]
    ids = batch.column("id").to_pylist() if "id" in batch.schema.names else [None] * len(target)
    for r in range(len(target)):
        yield str(ids[r]), values[offsets[r] : offsets[r + 1]]


def _parquet_rows(files: list[Path]) -> Iterator[tuple[str, np.ndarray]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for f in files:
        try:
            reader = pq.ParquetFile(str(f))
            columns = [c for c in ("id", "target") if c in reader.schema_arrow.names]
            for batch in reader.iter_batches(batch_size=READ_ROWS, columns=columns):
                yield from _batch_rows(batch, str(f))
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"{f}: corrupted or not a Parquet file ({err})") from err


def _hub_rows(name: str) -> Iterator[tuple[str, np.ndarray]]:
    try:
        import datasets

        stream = datasets.load_dataset(HUB_REPO, name, split="train", streaming=True)
        tables = iter(stream.with_format("arrow").iter(batch_size=1024))
        first = next(tables)
    except Exception as err:  # offline, unreachable hub, missing config: all end the same way
        raise DataError(
            f"{HUB_PREFIX}{name}: cannot stream {HUB_REPO}/{name} ({type(err).__name__}: {err}); offline, "
            f"give a local directory of its Parquet files instead"
        ) from err
    for table in itertools.chain([first], tables):
        for batch in table.to_batches():
            yield from _batch_rows(batch, HUB_PREFIX + name)
