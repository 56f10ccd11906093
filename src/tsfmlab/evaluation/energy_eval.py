"""The energy evaluation table: Chronos-2 (zero-shot or fine-tuned) and baselines on the same windows.

Every row scores one ``(model, mode, covariates, horizon)`` over all rolling test windows of that
horizon (:func:`tsfmlab.evaluation.rolling.rolling_origins`, ``stride`` steps apart): RMSE, MAE, R²,
MAPE over non-zero targets and, for probabilistic models, WQL (:mod:`tsfmlab.evaluation.metrics`).
The windows and covariate modes are those of :mod:`tsfmlab.evaluation.rolling`, the baselines those of
:mod:`tsfmlab.evaluation.baselines`; this module runs them for a set of models and horizons and draws
the week plot and metric bars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.energy import EnergyFrame, EnergyParams
from ..errors import ParamError
from . import baselines, rolling
from .baselines import CatBoostLagParams
from .metrics import Forecasts, point_scores, wql


def window_origins(frame: EnergyFrame, test_start: int, horizon: int, stride: int) -> np.ndarray:
    return rolling.rolling_origins(test_start, len(frame), horizon, stride)


def score_row(
    model: str,
    mode: str,
    covariates: str,
    horizon: int,
    truth: np.ndarray,
    median: np.ndarray,
    quantiles: np.ndarray | None = None,
    levels: Sequence[float] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    scores = point_scores(truth, median)
    if quantiles is not None:
        scores["wql"] = wql(truth, quantiles, levels)
    return {
        "model": model,
        "mode": mode,
        "covariates": covariates,
        "horizon": horizon,
        "windows": int(truth.shape[0]),
        **{k: round(v, 6) for k, v in scores.items()},
        **extra,
    }


@dataclass
class ModelForecasts:
    """Rows of one Chronos-2 model, plus its forecasts per (covariates, horizon) for the plots."""

    rows: list[dict[str, Any]]
    forecasts: dict[tuple[str, int], Forecasts]
    windows_per_s: float


def evaluate_chronos2(
    pipeline,
    model: str,
    mode: str,
    frame: EnergyFrame,
    test_start: int,
    p: EnergyParams,
    covariates: Sequence[str],
    batch_size: int,
) -> ModelForecasts:
    """Score ``pipeline`` on every test window of every horizon, in each covariate mode, through the
    library's batched ``predict_quantiles`` (:func:`~tsfmlab.evaluation.rolling.predict_chronos2`)."""
    rows, forecasts, windows, seconds = [], {}, 0, 0.0
    for horizon, stride in p.windows:
        origins = window_origins(frame, test_start, horizon, stride)
        truth = rolling.truth_windows(frame, origins, horizon)
        for cov in covariates:
            inputs = rolling.chronos2_inputs(frame, origins, p.context_length, horizon, cov)
            fc = rolling.predict_chronos2(pipeline, inputs, horizon, p.quantile_levels, batch_size)
            rows.append(
                score_row(model, mode, cov, horizon, truth, fc.median, fc.quantiles, p.quantile_levels)
            )
            forecasts[(cov, horizon)] = fc
            windows += len(origins)
            seconds += fc.seconds
    return ModelForecasts(rows, forecasts, windows / max(seconds, 1e-9))


def evaluate_baselines(
    frame: EnergyFrame,
    val_start: int,
    test_start: int,
    p: EnergyParams,
    catboost: CatBoostLagParams,
    covariates: Sequence[str],
) -> list[dict[str, Any]]:
    """Seasonal naive, last-value naive and, per covariate mode, a CatBoost lag-feature model fit on the
    train split with early stopping on the validation split (its rows never reach into the test period)."""
    rows = []
    for horizon, stride in p.windows:
        origins = window_origins(frame, test_start, horizon, stride)
        truth = rolling.truth_windows(frame, origins, horizon)
        histories = [frame.target[:o] for o in rolling.check_windows(frame, origins, p.season, horizon)]
        for name, naive in baselines.naive_forecasts(histories, horizon, p.season).items():
            rows.append(score_row(name, "baseline", "none", horizon, truth, naive))
        seasonal = [s for s in catboost.seasonal_lags if s >= horizon]
        history = max([*catboost.lags, *seasonal])
        train = frame.slice(0, val_start)
        val = frame.slice(max(0, val_start - history), test_start)
        for cov in covariates:
            model = baselines.fit_catboost_lags(
                train, val, cov, horizon, catboost.lags, seasonal, catboost.origin_stride, catboost
            )
            pred = baselines.predict_catboost_lags(model, frame, origins)
            rows.append(
                score_row(
                    "catboost_lags",
                    "baseline",
                    cov,
                    horizon,
                    truth,
                    pred,
                    best_iteration=model.best_iteration,
                )
            )
    return rows


# --------------------------------------------------------------------------------------------------
# plots


def week_panel(
    frame: EnergyFrame,
    test_start: int,
    horizon: int,
    stride: int,
    forecast: Forecasts,
    levels: Sequence[float],
    days: int = 7,
) -> dict[str, np.ndarray]:
    """Forecasts stitched over the first ``days`` of the test period: consecutive non-overlapping
    windows (every ``horizon // stride``-th origin when ``stride`` divides ``horizon``)."""
    if horizon % stride:
        raise ParamError(f"week plot: stride {stride} does not divide horizon {horizon}")
    step = horizon // stride
    n = min(days * frame.steps_per_day // horizon, (len(forecast.median) + step - 1) // step)
    picks = np.arange(n) * step
    lo, hi = levels.index(min(levels)), levels.index(max(levels))
    start = test_start
    stop = start + n * horizon
    return {
        "time": frame.timestamps[start:stop],
        "actual": frame.target[start:stop],
        "median": forecast.median[picks].reshape(-1),
        "low": forecast.quantiles[picks, :, lo].reshape(-1),
        "high": forecast.quantiles[picks, :, hi].reshape(-1),
    }


def week_figure(
    panels: Mapping[str, dict[str, np.ndarray]], levels: Sequence[float], title: str, path: str | Path
):
    """One panel per model: actual, median forecast and the outer quantile band."""
    from .plots import plt, save_figure

    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 2.6 * len(panels)), squeeze=False, sharex=True)
    for ax, (name, panel) in zip(axes[:, 0], panels.items()):
        x = np.arange(len(panel["actual"]))
        ax.plot(x, panel["actual"], color="black", lw=0.8, label="actual")
        ax.plot(x, panel["median"], color="C0", lw=0.8, label="median")
        ax.fill_between(
            x, panel["low"], panel["high"], color="C0", alpha=0.25, lw=0,
            label=f"{min(levels):g}-{max(levels):g} quantiles",
        )  # fmt: skip
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("steps from the start of the test period")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # 0.4 in. above the panels: the title
    save_figure(fig, path)


def metric_bars(
    rows: Sequence[dict[str, Any]], path: str | Path, metrics: Sequence[str] = ("rmse", "r2")
) -> None:
    """Per horizon, one bar per row for each metric."""
    from .plots import plt, save_figure

    horizons = sorted({r["horizon"] for r in rows})
    fig, axes = plt.subplots(
        len(metrics), len(horizons), figsize=(6 * len(horizons), 0.35 * len(rows) + 1.5), squeeze=False
    )
    for j, horizon in enumerate(horizons):
        sub = [r for r in rows if r["horizon"] == horizon]
        labels = [row_label(r) for r in sub]
        for i, metric in enumerate(metrics):
            ax = axes[i, j]
            values = [r[metric] for r in sub]
            ax.barh(np.arange(len(sub)), values, color=[f"C{k % 10}" for k in range(len(sub))])
            ax.set_yticks(np.arange(len(sub)), labels, fontsize=7)
            ax.invert_yaxis()
            ax.set_title(f"{metric}, horizon {horizon}", fontsize=9)
            ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def row_label(row: Mapping[str, Any]) -> str:
    return f"{row['model']}/{row['mode']}/{row['covariates']}"


def rows_table(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows for a CSV (``dvc plots`` bar templates): label, horizon and the metrics."""
    keys = ("rmse", "mae", "r2", "mape", "wql")
    return [{"row": row_label(r), "horizon": r["horizon"], **{k: r.get(k, "") for k in keys}} for r in rows]
