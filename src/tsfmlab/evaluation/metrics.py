"""Every forecast score of the project, and the one forecast type they score.

The scores are gluonts' (``gluonts.ev``: its statistics and aggregations, the code behind
``gluonts.model.evaluate_forecasts``), applied to arrays; R² is scikit-learn's. Nothing here re-derives a
metric: each function only arranges arrays into the ``{"label", "<quantile>", "seasonal_error"}`` batch
gluonts evaluates. Truth values that are not finite are masked, as ``evaluate_forecasts`` does.

* WQL: ``MeanWeightedSumQuantileLoss``, for each level the quantile loss summed over all points divided by
  the summed absolute truth, averaged over the levels (Chronos benchmark, Ansari et al. 2024, sec. 5);
* MASE: ``MASE`` of the median, scaled per series by the in-sample seasonal error
  (``gluonts.ev.ts_stats.seasonal_error`` of its history at a season);
* RMSE, MAE and MAPE (over points with ``|truth| > eps``, with the share of points used) of the median;
* sMAPE in percent (0-200), and per step for the valid prediction time of chaotic systems (VPT; Gilpin
  2023, "Model scale versus domain knowledge in statistical forecasting of chaotic systems": the first
  step at which the sMAPE, averaged over channels, exceeds a threshold; times the integration step and
  the largest Lyapunov exponent it is measured in Lyapunov times);
* R²: ``sklearn.metrics.r2_score`` over all points (NaN for a constant truth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .bootstrap import bootstrap_rng, percentile_interval


@dataclass
class Forecasts:
    """One model's forecasts of ``N`` windows: quantiles ``(N, H, Q)`` at the evaluation's levels, the
    median ``(N, H)`` (the point forecast every point metric scores) and the seconds they took."""

    quantiles: np.ndarray
    median: np.ndarray
    seconds: float


def with_median(levels: Sequence[float]) -> list[float]:
    """The levels to ask a model for: ``levels`` and the median, sorted (see :func:`quantile_forecasts`)."""
    return sorted({*levels, 0.5})


def quantile_forecasts(q: np.ndarray, levels: Sequence[float], seconds: float) -> Forecasts:
    """:class:`Forecasts` at ``levels`` from quantiles ``q`` ``(N, H, .)`` predicted at ``with_median(levels)``."""
    asked = with_median(levels)
    return Forecasts(q[..., [asked.index(level) for level in levels]], q[..., asked.index(0.5)], seconds)


def point_forecasts(points: np.ndarray, n_levels: int, seconds: float) -> Forecasts:
    """A point forecaster's :class:`Forecasts`: the point at every quantile level (a degenerate
    distribution: with levels symmetric about 0.5 its WQL is the absolute error over the summed truth)."""
    points = np.asarray(points, dtype=np.float32)
    return Forecasts(np.repeat(points[:, :, None], n_levels, axis=2), points, seconds)


def _batch(truth, median=None, quantiles=None, levels: Sequence[float] = (), seasonal_error=None) -> dict:
    label = np.ma.masked_invalid(np.asarray(truth, dtype=np.float64))
    data: dict = {"label": label}
    if median is not None:
        median = np.asarray(median, dtype=np.float64)
        if median.shape != label.shape:
            raise DataError(f"metrics: truth {label.shape} and forecast {median.shape} differ in shape")
        data["0.5"] = median
    if quantiles is not None:
        quantiles = np.asarray(quantiles, dtype=np.float64)
        if quantiles.shape != (*label.shape, len(levels)):
            raise DataError(
                f"metrics: quantiles {quantiles.shape} do not match truth {label.shape} x {len(levels)} levels"
            )
        data.update({str(q): quantiles[..., i] for i, q in enumerate(levels)})
    if seasonal_error is not None:
        data["seasonal_error"] = np.asarray(seasonal_error, dtype=np.float64).reshape(len(label), 1)
    return data


def _evaluate(definition, data: dict) -> float:
    value = definition(axis=None).update(data).get()
    return float(np.ma.filled(np.ma.asarray(value, dtype=np.float64), np.nan))


def wql(truth: np.ndarray, quantiles: np.ndarray, levels: Sequence[float]) -> float:
    """Mean weighted quantile loss of ``quantiles`` (``truth.shape + (Q,)``) at ``levels``."""
    from gluonts.ev.metrics import MeanWeightedSumQuantileLoss

    data = _batch(truth, quantiles=quantiles, levels=levels)
    return _evaluate(MeanWeightedSumQuantileLoss(quantile_levels=list(levels)), data)


def seasonal_errors(histories: Sequence[np.ndarray], season: int) -> np.ndarray:
    """Each history's mean absolute difference at lag ``season`` (lag 1 when it is shorter), ``(N,)``."""
    from gluonts.ev.ts_stats import seasonal_error

    return np.array(
        [seasonal_error(np.ma.masked_invalid(np.asarray(h, np.float64)), season, time_axis=-1)[0] for h in histories]
    )


def mase(truth: np.ndarray, median: np.ndarray, scales: np.ndarray) -> float:
    """Mean over windows ``(N, H)`` of the median's absolute error divided by each window's scale
    (:func:`seasonal_errors` of its history)."""
    from gluonts.ev.metrics import MASE

    return _evaluate(MASE(forecast_type="0.5"), _batch(truth, median, seasonal_error=scales))


def point_scores(truth: np.ndarray, median: np.ndarray, eps: float = 1e-6) -> dict[str, float]:
    """RMSE, MAE, R² and MAPE (a fraction, over ``|truth| > eps``; ``mape_share``: the share it used)."""
    from gluonts.ev.metrics import MAE, MAPE, RMSE
    from sklearn.metrics import r2_score

    data = _batch(truth, median)
    label = data["label"]
    valid = ~np.ma.getmaskarray(label)
    if not valid.any():
        raise DataError("metrics: no finite truth value")
    y, f = label.data[valid], data["0.5"][valid]
    nonzero = np.ma.masked_where(np.abs(label.filled(0.0)) <= eps, label)
    share = float((np.abs(y) > eps).mean())
    constant = bool(np.all(y == y[0]))
    return {
        "rmse": _evaluate(RMSE(forecast_type="0.5"), data),
        "mae": _evaluate(MAE(forecast_type="0.5"), data),
        "r2": float("nan") if constant else float(r2_score(y, f)),
        "mape": _evaluate(MAPE(forecast_type="0.5"), {**data, "label": nonzero}) if share > 0 else float("nan"),
        "mape_share": share,
    }


def pointwise_smape(truth: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """sMAPE in percent per horizon step; a ``(D, H)`` pair is averaged over its ``D`` channels first."""
    from gluonts.ev.stats import symmetric_absolute_percentage_error

    y, f = np.atleast_2d(truth), np.atleast_2d(forecast)
    data = _batch(y, f)
    return 100.0 * np.ma.filled(symmetric_absolute_percentage_error(data, "0.5").mean(axis=0), np.nan)


def smape(truth: np.ndarray, forecast: np.ndarray) -> float:
    """sMAPE in percent (0-200) over all points: gluonts' ``SMAPE`` x 100."""
    from gluonts.ev.metrics import SMAPE

    return 100.0 * _evaluate(SMAPE(forecast_type="0.5"), _batch(np.atleast_2d(truth), np.atleast_2d(forecast)))


def valid_prediction_time(truth: np.ndarray, forecast: np.ndarray, threshold: float) -> int:
    """Steps before the per-step sMAPE first exceeds ``threshold`` (the horizon if it never does)."""
    above = np.flatnonzero(pointwise_smape(truth, forecast) > threshold)
    return int(above[0]) if len(above) else int(np.atleast_2d(truth).shape[-1])


def lyapunov_times(steps: int, dt: float, max_lyapunov: float | None) -> float | None:
    """``steps`` of size ``dt`` in Lyapunov times (None when the exponent is unknown or not positive)."""
    if max_lyapunov is None or not np.isfinite(max_lyapunov) or max_lyapunov <= 0:
        return None
    return float(steps * dt * max_lyapunov)


def wql_parts(truth: np.ndarray, quantiles: np.ndarray, levels: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Per window ``(N,)``: the quantile loss (gluonts' ``quantile_loss``) summed over steps and averaged
    over ``levels``, and the summed absolute truth. Summed over windows, their ratio is :func:`wql`."""
    from gluonts.ev.stats import absolute_label, quantile_loss

    data = _batch(truth, quantiles=quantiles, levels=levels)
    loss = np.mean([np.ma.filled(quantile_loss(data, q).sum(axis=-1), 0.0) for q in levels], axis=0)
    return np.asarray(loss, np.float64), np.asarray(np.ma.filled(absolute_label(data).sum(axis=-1), 0.0), np.float64)


def mase_parts(truth: np.ndarray, median: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Per window ``(N,)``: the median's absolute error over the window's scale, averaged over its steps
    (gluonts' ``absolute_scaled_error``). With every step finite, their mean is :func:`mase`."""
    from gluonts.ev.stats import absolute_scaled_error

    errors = absolute_scaled_error(_batch(truth, median, seasonal_error=scales), "0.5")
    return np.asarray(np.ma.filled(np.ma.mean(errors, axis=-1), np.nan), np.float64)


@dataclass
class WindowScores:
    """One model's per-window parts on one dataset (:func:`wql_parts`, :func:`mase_parts`) and the
    series each window belongs to (the bootstrap resamples whole series)."""

    wql_loss: np.ndarray  # (the summed |truth| cancels in every ratio to the baseline)
    mase: np.ndarray
    series: np.ndarray


def geometric_mean(values: Sequence[float] | np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Geometric mean along ``axis`` (NaN where a value is not finite or not positive)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    valid = np.isfinite(values) & (values > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.exp(np.mean(np.log(np.where(valid, values, np.nan)), axis=axis))
    return float(out) if np.ndim(out) == 0 else out


def _draw_counts(series: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(counts (n, G), groups (N,))``: how often each of the ``G`` series is drawn, with replacement, in
    each of ``n`` resamples, and each window's series (windows are the unit when there is one series)."""
    groups = np.unique(series, return_inverse=True)[1]
    if groups.max(initial=0) == 0:
        groups = np.arange(len(series))
    n_groups = int(groups.max()) + 1
    picks = rng.integers(n_groups, size=(n, n_groups))
    counts = np.zeros((n, n_groups))
    np.add.at(counts, (np.repeat(np.arange(n), n_groups), picks.ravel()), 1.0)
    return counts, groups


def relative_interval(
    model: dict[str, WindowScores],
    baseline: dict[str, WindowScores],
    n_resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, list[float]]:
    """Percentile bootstrap interval of the relative WQL and MASE (geometric mean over datasets of the
    model's score over the baseline's), resampling each dataset's series with replacement, the same
    draws for model and baseline (paired). ``{"relative_wql": [low, high], "relative_mase": [...]}``.
    Each dataset's draws come from ``seed`` and its name, so the order of the datasets changes nothing."""
    wql_ratios, mase_ratios = [], []
    for name in model:
        m, b = model[name], baseline[name]
        counts, groups = _draw_counts(m.series, n_resamples, bootstrap_rng(seed, name))
        # per resample, the sum over drawn windows of each part: counts @ (the part summed per series)
        sums = {
            key: counts @ np.bincount(groups, weights=values, minlength=counts.shape[1])
            for key, values in (("m_wql", m.wql_loss), ("b_wql", b.wql_loss), ("m_mase", m.mase), ("b_mase", b.mase))
        }
        with np.errstate(divide="ignore", invalid="ignore"):
            # WQL: the summed |truth| of a draw cancels between model and baseline; MASE: so does the
            # number of windows drawn
            wql_ratios.append(sums["m_wql"] / sums["b_wql"])
            mase_ratios.append(sums["m_mase"] / sums["b_mase"])
    return {
        key: percentile_interval(geometric_mean(np.stack(ratios), axis=0), confidence)
        for key, ratios in (("relative_wql", wql_ratios), ("relative_mase", mase_ratios))
    }
