"""The non-foundation-model baselines every score sits next to.

* Forecasting, every table (held-out series, dysts, energy): **seasonal naive** (the last season
  repeated) and **last-value naive** (seasonal naive with a season of 1), both gluonts'
  ``SeasonalNaivePredictor``, which imputes missing values in the history and falls back to the history's
  mean when it is shorter than the season.
* Energy: a **CatBoost lag-feature model** (:mod:`tsfmlab.evaluation.energy_eval`), on
  :class:`CatBoostParams`.
* Classification: **MiniRocket** (or Rocket) from aeon on the raw series (:func:`fit_rocket`), and
  CatBoost on encoder features (:func:`fit_catboost_classifier`).

All CatBoost models share :class:`CatBoostParams`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ..errors import ParamError
from ..params import Params, PositiveFloat, PositiveInt

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


def naive_seasons(season: int | None) -> dict[str, int | None]:
    """Each naive baseline's season: the data's for seasonal naive, 1 for last-value naive."""
    return {SEASONAL_NAIVE: season, LAST_VALUE: 1}


# --------------------------------------------------------------------------------------------------
# CatBoost


class CatBoostParams(Params):
    iterations: PositiveInt
    depth: PositiveInt
    learning_rate: PositiveFloat
    border_count: PositiveInt
    early_stopping_rounds: PositiveInt  # on the validation split
    thread_count: PositiveInt
    seed: int


def catboost_options(p: CatBoostParams) -> dict[str, Any]:
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

    clf = CatBoostClassifier(loss_function="MultiClass", use_best_model=True, **catboost_options(p))
    clf.fit(train[0], train[1], eval_set=val)
    return clf


# --------------------------------------------------------------------------------------------------
# Rocket


class RocketParams(Params):
    classifier: Literal["minirocket", "rocket"]
    n_kernels: PositiveInt
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
