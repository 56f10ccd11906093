"""One way to get a Chronos model: a hub id, a local checkpoint, or a new model from a size preset.

Everything is a chronos-forecasting pipeline (``ChronosPipeline``, ``ChronosBoltPipeline``,
``Chronos2Pipeline``) and is saved with ``save_pretrained`` (safetensors + ``config.json`` holding
``chronos_config``), so any saved model loads back with ``BaseChronosPipeline.from_pretrained(path)``.
The tokenizer (``MeanScaleUniformBins``), configs and models are chronos-forecasting's own.

Loading, saving and counting any model, of any family: :mod:`tsfmlab.models.loading`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, field_validator

from ..errors import ParamError
from ..params import Invalid, Params, PositiveInt
from .fast_paths import require_tested

#: T5 sizes of the t5-efficient family that Chronos-T5 uses (tiny = chronos-t5-tiny, ...), plus "nano",
#: a CPU-sized model for smoke-scale profiles.
T5_PRESETS: dict[str, dict[str, int]] = {
    "nano": dict(d_model=64, d_ff=256, num_layers=2, num_decoder_layers=2, num_heads=4, d_kv=16),
    "tiny": dict(d_model=256, d_ff=1024, num_layers=4, num_decoder_layers=4, num_heads=4, d_kv=64),
    "mini": dict(d_model=384, d_ff=1536, num_layers=4, num_decoder_layers=4, num_heads=8, d_kv=64),
    "small": dict(d_model=512, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8, d_kv=64),
    "base": dict(d_model=768, d_ff=3072, num_layers=12, num_decoder_layers=12, num_heads=12, d_kv=64),
}
#: Hub ids whose *configuration* is known offline (random initialisation needs no download).
T5_EFFICIENT_IDS = {f"google/t5-efficient-{size}": size for size in ("tiny", "mini", "small", "base")}


class TokenizerParams(Params):
    """The ``ChronosConfig`` fields a new Chronos-T5 needs (teacher and student must agree on them)."""

    tokenizer_class: Literal["MeanScaleUniformBins"]
    tokenizer_kwargs: dict[str, float]  # {low_limit, high_limit}: the bins' range, in scaled units
    n_tokens: Annotated[int, Field(gt=2)]  # 2 of them special (PAD, EOS)
    use_eos_token: bool
    context_length: PositiveInt
    prediction_length: PositiveInt
    num_samples: PositiveInt

    @field_validator("tokenizer_kwargs")
    @classmethod
    def _limits(cls, kw: dict[str, float]) -> dict[str, float]:
        if set(kw) != {"low_limit", "high_limit"} or not kw["low_limit"] < kw["high_limit"]:
            raise Invalid(f"must be {{low_limit, high_limit}} with low < high, got {kw}")
        return kw


def chronos_config(tok: TokenizerParams, model_type: str = "seq2seq"):
    from chronos import ChronosConfig

    return ChronosConfig(
        tokenizer_class=tok.tokenizer_class,
        tokenizer_kwargs=dict(tok.tokenizer_kwargs),
        context_length=tok.context_length,
        prediction_length=tok.prediction_length,
        n_tokens=tok.n_tokens,
        n_special_tokens=2,
        pad_token_id=0,
        eos_token_id=1,
        use_eos_token=tok.use_eos_token,
        model_type=model_type,
        num_samples=tok.num_samples,
        temperature=1.0,
        top_k=50,
        top_p=1.0,
    )


def tokenizer_of(config) -> TokenizerParams:
    """The :class:`TokenizerParams` of a Chronos-T5's ``ChronosConfig`` (a student inherits its teacher's)."""
    return TokenizerParams(
        tokenizer_class=config.tokenizer_class,
        tokenizer_kwargs={k: float(v) for k, v in config.tokenizer_kwargs.items()},
        n_tokens=config.n_tokens,
        use_eos_token=config.use_eos_token,
        context_length=config.context_length,
        prediction_length=config.prediction_length,
        num_samples=config.num_samples,
    )


#: T5 fields that follow from other params (the tokenizer, tie_embeddings) and may not be overridden
RESERVED_T5_FIELDS = {
    "vocab_size": "n_tokens",
    "pad_token_id": "the Chronos tokenizer",
    "eos_token_id": "the Chronos tokenizer",
    "decoder_start_token_id": "the Chronos tokenizer",
    "is_encoder_decoder": "the model family",
    "tie_word_embeddings": "tie_embeddings",
}


def t5_config(size: str, n_tokens: int, tie_embeddings: bool, overrides: dict[str, Any] | None = None):
    """A T5 configuration from a size preset, set up as Chronos initialises a model from scratch."""
    from transformers import T5Config

    if size not in T5_PRESETS:
        raise ParamError(f"unknown model size {size!r}; presets: {', '.join(T5_PRESETS)}")
    unknown = set(overrides or {}) - set(T5Config().to_dict())
    if unknown:
        raise ParamError(f"unknown T5 config override(s): {', '.join(sorted(unknown))}")
    reserved = set(overrides or {}) & set(RESERVED_T5_FIELDS)
    if reserved:
        raise ParamError(
            "T5 config override(s) "
            + ", ".join(f"{k} (set by {RESERVED_T5_FIELDS[k]})" for k in sorted(reserved))
        )
    fields = dict(
        vocab_size=n_tokens,
        **T5_PRESETS[size],
        feed_forward_proj="relu",
        dropout_rate=0.1,
        layer_norm_epsilon=1e-6,
        initializer_factor=0.05,  # Chronos' random initialisation
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        tie_word_embeddings=tie_embeddings,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        is_encoder_decoder=True,
    )
    return T5Config(**{**fields, **(overrides or {})})  # any field may be overridden, dropout_rate included


EmbeddingInit = Literal["random", "smooth"]
PositionInit = Literal["random", "recency"]
DecoderInit = Literal["random", "last_value"]


def recency_position_biases(model) -> None:
    """Start every T5 relative-position bias table as a recency prior (ALiBi's slopes, Press et al.
    2022): head ``h`` of ``H`` adds ``-2^(-8(h+1)/H) * |distance|`` to its attention logits, so at
    initialisation each position, the appended EOS included, attends mostly to its near neighbours and
    the last context values reach the encoder's final positions from the first step."""
    for stack in (model.encoder, model.decoder):
        for block in stack.block:
            attention = block.layer[0].SelfAttention
            if not attention.has_relative_attention_bias:
                continue
            table = attention.relative_attention_bias.weight  # (num_buckets, n_heads)
            span = attention.relative_attention_max_distance
            bidirectional = not attention.is_decoder  # causal: only keys at or before the query
            distance = torch.arange(-span + 1, span if bidirectional else 1)
            buckets = attention._relative_position_bucket(
                distance,
                bidirectional=bidirectional,
                num_buckets=attention.relative_attention_num_buckets,
                max_distance=span,
            )
            mean_distance = torch.zeros(table.shape[0]).index_add_(0, buckets, distance.abs().float())
            mean_distance /= torch.bincount(buckets, minlength=table.shape[0]).clamp(min=1)
            n_heads = table.shape[1]
            slopes = 2.0 ** (-8.0 * torch.arange(1, n_heads + 1) / n_heads)
            with torch.no_grad():
                table.copy_(-mean_distance[:, None] * slopes[None, :])


def smooth_value_embeddings(weight: torch.Tensor, tokenizer, n_special: int, seed: int) -> None:
    """Overwrite the value-token rows of ``weight`` (n_tokens, d) with random Fourier features of each
    bin's centre, the pairs ``cos(ω_j · c + φ_j), sin(ω_j · c + φ_j)`` in columns ``2j, 2j + 1``, at the
    rows' current scale: neighbouring bins start with similar vectors, so the ordering of the bins need
    not be learned from scratch, and the rows' dot product depends on the bins' distance only. The
    frequencies ``ω_j`` ascend, log-uniform between one period over the whole range and one period
    over four bins."""
    centers = tokenizer.centers.double()
    ids = torch.arange(n_special, weight.shape[0])
    c = tokenizer.output_transform(ids[None, None, :], torch.ones(1))[0, 0].double()  # each id's value
    span = float(centers[-1] - centers[0])
    width = span / max(len(centers) - 1, 1)
    g = torch.Generator().manual_seed(seed)
    d = weight.shape[1]
    n_pairs = (d + 1) // 2
    log_w = torch.empty(n_pairs, dtype=torch.float64).uniform_(
        math.log(2 * math.pi / span), math.log(2 * math.pi / (4 * width)), generator=g
    )
    phase = torch.empty(n_pairs, dtype=torch.float64).uniform_(0, 2 * math.pi, generator=g)
    angle = c[:, None] * log_w.sort().values.exp()[None, :] + phase[None, :]
    features = torch.stack([angle.cos(), angle.sin()], dim=2).reshape(len(c), 2 * n_pairs)[:, :d]
    with torch.no_grad():
        scale = weight[n_special:].double().std()
        weight[n_special:] = (features * scale * math.sqrt(2.0)).to(weight.dtype)  # features: variance 1/2


def last_value_init(model, n_special: int, pad_id: int, eos_id: int) -> None:
    """Start a T5 as a last-value forecaster by setting one attention head of each kind by hand.

    A model trained from scratch first learns to predict the context's mean level at the first
    forecast step; reading the last observed value through cross-attention, which has no position
    information in T5, takes thousands of steps to emerge. Here it holds from the first step:

    * the value tokens' embeddings are scaled up 3x (they dominate the decoder's residual stream, so
      each later step starts as a copy of the previous one) and the decoder's final norm is set to 3
      (the output rows, tied to the embeddings, then give a peaked distribution);
    * the last two embedding columns mark the start (pad) and EOS tokens: zero in every value row;
    * encoder head 0 attends to the previous position (its relative-position bias for distance -1 is
      +20, so the appended EOS reads the last context value) and copies a ``d_kv``-dimensional
      subspace ``U`` of the value embeddings (whole frequency pairs of
      :func:`smooth_value_embeddings`, spread over its frequencies);
    * cross-attention head 0 of the first decoder block matches the start token's column with the EOS
      column (attention logit ~30 at EOS, 0 elsewhere) and writes the ``U`` part of EOS's encoding
      into the first forecast step.

    Every other weight keeps its random initialisation, and training may change all of them."""
    shared = model.shared.weight
    d = shared.shape[1]
    attention = model.encoder.block[0].layer[0].SelfAttention
    k = min(attention.key_value_proj_dim, d - 2)
    pad_column, eos_column = d - 1, d - 2
    pairs = torch.linspace(0, (d - 2) // 2 - 1, max(k // 2, 1)).round().long()
    columns = torch.stack([2 * pairs, 2 * pairs + 1], 1).flatten()[:k]
    U = torch.eye(d, dtype=shared.dtype)[:, columns]  # (d_model, k)
    cross = model.decoder.block[0].layer[1].EncDecAttention
    with torch.no_grad():
        shared[n_special:] *= 3.0
        shared[n_special:, eos_column:] = 0.0
        row_norm = float(shared[n_special:].norm(dim=1).mean())
        shared[eos_id, eos_column] = row_norm  # dominates EOS's row: its key stands out
        shared[pad_id, pad_column] = row_norm / math.sqrt(d)  # one entry's size: a small output logit
        attention.relative_attention_bias.weight[
            attention._relative_position_bucket(
                torch.tensor([-1]),
                bidirectional=True,
                num_buckets=attention.relative_attention_num_buckets,
                max_distance=attention.relative_attention_max_distance,
            ),
            0,
        ] = 20.0
        attention.v.weight[:k] = U.T
        attention.o.weight[:, :k] = 2.0 * U
        cross.q.weight[:k] = 0.0
        cross.k.weight[:k] = 0.0
        cross.q.weight[0, pad_column] = 1.0
        cross.k.weight[0, eos_column] = 1.0
        cross.v.weight[:k] = U.T
        cross.o.weight[:, :k] = 4.0 * U
        model.decoder.final_layer_norm.weight.fill_(3.0)
        # scale query and key so that the start position's logit at EOS is 30 (the others stay 0)
        logit = _start_eos_logit(model, cross, n_special, pad_id, eos_id)
        cross.q.weight[0, pad_column] = math.sqrt(30.0 / logit)
        cross.k.weight[0, eos_column] = math.sqrt(30.0 / logit)


def _start_eos_logit(model, cross, n_special: int, pad_id: int, eos_id: int) -> float:
    """Head 0's attention logit of ``cross`` from the decoder's start position at the EOS position."""
    seen = {}

    def keep(module, args, kwargs):
        seen["query"] = module.q(args[0] if args else kwargs["hidden_states"])[0, 0, 0]
        seen["key"] = module.k(kwargs["key_value_states"])[0, -1, 0]

    hook = cross.register_forward_pre_hook(keep, with_kwargs=True)
    try:
        ids = torch.tensor([[n_special] * 8 + [eos_id]])
        model(input_ids=ids, decoder_input_ids=torch.tensor([[pad_id]]))
    finally:
        hook.remove()
    return float(seen["query"] * seen["key"])


def new_chronos_t5(
    size: str,
    tok: TokenizerParams,
    tie_embeddings: bool = True,
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
    embedding_init: EmbeddingInit = "random",
    position_init: PositionInit = "random",
    decoder_init: DecoderInit = "random",
):
    """A randomly initialised Chronos-T5 pipeline (the Chronos recipe's ``random_init``).

    ``embedding_init="smooth"``: the value tokens' embeddings (and output rows, which transformers ties
    to them) start as smooth functions of the bins' centres (:func:`smooth_value_embeddings`);
    ``position_init="recency"``: the relative-position biases start as a recency prior
    (:func:`recency_position_biases`); ``decoder_init="last_value"``: the model starts as a last-value
    forecaster (:func:`last_value_init`)."""
    from chronos import ChronosModel, ChronosPipeline
    from transformers import GenerationConfig, T5ForConditionalGeneration

    if position_init == "recency" or decoder_init == "last_value":
        require_tested("t5_position_buckets", f"position_init={position_init}, decoder_init={decoder_init}")
    config = chronos_config(tok)
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(t5_config(size, tok.n_tokens, tie_embeddings, overrides)).eval()
    tokenizer = config.create_tokenizer()
    if embedding_init == "smooth":  # lm_head shares these rows (transformers ties T5's)
        smooth_value_embeddings(model.shared.weight, tokenizer, config.n_special_tokens, seed)
    elif embedding_init != "random":
        raise ParamError(f"embedding_init must be random or smooth, got {embedding_init!r}")
    if position_init == "recency":
        recency_position_biases(model)
    elif position_init != "random":
        raise ParamError(f"position_init must be random or recency, got {position_init!r}")
    if decoder_init == "last_value":
        last_value_init(model, config.n_special_tokens, config.pad_token_id, config.eos_token_id)
    elif decoder_init != "random":
        raise ParamError(f"decoder_init must be random or last_value, got {decoder_init!r}")
    model.config.chronos_config = dataclasses.asdict(config)
    model.generation_config = GenerationConfig(pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return ChronosPipeline(tokenizer=tokenizer, model=ChronosModel(config=config, model=model))


def from_model_id(
    model_id: str,
    random_init: bool,
    tok: TokenizerParams,
    tie_embeddings: bool,
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
    embedding_init: EmbeddingInit = "random",
    position_init: PositionInit = "random",
    decoder_init: DecoderInit = "random",
):
    """The Chronos recipe's student: ``model_id`` (a t5-efficient hub id or a preset name) gives the
    architecture; ``random_init`` starts from random weights (set up as :func:`new_chronos_t5`'s
    ``*_init`` say), otherwise a Chronos checkpoint is loaded."""
    size = T5_EFFICIENT_IDS.get(model_id, model_id)
    if random_init:
        if size not in T5_PRESETS:
            raise ParamError(
                f"model_id {model_id!r} with random_init: expected one of {sorted(T5_EFFICIENT_IDS)} "
                f"or a preset ({', '.join(T5_PRESETS)})"
            )
        return new_chronos_t5(
            size, tok, tie_embeddings, overrides, seed, embedding_init, position_init, decoder_init
        )
    from .loading import load_pipeline

    return load_pipeline(model_id, "chronos-t5")
