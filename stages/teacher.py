"""Stage teacher: a Chronos-T5 teacher, pretrained from scratch on the corpora or loaded from a hub id/path.

Outs: --out (save_pretrained layout: loads with BaseChronosPipeline.from_pretrained);
metrics/teacher.json, reports/teacher.json; dvclive/teacher/ (loss curves for `dvc plots`).
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
from pathlib import Path

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.io.atomic import write_results
from tsfmlab.models.chronos_models import TokenizerParams, new_chronos_t5
from tsfmlab.models.loading import count_parameters, load_pipeline, save_pipeline
from tsfmlab.launch import LaunchParams, check_world
from tsfmlab.params import Params, stage_params
from tsfmlab.runtime import is_main_process
from tsfmlab.training.chronos_pretrain import DataParams, ModelParams, pretrain
from tsfmlab.training.hf_trainer import ScheduleParams, train_params
from tsfmlab.training.token_loss import TargetParams

SECTION = "teacher"


class TeacherParams(Params):
    model: ModelParams
    tokenizer: TokenizerParams
    data: DataParams
    target: TargetParams
    train: ScheduleParams
    launch: LaunchParams


def main() -> None:
    args = stage_args(out="the teacher's model directory")
    p = stage_params(TeacherParams, SECTION)
    check_world(p.launch, SECTION)
    metrics = {}
    if p.model.source == "scratch":
        train = train_params(p.train)
        pipeline = new_chronos_t5(
            p.model.size, p.tokenizer, p.model.tie_embeddings, p.model.overrides, train.seed,
            p.model.embedding_init, p.model.position_init, p.model.decoder_init,
        )  # fmt: skip
        stats = pretrain(pipeline, p.data, train, SECTION, p, Path("dvclive/teacher"), p.target)
        print(f"teacher: {stats}")
        metrics.update(train_loss=round(stats["train_loss"], 6), steps=stats["steps"])
        if not is_main_process():
            return  # torchrun: rank 0 writes the outputs
    else:
        pipeline = load_pipeline(p.model.source, p.model.family)
    save_pipeline(pipeline, args.out)
    results = {"source": p.model.source, "parameters": count_parameters(pipeline), **metrics}
    write_results("teacher", results, {k: v for k, v in results.items() if k == "train_loss"})  # size: reports/teacher.json


if __name__ == "__main__":
    run_stage(main)
