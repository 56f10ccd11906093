"""Stage extract_features@<encoder>: pooled encoder embeddings of every classification dataset.

Loads the model named by classification.encoders[<encoder>] (Chronos-T5, Chronos-Bolt or Chronos-2),
embeds the train, val and test series of each prepared dataset (labels are not read), and writes one
file per dataset. Deps: --ucr (prepare_ucr's datasets). Outs: --out <Dataset>.safetensors (float32
features per split) and --out encoder.json (source, family, weights hash, settings), which the mlp_finetune
head uses to reload exactly this encoder.
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
import time
from typing import Literal

import numpy as np
import torch

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.data.ucr import SPLITS, load_inputs
from tsfmlab.errors import ParamError
from tsfmlab.io.atomic import atomic_dir, write_json
from tsfmlab.models.loading import load_pipeline, weights_digest
from tsfmlab.models.encoders import ChronosEncoder, embed_series
from tsfmlab.params import Params, PositiveInt, param, stage_params
from tsfmlab.runtime import progress_enabled

SECTION = "extract_features"


class ExtractFeaturesParams(Params):
    pooling: Literal["mean", "mean_no_eos", "last"]  # over the context positions, +/- EOS/[REG]; or EOS/[REG]
    channels: Literal["concat", "mean"]  # multivariate: per-channel features concatenated or averaged
    long_series: Literal["truncate", "windows"]  # longer than the context: last window, or mean of windows
    batch_size: PositiveInt


def main() -> None:
    args = stage_args("encoder", ucr="prepare_ucr's datasets", out="this encoder's features")
    p = stage_params(ExtractFeaturesParams, SECTION)
    name = args.encoder
    source = param(f"classification.encoders.{name}")
    if not isinstance(source, str):
        raise ParamError(f"param classification.encoders.{name} must be a model directory, got {source!r}")
    datasets = param("classification.datasets")
    inputs = {ds: {s: load_inputs(args.ucr / f"{ds}.safetensors", s) for s in SPLITS} for ds in datasets}
    pipeline = load_pipeline(source)
    encoder = ChronosEncoder(pipeline).to("cuda" if torch.cuda.is_available() else "cpu")
    from safetensors.numpy import save_file

    start, n = time.perf_counter(), 0
    with atomic_dir(args.out) as tmp:
        for ds, splits in inputs.items():
            feats = {
                s: embed_series(
                    encoder, x, p.pooling, p.channels, p.long_series, p.batch_size, progress_enabled()
                )
                for s, x in splits.items()
            }
            n += sum(len(x) for x in splits.values())
            save_file({s: np.ascontiguousarray(f) for s, f in feats.items()}, str(tmp / f"{ds}.safetensors"))
            print(f"extract_features@{name}: {ds}: {feats['train'].shape[1]} features")
        write_json(
            tmp / "encoder.json",
            {
                "source": source,
                "family": encoder.family,
                "weights_sha256": weights_digest(source),
                "context_length": encoder.context_length,
                "d_model": encoder.d_model,
                **vars(p),
            },
        )
    print(f"extract_features@{name}: {n} series in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    run_stage(main)
