"""The Lightning engine: one Trainer factory for every Lightning fit (Ti-MAE, the classification heads),
with its dvclive wiring, in-memory model selection and torchrun integration.

Every fit logs epoch curves through dvclive (``plots/metrics/{train,val}/*.tsv`` under its log
directory, no git/DVC operations, the step the Trainer's epoch), selects the model on the validation
split only, early-stops on it, and writes no Lightning ``.ckpt`` pickles: :class:`BestWeightsInMemory`
keeps a copy of the best validation weights and puts it back when the fit ends.

Several processes: under ``torchrun --nproc-per-node N [--nnodes M ...]`` the Trainer takes ``devices``
and ``num_nodes`` from torchrun's environment and ``distributed`` picks Lightning's strategy: ``ddp``
(DDPStrategy: gloo on CPU, NCCL on GPUs) or ``fsdp`` (ModelParallelStrategy: FSDP2; it runs on CPU with
gloo too). Without torchrun the fit uses one device; :func:`single_process` pins a fit to the calling
process under torchrun too. Only rank 0 logs (dvclive's logger is rank-zero only).
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch import nn

from ..errors import ParamError
from ..runtime import is_main_process, progress_enabled
from .live import curves_live


def snapshot(value: torch.Tensor) -> torch.Tensor:
    """A copy of a weight: on the CPU, or for a sharded (FSDP) weight, of this rank's shard in place."""
    from torch.distributed.tensor import DTensor

    if isinstance(value, DTensor):
        return value.detach().clone()
    return value.detach().to("cpu", copy=True)


class BestWeightsInMemory(L.Callback):
    """Copies the module's weights (to CPU) whenever ``monitor`` improves on a validation epoch and
    loads the best copy back when the fit ends: model selection without writing ``.ckpt`` pickles.
An improvement is one by more than ``min_delta``.

    ``baseline``: the starting weights' score, which they keep as epoch -1 (a warm-started model is
    then never made worse on validation)."""

    def __init__(
        self,
        monitor: str = "val/loss",
        mode: Literal["min", "max"] = "min",
        baseline: float | None = None,
        min_delta: float = 0.0,
    ):
        super().__init__()
        self.monitor, self.mode, self.baseline, self.min_delta = monitor, mode, baseline, min_delta
        self.best_score = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.best_metrics: dict[str, float] = {}
        self.epochs_run = 0
        self.state: dict[str, torch.Tensor] | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.baseline is not None:
            self.best_score = float(self.baseline)
            self.state = {k: snapshot(v) for k, v in pl_module.state_dict().items()}

    def improves(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best_score - self.min_delta
        return value > self.best_score + self.min_delta

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.epochs_run = trainer.current_epoch + 1
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or not math.isfinite(float(value)) or not self.improves(float(value)):
            return
        self.best_score, self.best_epoch = float(value), trainer.current_epoch
        self.best_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        self.state = {k: snapshot(v) for k, v in pl_module.state_dict().items()}

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.restore(pl_module)

    def restore(self, module: nn.Module) -> None:
        if self.state is not None:
            module.load_state_dict(self.state)


def dvclive_logger(log_dir: str | Path, first_epoch: int = 0):
    """dvclive under ``log_dir`` with no DVC experiment, no dvc.yaml, no report, no model logging; one
    row per epoch. The curves' ``step`` is the Trainer's own epoch counter (``trainer.current_epoch``,
    from 0, as in the ``best_epoch`` the fits report): Lightning logs epoch means at its global step,
    which repeats across train and validation and skips with several batches per epoch, so the epoch it
    logs with every metric is used instead. ``first_epoch`` > 0 continues the curves a previous fit left
    in ``log_dir`` (the second phase of a two-phase fit), at ``first_epoch + epoch``; otherwise each fit
    starts its curves afresh."""
    from dvclive.lightning import DVCLiveLogger
    from lightning.pytorch.utilities import rank_zero_only

    class EpochLogger(DVCLiveLogger):
        @rank_zero_only
        def log_metrics(self, metrics, step=None, sync=False):
            metrics = dict(metrics)
            epoch = metrics.pop("epoch", None)
            if epoch is not None:
                # dvclive's logger takes a step of 0 for "none given" and then counts on from its own
                # counter: set that counter to one before the epoch, so the rows land on the epoch itself
                self.experiment.step = first_epoch + int(epoch) - 1
                step = None
            super().log_metrics(metrics, step, sync)

    # rank 0 only (torchrun): other ranks get the logger's dummy experiment and never touch ``log_dir``
    live = curves_live(log_dir, resume=first_epoch > 0, summary=False) if is_main_process() else None
    return EpochLogger(experiment=live, dir=str(log_dir), log_model=False)


def parallel_options(distributed: str = "ddp") -> dict[str, Any]:
    """Lightning's ``devices``, ``num_nodes`` and ``strategy`` for this process: one device without
    torchrun; under it, torchrun's ``LOCAL_WORLD_SIZE`` devices on ``WORLD_SIZE / LOCAL_WORLD_SIZE``
    nodes with DDP or FSDP2 (``distributed``)."""
    if distributed not in ("ddp", "fsdp"):
        raise ParamError(f"param distributed must be ddp or fsdp, got {distributed!r}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return {"devices": 1, "num_nodes": 1, "strategy": "auto"}
    local = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    strategy: Any = "ddp"
    if distributed == "fsdp":
        from lightning.pytorch.strategies import ModelParallelStrategy

        strategy = ModelParallelStrategy(data_parallel_size=world, tensor_parallel_size=1)
    return {"devices": local, "num_nodes": world // local, "strategy": strategy}


def make_trainer(
    max_epochs: int,
    log_dir: str | Path | None,
    precision: str = "32-true",
    accelerator: str = "auto",
    distributed: str = "ddp",
    patience: int | None = None,
    monitor: str = "val/loss",
    mode: Literal["min", "max"] | None = None,
    deterministic: bool = True,
    callbacks: list[L.Callback] | tuple[L.Callback, ...] = (),
    baseline: float | None = None,
    first_epoch: int = 0,
    min_delta: float = 0.0,
    **kwargs: Any,
) -> L.Trainer:
    """A Trainer that logs to dvclive in ``log_dir`` (``None``: no logger), keeps the best validation
    weights in memory (:class:`BestWeightsInMemory`, see :func:`best_weights`), early-stops on
    ``monitor`` after ``patience`` epochs without improvement, and writes no checkpoints. ``mode``
    defaults to ``max`` for accuracies, else ``min``. Devices and strategy follow torchrun and
    ``distributed`` (:func:`parallel_options`). ``baseline``: the starting weights' score (see
    :class:`BestWeightsInMemory`); ``min_delta``: the smallest change that counts as an improvement,
    for model selection and early stopping; ``first_epoch``: see :func:`dvclive_logger`. ``kwargs`` go to
    ``L.Trainer`` (they may override ``devices``, ``num_nodes`` and ``strategy``)."""
    mode = mode or ("max" if monitor.endswith("acc") else "min")
    extra: list[L.Callback] = [BestWeightsInMemory(monitor, mode, baseline, min_delta), *callbacks]
    if patience is not None:
        from lightning.pytorch.callbacks import EarlyStopping

        extra.append(
            EarlyStopping(
                monitor=monitor, mode=mode, patience=patience, min_delta=min_delta, check_on_train_epoch_end=False
            )
        )
    options: dict[str, Any] = {
        **parallel_options(distributed),
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 1,  # only epoch means are logged; this just silences a warning
        "enable_model_summary": progress_enabled(),
        **kwargs,
    }
    return L.Trainer(
        max_epochs=max_epochs,
        logger=dvclive_logger(log_dir, first_epoch) if log_dir is not None else False,
        default_root_dir=str(log_dir) if log_dir is not None else None,
        callbacks=extra,
        precision=precision,
        accelerator=accelerator,
        deterministic=deterministic,
        enable_checkpointing=False,
        enable_progress_bar=progress_enabled(),
        **options,
    )


def best_weights(trainer: L.Trainer) -> BestWeightsInMemory:
    return next(cb for cb in trainer.callbacks if isinstance(cb, BestWeightsInMemory))


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's advice about dataloader workers (small in-memory datasets need none) and its
    use of a pytree API that recent torch deprecates, and FSDP2's warning that the model returns views
    (the transposed reconstructions, which nothing modifies in place)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
        warnings.filterwarnings("ignore", message=".*returned a view tensor.*")
        yield


def fit_stats(trainer: L.Trainer) -> dict[str, Any]:
    best = best_weights(trainer)
    stats = {"best_epoch": best.best_epoch, "epochs_run": best.epochs_run}
    return stats | {f"best_{k.replace('val/', 'val_')}": v for k, v in best.best_metrics.items()}


def single_process() -> dict[str, Any]:
    """Trainer options for a fit that runs in this process alone, also when torchrun started several
    (e.g. a head trained on rank 0): one device, and a plain cluster environment, so Lightning does not
    check the device count against torchrun's world size."""
    from lightning.fabric.plugins.environments import LightningEnvironment

    return {"devices": 1, "num_nodes": 1, "strategy": "auto", "plugins": [LightningEnvironment()]}
