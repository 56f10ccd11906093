"""Rolling-origin evaluation of Chronos-2 with covariates, and baselines on the same windows.

A window is defined by its *origin* ``o``, the index of its first forecast step: the model sees the
``context_length`` points before ``o`` (they may lie in the train or validation period: that is
history, not leakage) and is scored on the ``horizon`` points from ``o``. Origins run every ``stride``
steps from the start of the test period to its end minus the horizon (:func:`rolling_origins`).

Covariate modes, the same for Chronos-2 and the lag-feature baseline:

* ``"none"``: the target alone;
* ``"past"``: plus the frame's past-only (measured) covariates, values before ``o`` only;
* ``"past_future"``: plus the future-known (calendar) covariates, with their history AND their values
  over the forecast horizon.

Chronos-2 input contract (chronos-forecasting 2.3.2, ``Chronos2Pipeline.predict`` and
``chronos2/preprocess.py``): one dict per window with ``target`` (history,), ``past_covariates``
``{name: (history,)}`` holding every covariate -- past-only ones AND the history of future-known ones --
and ``future_covariates`` ``{name: (horizon,)}`` holding only the future-known ones, whose keys must be
a subset of ``past_covariates``. Covariates absent from ``future_covariates`` are NaN over the horizon
inside the model, i.e. unknown. :func:`chronos2_inputs` builds exactly that and never reads the target
or a past-only covariate at or after the origin.

Scores (:func:`rolling_metrics`): RMSE, MAE, R^2 (``1 - SSE/SST`` over all windows and steps), MAPE
over the points with ``|truth| > eps`` (with the share of points used) and the weighted quantile loss
as gluonts defines it (:func:`wql`), over all steps and per lead time.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from ..data.energy import EnergyFrame
from ..errors import DataError, ParamError

CovariateMode = Literal["none", "past", "past_future"]
MODES: tuple[str, ...] = ("none", "past", "past_future")


# --------------------------------------------------------------------------------------------------
# windows


def rolling_origins(test_start: int, test_stop: int, horizon: int, stride: int) -> np.ndarray:
    """Origins ``test_start, test_start + stride, ...`` whose horizon ends by ``test_stop``."""
    if horizon <= 0 or stride <= 0:
        raise ParamError(f"rolling origins: horizon and stride must be > 0, got {horizon} and {stride}")
    origins = np.arange(test_start, test_stop - horizon + 1, stride, dtype=np.int64)
    if len(origins) == 0:
        raise DataError(
            f"rolling origins: a test period [{test_start}, {test_stop}) of {test_stop - test_start} "
            f"points is shorter than the horizon {horizon}"
        )
    return origins


def check_windows(frame: EnergyFrame, origins: np.ndarray, history: int, horizon: int) -> np.ndarray:
    """Origins as int64, failing if a window's ``history`` or horizon leaves the frame."""
    origins = np.asarray(origins, dtype=np.int64)
    if origins.ndim != 1 or len(origins) == 0:
        raise DataError("rolling evaluation: no origins")
    if origins.min() < history:
        raise DataError(
            f"{frame.source or 'energy frame'}: origin {int(origins.min())} has fewer than {history} "
            f"points of history"
        )
    if origins.max() + horizon > len(frame):
        raise DataError(
            f"{frame.source or 'energy frame'}: origin {int(origins.max())} + horizon {horizon} runs past "
            f"the end ({len(frame)} points)"
        )
    return origins


def truth_windows(frame: EnergyFrame, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The target over every window's horizon, ``(N, horizon)``."""
    origins = check_windows(frame, origins, 0, horizon)
    return frame.target[origins[:, None] + np.arange(horizon)]


def covariate_names(frame: EnergyFrame, covariates: str) -> tuple[list[str], list[str]]:
    """``(past_only, future_known)`` covariate names that a mode uses."""
    if covariates not in MODES:
        raise ParamError(f"unknown covariate mode {covariates!r}; modes: {', '.join(MODES)}")
    past = list(frame.past_covariates) if covariates in ("past", "past_future") else []
    future = list(frame.future_covariates) if covariates == "past_future" else []
    return past, future


def _window(values: np.ndarray, start: int, stop: int) -> np.ndarray:
    view = values[start:stop]
    view.flags.writeable = False  # a view of the frame: inputs must not write back into it
    return view


def chronos2_inputs(
    frame: EnergyFrame,
    origins: np.ndarray,
    context_length: int,
    horizon: int,
    covariates: CovariateMode,
) -> list[dict[str, Any]]:
    """The list of dicts ``Chronos2Pipeline.predict`` takes, one per origin (see the module docstring).

    Reads the target and past-only covariates on ``[o - context_length, o)`` only, future-known
    covariates on ``[o - context_length, o + horizon)``. The arrays are read-only views of ``frame``."""
    if context_length <= 0:
        raise ParamError(f"context_length must be > 0, got {context_length}")
    past, future = covariate_names(frame, covariates)
    origins = check_windows(frame, origins, context_length, horizon)
    inputs = []
    for o in origins.tolist():
        start = o - context_length
        item: dict[str, Any] = {"target": _window(frame.target, start, o)}
        if past or future:
            item["past_covariates"] = {
                **{n: _window(frame.past_covariates[n], start, o) for n in past},
                **{n: _window(frame.future_covariates[n], start, o) for n in future},
            }
        if future:
            item["future_covariates"] = {
                n: _window(frame.future_covariates[n], o, o + horizon) for n in future
            }
        inputs.append(item)
    return inputs


# --------------------------------------------------------------------------------------------------
# Chronos-2 predictions


@dataclasses.dataclass(frozen=True)
class Chronos2Windows:
    """Every window as arrays, rows in the order chronos-forecasting's preprocessing gives them.

    ``context`` is ``(N, R, context_length)`` and ``future_covariates`` ``(N, R, horizon)`` (float32);
    ``rows`` names the ``R`` rows: the target, the past-only covariates (sorted by name), then the
    future-known ones (sorted by name) -- ``chronos2/preprocess.py`` sorts the covariate keys and moves
    the known-future ones last. ``future_covariates`` is NaN except on the future-known rows."""

    context: np.ndarray
    future_covariates: np.ndarray
    rows: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.context)


def chronos2_windows(
    frame: EnergyFrame,
    origins: np.ndarray,
    context_length: int,
    horizon: int,
    covariates: CovariateMode,
) -> Chronos2Windows:
    """The same windows as :func:`chronos2_inputs`, gathered into arrays by one indexing operation
    (no per-window Python), with the same reads: the target and past-only covariates on
    ``[o - context_length, o)``, future-known covariates also on ``[o, o + horizon)``."""
    if context_length <= 0:
        raise ParamError(f"context_length must be > 0, got {context_length}")
    past, future = (sorted(names) for names in covariate_names(frame, covariates))
    origins = check_windows(frame, origins, context_length, horizon)
    series = np.stack(
        [frame.target]
        + [frame.past_covariates[n] for n in past]
        + [frame.future_covariates[n] for n in future]
    ).astype(np.float32, copy=False)  # (R, T)
    history = origins[:, None] + np.arange(-context_length, 0)  # (N, C)
    context = np.ascontiguousarray(series[:, history].transpose(1, 0, 2))
    future_values = np.full((len(origins), len(series), horizon), np.nan, dtype=np.float32)
    if future:
        ahead = origins[:, None] + np.arange(horizon)  # (N, H)
        known = series[1 + len(past) :]
        future_values[:, 1 + len(past) :] = known[:, ahead].transpose(1, 0, 2)
    return Chronos2Windows(context, future_values, ("target", *past, *future))


@dataclasses.dataclass
class RollingForecast:
    """Quantiles ``(N, H, Q)`` and medians ``(N, H)`` (Chronos-2's point forecast is its median)."""

    quantiles: np.ndarray
    median: np.ndarray
    seconds: float


def _rows(item: Mapping[str, Any]) -> int:
    """Rows one window occupies in a Chronos-2 batch: the target and every covariate."""
    return 1 + len(item.get("past_covariates", {}))


def _select_quantiles(pipeline, predictions, quantile_levels: Sequence[float]):
    """``(N, H, Q)`` at ``quantile_levels`` and the ``(N, H)`` median from ``(N, model quantiles, H)``,
    exactly as ``Chronos2Pipeline.predict_quantiles`` does (interpolating levels the model lacks)."""
    from chronos.utils import interpolate_quantiles

    trained = list(pipeline.quantiles)
    predictions = predictions.transpose(1, 2)  # (N, H, model quantiles)
    levels = list(quantile_levels)
    if set(levels).issubset(trained):
        quantiles = predictions[..., [trained.index(q) for q in levels]]
    else:
        quantiles = interpolate_quantiles(levels, trained, predictions)
    return quantiles, predictions[..., trained.index(0.5)]


def predict_rolling(
    pipeline,
    windows: Chronos2Windows,
    horizon: int,
    quantile_levels: Sequence[float],
    batch_size: int,
) -> RollingForecast:
    """Forecast every window, ``batch_size`` windows per forward pass.

    Each pass hands ``Chronos2Pipeline``'s batch predictor the window tensors directly (one group of
    ``R`` rows per window, no cross-learning) instead of re-validating and re-stacking one dict per
    window, and computes the group attention block by block (:mod:`tsfmlab.models.chronos2_groups`),
    so a pass costs linearly, not quadratically, in ``batch_size``. The library's long-horizon
    unrolling, quantile heads and interpolation are used unchanged; :func:`predict_window_by_window`
    is the reference it is tested and benchmarked against."""
    import torch

    from ..models.chronos2_groups import block_diagonal_groups

    if batch_size <= 0:
        raise ParamError(f"batch_size must be > 0, got {batch_size}")
    n_rows, context_length = windows.context.shape[1:]
    if windows.future_covariates.shape[-1] != horizon:
        raise ParamError(
            f"windows were built for horizon {windows.future_covariates.shape[-1]}, not {horizon}"
        )
    keep = min(context_length, pipeline.model_context_length)  # what predict() does with a longer one
    unrolled = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])  # predict()'s default
    quantiles, medians = [], []
    start = time.perf_counter()
    with torch.inference_mode(), block_diagonal_groups(pipeline.model):
        for i in range(0, len(windows), batch_size):
            context = torch.from_numpy(windows.context[i : i + batch_size, :, -keep:])
            n = len(context)
            (prediction,) = pipeline._predict_batch(
                context=context.reshape(n * n_rows, keep),
                group_ids=torch.arange(n).repeat_interleave(n_rows),
                future_covariates=torch.from_numpy(windows.future_covariates[i : i + n]).reshape(
                    n * n_rows, -1
                ),
                unrolled_quantiles_tensor=unrolled,
                prediction_length=horizon,
                max_output_patches=pipeline.max_output_patches,
                target_idx_ranges=[(0, n * n_rows)],
            )
            q, m = _select_quantiles(pipeline, prediction[::n_rows], quantile_levels)  # target rows
            quantiles.append(q.float().numpy())
            medians.append(m.float().numpy())
    seconds = time.perf_counter() - start
    return RollingForecast(np.concatenate(quantiles), np.concatenate(medians), seconds)


def predict_library(
    pipeline, inputs: Sequence[Mapping], horizon: int, quantile_levels: Sequence[float], batch_size: int
) -> RollingForecast:
    """The library's own batched API: one ``Chronos2Pipeline.predict_quantiles`` call on the window dicts
    of :func:`chronos2_inputs`, ``batch_size`` windows (all their rows) per forward pass. The reference
    of :func:`predict_rolling` (``inference: library``)."""
    import torch

    if batch_size <= 0:
        raise ParamError(f"batch_size must be > 0, got {batch_size}")
    start = time.perf_counter()
    with torch.inference_mode():
        q, m = pipeline.predict_quantiles(
            list(inputs),
            prediction_length=horizon,
            quantile_levels=list(quantile_levels),
            batch_size=batch_size * (_rows(inputs[0]) if inputs else 1),
        )
    quantiles = np.stack([x[0].float().numpy() for x in q])  # one (1, H, Q) per window: the target
    medians = np.stack([x[0].float().numpy() for x in m])
    return RollingForecast(quantiles, medians, time.perf_counter() - start)


def predict_window_by_window(
    pipeline, inputs: Sequence[Mapping], horizon: int, quantile_levels: Sequence[float]
) -> RollingForecast:
    """The slow reference: one public ``predict_quantiles`` call per window (dicts of
    :func:`chronos2_inputs`), as a user of ``Chronos2Pipeline`` would write it."""
    import torch

    quantiles, medians = [], []
    start = time.perf_counter()
    with torch.inference_mode():
        for item in inputs:
            q, m = pipeline.predict_quantiles(
                [item],
                prediction_length=horizon,
                quantile_levels=list(quantile_levels),
                batch_size=_rows(item),
            )
            quantiles.append(q[0].float().numpy())  # (1, H, Q): one target
            medians.append(m[0].float().numpy())
    seconds = time.perf_counter() - start
    return RollingForecast(np.concatenate(quantiles), np.concatenate(medians), seconds)


# --------------------------------------------------------------------------------------------------
# metrics


def point_metrics(truth: np.ndarray, forecast: np.ndarray, eps: float = 1e-6) -> dict[str, float]:
    """RMSE, MAE, R^2 and MAPE (a fraction) over all points with a finite truth.

    MAPE only counts points with ``|truth| > eps``; ``mape_share`` is the share of points it used.
    R^2 is NaN when the truth is constant."""
    truth = np.asarray(truth, dtype=np.float64)
    forecast = np.asarray(forecast, dtype=np.float64)
    if truth.shape != forecast.shape:
        raise DataError(f"metrics: truth {truth.shape} and forecast {forecast.shape} differ in shape")
    valid = np.isfinite(truth)
    y, f = truth[valid], forecast[valid]
    if len(y) == 0:
        raise DataError("metrics: no finite truth value")
    err = f - y
    sst = float(np.sum((y - y.mean()) ** 2))
    nonzero = np.abs(y) > eps
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": 1.0 - float(np.sum(err**2)) / sst if sst > 0 else float("nan"),
        "mape": float(np.mean(np.abs(err[nonzero]) / np.abs(y[nonzero]))) if nonzero.any() else float("nan"),
        "mape_share": float(nonzero.mean()),
    }


def wql(truth: np.ndarray, quantiles: np.ndarray, levels: Sequence[float]) -> float:
    """gluonts' mean weighted quantile loss: for each level ``q``, ``sum 2 |(f_q - y)((y <= f_q) - q)|``
    over all points divided by ``sum |y|``, averaged over the levels. ``quantiles`` is ``truth.shape +
    (Q,)``; points with a non-finite truth are left out."""
    truth = np.asarray(truth, dtype=np.float64)
    quantiles = np.asarray(quantiles, dtype=np.float64)
    levels = np.asarray(levels, dtype=np.float64)
    if quantiles.shape != (*truth.shape, len(levels)):
        raise DataError(
            f"wql: quantiles {quantiles.shape} do not match truth {truth.shape} x {len(levels)} levels"
        )
    valid = np.isfinite(truth)
    y, f = truth[valid][:, None], quantiles[valid]
    denominator = np.sum(np.abs(y))
    losses = 2 * np.sum(np.abs((f - y) * ((y <= f) - levels)), axis=0)
    return float(np.mean(losses / denominator)) if denominator > 0 else float("nan")


def rolling_metrics(
    truth: np.ndarray,
    median: np.ndarray,
    quantiles: np.ndarray | None = None,
    levels: Sequence[float] | None = None,
    leads: Sequence[int] = (),
) -> dict[str, dict[str, float]]:
    """Scores over all ``(N, H)`` points (``"all"``) and at each lead time in ``leads`` (``"h<lead>"``,
    1 = the first forecast step). WQL is included when quantiles are given."""
    truth, median = np.asarray(truth), np.asarray(median)
    horizon = truth.shape[1]
    bad = [lead for lead in leads if not 1 <= lead <= horizon]
    if bad:
        raise ParamError(f"lead time(s) {bad} outside 1..{horizon}")

    def scores(steps: slice | list[int]) -> dict[str, float]:
        out = point_metrics(truth[:, steps], median[:, steps])
        if quantiles is not None:
            out["wql"] = wql(truth[:, steps], quantiles[:, steps], levels)
        return out

    return {"all": scores(slice(None)), **{f"h{lead}": scores([lead - 1]) for lead in leads}}


# --------------------------------------------------------------------------------------------------
# baselines


def seasonal_naive(frame: EnergyFrame, origins: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The last season before each origin repeated: ``y[o + j] ~ y[o - season + j % season]``."""
    if season <= 0:
        raise ParamError(f"season must be > 0, got {season}")
    origins = check_windows(frame, origins, season, horizon)
    steps = np.arange(horizon) % season
    return frame.target[origins[:, None] - season + steps]


@dataclasses.dataclass
class CatBoostLags:
    """A direct multi-horizon CatBoost model: one regressor, the forecast step as a feature."""

    model: Any
    covariates: str
    horizon: int
    lags: tuple[int, ...]
    seasonal_lags: tuple[int, ...]
    feature_names: list[str]
    best_iteration: int | None


DEFAULT_CATBOOST = {
    "iterations": 500,
    "learning_rate": 0.1,
    "depth": 6,
    "loss_function": "RMSE",
    "random_seed": 0,
    "thread_count": 1,
    "early_stopping_rounds": 50,
    "verbose": False,
}


def lag_features(
    frame: EnergyFrame,
    origins: np.ndarray,
    horizon: int,
    lags: Sequence[int],
    seasonal_lags: Sequence[int],
    covariates: CovariateMode,
) -> tuple[np.ndarray, list[str]]:
    """Features of every ``(origin, step)`` pair, rows ordered origin by origin: ``(N * H, F)``.

    * ``step``: the lead time ``j + 1`` of the row's target ``y[o + j]``;
    * ``y_lag<l>``: ``y[o - l]`` (origin-relative lags, ``l >= 1``);
    * ``y_season<s>``: ``y[o + j - s]`` (target-relative lags, ``s >= horizon`` so still before ``o``);
    * ``<past covariate>_lag<l>``: ``x[o - l]`` (modes ``past`` and ``past_future``);
    * ``<future covariate>``: ``z[o + j]``, its value at the target time (mode ``past_future``)."""
    past, future = covariate_names(frame, covariates)
    history = max([*lags, *seasonal_lags])
    origins = check_windows(frame, origins, history, horizon)
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
    lags: Sequence[int],
    covariates: CovariateMode,
    horizon: int,
    params: Mapping[str, Any] | None = None,
    seasonal_lags: Sequence[int] = (),
    origin_stride: int = 1,
) -> CatBoostLags:
    """Fit on every ``origin_stride``-th origin of ``train_frame``, early-stopping on ``val_frame``.

    ``params`` override :data:`DEFAULT_CATBOOST` (e.g. ``thread_count``); each frame supplies its own
    lags, so each loses its first ``max(lags, seasonal_lags)`` points. Rows: origins x horizon."""
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
    model = CatBoostRegressor(**{**DEFAULT_CATBOOST, **(params or {}), "allow_writing_files": False})
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
