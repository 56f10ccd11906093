"""A new Chronos-2 (``Chronos2Model``, chronos-forecasting's own classes) from a small set of params.

Hub ids and local checkpoints load through :func:`tsfmlab.models.loading.load_pipeline`;
this module only builds the ``source: scratch`` model that the Chronos-2 pretraining stage trains.
The architecture is the released one (patch embedding, alternating time and group attention, RoPE,
``[REG]`` token, arcsinh scaling, quantile head); the params choose its size and patching.
"""

from __future__ import annotations

import dataclasses
from typing import Self

import torch
from pydantic import field_validator, model_validator

from ..params import BelowOne, Increasing, Invalid, OpenUnit, Params, PositiveInt

#: the 21 quantile levels the released Chronos-2 predicts
CHRONOS2_QUANTILES = (
    0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
    0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99,
)  # fmt: skip


class Chronos2Params(Params):
    """``Chronos2CoreConfig`` sizes and the ``chronos_config`` patching of a new Chronos-2."""

    d_model: PositiveInt
    d_kv: PositiveInt
    d_ff: PositiveInt
    num_layers: PositiveInt
    num_heads: PositiveInt
    dropout_rate: BelowOne
    context_length: PositiveInt
    patch_size: PositiveInt  # input and output patch (the released model: 16)
    max_output_patches: PositiveInt  # horizons beyond are unrolled
    quantiles: Increasing[OpenUnit]

    @field_validator("quantiles")
    @classmethod
    def _deciles(cls, quantiles: list[float]) -> list[float]:
        if not {round(0.1 * i, 1) for i in range(1, 10)} <= set(quantiles):
            raise Invalid(
                f"must include the deciles 0.1 ... 0.9 (0.5 is the point forecast; Chronos2Pipeline unrolls "
                f"long horizons from the deciles), got {quantiles}"
            )
        return quantiles

    @model_validator(mode="after")
    def _whole_patches(self) -> Self:
        if self.context_length % self.patch_size:
            raise Invalid(
                f"({self.context_length}) must be a multiple of patch_size ({self.patch_size})",
                "context_length",
                ("patch_size",),
            )
        return self


def new_chronos2(p: Chronos2Params, seed: int = 0):
    """A randomly initialised ``Chronos2Pipeline`` (deterministic for a seed)."""
    from chronos.chronos2 import Chronos2Model, Chronos2Pipeline
    from chronos.chronos2.config import Chronos2CoreConfig, Chronos2ForecastingConfig

    config = Chronos2CoreConfig(
        d_model=p.d_model,
        d_kv=p.d_kv,
        d_ff=p.d_ff,
        num_layers=p.num_layers,
        num_heads=p.num_heads,
        dropout_rate=p.dropout_rate,
    )
    forecasting = Chronos2ForecastingConfig(
        context_length=p.context_length,
        output_patch_size=p.patch_size,
        input_patch_size=p.patch_size,
        input_patch_stride=p.patch_size,
        quantiles=list(p.quantiles),
        use_reg_token=True,
        use_arcsinh=True,
        max_output_patches=p.max_output_patches,
        time_encoding_scale=p.context_length,
    )
    config.chronos_config = dataclasses.asdict(forecasting)
    config.architectures = ["Chronos2Model"]
    config.chronos_pipeline_class = "Chronos2Pipeline"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Chronos2Model(config)
    return Chronos2Pipeline(model=model.eval())
