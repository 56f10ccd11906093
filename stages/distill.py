"""Stage distill: knowledge distillation of the frozen teacher into a smaller Chronos-T5 student.

Params ``distill``: the teacher, the student's architecture, the training windows, the trainer, the
CE's target (the teacher's) and the loss (weights of CE, T²·KL and the hidden-state terms; temperature).
The student inherits the teacher's tokenizer, context and prediction lengths.

Outs: --out (the student's model directory); metrics/distill.json; dvclive/distill/ (each loss term as a curve for
`dvc plots`).
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
from pathlib import Path
from typing import Any

import torch

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.errors import ParamError
from tsfmlab.io.atomic import write_results
from tsfmlab.models.chronos_models import (
    DecoderInit,
    EmbeddingInit,
    PositionInit,
    from_model_id,
    tokenizer_of,
)
from tsfmlab.models.loading import count_parameters, inner_model, load_pipeline, save_pipeline
from tsfmlab.launch import LaunchParams, check_world
from tsfmlab.params import Params, stage_params
from tsfmlab.runtime import is_main_process
from tsfmlab.training.chronos_pretrain import DataParams, window_dataset
from tsfmlab.training.distillation import (
    TERMS,
    DistillationModel,
    LossWeights,
    distillation_trainer_class,
    tokenizer_mismatch,
)
from tsfmlab.training.hf_trainer import ScheduleParams, train_params, fit, resolve_precision
from tsfmlab.training.token_loss import TargetParams

SECTION = "distill"


class StudentParams(Params):
    model_id: str  # a preset (nano, tiny, mini, small, base) or google/t5-efficient-{tiny,mini,small,base}
    random_init: bool  # false: start from the model_id's weights
    tie_embeddings: bool
    embedding_init: EmbeddingInit  # random_init: as the teacher's levers of the same names
    position_init: PositionInit
    decoder_init: DecoderInit
    overrides: dict[str, Any] | None  # T5 config fields over the preset


class DistillParams(Params):
    teacher_id: str  # a Chronos-T5 model directory or hub id
    student: StudentParams
    data: DataParams
    train: ScheduleParams
    target: TargetParams  # the task cross-entropy's target: the teacher's (teacher.target)
    loss: LossWeights
    launch: LaunchParams


def main() -> None:
    args = stage_args(out="the student's model directory")
    p = stage_params(DistillParams, SECTION)
    train = train_params(p.train)
    check_world(p.launch, SECTION)
    teacher = load_pipeline(p.teacher_id, "chronos-t5")
    st = p.student
    student = from_model_id(
        st.model_id, st.random_init, tokenizer_of(teacher.model.config), st.tie_embeddings, st.overrides,
        train.seed, st.embedding_init, st.position_init, st.decoder_init,
    )  # fmt: skip
    mismatch = tokenizer_mismatch(teacher.model.config, student.model.config)
    if mismatch:
        raise ParamError(
            f"teacher {p.teacher_id} and the student (params {SECTION}.*) must share the tokenizer: "
            + "; ".join(mismatch)
        )
    config = teacher.model.config
    dataset = window_dataset(
        p.data, student.tokenizer, config.context_length, config.prediction_length, train.seed
    )
    if resolve_precision(train) == "bf16":
        inner_model(teacher).to(torch.bfloat16)  # frozen: cast once instead of at every autocast op
    model = DistillationModel(inner_model(student), inner_model(teacher), p.loss, p.target)
    # resumed only from a checkpoint distilled from this teacher (and student weights) on these corpora
    inputs = [p.teacher_id, *([] if st.random_init else [st.model_id]), *p.data.training_data_paths]
    trainer, stats = fit(
        model, dataset, train, SECTION, p, Path("dvclive/distill"), distillation_trainer_class(),
        inputs=inputs,
    )  # fmt: skip
    if not is_main_process():
        return  # torchrun: rank 0 writes the outputs
    inner_model(student).eval()
    save_pipeline(student, args.out)

    n_student, n_teacher = count_parameters(student), count_parameters(teacher)
    logged = [e for e in trainer.state.log_history if "task_loss" in e]
    final = {k: logged[-1][k] for k in TERMS} if logged else {}

    results = {
        "student_parameters": n_student,
        "teacher_parameters": n_teacher,
        "parameter_ratio": round(n_student / n_teacher, 4),
        "train_loss": round(stats["train_loss"], 6),
        "steps": stats["steps"],
        "final": final,
    }
    write_results("distill", results, {k: results[k] for k in ("parameter_ratio", "train_loss")})
    print(f"distill: {stats}, student/teacher params {n_student}/{n_teacher}")


if __name__ == "__main__":
    run_stage(main)
