"""Corpora of any size: written as a stream of Arrow shards, read a window at a time through an index.

Layout of a corpus directory (readable by gluonts' ``ArrowFile`` and by :func:`arrow_io.iter_series`):

* ``part-PPPPP-KKKKK.arrow``: uncompressed Arrow IPC files in gluonts' encoding (a ``start``
  timestamp, a flat float32 ``target``, ``target._np_shape`` for (D, T) targets, metadata columns),
  at most ``shard_size`` series each, written in record batches cut at ``batch_bytes`` of values (or
  ``batch_rows`` rows). Few, large batches keep what a reader touches to check a file small.
  ``PPPPP`` is the writing part (one per machine when a corpus is generated in parts), ``KKKKK`` the
  file within it. Uncompressed, so a reader finds a series' bytes in the file and reads just those.
* ``_index-PPPPP-of-NNNNN.npy``: a (5, N) int64 array, one column per univariate series (a channel of
  an entry): its file, row and channel, its length and its number of finite values. Beside it,
  ``_index-PPPPP-of-NNNNN.json`` lists the part's files with their sizes and the rows of each record
  batch, so a reader checks the shards against it before any work and finds a row's batch without
  reading the others. Both are written by copying files the writer streamed to disk: writing the
  index takes no memory however many series it holds.

:class:`CorpusWriter` holds one record batch at a time: a generator's memory does not grow with the
corpus. :class:`Corpus` maps the index (40 bytes per series, shared by the processes that read it) and
opens the files in each process that reads them (DataLoader workers and ranks open their own); a series
is read with ``pread`` at the position the record batch's header gives, so nothing stays resident but
what a process is using. Filtering by length and missing share reads the index only. A directory of
Arrow files without an index (gluonts' own corpora) is
indexed on opening, one pass with a batch in memory at a time; ``python -m tsfmlab.data.corpus index
DIR`` writes the index once. Parquet corpora (the published Chronos training corpora) are converted to
this layout by :mod:`tsfmlab.data.published_corpora` (whose ``open_corpus`` opens any training corpus).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import DataError
from .arrow_io import START, SUFFIX, corpus_files

FORMAT = "tsfmlab-corpus/2"
INDEX_PREFIX = "_index"
SHAPE = "target._np_shape"
BATCH_ROWS = 65536  # at most this many rows per record batch ...
BATCH_BYTES = 8 << 20  # ... and a batch is cut once its targets hold 8 MiB: the writer's memory bound


def part_file_name(part: int, k: int) -> str:
    return f"part-{part:05d}-{k:05d}{SUFFIX}"


def index_name(part: int, num_parts: int) -> str:
    """The part's index header (JSON); its columns are the ``.npy`` file of the same stem."""
    return f"{INDEX_PREFIX}-{part:05d}-of-{num_parts:05d}.json"


INDEX_COLUMNS = ("file", "row", "channel", "length", "n_finite")


class CorpusWriter:
    """Write entries (dicts with a ``target`` of shape (T,) or (D, T)) as a stream of Arrow shards.

    ``add`` buffers at most one record batch; ``close`` writes the index. Use it on a directory that
    is then renamed into place (``atomic_dir``), or as a context manager that closes on success.
    The bytes depend on the entries, ``shard_size``, ``batch_rows`` and ``batch_bytes`` only."""

    def __init__(
        self,
        directory: str | Path,
        shard_size: int,
        part: int = 0,
        num_parts: int = 1,
        batch_rows: int = BATCH_ROWS,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        if shard_size < 1 or batch_rows < 1 or batch_bytes < 1:
            raise ValueError(f"shard_size, batch_rows, batch_bytes must be >= 1: {shard_size}, {batch_rows}, {batch_bytes}")
        self.batch_bytes = int(batch_bytes)
        self._buffered_bytes = 0
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.shard_size = int(shard_size)
        self.batch_rows = int(batch_rows)
        self.part, self.num_parts = int(part), int(num_parts)
        self.files: list[dict[str, Any]] = []
        self._buffer: list[dict[str, Any]] = []
        self._writer: pa.RecordBatchFileWriter | None = None
        self._sink: Any = None
        self._rows_in_file = 0
        self._schema: pa.Schema | None = None
        # the index grows on disk, one raw int64 file per column, until close() concatenates them
        self._columns = [open(self.directory / f".index-{self.part:05d}-{name}.tmp", "wb") for name in INDEX_COLUMNS]
        self.n_entries = 0

    def __enter__(self) -> CorpusWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
        for column in self._columns:
            column.close()

    def add(self, entry: dict[str, Any]) -> None:
        if "target" not in entry:
            raise ValueError("every entry needs a 'target'")
        target = np.asarray(entry["target"], dtype=np.float32)
        if target.ndim not in (1, 2):
            raise ValueError(f"a target is (T,) or (D, T), got shape {target.shape}")
        self._buffer.append({"start": START, **entry, "target": target})
        self._buffered_bytes += target.nbytes
        full = len(self._buffer) >= min(self.batch_rows, self.shard_size - self._rows_in_file)
        if full or self._buffered_bytes >= self.batch_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        batch, index = self._encode(self._buffer)
        if self._writer is None:
            name = part_file_name(self.part, len(self.files))
            self._sink = pa.OSFile(str(self.directory / name), "wb")
            self._writer = pa.ipc.new_file(self._sink, self._schema)
            self.files.append({"name": name, "rows": 0, "batches": []})
        self._writer.write_batch(batch)
        self.files[-1]["batches"].append(batch.num_rows)
        index[:, 0] = len(self.files) - 1
        index[:, 1] += self._rows_in_file
        for i, column in enumerate(self._columns):
            column.write(np.ascontiguousarray(index[:, i], dtype="<i8").tobytes())
        self._rows_in_file += batch.num_rows
        self.files[-1]["rows"] = self._rows_in_file
        self.n_entries += batch.num_rows
        self._buffer, self._buffered_bytes = [], 0
        if self._rows_in_file >= self.shard_size:
            self._close_file()

    def _close_file(self) -> None:
        self._writer.close()
        self._sink.close()
        self.files[-1]["bytes"] = (self.directory / self.files[-1]["name"]).stat().st_size
        self._writer, self._sink, self._rows_in_file = None, None, 0

    def _encode(self, entries: list[dict[str, Any]]) -> tuple[pa.RecordBatch, np.ndarray]:
        targets = [e["target"] for e in entries]
        multivariate = targets[0].ndim == 2 if self._schema is None else SHAPE in self._schema.names
        if any((t.ndim == 2) != multivariate for t in targets):
            raise ValueError("a corpus holds either (T,) or (D, T) targets, not both")
        flat = [t.reshape(-1) for t in targets]
        offsets = np.zeros(len(flat) + 1, dtype=np.int64)
        np.cumsum([len(f) for f in flat], out=offsets[1:])
        if offsets[-1] > np.iinfo(np.int32).max:
            raise ValueError("a record batch holds more than 2^31 values: lower batch_rows")
        values = np.concatenate(flat) if flat else np.zeros(0, np.float32)
        columns: dict[str, pa.Array] = {}
        for key in entries[0]:
            if key == "target":
                columns[key] = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))
                if multivariate:
                    columns[SHAPE] = pa.array([list(t.shape) for t in targets], pa.list_(pa.int64()))
            else:
                kind = None if self._schema is None else self._schema.field(key).type
                columns[key] = pa.array([e[key] for e in entries], type=kind)
        if self._schema is None:
            self._schema = pa.schema([(k, v.type) for k, v in columns.items()])
        batch = pa.record_batch(list(columns.values()), schema=self._schema)
        rows = []
        for r, t in enumerate(targets):
            channels = np.atleast_2d(t)
            finite = np.isfinite(channels).sum(axis=1)
            for c in range(len(channels)):
                rows.append((0, r, c, channels.shape[1], int(finite[c])))
        return batch, np.array(rows, dtype=np.int64).reshape(-1, 5)

    def close(self) -> dict[str, Any]:
        """Write what is buffered and the index; return the part's summary."""
        self._flush()
        if self._writer is not None:
            self._close_file()
        for column in self._columns:
            column.close()
        sources = [Path(column.name) for column in self._columns]
        series = write_index(self.directory / index_name(self.part, self.num_parts), sources, self.files)
        for path in sources:
            path.unlink()
        return {"entries": self.n_entries, "series": series, "files": len(self.files)}


def write_index(header: Path, columns: list[Path], files: list[dict[str, Any]]) -> int:
    """Write an index from raw little-endian int64 column files (``INDEX_COLUMNS`` order): the ``.npy``
    is their concatenation behind a header, copied a block at a time, and ``header`` the JSON listing
    ``files``. Memory stays that of a copy buffer whatever the corpus size. Returns the series count."""
    sizes = {path.stat().st_size for path in columns}
    if len(sizes) != 1 or len(columns) != len(INDEX_COLUMNS):
        raise ValueError(f"index columns of unequal sizes: {sorted(sizes)}")
    series = sizes.pop() // 8
    with open(header.with_suffix(".npy"), "wb") as out:
        np.lib.format.write_array_header_1_0(
            out, {"descr": "<i8", "fortran_order": False, "shape": (len(INDEX_COLUMNS), series)}
        )
        for path in columns:
            with open(path, "rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)
    header.write_text(json.dumps({"format": FORMAT, "series": series, "columns": list(INDEX_COLUMNS), "files": files}))
    return series


Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # file, row, channel, length, n_finite


def _read_index(header: Path) -> tuple[Columns, list[dict[str, Any]]]:
    """The index columns as read-only views on the memory-mapped ``.npy`` (shared by the processes that
    read the corpus, not copied into each), and the files its JSON header lists."""
    try:
        meta = json.loads(header.read_text())
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("columns") != list(INDEX_COLUMNS):
            raise ValueError(f"not a {FORMAT} index")
        files, series = meta["files"], int(meta["series"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{header}: corrupted or not a corpus index ({err})") from err
    path = header.with_suffix(".npy")
    try:
        if series:
            table = np.load(path, mmap_mode="r", allow_pickle=False)
        else:  # nothing to map (a zero-length map is an error): read the header alone
            table = np.load(path, allow_pickle=False)
        if table.dtype != np.dtype("<i8") or table.shape != (len(INDEX_COLUMNS), series):
            raise ValueError(f"{table.dtype} {table.shape} where the header records <i8 (5, {series})")
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: corrupted or not a corpus index ({err})") from err
    return tuple(table[i] for i in range(len(INDEX_COLUMNS))), files


@dataclass
class _Batch:
    offsets_at: int  # file positions of the target's offsets (int32) and of its first value
    values_at: int
    itemsize: int  # bytes per value (4: float32; a foreign corpus may hold float64)
    shapes: pa.Array | None
    in_memory: tuple[np.ndarray, np.ndarray] | None = None  # a compressed batch, decompressed: offsets, values


class _Shard:
    """One Arrow file: row -> target values, read with ``pread`` at the positions the batch headers give.

    The file is memory-mapped for its headers only (where each record batch's buffers lie); a row's
    offsets and values are read into fresh memory, so a process's resident memory holds the windows it
    reads and never grows with the share of the corpus it has touched. ``batch_rows``: the rows of each
    record batch, from the index (else read from the batches' headers)."""

    MAX_CACHED = 256  # record batch layouts kept (a few numbers each; a compressed batch: its values)

    def __init__(self, path: Path, batch_rows: list[int] | None = None) -> None:
        self.path = path
        try:
            self._map = pa.memory_map(str(path), "r")
            self._base = self._map.read_buffer(1).address if self._map.size() else 0  # the map's start
            self._map.seek(0)
            self._reader = pa.ipc.open_file(self._map)
            check_schema(self._reader.schema, path)
            self._shapes = SHAPE in self._reader.schema.names
            n = self._reader.num_record_batches
            if batch_rows is None:
                batch_rows = [self._reader.get_batch(b).num_rows for b in range(n)]
            elif len(batch_rows) != n:
                raise DataError(f"{path}: {n} record batches where the index records {len(batch_rows)}")
        except DataError:
            raise
        except (pa.ArrowException, OSError, ValueError) as err:
            raise DataError(f"{path}: corrupted, truncated or not an Arrow IPC file ({err})") from err
        self.batch_rows = [int(r) for r in batch_rows]
        self.starts = np.concatenate([[0], np.cumsum(self.batch_rows)]).astype(np.int64)
        self.num_rows = int(self.starts[-1])
        self._cache: dict[int, _Batch] = {}
        self._fd: int | None = None

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def _read(self, nbytes: int, at: int, dtype) -> np.ndarray:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        data = os.pread(self._fd, nbytes, at)
        if len(data) != nbytes:
            raise DataError(f"{self.path}: truncated (read {len(data)} of {nbytes} bytes at {at})")
        return np.frombuffer(data, dtype=dtype)

    def _layout(self, batch: pa.RecordBatch) -> _Batch:
        target = batch.column("target")
        values = target.values
        itemsize = values.type.bit_width // 8
        layout = _Batch(
            offsets_at=target.buffers()[1].address - self._base + 4 * target.offset,
            values_at=values.buffers()[1].address - self._base + itemsize * values.offset,
            itemsize=itemsize,
            shapes=batch.column(SHAPE) if self._shapes else None,
        )
        if not 0 <= layout.values_at < self._map.size():  # compressed (gluonts' lz4): decompressed copies
            offsets = np.frombuffer(target.buffers()[1], dtype=np.int32)[target.offset : target.offset + len(target) + 1]
            layout.in_memory = (offsets, values.to_numpy(zero_copy_only=False))
        return layout

    def batch(self, b: int) -> _Batch:
        if b not in self._cache:
            layout = self._layout(self._reader.get_batch(b))
            if len(self._cache) >= (4 if layout.in_memory is not None else self.MAX_CACHED):
                self._cache.clear()
            self._cache[b] = layout
        return self._cache[b]

    def target(self, row: int) -> np.ndarray:
        """The row's target as a (D, T) array (float32 as written; a foreign corpus's own float type)."""
        b = int(np.searchsorted(self.starts, row, side="right")) - 1
        batch, r = self.batch(b), row - int(self.starts[b])
        if batch.in_memory is not None:
            offsets, values = batch.in_memory
            values = values[offsets[r] : offsets[r + 1]]
        else:
            start, stop = self._read(8, batch.offsets_at + 4 * r, np.int32)
            size = batch.itemsize
            values = self._read(int(stop - start) * size, batch.values_at + int(start) * size, f"<f{size}")
        if batch.shapes is not None:
            return values.reshape(batch.shapes[r].as_py())
        return values.reshape(1, -1)

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """Per row: (channels, length), from the offsets and shapes only; checks every batch's rows."""
        chans, lens = [], []
        try:
            for b, expected in enumerate(self.batch_rows):
                batch = self._reader.get_batch(b)
                batch.validate()
                if batch.num_rows != expected:
                    raise DataError(
                        f"{self.path}: record batch {b} has {batch.num_rows} rows where the index records {expected}"
                    )
                layout = self._layout(batch)
                if layout.in_memory is not None:
                    offsets = layout.in_memory[0]
                else:
                    offsets = self._read(4 * (batch.num_rows + 1), layout.offsets_at, np.int32)
                n = np.diff(offsets.astype(np.int64))
                if (n < 0).any() or offsets[-1] * layout.itemsize > batch.column("target").values.buffers()[1].size:
                    raise DataError(f"{self.path}: record batch {b} has corrupted target offsets")
                if layout.shapes is None:
                    chans.append(np.ones(len(n), np.int64))
                    lens.append(n)
                else:
                    shape = np.array(layout.shapes.to_pylist(), dtype=np.int64).reshape(-1, 2)
                    if (shape[:, 0] * shape[:, 1] != n).any():
                        raise DataError(f"{self.path}: {SHAPE} disagrees with the target lengths")
                    chans.append(shape[:, 0])
                    lens.append(shape[:, 1])
        except (pa.ArrowException, ValueError) as err:
            raise DataError(f"{self.path}: corrupted record batch ({err})") from err
        if not chans:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(chans), np.concatenate(lens)


def check_schema(schema: pa.Schema, path: Path) -> None:
    if "target" not in schema.names:
        raise DataError(f"{path}: Arrow file has no 'target' column")
    kind = schema.field("target").type
    if not (pa.types.is_list(kind) and pa.types.is_floating(kind.value_type)):
        raise DataError(f"{path}: 'target' must be a list of floats, got {kind}")
    if SHAPE in schema.names and not pa.types.is_list(schema.field(SHAPE).type):
        raise DataError(f"{path}: {SHAPE} must be a list of integers")


class Corpus:
    """A corpus directory (or one Arrow file) as univariate series ``0..len-1``, read on demand.

    ``lengths``, ``n_finite`` and the (file, row, channel) of every series come from the index (mapped);
    the values are read from the files when asked for. Pickling keeps the path and the index only, so
    each process (DataLoader worker, rank) opens the files itself."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        files = corpus_files(self.path)
        indexes = sorted(self.path.glob(f"{INDEX_PREFIX}-*-of-*.json")) if self.path.is_dir() else []
        self._batch_rows: list[list[int]] = []
        self._mapped: tuple[str, int, int] | None = None  # (.npy path, data offset, series) of one mapped part
        if indexes:
            self.files, columns = self._from_indexes(indexes, files)
        else:
            self.files, columns = files, self._scan(files)
        self.file, self.row, self.channel, self.lengths, self.n_finite = columns
        self._columns = columns
        self._shards: dict[int, _Shard] = {}
        self._pid = os.getpid()

    def _from_indexes(self, indexes: list[Path], files: list[Path]) -> tuple[list[Path], Columns]:
        listed, parts = [], []
        expected = None
        for path in indexes:
            total = path.stem[len(INDEX_PREFIX) + 1 :].split("-of-")
            if expected is None:
                expected = int(total[1]) if len(total) == 2 and total[1].isdigit() else None
            columns, meta = _read_index(path)
            if listed:  # a later part: its file numbers follow the earlier parts'
                columns = (columns[0] + len(listed), *columns[1:])
            parts.append(columns)
            listed += meta
        if expected is not None and len(indexes) != expected:
            raise DataError(f"{self.path}: {len(indexes)} index file(s) for a corpus of {expected} parts")
        names = [f["name"] for f in listed]
        present = {p.name for p in files}
        missing = [n for n in names if n not in present]
        extra = sorted(present - set(names))
        if missing or extra:
            raise DataError(
                f"{self.path}: the index disagrees with the shards (missing: {missing or 'none'}; "
                f"not indexed: {extra or 'none'})"
            )
        paths = [self.path / n for n in names]
        self._batch_rows = [f.get("batches") for f in listed]
        columns = parts[0] if len(parts) == 1 else tuple(np.concatenate(c) for c in zip(*parts))
        self._columns = columns
        if len(parts) == 1 and isinstance(columns[0], np.memmap):
            self._mapped = (str(indexes[0].with_suffix(".npy")), int(columns[0].offset), len(columns[0]))
        counts, last = np.zeros(len(paths), np.int64), -1
        for _, (file,) in self._chunks(0):  # the file column, in file order, read a block at a time
            if len(file) and (file[0] < last or (np.diff(file) < 0).any()):
                raise DataError(f"{indexes[0]}: index rows out of file order")
            if len(file) and (file.min() < 0 or file.max() >= len(paths)):
                raise DataError(f"{indexes[0]}: index rows name files the index does not list")
            counts += np.bincount(file, minlength=len(paths))
            last = int(file[-1]) if len(file) else last
        bounds = np.concatenate([[0], np.cumsum(counts)])
        for k, (path, info) in enumerate(zip(paths, listed)):
            shard = _Shard(path, info.get("batches"))
            size = path.stat().st_size
            if size != info.get("bytes"):
                raise DataError(
                    f"{path}: {size} bytes where the index records {info.get('bytes')} (truncated or rewritten)"
                )
            if shard.num_rows != info["rows"]:
                raise DataError(f"{path}: {shard.num_rows} rows where the index records {info['rows']}")
            chans, lens = shard.lengths()
            mine = self._read(3, int(bounds[k]), int(bounds[k + 1]))
            if len(mine) != chans.sum() or not np.array_equal(mine, np.repeat(lens, chans)):
                raise DataError(f"{path}: series lengths disagree with the index")
        return paths, columns

    def _read(self, column: int, a: int, b: int) -> np.ndarray:
        """Rows ``a:b`` of an index column, copied. A mapped index is read with ``pread``, not through
        the map, so a pass over the whole index leaves none of its pages resident in this process."""
        if self._mapped is None:
            return np.asarray(self._columns[column][a:b])
        path, offset, series = self._mapped
        return np.fromfile(path, dtype="<i8", count=max(b - a, 0), offset=offset + (column * series + a) * 8)

    def _chunks(self, *columns: int, step: int = 1 << 20) -> Iterator[tuple[int, list[np.ndarray]]]:
        """``(start, [column blocks])`` over the whole index, ``step`` rows (8 MB a column) at a time."""
        n = len(self._columns[0])
        for a in range(0, n, step):
            yield a, [self._read(c, a, min(a + step, n)) for c in columns]

    def _scan(self, files: list[Path]) -> Columns:
        rows = []
        for k, path in enumerate(files):
            shard = _Shard(path)
            chans, lens = shard.lengths()
            for row in range(shard.num_rows):
                finite = np.isfinite(np.atleast_2d(shard.target(row))).sum(axis=1)
                rows += [(k, row, c, lens[row], finite[c]) for c in range(chans[row])]
        table = np.array(rows, dtype=np.int64).reshape(-1, 5)
        return tuple(np.ascontiguousarray(table[:, i]) for i in range(len(INDEX_COLUMNS)))

    def __len__(self) -> int:
        return len(self.lengths)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_shards"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._shards = {}

    def shard(self, k: int) -> _Shard:
        if self._pid != os.getpid():  # a forked worker: map the files anew
            self._shards, self._pid = {}, os.getpid()
        if k not in self._shards:
            self._shards[k] = _Shard(self.files[k], self._batch_rows[k] if self._batch_rows else None)
        return self._shards[k]

    def __getitem__(self, i: int) -> np.ndarray:
        return self.series(i)

    def series(self, i: int) -> np.ndarray:
        """Series ``i``, read from its file (non-finite values as stored)."""
        target = self.shard(int(self.file[i])).target(int(self.row[i]))
        return target[int(self.channel[i])]

    def eligible(self, min_length: int, max_missing_prop: float = 1.0) -> np.ndarray:
        """Positions of the series with at least ``min_length`` points, some finite value and a share of
        non-finite values at most ``max_missing_prop`` (from the index: no value is read)."""
        blocks = ((a, lengths, finite) for a, (lengths, finite) in self._chunks(3, 4))  # read, not mapped
        return eligible_positions(blocks, len(self), min_length, max_missing_prop)

    def entries(self) -> np.ndarray:
        """Positions of each entry's first channel (one per (file, row))."""
        chunks = [np.flatnonzero(channel == 0) + a for a, (channel,) in self._chunks(2)]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int64)

    def target(self, i: int) -> np.ndarray:
        """The whole (D, T) target of the entry that series ``i`` belongs to, read from its file."""
        return self.shard(int(self.file[i])).target(int(self.row[i]))

    def column(self, name: str) -> list[Any]:
        """A metadata column of every entry, in entry order (read batch by batch)."""
        out = []
        for path in self.files:
            with pa.memory_map(str(path), "r") as source:
                reader = pa.ipc.open_file(source)
                if name not in reader.schema.names:
                    raise DataError(f"{path}: no column {name!r}")
                for b in range(reader.num_record_batches):
                    out += reader.get_batch(b).column(name).to_pylist()
        return out


def eligible_positions(
    blocks: Iterable[tuple[int, np.ndarray, np.ndarray]], total: int, min_length: int, max_missing_prop: float
) -> np.ndarray:
    """Positions of the series that :meth:`Corpus.eligible` keeps, from ``(start, lengths, n_finite)``
    blocks: memory stays that of the positions kept."""
    chunks = []
    for a, lengths, finite in blocks:
        keep = (lengths >= min_length) & (finite > 0) & (lengths - finite <= max_missing_prop * lengths)
        chunks.append(np.flatnonzero(keep) + a)
    positions = np.concatenate(chunks) if chunks else np.zeros(0, np.int64)
    return positions.astype(np.int32) if total < 2**31 else positions


def iter_batches(path: str | Path) -> Iterator[pa.RecordBatch]:
    """The record batches of a corpus, read one at a time (no map: nothing stays resident)."""
    for file in corpus_files(path):
        with pa.OSFile(str(file), "rb") as source:
            reader = pa.ipc.open_file(source)
            for b in range(reader.num_record_batches):
                yield reader.get_batch(b)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tsfmlab.data.corpus")
    sub = parser.add_subparsers(dest="command", required=True)
    idx = sub.add_parser("index", help="write the index of an Arrow corpus directory that has none")
    idx.add_argument("directory")
    args = parser.parse_args(argv)
    directory = Path(args.directory)
    header = directory / index_name(0, 1)
    if any(directory.glob(f"{INDEX_PREFIX}-*")):
        raise SystemExit(f"{directory}: already indexed")
    corpus = Corpus(directory)
    index = [corpus.file, corpus.row, corpus.channel, corpus.lengths, corpus.n_finite]
    files = [{"name": p.name, "rows": corpus.shard(k).num_rows, "bytes": p.stat().st_size,
              "batches": corpus.shard(k).batch_rows} for k, p in enumerate(corpus.files)]  # fmt: skip
    sources = [directory / f".index-{name}.tmp" for name in INDEX_COLUMNS]
    try:
        for path, column in zip(sources, index):
            np.asarray(column, dtype="<i8").tofile(path)
        write_index(header, sources, files)
    finally:
        for path in sources:
            path.unlink(missing_ok=True)
    print(f"{directory}: {len(corpus)} series in {len(files)} file(s) indexed")


if __name__ == "__main__":
    main()
