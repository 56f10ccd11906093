"""Ti-MAE model: masking, masked-only loss, both backbones, CLS placement, checkpoints, bad input."""

import json

import pytest
import torch
from pydantic import ValidationError

from tsfmlab.errors import DataError, ParamError
from tsfmlab.models.timae import (
    TiMAEClassifier,
    TiMAEConfig,
    TiMAEForPretraining,
    keep_count,
    load_encoder_state,
    load_timae,
    masked_mse,
    parameter_counts,
    random_masking,
    read_config,
    save_timae,
    timae_config,
)

TINY = dict(
    input_dim=2,
    seq_len=32,
    emb_size=16,
    num_layers=1,
    num_heads=2,
    intermediate_dim=32,
    decoder_emb_size=8,
    decoder_layers=1,
    decoder_heads=2,
    decoder_intermediate_dim=16,
    ssm_state_size=8,
    mamba_head_dim=8,
    dropout=0.0,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(backbone="transformer", **overrides) -> TiMAEConfig:
    return TiMAEConfig(backbone=backbone, **{**TINY, **overrides})


def series(b=4, c=2, t=32, seed=0):
    return torch.randn(b, c, t, generator=torch.Generator().manual_seed(seed))


# ---- masking and loss


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75, 0.9])
def test_masked_share_and_temporal_order(ratio):
    length = 32
    positions = torch.arange(length, dtype=torch.float32)[None, :, None].expand(6, -1, 3)
    kept, mask, ids_restore = random_masking(positions, ratio, torch.Generator().manual_seed(1))
    keep = keep_count(length, ratio)
    assert keep == round(length * (1 - ratio))
    assert mask.shape == (6, length) and (mask.sum(1) == length - keep).all()
    assert abs(mask.mean().item() - ratio) <= 0.5 / length
    ids = kept[..., 0]
    assert (ids[:, 1:] > ids[:, :-1]).all()  # kept tokens in temporal order
    for row in range(6):  # the kept tokens are exactly the unmasked steps
        assert ids[row].long().tolist() == torch.nonzero(mask[row] == 0).flatten().tolist()
    filler = torch.full((6, length - keep, 3), -1.0)
    restored = torch.gather(torch.cat([kept, filler], 1), 1, ids_restore[..., None].expand(-1, -1, 3))
    torch.testing.assert_close(restored[..., 0], torch.where(mask.bool(), -1.0, positions[..., 0]))


def test_masks_are_reproducible_with_a_generator_and_vary_across_samples():
    x = torch.zeros(8, 32, 4)
    a = random_masking(x, 0.75, torch.Generator().manual_seed(3)).mask
    b = random_masking(x, 0.75, torch.Generator().manual_seed(3)).mask
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])


def test_keep_count_leaves_a_visible_and_a_masked_step():
    assert keep_count(32, 0.99) == 1 and keep_count(32, 0.01) == 31 and keep_count(1, 0.5) == 1


def test_loss_depends_only_on_masked_steps():
    target = torch.randn(3, 10, 2)
    mask = torch.zeros(3, 10)
    mask[:, [1, 4, 7]] = 1
    pred = torch.randn(3, 10, 2)
    loss = masked_mse(pred, target, mask)
    expected = ((pred - target) ** 2).mean(-1)[:, [1, 4, 7]].mean()
    torch.testing.assert_close(loss, expected)
    visible_changed = pred.clone()
    visible_changed[:, [0, 2, 9]] += 100.0
    assert torch.equal(masked_mse(visible_changed, target, mask), loss)
    masked_changed = pred.clone()
    masked_changed[0, 4, 1] += 1.0
    assert masked_mse(masked_changed, target, mask) != loss


def test_model_loss_is_the_masked_mse_of_its_reconstruction():
    torch.manual_seed(0)
    model = TiMAEForPretraining(tiny()).eval()
    x = series()
    out = model(x, generator=torch.Generator().manual_seed(0))
    assert out.reconstruction.shape == x.shape and out.mask.shape == (4, 32)
    assert (out.mask.sum(1) == 24).all()
    torch.testing.assert_close(
        out.loss, masked_mse(out.reconstruction.transpose(1, 2), x.transpose(1, 2), out.mask)
    )
    again = model(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.loss, again.loss) and torch.equal(out.mask, again.mask)


# ---- backbones


@pytest.mark.parametrize("backbone", ["transformer", "mamba2"])
def test_forward_backward_reaches_the_embedding(backbone):
    torch.manual_seed(0)
    model = TiMAEForPretraining(tiny(backbone)).train()
    out = model(series())
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grad = model.encoder.embed.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []  # CLS and mask tokens, every block and both norms get gradients


def test_mamba_and_transformer_outputs_have_the_same_shapes():
    x = series()
    shapes = {}
    for backbone in ("transformer", "mamba2"):
        torch.manual_seed(0)
        config = tiny(backbone)
        pre = TiMAEForPretraining(config).eval()
        out = pre(x)
        hidden = pre.encoder(x.transpose(1, 2), 0.75).hidden
        logits = TiMAEClassifier(config, 3, "cls", [8]).eval()(x)
        shapes[backbone] = (out.reconstruction.shape, out.mask.shape, hidden.shape, logits.shape)
    assert shapes["transformer"] == shapes["mamba2"]
    assert shapes["mamba2"][2] == (4, 8 + 1, 16)  # 8 visible steps + CLS


def test_mamba_weights_are_initialised():
    torch.manual_seed(0)
    model = TiMAEForPretraining(tiny("mamba2"))
    for block in model.encoder.backbone.layers:
        mixer = block.mixer
        assert torch.isfinite(mixer.A_log).all() and torch.equal(mixer.D, torch.ones_like(mixer.D))
        assert torch.isfinite(mixer.dt_bias).all()


@pytest.mark.parametrize("backbone,at_end", [("transformer", False), ("mamba2", True)])
def test_cls_token_placement(backbone, at_end):
    torch.manual_seed(0)
    encoder = TiMAEForPretraining(tiny(backbone)).encoder.eval()
    assert encoder.cls_at_end == at_end
    tokens = series().transpose(1, 2)
    with torch.no_grad():
        before = encoder(tokens).hidden
        encoder.cls_token.add_(torch.randn(16))  # not a constant: norms would undo it
        after = encoder(tokens).hidden
    cls_index = -1 if at_end else 0
    steps = slice(0, -1) if at_end else slice(1, None)
    assert before.shape == (4, 33, 16)
    assert not torch.allclose(before[:, cls_index], after[:, cls_index])
    # causal Mamba: no step sees a CLS token placed last; the Transformer's CLS is seen by all
    assert torch.equal(before[:, steps], after[:, steps]) == at_end
    cls, rest = encoder.split_cls(before)
    assert torch.equal(cls[:, 0], before[:, cls_index]) and torch.equal(rest, before[:, steps])


@pytest.mark.parametrize("backbone", ["transformer", "mamba2"])
@pytest.mark.parametrize("pooling,cls_embed", [("cls", True), ("avg", True), ("avg", False)])
def test_classifier_pooling(backbone, pooling, cls_embed):
    torch.manual_seed(0)
    model = TiMAEClassifier(tiny(backbone, cls_embed=cls_embed), 3, pooling, [8], 0.1).eval()
    x = series(t=20)  # shorter than seq_len: the first 20 positions are used
    assert model(x).shape == (4, 3)
    hidden = model.encoder(x.transpose(1, 2)).hidden
    cls, steps = model.encoder.split_cls(hidden)
    expected = cls[:, 0] if pooling == "cls" else steps.mean(1)
    torch.testing.assert_close(model.features(x), expected)
    assert steps.shape[1] == 20


def test_parameter_counts():
    model = TiMAEForPretraining(tiny())
    counts = parameter_counts(model)
    assert counts["total"] == counts["trainable"] == counts["encoder"] + counts["decoder"]
    model.encoder.requires_grad_(False)
    assert parameter_counts(model)["trainable"] == counts["decoder"]


# ---- checkpoints


@pytest.mark.parametrize("backbone", ["transformer", "mamba2"])
def test_encoder_loads_into_the_classifier_bit_for_bit(tmp_path, backbone):
    torch.manual_seed(0)
    model = TiMAEForPretraining(tiny(backbone))
    model(series()).loss.backward()
    with torch.no_grad():  # weights that differ from any fresh initialisation
        for p in model.parameters():
            p.add_(0.01 * p.grad)
    save_timae(model, tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    assert read_config(tmp_path / "ckpt") == model.config

    torch.manual_seed(1)
    clf = TiMAEClassifier.from_pretrained_encoder(tmp_path / "ckpt", 3, "avg", seq_len=48, dropout=0.2)
    assert clf.config.seq_len == 48 and clf.config.dropout == 0.2
    pre_state, clf_state = model.encoder.state_dict(), clf.encoder.state_dict()
    assert pre_state.keys() == clf_state.keys() and len(pre_state) > 5
    for name in pre_state:
        assert torch.equal(pre_state[name], clf_state[name]), name
    state = load_encoder_state(tmp_path / "ckpt")
    assert state.keys() == pre_state.keys()

    reloaded = load_timae(tmp_path / "ckpt")
    x = series()
    g = torch.Generator
    torch.testing.assert_close(
        reloaded(x, g().manual_seed(0)).reconstruction, model.eval()(x, g().manual_seed(0)).reconstruction
    )


def test_classifier_round_trip(tmp_path):
    torch.manual_seed(0)
    clf = TiMAEClassifier(tiny(), 4, "cls", [8, 6], 0.1).eval()
    save_timae(clf, tmp_path / "clf")
    again = load_timae(tmp_path / "clf")
    assert isinstance(again, TiMAEClassifier) and again.pooling == "cls" and again.head_hidden == [8, 6]
    x = series()
    assert torch.equal(clf(x), again(x))


def test_saving_replaces_a_directory_atomically(tmp_path):
    torch.manual_seed(0)
    save_timae(TiMAEForPretraining(tiny()), tmp_path / "ckpt")
    (tmp_path / "ckpt" / "stale.txt").write_text("old")
    save_timae(TiMAEForPretraining(tiny()), tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert not (tmp_path / "ckpt" / "stale.txt").exists()


def test_mismatched_encoder_config_names_the_file_and_fields(tmp_path):
    save_timae(TiMAEForPretraining(tiny()), tmp_path / "ckpt")
    clf = TiMAEClassifier(tiny(emb_size=32), 2)
    with pytest.raises(ParamError, match=r"config\.json.*emb_size 16 \(expected 32\)"):
        clf.load_encoder(tmp_path / "ckpt")
    with pytest.raises(ParamError, match="backbone"):
        TiMAEClassifier(tiny("mamba2"), 2).load_encoder(tmp_path / "ckpt")


def test_corrupted_or_missing_files_are_named(tmp_path):
    save_timae(TiMAEForPretraining(tiny()), tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(DataError, match=r"ckpt/model\.safetensors: not a readable safetensors"):
        load_encoder_state(tmp_path / "ckpt")
    with pytest.raises(DataError, match=r"model\.safetensors"):
        TiMAEClassifier(tiny(), 2).load_encoder(tmp_path / "ckpt")
    weights.unlink()
    with pytest.raises(DataError, match=r"model\.safetensors: Ti-MAE weights not found"):
        load_timae(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "config.json").write_text("{not json")
    with pytest.raises(DataError, match=r"config\.json: not a readable JSON"):
        read_config(tmp_path / "ckpt")
    with pytest.raises(DataError, match=r"nowhere/config\.json: Ti-MAE config not found"):
        read_config(tmp_path / "nowhere")


# ---- bad params


@pytest.mark.parametrize("ratio", [0, 0.0, 1, 1.0, 1.5, -0.2])
def test_mask_ratio_outside_the_open_unit_interval(ratio):
    values = {**TINY, "mask_ratio": ratio}
    with pytest.raises(ParamError, match=r"pretrain_timae\.mask_ratio"):
        timae_config(values, "pretrain_timae")
    with pytest.raises(ValidationError, match="mask_ratio"):  # a config is checked when built
        tiny(mask_ratio=ratio)


def test_config_from_params_section_and_json_round_trip():
    config = timae_config({**TINY, "backbone": "mamba2", "mask_ratio": 0.5}, "pretrain_timae")
    assert config.backbone == "mamba2" and config.chunk_size == 64 and config.cls_embed
    again = timae_config(json.loads(json.dumps(config.model_dump())), "x")
    assert again == config


@pytest.mark.parametrize(
    "overrides,pattern",
    [
        ({"backbone": "mamba2", "mamba_head_dim": 12}, r"s\.mamba_head_dim \(12\) must divide"),
        ({"backbone": "mamba2", "emb_size": 20, "mamba_head_dim": 16}, r"mamba_expand \* s\.emb_size \(40\)"),
        ({"num_heads": 3}, r"s\.emb_size \(16\) must be divisible by s\.num_heads \(3\)"),
        ({"decoder_heads": 3}, r"decoder_emb_size \(8\) must be divisible by s\.decoder_heads"),
        ({"emb_size": 15, "num_heads": 1}, r"s\.emb_size must be even"),
        ({"chunk_size": 0}, r"s\.chunk_size must be > 0"),
        ({"dropout": 1.0}, r"s\.dropout must be in \[0, 1\)"),
        ({"backbone": "lstm"}, r"s\.backbone must be one of"),
        ({"seq_len": 0}, r"s\.seq_len must be > 0"),
    ],
)
def test_bad_configs_name_the_param(overrides, pattern):
    with pytest.raises(ParamError, match=pattern):
        timae_config({**TINY, **overrides}, "s")


def test_mamba_head_constraint_does_not_apply_to_the_transformer():
    """A head size that does not divide Mamba-2's inner width is refused for mamba2 only; the transformer
    built with it runs."""
    with pytest.raises(ParamError, match=r"s\.mamba_head_dim \(12\) must divide"):
        timae_config({**TINY, "backbone": "mamba2", "mamba_head_dim": 12}, "s")
    config = timae_config({**TINY, "backbone": "transformer", "mamba_head_dim": 12}, "s")
    assert config.mamba_head_dim == 12 and TiMAEForPretraining(config)(series()).loss.isfinite()


def test_cls_pooling_needs_a_cls_token():
    with pytest.raises(ParamError, match="cls_embed"):
        TiMAEClassifier(tiny(cls_embed=False), 2, "cls")
    with pytest.raises(ParamError, match="pooling"):
        TiMAEClassifier(tiny(), 2, "max")


def test_bad_input_shapes():
    model = TiMAEForPretraining(tiny())
    with pytest.raises(DataError, match="exceed the model's seq_len 32"):
        model(series(t=40))
    with pytest.raises(DataError, match="2 channels"):
        model(series(c=3))
