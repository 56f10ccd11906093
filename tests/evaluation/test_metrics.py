"""The scores fev does not give whole (per-step sMAPE, VPT, a fev metric outside a task) against their
definitions, on hand-made arrays."""

import numpy as np
import pytest

from tsfmlab.errors import DataError
from tsfmlab.evaluation import metrics
from tsfmlab.evaluation.metrics import (
    lyapunov_times,
    mase,
    pointwise_smape,
    smape,
    valid_prediction_time,
)


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


def test_mase_of_a_trajectory_is_fevs_by_its_definition():
    """Each channel scaled by its history's mean one-step absolute change, averaged over the channels."""
    rng = np.random.default_rng(1)
    history, truth, forecast = rng.normal(5, 1, (3, 30)), rng.normal(5, 1, (3, 6)), rng.normal(5, 1, (3, 6))
    scales = np.abs(np.diff(history, axis=1)).mean(axis=1)
    expected = np.mean(np.abs(truth - forecast).mean(axis=1) / scales)
    assert mase(truth, forecast, history) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(DataError, match="differ in shape"):
        mase(truth, forecast[:, :5], history)


def test_geometric_mean_is_nan_for_a_non_positive_or_infinite_value():
    assert metrics.geometric_mean([2.0, 8.0]) == pytest.approx(4.0)
    assert np.isnan(metrics.geometric_mean([1.0, 0.0])) and np.isnan(metrics.geometric_mean([1.0, np.inf]))
    np.testing.assert_allclose(metrics.geometric_mean(np.array([[1.0, 4.0], [4.0, 1.0]]), axis=0), [2.0, 2.0])
