"""The training core for forecasting models: the Hugging Face ``Trainer`` with the Chronos recipe's knobs.

One place turns a ``TrainParams`` section into ``TrainingArguments`` (mixed precision, TF32,
``torch.compile`` and fused AdamW only where the hardware supports them), logs through dvclive so
``dvc plots`` shows every loss curve (x: the Trainer's global step), checkpoints every ``save_steps`` and
resumes after an interruption with the Trainer's own checkpoints, rotation and log history
(:func:`last_checkpoint`, :func:`dvclive_callback`). Checkpoints live in ``.checkpoints/<stage>/<key>``
where ``key`` hashes the stage's params *and the contents of its input files* (:func:`run_key`): a run
with other params, or on a retrained teacher or regenerated corpora, never resumes a stale checkpoint;
it starts from step 0.

Several processes: launched under ``torchrun --nproc-per-node N`` the Trainer (through accelerate) runs
data-parallel; ``distributed`` picks how. ``ddp`` replicates the model (DistributedDataParallel);
``fsdp`` shards parameters, gradients and optimizer state (FSDP2, one unit per transformer block, full
state dict in checkpoints; CUDA only: accelerate applies FSDP to multi-GPU runs only, and on CPU it would
silently fall back to DDP, so it is refused there). ``gradient_checkpointing`` recomputes block
activations in the backward pass (the model's own Hugging Face checkpointing under DDP, FSDP's
activation checkpointing under FSDP; :mod:`.hf_parallel`). Only rank 0 logs (dvclive) and writes checkpoints (each rank adds
its RNG state); the stages write their outputs on rank 0 only (:func:`tsfmlab.runtime.is_main_process`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
import time
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import torch

from ..launch import Distributed
from ..params import NonNegativeFloat, NonNegativeInt, Params, PositiveFloat, PositiveInt, Unit
from .hf_parallel import (
    check_distributed,
    enable_activation_checkpointing,
    fsdp_options,
    gather_full_weights,
    wait_for_all_ranks,
)
from .live import curves_live

CHECKPOINT_ROOT = Path(".checkpoints")
MixedPrecision = Literal["auto", "no", "bf16", "fp16"]  # auto: bf16 on GPUs that support it


class ScheduleParams(Params):
    """A stage's own ``train`` block: how long, how often, how big, how fast."""

    max_steps: PositiveInt
    save_steps: PositiveInt
    log_steps: PositiveInt
    per_device_train_batch_size: PositiveInt
    learning_rate: PositiveFloat
    torch_compile: bool  # torch.compile (inductor): Triton kernels on CUDA, C++/OpenMP ones on CPU


class TrainerParams(Params):
    """``shared.train``: the Trainer settings every Hugging Face training stage reads."""

    gradient_accumulation_steps: PositiveInt
    optim: str  # a transformers optimizer name; adamw_torch_fused is used only where supported
    lr_scheduler_type: str
    warmup_ratio: Unit
    weight_decay: NonNegativeFloat
    max_grad_norm: PositiveFloat
    dataloader_num_workers: NonNegativeInt
    mixed_precision: MixedPrecision
    tf32: bool  # CUDA only
    gradient_checkpointing: bool  # recompute block activations in the backward pass (less memory)
    distributed: Distributed  # under torchrun: ddp (replicated) | fsdp (sharded; CUDA only)
    seed: int


class TrainParams(TrainerParams, ScheduleParams):
    """What one run trains with: the stage's schedule and the shared Trainer settings."""


def train_params(schedule: ScheduleParams, path: str | Path = "params.yaml") -> TrainParams:
    """A stage's ``train`` block joined with ``shared.train`` (read here, so the stage declares it)."""
    from ..params import stage_params

    trainer = stage_params(TrainerParams, "shared.train", path)
    return TrainParams(**schedule.model_dump(), **trainer.model_dump())


def inputs_digest(inputs: Iterable[str | Path]) -> str:
    """sha256 over the contents of ``inputs`` (files or directories, in the order given).

    Each input adds its name as given, then, for a directory, every file below it (recursively,
    symlinks followed, nothing skipped) in sorted order of relative path: that path, the file's size and
    its bytes (streamed); a file adds its size and bytes. An input that is not on disk (a hub id) adds
    its name only. Renaming, adding, removing or editing any file changes the digest."""
    h = hashlib.sha256()

    def add_file(rel: str, path: Path) -> None:
        h.update(f"{rel}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())

    for item in inputs:
        path = Path(item)
        h.update(f"input\0{item}\0".encode())
        if path.is_file():
            add_file("", path)
        elif path.is_dir():
            files = [Path(root, name) for root, _, names in os.walk(path, followlinks=True) for name in names]
            for rel, file in sorted((f.relative_to(path).as_posix(), f) for f in files):
                add_file(rel, file)
    return h.hexdigest()


def run_key(params: Any, inputs: Iterable[str | Path] = ()) -> str:
    """A short stable hash of a params section (a :class:`~tsfmlab.params.Params` model or plain data) and
    of the contents of the run's input files and directories (:func:`inputs_digest`: the corpora, the
    teacher or base model it trains from)."""
    data = params.model_dump() if isinstance(params, Params) else params
    text = json.dumps(data, sort_keys=True, default=str)
    inputs = list(inputs)
    if inputs:
        text += "\0" + inputs_digest(inputs)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def checkpoint_dir(stage: str, params: Any, inputs: Iterable[str | Path] = ()) -> Path:
    """Where a run of ``stage`` keeps its checkpoints: one directory per params and input contents, so a
    checkpoint is only ever resumed by a run with the same params on the same inputs."""
    return CHECKPOINT_ROOT / stage / run_key(params, inputs)


def resolve_precision(p: TrainParams) -> str:
    """``mixed_precision`` with ``auto`` resolved: bf16 on GPUs that support it, else fp32 ("no")."""
    if p.mixed_precision != "auto":
        return p.mixed_precision
    cuda = torch.cuda.is_available()
    return "bf16" if cuda and torch.cuda.is_bf16_supported() else "no"


def precision_options(p: TrainParams) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    precision = resolve_precision(p)
    optim = p.optim
    if optim == "adamw_torch_fused" and not cuda:
        optim = "adamw_torch"  # the fused kernel is the GPU path; results are the same update rule
    return {
        "optim": optim,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "tf32": p.tf32 and cuda,
        "torch_compile": p.torch_compile,  # inductor compiles for the CPU too (a C++ compiler is needed)
        "use_cpu": not cuda,  # also what makes accelerate start a gloo process group under torchrun on CPU
    }


def training_arguments(p: TrainParams, output_dir: Path, section: str = "train", model=None, **extra: Any):
    """``TrainingArguments`` of a params section (``section``: its name in params.yaml, for errors).

    Activation checkpointing is not among them: :func:`fit` enables it on the model (DDP) or through
    ``fsdp_config`` (FSDP, which needs ``model`` to find the blocks to shard)."""
    from transformers import TrainingArguments

    check_distributed(p.distributed, f"{section}.distributed")
    if p.distributed == "fsdp" and model is None:
        raise ValueError("distributed: fsdp needs the model (its transformer blocks are the FSDP units)")
    return TrainingArguments(
        output_dir=str(output_dir),
        max_steps=p.max_steps,
        save_steps=p.save_steps,
        save_strategy="steps",
        # The Trainer removes older checkpoints once the new one is whole (see whole_checkpoint). Under
        # torchrun rank 0 does so without waiting for the other ranks' RNG files in the new one
        # (transformers 5.24), so the previous one is kept too: the whole one a kill then leaves.
        save_total_limit=1 if int(os.environ.get("WORLD_SIZE", "1")) == 1 else 2,
        logging_steps=p.log_steps,
        per_device_train_batch_size=p.per_device_train_batch_size,
        gradient_accumulation_steps=p.gradient_accumulation_steps,
        learning_rate=p.learning_rate,
        lr_scheduler_type=p.lr_scheduler_type,
        warmup_steps=int(round(p.warmup_ratio * p.max_steps)),
        weight_decay=p.weight_decay,
        max_grad_norm=p.max_grad_norm,
        dataloader_num_workers=p.dataloader_num_workers,
        seed=p.seed,
        data_seed=p.seed,
        report_to="none",  # dvclive is attached as a callback
        disable_tqdm=False,
        **precision_options(p),
        **fsdp_options(p, model, f"{section}.distributed"),
        **extra,
    )


def whole_checkpoint(path: Path, world: int = 1) -> bool:
    """Whether the Trainer finished writing the checkpoint ``path`` of a run of ``world`` processes.

    Checked against transformers 5.24: ``Trainer._save_checkpoint`` writes the weights, optimizer,
    scheduler and RNG state, then, last, ``trainer_state.json`` (not atomically), then rotates older
    checkpoints; ``get_last_checkpoint`` picks the newest ``checkpoint-N`` directory whatever it holds, so
    a run killed while saving would resume a partial one. Under torchrun every other rank writes its
    ``rng_state_<rank>.pth`` with no barrier before that file, so those must be there and whole too (a
    zip archive, ``torch.save``'s format)."""
    try:
        json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    rng = ["rng_state.pth"] if world <= 1 else [f"rng_state_{rank}.pth" for rank in range(world)]
    return all(zipfile.is_zipfile(path / name) for name in rng)


def last_checkpoint(ckpt_dir: Path, world: int = 1) -> str | None:
    """The newest whole checkpoint (:func:`whole_checkpoint`) an interrupted run with the same params and
    inputs left in ``ckpt_dir``, if any."""
    found = sorted(
        Path(ckpt_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]), reverse=True
    )
    return next((str(p) for p in found if whole_checkpoint(p, world)), None)


def checkpoint_schedule():
    """A callback that makes every checkpoint hold everything a resumed run reports.

    The Trainer logs at every checkpoint and at the last step, so the log history saved with a checkpoint
    (``trainer_state.json``) covers every step before it (:func:`mean_train_loss`, and the curves a
    resumed run logs again: :func:`dvclive_callback`), and the loss accumulated since the last log is never
    lost with the process. No checkpoint is written at the last step: the Trainer would resume a finished
    run with one step too many, so a run killed after its last step repeats the steps since its previous
    checkpoint."""
    from transformers import TrainerCallback

    class LogAtCheckpoints(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            last = state.global_step >= state.max_steps
            if last:
                control.should_save = False
            if last or control.should_save:
                control.should_log = True
            return control

    return LogAtCheckpoints()


TIMING_KEYS = ("_runtime", "_per_second", "total_flos")


def mean_train_loss(log_history: list[dict[str, Any]]) -> float:
    """The mean training loss over every step of a run: the logged losses, each weighted by the steps
    since the previous log.

    The Trainer's own ``training_loss`` averages the steps run by the current process only; the log
    history is saved with every checkpoint and covers every step (:func:`checkpoint_schedule`), so a
    resumed run reports the figure of an uninterrupted one."""
    total, last = 0.0, 0
    for entry in log_history:
        if "loss" in entry:
            total += entry["loss"] * (entry["step"] - last)
            last = entry["step"]
    return total / last if last else math.nan


def dvclive_callback(live_dir: str | Path, summary: bool = False):
    """Log every loss term to ``live_dir`` (plots/metrics/*.tsv for ``dvc plots``); on
    ranks other than 0 (torchrun) a callback that does nothing.

    The ``step`` of every curve is the Trainer's global step (optimizer updates), so a curve logged every
    ``logging_steps`` reads ``N, 2N, ...`` and evaluation curves sit at the steps they were computed at.
    A metric the Trainer logs twice at one step (``epoch`` with the training and the evaluation losses) is
    kept once. ``train/loss``, the run's mean loss at its last step, is :func:`mean_train_loss`.

    Every run starts its dvclive files afresh. A run resumed from a checkpoint first logs again, in
    order, the Trainer's log history that the checkpoint holds (``state.log_history``, every entry up to
    its step), so its curves are those of an uninterrupted run; nothing its interrupted predecessor
    wrote is read.

    ``summary=True`` also writes dvclive's ``metrics.json`` (the last value of every curve); the stages
    leave it out: their headline metrics are their own metrics files.

    Wall-clock entries (runtime, samples per second, FLOs) are left out: tracked metrics must be
    identical for identical params; stages print throughput instead."""
    from dvclive.huggingface import DVCLiveCallback

    class ReproducibleDVCLiveCallback(DVCLiveCallback):
        def __init__(self, live):
            super().__init__(live=live)
            self.last_logged: dict[str, int] = {}  # metric -> the global step it was last logged at

        def on_train_begin(self, args, state, control, **kwargs):
            # DVC already tracks the stage's params (args.to_dict() holds machine-specific paths): none
            # are logged. Resumed at global step k: the log history up to k, as it was logged.
            if state.is_world_process_zero:
                for i, entry in enumerate(state.log_history):
                    logs = {k: v for k, v in entry.items() if k != "step"}
                    self.log(args, state, control, logs, entry["step"], state.log_history[: i + 1])
                self.live.step = state.global_step

        def on_log(self, args, state, control, model=None, logs=None, **kwargs):
            if state.is_world_process_zero:
                self.log(args, state, control, logs or {}, state.global_step, state.log_history)

        def log(self, args, state, control, logs, step, history):
            logs = {
                k: v
                for k, v in logs.items()
                if not any(t in k for t in TIMING_KEYS) and self.last_logged.get(k, -1) < step
            }
            if "train_loss" in logs:
                logs["train_loss"] = mean_train_loss(history)
            if not logs:
                return
            self.last_logged.update(dict.fromkeys(logs, step))
            self.live.step = step  # dvclive's next_step() then writes the summary at this step
            super().on_log(args, state, control, logs=logs)

    from transformers import TrainerCallback

    from ..runtime import is_main_process

    if not is_main_process():
        return TrainerCallback()  # torchrun: other ranks neither log nor touch ``live_dir``
    return ReproducibleDVCLiveCallback(live=curves_live(live_dir, summary=summary))


def section_of(stage: str, run_params: Any) -> str:
    """Where the Trainer settings sit in params.yaml: ``shared.train`` for a stage with a ``train``
    block, else (a flat ``TrainParams`` section) ``<stage>``."""
    return "shared.train" if hasattr(run_params, "train") else stage


def fit(
    model,
    dataset,
    train: TrainParams,
    stage: str,
    run_params: Any,
    live_dir: Path,
    trainer_class=None,
    callbacks: list | None = None,
    inputs: Iterable[str | Path] = (),
):
    """Train ``model`` on ``dataset`` with dvclive curves, the Trainer's checkpoints and resume.

    ``inputs``: every file or directory the run trains from (corpora, the teacher or base model; a hub
    id counts by name): their contents are part of the checkpoint key (:func:`checkpoint_dir`), so an
    interrupted run is resumed only on the same inputs and otherwise starts afresh from step 0.
    Under ``torchrun`` every rank trains; only rank 0 logs (dvclive) and writes checkpoints. With
    ``distributed: fsdp`` the Trainer shards a copy of ``model`` (FSDP shards in place) and the trained
    weights are gathered back into ``model`` on rank 0, so the stages save ``model`` as usual.
    Returns the Trainer and statistics (mean train loss, steps, whether it resumed, samples/s)."""
    from transformers import Trainer

    section = section_of(stage, run_params)
    check_distributed(train.distributed, f"{section}.distributed")
    fsdp = train.distributed == "fsdp"
    trained = copy.deepcopy(model) if fsdp else model
    if train.gradient_checkpointing and not fsdp:
        enable_activation_checkpointing(trained, f"{section}.gradient_checkpointing")
    run = run_params.model_dump() if isinstance(run_params, Params) else run_params
    ckpt = checkpoint_dir(stage, {"run": run, "train": train.model_dump()}, inputs)  # shared.train included
    trainer = (trainer_class or Trainer)(
        model=trained,
        args=training_arguments(train, ckpt, section, model=trained),
        train_dataset=dataset,
        callbacks=[
            checkpoint_schedule(),
            *(callbacks or []),
            dvclive_callback(live_dir),  # curves only: metrics are the stage's
        ],
    )
    last = last_checkpoint(ckpt, trainer.args.world_size)
    t0 = time.perf_counter()
    stats = train_with_resume(trainer, ckpt, last)
    samples = train.max_steps * train.per_device_train_batch_size * train.gradient_accumulation_steps
    samples *= trainer.args.world_size
    stats["samples_per_second"] = round(samples / (time.perf_counter() - t0), 2)  # printed, not a metric
    if fsdp:
        gather_full_weights(trained, model)
    return trainer, stats


def train_with_resume(trainer, ckpt_dir: Path, last: str | None) -> dict[str, float]:
    """Train (from ``last`` if given: see :func:`last_checkpoint`); checkpoints are removed at the end
    (by rank 0, once every rank has finished)."""
    result = trainer.train(resume_from_checkpoint=last)
    wait_for_all_ranks()
    if trainer.is_world_process_zero():
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return {
        "train_loss": mean_train_loss(trainer.state.log_history),
        "steps": int(result.global_step),
        "resumed": last is not None,  # printed by the stages, never in their outputs
    }
