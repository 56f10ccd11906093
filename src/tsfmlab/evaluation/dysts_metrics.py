"""Forecast metrics for chaotic systems: sMAPE (dysts' definition), MASE and valid prediction time.

Valid prediction time (VPT; Gilpin 2023, "Model scale versus domain knowledge in statistical forecasting
of chaotic systems") is the first horizon step at which the pointwise sMAPE, averaged over channels,
exceeds a threshold: the number of steps the forecast stays valid. Multiplied by the integration step and
the largest Lyapunov exponent it is measured in Lyapunov times.
"""

from __future__ import annotations

import numpy as np
from dysts.metrics import smape as dysts_smape


def smape(truth: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in percent, in [0, 200]: ``200 · mean(|y − ŷ| / (|y| + |ŷ|))`` (dysts, unscaled)."""
    return float(dysts_smape(np.asarray(truth, float), np.asarray(forecast, float), scaled=False))


def pointwise_smape(truth: np.ndarray, forecast: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    """sMAPE per horizon step; a (D, H) pair is averaged over its D channels first."""
    y, f = np.atleast_2d(np.asarray(truth, float)), np.atleast_2d(np.asarray(forecast, float))
    if y.shape != f.shape:
        raise ValueError(f"truth {y.shape} and forecast {f.shape} differ in shape")
    return (200.0 * np.abs(y - f) / (np.abs(y) + np.abs(f) + eps)).mean(axis=0)


def valid_prediction_time(truth: np.ndarray, forecast: np.ndarray, threshold: float) -> int:
    """Steps before the pointwise sMAPE first exceeds ``threshold`` (the horizon if it never does)."""
    above = np.flatnonzero(pointwise_smape(truth, forecast) > threshold)
    return int(above[0]) if len(above) else int(np.atleast_2d(truth).shape[-1])


def lyapunov_times(steps: int, dt: float, max_lyapunov: float | None) -> float | None:
    """``steps`` of size ``dt`` in Lyapunov times (None when the exponent is unknown or not positive)."""
    if max_lyapunov is None or not np.isfinite(max_lyapunov) or max_lyapunov <= 0:
        return None
    return float(steps * dt * max_lyapunov)
