"""Classification heads on encoder features: an MLP (on cached features, or trained jointly with the
encoder), trained on the Lightning engine (:mod:`tsfmlab.training.lightning_engine`); CatBoost on
features is in :mod:`tsfmlab.evaluation.baselines`. Early stopping and the learning-rate schedule
look only at the validation split; the test split never enters this module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..params import BelowOne, NonNegativeInt, Params, PositiveFloat, PositiveInt
from .lightning_engine import best_weights, make_trainer, quiet_lightning, single_process


class MLPParams(Params):
    hidden_sizes: list[PositiveInt]
    dropout: BelowOne
    batch_norm: bool
    lr: PositiveFloat
    weight_decay: float
    epochs: PositiveInt
    batch_size: PositiveInt
    patience: PositiveInt  # epochs without a better validation loss before stopping
    seed: int


class MLPFinetuneParams(Params):
    """Linear probe, then fine-tune: ``head`` trained on cached features, then jointly with the encoder."""

    head: MLPParams
    encoder_lr: PositiveFloat  # the encoder's (lower) learning rate
    finetune_epochs: NonNegativeInt  # joint epochs after the head's


class Standardize(nn.Module):
    """Fixed feature standardisation with statistics of the training split."""

    def __init__(self, features: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(features.mean(0), dtype=torch.float32))
        std = features.std(0)
        std = np.maximum(std, 0.1 * std.mean() + 1e-12)  # a floor: near-constant features are not blown up
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.mean) / self.std


def mlp_head(train_features: np.ndarray, n_classes: int, p: MLPParams) -> nn.Sequential:
    layers: list[nn.Module] = [Standardize(train_features)]
    width = train_features.shape[1]
    for h in p.hidden_sizes:
        layers.append(nn.Linear(width, h))
        if p.batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers += [nn.ReLU(), nn.Dropout(p.dropout)]
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


@dataclass
class FitResult:
    best_epoch: int  # -1: the starting weights were never beaten on validation
    epochs_run: int
    best_val_loss: float
    best_val_accuracy: float


def predict_logits(forward: Callable, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


class HeadModule(L.LightningModule):
    """Cross-entropy on ``forward(x)`` (``model`` holds its weights), AdamW over ``param_groups``, the
    learning rate halved by ``ReduceLROnPlateau`` on the validation loss."""

    def __init__(self, model: nn.Module, forward: Callable, param_groups: list[dict], p: MLPParams):
        super().__init__()
        self.model, self.forward_fn, self.param_groups, self.p = model, forward, param_groups, p

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.forward_fn(x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self.forward_fn(x)
        self.log("val/loss", F.cross_entropy(logits, y), on_step=False, on_epoch=True, batch_size=len(x))
        self.log("val/acc", (logits.argmax(1) == y).float().mean(), on_step=False, on_epoch=True, batch_size=len(x))

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.AdamW(self.param_groups, weight_decay=self.p.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=0.5, patience=max(1, self.p.patience // 3)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"}}


def fit(
    model: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    param_groups: list[dict],
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    p: MLPParams,
    log_dir: str | Path | None = None,
    first_epoch: int = 0,
) -> FitResult:
    """Minibatch AdamW on cross-entropy on the Lightning engine: after every epoch the validation loss
    drives ``ReduceLROnPlateau`` and early stopping, and the best weights are restored at the end (the
    starting weights count as epoch -1, so a warm-started model is never made worse on validation);
    only improvements by more than 1e-6 count.
    Curves go to dvclive in ``log_dir`` at ``first_epoch + epoch`` (see
    :func:`~tsfmlab.training.lightning_engine.dvclive_logger`)."""
    from torch.utils.data import DataLoader, TensorDataset

    L.seed_everything(p.seed, workers=True, verbose=False)
    (x_tr, y_tr), (x_va, y_va) = train, val
    model.eval()
    logits = predict_logits(forward, x_va, p.batch_size)
    start = (F.cross_entropy(logits, y_va).item(), (logits.argmax(1) == y_va).float().mean().item())
    lone_row = len(x_tr) % p.batch_size == 1 and len(x_tr) > 1  # BatchNorm needs two rows: drop it
    train_loader = DataLoader(
        TensorDataset(x_tr, y_tr), batch_size=p.batch_size, shuffle=True, drop_last=lone_row,
        generator=torch.Generator().manual_seed(p.seed),
    )  # fmt: skip
    val_loader = DataLoader(TensorDataset(x_va, y_va), batch_size=p.batch_size)
    trainer = make_trainer(
        p.epochs, log_dir, patience=p.patience, monitor="val/loss", baseline=start[0], min_delta=1e-6,
        first_epoch=first_epoch, **single_process(),
    )  # fmt: skip
    model.train()  # Lightning keeps the mode it finds
    with quiet_lightning():
        trainer.fit(HeadModule(model, forward, param_groups, p), train_loader, val_loader)
    model.eval()
    best = best_weights(trainer)
    if best.best_epoch < 0:  # no epoch beat the starting weights: their own validation scores
        return FitResult(-1, best.epochs_run, *start)
    return FitResult(best.best_epoch, best.epochs_run, best.best_metrics["val/loss"], best.best_metrics["val/acc"])


def train_head(
    features: dict[str, np.ndarray], y_tr: np.ndarray, y_va: np.ndarray, n_classes: int, p: MLPParams,
    log_dir: str | Path | None = None,
) -> tuple[nn.Sequential, FitResult]:  # fmt: skip
    """An MLP head trained on cached ``features`` (``train``/``val``); early-stopped on validation."""
    torch.manual_seed(p.seed)
    model = mlp_head(features["train"], n_classes, p)
    f_tr, f_va = torch.from_numpy(features["train"]), torch.from_numpy(features["val"])
    y_tr_t, y_va_t = torch.from_numpy(y_tr), torch.from_numpy(y_va)
    groups = [{"params": list(model.parameters()), "lr": p.lr}]
    return model, fit(model, model, groups, (f_tr, y_tr_t), (f_va, y_va_t), p, log_dir)


def finetune_with_encoder(
    head: nn.Module, encoder: nn.Module, embed: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    inputs: tuple[np.ndarray, np.ndarray], y_tr: np.ndarray, y_va: np.ndarray, p: MLPFinetuneParams,
    log_dir: str | Path | None = None, first_epoch: int = 0,
) -> tuple[Callable[[torch.Tensor], torch.Tensor], FitResult]:  # fmt: skip
    """The fine-tune half of LP-FT: a (warm-started) ``head`` and the ``encoder`` trained jointly on raw
    ``inputs`` (``train``, ``val``), the encoder at its lower learning rate; returns the forward
    function (raw inputs -> logits) and the fit's result. Its curves continue the head's from
    ``first_epoch``."""
    model = nn.ModuleDict({"encoder": encoder, "head": head})

    def forward(x: torch.Tensor) -> torch.Tensor:
        return model["head"](embed(model["encoder"], x))

    groups = [
        {"params": list(model["head"].parameters()), "lr": p.head.lr},
        {"params": list(model["encoder"].parameters()), "lr": p.encoder_lr},
    ]
    x_tr, x_va = (torch.from_numpy(x) for x in inputs)
    joint = p.head.model_copy(update={"epochs": p.finetune_epochs})
    y_tr_t, y_va_t = torch.from_numpy(y_tr), torch.from_numpy(y_va)
    result = fit(model, forward, groups, (x_tr, y_tr_t), (x_va, y_va_t), joint, log_dir, first_epoch)
    return forward, result
