"""Stage chronos2: a Chronos-2 for the energy stages, pretrained from scratch on the synthetic corpora
(univariate KernelSynth/TSMixup series and multivariate dysts groups) or loaded from a hub id/path.

Outs: --out (save_pretrained layout: loads with BaseChronosPipeline.from_pretrained);
metrics/chronos2.json, reports/chronos2.json; dvclive/chronos2/ (loss curve for `dvc plots`).
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
from pathlib import Path

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.io.atomic import write_results
from tsfmlab.models.chronos2 import Chronos2Params, new_chronos2
from tsfmlab.models.loading import count_parameters, load_pipeline, save_pipeline
from tsfmlab.launch import LaunchParams, check_world
from tsfmlab.params import Params, stage_params
from tsfmlab.runtime import is_main_process
from tsfmlab.training.chronos2_pretrain import Chronos2DataParams, pretrain_chronos2
from tsfmlab.training.hf_trainer import ScheduleParams, train_params

SECTION = "chronos2"


class Chronos2StageParams(Params):
    source: str  # scratch | a hub id (amazon/chronos-2) | a local model directory
    model: Chronos2Params  # scratch only
    data: Chronos2DataParams  # scratch only
    train: ScheduleParams  # scratch only
    launch: LaunchParams


def main() -> None:
    args = stage_args(out="the Chronos-2 model directory")
    p = stage_params(Chronos2StageParams, SECTION)
    check_world(p.launch, SECTION)
    metrics = {}
    if p.source == "scratch":
        train = train_params(p.train)
        pipeline = new_chronos2(p.model, seed=train.seed)
        stats = pretrain_chronos2(pipeline, p.data, train, SECTION, p, Path("dvclive/chronos2"))
        print(f"chronos2: {stats}")
        metrics.update(train_loss=round(stats["train_loss"], 6), steps=stats["steps"])
        if not is_main_process():
            return  # torchrun: rank 0 writes the outputs
    else:
        pipeline = load_pipeline(p.source, "chronos-2")
    save_pipeline(pipeline, args.out)
    results = {"source": p.source, "parameters": count_parameters(pipeline), **metrics}
    write_results("chronos2", results, {k: v for k, v in results.items() if k == "train_loss"})


if __name__ == "__main__":
    run_stage(main)
