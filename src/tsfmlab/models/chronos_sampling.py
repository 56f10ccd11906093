"""Faster sampling for Chronos-T5: the encoder runs once per series, not once per sample path.

``ChronosModel.forward`` calls ``transformers``' ``generate`` with ``num_return_sequences=num_samples``,
which repeats every context ``num_samples`` times *before* the encoder and pays the generic generation
machinery (logits processors, stopping criteria, cache bookkeeping) at every step. A Chronos forecast
needs much less: the encoder states of each context, repeated per sample path, and a plain sampling loop
of exactly ``prediction_length`` steps over the decoder's key/value cache, with the same logits warpers
``generate`` applies (EOS masked until the last step as ``min_new_tokens`` does, then temperature, top-k
and top-p, in that order).

``fast_pipeline(pipeline)`` returns a ``ChronosPipeline`` that shares the tokenizer and weights and uses
this loop, so chronos-forecasting's own ``predict`` / ``predict_quantiles`` (scaling, rollout past the
model's prediction length) stay in charge. Rows and random draws are laid out as ``generate`` lays them
out (series-major, one ``torch.multinomial`` per step), so a fixed seed gives the same sample paths
(see ``tests/models/test_chronos_sampling.py``).
"""

from __future__ import annotations

import torch

from .loading import pipeline_family


def sample_next(
    logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None
) -> torch.Tensor:
    """(N, 1) tokens drawn from (N, V) logits under ``generate``'s warpers: temperature, then top-k,
    then top-p (nucleus). With top-k the draw happens among the k candidates only: the same
    distribution as masking the other V - k logits, for k instead of V random numbers per row."""
    if temperature is not None and temperature != 1.0:
        logits = logits / temperature
    candidates = None
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        logits, candidates = torch.topk(logits, top_k, dim=-1)  # sorted, most likely first
    if top_p is not None and top_p < 1.0:
        ordered, order = torch.sort(logits, descending=True, dim=-1)
        mass_before = ordered.softmax(dim=-1).cumsum(dim=-1) - ordered.softmax(dim=-1)
        drop = mass_before >= top_p  # the smallest set whose mass reaches top_p is kept (>= 1 token)
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    choice = torch.multinomial(logits.softmax(dim=-1), num_samples=1)
    return choice if candidates is None else candidates.gather(-1, choice)


@torch.no_grad()
def sample_tokens(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prediction_length: int,
    num_samples: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    eos_token_id: int,
    decoder_start_token_id: int,
) -> torch.Tensor:
    """(B, num_samples, prediction_length) token ids sampled from a T5 encoder-decoder."""
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache
    from transformers.modeling_outputs import BaseModelOutput

    encoded = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    encoded = encoded.repeat_interleave(num_samples, dim=0)
    mask = attention_mask.repeat_interleave(num_samples, dim=0)
    n = encoded.shape[0]
    tokens = torch.full((n, 1), decoder_start_token_id, dtype=torch.long, device=encoded.device)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    out = []
    for _ in range(prediction_length):
        logits = (
            model(
                encoder_outputs=BaseModelOutput(last_hidden_state=encoded),
                attention_mask=mask,
                decoder_input_ids=tokens,
                past_key_values=cache,
                use_cache=True,
            )
            .logits[:, -1, :]
            .float()
        )
        logits[:, eos_token_id] = float("-inf")  # min_new_tokens = prediction_length: EOS never wins
        tokens = sample_next(logits, temperature, top_k, top_p)
        out.append(tokens)
    return torch.cat(out, dim=1).reshape(input_ids.shape[0], num_samples, prediction_length)


def fast_pipeline(pipeline):
    """A ``ChronosPipeline`` sharing ``pipeline``'s tokenizer and weights that samples with
    ``sample_tokens``; any other pipeline (Bolt, Chronos-2, causal Chronos) is returned as it is."""
    from chronos import ChronosModel, ChronosPipeline

    if pipeline_family(pipeline) != "chronos-t5" or pipeline.model.config.model_type != "seq2seq":
        return pipeline

    class _Sampler(ChronosModel):
        def forward(
            self,
            input_ids,
            attention_mask,
            prediction_length=None,
            num_samples=None,
            temperature=None,
            top_k=None,
            top_p=None,
        ):
            c = self.config
            return sample_tokens(
                self.model,
                input_ids,
                attention_mask,
                c.prediction_length if prediction_length is None else prediction_length,
                c.num_samples if num_samples is None else num_samples,
                c.temperature if temperature is None else temperature,
                c.top_k if top_k is None else top_k,
                c.top_p if top_p is None else top_p,
                eos_token_id=c.eos_token_id,
                decoder_start_token_id=self.model.config.decoder_start_token_id,
            )

    model = pipeline.model
    return ChronosPipeline(
        tokenizer=pipeline.tokenizer, model=_Sampler(config=model.config, model=model.model)
    )
