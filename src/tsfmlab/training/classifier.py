"""Classification heads on encoder features: an MLP (on cached features, or trained jointly with the
encoder) and CatBoost. Early stopping and the learning-rate schedule look only at the validation split;
the test split never enters this module."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..params import below_one, non_negative, positive


@dataclass(frozen=True)
class MLPParams:
    hidden_sizes: list[int] = field(metadata=positive)
    dropout: float = field(metadata=below_one)
    batch_norm: bool
    lr: float = field(metadata=positive)
    weight_decay: float
    epochs: int = field(metadata=positive)
    batch_size: int = field(metadata=positive)
    patience: int = field(metadata=positive)  # epochs without a better validation loss before stopping
    seed: int


@dataclass(frozen=True)
class FinetuneParams:
    """Linear probe, then fine-tune: ``head`` trained on cached features, then jointly with the encoder."""

    head: MLPParams
    encoder_lr: float = field(metadata=positive)  # the encoder's (lower) learning rate
    finetune_epochs: int = field(metadata=non_negative)  # joint epochs after the head's


@dataclass(frozen=True)
class CatBoostParams:
    iterations: int = field(metadata=positive)
    depth: int = field(metadata=positive)
    learning_rate: float = field(metadata=positive)
    border_count: int = field(metadata=positive)
    early_stopping_rounds: int = field(metadata=positive)
    thread_count: int = field(metadata=positive)
    seed: int


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
    best_epoch: int
    epochs_run: int
    best_val_loss: float
    best_val_accuracy: float
    history: list[dict[str, float]]


def predict_logits(forward: Callable, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def fit(
    model: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    param_groups: list[dict],
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    p: MLPParams,
    log: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
) -> FitResult:
    """Minibatch AdamW on cross-entropy; after every epoch the validation loss drives
    ReduceLROnPlateau and early stopping, and the best weights are restored at the end (the starting
    weights count as epoch -1, so a warm-started model is never made worse on validation). ``log`` gets
    each epoch's index (from 0) and its losses and validation accuracy."""
    from tqdm.auto import trange

    (x_tr, y_tr), (x_va, y_va) = train, val
    generator = torch.Generator().manual_seed(p.seed)
    optimizer = torch.optim.AdamW(param_groups, weight_decay=p.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=0.5, patience=max(1, p.patience // 3)
    )
    loss_fn = nn.CrossEntropyLoss()
    model.eval()
    logits = predict_logits(forward, x_va, p.batch_size)
    start = (loss_fn(logits, y_va).item(), (logits.argmax(1) == y_va).float().mean().item())
    best = (*start, -1, copy.deepcopy(model.state_dict()))
    history: list[dict[str, float]] = []
    for epoch in trange(p.epochs, desc="epochs", disable=not progress):
        model.train()
        order = torch.randperm(len(x_tr), generator=generator)
        total = 0.0
        for i in range(0, len(order), p.batch_size):
            idx = order[i : i + p.batch_size]
            if (
                len(idx) < 2 and len(order) >= 2
            ):  # BatchNorm needs two rows; fold a lone row into the last batch
                continue
            loss = loss_fn(forward(x_tr[idx]), y_tr[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        logits = predict_logits(forward, x_va, p.batch_size)
        val_loss = loss_fn(logits, y_va).item()
        val_acc = (logits.argmax(1) == y_va).float().mean().item()
        scheduler.step(val_loss)
        row = {"train_loss": total / len(x_tr), "val_loss": val_loss, "val_accuracy": val_acc}
        history.append(row)
        if log is not None:
            log(epoch, row)
        if val_loss < best[0] - 1e-6:
            best = (val_loss, val_acc, epoch, copy.deepcopy(model.state_dict()))
        elif epoch - best[2] >= p.patience:
            break
    model.load_state_dict(best[3])
    model.eval()
    return FitResult(best[2], len(history), best[0], best[1], history)


Log = Callable[[int, dict[str, float]], None]


def train_head(
    features: dict[str, np.ndarray], y_tr: np.ndarray, y_va: np.ndarray, n_classes: int, p: MLPParams,
    log: Log | None = None, progress: bool = False,
) -> tuple[nn.Sequential, FitResult]:  # fmt: skip
    """An MLP head trained on cached ``features`` (``train``/``val``); early-stopped on validation."""
    torch.manual_seed(p.seed)
    model = mlp_head(features["train"], n_classes, p)
    f_tr, f_va = torch.from_numpy(features["train"]), torch.from_numpy(features["val"])
    y_tr_t, y_va_t = torch.from_numpy(y_tr), torch.from_numpy(y_va)
    groups = [{"params": model.parameters(), "lr": p.lr}]
    return model, fit(model, model, groups, (f_tr, y_tr_t), (f_va, y_va_t), p, log, progress)


def finetune_with_encoder(
    head: nn.Module, encoder: nn.Module, embed: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    inputs: tuple[np.ndarray, np.ndarray], y_tr: np.ndarray, y_va: np.ndarray, p: FinetuneParams,
    log: Log | None = None, progress: bool = False,
) -> tuple[Callable[[torch.Tensor], torch.Tensor], FitResult]:  # fmt: skip
    """The fine-tune half of LP-FT: a (warm-started) ``head`` and the ``encoder`` trained jointly on raw
    ``inputs`` (``train``, ``val``), the encoder at its lower learning rate; returns the forward
    function (raw inputs -> logits) and the fit's result."""
    model = nn.ModuleDict({"encoder": encoder, "head": head})

    def forward(x: torch.Tensor) -> torch.Tensor:
        return model["head"](embed(model["encoder"], x))

    groups = [
        {"params": model["head"].parameters(), "lr": p.head.lr},
        {"params": model["encoder"].parameters(), "lr": p.encoder_lr},
    ]
    x_tr, x_va = (torch.from_numpy(x) for x in inputs)
    joint = dataclasses.replace(p.head, epochs=p.finetune_epochs)
    y_tr_t, y_va_t = torch.from_numpy(y_tr), torch.from_numpy(y_va)
    return forward, fit(model, forward, groups, (x_tr, y_tr_t), (x_va, y_va_t), joint, log, progress)


def fit_catboost(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], p: CatBoostParams):
    """CatBoost with the validation split as its eval set (best iteration kept, early stopping)."""
    from catboost import CatBoostClassifier

    clf = CatBoostClassifier(
        iterations=p.iterations,
        depth=p.depth,
        learning_rate=p.learning_rate,
        border_count=p.border_count,
        thread_count=p.thread_count,
        random_seed=p.seed,
        loss_function="MultiClass",
        use_best_model=True,
        early_stopping_rounds=p.early_stopping_rounds,
        allow_writing_files=False,
        verbose=False,
    )
    clf.fit(train[0], train[1], eval_set=val)
    return clf
