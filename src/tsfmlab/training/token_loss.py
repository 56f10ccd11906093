"""The Chronos-T5 training target over value tokens: one-hot (the Chronos recipe) or HL-Gauss.

Chronos quantises a scaled value into one of ``n_tokens - n_special`` ordered bins and trains with the
cross-entropy of the true bin, so the model learns nothing from a near miss: bin 500 and bin 900 are
equally wrong for a target in bin 501. HL-Gauss (Imani & White 2018; Farebrother et al. 2024, "Stop
Regressing") replaces the one-hot target by the mass that a Gaussian centred on the true bin, with a
standard deviation of ``sigma`` bins, puts in each bin (renormalised over the value bins), so
neighbouring bins share the signal. Special-token labels (EOS) keep their one-hot target and ignored
positions (label -100) stay ignored. ``sigma`` → 0 recovers the one-hot cross-entropy.

``first_step_weight`` weighs the first forecast step's loss. Every later step can copy from the
decoder's own previous token, which a small model learns within a few hundred steps; the first step
must be read from the encoder (where the context ends), and gets 1/prediction_length of the gradient.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from ..params import Params, PositiveFloat
from .chronos_data import IGNORE_INDEX


class TargetParams(Params):
    """How a value token's training target is spread over the bins (section ``<stage>.target``)."""

    kind: Literal["onehot", "hl_gauss"]  # onehot: the Chronos recipe
    sigma: PositiveFloat  # hl_gauss: the Gaussian's standard deviation, in bins
    first_step_weight: PositiveFloat  # the first forecast step's loss weight (Chronos: 1)


def hl_gauss_matrix(n_tokens: int, n_special: int, sigma: float) -> torch.Tensor:
    """(n_tokens, n_tokens) float32: row ``t`` is the target distribution for label token ``t``.

    Value tokens ``n_special .. n_tokens-1`` get the Gaussian mass of each value bin (unit-width bins
    centred on the token ids); special tokens get a one-hot row."""
    ids = torch.arange(n_tokens, dtype=torch.float64)
    values = ids[n_special:]
    # mass in [j - 1/2, j + 1/2] of N(t, sigma^2), via the normal CDF
    upper = (values[None, :] + 0.5 - values[:, None]) / (sigma * math.sqrt(2.0))
    lower = (values[None, :] - 0.5 - values[:, None]) / (sigma * math.sqrt(2.0))
    mass = 0.5 * (torch.erf(upper) - torch.erf(lower))
    mass = mass / mass.sum(dim=1, keepdim=True)
    out = torch.eye(n_tokens, dtype=torch.float64)
    out[n_special:, n_special:] = mass
    return out.float()


def soft_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor, first_step_weight: float = 1.0
) -> torch.Tensor:
    """Weighted mean over non-ignored positions of ``-sum_k targets[label, k] * log_softmax(logits)_k``;
    the first forecast step (position 0) weighs ``first_step_weight``, every other step 1."""
    mask = labels != IGNORE_INDEX
    log_p = F.log_softmax(logits[mask].float(), dim=-1)
    soft = targets.to(log_p.device)[labels[mask]]
    weights = torch.ones(labels.shape, device=log_p.device)
    weights[:, 0] = first_step_weight
    weights = weights[mask]
    return -((soft * log_p).sum(-1) * weights).sum() / weights.sum()


def target_matrix(target: TargetParams, n_tokens: int, n_special: int) -> torch.Tensor | None:
    """The rows :func:`soft_cross_entropy` spreads each label over (one-hot rows for ``onehot``), or None
    for the Chronos recipe itself (onehot, every step weighing 1: the model's own cross-entropy)."""
    if target.kind == "onehot" and target.first_step_weight == 1.0:
        return None
    if target.kind == "hl_gauss":
        return hl_gauss_matrix(n_tokens, n_special, target.sigma)
    return torch.eye(n_tokens)


def target_trainer(target: TargetParams, n_tokens: int, n_special: int):
    """A ``transformers.Trainer`` subclass whose loss is :func:`soft_cross_entropy` with the target's
    matrix (:func:`target_matrix`), or None for the Chronos recipe (the model's own cross-entropy)."""
    matrix = target_matrix(target, n_tokens, n_special)
    if matrix is None:
        return None
    from transformers import Trainer

    class TokenTargetTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = model(**inputs)  # labels give the decoder its (shifted) inputs; the loss is ours
            loss = soft_cross_entropy(out.logits, inputs["labels"], matrix, target.first_step_weight)
            return (loss, out) if return_outputs else loss

    return TokenTargetTrainer
