"""Which covariates a model reads: the one rule the energy frame, fine-tuning and fev tasks share.

A series' covariates are either **past-only** (measured alongside the target: known up to a forecast's
origin; fev's ``past_dynamic_columns``) or **known** ahead (calendar-derived: their future values may be
given to a model; fev's ``known_dynamic_columns``). A covariate mode names what a model reads.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ParamError

#: none; the past-only covariates; or those and the known ones (their history and their future values)
MODES = ("none", "past", "past_future")


def covariate_columns(past: Sequence[str], known: Sequence[str], mode: str) -> tuple[list[str], list[str]]:
    """``(past_only, known)`` names that a model in covariate mode ``mode`` reads."""
    if mode not in MODES:
        raise ParamError(f"unknown covariate mode {mode!r}; modes: {', '.join(MODES)}")
    return (list(past) if mode != "none" else []), (list(known) if mode == "past_future" else [])
