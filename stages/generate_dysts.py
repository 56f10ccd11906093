"""Stage generate_dysts: chaotic trajectories from dysts, split by system.

Outs: --out: {train,test}/ corpora of Arrow shards (streamed as systems finish) and systems.json;
--fev-out: the test channels in fev's schema (evaluate_forecast's task); metrics/dysts.json (accepted
trajectories), reports/dysts.json; plots/dysts/rejections.csv and plots/dysts/samples.png.
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
from tsfmlab import runtime
from tsfmlab.cli import run_stage, stage_args
from tsfmlab.data.corpus import CorpusWriter
from tsfmlab.data.dysts_gen import DystsParams, generate_dysts, split_systems
from tsfmlab.data.fev_data import write_fev_shard
from tsfmlab.evaluation.plots import series_grid, write_csv
from tsfmlab.io.atomic import atomic_dir, write_json, write_results
from tsfmlab.params import stage_params

SECTION = "generate_dysts"


def main() -> None:
    args = stage_args(out="the corpora (train/, test/)", fev_out="the test channels in fev's schema")
    p = stage_params(DystsParams, SECTION)
    split_systems(p, SECTION)  # system names checked before any output exists
    samples = {}  # the first trajectory of each train system, for the plot

    with atomic_dir(args.out) as out:
        writers = {
            split: CorpusWriter(out / split, p.shard_size, p.shard_index, p.num_shards)
            for split in ("train", "test")
        }

        def sink(split: str, entry: dict) -> None:
            writers[split].add(entry)
            if split == "train" and entry["system"] not in samples:
                samples[entry["system"]] = entry["target"]

        corpus = generate_dysts(p, n_jobs=runtime.n_jobs(), section=SECTION, sink=sink)
        for writer in writers.values():
            writer.close()
        write_json(out / "systems.json", corpus.splits)
        with atomic_dir(args.fev_out) as fev_dir:
            write_fev_shard(out / "test", fev_dir, p.shard_index, p.num_shards)

    metrics = corpus.metrics()
    headline = {f"{split}_trajectories": metrics[split]["accepted"] for split in ("train", "test")}
    write_results("dysts", metrics, headline)
    write_csv(
        [
            {"split": split, "reason": reason, "count": count}
            for split in ("train", "test")
            for reason, count in metrics[split]["rejected"].items()
        ],
        "plots/dysts/rejections.csv",
    )
    names = list(samples)[:: max(1, len(samples) // 6)][:6]
    series_grid([samples[n] for n in names], names, "plots/dysts/samples.png")
    n = sum(corpus.requested.values())
    print(
        {s: metrics[s]["accepted"] for s in ("train", "test")},
        f"accepted; {n} trajectories in {corpus.seconds:.1f} s ({n / corpus.seconds:.2f}/s)",
    )


if __name__ == "__main__":
    run_stage(main)
