import numpy as np
import pytest

from tsfmlab.evaluation.dysts_metrics import (
    lyapunov_times,
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
