"""Datasets in fev's schema: written streamed and atomically, read back by fev item for item."""

import fev
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tsfmlab.data.arrow_io import write_series
from tsfmlab.data.fev_data import (
    nominal_timestamps,
    real_items,
    write_fev_dataset,
    write_fev_shard,
)
from tsfmlab.errors import DataError, ParamError


def test_a_corpus_becomes_one_item_per_channel_read_back_by_fev(tmp_path):
    x = np.arange(60, dtype=np.float32).reshape(3, 20)
    gap = np.arange(20, dtype=np.float32)
    gap[3] = np.inf
    write_series([{"target": x}, {"target": gap}, {"target": np.full(20, np.nan)}], tmp_path / "c.arrow")
    path = write_fev_shard(tmp_path / "c.arrow", tmp_path / "fev", shard_index=1, num_shards=2)
    assert path.name == "part-00001-of-00002.parquet"
    task = fev.Task(dataset_path=str(tmp_path / "fev" / "*.parquet"), horizon=5, task_name="c")
    past, _ = next(task.iter_windows()).get_input_data()
    assert list(past["id"]) == ["00001/0000000/000", "00001/0000000/001", "00001/0000000/002", "00001/0000001/000"]
    np.testing.assert_array_equal(past[1]["target"], x[1, :15])  # the all-NaN series is left out
    assert np.isnan(past[3]["target"][3])  # not finite: NaN, as fev expects a gap
    assert pd.Timestamp(past[0]["timestamp"][1]) == pd.Timestamp("2000-01-01 01:00")


def test_written_in_row_groups_with_the_dates_given(tmp_path):
    items = [{"id": f"s{i}", "timestamp": nominal_timestamps(10, "MS"), "target": np.arange(10.0) + i} for i in range(5)]
    path = write_fev_dataset(iter(items), tmp_path / "d.parquet", rows_per_group=2)
    assert pq.ParquetFile(path).num_row_groups == 3
    table = pq.read_table(path).to_pylist()
    assert [r["id"] for r in table] == [f"s{i}" for i in range(5)]
    assert table[4]["target"] == list(np.arange(10.0) + 4)
    assert [pd.Timestamp(t) for t in table[0]["timestamp"][:2]] == [pd.Timestamp("2000-01-01"), pd.Timestamp("2000-02-01")]


def test_bad_items_fail_naming_the_file_and_leave_nothing(tmp_path):
    bad = [{"id": "a", "timestamp": nominal_timestamps(3), "target": np.ones(4)}]
    with pytest.raises(DataError, match=r"d.parquet: item a: columns of different lengths"):
        write_fev_dataset(bad, tmp_path / "d.parquet")
    with pytest.raises(DataError, match="no items to write"):
        write_fev_dataset([], tmp_path / "d.parquet")
    assert list(tmp_path.iterdir()) == []


def test_packaged_real_series_and_unknown_names():
    (solar,) = real_items("solar", "prepare_heldout.real")
    assert solar["id"] == "solar/000" and len(solar["target"]) == 289 and np.isfinite(solar["target"]).all()
    assert len(real_items("daphnet", "x")) == 9  # one item per channel
    with pytest.raises(ParamError, match="param prepare_heldout.real: unknown real dataset"):
        real_items("nope", "prepare_heldout.real")
