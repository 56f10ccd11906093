"""Stage kernelsynth: Gaussian-process series from random kernel compositions (Chronos' KernelSynth).

Outs: data/kernelsynth/{train,test}/part-*.arrow (test: a held-out slice for evaluation, never
trained on); reports/kernelsynth.json; plots/kernelsynth/samples.png.
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
import time

from tsfmlab import runtime
from tsfmlab.cli import run_stage
from tsfmlab.data.arrow_io import corpus_stats, shard_name, write_series
from tsfmlab.data.kernelsynth import KernelSynthParams, generate_kernelsynth
from tsfmlab.evaluation.plots import series_grid
from tsfmlab.io.atomic import atomic_dir, write_results
from tsfmlab.parallel import shard_indices
from tsfmlab.params import stage_params

SECTION = "kernelsynth"


def main() -> None:
    p = stage_params(KernelSynthParams, SECTION)
    # held-out items continue the index sequence, so they never coincide with a training item
    splits = {
        "train": shard_indices(p.n_series, p.shard_index, p.num_shards),
        "test": [p.n_series + i for i in shard_indices(p.n_heldout, p.shard_index, p.num_shards)],
    }
    t0 = time.perf_counter()
    series = {
        split: generate_kernelsynth(idx, p.seed, p.length, p.max_kernels, n_jobs=runtime.n_jobs())
        for split, idx in splits.items()
    }
    seconds = time.perf_counter() - t0

    with atomic_dir("data/kernelsynth") as out:
        for split, idx in splits.items():
            entries = [{"target": x, "item_index": i} for i, x in zip(idx, series[split])]
            write_series(entries, out / split / shard_name(p.shard_index, p.num_shards))

    n = sum(len(v) for v in series.values())
    write_results(
        "kernelsynth",
        {
            "n_train": len(series["train"]),
            "n_test": len(series["test"]),
            "length": p.length,
            "train": corpus_stats(series["train"]),
        },
    )
    series_grid(
        series["train"][:6], [f"item {i}" for i in splits["train"][:6]], "plots/kernelsynth/samples.png"
    )
    print(f"{n} series in {seconds:.1f} s ({n / seconds:.1f}/s)")


if __name__ == "__main__":
    run_stage(main)
