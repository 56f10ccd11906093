"""The Chronos benchmarks' schema: read offline, split as the published evaluation, scored by hand."""

import numpy as np
import pandas as pd
import pytest

from tsfmlab.data.chronos_benchmark import hub_repo, period_alias, read_dataset, season_length
from tsfmlab.errors import DataError
from tsfmlab.evaluation.baselines import LAST_VALUE, SEASONAL_NAIVE
from tsfmlab.evaluation.forecasting import cut_windows, history_arrays, predict_naive, scores

LEVELS = [0.1, 0.5, 0.9]


def write_dataset(path, rows):
    """A file in the autogluon/chronos_datasets schema: id, timestamp list, target list (+ extra columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)


def hourly(n, start="2020-01-01"):
    return list(pd.date_range(start, periods=n, freq="h").to_pydatetime())


@pytest.fixture
def dataset(tmp_path):
    t = np.arange(60)
    a = (10 + np.sin(2 * np.pi * t / 24) + 0.1 * t).tolist()
    b = (5 + (t % 24 == 3) * 2.0 + 0.05 * t).tolist()[:50]
    path = tmp_path / "toy.parquet"
    write_dataset(path, [{"id": "a", "timestamp": hourly(60), "target": a},
                         {"id": "b", "timestamp": hourly(50), "target": b}])  # fmt: skip
    return path, np.array(a), np.array(b)


def test_reads_the_schema_and_cuts_the_published_windows(dataset):
    path, a, b = dataset
    entries, freq = read_dataset(path, "toy")
    assert freq == "h" and season_length(freq) == 24
    assert [e["item_id"] for e in entries] == ["toy/a/target", "toy/b/target"]
    data = cut_windows(entries, prediction_length=4, windows=2, offset=-10, name="toy")
    histories = history_arrays(data)
    labels = [e["target"] for e in data.label]
    # windows start 10 steps before each end, 4 apart: [-10, -6) and [-6, -2); the last 2 points unused
    assert [len(h) for h in histories] == [50, 54, 40, 44]
    np.testing.assert_allclose(labels[1], a[54:58], rtol=1e-6)
    np.testing.assert_allclose(labels[2], b[40:44], rtol=1e-6)


def test_seasonal_naive_scores_checked_by_hand(dataset):
    path, a, b = dataset
    entries, freq = read_dataset(path, "toy")
    data = cut_windows(entries, prediction_length=4, windows=2, offset=-8, name="toy")
    season = season_length(freq)
    naive = predict_naive(history_arrays(data), 4, season, len(LEVELS))
    got = scores(naive[SEASONAL_NAIVE], data, LEVELS, season)
    # by hand: each window's forecast is the same hours one day earlier; WQL of a point forecast with
    # levels symmetric about 0.5 is the summed absolute error over the summed |truth|; MASE scales each
    # window's mean absolute error by its history's mean absolute 24-step difference
    errors, truths, mases = [], [], []
    for x in (a, b):
        for start in (len(x) - 8, len(x) - 4):
            y, f, h = x[start : start + 4], x[start - 24 : start - 20], x[:start]
            errors.append(np.abs(y - f).sum())
            truths.append(np.abs(y).sum())
            mases.append(np.abs(y - f).mean() / np.abs(h[24:] - h[:-24]).mean())
    assert got["wql"] == pytest.approx(sum(errors) / sum(truths), rel=1e-5)
    assert got["mase"] == pytest.approx(np.mean(mases), rel=1e-5)
    last = np.concatenate([np.full(4, x[s - 1]) for x in (a, b) for s in (len(x) - 8, len(x) - 4)])
    truth = np.concatenate([x[s : s + 4] for x in (a, b) for s in (len(x) - 8, len(x) - 4)])
    expected = np.abs(truth - last).sum() / np.abs(truth).sum()
    assert scores(naive[LAST_VALUE], data, LEVELS, season)["wql"] == pytest.approx(expected, rel=1e-5)


def test_bad_input_is_named(tmp_path, dataset):
    path, _, _ = dataset
    entries, _ = read_dataset(path, "toy")
    with pytest.raises(DataError, match="toy/b/target has 50 points, too few for 1 window.* from offset -55"):
        cut_windows(entries, 4, 1, -55, "toy")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="bad.parquet: not a readable"):
        read_dataset(bad, "bad")
    no_time = tmp_path / "nt.parquet"
    write_dataset(no_time, [{"id": "a", "target": [1.0, 2.0, 3.0]}])
    with pytest.raises(DataError, match="no timestamp column"):
        read_dataset(no_time, "nt")
    with pytest.raises(DataError, match="'m4_hourly' is a hub name, read from autogluon/chronos_datasets"):
        read_dataset("m4_hourly", "m4_hourly")  # offline here


def test_several_series_columns_and_calendar_frequencies(tmp_path):
    path = tmp_path / "multi.parquet"
    months = list(pd.date_range("2000-01-01", periods=30, freq="MS").to_pydatetime())
    write_dataset(path, [{"id": 7, "timestamp": months, "x": list(range(30)), "y": [1.5] * 30}])
    entries, freq = read_dataset(path, "multi")
    assert freq == "M" and season_length(freq) == 12
    assert [e["item_id"] for e in entries] == ["multi/7/x", "multi/7/y"]
    assert entries[0]["target"].dtype == np.float32
    assert [period_alias(f) for f in ("QS-OCT", "QE-DEC", "YE-DEC", "W-SUN", "15min", "B")] == [
        "Q", "Q", "Y", "W-SUN", "15min", "B",
    ]  # fmt: skip


def test_packaged_m1_yearly_gives_the_published_seasonal_naive_scores():
    """monash_m1_yearly ships with aeon (the Monash file the hub dataset was converted from). Cut as the
    Chronos zero-shot config does (offset -6, prediction length 6, one roll, yearly season 1), seasonal
    naive scores what chronos-forecasting publishes for it (scripts/evaluation/results/
    seasonal-naive-zero-shot.csv: MASE 4.894322225232431, WQL 0.2092955931101782)."""
    entries, freq = read_dataset("monash_m1_yearly", "m1")
    assert len(entries) == 181 and freq == "Y" and season_length(freq) == 1
    data = cut_windows(entries, prediction_length=6, windows=1, offset=-6, name="m1")
    naive = predict_naive(history_arrays(data), 6, 1, len(LEVELS))
    got = scores(naive[SEASONAL_NAIVE], data, LEVELS, 1)
    assert got["mase"] == pytest.approx(4.894322225232431, rel=1e-6)
    assert got["wql"] == pytest.approx(0.2092955931101782, rel=1e-6)


def test_ett_datasets_come_from_the_extra_repository():
    assert hub_repo("ETTh") == hub_repo("ETTm") == "autogluon/chronos_datasets_extra"
    assert hub_repo("monash_m1_yearly") == hub_repo("m4_quarterly") == "autogluon/chronos_datasets"
