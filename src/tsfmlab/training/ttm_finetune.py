"""Fine-tuning a TinyTimeMixer (family ``ttm``) on dysts *train* trajectories, full or LoRA.

The training windows are those of the Chronos fine-tuning stage (``AugmentedDystsWindows``: a channel of
a train trajectory, augmented on the fly, a random forecast start, missing-value injection), as raw
values instead of Chronos tokens. Validation is carved from train: the last ``val_windows`` windows of
``prediction_length`` of every train channel are held out (training sees each trajectory without them;
their contexts reach back into it) and scored, never augmented.

Loss (training and validation): ``standardized_mse``, the squared error of the forecast divided by the
variance of its window's observed context (the context's mean and std standardise target and forecast,
as TTM's own scaler standardises the input), averaged over observed future points. granite-tsfm's
built-in loss is the MSE in the data's units, which lets high-amplitude channels dominate a corpus whose
channels differ in scale by orders of magnitude, like dysts.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..models.ttm import TTMForecaster, past_tensors
from ..params import PositiveInt
from .dysts_finetune_data import AugmentationParams, AugmentedDystsWindows, DystsWindowParams

MIN_VARIANCE = 1e-5  # added to a context's variance (TTM's own std scaler's minimum_scale)


class TTMDataParams(DystsWindowParams):
    val_windows: PositiveInt  # last windows of every train channel held out


def window_item(past: np.ndarray, future: np.ndarray) -> dict[str, torch.Tensor]:
    """One training window as TTM inputs: values ``(T, 1)`` with 0 where missing, and observed masks."""
    past_values, past_mask = past_tensors(past[None])
    future_values, future_mask = past_tensors(future[None])
    return {
        "past_values": past_values[0],
        "past_observed_mask": past_mask[0],
        "future_values": future_values[0],
        "future_observed_mask": future_mask[0],
    }


class TTMDystsWindows(AugmentedDystsWindows):
    """``AugmentedDystsWindows`` yielding :func:`window_item` instead of Chronos tokens."""

    def __init__(
        self,
        trajectories: list[dict[str, Any]],
        augment: AugmentationParams,
        context_length: int,
        prediction_length: int,
        **kwargs,
    ):
        # the window sampler checks its tokenizer's lengths; TTM takes raw values, so a stand-in carries them
        spec = SimpleNamespace(
            config=SimpleNamespace(
                model_type="seq2seq", context_length=context_length, prediction_length=prediction_length
            )
        )
        super().__init__(
            trajectories,
            augment,
            spec,
            context_length=context_length,
            prediction_length=prediction_length,
            **kwargs,
        )

    def tokenize(self, past: np.ndarray, future: np.ndarray) -> dict[str, torch.Tensor]:
        return window_item(past, future)


@dataclass
class ValidationWindows:
    past: np.ndarray  # (N, context_length), NaN where missing or before the series start
    future: np.ndarray  # (N, prediction_length)

    def __len__(self) -> int:
        return len(self.past)


def split_validation(
    trajectories: list[dict[str, Any]],
    val_windows: int,
    context_length: int,
    prediction_length: int,
    min_past: int,
    section: str,
) -> tuple[list[dict[str, Any]], ValidationWindows]:
    """Trajectories without their last ``val_windows * prediction_length`` steps (for training), and the
    held-out windows of every channel (for validation)."""
    cut = val_windows * prediction_length
    train, pasts, futures = [], [], []
    for t in trajectories:
        target = t["target"]
        length = target.shape[-1]
        if length - cut < min_past + prediction_length:
            raise DataError(
                f"trajectory of {t['system']} has {length} steps: too few to hold out "
                f"{section}.val_windows={val_windows} window(s) of {prediction_length} and train on "
                f"min_past + prediction_length = {min_past + prediction_length} steps"
            )
        train.append({**t, "target": target[:, : length - cut]})
        for channel in target:
            for start in range(length - cut, length, prediction_length):
                past = np.full(context_length, np.nan, dtype=np.float32)
                observed = channel[max(0, start - context_length) : start]
                past[context_length - len(observed) :] = observed
                pasts.append(past)
                futures.append(channel[start : start + prediction_length])
    return train, ValidationWindows(np.stack(pasts), np.stack(futures).astype(np.float32))


def standardized_mse(
    forecast: torch.Tensor,
    future: torch.Tensor,
    future_mask: torch.Tensor,
    past: torch.Tensor,
    past_mask: torch.Tensor,
) -> torch.Tensor:
    """Mean squared error over observed future points, each window's divided by the variance of its
    observed context (plus ``MIN_VARIANCE``). All tensors ``(B, T)`` or ``(B, T, 1)``."""
    forecast, future, future_mask, past, past_mask = (
        x.reshape(x.shape[0], -1).float() for x in (forecast, future, future_mask, past, past_mask)
    )
    n_past = past_mask.sum(1, keepdim=True).clamp_min(1)
    loc = (past * past_mask).sum(1, keepdim=True) / n_past
    variance = (((past - loc) * past_mask) ** 2).sum(1, keepdim=True) / n_past
    errors = (forecast - future) ** 2 / (variance + MIN_VARIANCE) * future_mask
    return errors.sum() / future_mask.sum().clamp_min(1)


def _scored(val: ValidationWindows, forecast: torch.Tensor) -> float:
    past_values, past_mask = past_tensors(val.past)
    future_values, future_mask = past_tensors(val.future)
    return float(standardized_mse(forecast, future_values, future_mask, past_values, past_mask))


def validation_loss(model: torch.nn.Module, val: ValidationWindows, batch_size: int) -> float:
    """``standardized_mse`` of the model's forecasts of the validation windows (in eval mode; the
    model's mode is restored)."""
    training = model.training
    model.eval()
    forecaster = TTMForecaster(model)
    horizon = val.future.shape[1]
    try:
        with torch.inference_mode():
            forecast = torch.cat(
                [
                    forecaster.predict(val.past[i : i + batch_size], horizon)
                    for i in range(0, len(val), batch_size)
                ]
            )
    finally:
        model.train(training)
    return _scored(val, forecast)


def naive_validation_loss(val: ValidationWindows) -> float:
    """``standardized_mse`` of the last observed context value repeated (a reference point)."""
    last = np.array([p[np.isfinite(p)][-1] if np.isfinite(p).any() else 0.0 for p in val.past], np.float32)
    return _scored(val, torch.from_numpy(np.repeat(last[:, None], val.future.shape[1], axis=1)))


def ttm_trainer_class():
    """A ``transformers.Trainer`` whose loss is :func:`standardized_mse` of the TTM's forecast."""
    from transformers import Trainer

    class TTMTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = model(
                past_values=inputs["past_values"],
                past_observed_mask=inputs["past_observed_mask"],
                return_loss=False,
            )
            horizon = inputs["future_values"].shape[1]
            loss = standardized_mse(
                out.prediction_outputs[:, :horizon],
                inputs["future_values"],
                inputs["future_observed_mask"],
                inputs["past_values"],
                inputs["past_observed_mask"],
            )
            return (loss, out) if return_outputs else loss

    return TTMTrainer
