"""Rolling-origin windows of the energy frame, and Chronos-2 forecasts of them with covariates.

A window is defined by its *origin* ``o``, the index of its first forecast step: the model sees the
``context_length`` points before ``o`` (they may lie in the train or validation period: that is
history, not leakage) and is scored on the ``horizon`` points from ``o``. Origins run every ``stride``
steps from the start of the test period to its end minus the horizon (:func:`rolling_origins`).

Covariate modes, the same for Chronos-2 and the lag-feature baseline:

* ``"none"``: the target alone;
* ``"past"``: plus the frame's past-only (measured) covariates, values before ``o`` only;
* ``"past_future"``: plus the future-known (calendar) covariates, with their history AND their values
  over the forecast horizon.

Chronos-2 input contract (chronos-forecasting 2.3.2, ``Chronos2Pipeline.predict`` and
``chronos2/preprocess.py``): one dict per window with ``target`` (history,), ``past_covariates``
``{name: (history,)}`` holding every covariate -- past-only ones AND the history of future-known ones --
and ``future_covariates`` ``{name: (horizon,)}`` holding only the future-known ones, whose keys must be
a subset of ``past_covariates``. Covariates absent from ``future_covariates`` are NaN over the horizon
inside the model, i.e. unknown. :func:`chronos2_inputs` builds exactly that and never reads the target
or a past-only covariate at or after the origin.

Every window is scored by :mod:`tsfmlab.evaluation.metrics`; the baselines of the same windows are in
:mod:`tsfmlab.evaluation.baselines`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from ..data.energy import EnergyFrame
from ..errors import DataError, ParamError
from .metrics import Forecasts, quantile_forecasts, with_median

CovariateMode = Literal["none", "past", "past_future"]
MODES: tuple[str, ...] = ("none", "past", "past_future")


# --------------------------------------------------------------------------------------------------
# windows


def rolling_origins(test_start: int, test_stop: int, horizon: int, stride: int) -> np.ndarray:
    """Origins ``test_start, test_start + stride, ...`` whose horizon ends by ``test_stop``."""
    if horizon <= 0 or stride <= 0:
        raise ParamError(f"rolling origins: horizon and stride must be > 0, got {horizon} and {stride}")
    origins = np.arange(test_start, test_stop - horizon + 1, stride, dtype=np.int64)
    if len(origins) == 0:
        raise DataError(
            f"rolling origins: a test period [{test_start}, {test_stop}) of {test_stop - test_start} "
            f"points is shorter than the horizon {horizon}"
        )
    return origins


def check_windows(frame: EnergyFrame, origins: np.ndarray, history: int, horizon: int) -> np.ndarray:
    """Origins as int64, failing if a window's ``history`` or horizon leaves the frame."""
    origins = np.asarray(origins, dtype=np.int64)
    if origins.ndim != 1 or len(origins) == 0:
        raise DataError("rolling evaluation: no origins")
    if origins.min() < history:
        raise DataError(
            f"{frame.source or 'energy frame'}: origin {int(origins.min())} has fewer than {history} "
            f"points of history"
        )
    if origins.max() + horizon > len(frame):
        raise DataError(
            f"{frame.source or 'energy frame'}: origin {int(origins.max())} + horizon {horizon} runs past "
            f"the end ({len(frame)} points)"
        )
    return origins


def truth_windows(frame: EnergyFrame, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The target over every window's horizon, ``(N, horizon)``."""
    origins = check_windows(frame, origins, 0, horizon)
    return frame.target[origins[:, None] + np.arange(horizon)]


def covariate_names(frame: EnergyFrame, covariates: str) -> tuple[list[str], list[str]]:
    """``(past_only, future_known)`` covariate names that a mode uses."""
    if covariates not in MODES:
        raise ParamError(f"unknown covariate mode {covariates!r}; modes: {', '.join(MODES)}")
    past = list(frame.past_covariates) if covariates in ("past", "past_future") else []
    future = list(frame.future_covariates) if covariates == "past_future" else []
    return past, future


def _window(values: np.ndarray, start: int, stop: int) -> np.ndarray:
    view = values[start:stop]
    view.flags.writeable = False  # a view of the frame: inputs must not write back into it
    return view


def chronos2_inputs(
    frame: EnergyFrame,
    origins: np.ndarray,
    context_length: int,
    horizon: int,
    covariates: CovariateMode,
) -> list[dict[str, Any]]:
    """The list of dicts ``Chronos2Pipeline.predict`` takes, one per origin (see the module docstring).

    Reads the target and past-only covariates on ``[o - context_length, o)`` only, future-known
    covariates on ``[o - context_length, o + horizon)``. The arrays are read-only views of ``frame``."""
    if context_length <= 0:
        raise ParamError(f"context_length must be > 0, got {context_length}")
    past, future = covariate_names(frame, covariates)
    origins = check_windows(frame, origins, context_length, horizon)
    inputs = []
    for o in origins.tolist():
        start = o - context_length
        item: dict[str, Any] = {"target": _window(frame.target, start, o)}
        if past or future:
            item["past_covariates"] = {
                **{n: _window(frame.past_covariates[n], start, o) for n in past},
                **{n: _window(frame.future_covariates[n], start, o) for n in future},
            }
        if future:
            item["future_covariates"] = {
                n: _window(frame.future_covariates[n], o, o + horizon) for n in future
            }
        inputs.append(item)
    return inputs


# --------------------------------------------------------------------------------------------------
# Chronos-2 predictions


def _rows(item: Mapping[str, Any]) -> int:
    """Rows one window occupies in a Chronos-2 batch: the target and every covariate."""
    return 1 + len(item.get("past_covariates", {}))


def predict_chronos2(
    pipeline, inputs: Sequence[Mapping], horizon: int, quantile_levels: Sequence[float], batch_size: int
) -> Forecasts:
    """The library's own batched API: ``Chronos2Pipeline.predict_quantiles`` on the window dicts of
    :func:`chronos2_inputs`, ``batch_size`` windows (all their rows) per forward pass. Quantiles at
    ``quantile_levels`` and the median (Chronos-2's point forecast) of every window's target."""
    import torch

    if batch_size <= 0:
        raise ParamError(f"batch_size must be > 0, got {batch_size}")
    levels = with_median(quantile_levels)
    start = time.perf_counter()
    with torch.inference_mode():
        q, _ = pipeline.predict_quantiles(
            list(inputs),
            prediction_length=horizon,
            quantile_levels=levels,
            batch_size=batch_size * (_rows(inputs[0]) if inputs else 1),
        )
    q = np.stack([x[0].float().numpy() for x in q])  # one (1, H, Q) per window: the target
    return quantile_forecasts(q, quantile_levels, time.perf_counter() - start)
