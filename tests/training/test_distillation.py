import copy

import pytest
import torch

from tests.conftest import tokenizer_params
from tsfmlab.errors import ParamError
from tsfmlab.models.chronos_models import chronos_config, new_chronos_t5
from tsfmlab.models.loading import inner_model
from tsfmlab.params import parse_section
from tsfmlab.training.distillation import TERMS, DistillationModel, LossWeights, kl_term, tokenizer_mismatch

TOK = tokenizer_params()
SMALL = {"d_model": 32, "d_ff": 64, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 2, "d_kv": 16}


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(2, 64, (3, 17), generator=g)
    labels = torch.randint(2, 64, (3, 5), generator=g)
    labels[0, -2:] = -100
    mask = torch.ones_like(input_ids, dtype=torch.bool)
    mask[1, :4] = False
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def models(student_overrides=SMALL):
    teacher = inner_model(new_chronos_t5("nano", TOK, seed=1))
    student = inner_model(new_chronos_t5("nano", TOK, overrides=student_overrides, seed=2))
    return student, teacher


def test_identical_models_at_t1_have_zero_kl_and_hidden_losses():
    _, teacher = models()
    student = copy.deepcopy(teacher)
    model = DistillationModel(
        student, teacher, LossWeights(task=0.5, distill=0.5, encoder=1.0, decoder=1.0, temperature=1.0)
    ).eval()
    out = model(**batch())
    assert out["distill_loss"].abs() < 1e-6
    assert out["encoder_loss"].abs() < 1e-10 and out["decoder_loss"].abs() < 1e-10
    assert isinstance(model.encoder_projection, torch.nn.Identity)


def test_total_is_the_weighted_sum_and_zero_weights_remove_terms():
    student, teacher = models()
    w = LossWeights(task=0.5, distill=0.3, encoder=0.2, decoder=0.1, temperature=2.0)
    model = DistillationModel(student, teacher, w).eval()
    out = model(**batch())
    expected = (
        0.5 * out["task_loss"]
        + 0.3 * out["distill_loss"]
        + 0.2 * out["encoder_loss"]
        + 0.1 * out["decoder_loss"]
    )
    assert torch.allclose(out["loss"], expected)
    assert all(out[k] > 0 for k in TERMS)
    only_task = DistillationModel(
        student, teacher, LossWeights(task=1.0, distill=0.0, encoder=0.0, decoder=0.0, temperature=2.0)
    ).eval()
    o = only_task(**batch())
    assert torch.allclose(o["loss"], o["task_loss"]) and all(o[k] == 0 for k in TERMS[1:])


def test_kl_ignores_padded_label_positions():
    s, t = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[0, 3:] = False
    t2 = t.clone()
    t2[0, 3:] = torch.randn(2, 8) * 10  # only where the mask is off
    assert torch.allclose(kl_term(s, t, mask, 2.0), kl_term(s, t2, mask, 2.0))


def test_teacher_frozen_projections_trained():
    student, teacher = models()
    model = DistillationModel(
        student, teacher, LossWeights(task=0.5, distill=0.5, encoder=0.1, decoder=0.1, temperature=2.0)
    )
    model.train()
    model(**batch())["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters()) and not teacher.training
    assert (
        model.encoder_projection.weight.grad is not None and model.decoder_projection.weight.grad is not None
    )
    assert model.encoder_projection.weight.shape == (64, 32)
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert names == {"student", "encoder_projection", "decoder_projection"}  # the teacher is not wrapped


def test_bad_weights_and_tokenizer_mismatch():
    weights = {"task": 1, "distill": 1, "encoder": 0, "decoder": 0}
    with pytest.raises(ParamError, match=r"distill\.loss\.temperature must be > 0"):
        parse_section(LossWeights, {**weights, "temperature": 0.0}, "distill.loss")
    with pytest.raises(ParamError, match=r"distill\.loss\.encoder must be >= 0"):
        parse_section(LossWeights, {**weights, "encoder": -1, "temperature": 1.0}, "distill.loss")
    a = chronos_config(TOK)
    b = chronos_config(
        tokenizer_params(limit=10.0, n_tokens=32)
    )
    diffs = tokenizer_mismatch(a, b)
    assert any(d.startswith("tokenizer_kwargs") for d in diffs) and any(
        d.startswith("n_tokens") for d in diffs
    )
    assert tokenizer_mismatch(a, chronos_config(TOK)) == []


def test_lean_forward_matches_the_full_hidden_state_forward():
    from tsfmlab.training.distillation import run_seq2seq

    _, teacher = models()
    b = batch()
    full = teacher(**b, output_hidden_states=True)
    for with_loss in (True, False):
        lean = run_seq2seq(teacher, b["input_ids"], b["attention_mask"], b["labels"], with_loss=with_loss)
        assert torch.equal(lean["logits"], full.logits)
        assert torch.equal(lean["decoder"], full.decoder_hidden_states[-1])
        assert torch.equal(lean["encoder"], full.encoder_last_hidden_state)
        assert (lean["loss"] is None) != with_loss
    assert torch.equal(run_seq2seq(teacher, **b, with_loss=True)["loss"], full.loss)


def test_task_term_follows_the_teachers_target():
    """The Chronos recipe's target is the student's own cross-entropy; a first-step weight and HL-Gauss
    rows change the task term only (the KL and hidden terms stay as they are)."""
    from tsfmlab.training.token_loss import TargetParams, hl_gauss_matrix, soft_cross_entropy

    student, teacher = models()
    w = LossWeights(task=0.5, distill=0.5, encoder=0.1, decoder=0.1, temperature=2.0)
    b = batch()

    def run(target=None):  # the same projections for every variant
        torch.manual_seed(0)
        return DistillationModel(student, teacher, w, target).eval()(**b)

    plain = run()
    recipe = run(TargetParams(kind="onehot", sigma=3.0, first_step_weight=1.0))
    assert all(torch.equal(plain[k], recipe[k]) for k in TERMS)

    weighted = run(TargetParams(kind="onehot", sigma=3.0, first_step_weight=8.0))
    logits = student(**b).logits
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), b["labels"], reduction="none")
    weights = (b["labels"] != -100).float()
    weights[:, 0] *= 8.0
    assert torch.allclose(weighted["task_loss"], (ce * weights).sum() / weights.sum(), atol=1e-6)
    assert not torch.allclose(weighted["task_loss"], plain["task_loss"])
    assert all(torch.equal(weighted[k], plain[k]) for k in TERMS[1:])

    gauss = run(TargetParams(kind="hl_gauss", sigma=3.0, first_step_weight=1.0))
    spread = soft_cross_entropy(logits, b["labels"], hl_gauss_matrix(64, 2, 3.0))
    assert torch.allclose(gauss["task_loss"], spread) and not torch.equal(gauss["task_loss"], plain["task_loss"])
