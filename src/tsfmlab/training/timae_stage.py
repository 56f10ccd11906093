"""The params of the Ti-MAE stages and what they share: the grid, the model config of a dataset, the data.

``timae`` is the grid dvc.yaml expands (``pretrain_timae@<backbone>``, ``finetune_timae@<backbone>-<pooling>``);
each backbone entry is a full architecture (every field of ``TiMAEConfig`` but the three that follow from
the data and the pretraining params: ``input_dim``, ``seq_len``, ``mask_ratio``). Every key is required in
params.yaml, so nothing a stage depends on hides in a code default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..data.ucr import load_inputs, load_split
from ..errors import DataError, ParamError
from ..models.timae import POOLINGS, TiMAEConfig, timae_config
from ..params import check, load_params, non_negative, open_unit, parse_section, positive, subset

#: TiMAEConfig fields set by the data and by pretrain_timae, not by the backbone entry
DERIVED_FIELDS = ("input_dim", "seq_len", "mask_ratio")
below_one = check(lambda v: 0.0 <= v < 1.0, "in [0, 1)")
#: Lightning precisions: fp32 (CPU), bf16/fp16 autocast (GPUs; bf16-mixed also on CPU), bf16 weights
Precision = Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true"]


def architecture_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(TiMAEConfig) if f.name not in DERIVED_FIELDS]


@dataclass(frozen=True)
class TiMAEGrid:
    datasets: list[str]  # prepared by prepare_ucr (each must be in classification.datasets)
    backbones: dict[str, dict[str, Any]]  # name: architecture
    poolings: list[Literal["cls", "avg"]]

    def validate(self, section: str) -> None:
        for key in ("datasets", "poolings"):
            values = getattr(self, key)
            if not values or len(set(values)) != len(values):
                raise ParamError(
                    f"param {section}.{key} must be a non-empty list without repeats, got {values}"
                )
        if not self.backbones:
            raise ParamError(f"param {section}.backbones must name at least one architecture")
        for name, arch in self.backbones.items():
            key = f"{section}.backbones.{name}"
            if not isinstance(arch, dict):
                raise ParamError(f"param {key} must be a mapping of architecture fields, got {arch!r}")
            missing = [f for f in architecture_fields() if f not in arch]
            derived = [f for f in DERIVED_FIELDS if f in arch]
            if missing or derived:
                raise ParamError(
                    f"param {key}: "
                    + (f"missing {', '.join(missing)}" if missing else "")
                    + ("; " if missing and derived else "")
                    + (f"{', '.join(derived)} follow from the data and pretrain_timae" if derived else "")
                )
            model_config(self, name, input_dim=1, seq_len=8, mask_ratio=0.5)  # type and range checks

    @staticmethod
    def check_dataset(dataset: str, prepared: list[str]) -> None:
        if dataset not in prepared:
            raise ParamError(
                f"{dataset!r} is not prepared by prepare_ucr; add it to classification.datasets "
                f"({', '.join(prepared)})"
            )


def prepared_datasets(path: str = "params.yaml") -> list[str]:
    """The datasets prepare_ucr prepares (``classification.datasets``)."""
    return list(load_params(path).get("classification", {}).get("datasets", []))


def grid(path: str = "params.yaml") -> TiMAEGrid:
    g = parse_section(TiMAEGrid, load_params(path).get("timae"), "timae")
    for d in g.datasets:
        g.check_dataset(d, prepared_datasets(path))
    return g


def model_config(g: TiMAEGrid, backbone: str, input_dim: int, seq_len: int, mask_ratio: float) -> TiMAEConfig:
    if backbone not in g.backbones:
        raise ParamError(f"{backbone!r} is not in timae.backbones ({', '.join(g.backbones)})")
    values = {**g.backbones[backbone], "input_dim": input_dim, "seq_len": seq_len, "mask_ratio": mask_ratio}
    return timae_config(values, f"timae.backbones.{backbone}")


@dataclass(frozen=True)
class PretrainStageParams:
    mask_ratio: float = field(metadata=open_unit)
    seq_len: int | None = field(metadata=positive)  # null: the series length; shorter needs crop: true
    crop: bool  # train on random windows of seq_len (evaluation: the centre window)
    normalize: bool  # z-normalise each series and channel
    unlabeled_pool: list[str]  # more prepared datasets whose train + val series join pretraining
    lr: float = field(metadata=positive)
    weight_decay: float = field(metadata=non_negative)
    warmup_ratio: float = field(metadata=below_one)
    batch_size: int = field(metadata=positive)
    max_epochs: int = field(metadata=positive)
    patience: int | None = field(metadata=positive)  # epochs without a lower validation loss
    val_mask_seed: int
    precision: Precision  # Lightning precision: 32-true (CPU), bf16-mixed (GPU)
    gradient_checkpointing: bool  # recompute backbone activations in the backward pass
    distributed: Literal["ddp", "fsdp"]  # under torchrun: DDP or FSDP2 (Lightning strategy)
    n_plots: int = field(metadata=non_negative)
    seed: int

    def train(self):  # -> PretrainParams (Lightning is imported only by the stages that train)
        from .timae_lightning import PretrainParams

        return subset(PretrainParams, self)


@dataclass(frozen=True)
class FinetuneStageParams:
    seq_len: int | None = field(metadata=positive)  # null: as pretraining (the series length)
    crop: bool
    normalize: bool  # must match pretraining's
    lr: float = field(metadata=positive)  # the head's
    encoder_lr: float = field(metadata=positive)
    weight_decay: float = field(metadata=non_negative)
    warmup_ratio: float = field(metadata=below_one)
    label_smoothing: float = field(metadata=below_one)
    freeze_encoder: bool
    head_hidden: list[int] = field(metadata=positive)
    head_dropout: float = field(metadata=below_one)
    batch_size: int = field(metadata=positive)
    max_epochs: int = field(metadata=positive)
    patience: int | None = field(metadata=positive)
    monitor: Literal["val/loss", "val/acc"]
    precision: Precision
    gradient_checkpointing: bool
    distributed: Literal["ddp", "fsdp"]
    seed: int

    def train(self, pooling: str):  # -> FinetuneParams
        from .timae_lightning import FinetuneParams

        if pooling not in POOLINGS:
            raise ParamError(f"pooling {pooling!r} is not one of {POOLINGS}")
        return FinetuneParams(
            **{
                f.name: getattr(self, f.name)
                for f in dataclasses.fields(FinetuneParams)
                if f.name != "pooling"
            },
            pooling=pooling,
        )


def rank_label() -> str:
    """`` (rank r of n)`` under torchrun with several processes, else empty (for the stages' prints)."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    return f" (rank {os.environ.get('RANK', '0')} of {world})" if world > 1 else ""


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


def pretraining_series(dataset: str, pool: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) inputs for pretraining: the dataset's train split (+ the train and val splits of the
    ``pool`` datasets) and its val split. TEST series never enter."""
    path = f"data/ucr/{dataset}.safetensors"
    train, val = load_inputs(path, "train"), load_inputs(path, "val")
    parts = [train]
    for other in pool:
        if other == dataset:
            continue
        p = f"data/ucr/{other}.safetensors"
        x = np.concatenate([load_inputs(p, "train"), load_inputs(p, "val")])
        if x.shape[1:] != train.shape[1:]:
            raise DataError(
                f"pretrain_timae.unlabeled_pool: {other} series are {x.shape[1:]} (channels, length), "
                f"{dataset}'s are {train.shape[1:]}"
            )
        parts.append(x)
    return np.concatenate(parts), val


def labelled(dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    return load_split(f"data/ucr/{dataset}.safetensors", split)
