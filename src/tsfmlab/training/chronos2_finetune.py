"""Fine-tuning Chronos-2 on an energy frame with ``Chronos2Pipeline.fit`` (full or LoRA).

Training sees the train split only: one series (the target, plus its covariates when the run uses
them) from which ``fit`` draws random windows. Model selection sees the validation split only: the
windows whose forecast starts every ``val_stride`` steps in it, each with its ``context_length`` of
history (history may reach back into train; the horizon never reaches the test period). ``fit``
evaluates them every ``eval_steps`` steps and restores the checkpoint with the lowest validation
loss. A LoRA run is merged into the base weights for evaluation and saving; its adapter is saved too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import field_validator

from ..data.energy import EnergyFrame, covariate_names
from ..errors import DataError
from ..launch import Distributed, LaunchParams
from ..models.lora import LoraParams, save_adapter
from ..params import Distinct, Invalid, Params, PositiveFloat, PositiveInt
from ..runtime import is_main_process
from .hf_parallel import wait_for_all_ranks
from .hf_trainer import MixedPrecision


class Chronos2FinetuneParams(Params):
    modes: Distinct[Literal["full", "lora"]]
    covariates: Distinct[Literal["none", "past", "past_future"]]
    num_steps: PositiveInt
    learning_rate: PositiveFloat  # full fine-tuning
    lora_learning_rate: PositiveFloat
    batch_size: PositiveInt  # rows (target + covariates) per batch, as fit counts
    context_length: PositiveInt
    prediction_length: PositiveInt  # trained horizon (>= the evaluated horizons)
    min_past: PositiveInt
    eval_steps: PositiveInt
    val_stride: PositiveInt
    log_steps: PositiveInt
    lora: LoraParams
    mixed_precision: MixedPrecision
    distributed: Distributed  # under torchrun; fsdp is refused (see _no_fsdp)
    seed: int
    launch: LaunchParams  # processes and machines (tsfmlab.launch)

    @field_validator("distributed")
    @classmethod
    def _no_fsdp(cls, distributed: str) -> str:
        if distributed == "fsdp":
            raise Invalid(
                "=fsdp is not supported: Chronos2Pipeline.fit builds its own Trainer and saves the "
                "fine-tuned model from every rank itself, which a sharded model does not survive; use ddp "
                "(Chronos-2 fits on one GPU)"
            )
        return distributed

    @property
    def runs(self) -> list[tuple[str, str]]:
        return [(m, c) for m in self.modes for c in self.covariates]


def run_name(mode: str, covariates: str) -> str:
    return f"{mode}-{covariates}"


def series_input(frame: EnergyFrame, covariates: str, start: int, stop: int, known_future: bool) -> dict:
    """``frame[start:stop]`` as one ``fit`` input: the target and the covariates of the mode.

    Future-known covariates are listed under ``future_covariates`` with value None: ``fit`` then
    treats their in-window future as known (it slices it from the series) and the rest as unknown."""
    past, future = covariate_names(frame, covariates)
    item: dict[str, Any] = {"target": np.asarray(frame.target[start:stop], dtype=np.float32)}
    if past or future:
        item["past_covariates"] = {
            **{n: frame.past_covariates[n][start:stop] for n in past},
            **{n: frame.future_covariates[n][start:stop] for n in future},
        }
    if future and known_future:
        item["future_covariates"] = {n: None for n in future}
    return item


def training_inputs(frame: EnergyFrame, val_start: int, covariates: str) -> list[dict]:
    return [series_input(frame, covariates, 0, val_start, known_future=True)]


def validation_inputs(
    frame: EnergyFrame, val_start: int, test_start: int, covariates: str, context_length: int,
    prediction_length: int, stride: int,
) -> list[dict]:  # fmt: skip
    """One series per validation origin ``o``: ``[o - context_length, o + prediction_length)``."""
    first = max(val_start, context_length)
    origins = np.arange(first, test_start - prediction_length + 1, stride)
    if len(origins) == 0:
        raise DataError(
            f"{frame.source or 'energy frame'}: the validation split [{val_start}, {test_start}) is shorter "
            f"than the fine-tuning prediction_length {prediction_length}"
        )
    return [
        series_input(
            frame, covariates, int(o) - context_length, int(o) + prediction_length, known_future=True
        )
        for o in origins
    ]


def trainer_options(p: Chronos2FinetuneParams) -> dict[str, Any]:
    """``TrainingArguments`` that ``Chronos2Pipeline.fit`` passes on: seeds, precision, CPU or GPU.

    fit's own default is bf16 and TF32 on GPUs from Ampere on; ``mixed_precision: auto`` keeps that.
    Under ``torchrun`` the Trainer (accelerate) runs DDP: gloo on CPU, NCCL on GPUs."""
    import torch

    cuda = torch.cuda.is_available()
    precision = p.mixed_precision
    if precision == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "no"
    return {
        "seed": p.seed,
        "data_seed": p.seed,
        "optim": "adamw_torch",
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": not cuda,
    }


def finetune(
    pipeline,
    frame: EnergyFrame,
    val_start: int,
    test_start: int,
    mode: str,
    covariates: str,
    p: Chronos2FinetuneParams,
    work_dir: Path,
    adapter_dir: Path | None = None,
    callbacks: list | None = None,
):
    """A fine-tuned copy of ``pipeline`` (``pipeline`` itself is left unchanged); a LoRA run's adapter
    is saved to ``adapter_dir`` (peft layout) and merged into the returned model. ``work_dir`` holds
    fit's checkpoints; it is removed (by rank 0 under torchrun, once every rank has finished). Also
    returns the ``(step, validation loss)`` pairs of the run."""
    import torch

    lora_config = None
    if mode == "lora":
        lora_config = {
            "r": p.lora.r,
            "lora_alpha": p.lora.alpha,
            "lora_dropout": p.lora.dropout,
            "target_modules": list(p.lora.target_modules),
        }
    from transformers import TrainerCallback

    val_losses: list[tuple[int, float]] = []

    class RecordValidation(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if metrics and "eval_loss" in metrics:
                val_losses.append((int(state.global_step), float(metrics["eval_loss"])))

    np.random.seed(p.seed)
    torch.manual_seed(p.seed)
    rank = os.environ.get("RANK", "0")
    try:
        tuned = pipeline.fit(
            training_inputs(frame, val_start, covariates),
            prediction_length=p.prediction_length,
            validation_inputs=validation_inputs(
                frame, val_start, test_start, covariates, p.context_length, p.prediction_length, p.val_stride
            ),
            finetune_mode=mode,
            lora_config=lora_config,
            context_length=p.context_length,
            learning_rate=p.lora_learning_rate if mode == "lora" else p.learning_rate,
            num_steps=p.num_steps,
            batch_size=p.batch_size,
            output_dir=work_dir,
            min_past=p.min_past,
            callbacks=[RecordValidation(), *(callbacks or [])],
            remove_printer_callback=True,
            eval_steps=p.eval_steps,
            save_steps=p.eval_steps,
            logging_steps=p.log_steps,
            finetuned_ckpt_name=f"finetuned-ckpt-rank{rank}",  # fit saves from every rank
            **trainer_options(p),
        )
        wait_for_all_ranks()  # before rank 0 removes work_dir, which the others may still write to
    finally:
        if is_main_process():
            shutil.rmtree(work_dir, ignore_errors=True)
    if mode == "lora":
        from chronos.chronos2 import Chronos2Pipeline

        if adapter_dir is not None:
            save_adapter(tuned.model, adapter_dir)
        tuned = Chronos2Pipeline(model=tuned.model.merge_and_unload())  # B @ A folded into the weights
    tuned.model.eval()
    return tuned, val_losses
