"""The one forecast type every model returns, and the scores fev does not give whole.

Every forecasting score is fev's (``fev.metrics``, and its ``evaluation_summary`` for tasks); what stays
here is what fev lacks:

* :func:`fev_score`: a fev metric of one multivariate forecast outside a task (the dysts trajectories:
  sMAPE in percent, MASE scaled by the context's one-step naive error);
* the **valid prediction time** of chaotic systems (VPT; Gilpin 2023, "Model scale versus domain knowledge
  in statistical forecasting of chaotic systems": the first step at which fev's sMAPE of that step,
  averaged over channels, exceeds a threshold; times the integration step and the largest Lyapunov
  exponent it is measured in Lyapunov times): fev scores whole horizons, never one step;
* the **series bootstrap** of a skill score (:class:`SeriesParts`, :func:`skill_interval`): fev's own
  bootstrap resamples tasks.
"""

from __future__ import annotations

import warnings
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


def fev_score(metric: str, truth, forecast, history=None, seasonality: int = 1) -> float:
    """fev's ``metric`` (a name of ``fev.metrics``) of one forecast: ``truth`` and ``forecast`` ``(D, H)``
    (or ``(H,)``), ``history`` ``(D, T)`` for the scaled metrics (MASE: its seasonal error at ``seasonality``)."""
    from fev.metrics import get_metric

    y, f = (np.atleast_2d(np.asarray(x, np.float64)).T[None] for x in (truth, forecast))  # [1, H, D]
    if y.shape != f.shape:
        raise DataError(f"metrics: truth {y.shape[1:]} and forecast {f.shape[1:]} (steps, channels) differ in shape")
    past = np.empty((0, y.shape[2])) if history is None else np.atleast_2d(np.asarray(history, np.float64)).T
    with warnings.catch_warnings():  # fev's own choice: an undefined score is NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(get_metric(metric).compute(y_true=y, y_pred=f, y_past=past, y_past_lengths=np.array([len(past)]),
                                                q_pred=np.empty((*y.shape, 0)), seasonality=seasonality,
                                                quantile_levels=[]))  # fmt: skip


def smape(truth, forecast) -> float:
    """sMAPE in percent (0-200) over all points: fev's ``SMAPE`` x 100."""
    return 100.0 * fev_score("SMAPE", truth, forecast)


def mase(truth, forecast, history) -> float:
    """fev's ``MASE`` of each channel, scaled by its history's one-step naive error, averaged over channels."""
    return fev_score("MASE", truth, forecast, history, seasonality=1)


def pointwise_smape(truth, forecast) -> np.ndarray:
    """sMAPE in percent of each step (fev's ``SMAPE`` of that step, averaged over the channels)."""
    y, f = np.atleast_2d(truth), np.atleast_2d(forecast)
    if y.shape != f.shape:
        raise DataError(f"metrics: truth {y.shape} and forecast {f.shape} differ in shape")
    return np.array([smape(y[:, [h]], f[:, [h]]) for h in range(y.shape[1])])


def valid_prediction_time(truth: np.ndarray, forecast: np.ndarray, threshold: float) -> int:
    """Steps before the per-step sMAPE first exceeds ``threshold`` (the horizon if it never does)."""
    above = np.flatnonzero(pointwise_smape(truth, forecast) > threshold)
    return int(above[0]) if len(above) else int(np.atleast_2d(truth).shape[-1])


def lyapunov_times(steps: int, dt: float, max_lyapunov: float | None) -> float | None:
    """``steps`` of size ``dt`` in Lyapunov times (None when the exponent is unknown or not positive)."""
    if max_lyapunov is None or not np.isfinite(max_lyapunov) or max_lyapunov <= 0:
        return None
    return float(steps * dt * max_lyapunov)


@dataclass
class SeriesParts:
    """One model's fev scores on one task split by resampling unit (axis 0: the items; the windows when
    there is one item), window (axis 1) and target column (axis 2): ``loss``, fev's MQL (the quantile
    loss averaged over steps and levels) and ``scale``, the mean absolute truth, whose ratio of sums over
    a window's items is fev's WQL of that window and target; ``mase``, fev's MASE (NaN where the seasonal
    error is undefined: fev leaves the item out). Why it is here: fev scores whole windows; the series
    bootstrap needs the parts."""

    loss: np.ndarray
    scale: np.ndarray
    mase: np.ndarray

    def scores(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """fev's WQL and MASE of each resample (``counts (B, units)``: how often each unit is drawn): per
        window and target over the drawn units, averaged over targets, then over windows, as fev does."""
        valid = np.isfinite(self.mase)

        def drawn(x):
            return np.einsum("bu,uwd->bwd", counts, x)

        with np.errstate(divide="ignore", invalid="ignore"):
            wql = drawn(self.loss) / drawn(self.scale)
            mase = drawn(np.where(valid, self.mase, 0.0)) / drawn(valid.astype(float))
        return {"WQL": wql.mean(axis=(1, 2)), "MASE": mase.mean(axis=(1, 2))}


def series_parts(task, windows: Sequence[tuple[Forecasts, Sequence[np.ndarray], np.ndarray]]) -> SeriesParts:
    """:class:`SeriesParts` of a model on ``task`` from its ``(forecasts, histories, truth)`` of every
    window in the univariate view (one entry per item and target column, item by item), each scored alone
    by fev's ``MQL`` and ``MASE`` (the task's MASE config, e.g. its epsilon)."""
    from fev.metrics import MQL, get_metric

    configs = [m for m in [task.eval_metric, *task.extra_metrics] if get_metric(m).name == "MASE"]
    scaled = get_metric(configs[0] if configs else "MASE")
    n, d = len(windows[0][1]), len(task.target_columns)
    loss, scale, mase = (np.empty((n, len(windows))) for _ in range(3))
    with warnings.catch_warnings():  # fev's own choice: an undefined score is NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        for w, (f, histories, truth) in enumerate(windows):
            if len(histories) != n:
                raise DataError(f"task {task.task_name}: window {w} has {len(histories)} series, window 0 {n}")
            for i, h in enumerate(histories):
                args = dict(y_true=truth[i, :, None][None], y_pred=np.asarray(f.median[i, :, None][None], np.float64),
                            y_past=np.asarray(h[:, None], np.float64), y_past_lengths=np.array([len(h)]),
                            q_pred=np.asarray(f.quantiles[i][:, None, :][None], np.float64), seasonality=task.seasonality,
                            quantile_levels=task.quantile_levels)  # fmt: skip
                loss[i, w], mase[i, w] = MQL().compute(**args), scaled.compute(**args)
                scale[i, w] = np.nanmean(np.abs(truth[i]))
    # (items x targets, windows) -> (items, windows, targets): the univariate view cycles through the targets
    loss, scale, mase = (x.reshape(n // d, d, -1).transpose(0, 2, 1) for x in (loss, scale, mase))
    if n == d:  # one item: its windows are the units (each window's scores, averaged)
        return SeriesParts((loss / scale).transpose(1, 0, 2), np.ones((len(windows), 1, d)), mase.transpose(1, 0, 2))
    return SeriesParts(loss, scale, mase)


def geometric_mean(values: Sequence[float] | np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Geometric mean along ``axis`` (NaN where a value is not finite or not positive)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    valid = np.isfinite(values) & (values > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.exp(np.mean(np.log(np.where(valid, values, np.nan)), axis=axis))
    return float(out) if np.ndim(out) == 0 else out


def draw_counts(n_units: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, n_units)``: how often each unit is drawn, with replacement, in each of ``n`` resamples."""
    picks = rng.integers(n_units, size=(n, n_units))
    counts = np.zeros((n, n_units))
    np.add.at(counts, (np.repeat(np.arange(n), n_units), picks.ravel()), 1.0)
    return counts


def skill_interval(
    model: dict[str, SeriesParts],
    baseline: dict[str, SeriesParts],
    metric: str,
    n_resamples: int,
    confidence: float,
    seed: int,
    clip: tuple[float, float],
) -> list[float]:
    """Percentile bootstrap interval of the skill score on ``metric`` (``WQL`` or ``MASE``: 1 - the
    geometric mean over tasks of the model's score over the baseline's, clipped to ``clip``, as
    ``fev.leaderboard``), resampling each task's units with replacement, the same draws for model and
    baseline (paired). Each task's draws come from ``seed`` and its name: the order of tasks changes nothing."""
    ratios = []
    for name, m in sorted(model.items()):  # summed in one order whatever the order of the tasks
        counts = draw_counts(m.loss.shape[0], n_resamples, bootstrap_rng(seed, name))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios.append(m.scores(counts)[metric] / baseline[name].scores(counts)[metric])
    return percentile_interval(1.0 - geometric_mean(np.clip(np.stack(ratios), *clip), axis=0), confidence)
