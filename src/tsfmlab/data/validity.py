"""Validity filters for integrated trajectories, each returning a named rejection reason.

A trajectory of shape (T, D) is kept only if it is finite, bounded, not collapsed onto a fixed point,
has no window in which some channel nearly stops moving, and (optionally) passes the 0-1 test for chaos.
"""

from __future__ import annotations

import numpy as np

from ..params import NonNegativeFloat, Params, PositiveFloat, PositiveInt, Unit

REASONS = (
    "integration_failed",  # the solver raised or stopped before the end
    "step_budget",  # more than max_steps solver steps (stiff or pathological)
    "non_finite",
    "divergent",  # max |x| above divergence_bound
    "fixed_point",  # the tail is (near) constant in every channel
    "low_window_variance",  # some window where a channel barely moves relative to its overall spread
    "not_chaotic",  # 0-1 test statistic below threshold (optional)
)


class FilterParams(Params):
    divergence_bound: PositiveFloat
    fixed_point_tol: PositiveFloat
    tail_fraction: Unit
    n_windows: PositiveInt
    min_window_std_ratio: NonNegativeFloat
    zero_one_test: bool
    zero_one_threshold: Unit
    zero_one_subsample: PositiveInt


def rejection_reason(x: np.ndarray, p: FilterParams, rng: np.random.Generator | None = None) -> str | None:
    """The first failed check for a (T, D) trajectory, or None if it is valid."""
    if not np.all(np.isfinite(x)):
        return "non_finite"
    if np.max(np.abs(x)) > p.divergence_bound:
        return "divergent"
    scale = np.maximum(np.abs(x).max(axis=0), 1.0)
    tail = x[-max(2, int(len(x) * p.tail_fraction)) :]
    if np.all(tail.std(axis=0) < p.fixed_point_tol * scale):
        return "fixed_point"
    if p.min_window_std_ratio > 0 and p.n_windows > 1:
        overall = x.std(axis=0)
        windows = np.array_split(x, p.n_windows, axis=0)
        window_std = np.stack([w.std(axis=0) for w in windows])  # (n_windows, D)
        moving = overall > p.fixed_point_tol * scale  # channels that move at all
        if np.any(window_std[:, moving] < p.min_window_std_ratio * overall[moving]):
            return "low_window_variance"
    if p.zero_one_test:
        channel = int(np.argmax(x.std(axis=0)))
        k = zero_one_chaos_statistic(x[:: p.zero_one_subsample, channel], rng or np.random.default_rng(0))
        if k < p.zero_one_threshold:
            return "not_chaotic"
    return None


def zero_one_chaos_statistic(phi: np.ndarray, rng: np.random.Generator, n_c: int = 32) -> float:
    """Gottwald & Melbourne's 0-1 test (correlation method): ~0 for regular, ~1 for chaotic dynamics.

    Sample the series coarsely enough (about one to a few points per oscillation) before calling it:
    oversampled continuous flows look regular to the test.
    """
    phi = np.asarray(phi, dtype=np.float64)
    phi = (phi - phi.mean()) / (phi.std() + 1e-12)
    n = len(phi)
    n_cut = n // 10
    j = np.arange(1, n + 1)
    lags = np.arange(1, n_cut + 1)
    ks = []
    for c in rng.uniform(np.pi / 5, 4 * np.pi / 5, size=n_c):
        p = np.cumsum(phi * np.cos(j * c))
        q = np.cumsum(phi * np.sin(j * c))
        msd = np.array([np.mean((p[lag:] - p[:-lag]) ** 2 + (q[lag:] - q[:-lag]) ** 2) for lag in lags])
        # subtract the oscillatory term so the regular case does not look like linear growth
        msd -= phi.mean() ** 2 * (1 - np.cos(lags * c)) / (1 - np.cos(c))
        ks.append(np.corrcoef(lags, msd)[0, 1])
    return float(np.median(ks))
