"""Forecasting held-out attractors: median forecasts of every channel of the dysts *test* trajectories.

For a trajectory x of shape (D, T) the forecast origin is ``T - horizon``; each channel's context is the
``context_length`` points before it, forecast channel-independently (all channels of all trajectories in
one batched call per model; Chronos-T5 continues autoregressively past its own prediction length), and by
the naive baselines (:mod:`tsfmlab.evaluation.baselines`): last-value naive, and seasonal naive repeating
the context's last dominant period (``period / dt`` steps, dysts' ``pts_per_period``). Scores per
trajectory (fev's metrics, :mod:`tsfmlab.evaluation.metrics`): sMAPE over all channels and steps, MASE
(each channel scaled by its context's one-step naive error, averaged over channels), and the valid prediction time in
steps and in Lyapunov times.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.arrow_io import read_series
from ..data.dysts_gen import held_out_systems
from ..errors import DataError
from . import baselines
from .forecasting import predict_chronos
from .metrics import lyapunov_times, mase, smape, valid_prediction_time


def load_test_trajectories(dysts_dir, context_length: int, horizon: int) -> list[dict[str, Any]]:
    """The test trajectories (each must belong to a held-out system and be long enough)."""
    held_out = held_out_systems(dysts_dir)
    path = f"{dysts_dir}/test"
    out = []
    for entry in read_series(path):
        if entry["system"] not in held_out:
            raise DataError(f"{path}: system {entry['system']!r} is not a held-out system of systems.json")
        x = np.atleast_2d(np.asarray(entry["target"], np.float32))
        if x.shape[1] < context_length + horizon:
            raise DataError(
                f"{path}: {entry['system']} has {x.shape[1]} points, fewer than context_length + horizon "
                f"({context_length} + {horizon})"
            )
        if not entry.get("dt") or not entry.get("period"):
            raise DataError(f"{path}: {entry['system']} has no dt and period (written by generate_dysts)")
        lyap = entry.get("max_lyapunov")
        out.append(
            {
                "system": entry["system"],
                "context": x[:, -(context_length + horizon) : -horizon].copy(),
                "truth": x[:, -horizon:].copy(),
                "dt": float(entry["dt"]),
                "season": int(round(entry["period"] / entry["dt"])),
                "max_lyapunov": None if lyap is None else float(lyap),
            }
        )
    if not out:
        raise DataError(f"{path}: no test trajectories")
    return out


def median_forecasts(
    pipeline, trajectories, horizon: int, batch_size: int, num_samples: int, seed: int, *, inference: str
):
    """(D, horizon) median forecasts, one per trajectory, from one batched prediction over all channels;
    returns them and the prediction time in seconds."""
    contexts = [c for t in trajectories for c in t["context"]]
    f = predict_chronos(
        pipeline, contexts, horizon, [0.5], batch_size, num_samples, seed, inference=inference
    )
    return _per_trajectory(trajectories, f.median), f.seconds


def _per_trajectory(trajectories, rows: np.ndarray) -> list[np.ndarray]:
    """Split ``(sum of D, H)`` channel rows back into one ``(D, H)`` array per trajectory."""
    out, i = [], 0
    for t in trajectories:
        d = len(t["context"])
        out.append(rows[i : i + d])
        i += d
    return out


def naive_forecasts(trajectories, horizon: int) -> dict[str, list[np.ndarray]]:
    """Both naive baselines' ``(D, horizon)`` forecasts of every trajectory (seasonal naive at each
    trajectory's dominant period)."""
    last = baselines.last_value([c for t in trajectories for c in t["context"]], horizon)
    seasonal = [baselines.seasonal_naive(list(t["context"]), horizon, t["season"]) for t in trajectories]
    return {baselines.SEASONAL_NAIVE: seasonal, baselines.LAST_VALUE: _per_trajectory(trajectories, last)}


def trajectory_scores(
    traj: dict[str, Any], forecast: np.ndarray, vpt_threshold: float
) -> dict[str, float | None]:
    truth = traj["truth"].astype(np.float64)
    forecast = np.asarray(forecast, np.float64)
    vpt = valid_prediction_time(truth, forecast, vpt_threshold)
    return {
        "smape": smape(truth, forecast),
        "mase": mase(truth, forecast, traj["context"]),
        "vpt_steps": float(vpt),
        "vpt_lyapunov": lyapunov_times(vpt, traj["dt"], traj["max_lyapunov"]),
    }


def per_system(trajectories, scores: list[dict[str, float | None]]) -> dict[str, dict[str, float | None]]:
    """Scores averaged over each system's trajectories (None where a metric is undefined for it)."""
    systems: dict[str, list[dict]] = {}
    for t, s in zip(trajectories, scores):
        systems.setdefault(t["system"], []).append(s)
    out = {}
    for name in sorted(systems):
        rows = systems[name]
        out[name] = {}
        for key in rows[0]:
            values = [r[key] for r in rows if r[key] is not None]
            out[name][key] = float(np.mean(values)) if values else None
    return out


def aggregate(by_system: dict[str, dict[str, float | None]]) -> dict[str, float]:
    """Median and mean over systems of each metric."""
    keys = next(iter(by_system.values())).keys()
    out = {}
    for key in keys:
        values = np.array([s[key] for s in by_system.values() if s[key] is not None], dtype=float)
        if len(values):
            out[f"median_{key}"] = float(np.median(values))
            out[f"mean_{key}"] = float(np.mean(values))
    return out
