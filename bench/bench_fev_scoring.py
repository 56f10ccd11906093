"""Benchmark of scoring forecasts with fev: predictions handed over as arrays vs as fev's lists of dicts;
and window splits made once for all models vs fev's split per model.

What it measures
----------------
A fev task over ``--series`` synthetic series (``--length`` points, ``--windows`` windows of
``--horizon``, nine quantile levels) and one set of random quantile forecasts of every window, scored by
fev's own ``Task.evaluation_summary`` twice:

* OURS: each window's predictions as the ``datasets.Dataset`` that
  ``tsfmlab.evaluation.fev_tasks.predictions_dataset`` builds from the ``(items, horizon)`` arrays at once,
  with a named fingerprint (what ``evaluate_forecast`` hands fev);
* REFERENCE: the same predictions as a list of dicts, one per item (fev's documented format), which fev
  turns into a ``Dataset`` through ``Dataset.from_list``, hashing every value for a fingerprint.

``speedup = reference seconds / ours seconds``, measured in the same run; both must give the same
summary (every metric equal). Nothing else differs: fev cuts the windows and computes the metrics in both.

Splits (``evaluate_energy.scoring``): a one-item task of ``--split-windows`` horizon-1 windows (the energy
tasks' shape), ``--models`` models' summaries. OURS: inside
``tsfmlab.evaluation.fev_tasks.shared_window_splits`` (each window's data split once); REFERENCE: fev's own
path, which splits every window again for each model. ``split_speedup`` likewise, the same summaries required.

    .venv/bin/python bench/bench_fev_scoring.py
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import tsfmlab  # noqa: F401 -- pins the CPU numerics before fev loads numpy
from tsfmlab.data.fev_data import nominal_timestamps, write_fev_dataset
from tsfmlab.evaluation.fev_tasks import predictions_dataset

LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--length", type=int, default=400)
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--windows", type=int, default=10)
    ap.add_argument("--split-windows", type=int, default=400)
    ap.add_argument("--models", type=int, default=12)
    args = ap.parse_args()

    import fev

    rng = np.random.default_rng(0)
    items = [{"id": f"{i:05d}", "timestamp": nominal_timestamps(args.length), "target": rng.gamma(2.0, 1.0, args.length)}
             for i in range(args.series)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = write_fev_dataset(items, Path(tmp) / "bench" / "data.parquet")
        task = fev.Task(dataset_path=str(path), horizon=args.horizon, num_windows=args.windows, seasonality=4,
                        eval_metric="WQL", extra_metrics=["MASE"], quantile_levels=LEVELS)  # fmt: skip
        list(task.iter_windows())  # the dataset loaded once, outside both timings
        q = np.sort(rng.gamma(2.0, 1.0, (args.windows, args.series, args.horizon, len(LEVELS))), axis=-1)
        columns = [{"predictions": w[:, :, 4], **{str(lv): w[:, :, j] for j, lv in enumerate(LEVELS)}} for w in q]
        as_lists = [[{k: v[i] for k, v in c.items()} for i in range(args.series)] for c in columns]

        def timed(make_predictions):  # the hand-over (building the predictions) is timed with the scoring
            start = time.perf_counter()
            summary = task.evaluation_summary(make_predictions(), model_name="m")
            return time.perf_counter() - start, summary

        ours_s, ours = timed(lambda: [predictions_dataset(c, f"w{k}") for k, c in enumerate(columns)])
        ref_s, ref = timed(lambda: as_lists)
        split_ours_s, split_ref_s, split_same = splits(args, Path(tmp), rng)
    same = all(ours[m] == ref[m] for m in ("WQL", "MASE", "test_error", "num_forecasts"))
    print(json.dumps({
        "cpu": platform.processor() or platform.machine(), "series": args.series, "windows": args.windows,
        "ours_s": round(ours_s, 3), "reference_s": round(ref_s, 3), "speedup": round(ref_s / ours_s, 2),
        "same_summary": same, "split_windows": args.split_windows, "models": args.models,
        "split_ours_s": round(split_ours_s, 3), "split_reference_s": round(split_ref_s, 3),
        "split_speedup": round(split_ref_s / split_ours_s, 2), "split_same_summaries": split_same,
    }))  # fmt: skip
    if not (same and split_same):
        raise SystemExit("the two ways of scoring gave different summaries")


def splits(args, tmp: Path, rng) -> tuple[float, float, bool]:
    """Seconds of ``--models`` summaries on a one-item task of many windows, with and without shared splits."""
    import fev

    from tsfmlab.evaluation.fev_tasks import shared_window_splits

    n = args.split_windows + 400
    item = {"id": "x", "timestamp": nominal_timestamps(n), "target": rng.gamma(2.0, 1.0, n), "c": rng.normal(size=n)}
    path = write_fev_dataset([item], tmp / "splits" / "data.parquet")
    task = fev.Task(dataset_path=str(path), horizon=1, num_windows=args.split_windows, seasonality=4,
                    past_dynamic_columns=["c"], eval_metric="MAE", extra_metrics=["WQL"], quantile_levels=LEVELS)  # fmt: skip
    list(task.iter_windows())
    q = np.sort(rng.gamma(2.0, 1.0, (args.models, args.split_windows, 1, 1, len(LEVELS))), axis=-1)
    predictions = [[predictions_dataset({"predictions": w[:, :, 4], **{str(lv): w[:, :, j] for j, lv in enumerate(LEVELS)}},
                                        f"m{m}w{k}") for k, w in enumerate(model)] for m, model in enumerate(q)]  # fmt: skip

    def timed():
        start = time.perf_counter()
        out = [task.evaluation_summary(p, model_name=f"m{m}") for m, p in enumerate(predictions)]
        return time.perf_counter() - start, out

    with shared_window_splits():
        ours_s, ours = timed()
    ref_s, ref = timed()
    return ours_s, ref_s, ours == ref


if __name__ == "__main__":
    main()
