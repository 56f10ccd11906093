"""Chronos encoders as feature extractors: one module for Chronos-T5, Chronos-Bolt and Chronos-2.

``ChronosEncoder`` maps univariate contexts ``(batch, time)`` (left-padded with NaN) to the encoder's
hidden states, a mask of the positions that hold observed context, and the position of the summary
token (Chronos-T5's EOS, Bolt's and Chronos-2's [REG]) when the model has one. ``pool`` turns these into
one vector per series; ``embed_series`` does it for whole multichannel, possibly long, series.
It is an ``nn.Module`` so a classifier can fine-tune the encoder it was built from.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import nn

from ..errors import ParamError
from .loading import inner_model, pipeline_family

Pooling = Literal["mean", "mean_no_eos", "last"]
ChannelReduce = Literal["concat", "mean"]
LongSeries = Literal["truncate", "windows"]
POOLINGS = ("mean", "mean_no_eos", "last")


class ChronosEncoder(nn.Module):
    """``dropout=False`` (the default) keeps the encoder's dropout off even in training mode: fine-tuned
    on a few dozen series, the head would otherwise learn from features whose statistics differ from
    the ones it is evaluated on."""

    def __init__(self, pipeline, dropout: bool = False):
        super().__init__()
        self.dropout = dropout
        self.family = pipeline_family(pipeline)
        model = inner_model(pipeline)
        if self.family == "chronos-t5":
            self.tokenizer = pipeline.tokenizer
            self.encoder = model.get_encoder()
            cfg = pipeline.model.config
            self.context_length = cfg.context_length
            self.has_summary = bool(cfg.use_eos_token)
            self.d_model = model.config.d_model
        else:
            self.model = model  # Bolt and Chronos-2 encode through the whole model's encode()
            cfg = model.chronos_config
            cfg = cfg if isinstance(cfg, dict) else vars(cfg)
            self.context_length = int(cfg["context_length"])
            self.patch_size = int(cfg["input_patch_size"])
            self.has_summary = bool(cfg.get("use_reg_token", False))
            self.d_model = model.config.d_model

    def train(self, mode: bool = True) -> ChronosEncoder:
        return super().train(mode and self.dropout)

    def forward(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int | None]:
        """``(hidden (B, T, d), context_mask (B, T) bool, summary position or None)``."""
        context = context[..., -self.context_length :].float()
        device = next(self.parameters()).device
        if self.family == "chronos-t5":
            ids, attn, _ = self.tokenizer.context_input_transform(context.cpu())
            ids, attn = ids.to(device), attn.to(device)
            hidden = self.encoder(input_ids=ids, attention_mask=attn.long()).last_hidden_state
            mask = attn.bool().clone()
            if self.has_summary:
                mask[:, -1] = False
            return hidden, mask, (hidden.shape[1] - 1 if self.has_summary else None)
        context = context.to(device)
        patch_mask = self._patch_mask(context)
        n_patches = patch_mask.shape[1]
        if self.family == "chronos-bolt":
            hidden = self.model.encode(context=context)[0]
        else:  # chronos-2: [context patches, REG?, one future patch]
            group_ids = torch.arange(context.shape[0], device=device)
            hidden = self.model.encode(context=context, group_ids=group_ids)[0][0]
        mask = torch.zeros(hidden.shape[:2], dtype=torch.bool, device=device)
        mask[:, :n_patches] = patch_mask
        return hidden, mask, (n_patches if self.has_summary else None)

    def _patch_mask(self, context: torch.Tensor) -> torch.Tensor:
        """Which patches hold at least one observation (patches are aligned to the series' end)."""
        observed = torch.isfinite(context)
        pad = (-context.shape[-1]) % self.patch_size
        observed = nn.functional.pad(observed, (pad, 0), value=False)
        return observed.view(context.shape[0], -1, self.patch_size).any(-1)


def pool(hidden: torch.Tensor, mask: torch.Tensor, summary: int | None, pooling: Pooling) -> torch.Tensor:
    """One vector per row: the mean over observed context positions (``mean_no_eos``), that plus the
    summary token (``mean``), or the summary token (``last``; the last position when there is none)."""
    if pooling not in POOLINGS:
        raise ParamError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if pooling == "last":
        return hidden[:, summary if summary is not None else -1]
    weights = mask.to(hidden.dtype)
    if pooling == "mean" and summary is not None:
        weights = weights.clone()
        weights[:, summary] = 1.0
    weights = weights.unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def windows_of(x: torch.Tensor, context_length: int, long_series: LongSeries) -> list[torch.Tensor]:
    """The contexts a series ``(..., time)`` is embedded from: its last ``context_length`` points, or
    (``windows``) consecutive windows ending at its end, the first one NaN-padded on the left."""
    if x.shape[-1] <= context_length or long_series == "truncate":
        return [x[..., -context_length:]]
    n = math.ceil(x.shape[-1] / context_length)
    padded = nn.functional.pad(x, (n * context_length - x.shape[-1], 0), value=float("nan"))
    return [padded[..., i * context_length : (i + 1) * context_length] for i in range(n)]


def embed_batch(
    encoder: ChronosEncoder,
    x: torch.Tensor,
    pooling: Pooling,
    channels: ChannelReduce,
    long_series: LongSeries,
) -> torch.Tensor:
    """``x`` (batch, channels, time) -> (batch, d), or (batch, channels * d) for ``concat``; a long series
    gives the mean of its windows' features. Differentiable (the classifier fine-tunes through it)."""
    b, c, _ = x.shape
    out = 0.0
    contexts = windows_of(x, encoder.context_length, long_series)
    for w in contexts:
        hidden, mask, summary = encoder(w.reshape(b * c, -1))
        z = pool(hidden, mask, summary, pooling).float().view(b, c, -1)
        out = out + (z.mean(1) if channels == "mean" else z.reshape(b, -1))
    return out / len(contexts)


@torch.inference_mode()
def embed_series(
    encoder: ChronosEncoder,
    x: np.ndarray,
    pooling: Pooling,
    channels: ChannelReduce,
    long_series: LongSeries,
    batch_size: int,
    progress: bool = False,
) -> np.ndarray:
    """Float32 features of ``x`` (cases, channels, time), ``batch_size`` cases at a time."""
    from tqdm.auto import tqdm

    encoder.eval()
    out = []
    for i in tqdm(range(0, len(x), batch_size), desc="embed", disable=not progress):
        batch = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size], dtype=np.float32))
        out.append(embed_batch(encoder, batch, pooling, channels, long_series).cpu().numpy())
    return np.concatenate(out).astype(np.float32, copy=False)
