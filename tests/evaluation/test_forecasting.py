"""Forecast evaluation: windows, scores of the held-out datasets, naive baselines, relative aggregation."""

import numpy as np
import pytest

from tsfmlab.data.arrow_io import write_series
from tsfmlab.errors import DataError, ParamError
from tsfmlab.evaluation.baselines import LAST_VALUE
from tsfmlab.evaluation.forecasting import (
    BASELINE,
    HeldoutSet,
    benchmark,
    cut_windows,
    geometric_mean,
    heldout_windows,
    history_arrays,
    load_heldout_series,
    predict_chronos,
    predict_naive,
    relative_summary,
    scores,
    series_entries,
)
from tsfmlab.evaluation.metrics import Forecasts

LEVELS = [0.1, 0.5, 0.9]


def test_windows_are_the_last_non_overlapping_blocks():
    x = np.arange(100, dtype=np.float32)
    data = heldout_windows([x, x[:50]], prediction_length=10, windows=3, name="d")
    histories = history_arrays(data)
    assert [len(h) for h in histories] == [70, 80, 90, 20, 30, 40]
    labels = [e["target"] for e in data.label]
    np.testing.assert_array_equal(labels[2], x[90:100])
    np.testing.assert_array_equal(labels[3], x[20:30])


def test_windows_from_an_offset_leave_the_tail_unused():
    x = np.arange(40, dtype=np.float32)
    data = cut_windows(series_entries([x], "d"), prediction_length=5, windows=2, offset=-12, name="d")
    assert [len(h) for h in history_arrays(data)] == [28, 33]
    np.testing.assert_array_equal([e["target"] for e in data.label][1], x[33:38])


def test_every_relative_score_has_a_bootstrap_interval_around_it():
    rng = np.random.default_rng(1)
    t = np.arange(200)
    series = [(10 + np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.3, 200)).astype(np.float32) for _ in range(6)]
    sets = {
        "a": HeldoutSet(heldout_windows(series, 6, 3, "a"), 6, 12),
        "b": HeldoutSet(heldout_windows(series[:1], 4, 5, "b"), 4, 12),  # one series: windows resampled
    }
    run = benchmark({}, sets, LEVELS, 8, 4, 0, inference="library")
    summary = relative_summary(run.scores)
    iv = run.intervals(500, 0.9, seed=0)
    assert iv[BASELINE]["relative_wql"] == [1.0, 1.0]  # paired: the baseline against itself
    for key in ("relative_wql", "relative_mase"):
        low, high = iv[LAST_VALUE][key]
        assert low < summary[LAST_VALUE][key] < high
    assert iv == run.intervals(500, 0.9, seed=0)  # seeded
    assert iv != run.intervals(500, 0.9, seed=1)


def test_too_short_series_fail_naming_the_dataset():
    with pytest.raises(DataError, match="dataset short: series short/1 has 25 points"):
        heldout_windows([np.ones(100), np.ones(25)], prediction_length=10, windows=3, name="short")


def test_scores_match_their_definitions():
    rng = np.random.default_rng(0)
    series = [rng.normal(5, 1, 60).astype(np.float32) for _ in range(4)]
    data = heldout_windows(series, prediction_length=6, windows=2, name="d")
    histories = history_arrays(data)
    y = np.stack([e["target"] for e in data.label])
    q = np.sort(rng.normal(5, 1, (len(y), 6, 3)), axis=2).astype(np.float32)
    got = scores(Forecasts(q, q[..., 1], 0.0), data, LEVELS, season_length=3)
    wql = np.mean([2 * np.abs((y - q[..., j]) * ((y <= q[..., j]) - lv)).sum() for j, lv in enumerate(LEVELS)])
    assert got["wql"] == pytest.approx(wql / np.abs(y).sum(), rel=1e-5)
    mase = np.mean([np.mean(np.abs(t - m)) / np.mean(np.abs(h[3:] - h[:-3])) for h, t, m in zip(histories, y, q[..., 1])])
    assert got["mase"] == pytest.approx(mase, rel=1e-5)


def test_seasonal_naive_is_exact_on_a_periodic_series():
    x = np.tile(np.array([1.0, 3.0, 2.0, 5.0], dtype=np.float32), 20)
    data = heldout_windows([x], prediction_length=8, windows=2, name="d")
    naive = predict_naive(history_arrays(data), 8, season_length=4, n_quantiles=len(LEVELS))
    assert naive[BASELINE].quantiles.shape == (2, 8, 3)
    s = scores(naive[BASELINE], data, LEVELS, season_length=2)  # (MASE's scale is 0 at the true season)
    assert s["wql"] == 0.0 and s["mase"] == 0.0
    # last-value naive repeats the last point: not exact on a periodic series
    np.testing.assert_array_equal(naive[LAST_VALUE].median, np.full((2, 8), 5.0))
    assert scores(naive[LAST_VALUE], data, LEVELS, season_length=4)["wql"] > 0.1


def test_relative_summary_is_a_geometric_mean_over_datasets():
    per = {
        BASELINE: {"a": {"wql": 0.4, "mase": 2.0}, "b": {"wql": 0.1, "mase": 1.0}},
        "m": {"a": {"wql": 0.2, "mase": 4.0}, "b": {"wql": 0.2, "mase": 0.5}},
    }
    out = relative_summary(per)
    assert out[BASELINE] == {"relative_wql": 1.0, "relative_mase": 1.0}
    assert out["m"]["relative_wql"] == pytest.approx(1.0)  # sqrt(0.5 * 2)
    assert out["m"]["relative_mase"] == pytest.approx(1.0)  # sqrt(2 * 0.5)
    assert np.isnan(geometric_mean([1.0, 0.0]))


@pytest.fixture(scope="module")
def tiny_pipeline():
    from tests.conftest import tiny_chronos

    return tiny_chronos()


def test_chronos_forecasts_have_ordered_quantiles_and_repeat_with_the_seed(tiny_pipeline):
    rng = np.random.default_rng(0)
    histories = [rng.normal(10, 2, n).astype(np.float32) for n in (40, 25, 60)]
    run = dict(batch_size=2, num_samples=5, inference="fast")
    a = predict_chronos(tiny_pipeline, histories, 8, LEVELS, seed=1, **run)
    b = predict_chronos(tiny_pipeline, histories, 8, LEVELS, seed=1, **run)
    c = predict_chronos(tiny_pipeline, histories, 8, LEVELS, seed=2, **run)
    assert a.quantiles.shape == (3, 8, 3) and a.median.shape == (3, 8)
    assert np.all(np.diff(a.quantiles, axis=2) >= 0)
    np.testing.assert_array_equal(a.quantiles, b.quantiles)
    assert not np.array_equal(a.quantiles, c.quantiles)


@pytest.mark.parametrize("top_k", [0, 1])
def test_fast_inference_equals_the_library_path(tiny_pipeline, top_k):
    """Full-vocabulary sampling (top_k=0) draws the library's sample paths at a fixed seed; greedy
    decoding (top_k=1) gives its forecasts."""
    rng = np.random.default_rng(0)
    histories = [rng.normal(10, 2, n).astype(np.float32) for n in (40, 25, 60)]
    run = dict(batch_size=2, num_samples=5, seed=3, top_k=top_k)
    fast = predict_chronos(tiny_pipeline, histories, 8, LEVELS, inference="fast", **run)
    library = predict_chronos(tiny_pipeline, histories, 8, LEVELS, inference="library", **run)
    np.testing.assert_allclose(fast.quantiles, library.quantiles, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast.median, library.median, rtol=1e-5, atol=1e-6)


def test_heldout_series_from_a_corpus_split_channels(tmp_path):
    x = np.arange(30, dtype=np.float32).reshape(3, 10)
    write_series([{"target": x}, {"target": x[0]}, {"target": np.full(10, np.nan)}], tmp_path / "c.arrow")
    series = load_heldout_series(str(tmp_path / "c.arrow"), "c", max_series=None)
    assert len(series) == 4  # 3 channels + 1 univariate; the all-NaN series is dropped
    np.testing.assert_array_equal(series[1], x[1])
    assert len(load_heldout_series(str(tmp_path / "c.arrow"), "c", max_series=2)) == 2


def test_heldout_series_from_packages_and_bad_sources(tmp_path):
    (solar,) = load_heldout_series("real:solar", "solar", None)
    assert len(solar) == 289 and np.isfinite(solar).all()
    with pytest.raises(ParamError, match="datasets.x.source: unknown real dataset"):
        load_heldout_series("real:nope", "x", None)
    with pytest.raises(DataError, match="corpus not found"):
        load_heldout_series(str(tmp_path / "missing"), "x", None)
