"""Execution settings that never change results (so they are not DVC params of any stage)."""

from __future__ import annotations

import os


def n_jobs() -> int:
    """Worker processes for data generation: ``TSFMLAB_N_JOBS`` (default -1: all cores).

    Outputs are bit-identical for any value, which is why it is an environment variable and no param."""
    env = os.environ.get("TSFMLAB_N_JOBS")
    return int(env) if env else -1


def is_main_process() -> bool:
    """Whether this process writes outputs: always without ``torchrun``, rank 0 under it.

    Read from the launcher's ``RANK`` variable, so it is right before the process group exists."""
    return int(os.environ.get("RANK", "0")) == 0


def progress_enabled() -> bool:
    """Progress bars unless ``TSFMLAB_NO_PROGRESS=1`` (CI logs)."""
    return os.environ.get("TSFMLAB_NO_PROGRESS") != "1"


def rank_label() -> str:
    """`` (rank r of n)`` under torchrun with several processes, else empty (for the stages' prints)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return f" (rank {os.environ.get('RANK', '0')} of {world})" if world > 1 else ""
