"""Pretraining (and plain fine-tuning) of a Chronos-T5 with the Chronos data recipe and the HF Trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import model_validator

from ..models.chronos_models import DecoderInit, EmbeddingInit, PositionInit
from ..params import NonNegativeFloat, Params, PositiveInt, Unit, Weights, same_length
from .chronos_data import ChronosWindowDataset, open_corpora
from .hf_trainer import TrainParams, fit
from .token_loss import TargetParams, target_trainer


class ModelParams(Params):
    family: Literal["chronos-t5"]
    source: str  # "scratch", a hub id (amazon/chronos-t5-small) or a local model directory
    size: str  # preset for scratch: nano, tiny, mini, small, base
    tie_embeddings: bool
    embedding_init: EmbeddingInit  # smooth: value-token embeddings vary smoothly with the bin
    position_init: PositionInit  # recency: relative-position biases start as ALiBi slopes
    decoder_init: DecoderInit  # last_value: the model starts as last-value naive
    overrides: dict[str, Any] | None  # T5 config fields over the preset


class DataParams(Params):
    training_data_paths: list[str]
    probability: Weights[list[NonNegativeFloat]]  # one per path
    min_past: PositiveInt
    max_missing_prop: Unit
    drop_prob: Unit  # random NaN injection into the context
    shuffle_buffer_length: int

    @model_validator(mode="after")
    def _one_probability_per_path(self) -> Self:
        same_length(self, "training_data_paths", "probability")
        return self


def window_dataset(data: DataParams, tokenizer, context_length: int, prediction_length: int, seed: int):
    """The Chronos training stream over the corpora (read a window at a time, checked before any training)."""
    corpora = open_corpora(data.training_data_paths, data.min_past + prediction_length)
    return ChronosWindowDataset(
        corpora,
        data.probability,
        tokenizer,
        context_length=context_length,
        prediction_length=prediction_length,
        min_past=data.min_past,
        max_missing_prop=data.max_missing_prop,
        drop_prob=data.drop_prob,
        mode="training",
        shuffle_buffer_length=data.shuffle_buffer_length,
        seed=seed,
    )


def pretrain(
    pipeline,
    data: DataParams,
    train: TrainParams,
    stage: str,
    run_params: Any,
    live_dir: Path,
    target: TargetParams,
) -> dict:
    """Train ``pipeline``'s T5 in place on the Chronos window stream; returns training statistics.

    ``target``: the cross-entropy's target over the bins (:mod:`tsfmlab.training.token_loss`).
    The corpora are the run's inputs: an interrupted run resumes only on corpora with the same contents."""
    config = pipeline.model.config
    dataset = window_dataset(
        data, pipeline.tokenizer, config.context_length, config.prediction_length, train.seed
    )
    model = pipeline.model.model
    model.train()
    trainer_class = target_trainer(target, config.n_tokens, config.n_special_tokens)
    _, stats = fit(
        model, dataset, train, stage, run_params, live_dir, trainer_class, inputs=data.training_data_paths
    )
    model.eval()
    return stats
