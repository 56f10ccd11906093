"""Every score against its definition, on hand-made arrays."""

import numpy as np
import pytest

from tsfmlab.errors import DataError
from tsfmlab.evaluation import metrics
from tsfmlab.evaluation.metrics import (
    lyapunov_times,
    mase,
    point_forecasts,
    point_scores,
    pointwise_smape,
    seasonal_errors,
    smape,
    valid_prediction_time,
    wql,
)

LEVELS = [0.1, 0.5, 0.9]


def test_smape_range_and_known_values():
    assert smape([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert smape([1.0], [-1.0]) == pytest.approx(200.0)
    assert smape([1.0, 1.0], [3.0, 1.0]) == pytest.approx(50.0)  # (200 * 2/4 + 0) / 2


def test_vpt_counts_the_steps_before_divergence():
    t = np.linspace(0, 6, 50)
    truth = np.stack([np.sin(t) + 2, np.cos(t) + 2])  # (D=2, H=50), away from 0
    forecast = truth.copy()
    forecast[:, 17:] += 5.0  # exact for 17 steps, then far off
    assert valid_prediction_time(truth, forecast, threshold=30) == 17
    assert valid_prediction_time(truth, truth, threshold=30) == 50  # never diverges: the horizon
    # one channel off by a little stays under a loose threshold, not under a strict one
    slightly = truth + np.array([[0.1], [0.0]])
    assert valid_prediction_time(truth, slightly, threshold=30) == 50
    assert valid_prediction_time(truth, slightly, threshold=0.5) == 0


def test_pointwise_smape_averages_channels_and_checks_shapes():
    y = np.array([[1.0, 1.0], [1.0, 1.0]])
    f = np.array([[1.0, 3.0], [1.0, 1.0]])
    np.testing.assert_allclose(pointwise_smape(y, f), [0.0, 50.0])
    with pytest.raises(ValueError, match="differ in shape"):
        pointwise_smape(y, f[:, :1])


def test_lyapunov_times():
    assert lyapunov_times(100, 0.01, 0.9) == pytest.approx(0.9)
    assert lyapunov_times(100, 0.01, None) is None and lyapunov_times(100, 0.01, -0.1) is None


def test_point_scores_on_hand_made_arrays():
    truth = np.array([[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]])
    perfect = point_scores(truth, truth)
    assert perfect["rmse"] == 0 and perfect["mae"] == 0 and perfect["r2"] == 1 and perfect["mape"] == 0
    m = point_scores(np.array([[0.0, 2.0, 4.0]]), np.array([[1.0, 1.0, 4.0]]))
    assert m["mape"] == pytest.approx(0.25)  # the zero is skipped: (1/2 + 0) / 2
    assert m["mape_share"] == pytest.approx(2 / 3)
    assert m["mae"] == pytest.approx(2 / 3) and m["rmse"] == pytest.approx(np.sqrt(2 / 3))
    assert m["r2"] == pytest.approx(1 - 2 / 8)  # SST around the mean 2
    assert point_scores(truth, np.full_like(truth, truth.mean()))["r2"] == pytest.approx(0.0)
    assert np.isnan(point_scores(np.ones((2, 3)), np.zeros((2, 3)))["r2"])  # constant truth
    # a missing truth value is left out of every score
    gap = point_scores(np.array([[np.nan, 2.0, 4.0]]), np.array([[9.0, 1.0, 4.0]]))
    assert gap["mae"] == pytest.approx(0.5) and gap["mape_share"] == 1.0
    with pytest.raises(DataError, match="differ in shape"):
        point_scores(truth, truth[:, :2])


def reference_wql(y, q):
    """Weighted quantile loss by its definition: mean over levels of 2·Σ pinball / Σ|y|."""
    out = []
    for j, level in enumerate(LEVELS):
        pred = q[..., j]
        loss = np.abs((y - pred) * ((y <= pred) - level))
        out.append(2 * loss.sum() / np.abs(y).sum())
    return float(np.mean(out))


def test_wql_matches_its_definition():
    rng = np.random.default_rng(0)
    truth = rng.normal(10, 3, size=(4, 6))
    assert wql(truth, np.repeat(truth[..., None], 3, axis=-1), LEVELS) == 0.0
    quantiles = np.sort(rng.normal(10, 3, size=(4, 6, 3)), axis=-1)
    assert wql(truth, quantiles, LEVELS) == pytest.approx(reference_wql(truth, quantiles), rel=1e-12)
    # a point forecast at every level: the absolute error over the summed truth (levels symmetric about 0.5)
    point = point_forecasts(quantiles[..., 1], len(LEVELS), 0.0)
    expected = np.abs(truth - quantiles[..., 1]).sum() / np.abs(truth).sum()
    assert wql(truth, point.quantiles, LEVELS) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(DataError, match="do not match truth"):
        wql(truth, quantiles[..., :2], LEVELS)


def test_mase_matches_its_definition():
    rng = np.random.default_rng(1)
    histories = [rng.normal(5, 1, n) for n in (30, 41, 25)]
    truth, median = rng.normal(5, 1, (3, 6)), rng.normal(5, 1, (3, 6))
    scales = seasonal_errors(histories, 3)
    np.testing.assert_allclose(scales, [np.mean(np.abs(h[3:] - h[:-3])) for h in histories])
    expected = np.mean([np.mean(np.abs(t - m)) / s for t, m, s in zip(truth, median, scales)])
    assert mase(truth, median, scales) == pytest.approx(expected, rel=1e-12)
    # a season longer than the history falls back to lag 1
    assert seasonal_errors([np.array([1.0, 3.0, 2.0])], 5)[0] == pytest.approx(1.5)


def test_geometric_mean_is_nan_for_a_non_positive_or_infinite_value():
    assert metrics.geometric_mean([2.0, 8.0]) == pytest.approx(4.0)
    assert np.isnan(metrics.geometric_mean([1.0, 0.0])) and np.isnan(metrics.geometric_mean([1.0, np.inf]))
    np.testing.assert_allclose(metrics.geometric_mean(np.array([[1.0, 4.0], [4.0, 1.0]]), axis=0), [2.0, 2.0])
