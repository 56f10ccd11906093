"""Seeded, worker-count-independent parallel maps.

Each item gets its own generator derived from ``(seed, item index)``, so results never depend on how
many workers ran or in which order they finished.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Self, TypeVar

import numpy as np
from joblib import Parallel, delayed
from pydantic import model_validator
from threadpoolctl import ThreadpoolController
from tqdm.auto import tqdm

from .params import NonNegativeInt, Params, PositiveInt, Shared, ordered
from .runtime import progress_enabled

T = TypeVar("T")
R = TypeVar("R")


def item_rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator determined only by ``seed`` and the item's integer keys."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *(int(k) for k in keys)]))


def resolve_n_jobs(n_jobs: int) -> int:
    """``n_jobs <= 0`` means all cores (joblib's -1 convention widened)."""
    return n_jobs if n_jobs > 0 else max(1, os.cpu_count() or 1)


@functools.cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()  # scanning loaded libraries costs ~1 ms: do it once per process


def single_thread():
    """Context manager: one BLAS/OpenMP thread, so results do not depend on the thread count."""
    return _threadpools().limit(limits=1)


def _single_threaded(fn: Callable[[T], R], item: T) -> R:
    with single_thread():
        return fn(item)


def parallel_imap(
    fn: Callable[[T], R],
    items: Iterable[T],
    n_jobs: int = 1,
    desc: str | None = None,
    total: int | None = None,
    batch_size: Any = "auto",
) -> Iterator[R]:
    """``fn(x) for x in items`` over ``n_jobs`` processes, yielded in order with a progress bar.

    Items are consumed lazily and only a few batches per worker are in flight (joblib's
    ``pre_dispatch``), so memory stays bounded however many items there are."""
    if total is None and isinstance(items, Sequence):
        total = len(items)
    n_jobs = resolve_n_jobs(n_jobs)
    disable = not progress_enabled()
    if n_jobs == 1:
        return (_single_threaded(fn, x) for x in tqdm(items, desc=desc, total=total, disable=disable))
    runner = Parallel(n_jobs=n_jobs, return_as="generator", batch_size=batch_size)
    gen = runner(delayed(_single_threaded)(fn, x) for x in items)
    return iter(tqdm(gen, desc=desc, total=total, disable=disable))


def parallel_map(
    fn: Callable[[T], R],
    items: Sequence[T] | Iterable[T],
    n_jobs: int = 1,
    desc: str | None = None,
    total: int | None = None,
    batch_size: Any = "auto",
) -> list[R]:
    """``[fn(x) for x in items]`` over ``n_jobs`` processes, in order, with a progress bar."""
    items = list(items)
    if len(items) <= 1:
        n_jobs = 1
    return list(parallel_imap(fn, items, n_jobs, desc, total, batch_size))


class ShardParams(Params):
    """The shard a corpus-generating stage writes: ``shard_index`` of ``num_shards`` (items round-robin,
    :func:`shard_indices`), in Arrow files of ``shared.shard_size`` items."""

    shard_index: NonNegativeInt
    num_shards: PositiveInt
    shard_size: Shared[PositiveInt]  # items per Arrow file written

    @model_validator(mode="after")
    def _shard_exists(self) -> Self:
        ordered(self, "shard_index", "num_shards", strict=True)
        return self


def shard_indices(n_items: int, shard_index: int, num_shards: int) -> range:
    """Global item indices owned by one shard (round-robin, so shards are balanced); a ``range``."""
    return range(shard_index, n_items, num_shards)
