"""TSMixup (Chronos paper, Sec. 4.1): convex mixtures of mean-scaled windows from several corpora.

For output series i (its own generator from (seed, i)): k ~ U{1..max_sources}, length l ~
U{min_length..max_length}; each of the k components picks a source corpus with the given
probabilities, a series uniformly inside it and a random window of length l (the whole series when
shorter; the mixture is cut to the shortest component), is divided by its mean absolute value, and
the components are mixed with weights ~ Dirichlet(alpha · 1_k).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Self

import numpy as np
from pydantic import model_validator

from ..errors import ParamError
from ..parallel import item_rng
from ..params import Length, NonNegativeFloat, Params, PositiveFloat, PositiveInt, Shared, Weights, ordered


class MixupParams(Params):
    n_series: PositiveInt
    max_sources: PositiveInt  # K
    min_length: Length
    max_length: PositiveInt
    alpha: PositiveFloat  # Dirichlet concentration
    source_probabilities: Weights[dict[str, NonNegativeFloat]]  # corpus name -> probability (normalised)
    real_datasets: list[str]  # series shipped in packages (see tsfmlab.data.real_series)
    seed: int
    shard_size: Shared[PositiveInt]  # series per Arrow file written

    @model_validator(mode="after")
    def _lengths_ordered(self) -> Self:
        ordered(self, "min_length", "max_length")
        return self


def mean_scale(x: np.ndarray) -> np.ndarray:
    scale = np.mean(np.abs(x))
    return x / scale if scale > 0 else x


def usable(s: np.ndarray, min_length: int) -> bool:
    """Finite, long enough and not constant: a series a mixture may draw from."""
    return len(s) >= min_length and bool(np.all(np.isfinite(s))) and np.ptp(s) > 0


def eligible_positions(series: Sequence[np.ndarray], min_length: int) -> list[int]:
    """Positions of the usable series (a lazy sequence is read one series at a time)."""
    return [j for j in range(len(series)) if usable(np.asarray(series[j]), min_length)]


def mix_one(
    index: int,
    sources: dict[str, Sequence[np.ndarray]],
    positions: dict[str, list[int]],
    probabilities: dict[str, float],
    p: MixupParams,
) -> dict:
    """Mixture ``index``; ``positions[name]``: the usable series of a source, which ``j`` counts."""
    rng = item_rng(p.seed, index)
    names = sorted(n for n in sources if probabilities.get(n, 0) > 0)
    probs = np.array([probabilities[n] for n in names], dtype=np.float64)
    probs /= probs.sum()
    k = int(rng.integers(1, p.max_sources + 1))
    length = int(rng.integers(p.min_length, p.max_length + 1))
    weights = rng.dirichlet(np.full(k, p.alpha))
    parts, origin = [], []
    for _ in range(k):
        name = names[int(rng.choice(len(names), p=probs))]
        j = int(rng.integers(len(positions[name])))
        s = sources[name][positions[name][j]]
        start = int(rng.integers(0, len(s) - length + 1)) if len(s) > length else 0
        parts.append(mean_scale(np.asarray(s[start : start + length], dtype=np.float64)))
        origin.append(f"{name}:{j}:{start}")
    n = min(len(x) for x in parts)
    target = sum(w * x[:n] for w, x in zip(weights, parts))
    return {
        "target": np.asarray(target, dtype=np.float32),
        "sources": json.dumps(origin),
        "weights": weights.astype(np.float64).tolist(),
    }


def build_mixups(
    sources: dict[str, Sequence[np.ndarray]], p: MixupParams, section: str = "build_mixups"
) -> Iterator[dict]:
    """``p.n_series`` mixtures drawn from the named source corpora (univariate series each), one at a
    time. The sources may be lazy sequences (corpora on disk): only the drawn windows are read.
    The params and the sources are checked before the first mixture."""
    missing = [n for n, w in p.source_probabilities.items() if w > 0 and n not in sources]
    if missing:
        raise ParamError(
            f"param {section}.source_probabilities names unknown source(s) {missing}; have {sorted(sources)}"
        )
    positions = {n: eligible_positions(s, p.min_length) for n, s in sources.items()}
    empty = [n for n, s in positions.items() if not s and p.source_probabilities.get(n, 0) > 0]
    if empty:
        raise ParamError(
            f"source(s) {empty} have no finite, non-constant series of at least "
            f"{section}.min_length={p.min_length} points"
        )
    return (mix_one(i, sources, positions, p.source_probabilities, p) for i in range(p.n_series))
