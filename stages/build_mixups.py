"""Stage build_mixups: TSMixup over dysts train channels, KernelSynth and packaged real series.

Outs: data/tsmixup/part-00000-of-00001.arrow; reports/tsmixup.json; plots/tsmixup/samples.png.
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
import json
from collections import Counter

import numpy as np

from tsfmlab.cli import run_stage
from tsfmlab.data.arrow_io import corpus_stats, read_targets, shard_name, write_series
from tsfmlab.data.dysts_gen import training_channels
from tsfmlab.data.real_series import load_real_series
from tsfmlab.data.tsmixup import MixupParams, build_mixups
from tsfmlab.evaluation.plots import series_grid
from tsfmlab.io.atomic import atomic_dir, write_results
from tsfmlab.params import stage_params

SECTION = "build_mixups"


def main() -> None:
    p = stage_params(MixupParams, SECTION)
    real = load_real_series(p.real_datasets, f"{SECTION}.real_datasets")
    sources = {
        "dysts": training_channels("data/dysts"),
        "kernelsynth": read_targets("data/kernelsynth/train"),
        "real": [s for series in real.values() for s in series],
    }
    entries = build_mixups(sources, p, SECTION)

    with atomic_dir("data/tsmixup") as out:
        write_series(entries, out / shard_name(0, 1))

    lengths = np.array([len(e["target"]) for e in entries])
    components = Counter(o.split(":")[0] for e in entries for o in json.loads(e["sources"]))
    write_results(
        "tsmixup",
        {
            "n_series": len(entries),
            "length_mean": float(lengths.mean()),
            "length_min": int(lengths.min()),
            "length_max": int(lengths.max()),
            "components": {name: components.get(name, 0) for name in sources},
            "source_series": {name: len(series) for name, series in sources.items()},
            **corpus_stats(e["target"] for e in entries),
        },
    )
    series_grid(
        [e["target"] for e in entries[:6]],
        [e["sources"][:40] for e in entries[:6]],
        "plots/tsmixup/samples.png",
    )
    print(f"{len(entries)} mixtures, mean length {lengths.mean():.0f}")


if __name__ == "__main__":
    run_stage(main)
