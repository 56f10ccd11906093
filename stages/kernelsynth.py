"""Stage kernelsynth: Gaussian-process series from random kernel compositions (Chronos' KernelSynth).

Outs: --out: {train,test}/ corpora of Arrow shards (test: a held-out slice for evaluation, never trained
on), streamed as generated; --fev-out: test in fev's schema; reports/kernelsynth.json;
plots/kernelsynth/samples.png.
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
import time

from tsfmlab import runtime
from tsfmlab.cli import run_stage, stage_args
from tsfmlab.data.arrow_io import SeriesStats
from tsfmlab.data.corpus import CorpusWriter
from tsfmlab.data.kernelsynth import KernelSynthParams, iter_kernelsynth
from tsfmlab.data.fev_data import write_fev_shard
from tsfmlab.evaluation.plots import series_grid
from tsfmlab.io.atomic import atomic_dir, write_results
from tsfmlab.parallel import shard_indices
from tsfmlab.params import stage_params

SECTION = "kernelsynth"


def main() -> None:
    args = stage_args(out="the corpora (train/, test/)", fev_out="the test series in fev's schema")
    p = stage_params(KernelSynthParams, SECTION)
    # held-out items continue the index sequence, so they never coincide with a training item
    splits = {
        "train": shard_indices(p.n_series, p.shard_index, p.num_shards),
        "test": [p.n_series + i for i in shard_indices(p.n_heldout, p.shard_index, p.num_shards)],
    }
    stats, samples = SeriesStats(), []
    t0 = time.perf_counter()
    with atomic_dir(args.out) as out:
        for split, idx in splits.items():
            series = iter_kernelsynth(idx, p.seed, p.length, p.max_kernels, n_jobs=runtime.n_jobs())
            with CorpusWriter(out / split, p.shard_size, p.shard_index, p.num_shards) as writer:
                for i, x in zip(idx, series, strict=True):
                    writer.add({"target": x, "item_index": i})
                    if split == "train":
                        stats.add(x)
                        if len(samples) < 6:
                            samples.append((i, x))
        with atomic_dir(args.fev_out) as fev_dir:
            write_fev_shard(out / "test", fev_dir, p.shard_index, p.num_shards)
    seconds = time.perf_counter() - t0

    n = len(splits["train"]) + len(splits["test"])
    write_results(
        "kernelsynth",
        {
            "n_train": len(splits["train"]),
            "n_test": len(splits["test"]),
            "length": p.length,
            "train": stats.result(),
        },
    )
    series_grid([x for _, x in samples], [f"item {i}" for i, _ in samples], "plots/kernelsynth/samples.png")
    print(f"{n} series in {seconds:.1f} s ({n / seconds:.1f}/s)")


if __name__ == "__main__":
    run_stage(main)
