"""The percentile bootstrap behind every interval of the project: its params, each dataset's draws and
the interval of the resampled scores.

Each dataset's draws come from the bootstrap seed and the dataset's name, never from a stream shared
across datasets, so adding, removing or reordering datasets changes no other dataset's draws.
"""

from __future__ import annotations

import zlib

import numpy as np

from ..params import Params, PositiveInt, Unit


class BootstrapParams(Params):
    """A percentile bootstrap: resamples drawn with replacement, the central ``confidence`` interval of
    their scores (forecasts: series within each dataset; classification: TEST examples)."""

    resamples: PositiveInt
    confidence: Unit
    seed: int


def bootstrap_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of dataset ``name``'s draws: from ``seed`` and the name alone."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def percentile_interval(values: np.ndarray, confidence: float) -> list[float]:
    """``[low, high]``: the central ``confidence`` interval of the finite ``values`` (NaN when none is)."""
    values = values[np.isfinite(values)]
    if not len(values):
        return [float("nan")] * 2
    alpha = (1.0 - confidence) / 2.0
    return [float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))]
