"""The Chronos benchmarks' datasets in their published schema, split as the published scores were.

A dataset of ``autogluon/chronos_datasets`` (and ``chronos_datasets_extra``) has one row per item: ``id``,
``timestamp`` (a list of datetimes) and one or more numeric list columns, each a univariate series of
that item (``target``, or e.g. several sensors). :func:`read_dataset` reads one from a local Parquet or
Arrow file in that schema (offline), or by its hub name through the ``datasets`` library (online).

Each benchmark task (the Chronos paper's zero-shot and in-domain configs) gives ``offset`` (where the
first forecast window starts, counted back from every series' end), ``prediction_length`` and
``num_rolls`` (windows, ``prediction_length`` apart): ``evaluate_forecast``'s dataset params of the same
names, cut with gluonts' ``split`` as the published evaluation does
(:func:`tsfmlab.evaluation.forecasting.cut_windows`). MASE's season (and seasonal naive's) is gluonts'
``get_seasonality`` of the dataset's frequency (:func:`season_length`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError

HUB_REPO = "autogluon/chronos_datasets"
EXTRA_REPO = "autogluon/chronos_datasets_extra"
#: Benchmark datasets that live in the extra repository (the zero-shot benchmark's ETTh and ETTm).
EXTRA_DATASETS = frozenset({"ETTh", "ETTm", "brazilian_cities_temperature", "spanish_energy_and_weather"})
LOCAL_SUFFIXES = (".parquet", ".arrow", ".feather")
#: Benchmark datasets whose source file ships inside an installed package: the Monash archive's ``.tsf``
#: that the hub's ``monash_*`` datasets were converted from. Read offline, same series, same order.
PACKAGED = {"monash_m1_yearly": ("aeon", "datasets/data/m1_yearly_dataset/m1_yearly_dataset.tsf")}
TSF_FREQUENCIES = {"yearly": "Y", "quarterly": "Q", "monthly": "M", "weekly": "W", "daily": "D", "hourly": "h"}


def period_alias(freq: str) -> str:
    """A pandas offset alias (``infer_freq``'s, e.g. ``MS``, ``QE-DEC``) as a period alias (``M``, ``Q``)."""
    base = freq.split("-")[0]
    if base in ("MS", "ME", "BMS", "BME", "SMS", "SME", "M"):
        return "M"
    if base.lstrip("B").startswith(("QS", "QE", "Q")):
        return "Q"
    if base.lstrip("B").startswith(("YS", "YE", "AS", "A", "Y")):
        return "Y"
    return freq


def season_length(freq: str) -> int:
    """gluonts' seasonality of a period alias (``h`` 24, ``D`` 1, ``M`` 12, ...): MASE's and seasonal
    naive's season in the published scores."""
    from gluonts.time_feature import get_seasonality

    offset_alias = {"M": "ME", "Q": "QE", "Y": "YE"}.get(freq, freq)  # what pandas' to_offset expects
    return int(get_seasonality(offset_alias))


def _read_table(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".parquet":
            return pq.read_table(path)
        with pa.memory_map(str(path)) as source:
            try:
                return pa.ipc.open_file(source).read_all()
            except pa.ArrowInvalid:
                source.seek(0)
                return pa.ipc.open_stream(source).read_all()
    except (OSError, pa.ArrowInvalid) as err:
        raise DataError(f"{path}: not a readable Parquet/Arrow table ({err})") from err


def hub_repo(name: str) -> str:
    """The hub repository that holds benchmark dataset ``name``."""
    return EXTRA_REPO if name in EXTRA_DATASETS else HUB_REPO


def _hub_table(name: str):
    import datasets

    try:
        return datasets.load_dataset(hub_repo(name), name, split="train").with_format("arrow")[:]
    except (ConnectionError, OSError, ValueError) as err:  # offline, unknown config, no such repository
        raise DataError(
            f"benchmark dataset {name!r} is a hub name, read from {hub_repo(name)} through `datasets`, which "
            f"failed ({type(err).__name__}: {str(err)[:200]}); offline, give a local Parquet/Arrow file in the "
            f"{HUB_REPO} schema"
        ) from err


def packaged_path(name: str) -> Path | None:
    """The installed copy of benchmark dataset ``name`` (:data:`PACKAGED`), or None."""
    import importlib.util

    if name not in PACKAGED:
        return None
    package, rel = PACKAGED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / rel
    return path if path.is_file() else None


def read_tsf(path: Path, name: str) -> tuple[list[dict], str]:
    """A Monash ``.tsf`` file as :func:`read_dataset`'s ``(entries, freq)`` (column ``target``)."""
    import pandas as pd
    from aeon.datasets import load_from_tsf_file

    frame, meta = load_from_tsf_file(str(path))
    freq = TSF_FREQUENCIES.get(str(meta.get("frequency")))
    if freq is None:
        raise DataError(f"{path}: unsupported tsf frequency {meta.get('frequency')!r}")
    return [
        {
            "start": pd.Period(row.start_timestamp, freq=freq),
            "target": np.asarray(row.series_value, dtype=np.float32),
            "item_id": f"{name}/{row.series_name}/target",
        }
        for row in frame.itertuples()
    ], freq


def read_dataset(source: str | Path, name: str) -> tuple[list[dict], str]:
    """``(entries, freq)``: one gluonts entry (``start`` period, float32 ``target``, ``item_id``) per
    item and numeric column, in row order, and the dataset's period alias.

    ``source``: a local Parquet/Arrow file, or a hub name (its installed copy when :data:`PACKAGED` has
    one, otherwise downloaded through ``datasets``)."""
    import pandas as pd
    import pyarrow as pa

    path = Path(source)
    if path.suffix in LOCAL_SUFFIXES:
        table = _read_table(path)
    elif (packaged := packaged_path(str(source))) is not None:
        return read_tsf(packaged, name)
    else:
        table = _hub_table(str(source))
    where = str(source)
    if "timestamp" not in table.column_names:
        raise DataError(f"{where}: no timestamp column (the {HUB_REPO} schema: id, timestamp, target)")
    def numeric_list(column: str) -> bool:
        kind = table.schema.field(column).type
        return pa.types.is_list(kind) and (pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type))

    fields = [c for c in table.column_names if c not in ("id", "timestamp") and numeric_list(c)]
    if not fields or table.num_rows == 0:
        raise DataError(f"{where}: no numeric list column (series) or no rows")
    timestamps = table.column("timestamp").to_pylist()
    first = pd.DatetimeIndex(timestamps[0])
    freq = pd.infer_freq(first) if len(first) >= 3 else None
    if freq is None:
        raise DataError(f"{where}: cannot infer the frequency of the first item's timestamps")
    freq = period_alias(freq)
    ids = table.column("id").to_pylist() if "id" in table.column_names else list(range(table.num_rows))
    entries = []
    for column in fields:
        values = table.column(column).to_pylist()
        for item, ts, target in zip(ids, timestamps, values):
            if len(ts) != len(target):
                raise DataError(f"{where}: item {item}: {len(ts)} timestamps but {len(target)} {column} values")
            target = np.asarray([np.nan if v is None else v for v in target], dtype=np.float32)
            entries.append(
                {"start": pd.Period(ts[0], freq=freq), "target": target, "item_id": f"{name}/{item}/{column}"}
            )
    return entries, freq
