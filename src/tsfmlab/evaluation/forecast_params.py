"""Params of the held-out forecast benchmark (section ``evaluate_forecast``; other stages re-use its
datasets to re-score their models on the same series)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ParamError
from ..models.fast_paths import Inference, require_tested
from ..params import positive, unit
from .baselines import NAIVE
from .forecasting import heldout_windows, load_heldout_series


@dataclass(frozen=True)
class DatasetParams:
    source: str  # a GluonTS Arrow corpus (directory or file) or real:NAME
    season_length: int = field(metadata=positive)  # seasonal naive's and MASE's season
    windows: int = field(metadata=positive)  # last non-overlapping windows of prediction_length
    max_series: int | None = field(metadata=positive)


@dataclass(frozen=True)
class EvaluateParams:
    models: dict[str, str]  # name: hub id or local model directory
    datasets: dict[str, DatasetParams]
    prediction_length: int = field(metadata=positive)
    quantile_levels: list[float] = field(metadata=unit)
    num_samples: int = field(metadata=positive)  # Chronos-T5 sample paths per forecast
    batch_size: int = field(metadata=positive)
    n_fan_charts: int
    inference: Inference  # fast: tsfmlab.models.chronos_sampling; library: chronos-forecasting's predict
    seed: int

    def validate(self, section: str) -> None:
        if self.inference == "fast":
            require_tested(f"param {section}.inference=fast", "transformers", "chronos-forecasting")
        clash = [m for m in NAIVE if m in self.models]
        if clash:
            raise ParamError(f"param {section}.models: {clash[0]!r} is a built-in baseline")
        q = self.quantile_levels
        if not q or sorted(set(q)) != q or q[0] <= 0 or q[-1] >= 1:
            raise ParamError(f"param {section}.quantile_levels must be increasing in (0, 1), got {q}")


def load_windows(p: EvaluateParams) -> dict:
    """Every dataset's held-out windows (gluonts ``TestData``), loaded and checked before any model runs."""
    return {
        name: heldout_windows(
            load_heldout_series(d.source, name, d.max_series), p.prediction_length, d.windows, name
        )
        for name, d in p.datasets.items()
    }


def season_lengths(p: EvaluateParams) -> dict[str, int]:
    return {name: d.season_length for name, d in p.datasets.items()}
