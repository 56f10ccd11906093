"""The non-foundation-model baselines every score sits next to.

* Forecasting, every table (held-out series, dysts, energy): **seasonal naive** (the last season
  repeated) and **last-value naive** (seasonal naive with a season of 1), both gluonts'
  ``SeasonalNaivePredictor``, which imputes missing values in the history and falls back to the history's
  mean when it is shorter than the season.
* Energy: a **CatBoost lag-feature model**, one direct multi-horizon regressor per covariate mode
  (:func:`fit_catboost_lags`), fit on the train split with early stopping on the validation split.
* Classification: **MiniRocket** (or Rocket) from aeon on the raw series (:func:`fit_rocket`), and
  CatBoost on encoder features (:func:`fit_catboost_classifier`).

All CatBoost models share :class:`CatBoostParams`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import field
from typing import Any, Literal

import numpy as np

from ..data.energy import EnergyFrame
from ..errors import DataError, ParamError
from ..params import positive
from .rolling import CovariateMode, check_windows, covariate_names

SEASONAL_NAIVE = "seasonal_naive"
LAST_VALUE = "last_value_naive"
NAIVE = (SEASONAL_NAIVE, LAST_VALUE)

# --------------------------------------------------------------------------------------------------
# naive forecasts


def seasonal_naive(histories: Sequence[np.ndarray], horizon: int, season: int) -> np.ndarray:
    """``(N, horizon)`` float32: each history's last ``season`` points repeated (gluonts)."""
    import pandas as pd
    from gluonts.model.seasonal_naive import SeasonalNaivePredictor

    if season <= 0 or horizon <= 0:
        raise ParamError(f"seasonal naive: season and horizon must be > 0, got {season} and {horizon}")
    start = pd.Period("2000-01-01", freq="h")  # nominal: the forecast does not depend on it
    predictor = SeasonalNaivePredictor(prediction_length=horizon, season_length=season)
    entries = [{"start": start, "target": h} for h in histories]
    return np.stack([f.mean for f in predictor.predict(entries)]).astype(np.float32)


def last_value(histories: Sequence[np.ndarray], horizon: int) -> np.ndarray:
    """``(N, horizon)`` float32: each history's last value repeated."""
    return seasonal_naive(histories, horizon, 1)


def naive_seasons(season: int) -> dict[str, int]:
    """Each naive baseline's season: the data's for seasonal naive, 1 for last-value naive."""
    return {SEASONAL_NAIVE: season, LAST_VALUE: 1}


def naive_forecasts(histories: Sequence[np.ndarray], horizon: int, season: int) -> dict[str, np.ndarray]:
    """Both naive baselines, by name."""
    return {name: seasonal_naive(histories, horizon, s) for name, s in naive_seasons(season).items()}


# --------------------------------------------------------------------------------------------------
# CatBoost


@dataclasses.dataclass(frozen=True)
class CatBoostParams:
    iterations: int = field(metadata=positive)
    depth: int = field(metadata=positive)
    learning_rate: float = field(metadata=positive)
    border_count: int = field(metadata=positive)
    early_stopping_rounds: int = field(metadata=positive)  # on the validation split
    thread_count: int = field(metadata=positive)
    seed: int


@dataclasses.dataclass(frozen=True)
class CatBoostLagParams(CatBoostParams):
    """The energy lag-feature model: CatBoost settings and its features."""

    lags: list[int] = field(metadata=positive)
    seasonal_lags: list[int] = field(metadata=positive)  # target-relative; used where >= the horizon
    origin_stride: int = field(metadata=positive)  # training rows: every n-th origin of train/val


def _catboost_options(p: CatBoostParams) -> dict[str, Any]:
    return {
        "iterations": p.iterations,
        "depth": p.depth,
        "learning_rate": p.learning_rate,
        "border_count": p.border_count,
        "early_stopping_rounds": p.early_stopping_rounds,
        "thread_count": p.thread_count,
        "random_seed": p.seed,
        "allow_writing_files": False,
        "verbose": False,
    }


def fit_catboost_classifier(
    train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], p: CatBoostParams
):
    """CatBoost on features, the validation split as its eval set (best iteration kept, early stopping)."""
    from catboost import CatBoostClassifier

    clf = CatBoostClassifier(loss_function="MultiClass", use_best_model=True, **_catboost_options(p))
    clf.fit(train[0], train[1], eval_set=val)
    return clf


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
    covariates: CovariateMode,
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
    model = CatBoostRegressor(loss_function="RMSE", **_catboost_options(p))
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
# Rocket


@dataclasses.dataclass(frozen=True)
class RocketParams:
    classifier: Literal["minirocket", "rocket"]
    n_kernels: int = field(metadata=positive)
    seed: int


def fit_rocket(x: np.ndarray, y: np.ndarray, p: RocketParams):
    """aeon's MiniRocket (or Rocket) classifier fit on ``x`` ``(N, T)``. It tunes its ridge penalty by
    internal cross-validation, so it takes all labelled series. Runs on numba's whole thread pool
    (``numerics.threads`` when pinned, the cores otherwise)."""
    import numba
    from aeon.classification.convolution_based import MiniRocketClassifier, RocketClassifier

    cls = MiniRocketClassifier if p.classifier == "minirocket" else RocketClassifier
    clf = cls(n_kernels=p.n_kernels, n_jobs=numba.config.NUMBA_NUM_THREADS, random_state=p.seed)
    return clf.fit(np.asarray(x, dtype=np.float64), y)
