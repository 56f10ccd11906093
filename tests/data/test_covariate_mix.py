"""Covariate groups: targets that are exactly the declared lagged mix of their covariate rows."""

import numpy as np
import pytest

from tsfmlab.data.covariate_mix import CovariateMixParams, covariate_groups
from tsfmlab.errors import DataError, ParamError
from tsfmlab.params import parse_section

MAX_LAG = 4


def params(**change) -> CovariateMixParams:
    values = {"probability": 1.0, "n_groups": 40, "max_covariates": 3, "max_lag": MAX_LAG,
              "future_probability": 0.5, "noise_std": [0.0, 0.0]} | change  # fmt: skip
    return parse_section(CovariateMixParams, values, "chronos2.data.covariates")


def sources(n=6, length=40):
    t = np.arange(length)
    return [np.sin(2 * np.pi * t / (5 + 3 * i)) + 0.1 * i * t / length for i in range(n)]


def standardised(x):
    return (x - x.mean()) / x.std()


def test_target_is_the_lagged_mix_of_its_covariates():
    src = sources()  # every source is exactly min_length + max_lag long: windows are whole series
    groups = covariate_groups(src, params(), min_length=36, seed=0)
    assert len(groups) == 40
    for g in groups:
        k = g.values.shape[0] - 1
        assert 1 <= k <= 3 and g.values.shape[1] == 36 and g.values.dtype == np.float32
        z = [standardised(src[i]) for i in g.sources]
        expected = g.base_weight * z[0][MAX_LAG:]
        for row, (w, lag) in enumerate(zip(g.weights, g.lags), start=1):
            np.testing.assert_allclose(g.values[row], z[row][MAX_LAG:], atol=1e-6)
            expected = expected + w * z[row][MAX_LAG - lag : MAX_LAG - lag + 36]
        np.testing.assert_allclose(g.values[0], expected, atol=1e-5)
        past_lags = g.lags[: k - g.n_future]
        assert all(1 <= lag <= MAX_LAG for lag in past_lags)  # past-only rows lead, never coincide
        assert all(0 <= lag <= MAX_LAG for lag in g.lags)
    assert {g.n_future for g in groups} >= {0, 1} and any(0 in g.lags for g in groups)


def test_seeded_noise_and_future_share():
    a = covariate_groups(sources(), params(noise_std=[0.1, 0.3]), 36, seed=0)
    b = covariate_groups(sources(), params(noise_std=[0.1, 0.3]), 36, seed=0)
    c = covariate_groups(sources(), params(noise_std=[0.1, 0.3]), 36, seed=1)
    assert all(np.array_equal(x.values, y.values) for x, y in zip(a, b))
    assert not all(np.array_equal(x.values, z.values) for x, z in zip(a, c))
    none_known = covariate_groups(sources(), params(future_probability=0.0), 36, seed=0)
    assert all(g.n_future == 0 for g in none_known)


def test_bad_params_and_sources():
    with pytest.raises(ParamError, match="future_probability"):
        params(future_probability=1.5)
    with pytest.raises(ParamError, match="noise_std"):
        params(noise_std=[0.3, 0.1])
    with pytest.raises(DataError, match="at least 2"):
        covariate_groups(sources(length=20), params(), 36, seed=0)  # too short for 36 + max_lag
