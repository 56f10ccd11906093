"""Stage distill: knowledge distillation of the frozen teacher into a smaller Chronos-T5 student.

Params: every key of the distillation recipe (training data, lengths, optimisation, tokenizer, teacher,
temperature and the four loss weights). Outs: data/models/student/; metrics/distill.json;
dvclive/distill/ (each loss term as a curve for `dvc plots`).
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from tsfmlab.cli import run_stage
from tsfmlab.errors import ParamError
from tsfmlab.io.atomic import write_json
from tsfmlab.models.chronos_models import (
    TokenizerParams,
    count_parameters,
    from_model_id,
    inner_model,
    load_pipeline,
    save_pipeline,
)
from tsfmlab.params import positive, stage_params, subset
from tsfmlab.runtime import is_main_process
from tsfmlab.training.chronos_pretrain import DataParams, window_dataset
from tsfmlab.training.distillation import (
    TERMS,
    DistillationModel,
    LossWeights,
    distillation_trainer_class,
    tokenizer_mismatch,
)
from tsfmlab.training.hf_trainer import TrainParams, fit, resolve_precision

SECTION = "distill"


@dataclass(frozen=True)
class DistillParams(TrainParams, DataParams):
    """The flat keys of the Chronos distillation recipe: the data and optimisation keys of
    ``DataParams`` and ``TrainParams``, plus the student, tokenizer, teacher and loss keys below."""

    context_length: int = field(metadata=positive)
    prediction_length: int = field(metadata=positive)
    # student and tokenizer
    model_id: str
    model_type: Literal["seq2seq"]
    random_init: bool
    tie_embeddings: bool
    student_overrides: dict[str, Any] | None
    num_samples: int = field(metadata=positive)
    tokenizer_class: Literal["MeanScaleUniformBins"]
    tokenizer_kwargs: dict[str, float]
    n_tokens: int = field(metadata=positive)
    use_eos_token: bool
    # teacher and loss
    teacher_id: str
    distillation_temperature: float
    task_loss_weight: float
    distill_loss_weight: float
    encoder_loss_weight: float
    decoder_loss_weight: float

    def validate(self, section: str) -> None:
        DataParams.validate(self, section)
        try:
            self.weights()
        except ParamError as err:
            raise ParamError(f"param {section}.{err}") from err

    def weights(self) -> LossWeights:
        return LossWeights(
            self.task_loss_weight,
            self.distill_loss_weight,
            self.encoder_loss_weight,
            self.decoder_loss_weight,
            self.distillation_temperature,
        )

    def tokenizer(self) -> TokenizerParams:
        return subset(TokenizerParams, self)

    def train(self) -> TrainParams:
        return subset(TrainParams, self)

    def data(self) -> DataParams:
        return subset(DataParams, self)


def main() -> None:
    p = stage_params(DistillParams, SECTION)
    teacher = load_pipeline(p.teacher_id, "chronos-t5")
    student = from_model_id(
        p.model_id, p.random_init, p.tokenizer(), p.tie_embeddings, p.student_overrides, p.seed
    )
    mismatch = tokenizer_mismatch(teacher.model.config, student.model.config)
    if mismatch:
        raise ParamError(
            f"teacher {p.teacher_id} and the student (params {SECTION}.*) must share the tokenizer: "
            + "; ".join(mismatch)
        )
    data = p.data()
    dataset = window_dataset(data, student.tokenizer, p.context_length, p.prediction_length, p.seed)
    if resolve_precision(p.train()) == "bf16":
        inner_model(teacher).to(torch.bfloat16)  # frozen: cast once instead of at every autocast op
    model = DistillationModel(inner_model(student), inner_model(teacher), p.weights())
    # resumed only from a checkpoint distilled from this teacher (and student weights) on these corpora
    inputs = [p.teacher_id, *([] if p.random_init else [p.model_id]), *p.training_data_paths]
    trainer, stats = fit(
        model, dataset, p.train(), SECTION, p, Path("dvclive/distill"), distillation_trainer_class(),
        inputs=inputs,
    )  # fmt: skip
    if not is_main_process():
        return  # torchrun: rank 0 writes the outputs
    inner_model(student).eval()
    save_pipeline(student, "data/models/student")

    n_student, n_teacher = count_parameters(student), count_parameters(teacher)
    logged = [e for e in trainer.state.log_history if "task_loss" in e]
    final = {k: logged[-1][k] for k in TERMS} if logged else {}

    write_json(
        "metrics/distill.json",
        {
            "student_parameters": n_student,
            "teacher_parameters": n_teacher,
            "parameter_ratio": round(n_student / n_teacher, 4),
            "train_loss": round(stats["train_loss"], 6),
            "steps": stats["steps"],
            "final": final,
        },
    )
    print(f"distill: {stats}, student/teacher params {n_student}/{n_teacher}")


if __name__ == "__main__":
    run_stage(main)
