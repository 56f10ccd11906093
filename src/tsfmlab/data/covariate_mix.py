"""Covariate groups: synthetic targets driven by covariates, for pretraining Chronos-2's group attention.

Univariate corpora teach a model to continue a series; they never show it a row that *explains* another.
Chronos-2 pretrains on multivariate data made from univariate generators (its report calls them
multivariatizers). :func:`covariate_groups` builds the simplest such data: for group i (its own
generator from ``(seed, i)``):

- ``k ~ U{1..max_covariates}`` covariates, each a standardised series drawn from the sources; each is
  *known in the future* with probability ``future_probability`` and *past-only* otherwise;
- each covariate acts on the target with a lag: past-only ones with ``lag ~ U{1..max_lag}`` (a leading
  indicator, as a measured production leads a load), future-known ones with lag 0 (half of them) or
  ``U{1..max_lag}``;
- ``target_t = b * base_t + sum_j w_j * cov_j[t - lag_j] + noise_std * e_t`` with a standardised base
  series, ``b ~ U(0, 1)``, ``w_j ~ N(0, 1)``, ``noise_std ~ U(noise_low, noise_high)``, all in units of
  the standardised series.

A group is a ``(1 + k, T)`` array, rows ordered as Chronos-2's prepared inputs want them: the target,
the past-only covariates, then the future-known ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from pydantic import Field, field_validator

from ..errors import DataError
from ..parallel import item_rng
from ..params import Invalid, NonNegativeFloat, Params, PositiveInt, Unit
from .augmentations import standardize
from .tsmixup import eligible_positions


class CovariateMixParams(Params):
    probability: NonNegativeFloat  # weight among the corpora's probabilities (0: off)
    n_groups: PositiveInt
    max_covariates: PositiveInt
    max_lag: PositiveInt
    future_probability: Unit  # share of covariates known over the forecast horizon
    # [low, high] of the target noise, in standardised units
    noise_std: Annotated[list[NonNegativeFloat], Field(min_length=2, max_length=2)]

    @field_validator("noise_std")
    @classmethod
    def _low_high(cls, noise_std: list[float]) -> list[float]:
        if noise_std[0] > noise_std[1]:
            raise Invalid(f"must be [low, high] with low <= high, got {noise_std}")
        return noise_std


@dataclass(frozen=True)
class CovariateGroup:
    values: np.ndarray  # (1 + n_past + n_future, T) float32: target, past-only, future-known rows
    n_future: int
    sources: list[int]  # indices of the usable sources: the base, then each covariate row in order
    lags: list[int]  # per covariate row
    weights: list[float]  # per covariate row
    base_weight: float


def covariate_groups(
    sources: Sequence[np.ndarray], params: CovariateMixParams, min_length: int, seed: int
) -> list[CovariateGroup]:
    """``params.n_groups`` groups of at least ``min_length`` steps from 1-D ``sources`` (see the module;
    a lazy sequence is read one series at a time: only the series a group draws stay in memory)."""
    usable = eligible_positions(sources, min_length + params.max_lag)
    if len(usable) < 2:
        raise DataError(
            f"covariate groups need at least 2 finite, non-constant source series of >= "
            f"{min_length + params.max_lag} points, found {len(usable)}"
        )
    low, high = params.noise_std
    groups = []
    for i in range(params.n_groups):
        rng = item_rng(seed, i)
        k = int(rng.integers(1, params.max_covariates + 1))
        chosen = rng.choice(len(usable), size=k + 1, replace=False)
        picks = [np.asarray(sources[usable[j]], dtype=np.float64) for j in chosen]
        length = min(len(s) for s in picks) - params.max_lag
        start = [int(rng.integers(0, len(s) - length - params.max_lag + 1)) for s in picks]
        window = [
            standardize(s[None, a : a + length + params.max_lag])[0]
            for s, a in zip(picks, start, strict=True)
        ]
        future = rng.random(k) < params.future_probability
        lags = rng.integers(1, params.max_lag + 1, size=k)
        lags[future & (rng.random(k) < 0.5)] = 0
        weights = rng.standard_normal(k)
        base_weight = rng.uniform(0.0, 1.0)
        target = base_weight * window[0][params.max_lag :]
        covs = []
        for w, lag, cov in zip(weights, lags, window[1:], strict=True):
            target = target + w * cov[params.max_lag - lag : params.max_lag - lag + length]
            covs.append(cov[params.max_lag :])
        target = target + rng.uniform(low, high) * rng.standard_normal(length)
        order = [j for j in range(k) if not future[j]] + [j for j in range(k) if future[j]]
        values = np.stack([target] + [covs[j] for j in order]).astype(np.float32)
        groups.append(
            CovariateGroup(
                values=values,
                n_future=int(future.sum()),
                sources=[int(chosen[0])] + [int(chosen[1 + j]) for j in order],
                lags=[int(lags[j]) for j in order],
                weights=[float(weights[j]) for j in order],
                base_weight=float(base_weight),
            )
        )
    return groups
