"""The training core for forecasting models: the Hugging Face ``Trainer`` with the Chronos recipe's knobs.

One place turns a ``TrainParams`` section into ``TrainingArguments`` (mixed precision, TF32,
``torch.compile`` and fused AdamW only where the hardware supports them; DDP/FSDP come from launching
under ``torchrun``), logs through dvclive so ``dvc plots`` shows every loss curve, checkpoints every
``save_steps`` and resumes after an interruption. Checkpoints live in ``.checkpoints/<stage>/<key>``
where ``key`` hashes the stage's params: a run with other params never resumes a stale checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from ..params import non_negative, positive, unit

CHECKPOINT_ROOT = Path(".checkpoints")


@dataclass(frozen=True)
class TrainParams:
    max_steps: int = field(metadata=positive)
    save_steps: int = field(metadata=positive)
    log_steps: int = field(metadata=positive)
    per_device_train_batch_size: int = field(metadata=positive)
    gradient_accumulation_steps: int = field(metadata=positive)
    learning_rate: float = field(metadata=positive)
    optim: str  # a transformers optimizer name; adamw_torch_fused is used only where supported
    lr_scheduler_type: str
    warmup_ratio: float = field(metadata=unit)
    weight_decay: float = field(metadata=non_negative)
    max_grad_norm: float = field(metadata=positive)
    dataloader_num_workers: int = field(metadata=non_negative)
    mixed_precision: Literal["auto", "no", "bf16", "fp16"]  # auto: bf16 on GPUs that support it
    tf32: bool  # CUDA only
    torch_compile: bool  # CUDA only
    gradient_checkpointing: bool
    seed: int


def run_key(params: Any) -> str:
    """A short stable hash of a params section (dataclass or plain data)."""
    data = asdict(params) if hasattr(params, "__dataclass_fields__") else params
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def checkpoint_dir(stage: str, params: Any) -> Path:
    return CHECKPOINT_ROOT / stage / run_key(params)


def resolve_precision(p: TrainParams) -> str:
    """``mixed_precision`` with ``auto`` resolved: bf16 on GPUs that support it, else fp32 ("no")."""
    if p.mixed_precision != "auto":
        return p.mixed_precision
    cuda = torch.cuda.is_available()
    return "bf16" if cuda and torch.cuda.is_bf16_supported() else "no"


def training_arguments(p: TrainParams, output_dir: Path, **extra: Any):
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    precision = resolve_precision(p)
    optim = p.optim
    if optim == "adamw_torch_fused" and not cuda:
        optim = "adamw_torch"  # the fused kernel is the GPU path; results are the same update rule
    return TrainingArguments(
        output_dir=str(output_dir),
        max_steps=p.max_steps,
        save_steps=p.save_steps,
        save_strategy="steps",
        save_total_limit=None,  # checkpoint_marker() prunes, only after the new checkpoint is complete
        logging_steps=p.log_steps,
        per_device_train_batch_size=p.per_device_train_batch_size,
        gradient_accumulation_steps=p.gradient_accumulation_steps,
        learning_rate=p.learning_rate,
        optim=optim,
        lr_scheduler_type=p.lr_scheduler_type,
        warmup_steps=int(round(p.warmup_ratio * p.max_steps)),
        weight_decay=p.weight_decay,
        max_grad_norm=p.max_grad_norm,
        dataloader_num_workers=p.dataloader_num_workers,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        tf32=p.tf32 and cuda,
        torch_compile=p.torch_compile and cuda,
        gradient_checkpointing=p.gradient_checkpointing,
        seed=p.seed,
        data_seed=p.seed,
        use_cpu=not cuda,  # also what makes accelerate start a gloo process group under torchrun on CPU
        report_to="none",  # dvclive is attached as a callback
        disable_tqdm=False,
        **extra,
    )


COMPLETE = "COMPLETE"  # written into a checkpoint once the Trainer has finished saving it


def last_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest *complete* checkpoint an interrupted run with the same params left behind, if any.

    A run killed while saving leaves a partial ``checkpoint-N``; only checkpoints marked by
    :func:`checkpoint_marker` count."""
    done = [p for p in Path(ckpt_dir).glob("checkpoint-*") if (p / COMPLETE).is_file()]
    return str(max(done, key=lambda p: int(p.name.split("-")[-1]))) if done else None


def checkpoint_marker():
    """A callback that marks each checkpoint complete after the Trainer has written all of it, then
    removes the older ones (the Trainer's own rotation would delete the previous checkpoint before the
    new one is marked, leaving a window with no complete checkpoint at all)."""
    from transformers import TrainerCallback

    class MarkComplete(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            root = Path(args.output_dir)
            (root / f"checkpoint-{state.global_step}" / COMPLETE).touch()
            for old in root.glob("checkpoint-*"):
                if int(old.name.split("-")[-1]) < state.global_step:
                    shutil.rmtree(old, ignore_errors=True)

    return MarkComplete()


TIMING_KEYS = ("_runtime", "_per_second", "total_flos")


def drop_torn_summary(live_dir: Path) -> None:
    """Remove dvclive's ``metrics.json`` if a kill left it half-written (dvclive writes it in place and
    would fail to resume on it); it is rewritten at the next logged step."""
    summary = live_dir / "metrics.json"
    try:
        json.loads(summary.read_text())
    except FileNotFoundError:
        pass
    except ValueError:
        summary.unlink()


def dvclive_callback(live_dir: str | Path, resume: bool = False):
    """Log every loss term to ``live_dir`` (metrics.json + plots/metrics/*.tsv for ``dvc plots``).

    Wall-clock entries (runtime, samples per second, FLOs) are left out: tracked metrics must be
    identical for identical params; stages print throughput instead."""
    from dvclive import Live
    from dvclive.huggingface import DVCLiveCallback

    class ReproducibleDVCLiveCallback(DVCLiveCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            pass  # DVC already tracks the stage's params; args.to_dict() holds machine-specific paths

        def on_log(self, args, state, control, model=None, logs=None, **kwargs):
            if not state.is_world_process_zero:
                return
            logs = {k: v for k, v in (logs or {}).items() if not any(t in k for t in TIMING_KEYS)}
            super().on_log(args, state, control, model=model, logs=logs, **kwargs)

    if resume:
        drop_torn_summary(Path(live_dir))
    live = Live(dir=str(live_dir), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None)
    return ReproducibleDVCLiveCallback(live=live)


def fit(
    model,
    dataset,
    train: TrainParams,
    stage: str,
    run_params: Any,
    live_dir: Path,
    trainer_class=None,
    callbacks: list | None = None,
):
    """Train ``model`` on ``dataset`` with dvclive curves, complete-checkpoint markers and resume.

    Under ``torchrun`` every rank trains; only rank 0 logs (dvclive) and marks checkpoints.
    Returns the Trainer and statistics (final loss, steps, whether it resumed, samples/s)."""
    from transformers import Trainer

    from ..runtime import is_main_process

    ckpt = checkpoint_dir(stage, run_params)
    last = last_checkpoint(ckpt)
    trainer = (trainer_class or Trainer)(
        model=model,
        args=training_arguments(train, ckpt),
        train_dataset=dataset,
        callbacks=[checkpoint_marker(), *(callbacks or [])]
        + ([dvclive_callback(live_dir, resume=last is not None)] if is_main_process() else []),
    )
    t0 = time.perf_counter()
    stats = train_with_resume(trainer, ckpt, last)
    samples = train.max_steps * train.per_device_train_batch_size * train.gradient_accumulation_steps
    samples *= trainer.args.world_size
    stats["samples_per_second"] = round(samples / (time.perf_counter() - t0), 2)  # printed, not a metric
    return trainer, stats


def train_with_resume(trainer, ckpt_dir: Path, last: str | None) -> dict[str, float]:
    """Train (from ``last`` if given: see :func:`last_checkpoint`); checkpoints are removed at the end."""
    result = trainer.train(resume_from_checkpoint=last)
    if trainer.is_world_process_zero():
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return {
        "train_loss": float(result.training_loss),
        "steps": int(result.global_step),
        "resumed": last is not None,
    }
