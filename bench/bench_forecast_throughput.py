"""Benchmark of evaluation forecasting: batched across systems and windows vs series by series.

What it measures
----------------
The held-out dysts test trajectories of ``--dysts-dir`` (every channel is a series; context
``--context`` points before the last ``--horizon``) are forecast by the same Chronos model
(``--model``, a saved pipeline directory) with ``--num-samples`` sample paths:

* OURS: ``tsfmlab.evaluation.dysts_eval.median_forecasts``: all channels of all trajectories in batches
  of ``--batch-size`` through ``predict_quantiles`` of ``tsfmlab.models.chronos_sampling.fast_pipeline``
  (the encoder once per series, a plain sampling loop over the decoder cache, top-k draws among k);
* REFERENCE: ``ChronosPipeline.predict`` called once per series (the straightforward loop), quantiles
  taken from its samples;
* LIBRARY (second reference, what ``inference: library`` runs): the same ``median_forecasts`` through
  chronos-forecasting's own batched ``predict_quantiles`` (transformers' ``generate``) on the same
  batches, i.e. what the fast path adds over the library's batched API. The fast path stays the
  default only while this ratio is >= 1.5.

``speedup = ours / reference`` in series/s, measured in the same run, after one untimed warm-up call each.
Same outputs: with greedy decoding (``top_k=1``, so no sampling randomness depends on the batch layout)
ours and the series-by-series loop must give the same medians within 1e-4 relative (batching only
left-pads shorter contexts); full-vocabulary sampling (``top_k=0``) at a fixed seed must give exactly
batched generate's sample paths.

    .venv/bin/python bench/bench_forecast_throughput.py --model data/models/student
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from tsfmlab.evaluation.dysts_eval import load_test_trajectories, median_forecasts
from tsfmlab.evaluation.forecasting import predict_chronos
from tsfmlab.models.chronos_sampling import fast_pipeline
from tsfmlab.models.loading import load_pipeline


def reference(pipeline, contexts, horizon, num_samples, **kwargs) -> np.ndarray:
    out = []
    for c in contexts:
        samples = pipeline.predict(
            torch.from_numpy(c), prediction_length=horizon, num_samples=num_samples, **kwargs
        )
        out.append(np.quantile(samples[0].float().numpy(), 0.5, axis=0))
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="data/models/student")
    ap.add_argument("--dysts-dir", default="data/dysts")
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--num-samples", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--max-series", type=int, default=120, help="reference series (the loop is slow)")
    ap.add_argument("--out")
    args = ap.parse_args()

    pipeline = load_pipeline(args.model, "chronos-t5")
    trajectories = load_test_trajectories(args.dysts_dir, args.context, args.horizon)
    contexts = [c for t in trajectories for c in t["context"]][: args.max_series]
    n = len(contexts)
    trajs = [{"context": np.stack([c])} for c in contexts]  # one channel each, in the same order

    # same outputs under greedy decoding
    ours_greedy = predict_chronos(
        pipeline, contexts, args.horizon, [0.5], args.batch_size, 1, 0, inference="fast", top_k=1
    )
    ours_greedy = ours_greedy.quantiles[:, :, 0]
    ref_greedy = reference(pipeline, contexts, args.horizon, 1, top_k=1)
    rel = float(np.max(np.abs(ours_greedy - ref_greedy)) / (np.max(np.abs(ref_greedy)) + 1e-12))

    sampled = []
    for p in (pipeline, fast_pipeline(pipeline)):
        torch.manual_seed(0)
        batch = [torch.from_numpy(c) for c in contexts[: args.batch_size]]
        sampled.append(
            p.predict(batch, prediction_length=args.horizon, num_samples=args.num_samples, top_k=0)
        )
    identical_samples = bool(torch.equal(*sampled))

    def forecast(ts, inference):
        return median_forecasts(
            pipeline, ts, args.horizon, args.batch_size, args.num_samples, 0, inference=inference
        )

    seconds = {}
    for inference in ("fast", "library"):
        forecast(trajs[:2], inference)  # warm-up
        start = time.perf_counter()
        forecast(trajs, inference)
        seconds[inference] = time.perf_counter() - start
    ours_s, generate_s = seconds["fast"], seconds["library"]
    reference(pipeline, contexts[:2], args.horizon, args.num_samples)  # warm-up
    start = time.perf_counter()
    reference(pipeline, contexts, args.horizon, args.num_samples)
    ref_s = time.perf_counter() - start

    result = {
        "setting": vars(args),
        "series": n,
        "machine": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "ours_series_per_s": n / ours_s,
        "reference_series_per_s": n / ref_s,
        "library_series_per_s": n / generate_s,
        "speedup": ref_s / ours_s,
        "speedup_over_library": generate_s / ours_s,
        "greedy_max_rel_diff": rel,
        "same_outputs": rel <= 1e-4,
        "same_samples_as_generate_top_k_0": identical_samples,
    }
    print(
        f"ours {n / ours_s:.1f} series/s, reference {n / ref_s:.1f} series/s: speedup {ref_s / ours_s:.1f}x "
        f"(library's batched API {n / generate_s:.1f} series/s: {generate_s / ours_s:.2f}x)"
    )
    print(f"greedy outputs equal within 1e-4: {result['same_outputs']} (max rel diff {rel:.1e})")
    print(f"top_k=0 sample paths identical to batched generate at a fixed seed: {identical_samples}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
