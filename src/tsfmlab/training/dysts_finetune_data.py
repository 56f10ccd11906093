"""Fine-tuning windows from dysts *train* trajectories, augmented on the fly, channel-independent.

Each training window: draw a trajectory uniformly; with probability ``rate`` replace it by an augmented
trajectory (one of random affine map, convex combination of channels, or projected skew product with a
trajectory of another system, chosen with the relative ``probabilities``; ``out_dim`` output channels);
then take one of its channels at random and a Chronos window of it (as ``ChronosWindowDataset``). The
augmentations are seeded from the stream's own generator, so every DataLoader worker and distributed rank
draws its own augmentations, and a given (seed, rank, worker) reproduces them. The trajectories are read
from the corpus on disk one at a time (:class:`Trajectories`), never held whole.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
from pydantic import model_validator

from ..data.augmentations import (
    RandomAffineTransform,
    RandomConvexCombinationTransform,
    RandomProjectedSkewTransform,
)
from ..data.corpus import Corpus
from ..data.dysts_gen import held_out_systems
from ..errors import DataError
from ..params import Invalid, NonNegativeFloat, NonNegativeInt, Params, PositiveInt, Unit
from .chronos_data import ChronosWindowDataset, has_enough_observations

Augmentation = Literal["random_affine", "convex_combination", "projected_skew"]
AUGMENTATIONS = typing.get_args(Augmentation)


class AugmentationParams(Params):
    rate: Unit  # share of windows drawn from an augmented trajectory
    probabilities: dict[Augmentation, NonNegativeFloat]  # relative weight of each augmentation
    out_dim: PositiveInt | None  # channels of an augmented trajectory (null: as input)

    @model_validator(mode="after")
    def _some_augmentation(self) -> Self:
        if self.rate > 0 and sum(self.probabilities.values()) <= 0:
            raise Invalid(
                f"must have a positive sum where rate > 0, got {self.probabilities}", "probabilities"
            )
        return self


class DystsWindowParams(Params):
    """Training windows over the channels of a dysts corpus's train trajectories (lengths: the model's)."""

    dysts_dir: str  # generate_dysts output: train/ is trained on, systems.json's test systems are refused
    augmentations: AugmentationParams
    min_past: PositiveInt
    max_missing_prop: Unit
    drop_prob: Unit  # random NaN injection into the context
    shuffle_buffer_length: NonNegativeInt


class Trajectories(Sequence):
    """The trajectories of a corpus as ``{"target": (D, T) float32, "system": name}``, read on demand."""

    def __init__(self, corpus: Corpus, systems: list[str]) -> None:
        self.corpus = corpus
        self.positions = corpus.entries()  # each trajectory's first channel
        self.systems = list(systems)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, k: int) -> dict[str, Any]:
        target = np.array(self.corpus.target(int(self.positions[k])), dtype=np.float32)
        return {"target": target, "system": self.systems[k]}


def load_train_trajectories(dysts_dir: str | Path, path: str | Path | None = None) -> Trajectories:
    """The trajectories of a dysts *train* corpus, refusing any system held out in ``systems.json``."""
    dysts_dir = Path(dysts_dir)
    held_out = held_out_systems(dysts_dir)
    path = Path(path) if path is not None else dysts_dir / "train"
    corpus = Corpus(path)
    systems = corpus.column("system")
    leaked = sorted({s for s in systems if s in held_out})
    if leaked:
        raise DataError(f"{path}: held-out test system(s) in training data: {', '.join(leaked)}")
    return Trajectories(corpus, systems)


class AugmentedDystsWindows(ChronosWindowDataset):
    """Chronos windows of channels of (optionally augmented) multivariate trajectories."""

    def __init__(self, trajectories: Sequence[dict[str, Any]], augment: AugmentationParams, tokenizer, **kwargs):
        if isinstance(trajectories, Trajectories):
            channels, systems = trajectories.corpus, trajectories.systems
        else:
            channels = [c for t in trajectories for c in np.atleast_2d(t["target"])]
            systems = [t["system"] for t in trajectories]
        super().__init__([channels], [1.0], tokenizer, **kwargs)
        self.trajectories = trajectories
        self.system_names, codes = np.unique(np.asarray(systems, dtype=object).astype(str), return_inverse=True)
        self.system_codes = codes.astype(np.int64)
        self.augment = augment
        names = [n for n in AUGMENTATIONS if n in augment.probabilities]  # not the params' key order
        weights = np.array([augment.probabilities[n] for n in names], dtype=float)
        self.aug_names = [n for n, w in zip(names, weights) if w > 0]
        self.aug_weights = (
            weights[weights > 0] / weights[weights > 0].sum() if len(self.aug_names) else weights
        )
        if "projected_skew" in self.aug_names and len(self.system_names) < 2:
            raise DataError("projected_skew needs trajectories of at least two systems")

    def _transforms(self, rng: np.random.Generator) -> dict[str, Any]:
        seeds = rng.integers(0, 2**31 - 1, size=3)
        out_dim = self.augment.out_dim
        return {
            "random_affine": RandomAffineTransform(out_dim=out_dim, seed=int(seeds[0])),
            "convex_combination": RandomConvexCombinationTransform(out_dim=out_dim, seed=int(seeds[1])),
            "projected_skew": RandomProjectedSkewTransform(out_dim=out_dim or 3, seed=int(seeds[2])),
        }

    def augmented(self, k: int, entry: dict[str, Any], rng: np.random.Generator, transforms: dict[str, Any]):
        name = self.aug_names[rng.choice(len(self.aug_names), p=self.aug_weights)]
        if name == "projected_skew":
            others = np.flatnonzero(self.system_codes != self.system_codes[k])
            partner = self.trajectories[int(others[rng.integers(len(others))])]
            (out,) = list(transforms[name]([entry, partner], is_train=True))
            return out
        return transforms[name].map_transform(entry, is_train=True)

    def _training_windows(self, rng: np.random.Generator) -> Iterator[dict]:
        transforms = self._transforms(rng)
        min_length = self.min_past + self.prediction_length
        while True:
            k = int(rng.integers(len(self.trajectories)))
            entry = self.trajectories[k]
            if self.aug_names and rng.random() < self.augment.rate:
                entry = self.augmented(k, entry, rng, transforms)
            target = np.atleast_2d(np.asarray(entry["target"], np.float32))
            series = target[rng.integers(len(target))]
            if not has_enough_observations(series, min_length, self.max_missing_prop):
                continue
            start = int(rng.integers(self.min_past, len(series) - self.prediction_length + 1))
            past, future = self.window(series, start)
            if self.drop_prob > 0:
                past[rng.random(self.context_length) < self.drop_prob] = np.nan
            yield self.tokenize(past, future)
