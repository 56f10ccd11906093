"""Block-diagonal group attention for Chronos-2 batches made of equal-size groups.

Chronos-2's encoder (chronos-forecasting 2.3, ``chronos2/model.py``) lets the rows of one *group* (a
target and its covariates) attend to each other at every patch position: ``GroupSelfAttention`` puts
the batch axis in the attention's sequence axis and masks it with a dense ``(rows, rows)`` group mask
per patch. A batch of ``n`` windows of ``r`` rows thus costs ``(n r)^2`` attention scores per patch,
although only ``n r^2`` of them are unmasked, and evaluating more windows per pass gets slower per
window instead of faster.

When every group is a contiguous block of the same size ``r`` (what ``Chronos2Dataset`` builds for
windows sharing one covariate schema), the same attention is ``n`` independent ``r x r`` problems:
:func:`block_diagonal_groups` reshapes ``(n r, time, d)`` to ``(time n, r, d)`` and masks only the
time-masked (missing) rows of each block. The masked-out scores of the dense form get weight exactly
zero after the softmax, so the two agree to float rounding (tested to 1e-5 relative, and the rolling
benchmark checks its forecasts against the library's own ``predict_quantiles``).

Batches that are not in that layout (groups of different sizes, ids not contiguous) fall back to the
library's dense mask, batch by batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from einops import rearrange


def block_size(group_ids: torch.Tensor) -> int | None:
    """``r`` if ``group_ids`` is contiguous blocks of ``r`` equal ids, each id used by one block only."""
    ids, counts = torch.unique_consecutive(group_ids, return_counts=True)
    if len(ids) == 0 or not bool((counts == counts[0]).all()):
        return None
    if len(torch.unique(ids)) != len(ids):
        return None
    return int(counts[0])


def _block_mask(attention_mask: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive key mask ``(time * n, 1, 1, r)``: a row's missing patches are not attended to."""
    if torch.is_floating_point(attention_mask):
        dtype = attention_mask.dtype  # as the library does, so mixed precision does not overflow
    keep = rearrange(attention_mask.to(dtype), "(n r) t -> (t n) 1 1 r", r=size)
    return (1.0 - keep) * torch.finfo(dtype).min


class _Layout:
    """The group layout of the batch being encoded (set when the encoder builds its masks)."""

    size: int | None = None


def _make_mask_builder(encoder, layout: _Layout):
    dense = encoder._construct_and_invert_group_time_mask

    def build(group_ids: torch.Tensor, attention_mask: torch.Tensor, floating_type: torch.dtype):
        layout.size = block_size(group_ids)
        if layout.size is None:
            return dense(group_ids, attention_mask, floating_type)
        return _block_mask(attention_mask, layout.size, floating_type)

    return build


def _make_group_forward(module, layout: _Layout):
    dense = module.forward

    def forward(hidden_states: torch.Tensor, attention_mask: torch.Tensor, output_attentions: bool = False):
        if layout.size is None or output_attentions:
            return dense(hidden_states, attention_mask, output_attentions)
        n_blocks = hidden_states.shape[0] // layout.size
        blocks = rearrange(hidden_states, "(n r) t d -> (t n) r d", r=layout.size)
        attended = module.self_attention(module.layer_norm(blocks), mask=attention_mask)
        blocks = blocks + module.dropout(attended[0])
        out = rearrange(blocks, "(t n) r d -> (n r) t d", n=n_blocks)
        return type(attended)(hidden_states=out, attn_weights=None)

    return forward


@contextlib.contextmanager
def block_diagonal_groups(model) -> Iterator[None]:
    """Within the block, ``model`` (a ``Chronos2Model``) computes group attention per block of rows.

    Patches the encoder's mask builder and each ``GroupSelfAttention.forward`` on this instance only,
    and restores them on exit. ``output_attentions=True`` keeps the library's dense path."""
    from chronos.chronos2.layers import GroupSelfAttention

    encoder = model.encoder
    layout = _Layout()
    groups = [m for m in encoder.modules() if isinstance(m, GroupSelfAttention)]
    if not groups or "_construct_and_invert_group_time_mask" in vars(encoder):
        raise TypeError("block_diagonal_groups: not a Chronos-2 encoder, or already patched")
    encoder._construct_and_invert_group_time_mask = _make_mask_builder(encoder, layout)
    for module in groups:
        module.forward = _make_group_forward(module, layout)
    try:
        yield
    finally:
        del encoder._construct_and_invert_group_time_mask
        for module in groups:
            del module.forward


__all__ = ["block_diagonal_groups", "block_size"]
