"""Lightning training of Ti-MAE: masked-reconstruction pretraining and classifier fine-tuning.

Both fits run on the Lightning engine (:mod:`tsfmlab.training.lightning_engine`: dvclive curves under
``log_dir``, model selection on the validation split only, no ``.ckpt`` pickles); the test split never
enters this module. Series longer than the model's ``seq_len``
are cropped (a random window per draw in training, the centre window in evaluation) when ``crop`` is
set. Seeded with ``L.seed_everything(seed, workers=True)``, a CPU run is bit-for-bit reproducible.

Several processes: launched under ``torchrun --nproc-per-node N [--nnodes M ...]`` the Trainer takes
``devices`` and ``num_nodes`` from torchrun's environment and ``distributed`` picks Lightning's strategy:
``ddp`` (DDPStrategy: gloo on CPU, NCCL on GPUs) or ``fsdp`` (ModelParallelStrategy: FSDP2, one unit per
backbone layer plus the whole model; it runs on CPU with gloo too). Without torchrun the fit uses one
device. Epoch metrics are averaged over the ranks (``sync_dist``), so every rank selects the same best
epoch; only rank 0 logs (dvclive's logger is rank-zero only) and no checkpoint files are written.
``gradient_checkpointing`` recomputes each backbone layer's activations in the backward pass
(non-reentrant, the RNG state preserved: dropout masks and gradients are the same as without it).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import DataError, ParamError
from ..launch import Distributed, LaunchParams
from ..models.timae import (
    POOLINGS,
    Mamba2Backbone,
    TiMAEClassifier,
    TiMAEConfig,
    TiMAEForPretraining,
    TransformerBackbone,
    parameter_counts,
)
from ..params import BelowOne, NonNegativeFloat, NonNegativeInt, OpenUnit, Params, PositiveFloat, PositiveInt
from .lightning_engine import fit_stats, make_trainer, quiet_lightning

Monitor = Literal["val/loss", "val/acc"]


#: Lightning precisions: fp32 (CPU), bf16/fp16 autocast (GPUs; bf16-mixed also on CPU), bf16 weights
Precision = Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true"]


class PretrainParams(Params):
    """The ``pretrain_timae`` params section."""

    mask_ratio: OpenUnit
    seq_len: PositiveInt | None  # null: the series length; shorter needs crop: true
    crop: bool  # series longer than seq_len: random windows in training, the centre one in evaluation
    normalize: bool  # z-normalise every series and channel
    unlabeled_pool: list[str]  # more prepared datasets whose train + val series join pretraining
    lr: PositiveFloat
    weight_decay: NonNegativeFloat
    warmup_ratio: BelowOne  # share of all steps warmed up linearly
    batch_size: PositiveInt
    max_epochs: PositiveInt
    patience: PositiveInt | None  # validation epochs without improvement
    val_mask_seed: int  # the validation masks are the same every epoch
    precision: Precision
    gradient_checkpointing: bool  # recompute backbone activations in the backward pass
    distributed: Distributed  # under torchrun: ddp (replicated) | fsdp (sharded)
    n_plots: NonNegativeInt  # reconstruction panels per dataset
    seed: int
    launch: LaunchParams  # processes and machines (tsfmlab.launch)


class TiMAEFinetuneParams(Params):
    """The ``finetune_timae`` params section (the pooling comes from the grid)."""

    seq_len: PositiveInt | None  # null: as pretrained
    crop: bool
    normalize: bool  # must match pretraining's
    lr: PositiveFloat  # the head's
    encoder_lr: PositiveFloat
    weight_decay: NonNegativeFloat
    warmup_ratio: BelowOne
    label_smoothing: BelowOne
    freeze_encoder: bool
    head_hidden: list[PositiveInt]
    head_dropout: BelowOne
    batch_size: PositiveInt
    max_epochs: PositiveInt
    patience: PositiveInt | None
    monitor: Monitor  # model selection (and early stopping) metric
    precision: Precision
    gradient_checkpointing: bool
    distributed: Distributed
    seed: int
    launch: LaunchParams


def series_length(x: np.ndarray, seq_len: int | None, crop: bool, where: str) -> int:
    """The model's ``seq_len`` for series of ``x``'s length (checked early, naming the param)."""
    length = x.shape[-1]
    if seq_len is None:
        return length
    if seq_len > length:
        raise ParamError(f"param {where}.seq_len={seq_len} exceeds the series length {length}")
    if seq_len < length and not crop:
        raise ParamError(
            f"param {where}.seq_len={seq_len} is shorter than the series ({length}): set {where}.crop: true"
        )
    return seq_len


# --------------------------------------------------------------------------------------------------
# data


class SeriesDataset(Dataset):
    """``(N, C, T)`` float series (and optional integer labels) as ``(C, seq_len)`` windows.

    ``T == seq_len`` is used whole. ``T > seq_len`` needs ``crop``: training draws a random window per
    item (torch's global RNG, seeded by ``seed_everything``, workers included), evaluation takes the
    centre window. ``normalize`` z-normalises each series and channel over its full length first.
    Items are the window alone, or ``(window, label)``."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray | None = None,
        *,
        seq_len: int,
        crop: bool = False,
        train: bool = False,
        normalize: bool = False,
    ):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or len(x) == 0:
            raise DataError(f"expected series of shape (cases, channels, time), got {x.shape}")
        length = x.shape[2]
        if length < seq_len:
            raise ParamError(f"param seq_len ({seq_len}) is longer than the series (length {length})")
        if length > seq_len and not crop:
            raise ParamError(
                f"the series (length {length}) are longer than param seq_len ({seq_len}): "
                f"set crop: true or seq_len: {length}"
            )
        check_finite(x)
        if normalize:
            mean, std = x.mean(axis=2, keepdims=True), x.std(axis=2, keepdims=True)
            x = (x - mean) / np.where(std > 1e-8, std, 1.0)
        if y is not None:
            y = np.asarray(y)
            if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
                raise DataError(f"expected {len(x)} integer labels, got {y.dtype} of shape {y.shape}")
        self.x = torch.from_numpy(np.ascontiguousarray(x))
        self.y = None if y is None else torch.from_numpy(y.astype(np.int64))
        self.seq_len, self.train = seq_len, train

    def __len__(self) -> int:
        return len(self.x)

    def start(self, length: int) -> int:
        spare = length - self.seq_len
        if spare == 0:
            return 0
        return int(torch.randint(0, spare + 1, (1,)).item()) if self.train else spare // 2

    def __getitem__(self, i: int):
        s = self.start(self.x.shape[2])
        window = self.x[i, :, s : s + self.seq_len]
        return window if self.y is None else (window, self.y[i])


def check_finite(x: np.ndarray) -> None:
    """Reject series with missing values (an all-NaN series is named as such)."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    cases = np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))
    empty = [int(i) for i in cases if bad[i].all()]
    if empty:
        raise DataError(f"series {empty[:10]} hold only NaN/inf values")
    raise DataError(
        f"series {[int(i) for i in cases[:10]]} hold NaN/inf values; prepare the data with "
        f"missing values interpolated"
    )


def make_loader(
    dataset: SeriesDataset, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0
) -> DataLoader:
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=num_workers
    )


def _inputs(batch) -> torch.Tensor:
    return batch[0] if isinstance(batch, (list, tuple)) else batch


# --------------------------------------------------------------------------------------------------
# optimisation


def decay_groups(module: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups: weight matrices decay; biases, norm scales, Mamba's A_log, D and dt_bias (all
    1-D) and the CLS and mask tokens do not."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if p.requires_grad:
            spared = p.dim() < 2 or name.endswith(("cls_token", "mask_token"))
            (no_decay if spared else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [dict(g, lr=lr) for g in groups if g["params"]]


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear from 1/warmup to 1 over ``warmup`` steps, then cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def optimizer_config(module: L.LightningModule, groups: list[dict], warmup_ratio: float) -> dict:
    optimizer = torch.optim.AdamW(groups)
    total = max(1, int(module.trainer.estimated_stepping_batches))
    warmup = int(round(warmup_ratio * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, total, warmup))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


# --------------------------------------------------------------------------------------------------
# activation checkpointing and sharding


def backbone_layers(model: nn.Module) -> list[nn.Module]:
    """The repeated layers of every backbone (encoder and decoder) of a Ti-MAE model."""
    return [
        layer
        for m in model.modules()
        if isinstance(m, (TransformerBackbone, Mamba2Backbone))
        for layer in m.layers
    ]


def prepare_model(module: L.LightningModule, model: nn.Module, gradient_checkpointing: bool) -> None:
    """``configure_model`` of both modules: activation checkpointing of every backbone layer, then
    (under ModelParallelStrategy, which gives the module a device mesh) FSDP2 sharding, one unit per
    backbone layer and one for the rest of ``model``. Idempotent, as Lightning requires."""
    if getattr(module, "_model_prepared", False):
        return
    module._model_prepared = True
    if gradient_checkpointing:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
            CheckpointImpl,
            apply_activation_checkpointing,
            checkpoint_wrapper,
        )

        layers = {id(layer) for layer in backbone_layers(model)}
        apply_activation_checkpointing(
            model,
            checkpoint_wrapper_fn=functools.partial(
                checkpoint_wrapper, checkpoint_impl=CheckpointImpl.NO_REENTRANT
            ),
            check_fn=lambda m: id(m) in layers,
        )
        rank_zero_info(f"activation checkpointing: {len(layers)} backbone layers")
    mesh = module.device_mesh
    if mesh is not None:
        from torch.distributed.fsdp import fully_shard
        from torch.distributed.tensor import DTensor

        dp = mesh["data_parallel"]
        for m in model.modules():
            if isinstance(m, (TransformerBackbone, Mamba2Backbone)):
                for layer in m.layers:  # checkpoint-wrapped or not
                    fully_shard(layer, mesh=dp)
        fully_shard(model, mesh=dp)
        params = list(model.parameters())
        held = sum(p.to_local().numel() if isinstance(p, DTensor) else p.numel() for p in params)
        total = sum(p.numel() for p in params)
        rank_zero_info(f"FSDP2 over {dp.size()} ranks: rank 0 holds {held} of {total} parameters")


def is_modified(module: L.LightningModule) -> bool:
    """Whether ``configure_model`` wrapped or sharded the model (see :func:`plain_model`)."""
    return getattr(module, "_model_prepared", False) and (
        module.gradient_checkpointing or module.device_mesh is not None
    )


def plain_model(model: nn.Module, build) -> nn.Module:
    """A new ``build()`` model, on the CPU, holding ``model``'s weights gathered in full: sharded
    parameters are all-gathered (a collective: every rank calls it, in the same order) and
    checkpoint wrappers left behind."""
    from torch.distributed.tensor import DTensor

    state = {
        k: (v.full_tensor() if isinstance(v, DTensor) else v).detach().cpu()
        for k, v in model.state_dict().items()
    }
    fresh = build()
    fresh.load_state_dict(state)
    return fresh


# --------------------------------------------------------------------------------------------------
# Lightning modules


class PretrainModule(L.LightningModule):
    """Masked reconstruction; validation masks come from a generator re-seeded every epoch."""

    def __init__(
        self,
        model: TiMAEForPretraining,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        warmup_ratio: float = 0.05,
        val_mask_seed: int = 0,
        gradient_checkpointing: bool = False,
    ):
        super().__init__()
        self.model = model
        self.lr, self.weight_decay, self.warmup_ratio = lr, weight_decay, warmup_ratio
        self.val_mask_seed = val_mask_seed
        self.gradient_checkpointing = gradient_checkpointing
        self._val_generator: torch.Generator | None = None

    def configure_model(self) -> None:
        prepare_model(self, self.model, self.gradient_checkpointing)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = _inputs(batch)
        loss = self.model(x).loss
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_generator = torch.Generator().manual_seed(self.val_mask_seed)

    def validation_step(self, batch, batch_idx: int) -> None:
        x = _inputs(batch)
        loss = self.model(x, generator=self._val_generator).loss
        self.log("val/loss", loss, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=True)

    def configure_optimizers(self) -> dict:
        return optimizer_config(self, decay_groups(self.model, self.lr, self.weight_decay), self.warmup_ratio)


class ClassifierModule(L.LightningModule):
    """Cross-entropy (optionally label-smoothed; ``val/loss`` is plain cross-entropy) with the
    encoder at ``encoder_lr`` and the head at ``lr``; a frozen encoder is also kept in eval mode."""

    def __init__(
        self,
        model: TiMAEClassifier,
        lr: float = 1e-3,
        encoder_lr: float = 1e-4,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.0,
        label_smoothing: float = 0.0,
        freeze_encoder: bool = False,
        gradient_checkpointing: bool = False,
    ):
        super().__init__()
        self.model = model
        self.lr, self.encoder_lr, self.weight_decay = lr, encoder_lr, weight_decay
        self.warmup_ratio, self.label_smoothing = warmup_ratio, label_smoothing
        self.freeze_encoder = freeze_encoder
        self.gradient_checkpointing = gradient_checkpointing
        if freeze_encoder:
            model.encoder.requires_grad_(False)

    def configure_model(self) -> None:
        prepare_model(self, self.model, self.gradient_checkpointing)

    def train(self, mode: bool = True) -> ClassifierModule:
        super().train(mode)
        if self.freeze_encoder:
            self.model.encoder.eval()
        return self

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.model(x), y, label_smoothing=self.label_smoothing)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self.model(x)
        log = functools.partial(self.log, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=True)
        log("val/loss", F.cross_entropy(logits, y))
        log("val/acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self) -> dict:
        groups = decay_groups(self.model.head, self.lr, self.weight_decay)
        if not self.freeze_encoder:
            groups += decay_groups(self.model.encoder, self.encoder_lr, self.weight_decay)
        return optimizer_config(self, groups, self.warmup_ratio)


# --------------------------------------------------------------------------------------------------
# convenience fits


def fit_pretrain(
    config: TiMAEConfig,
    train_x: np.ndarray,
    val_x: np.ndarray,
    params: PretrainParams,
    log_dir: str | Path | None,
    num_workers: int = 0,
    **trainer_kwargs: Any,
) -> tuple[TiMAEForPretraining, dict[str, Any]]:
    """Pretrain a new model on ``train_x``; returns it (best validation weights, eval mode, CPU) and
    ``{best_epoch, epochs_run, best_val_loss, n_params}``. ``trainer_kwargs`` go to :func:`make_trainer`."""
    L.seed_everything(params.seed, workers=True, verbose=False)
    model = TiMAEForPretraining(config)
    module = PretrainModule(
        model,
        params.lr,
        params.weight_decay,
        params.warmup_ratio,
        params.val_mask_seed,
        params.gradient_checkpointing,
    )
    data = dict(seq_len=config.seq_len, crop=params.crop, normalize=params.normalize)
    train = make_loader(
        SeriesDataset(train_x, train=True, **data), params.batch_size, True, params.seed, num_workers
    )
    val = make_loader(SeriesDataset(val_x, **data), params.batch_size, False, num_workers=num_workers)
    trainer_kwargs.setdefault("distributed", params.distributed)
    trainer_kwargs.setdefault("precision", params.precision)
    trainer = make_trainer(
        params.max_epochs, log_dir, patience=params.patience, monitor="val/loss", **trainer_kwargs
    )
    with quiet_lightning():
        trainer.fit(module, train, val)
    if is_modified(module):
        model = plain_model(model, lambda: TiMAEForPretraining(config))
    return model.eval(), fit_stats(trainer) | {"n_params": parameter_counts(model)["total"]}


def fit_classifier(
    config: TiMAEConfig,
    n_classes: int,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    params: TiMAEFinetuneParams,
    pooling: str,
    log_dir: str | Path | None,
    encoder_dir: str | Path | None = None,
    num_workers: int = 0,
    **trainer_kwargs: Any,
) -> tuple[TiMAEClassifier, dict[str, Any]]:
    """Train a classifier (on the encoder saved in ``encoder_dir``, else from scratch); returns it with
    the weights of its best validation epoch (eval mode, CPU) and ``{best_epoch, epochs_run,
    best_val_loss, best_val_acc, n_params}``. Use ``read_config(encoder_dir)`` (possibly
    ``model_copy``-d) as ``config`` to fine-tune a pretrained encoder."""
    if pooling not in POOLINGS:
        raise ParamError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    for name, (_, y) in (("train", train), ("val", val)):
        y = np.asarray(y)
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise DataError(f"{name} labels must lie in [0, {n_classes}), got [{y.min()}, {y.max()}]")
    L.seed_everything(params.seed, workers=True, verbose=False)
    model = TiMAEClassifier(config, n_classes, pooling, params.head_hidden, params.head_dropout)
    if encoder_dir is not None:
        model.load_encoder(encoder_dir)
    module = ClassifierModule(
        model,
        params.lr,
        params.encoder_lr,
        params.weight_decay,
        params.warmup_ratio,
        params.label_smoothing,
        params.freeze_encoder,
        params.gradient_checkpointing,
    )
    data = dict(seq_len=config.seq_len, crop=params.crop, normalize=params.normalize)
    train_loader = make_loader(
        SeriesDataset(*train, train=True, **data), params.batch_size, True, params.seed, num_workers
    )
    val_loader = make_loader(SeriesDataset(*val, **data), params.batch_size, False, num_workers=num_workers)
    trainer_kwargs.setdefault("distributed", params.distributed)
    trainer_kwargs.setdefault("precision", params.precision)
    trainer = make_trainer(
        params.max_epochs, log_dir, patience=params.patience, monitor=params.monitor, **trainer_kwargs
    )
    with quiet_lightning():
        trainer.fit(module, train_loader, val_loader)
    if is_modified(module):
        model = plain_model(
            model,
            lambda: TiMAEClassifier(
                config, n_classes, pooling, params.head_hidden, params.head_dropout
            ),
        )
    stats = fit_stats(trainer) | {"n_params": parameter_counts(model)["total"]}
    return model.eval(), stats
