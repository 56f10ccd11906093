"""The energy evaluation as fev tasks: Chronos-2 (zero-shot and fine-tuned) and the baselines on the test period.

Each evaluated horizon is one ``fev.Task`` on the frame's dataset in fev's schema (written by
prepare_energy): windows every ``stride`` steps from the
first test point (``initial_cutoff``) to the end of the series, the frame's measured covariates as
``past_dynamic_columns`` and its calendar ones as ``known_dynamic_columns``, so that no window holds a
measured value at or after its cutoff. A model reads the covariates of one mode
(:data:`tsfmlab.data.covariates.MODES`: none, the past-only ones, or those and the known ones);
every model is scored on every task by :func:`tsfmlab.evaluation.forecasting.benchmark` (fev's
``evaluation_summary`` and ``leaderboard``; both naive baselines included), the CatBoost lag model too.

Kept here because fev lacks them: **R²** (scikit-learn's ``r2_score`` over every window's points, as the
energy write-ups report it) and **RMSE over all points**, the square root of fev's MSE (every window has
the same number of points, so fev's mean of the windows' MSEs is the MSE of all points; fev's own RMSE is
the mean of the windows' RMSEs, which at horizon 1 is the MAE).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.covariates import MODES
from ..data.energy import EnergyFrame, EnergyParams, covariate_names
from ..errors import DataError, ParamError
from ..params import PositiveInt
from .baselines import CatBoostParams, catboost_options
from .forecasting import BenchmarkRun, Forecaster, TaskInputs
from .metrics import Forecasts, point_forecasts

# --------------------------------------------------------------------------------------------------
# the CatBoost lag-feature baseline: one direct multi-horizon regressor per covariate mode, fit on the
# train split with early stopping on the validation split


class CatBoostLagParams(CatBoostParams):
    """The energy lag-feature model: CatBoost settings and its features."""

    lags: list[PositiveInt]
    seasonal_lags: list[PositiveInt]  # target-relative; used where >= the horizon
    origin_stride: PositiveInt  # training rows: every n-th origin of train/val


@dataclass
class CatBoostLags:
    """A direct multi-horizon CatBoost model: one regressor, the forecast step as a feature."""

    model: Any
    covariates: str
    horizon: int
    lags: tuple[int, ...]
    seasonal_lags: tuple[int, ...]
    feature_names: list[str]
    best_iteration: int | None


def lag_features(
    frame: EnergyFrame,
    origins: np.ndarray,
    horizon: int,
    lags: Sequence[int],
    seasonal_lags: Sequence[int],
    covariates: str,
) -> tuple[np.ndarray, list[str]]:
    """Features of every ``(origin, step)`` pair, rows ordered origin by origin: ``(N * H, F)``.

    * ``step``: the lead time ``j + 1`` of the row's target ``y[o + j]``;
    * ``y_lag<l>``: ``y[o - l]`` (origin-relative lags, ``l >= 1``);
    * ``y_season<s>``: ``y[o + j - s]`` (target-relative lags, ``s >= horizon`` so still before ``o``);
    * ``<past covariate>_lag<l>``: ``x[o - l]`` (modes ``past`` and ``past_future``);
    * ``<future covariate>``: ``z[o + j]``, its value at the target time (mode ``past_future``)."""
    past, future = covariate_names(frame, covariates)
    history = max([*lags, *seasonal_lags])
    origins = np.asarray(origins, dtype=np.int64)
    if len(origins) and (origins.min() < history or origins.max() + horizon > len(frame)):
        raise DataError(f"{frame.source or 'energy frame'}: a window at origins {origins.min()}..{origins.max()} needs "
                        f"{history} points of history and {horizon} after, in {len(frame)} points")  # fmt: skip
    o = np.repeat(origins, horizon)  # (N * H,)
    j = np.tile(np.arange(horizon), len(origins))
    columns: dict[str, np.ndarray] = {"step": (j + 1).astype(np.float32)}
    for lag in lags:
        columns[f"y_lag{lag}"] = frame.target[o - lag]
    for season in seasonal_lags:
        columns[f"y_season{season}"] = frame.target[o + j - season]
    for name in past:
        for lag in lags:
            columns[f"{name}_lag{lag}"] = frame.past_covariates[name][o - lag]
    for name in future:
        columns[name] = frame.future_covariates[name][o + j]
    return np.stack(list(columns.values()), axis=1).astype(np.float32), list(columns)


def _check_lags(lags: Sequence[int], seasonal_lags: Sequence[int], horizon: int) -> None:
    if horizon <= 0:
        raise ParamError(f"horizon must be > 0, got {horizon}")
    if not lags or any(lag < 1 for lag in lags):
        raise ParamError(f"lags must be a non-empty list of integers >= 1, got {list(lags)}")
    short = [s for s in seasonal_lags if s < horizon]
    if short:
        raise ParamError(
            f"seasonal lag(s) {short} are shorter than the horizon {horizon}: they would read the target "
            f"after the origin"
        )


def _training_rows(
    frame: EnergyFrame, model_args: dict[str, Any], origin_stride: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, labels and feature names of every origin of ``frame`` with a full history and horizon."""
    horizon = model_args["horizon"]
    history = max([*model_args["lags"], *model_args["seasonal_lags"]])
    if len(frame) < history + horizon:
        raise DataError(
            f"{frame.source or 'energy frame'}: {len(frame)} points, fewer than the {history} of history "
            f"plus the horizon {horizon} that a lag-feature row needs"
        )
    origins = np.arange(history, len(frame) - horizon + 1, origin_stride)
    x, names = lag_features(frame, origins, **model_args)
    y = frame.target[origins[:, None] + np.arange(horizon)].reshape(-1)
    keep = np.isfinite(y)
    return x[keep], y[keep], names


def fit_catboost_lags(
    train_frame: EnergyFrame,
    val_frame: EnergyFrame,
    covariates: str,
    horizon: int,
    lags: Sequence[int],
    seasonal_lags: Sequence[int],
    origin_stride: int,
    p: CatBoostParams,
) -> CatBoostLags:
    """Fit on every ``origin_stride``-th origin of ``train_frame``, early-stopping on ``val_frame``.

    Each frame supplies its own lags, so each loses its first ``max(lags, seasonal_lags)`` points.
    Rows: origins x horizon."""
    from catboost import CatBoostRegressor

    _check_lags(lags, seasonal_lags, horizon)
    if origin_stride <= 0:
        raise ParamError(f"origin_stride must be > 0, got {origin_stride}")
    model_args = {
        "horizon": horizon,
        "lags": tuple(lags),
        "seasonal_lags": tuple(seasonal_lags),
        "covariates": covariates,
    }
    x_train, y_train, names = _training_rows(train_frame, model_args, origin_stride)
    x_val, y_val, _ = _training_rows(val_frame, model_args, origin_stride)
    model = CatBoostRegressor(loss_function="RMSE", **catboost_options(p))
    model.fit(x_train, y_train, eval_set=(x_val, y_val), use_best_model=True)
    return CatBoostLags(
        model=model,
        covariates=covariates,
        horizon=horizon,
        lags=tuple(lags),
        seasonal_lags=tuple(seasonal_lags),
        feature_names=names,
        best_iteration=model.get_best_iteration(),
    )


def predict_catboost_lags(model: CatBoostLags, frame: EnergyFrame, origins: np.ndarray) -> np.ndarray:
    """Point forecasts ``(N, horizon)`` of the windows at ``origins`` (history read from ``frame``)."""
    x, names = lag_features(frame, origins, model.horizon, model.lags, model.seasonal_lags, model.covariates)
    if names != model.feature_names:
        raise DataError(
            f"{frame.source or 'energy frame'}: covariates {names} differ from the model's {model.feature_names}"
        )
    return model.model.predict(x).reshape(len(origins), model.horizon).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# the fev tasks and the models on them




def energy_tasks(path: str | Path, frame: EnergyFrame, test_start: int, p: EnergyParams, eval_metric: str,
                 extra_metrics: Sequence[str], quantile_levels: Sequence[float]) -> dict:  # fmt: skip
    """One ``fev.Task`` per ``(horizon, stride)`` of ``p``, named ``h<horizon>``: every window of the test
    period (the number of windows follows from the test split), seasonality ``p.season``."""
    import fev

    tasks = {}
    for horizon, stride in p.windows:
        num_windows = (len(frame) - horizon - test_start) // stride + 1
        if num_windows < 1:
            raise DataError(f"{path}: a test period of {len(frame) - test_start} points is shorter than the horizon {horizon}")
        try:
            tasks[f"h{horizon}"] = fev.Task(
                dataset_path=str(path), horizon=horizon, num_windows=num_windows, initial_cutoff=test_start,
                window_step_size=stride, seasonality=p.season, past_dynamic_columns=list(frame.past_covariates),
                known_dynamic_columns=list(frame.future_covariates), eval_metric=eval_metric,
                extra_metrics=list(extra_metrics), quantile_levels=list(quantile_levels), task_name=f"h{horizon}",
            )  # fmt: skip
        except (TypeError, ValueError, AssertionError) as err:
            raise ParamError(f"params energy / evaluate_energy: fev refuses the horizon-{horizon} task: {err}") from err
    return tasks


def window_frame(task, past: Mapping[str, Any], future: Mapping[str, Any], like: EnergyFrame) -> EnergyFrame:
    """One item's window as a frame with the covariates of ``like``, in its order (fev sorts a task's
    columns): its history, then the horizon, where the target and the past-only covariates are unknown
    (NaN) and the known covariates hold their future values."""
    unknown = np.full(task.horizon, np.nan, dtype=np.float32)

    def column(name: str, ahead) -> np.ndarray:
        return np.concatenate([np.asarray(past[name], dtype=np.float32), ahead]).astype(np.float32)

    return EnergyFrame(
        timestamps=np.concatenate([np.asarray(past["timestamp"], "datetime64[s]"), np.asarray(future["timestamp"], "datetime64[s]")]),
        target=column("target", unknown),
        past_covariates={c: column(c, unknown) for c in like.past_covariates},
        future_covariates={c: column(c, np.asarray(future[c], dtype=np.float32)) for c in like.future_covariates},
        steps_per_day=like.steps_per_day,
    )  # fmt: skip


def fit_catboost(frame: EnergyFrame, val_start: int, test_start: int, p: EnergyParams,
                 catboost: CatBoostLagParams) -> dict[tuple[int, str], CatBoostLags]:  # fmt: skip
    """The lag-feature model of every ``(horizon, covariate mode)``, fit on the train split with early
    stopping on the validation split (its rows never reach into the test period)."""
    models = {}
    for horizon in p.horizons:
        seasonal = [s for s in catboost.seasonal_lags if s >= horizon]
        history = max([*catboost.lags, *seasonal])
        train, val = frame.slice(0, val_start), frame.slice(max(0, val_start - history), test_start)
        for cov in MODES:
            models[(horizon, cov)] = fit_catboost_lags(
                train, val, cov, horizon, catboost.lags, seasonal, catboost.origin_stride, catboost
            )
    return models


def catboost_forecaster(models: Mapping[tuple[int, str], CatBoostLags], covariates: str, like: EnergyFrame) -> Forecaster:
    """The CatBoost lag model of ``covariates`` as a model of :func:`~tsfmlab.evaluation.forecasting.benchmark`:
    each window's features from what fev's window holds (:func:`window_frame`; ``like``: the frame the
    model was fit on), a point forecast."""

    def forecast(task, inputs: TaskInputs) -> Forecasts:
        model = models[(task.horizon, covariates)]
        start = time.perf_counter()
        frames = inputs.flat([[window_frame(task, p, f, like) for p, f in zip(*view, strict=True)]
                              for view in inputs.views])  # fmt: skip
        points = np.concatenate([predict_catboost_lags(model, fr, np.array([len(fr) - task.horizon]))
                                 for fr in frames])  # fmt: skip
        return point_forecasts(points, len(task.quantile_levels), time.perf_counter() - start)

    return forecast


def row_label(row: Mapping[str, Any]) -> str:
    return f"{row['model']}/{row['mode']}/{row['covariates']}"


def energy_rows(run: BenchmarkRun, tasks: Mapping) -> list[dict[str, Any]]:
    """One row per model and task: fev's scores (lower-case metric names), ``rmse`` over all points where
    MSE is scored, and ``r2``. A model name ``<model>/<mode>/<covariates>`` gives the row's labels; the
    naive baselines are ``<name>/baseline/none``."""
    from sklearn.metrics import r2_score

    rows = []
    for s in run.summaries:
        task = tasks[s["task_name"]]
        name = s["model_name"]
        model, mode, cov = name.split("/") if "/" in name else (name, "baseline", "none")
        truth, median = run.truths[s["task_name"]], run.forecasts[s["task_name"]][name].median
        finite = np.isfinite(truth)
        scores = {m.lower(): float(s[m]) for m in [task.eval_metric, *task.extra_metrics]}
        if "mse" in scores:
            scores["rmse"] = float(np.sqrt(scores["mse"]))
        scores["r2"] = float(r2_score(truth[finite], median[finite]))
        rows.append({"model": model, "mode": mode, "covariates": cov, "horizon": task.horizon, "windows": task.num_windows,
                     **{k: round(v, 6) if np.isfinite(v) else None for k, v in scores.items()}})  # fmt: skip
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
            values = [np.nan if r.get(metric) is None else r[metric] for r in sub]
            ax.barh(np.arange(len(sub)), values, color=[f"C{k % 10}" for k in range(len(sub))])
            ax.set_yticks(np.arange(len(sub)), labels, fontsize=7)
            ax.invert_yaxis()
            ax.set_title(f"{metric}, horizon {horizon}", fontsize=9)
            ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def rows_table(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows for a CSV (``dvc plots`` bar templates): label, horizon and the metrics."""
    keys = ("rmse", "mae", "r2", "mape", "wql")  # the bar templates' columns
    return [{"row": row_label(r), "horizon": r["horizon"], **{k: r.get(k, "") for k in keys}} for r in rows]
