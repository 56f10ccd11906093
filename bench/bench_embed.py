"""Benchmark of feature extraction: ``extract_features``' encoder path vs chronos-forecasting's ``embed``.

What it measures
----------------
Series of the prepared classification datasets (``--ucr-dir``, every split; multichannel series give one
series per channel; truncated to the model's context) are embedded by the same model (``--model``):

* OURS: ``tsfmlab.models.encoders.embed_series`` (inference mode, pooling on the device, only the
  pooled ``(batch, d)`` features leave it), ``--batch-size`` series per call;
* REFERENCE: ``pipeline.embed`` on the same batches (it returns every position's embedding on the CPU),
  then the same masked mean over the observed context positions, on the CPU.

``speedup = ours / reference`` in embeddings/s, measured in the same run after one untimed warm-up each;
both must give the same features within 1e-4 relative.

    .venv/bin/python bench/bench_embed.py --model data/models/teacher
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from tsfmlab.data.ucr import SPLITS, load_inputs
from tsfmlab.models.encoders import ChronosEncoder, embed_series
from tsfmlab.models.loading import load_pipeline


def reference(pipeline, x: np.ndarray, batch_size: int) -> np.ndarray:
    out = []
    for i in range(0, len(x), batch_size):
        batch = torch.from_numpy(x[i : i + batch_size])
        emb, _ = pipeline.embed(batch)
        observed = (~torch.isnan(batch[:, -emb.shape[1] + 1 :])).float()[..., None]
        out.append(((emb[:, :-1] * observed).sum(1) / observed.sum(1)).numpy())
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="data/models/teacher")
    ap.add_argument("--ucr-dir", default="data/ucr")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3, help="passes over the series, timed together")
    ap.add_argument("--out")
    args = ap.parse_args()

    pipeline = load_pipeline(args.model, "chronos-t5")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipeline.model.model.to(device)
    encoder = ChronosEncoder(pipeline)
    ctx = encoder.context_length
    series = [
        row[-ctx:]
        for f in sorted(Path(args.ucr_dir).glob("*.safetensors"))
        for s in SPLITS
        for case in load_inputs(f, s)
        for row in case
    ]
    length = max(len(s) for s in series)
    x = np.full((len(series), length), np.nan, np.float32)
    for i, s in enumerate(series):
        x[i, length - len(s) :] = s  # left-padded, as Chronos expects

    ours = embed_series(encoder, x[:, None, :], "mean_no_eos", "concat", "truncate", args.batch_size)
    ref = reference(pipeline, x, args.batch_size)
    rel = float(np.max(np.abs(ours - ref)) / (np.max(np.abs(ref)) + 1e-12))

    timings = {}
    for name, fn in {
        "ours": lambda: embed_series(
            encoder, x[:, None, :], "mean_no_eos", "concat", "truncate", args.batch_size
        ),
        "reference": lambda: reference(pipeline, x, args.batch_size),
    }.items():
        fn()  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.repeat):
            fn()
        if device == "cuda":
            torch.cuda.synchronize()
        timings[name] = (time.perf_counter() - start) / args.repeat
    n = len(x)
    result = {
        "setting": vars(args),
        "series": n,
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "ours_embeddings_per_s": n / timings["ours"],
        "reference_embeddings_per_s": n / timings["reference"],
        "speedup": timings["reference"] / timings["ours"],
        "max_rel_diff": rel,
        "same_outputs": rel <= 1e-4,
    }
    print(
        f"{n} series on {device}: ours {result['ours_embeddings_per_s']:.0f}/s, reference "
        f"{result['reference_embeddings_per_s']:.0f}/s: speedup {result['speedup']:.2f}x; "
        f"same features within 1e-4: {result['same_outputs']} (max rel diff {rel:.1e})"
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
