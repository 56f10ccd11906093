"""Pretraining a Chronos-2 from scratch on the synthetic corpora, with the HF Trainer core of the repo.

chronos-forecasting's ``Chronos2Dataset`` cuts the training windows (a random forecast start per
series, the target's future as labels, covariate rows masked) and ``Chronos2Trainer`` feeds its
ready-made batches; :func:`tsfmlab.training.hf_trainer.fit` adds dvclive curves, checkpoints and
resume. What this module adds is the corpus mixture: each series of a batch is drawn from corpus
``c`` with probability ``probability[c]``, and a multivariate corpus (dysts trajectories) can keep its
channels together as one *group*, which is what trains Chronos-2's group attention (the channels of a
group attend to each other; a univariate series is a group of one). With ``covariates.probability`` > 0
the mixture also draws *covariate groups* (:mod:`tsfmlab.data.covariate_mix`): one target row driven
by lagged covariate rows, built from the rows of every listed corpus (whatever its probability), where
only the target carries a loss and only the future-known covariates have values over the horizon.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.arrow_io import iter_series
from ..data.covariate_mix import CovariateMixParams, covariate_groups
from ..errors import DataError, ParamError
from ..params import positive
from .chronos_data import stream_seed
from .hf_trainer import TrainParams, fit


@dataclass(frozen=True)
class Chronos2DataParams:
    training_data_paths: list[str]
    probability: list[float]
    multivariate: list[bool]  # keep a corpus's (D, T) channels together as one group
    prediction_length: int = field(metadata=positive)
    min_past: int = field(metadata=positive)
    covariates: CovariateMixParams  # groups whose target is driven by covariates, built from the corpora

    def validate(self, section: str) -> None:
        n = len(self.training_data_paths)
        for name in ("probability", "multivariate"):
            if len(getattr(self, name)) != n:
                raise ParamError(
                    f"params {section}.training_data_paths and {section}.{name} differ in length "
                    f"({n} vs {len(getattr(self, name))})"
                )
        if any(p < 0 for p in self.probability) or sum(self.probability) + self.covariates.probability <= 0:
            raise ParamError(
                f"param {section}.probability must be >= 0 with a positive sum, got {self.probability}"
            )


def load_groups(path: str | Path, multivariate: bool, min_length: int) -> list[np.ndarray]:
    """A corpus as ``(D, T)`` float32 groups: one per multivariate series, or one per channel."""
    groups = []
    for entry in iter_series(path):
        target = np.atleast_2d(np.asarray(entry["target"], dtype=np.float32))
        target = np.where(np.isfinite(target), target, np.float32(np.nan))
        parts = [target] if multivariate else [row[None] for row in target]
        groups += [
            np.ascontiguousarray(g) for g in parts if g.shape[1] >= min_length and np.isfinite(g).any()
        ]
    if not groups:
        raise DataError(
            f"{path}: no usable series (each needs at least {min_length} points, not all missing)"
        )
    return groups


def covariate_input(values: np.ndarray, n_future: int, prediction_length: int) -> dict:
    """A covariate group as Chronos-2's prepared input: row 0 the target, the rest covariates, the last
    ``n_future`` of them known over the horizon (the layout ``Chronos2Dataset`` slices in training)."""
    import torch
    from chronos.chronos2.preprocess import PreparedInput

    context = torch.from_numpy(values)
    return PreparedInput(
        context=context,
        future_covariates=torch.full((context.shape[0], prediction_length), fill_value=torch.nan),
        n_targets=1,
        n_covariates=context.shape[0] - 1,
        n_future_covariates=n_future,
    )


@contextlib.contextmanager
def global_numpy_generator(rng: np.random.RandomState) -> Iterator[None]:
    """Draw from ``rng`` wherever numpy's global generator is used, then put the global one back."""
    outside = np.random.get_state()
    np.random.set_state(rng.get_state())
    try:
        yield
    finally:
        rng.set_state(np.random.get_state())
        np.random.set_state(outside)


def mixture_dataset(
    data: Chronos2DataParams, context_length: int, batch_size: int, patch_size: int, seed: int
):
    """An iterable of Chronos-2 training batches over the corpus mixture (see the module docstring).

    Window starts and corpus draws come from the stream's own generator, seeded per process from
    ``(seed, rank, worker)`` at each pass; it stands in for numpy's global generator (which
    ``Chronos2Dataset`` draws from) while a batch is built only. A resumed Trainer skips the batches
    already trained on and then restores the global generator of its checkpoint, which therefore
    leaves the stream as an uninterrupted run has it."""
    from chronos.chronos2.dataset import Chronos2Dataset, DatasetMode
    from chronos.chronos2.preprocess import from_list_of_tensors

    min_length = data.min_past + data.prediction_length
    groups, weights = [], []
    for path, prob, multi in zip(data.training_data_paths, data.probability, data.multivariate, strict=True):
        corpus = load_groups(path, multi, min_length)
        groups += corpus
        weights += [prob / len(corpus)] * len(corpus)
    inputs = from_list_of_tensors(groups, prediction_length=data.prediction_length)
    if data.covariates.probability > 0:
        rows = [row for g in groups for row in g]
        mixed = covariate_groups(rows, data.covariates, min_length, seed)
        inputs += [covariate_input(g.values, g.n_future, data.prediction_length) for g in mixed]
        weights += [data.covariates.probability / len(mixed)] * len(mixed)
    weights = np.asarray(weights) / np.sum(weights)

    class MixtureDataset(Chronos2Dataset):
        def _generate_train_batches(self):
            rng = np.random.RandomState(stream_seed(seed).generate_state(1)[0])
            while True:
                with global_numpy_generator(rng):
                    rows, indices = 0, []
                    while rows < self.batch_size:
                        i = int(np.random.choice(len(self.inputs), p=weights))
                        indices.append(i)
                        rows += self.inputs[i]["context"].shape[0]
                    batch = self._build_batch(indices)
                yield batch

    dataset = MixtureDataset(
        inputs=inputs,
        context_length=context_length,
        prediction_length=data.prediction_length,
        batch_size=batch_size,
        output_patch_size=patch_size,
        min_past=data.min_past,
        mode=DatasetMode.TRAIN,
    )
    return dataset  # load_groups already dropped the series shorter than min_past + prediction_length


def pretrain_chronos2(
    pipeline, data: Chronos2DataParams, train: TrainParams, stage: str, run_params: Any, live_dir: Path
) -> dict:
    """Train ``pipeline``'s ``Chronos2Model`` in place; returns training statistics.

    The corpora are the run's inputs: an interrupted run resumes only on corpora with the same contents."""
    from chronos.chronos2.trainer import Chronos2Trainer

    config = pipeline.model.chronos_config
    if data.prediction_length > config.max_output_patches * config.output_patch_size:
        raise ParamError(
            f"param {stage}.data.prediction_length ({data.prediction_length}) exceeds the model's "
            f"max_output_patches x patch_size ({config.max_output_patches * config.output_patch_size})"
        )
    dataset = mixture_dataset(
        data, config.context_length, train.per_device_train_batch_size, config.output_patch_size, train.seed
    )
    model = pipeline.model
    model.train()
    _, stats = fit(
        model, dataset, train, stage, run_params, live_dir, trainer_class=Chronos2Trainer,
        inputs=data.training_data_paths,
    )  # fmt: skip
    model.eval()
    return stats
