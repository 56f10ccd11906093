"""Block-diagonal group attention gives the library's dense group attention's outputs."""

from __future__ import annotations

import pytest
import torch

from tsfmlab.models.chronos2_groups import block_diagonal_groups, block_size


def tiny_model(seed: int = 0):
    from chronos.chronos2 import Chronos2CoreConfig, Chronos2Model

    config = Chronos2CoreConfig(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, dropout_rate=0.0)
    config.chronos_config = {
        "context_length": 128,
        "input_patch_size": 16,
        "input_patch_stride": 16,
        "output_patch_size": 16,
        "max_output_patches": 2,
        "quantiles": [0.1, 0.5, 0.9],
        "use_reg_token": True,
        "use_arcsinh": True,
    }
    torch.manual_seed(seed)
    return Chronos2Model(config).eval()


def test_block_size():
    assert block_size(torch.tensor([0, 0, 1, 1, 2, 2])) == 2
    assert block_size(torch.tensor([5, 5, 5, 3, 3, 3])) == 3  # ids need not be sorted
    assert block_size(torch.tensor([0, 1, 2])) == 1
    assert block_size(torch.tensor([0, 0, 1, 1, 1])) is None  # unequal groups
    assert block_size(torch.tensor([0, 0, 1, 1, 0, 0])) is None  # group 0 split in two blocks
    assert block_size(torch.tensor([0, 1, 0, 1])) is None  # interleaved (the long-horizon layout)


def batch(n_groups: int, rows: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    context = torch.randn(n_groups * rows, 128, generator=g).cumsum(-1)
    context[3, :40] = torch.nan  # a short series: its first patches are masked in time
    context[rows, 70:75] = torch.nan  # and a few missing values inside one
    future = torch.full((n_groups * rows, 32), torch.nan)
    future[rows - 1 :: rows] = torch.randn(n_groups, 32, generator=g)  # last row: a known covariate
    return context, future


@pytest.mark.parametrize("rows", [1, 3])
def test_block_diagonal_equals_dense_group_attention(rows):
    model = tiny_model()
    context, future = batch(n_groups=7, rows=rows)
    group_ids = torch.arange(7).repeat_interleave(rows)
    with torch.no_grad():
        dense = model(context=context, group_ids=group_ids, future_covariates=future, num_output_patches=2)
        with block_diagonal_groups(model):
            blocks = model(
                context=context, group_ids=group_ids, future_covariates=future, num_output_patches=2
            )
    scale = dense.quantile_preds.abs().max()
    torch.testing.assert_close(blocks.quantile_preds, dense.quantile_preds, rtol=1e-5, atol=1e-6 * scale)


def test_groups_really_attend_to_each_other():
    """Positive control: changing one row's covariate changes its own group's target forecast only."""
    model = tiny_model()
    context, future = batch(n_groups=4, rows=3)
    group_ids = torch.arange(4).repeat_interleave(3)
    changed = context.clone()
    changed[4, 64:] += 5.0  # a level shift in group 1's second row (a constant would be normalised away)
    with torch.no_grad(), block_diagonal_groups(model):
        a = model(context=context, group_ids=group_ids, num_output_patches=1).quantile_preds
        b = model(context=changed, group_ids=group_ids, num_output_patches=1).quantile_preds
    moved = (a - b).abs().amax(dim=(1, 2)) > 0
    assert moved.tolist() == [False, False, False, True, True, True, False, False, False, False, False, False]


def test_other_layouts_fall_back_to_the_dense_mask_and_patches_are_removed():
    model = tiny_model()
    context, _ = batch(n_groups=2, rows=3)
    uneven = torch.tensor([0, 0, 1, 1, 1, 1])
    with torch.no_grad():
        dense = model(context=context, group_ids=uneven, num_output_patches=1).quantile_preds
        with block_diagonal_groups(model):
            fallback = model(context=context, group_ids=uneven, num_output_patches=1).quantile_preds
            with pytest.raises(TypeError, match="already patched"):
                with block_diagonal_groups(model):
                    pass
    torch.testing.assert_close(fallback, dense)
    assert "_construct_and_invert_group_time_mask" not in vars(model.encoder)
    assert all("forward" not in vars(m) for m in model.modules())
