"""Benchmark of the rolling-origin evaluator: all windows batched vs one ``predict`` call per window.

What it measures
----------------
The rolling test windows of ``evaluate_energy`` (the prepared energy frame ``--frame``, its test period
from ``--split``, ``--horizon`` steps every ``--stride``, ``--context`` points of history, covariate
mode ``--covariates``) are forecast by the same Chronos-2 (``--model``):

* OURS: ``tsfmlab.evaluation.rolling.predict_rolling`` on the windows gathered by
  ``chronos2_windows``, ``--batch-size`` windows per forward pass (block-diagonal group attention);
* LIBRARY (what ``inference: library`` runs): ``predict_library``, chronos-forecasting's own batched
  ``predict_quantiles`` on the window dicts of ``chronos2_inputs``, ``--batch-size`` windows per pass.
  The fast path stays the default only while ours / library is >= 1.5;
* REFERENCE: ``predict_window_by_window``, one public ``predict_quantiles`` call per window dict of
  ``chronos2_inputs`` (the seed's starting point), on the first ``--reference-windows`` windows (it is
  slow; its rate is per window).

Both rates include building the inputs from the frame.

``speedup = ours / reference`` in windows/s, measured in the same run after an untimed warm-up each;
the forecasts of the reference windows must agree within 1e-5 relative.

    .venv/bin/python bench/bench_rolling_eval.py --model data/models/chronos2
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from tsfmlab.data.energy import load_frame
from tsfmlab.evaluation.rolling import (
    chronos2_inputs,
    chronos2_windows,
    predict_library,
    predict_rolling,
    predict_window_by_window,
    rolling_origins,
)
from tsfmlab.models.chronos_models import load_pipeline

LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="data/models/chronos2")
    ap.add_argument("--frame", default="data/energy/frame.safetensors")
    ap.add_argument("--split", default="data/energy/split.json")
    ap.add_argument("--horizon", type=int, default=1)
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--covariates", default="past_future", choices=["none", "past", "past_future"])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--reference-windows", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args()

    pipeline = load_pipeline(args.model, "chronos-2")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipeline.model.to(device)
    frame = load_frame(args.frame)
    with open(args.split) as f:
        test_start = json.load(f)["test_start"]
    origins = rolling_origins(test_start, len(frame), args.horizon, args.stride)
    few = origins[: args.reference_windows]

    def ours(o):
        windows = chronos2_windows(frame, o, args.context, args.horizon, args.covariates)
        return predict_rolling(pipeline, windows, args.horizon, LEVELS, args.batch_size)

    def library(o):
        inputs = chronos2_inputs(frame, o, args.context, args.horizon, args.covariates)
        return predict_library(pipeline, inputs, args.horizon, LEVELS, args.batch_size)

    def reference(o):
        inputs = chronos2_inputs(frame, o, args.context, args.horizon, args.covariates)
        return predict_window_by_window(pipeline, inputs, args.horizon, LEVELS)

    def timed(fn, o):
        """Best of ``--repeats`` timed runs after an untimed warm-up (a noisy machine only slows)."""
        fn(o[:8])
        times = []
        for _ in range(args.repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = fn(o)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return out, min(times)

    ours_fc, t_ours = timed(ours, origins)
    lib_fc, t_lib = timed(library, origins)
    ref, t_ref = timed(reference, few)
    scale = float(np.abs(ref.quantiles).max())
    diff = float(np.max(np.abs(ours_fc.quantiles[: len(few)] - ref.quantiles)) / scale)
    diff = max(diff, float(np.max(np.abs(ours_fc.quantiles - lib_fc.quantiles)) / scale))
    result = {
        "setting": vars(args),
        "windows": len(origins),
        "reference_windows": len(few),
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "ours_windows_per_s": len(origins) / t_ours,
        "library_windows_per_s": len(origins) / t_lib,
        "speedup_over_library": t_lib / t_ours,
        "reference_windows_per_s": len(few) / t_ref,
        "speedup": (len(origins) / t_ours) / (len(few) / t_ref),
        "max_rel_diff": diff,
        "same_forecasts": diff <= 1e-5,
    }
    print(
        f"{len(origins)} windows ({args.covariates}, horizon {args.horizon}) on {device}: ours "
        f"{result['ours_windows_per_s']:.0f}/s, one call per window {result['reference_windows_per_s']:.1f}/s: "
        f"speedup {result['speedup']:.1f}x; library's batched API {result['library_windows_per_s']:.0f}/s: "
        f"{result['speedup_over_library']:.2f}x; same forecasts within 1e-5: {result['same_forecasts']} "
        f"(max rel diff {diff:.1e})"
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
