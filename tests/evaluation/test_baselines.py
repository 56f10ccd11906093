"""The baselines: naive forecasts by their definition, the CatBoost lag model's reads and skill, the
classifiers on separable data."""

import numpy as np
import pytest

from tests.evaluation.test_rolling import replaced_after
from tsfmlab.data.energy import chronological_split, split_bounds, synthetic_energy
from tsfmlab.errors import ParamError
from tsfmlab.evaluation.baselines import (
    CatBoostParams,
    RocketParams,
    fit_catboost_classifier,
    fit_catboost_lags,
    fit_rocket,
    lag_features,
    last_value,
    naive_forecasts,
    predict_catboost_lags,
    seasonal_naive,
)
from tsfmlab.evaluation.metrics import point_scores
from tsfmlab.evaluation.rolling import MODES, rolling_origins, truth_windows

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
    assert set(naive_forecasts([x], 4, 3)) == {"seasonal_naive", "last_value_naive"}
    with pytest.raises(ParamError, match="season and horizon must be > 0"):
        seasonal_naive([x], 4, 0)


@pytest.fixture(scope="module")
def frame():
    return synthetic_energy(5, seed=0)


@pytest.mark.parametrize("mode", MODES)
def test_lag_features_only_read_the_past(frame, mode):
    o = 300
    x, names = lag_features(frame, [o], 8, (1, 2), (96,), mode)
    changed, _ = lag_features(replaced_after(frame, o, target=True, past=True), [o], 8, (1, 2), (96,), mode)
    np.testing.assert_array_equal(changed, x)
    assert x.shape == (8, len(names)) and names[:4] == ["step", "y_lag1", "y_lag2", "y_season96"]
    assert ("production_lag1" in names) == (mode != "none") and ("NSM" in names) == (mode == "past_future")
    with pytest.raises(ParamError, match="shorter than the horizon"):
        fit_catboost_lags(frame, frame, mode, 8, (1,), (4,), 1, CATBOOST)


def test_catboost_with_past_covariates_beats_seasonal_naive():
    frame = synthetic_energy(14, seed=1)
    train, val, _ = chronological_split(frame, 0.2, 0.2)
    _, test_start = split_bounds(len(frame), 0.2, 0.2)
    origins = rolling_origins(test_start, len(frame), 1, 1)
    truth = truth_windows(frame, origins, 1)
    naive = point_scores(truth, seasonal_naive([frame.target[:o] for o in origins], 1, 96))["rmse"]
    rmse = {}
    for mode in ("none", "past"):
        model = fit_catboost_lags(train, val, mode, 1, (1, 2, 3), (), 1, CATBOOST)
        forecast = predict_catboost_lags(model, frame, origins)
        assert forecast.shape == (len(origins), 1)
        rmse[mode] = point_scores(truth, forecast)["rmse"]
    # the measured production leads the target by one step: it must help at horizon 1
    assert rmse["past"] < 0.8 * rmse["none"] < 0.8 * naive, (rmse, naive)


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
    rocket = fit_rocket(x, y, RocketParams("minirocket", n_kernels=500, seed=0))
    assert (rocket.predict(xt.astype(np.float64)) == yt).mean() >= 0.9
    features = lambda a: np.stack([np.abs(np.diff(a, axis=1)).max(1), np.abs(a).mean(1)], axis=1)  # noqa: E731
    clf = fit_catboost_classifier((features(x), y), (features(xt[:20]), yt[:20]), CATBOOST)
    assert (clf.predict(features(xt[20:])).ravel() == yt[20:]).mean() >= 0.9
