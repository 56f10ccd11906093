"""Chronos training data: random windows from a mixture of corpora, tokenized for a seq2seq model.

The recipe follows ``ChronosDataset`` of chronos-forecasting's ``scripts/training/train.py``
(Ansari et al. 2024):

* series with fewer than ``min_past + prediction_length`` points, or with a share of NaN values
  above ``max_missing_prop``, are dropped;
* training draws, forever, a corpus by ``probabilities``, a series uniformly within it, and a forecast
  start uniformly among the positions with at least ``min_past`` past and ``prediction_length`` future
  points; past values are set to NaN with probability ``drop_prob`` (missing-value injection); the
  stream goes through a pseudo-shuffling buffer;
* validation yields the last window of every series once, in order, split among DataLoader workers
  and distributed ranks.

Corpora on disk are opened with :func:`open_corpora`: Arrow shards read through an index that gives
every series' length and missing share, so filtering reads no value and each process (rank, worker)
holds the index and the windows it draws, never a copy of the corpora (:mod:`tsfmlab.data.corpus`).

Windows are tokenized by the Chronos tokenizer itself (``context_input_transform`` and
``label_input_transform``); NaN marks padding and missing values, which the tokenizer masks out, and
labels whose target is NaN are set to -100 so the cross-entropy loss ignores them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..data.arrow_io import iter_series
from ..data.corpus import Corpus, eligible_positions
from ..data.published_corpora import open_corpus
from ..errors import DataError, ParamError

IGNORE_INDEX = -100  # label id ignored by torch's cross-entropy loss
MODES = ("training", "validation")

Item = dict[str, torch.Tensor]


def has_enough_observations(series: np.ndarray, min_length: int, max_missing_prop: float) -> bool:
    """Whether a series has at least ``min_length`` points and at most that share of NaN values."""
    return len(series) >= min_length and float(np.isnan(series).mean()) <= max_missing_prop


def load_corpora(paths: Sequence[str | Path], min_length: int) -> list[list[np.ndarray]]:
    """Read GluonTS Arrow corpora as lists of univariate float32 series, one list per path.

    Each channel of a multivariate (D, T) target becomes its own series; non-finite values become
    NaN. Series shorter than ``min_length`` or without any finite value are dropped. A missing or
    corrupted corpus raises the ``DataError`` of ``iter_series``; a corpus left empty raises one too.
    """
    if isinstance(min_length, bool) or not isinstance(min_length, int) or min_length < 1:
        raise ParamError(f"min_length must be an integer >= 1, got {min_length!r}")
    corpora = []
    for path in paths:
        series = []
        for entry in iter_series(path):
            target = np.asarray(entry["target"], dtype=np.float32)
            if target.ndim not in (1, 2):
                raise DataError(f"{path}: target must be (T,) or (D, T), got shape {target.shape}")
            for channel in np.atleast_2d(target):
                channel = np.where(np.isfinite(channel), channel, np.float32(np.nan))
                if len(channel) >= min_length and np.isfinite(channel).any():
                    series.append(np.ascontiguousarray(channel))
        if not series:
            raise DataError(
                f"{path}: no usable series (each needs at least {min_length} points, not all missing)"
            )
        corpora.append(series)
    return corpora


def open_corpora(paths: Sequence[str | Path], min_length: int) -> list[Corpus]:
    """Open training corpora (corpus directories, Arrow files, Parquet or published corpora; see
    :func:`tsfmlab.data.corpus.open_corpus`), checking each against its index before any training.

    Each channel of a multivariate (D, T) target is its own series. A missing, corrupted or
    inconsistent corpus raises a ``DataError`` naming the file; so does a corpus without any series
    of ``min_length`` points that is not all missing."""
    _check_int("min_length", min_length, 1)
    corpora = []
    for path in paths:
        corpus = open_corpus(path)
        if not len(corpus.eligible(min_length)):
            raise DataError(
                f"{path}: no usable series (each needs at least {min_length} points, not all missing)"
            )
        corpora.append(corpus)
    return corpora


class ArrayCorpus:
    """In-memory univariate series with the reading interface of :class:`tsfmlab.data.corpus.Corpus`."""

    def __init__(self, series: Sequence[np.ndarray], name: str = "corpus") -> None:
        self.arrays = []
        for j, x in enumerate(series):
            x = np.asarray(x, dtype=np.float32)
            if x.ndim != 1:
                raise ParamError(f"{name}[{j}] must be a 1-D series, got shape {x.shape}")
            self.arrays.append(x)
        self.lengths = np.array([len(x) for x in self.arrays], dtype=np.int64)
        self.n_finite = np.array([np.isfinite(x).sum() for x in self.arrays], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.arrays)

    def series(self, i: int) -> np.ndarray:
        return self.arrays[i]

    def eligible(self, min_length: int, max_missing_prop: float = 1.0) -> np.ndarray:
        return eligible_positions([(0, self.lengths, self.n_finite)], len(self), min_length, max_missing_prop)


def as_corpus(corpus: Corpus | ArrayCorpus | Sequence[np.ndarray], name: str) -> Corpus | ArrayCorpus:
    return corpus if isinstance(corpus, (Corpus, ArrayCorpus)) else ArrayCorpus(corpus, name)


def process_slot() -> tuple[int, int]:
    """This process's position among all DataLoader workers of all ranks, and their number."""
    info = get_worker_info()
    worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    return rank * num_workers + worker_id, world * num_workers


def stream_seed(seed: int) -> np.random.SeedSequence:
    """Seed sequence for this process's stream: differs by DataLoader worker and distributed rank."""
    info = get_worker_info()
    worker_id = info.id if info is not None else 0
    rank = 0
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank = torch.distributed.get_rank()
    return np.random.SeedSequence([seed, rank, worker_id])


def pseudo_shuffle(items: Iterator[Item], buffer_length: int, rng: np.random.Generator) -> Iterator[Item]:
    """Shuffle a stream approximately: once the buffer is full, emit a random buffered element.

    As Chronos' ``PseudoShuffledIterator``; the buffer is drained in random order when the stream ends.
    A buffer length of 0 or 1 leaves the order unchanged.
    """
    buffer: list[Item] = []
    for item in items:
        buffer.append(item)
        if len(buffer) >= buffer_length:
            yield buffer.pop(int(rng.integers(len(buffer))))
    while buffer:
        yield buffer.pop(int(rng.integers(len(buffer))))


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParamError(f"{name} must be an integer >= {minimum}, got {value!r}")


class ChronosWindowDataset(IterableDataset):
    """Tokenized (context, future) windows drawn from a mixture of univariate corpora.

    Each item is a dict of tensors: ``input_ids`` (long) and ``attention_mask`` (bool), of length
    ``context_length`` (+1 when the tokenizer appends EOS), and ``labels`` (long), of length
    ``prediction_length`` (+1 with EOS), with -100 where the future value is missing.

    Window semantics for a series ``x`` of length ``T`` and a forecast start ``t``: past is
    ``x[max(0, t - context_length):t]`` left-padded with NaN to ``context_length``, future is
    ``x[t:t + prediction_length]``. Training draws ``t`` uniformly from
    ``[min_past, T - prediction_length]``; validation uses ``t = T - prediction_length``.

    ``corpora``: :class:`tsfmlab.data.corpus.Corpus` objects (on disk, see :func:`open_corpora`)
    or sequences of 1-D arrays. Randomness comes from numpy generators seeded by ``(seed, distributed
    rank, DataLoader worker id)``: every worker and rank gets its own stream, and a given seed, rank and
    worker reproduce theirs. In validation mode the series are split among DataLoader workers and
    ranks so each window is yielded once.
    """

    def __init__(
        self,
        corpora: Sequence[Corpus | Sequence[np.ndarray]],
        probabilities: Sequence[float],
        tokenizer: Any,
        context_length: int = 512,
        prediction_length: int = 64,
        min_past: int = 64,
        max_missing_prop: float = 0.9,
        drop_prob: float = 0.2,
        model_type: str = "seq2seq",
        mode: str = "training",
        shuffle_buffer_length: int = 100,
        seed: int = 0,
    ) -> None:
        super().__init__()
        _check_int("context_length", context_length, 1)
        _check_int("prediction_length", prediction_length, 1)
        _check_int("min_past", min_past, 1)
        _check_int("shuffle_buffer_length", shuffle_buffer_length, 0)
        _check_int("seed", seed, 0)
        if not 0.0 <= max_missing_prop <= 1.0:
            raise ParamError(f"max_missing_prop must be in [0, 1], got {max_missing_prop!r}")
        if not 0.0 <= drop_prob < 1.0:
            raise ParamError(f"drop_prob must be in [0, 1), got {drop_prob!r}")
        if model_type == "causal":
            raise ParamError(
                "model_type 'causal' is not supported: ChronosWindowDataset builds seq2seq "
                "(encoder-decoder) inputs only; use model_type='seq2seq'"
            )
        if model_type != "seq2seq":
            raise ParamError(f"model_type must be 'seq2seq', got {model_type!r}")
        if mode not in MODES:
            raise ParamError(f"mode must be one of {MODES}, got {mode!r}")
        if len(probabilities) != len(corpora):
            raise ParamError(
                f"probabilities must have one entry per corpus: got {len(probabilities)} "
                f"for {len(corpora)} corpora"
            )
        probs = np.asarray(probabilities, dtype=np.float64)
        if len(probs) == 0 or not (probs >= 0).all() or not probs.sum() > 0:
            raise ParamError(
                f"probabilities must be non-negative with a positive sum, got {list(probabilities)}"
            )
        config = tokenizer.config
        if config.model_type != model_type:
            raise ParamError(
                f"model_type {model_type!r} differs from the tokenizer config's {config.model_type!r}"
            )
        if config.context_length != context_length:
            raise ParamError(
                f"context_length ({context_length}) differs from the tokenizer config's "
                f"({config.context_length})"
            )
        if config.prediction_length != prediction_length:
            raise ParamError(
                f"prediction_length ({prediction_length}) differs from the tokenizer config's "
                f"({config.prediction_length})"
            )

        self.tokenizer = tokenizer
        self.context_length = int(context_length)
        self.prediction_length = int(prediction_length)
        self.min_past = int(min_past)
        self.max_missing_prop = float(max_missing_prop)
        self.drop_prob = float(drop_prob)
        self.model_type = model_type
        self.mode = mode
        self.shuffle_buffer_length = int(shuffle_buffer_length)
        self.seed = int(seed)

        min_length = self.min_past + self.prediction_length
        self.corpora = [as_corpus(c, f"corpora[{i}]") for i, c in enumerate(corpora)]
        # positions of the usable series of each corpus, from the lengths and missing counts only
        self.kept = [c.eligible(min_length, self.max_missing_prop) for c in self.corpora]
        self.probabilities = probs / probs.sum()
        empty = [i for i, k in enumerate(self.kept) if not len(k) and self.probabilities[i] > 0]
        if empty:
            raise DataError(
                f"corpora {empty} have no series with at least {min_length} points "
                f"(min_past + prediction_length) and at most {self.max_missing_prop} missing"
            )

    def window(self, series: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
        """The NaN-left-padded past and the future of a series around forecast start ``start``."""
        past = np.full(self.context_length, np.nan, dtype=np.float32)
        observed = series[max(0, start - self.context_length) : start]
        past[self.context_length - len(observed) :] = observed
        future = np.array(series[start : start + self.prediction_length], dtype=np.float32)
        for x in (past, future):  # a corpus may store inf: missing, as NaN
            x[~np.isfinite(x)] = np.nan
        return past, future

    def tokenize(self, past: np.ndarray, future: np.ndarray) -> Item:
        """Tokenize one window with the Chronos tokenizer; missing future values get label -100."""
        input_ids, attention_mask, scale = self.tokenizer.context_input_transform(
            torch.from_numpy(past).unsqueeze(0)
        )
        labels, labels_mask = self.tokenizer.label_input_transform(
            torch.from_numpy(future).unsqueeze(0), scale
        )
        labels[labels_mask == 0] = IGNORE_INDEX
        return {
            "input_ids": input_ids.squeeze(0),
            "attention_mask": attention_mask.squeeze(0),
            "labels": labels.squeeze(0),
        }

    def _training_windows(self, rng: np.random.Generator) -> Iterator[Item]:
        while True:
            c = rng.choice(len(self.corpora), p=self.probabilities)
            kept = self.kept[c]
            series = self.corpora[c].series(int(kept[rng.integers(len(kept))]))
            start = int(rng.integers(self.min_past, len(series) - self.prediction_length + 1))
            past, future = self.window(series, start)
            if self.drop_prob > 0:
                past[rng.random(self.context_length) < self.drop_prob] = np.nan
            yield self.tokenize(past, future)

    def _validation_windows(self) -> Iterator[Item]:
        slot, slots = process_slot()
        n = 0
        for corpus, kept in zip(self.corpora, self.kept):
            for j in kept:
                if n % slots == slot:
                    series = corpus.series(int(j))
                    yield self.tokenize(*self.window(series, len(series) - self.prediction_length))
                n += 1

    def __iter__(self) -> Iterator[Item]:
        if self.mode == "validation":
            return self._validation_windows()
        window_seed, shuffle_seed = stream_seed(self.seed).spawn(2)
        windows = self._training_windows(np.random.default_rng(window_seed))
        return pseudo_shuffle(windows, self.shuffle_buffer_length, np.random.default_rng(shuffle_seed))
