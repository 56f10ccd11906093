"""IBM's TinyTimeMixer (TTM) as model family ``ttm``: a hub id, a local checkpoint, or a new model from
architecture params, wrapped in a forecaster with the interface the forecast evaluator uses.

The model is granite-tsfm's ``TinyTimeMixerForPrediction``; granite-tsfm is an optional extra (its torch
pin excludes the CPU build this project pins), imported only when a TTM is loaded or built, so every other
family works without it (docs/usage.md: "TTM"). Saved models use the model's own
``save_pretrained`` layout (``config.json`` with ``model_type: tinytimemixer`` + ``model.safetensors``),
which is how a local directory is recognised as a TTM without importing granite-tsfm.

TTM is a *point* forecaster: one pass maps ``context_length`` values to ``prediction_length`` values
(channel-independent, each window standardised by its context's mean and std inside the model).
``TTMForecaster.predict_quantiles`` returns that point forecast at every quantile level and as the mean,
exactly as seasonal naive is scored: its WQL is the quantile loss of a degenerate distribution, its MASE
that of the point forecast. Longer horizons than the model's are rolled out (forecasts fed back as
context). Missing values and left padding enter as 0 with ``past_observed_mask`` 0 (granite-tsfm's
convention), in training as in evaluation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from pydantic import model_validator

from ..errors import ParamError
from ..params import NonNegativeInt, Params, PositiveInt, Unit, ordered
from .loading import TTM_MODEL_TYPE, Family, check_family, is_ttm_source, load_pipeline

MODEL_TYPE = TTM_MODEL_TYPE
INSTALL = "pip install --no-deps granite-tsfm datasets dill multiprocess xxhash"


def _import_granite():
    """granite-tsfm's TTM classes. Its package ``__init__`` calls ``logging.basicConfig(level=INFO)``;
    the root logger is restored so importing it changes no other library's logging."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from tsfm_public import TinyTimeMixerConfig, TinyTimeMixerForPrediction
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return TinyTimeMixerConfig, TinyTimeMixerForPrediction


def granite_available() -> bool:
    try:
        _import_granite()
    except ImportError:
        return False
    return True


def granite(what: str):
    """``(TinyTimeMixerConfig, TinyTimeMixerForPrediction)``, or a clear error naming the extra."""
    try:
        return _import_granite()
    except ImportError as err:
        raise ParamError(
            f"{what} is a TinyTimeMixer (model family ttm), which needs the optional extra granite-tsfm "
            f"({err}). Install it with `{INSTALL}` (docs/usage.md: TTM)"
        ) from err


def load_model(source: str | Path, family: Family | None = None):
    """Any model the forecast evaluation takes: a TTM (:func:`~tsfmlab.models.loading.is_ttm_source`) or a
    pipeline of a Chronos family (:func:`~tsfmlab.models.loading.load_pipeline`)."""
    check_family(source, family)
    if is_ttm_source(source) and family not in (None, "ttm"):
        raise ParamError(f"model {str(source)!r} is a ttm model, not {family}")
    if is_ttm_source(source) or (family == "ttm" and not Path(source).exists()):
        return load_ttm(source)
    return load_pipeline(source, family)


class TTMParams(Params):
    """The architecture of a new TTM (``TinyTimeMixerConfig`` fields). ``context_length`` and
    ``prediction_length`` also choose the revision of a hub model (granite-tsfm's ``get_model``)."""

    context_length: PositiveInt
    prediction_length: PositiveInt
    patch_length: PositiveInt  # = the stride: TTM's patches never overlap
    d_model: PositiveInt
    num_layers: PositiveInt
    decoder_d_model: PositiveInt
    decoder_num_layers: PositiveInt
    adaptive_patching_levels: NonNegativeInt  # 0: off; i: i levels of num_layers
    expansion_factor: PositiveInt
    dropout: Unit
    head_dropout: Unit
    overrides: dict[str, Any] | None = None  # any other TinyTimeMixerConfig field

    @model_validator(mode="after")
    def _patch_fits(self) -> Self:
        ordered(self, "patch_length", "context_length")
        return self

    def config_fields(self) -> dict[str, Any]:
        fields = {
            k: getattr(self, k)
            for k in (
                "context_length", "prediction_length", "patch_length", "d_model", "num_layers",
                "decoder_d_model", "decoder_num_layers", "adaptive_patching_levels", "expansion_factor",
                "dropout", "head_dropout",
            )
        }  # fmt: skip
        return {**fields, "patch_stride": self.patch_length}


#: config fields that ``overrides`` may not set: the univariate, point-forecast setup this module serves
RESERVED_FIELDS = {
    "patch_stride": "patch_length (TTM requires them equal)",
    "num_input_channels": "univariate (channel-independent) forecasting",
    "prediction_channel_indices": "univariate forecasting",
    "exogenous_channel_indices": "univariate forecasting",
    "enable_forecast_channel_mixing": "univariate forecasting",
    "multi_quantile_head": "the point forecaster this module wraps",
    "prediction_filter_length": "prediction_length",
    "resolution_prefix_tuning": "the forecaster, which passes no frequency token",
}


class TTMForecaster:
    """A TTM (``TinyTimeMixerForPrediction``, or a peft model around one) with the ``predict_quantiles``
    interface of the Chronos pipelines. ``model`` holds the weights (``inner_model`` of the family)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    @property
    def config(self):
        return self.model.config

    @property
    def context_length(self) -> int:
        return int(self.config.context_length)

    @property
    def prediction_length(self) -> int:
        """The horizon of one pass (``prediction_filter_length`` where a hub revision was cut to it)."""
        return int(self.config.prediction_filter_length or self.config.prediction_length)

    def inputs(self, context: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor):
        """``(past_values, past_observed_mask)``, both ``(N, context_length, 1)``: the last
        ``context_length`` values of each series, left-padded; NaN and padding are 0 with mask 0."""
        c = self.context_length
        past = np.full((len(context), c), np.nan, dtype=np.float32)
        for i, x in enumerate(context):
            x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
            if x.ndim != 1:
                raise ValueError(f"series {i}: expected a 1-D series, got shape {x.shape}")
            x = x[-c:]
            past[i, c - len(x) :] = x
        return past_tensors(past)

    def predict(
        self, context: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor, prediction_length: int
    ) -> torch.Tensor:
        """Point forecasts ``(N, prediction_length)``; past the model's horizon, forecasts are fed back
        as observed context and the model runs again. Leaves the model's train/eval mode as it is."""
        values, mask = self.inputs(context)
        device = next(self.model.parameters()).device
        values, mask = values.to(device), mask.to(device)
        steps = []
        done = 0
        with torch.no_grad():
            while done < prediction_length:
                out = self.model(past_values=values, past_observed_mask=mask, return_loss=False)
                step = out.prediction_outputs[:, : self.prediction_length].float()
                steps.append(step)
                done += step.shape[1]
                if done < prediction_length:
                    values = torch.cat([values, step], dim=1)[:, -self.context_length :]
                    mask = torch.cat([mask, torch.ones_like(step)], dim=1)[:, -self.context_length :]
        return torch.cat(steps, dim=1)[:, :prediction_length, 0].cpu()

    def predict_quantiles(
        self, inputs, prediction_length: int, quantile_levels: Sequence[float], **_: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(quantiles (N, H, Q), mean (N, H))``: the point forecast at every level (module docstring)."""
        point = self.predict(inputs, prediction_length)
        return point[:, :, None].repeat(1, 1, len(quantile_levels)), point


def past_tensors(past: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, T)`` values with NaN for missing -> ``(past_values, past_observed_mask)``, ``(N, T, 1)``."""
    observed = np.isfinite(past)
    values = np.where(observed, past, np.float32(0.0)).astype(np.float32)
    return torch.from_numpy(values)[..., None], torch.from_numpy(observed.astype(np.float32))[..., None]


def ttm_config(p: TTMParams, section: str = "ttm.model"):
    config_cls, _ = granite(f"param {section}")
    overrides = dict(p.overrides or {})
    unknown = set(overrides) - set(config_cls().to_dict())
    if unknown:
        raise ParamError(
            f"param {section}.overrides: unknown TinyTimeMixerConfig field(s) {', '.join(sorted(unknown))}"
        )
    fixed = (set(p.config_fields()) - set(RESERVED_FIELDS)) & set(overrides)
    if fixed:
        raise ParamError(
            f"param {section}.overrides: {', '.join(sorted(fixed))} have their own params ({section}.<name>)"
        )
    reserved = set(overrides) & set(RESERVED_FIELDS)
    if reserved:
        raise ParamError(
            f"param {section}.overrides: "
            + ", ".join(f"{k} (fixed by {RESERVED_FIELDS[k]})" for k in sorted(reserved))
        )
    return config_cls(**{**p.config_fields(), **overrides, "num_input_channels": 1})


def new_ttm(p: TTMParams, seed: int = 0, section: str = "ttm.model") -> TTMForecaster:
    """A randomly initialised TTM (PyTorch's default initialisation, as granite-tsfm's ``get_random_ttm``),
    checked with one forward pass so an inconsistent architecture fails here, naming ``section``."""
    config = ttm_config(p, section)
    _, model_cls = granite(f"param {section}")
    torch.manual_seed(seed)
    try:
        model = model_cls(config).eval()
        with torch.no_grad():
            out = model(past_values=torch.zeros(1, p.context_length, 1), return_loss=False)
    except Exception as err:  # granite-tsfm raises bare Exceptions for some inconsistent configs
        raise ParamError(f"param {section}: not a valid TinyTimeMixer architecture ({err})") from err
    assert out.prediction_outputs.shape[1] == p.prediction_length
    return TTMForecaster(model)


def load_ttm(
    source: str | Path, context_length: int | None = None, prediction_length: int | None = None
) -> TTMForecaster:
    """A TTM from a local directory (``save_pretrained`` layout) or a hub id. For a TTM hub id with
    ``context_length`` and ``prediction_length``, granite-tsfm's ``get_model`` picks the revision
    trained for them (cut to ``prediction_length``); without them the hub's default revision loads."""
    path = Path(source)
    _, model_cls = granite(f"model {str(source)!r}")
    if path.exists():
        if not (path / "config.json").is_file():
            raise ParamError(f"{path}: not a model directory (no config.json)")
        try:
            model = model_cls.from_pretrained(str(path), dtype=torch.float32)
        except (OSError, ValueError) as err:
            raise ParamError(f"{path}: unreadable TTM checkpoint ({err})") from err
        if getattr(model.config, "model_type", None) != MODEL_TYPE:
            raise ParamError(f"{path}: not a TinyTimeMixer checkpoint")
        return TTMForecaster(model.eval())
    try:
        if context_length is not None and prediction_length is not None:
            from tsfm_public.toolkit.get_model import get_model

            model = get_model(str(source), context_length=context_length, prediction_length=prediction_length)
        else:
            model = model_cls.from_pretrained(str(source), dtype=torch.float32)
    except (OSError, ValueError) as err:
        raise ParamError(
            f"model {str(source)!r} is neither a local directory nor reachable on the Hugging Face hub "
            f"(offline?) ({err}). Download it elsewhere (`huggingface-cli download {source} --revision REV "
            f"--local-dir DIR`) and set the model's `source` param to that directory."
        ) from err
    return TTMForecaster(model.float().eval())
