import numpy as np
import pytest

from tests.conftest import section_params
from tsfmlab.data.validity import FilterParams, rejection_reason, zero_one_chaos_statistic
from tsfmlab.params import parse_section


@pytest.fixture
def filters():
    return parse_section(FilterParams, section_params("generate_dysts")["filters"], "generate_dysts.filters")


def lorenz_like(t=2000):
    s = np.linspace(0, 60, t)
    return np.stack([np.sin(s) * 10, np.cos(1.3 * s) * 8, 20 + 5 * np.sin(0.7 * s)], axis=1)


def test_valid_oscillation_passes(filters):
    assert rejection_reason(lorenz_like(), filters) is None


def test_each_reason(filters):
    x = lorenz_like()
    nan = x.copy()
    nan[5, 1] = np.nan
    assert rejection_reason(nan, filters) == "non_finite"
    assert rejection_reason(x * 1e4, filters) == "divergent"
    decayed = x * np.exp(-np.linspace(0, 40, len(x)))[:, None]
    assert rejection_reason(decayed, filters) == "fixed_point"
    stalled = x.copy()
    stalled[500:800] = stalled[500]  # every channel frozen for a window, then moves again
    assert rejection_reason(stalled, filters) == "low_window_variance"


def test_zero_one_test_separates_regular_from_chaotic():
    rng = np.random.default_rng(0)
    t = np.arange(2000)
    assert zero_one_chaos_statistic(np.sin(0.7 * t) + 0.5 * np.sin(1.3 * t), rng) < 0.2
    x = np.empty(2000)
    x[0] = 0.3
    for i in range(len(x) - 1):
        x[i + 1] = 3.97 * x[i] * (1 - x[i])
    assert zero_one_chaos_statistic(x, rng) > 0.8


def test_zero_one_filter_rejects_periodic(filters):
    on = FilterParams(**{**filters.__dict__, "zero_one_test": True, "zero_one_subsample": 1})
    t = np.arange(2000)
    periodic = np.stack([np.sin(0.7 * t), np.cos(0.7 * t)], axis=1)
    assert rejection_reason(periodic, on) == "not_chaotic"
