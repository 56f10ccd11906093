"""Execution settings that never change results (so they are not DVC params of any stage)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .params import load_params, parse_section


@dataclass(frozen=True)
class ComputeParams:
    """The ``compute`` section: execution settings that cannot change results (no stage's param)."""

    n_jobs: int  # worker processes for data generation (-1: all cores)


def n_jobs(params_path: str | Path = "params.yaml") -> int:
    """Worker processes for data generation: ``TSFMLAB_N_JOBS`` or ``compute.n_jobs`` (-1 = all cores).

    Outputs are bit-identical for any value, which is why it is deliberately not a stage param.
    """
    env = os.environ.get("TSFMLAB_N_JOBS")
    if env:
        return int(env)
    section = load_params(params_path).get("compute")
    return -1 if section is None else parse_section(ComputeParams, section, "compute").n_jobs


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
