"""Stage generate_dysts: chaotic trajectories from dysts, split by system.

Outs: data/dysts/{train,test}/part-*.arrow and data/dysts/systems.json;
metrics/dysts.json (accepted trajectories), reports/dysts.json; plots/dysts/rejections.csv and plots/dysts/samples.png.
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
from tsfmlab import runtime
from tsfmlab.cli import run_stage
from tsfmlab.data.arrow_io import shard_name, write_series
from tsfmlab.data.dysts_gen import DystsParams, generate_dysts
from tsfmlab.evaluation.plots import series_grid, write_csv
from tsfmlab.io.atomic import atomic_dir, write_json, write_results
from tsfmlab.params import stage_params

SECTION = "generate_dysts"


def main() -> None:
    p = stage_params(DystsParams, SECTION)
    corpus = generate_dysts(p, n_jobs=runtime.n_jobs(), section=SECTION)

    with atomic_dir("data/dysts") as out:
        for split, entries in corpus.entries.items():
            write_series(entries, out / split / shard_name(p.shard_index, p.num_shards))
        write_json(out / "systems.json", corpus.splits)

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
    samples = corpus.entries["train"][:: max(1, len(corpus.entries["train"]) // 6)][:6]
    series_grid([e["target"] for e in samples], [e["system"] for e in samples], "plots/dysts/samples.png")
    n = sum(corpus.requested.values())
    print(
        {s: metrics[s]["accepted"] for s in ("train", "test")},
        f"accepted; {n} trajectories in {corpus.seconds:.1f} s ({n / corpus.seconds:.2f}/s)",
    )


if __name__ == "__main__":
    run_stage(main)
