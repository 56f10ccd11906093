"""Stage build_mixups: TSMixup over dysts train channels, KernelSynth and packaged real series.

Deps: --dysts, --kernelsynth (their corpora). Outs: --out (a corpus of Arrow shards, streamed as the
mixtures are drawn); reports/tsmixup.json; plots/tsmixup/samples.png. The source corpora stay on disk: only the windows drawn are read.
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
import json
import time
from collections import Counter

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.data.arrow_io import SeriesStats
from tsfmlab.data.corpus import Corpus, CorpusWriter
from tsfmlab.data.dysts_gen import training_channels
from tsfmlab.data.real_series import load_real_series
from tsfmlab.data.tsmixup import MixupParams, build_mixups
from tsfmlab.evaluation.plots import series_grid
from tsfmlab.io.atomic import atomic_dir, write_results
from tsfmlab.params import stage_params

SECTION = "build_mixups"


def main() -> None:
    args = stage_args(dysts="generate_dysts' corpora", kernelsynth="kernelsynth's corpora", out="the mixtures")
    p = stage_params(MixupParams, SECTION)
    real = load_real_series(p.real_datasets, f"{SECTION}.real_datasets")
    sources = {
        "dysts": training_channels(args.dysts),
        "kernelsynth": Corpus(args.kernelsynth / "train"),
        "real": [s for series in real.values() for s in series],
    }
    entries = build_mixups(sources, p, SECTION)
    t0 = time.perf_counter()

    stats, components, samples = SeriesStats(), Counter(), []
    n, length_sum, length_min, length_max = 0, 0, None, None
    with atomic_dir(args.out) as out:
        with CorpusWriter(out, p.shard_size) as writer:
            for e in entries:
                writer.add(e)
                length = len(e["target"])
                n, length_sum = n + 1, length_sum + length
                length_min = length if length_min is None else min(length_min, length)
                length_max = length if length_max is None else max(length_max, length)
                components.update(o.split(":")[0] for o in json.loads(e["sources"]))
                stats.add(e["target"])
                if len(samples) < 6:
                    samples.append(e)
    seconds = time.perf_counter() - t0

    write_results(
        "tsmixup",
        {
            "n_series": n,
            "length_mean": length_sum / n,
            "length_min": length_min,
            "length_max": length_max,
            "components": {name: components.get(name, 0) for name in sources},
            "source_series": {name: len(series) for name, series in sources.items()},
            **stats.result(),
        },
    )
    series_grid([e["target"] for e in samples], [e["sources"][:40] for e in samples], "plots/tsmixup/samples.png")
    print(f"{n} mixtures, mean length {length_sum / n:.0f}, in {seconds:.1f} s ({n / seconds:.1f}/s)")


if __name__ == "__main__":
    run_stage(main)
