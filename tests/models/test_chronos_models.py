import numpy as np
import pytest
import torch

from tests.conftest import tokenizer_params
from tsfmlab.errors import ParamError
from tsfmlab.models.chronos_models import from_model_id, new_chronos_t5, t5_config
from tsfmlab.models.loading import (
    count_parameters,
    inner_model,
    load_pipeline,
    pipeline_family,
    save_pipeline,
)

TOK = tokenizer_params(context_length=64, prediction_length=8, num_samples=4, n_tokens=4096)


def test_presets_match_chronos_sizes():
    assert 8.3e6 < count_parameters(new_chronos_t5("tiny", TOK)) < 8.5e6  # chronos-t5-tiny: 8M
    config = t5_config("tiny", 4096, True)
    assert (config.d_model, config.d_ff, config.num_layers, config.num_heads, config.d_kv) == (
        256,
        1024,
        4,
        4,
        64,
    )
    with pytest.raises(ParamError, match="unknown model size 'huge'"):
        t5_config("huge", 4096, True)
    with pytest.raises(ParamError, match="unknown T5 config override"):
        t5_config("nano", 4096, True, {"n_layerz": 2})
    with pytest.raises(ParamError, match=r"vocab_size \(set by n_tokens\)"):
        t5_config("nano", 4096, True, {"vocab_size": 10})


def test_overrides_replace_recipe_defaults():
    config = t5_config("nano", 1024, False, {"dropout_rate": 0.0, "num_layers": 3})
    assert config.dropout_rate == 0.0 and config.num_layers == 3 and config.vocab_size == 1024
    assert t5_config("nano", 1024, False).dropout_rate == 0.1


def test_t5_efficient_ids_are_known_offline():
    student = from_model_id("google/t5-efficient-tiny", random_init=True, tok=TOK, tie_embeddings=True)
    assert inner_model(student).config.d_model == 256 and inner_model(student).config.tie_word_embeddings


def test_save_and_load_round_trip(tmp_path):
    from chronos import BaseChronosPipeline

    pipeline = new_chronos_t5("nano", TOK, seed=3)
    save_pipeline(pipeline, tmp_path / "model")
    assert (tmp_path / "model" / "model.safetensors").is_file()
    loaded = BaseChronosPipeline.from_pretrained(tmp_path / "model")
    a, b = inner_model(pipeline).state_dict(), inner_model(loaded).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k].to(a[k].dtype)) for k in a)
    assert loaded.model.config == pipeline.model.config
    context = torch.tensor(np.sin(np.arange(80) / 4), dtype=torch.float32)
    torch.manual_seed(0)
    fa = pipeline.predict(context, prediction_length=8)
    torch.manual_seed(0)
    fb = loaded.predict(context, prediction_length=8)
    assert torch.equal(fa, fb)


def test_unknown_hub_id_offline_names_it_and_the_fix():
    with pytest.raises(ParamError, match="'amazon/chronos-t5-nonexistent'.*set the model's `source` param"):
        load_pipeline("amazon/chronos-t5-nonexistent")


def test_bad_local_directories(tmp_path):
    with pytest.raises(ParamError, match="no config.json"):
        load_pipeline(tmp_path)
    save_pipeline(new_chronos_t5("nano", TOK), tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(Exception, match="safetensors|header|Error"):
        load_pipeline(tmp_path / "m")


@pytest.mark.parametrize(
    "name, family",
    [
        ("dummy-chronos-model", "chronos-t5"),
        ("dummy-chronos-bolt-model", "chronos-bolt"),
        ("dummy-chronos2-model", "chronos-2"),
    ],
)
def test_fixture_checkpoints_load_and_forecast(shared_dir, name, family, tmp_path):
    path = shared_dir / "fixtures" / "chronos" / name
    pipeline = load_pipeline(path, family)
    assert pipeline_family(pipeline) == family
    context = torch.randn(3, 1, 100) if family == "chronos-2" else torch.randn(3, 100)
    quantiles, mean = pipeline.predict_quantiles(
        context, prediction_length=8, quantile_levels=[0.1, 0.5, 0.9]
    )
    quantiles = quantiles[0] if isinstance(quantiles, list) else quantiles
    assert quantiles.shape[-2:] == (8, 3) and torch.isfinite(quantiles).all()
    save_pipeline(pipeline, tmp_path / "copy")  # one save format for every family
    assert pipeline_family(load_pipeline(tmp_path / "copy")) == family
    with pytest.raises(
        ParamError, match="not .*" + ("chronos-bolt" if family != "chronos-bolt" else "chronos-t5")
    ):
        load_pipeline(path, "chronos-bolt" if family != "chronos-bolt" else "chronos-t5")


def test_smooth_embeddings_make_neighbouring_bins_alike():
    small = tokenizer_params(context_length=64, prediction_length=8, num_samples=4, n_tokens=256)

    def neighbour_similarity(pipeline) -> float:
        w = inner_model(pipeline).shared.weight.detach()[3:]  # value tokens (ids 2 and 3 share a centre)
        return float(torch.nn.functional.cosine_similarity(w[1:], w[:-1]).mean())

    random = new_chronos_t5("nano", small, seed=0)
    smooth = new_chronos_t5("nano", small, seed=0, embedding_init="smooth")
    assert neighbour_similarity(random) < 0.2 < 0.8 < neighbour_similarity(smooth)
    wr, ws = (inner_model(p).shared.weight.detach() for p in (random, smooth))
    torch.testing.assert_close(ws[:2], wr[:2])  # special tokens keep their random rows
    assert float(ws[2:].std()) == pytest.approx(float(wr[2:].std()), rel=0.05)  # same scale
    again = new_chronos_t5("nano", small, seed=0, embedding_init="smooth")
    torch.testing.assert_close(inner_model(again).shared.weight, inner_model(smooth).shared.weight)
    with pytest.raises(ParamError, match="embedding_init must be random or smooth"):
        new_chronos_t5("nano", small, embedding_init="sine")


def test_recency_position_init_favours_near_positions():
    from transformers.models.t5.modeling_t5 import T5Attention

    pipeline = new_chronos_t5("nano", TOK, seed=0, position_init="recency")
    model = inner_model(pipeline)
    for stack in (model.encoder, model.decoder):
        attention = stack.block[0].layer[0].SelfAttention
        table = attention.relative_attention_bias.weight.detach()
        bidirectional = not attention.is_decoder
        distance = torch.arange(-100, 101 if bidirectional else 1)
        buckets = T5Attention._relative_position_bucket(distance, bidirectional, 32, 128)
        bias = table[buckets]  # (distance, head)
        assert torch.all(bias[distance == 0] == 0)
        nearer = bias[(distance.abs() == 1)].min(0).values
        farther = bias[(distance.abs() == 50)].max(0).values
        assert torch.all(nearer > farther)  # every head prefers a neighbour to a distant position
    with pytest.raises(ParamError, match="position_init must be random or recency"):
        new_chronos_t5("nano", TOK, position_init="alibi")


@pytest.mark.parametrize("overrides", [None, {"d_model": 32, "d_ff": 128, "num_heads": 2, "d_kv": 16}])
def test_last_value_init_starts_as_a_last_value_forecaster(overrides):
    small = tokenizer_params(context_length=64, prediction_length=8, num_samples=4, n_tokens=1024)
    g = torch.Generator().manual_seed(0)
    contexts = 5.0 + torch.randn(64, 64, generator=g).cumsum(1)  # random walks: the last value != the mean

    def first_step_error(pipeline) -> float:
        """Median distance (in scaled units) of the first step's most likely value to the last value."""
        tokenizer, model = pipeline.tokenizer, inner_model(pipeline)
        ids, mask, scale = tokenizer.context_input_transform(contexts)
        start = torch.zeros(len(contexts), 1, dtype=torch.long)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=start).logits[:, 0]
        value = tokenizer.output_transform(logits.argmax(-1)[:, None, None], scale)[:, 0, 0]
        return float(((value - contexts[:, -1]) / scale).abs().median())

    def new(seed: int, decoder_init: str):
        return new_chronos_t5("nano", small, False, overrides, seed, "smooth", "recency", decoder_init)

    for seed in (0, 1):
        assert first_step_error(new(seed, "last_value")) < 0.05  # the context's scale is ~1
    assert first_step_error(new(0, "random")) > 0.5
    model = inner_model(new(0, "last_value"))
    torch.testing.assert_close(  # only the embedding rows, two heads and the final norm differ
        model.decoder.block[1].layer[1].EncDecAttention.q.weight,
        inner_model(new(0, "random")).decoder.block[1].layer[1].EncDecAttention.q.weight,
    )
    with pytest.raises(ParamError, match="decoder_init must be random or last_value"):
        new_chronos_t5("nano", small, decoder_init="naive")
