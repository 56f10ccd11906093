"""The baselines: naive forecasts by their definition, the classifiers on separable data (the energy
CatBoost lag model: tests/evaluation/test_energy_eval.py)."""

import numpy as np
import pytest

from tsfmlab.errors import ParamError
from tsfmlab.evaluation.baselines import (
    CatBoostParams,
    RocketParams,
    fit_catboost_classifier,
    fit_rocket,
    last_value,
    seasonal_naive,
)

CATBOOST = CatBoostParams(
    iterations=150, depth=6, learning_rate=0.1, border_count=254, early_stopping_rounds=30, thread_count=1, seed=0
)


def test_naive_forecasts_by_their_definition():
    x = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(seasonal_naive([x], 5, 3)[0], x[[7, 8, 9, 7, 8]])
    np.testing.assert_array_equal(last_value([x, x[:4]], 3), [[9, 9, 9], [3, 3, 3]])
    # gluonts' rules: a missing value is imputed, a history shorter than the season gives its mean
    gap = np.array([1.0, 2.0, np.nan], dtype=np.float32)
    assert np.isfinite(last_value([gap], 2)).all()
    np.testing.assert_array_equal(seasonal_naive([x[:2]], 2, 5), [[0.5, 0.5]])
    with pytest.raises(ParamError, match="season and horizon must be > 0"):
        seasonal_naive([x], 4, 0)


def separable(n: int, seed: int):
    """Two classes of series: a sine and a square wave, with noise and random phases."""
    rng = np.random.default_rng(seed)
    t = np.arange(64)
    y = np.arange(n) % 2
    phase = rng.uniform(0, 2 * np.pi, n)
    x = np.where(y[:, None] == 0, np.sin(t / 4 + phase[:, None]), np.sign(np.sin(t / 4 + phase[:, None])))
    return (x + rng.normal(0, 0.3, x.shape)).astype(np.float32), y


def test_classifiers_separate_two_classes():
    (x, y), (xt, yt) = separable(40, 0), separable(40, 1)
    rocket = fit_rocket(x, y, RocketParams(classifier="minirocket", n_kernels=500, seed=0))
    assert (rocket.predict(xt.astype(np.float64)) == yt).mean() >= 0.9
    features = lambda a: np.stack([np.abs(np.diff(a, axis=1)).max(1), np.abs(a).mean(1)], axis=1)  # noqa: E731
    clf = fit_catboost_classifier((features(x), y), (features(xt[:20]), yt[:20]), CATBOOST)
    assert (clf.predict(features(xt[20:])).ravel() == yt[20:]).mean() >= 0.9
