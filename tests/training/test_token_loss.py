"""The HL-Gauss target over value bins and its cross-entropy."""

import pytest
import torch
import torch.nn.functional as F

from tsfmlab.training.token_loss import (
    IGNORE_INDEX,
    TargetParams,
    hl_gauss_matrix,
    soft_cross_entropy,
    target_trainer,
)


def test_each_row_is_a_gaussian_over_value_bins_and_special_rows_are_one_hot():
    m = hl_gauss_matrix(n_tokens=40, n_special=2, sigma=3.0)
    torch.testing.assert_close(m.sum(1), torch.ones(40))
    torch.testing.assert_close(m[:2], torch.eye(40)[:2])  # PAD, EOS
    assert m[20].argmax() == 20 and m[20, 19] == pytest.approx(float(m[20, 21]))  # symmetric about the label
    assert m[20, :2].sum() == 0  # no mass on special tokens
    # the mass between bin edges of N(20, 3^2): P(|Z| < 0.5 / 3)
    assert float(m[20, 20]) == pytest.approx(0.13242, abs=2e-4)
    assert m[2, 2] > m[20, 20]  # at the edge, the mass outside the value bins is renormalised onto them


def test_a_narrow_gaussian_is_the_one_hot_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 30)
    labels = torch.tensor([[3, 7, 29, 1, IGNORE_INDEX], [2, 2, 15, IGNORE_INDEX, IGNORE_INDEX]])
    expected = F.cross_entropy(logits.reshape(-1, 30), labels.reshape(-1), ignore_index=IGNORE_INDEX)
    got = soft_cross_entropy(logits, labels, hl_gauss_matrix(30, 2, sigma=0.05))
    torch.testing.assert_close(got, expected)
    wide = soft_cross_entropy(logits, labels, hl_gauss_matrix(30, 2, sigma=3.0))
    assert not torch.isclose(wide, expected)


def test_onehot_keeps_the_models_own_loss():
    assert target_trainer(TargetParams(kind="onehot", sigma=3.0, first_step_weight=1.0), 30, 2) is None
    trainer = target_trainer(TargetParams(kind="hl_gauss", sigma=3.0, first_step_weight=1.0), 30, 2)
    assert trainer.__name__ == "TokenTargetTrainer"


def test_the_first_step_weighs_first_step_weight():
    torch.manual_seed(1)
    logits = torch.randn(3, 4, 12)
    labels = torch.tensor([[5, 6, 7, 8], [IGNORE_INDEX, 3, 4, 5], [9, 9, IGNORE_INDEX, 1]])
    eye = torch.eye(12)
    per = F.cross_entropy(logits.reshape(-1, 12), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none")
    per = per.reshape(3, 4)
    mask = labels != IGNORE_INDEX
    weights = torch.where(torch.arange(4) == 0, 5.0, 1.0).expand(3, 4)[mask]
    expected = (per[mask] * weights).sum() / weights.sum()
    torch.testing.assert_close(soft_cross_entropy(logits, labels, eye, first_step_weight=5.0), expected)
    assert (
        target_trainer(TargetParams(kind="onehot", sigma=3.0, first_step_weight=5.0), 12, 2).__name__
        == "TokenTargetTrainer"
    )
