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

The corpora stay on disk (:mod:`tsfmlab.data.corpus`): a group is read when a batch draws it, and
which groups are usable comes from the corpus index, so no process holds a copy of the corpora.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from pydantic import model_validator

from ..data.corpus import Corpus
from ..data.covariate_mix import CovariateMixParams, covariate_groups
from ..data.published_corpora import open_corpus
from ..errors import DataError, ParamError
from ..models.fast_paths import require_tested
from ..params import Invalid, NonNegativeFloat, Params, PositiveInt, same_length
from .chronos_data import stream_seed
from .hf_trainer import TrainParams, fit


class Chronos2DataParams(Params):
    training_data_paths: list[str]
    probability: list[NonNegativeFloat]  # one per path
    multivariate: list[bool]  # keep a corpus's (D, T) channels together as one group
    prediction_length: PositiveInt
    min_past: PositiveInt
    covariates: CovariateMixParams  # groups whose target is driven by covariates, built from the corpora

    @model_validator(mode="after")
    def _one_probability_per_path(self) -> Self:
        same_length(self, "training_data_paths", "probability", "multivariate")
        if sum(self.probability) + self.covariates.probability <= 0:
            raise Invalid(
                f"must have a positive sum with covariates.probability, got {self.probability}",
                "probability",
                ("covariates.probability",),
            )
        return self


class CorpusGroups(Sequence):
    """A corpus as ``(D, T)`` float32 groups, read on demand: one per multivariate entry, or one per
    channel; only those of at least ``min_length`` points with a finite value (from the index)."""

    def __init__(self, corpus: Corpus, multivariate: bool, min_length: int) -> None:
        self.corpus, self.multivariate = corpus, multivariate
        if multivariate:
            first = corpus.entries()
            finite = np.add.reduceat(corpus.n_finite, first) if len(first) else np.zeros(0, np.int64)
            keep = (corpus.lengths[first] >= min_length) & (finite > 0)
            self.positions = first[keep]
            channels = np.diff(np.append(first, len(corpus)))
            self.channels = channels[keep]
        else:
            self.positions = corpus.eligible(min_length)
            self.channels = np.ones(len(self.positions), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> np.ndarray:
        pos = int(self.positions[i])
        values = self.corpus.target(pos) if self.multivariate else self.corpus.series(pos)[None]
        values = np.array(values, dtype=np.float32)
        values[~np.isfinite(values)] = np.nan
        return values

    def row(self, i: int, channel: int) -> np.ndarray:
        """One channel of group ``i`` (the rows covariate groups are built from)."""
        return self[i][channel]


def load_groups(path: str | Path, multivariate: bool, min_length: int) -> CorpusGroups:
    """A corpus as ``(D, T)`` float32 groups: one per multivariate series, or one per channel."""
    groups = CorpusGroups(open_corpus(path), multivariate, min_length)
    if not len(groups):
        raise DataError(
            f"{path}: no usable series (each needs at least {min_length} points, not all missing)"
        )
    return groups


class GroupRows(Sequence):
    """Every row (channel) of every group of some ``CorpusGroups``, read on demand."""

    def __init__(self, sources: list[CorpusGroups]) -> None:
        self.sources = sources
        per_group = [(k, i, n) for k, g in enumerate(sources) for i, n in enumerate(g.channels)]
        counts = np.array([n for _, _, n in per_group], dtype=np.int64)
        self.source = np.repeat([k for k, _, _ in per_group], counts)
        self.group = np.repeat([i for _, i, _ in per_group], counts)
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        self.channel = np.arange(int(counts.sum())) - starts

    def __len__(self) -> int:
        return len(self.channel)

    def __getitem__(self, j: int) -> np.ndarray:
        return self.sources[int(self.source[j])].row(int(self.group[j]), int(self.channel[j]))


class PreparedInputs(Sequence):
    """Sources of groups (``CorpusGroups``, lists of prepared covariate groups) concatenated, each item
    a Chronos-2 ``PreparedInput`` built when a batch asks for it."""

    def __init__(self, sources: list[Sequence], prediction_length: int) -> None:
        self.sources, self.prediction_length = sources, prediction_length
        self.offsets = np.cumsum([0] + [len(s) for s in sources])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int):
        k = int(np.searchsorted(self.offsets, i, side="right")) - 1
        item = self.sources[k][i - int(self.offsets[k])]
        if isinstance(item, dict):
            return item
        from chronos.chronos2.preprocess import from_list_of_tensors

        return from_list_of_tensors([item], prediction_length=self.prediction_length)[0]


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
    require_tested("chronos2_mixture_batches", "stage chronos2's corpus mixture (chronos2.data)")
    from chronos.chronos2.dataset import Chronos2Dataset, DatasetMode

    min_length = data.min_past + data.prediction_length
    sources: list[Sequence] = []
    weights = []
    for path, prob, multi in zip(data.training_data_paths, data.probability, data.multivariate, strict=True):
        sources.append(load_groups(path, multi, min_length))
        weights.append(prob)
    if data.covariates.probability > 0:
        mixed = covariate_groups(GroupRows(list(sources)), data.covariates, min_length, seed)
        sources.append([covariate_input(g.values, g.n_future, data.prediction_length) for g in mixed])
        weights.append(data.covariates.probability)
    inputs = PreparedInputs(sources, data.prediction_length)
    weights = np.asarray(weights) / np.sum(weights)
    sizes = [len(s) for s in sources]

    class MixtureDataset(Chronos2Dataset):
        def _generate_train_batches(self):
            rng = np.random.RandomState(stream_seed(seed).generate_state(1)[0])
            while True:
                with global_numpy_generator(rng):
                    rows, indices = 0, []
                    while rows < self.batch_size:
                        k = int(np.random.choice(len(sources), p=weights))
                        i = int(inputs.offsets[k]) + int(np.random.randint(sizes[k]))
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
