"""Params of the held-out forecast benchmark (section ``evaluate_forecast``; other stages re-use its
datasets to re-score their models on the same series)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ParamError
from ..models.fast_paths import Inference, require_tested
from ..params import positive, unit
from .baselines import NAIVE
from .bootstrap import BootstrapParams
from .forecasting import HeldoutSet, cut_windows, load_heldout_series, series_entries

#: A source naming a dataset of the Chronos benchmarks on the hub (``chronos:monash_m1_yearly``).
HUB_PREFIX = "chronos:"


@dataclass(frozen=True)
class DatasetParams:
    """One held-out dataset. ``source``: a GluonTS Arrow corpus (directory or file), ``real:NAME`` (a
    series shipped in a package), a Parquet/Arrow file in the Chronos benchmarks' schema
    (``tsfmlab.data.chronos_benchmark``), or ``chronos:NAME``, that dataset by its hub name (online)."""

    source: str
    season_length: int | None = field(metadata=positive)  # null: the frequency's (benchmark schema only)
    prediction_length: int | None = field(metadata=positive)  # null: evaluate_forecast.prediction_length
    windows: int = field(metadata=positive)  # windows, prediction_length apart (num_rolls)
    offset: int | None  # first window's start from each series' end (< 0); null: the last windows
    max_series: int | None = field(metadata=positive)

    @property
    def benchmark_schema(self) -> bool:
        from ..data.chronos_benchmark import LOCAL_SUFFIXES

        return self.source.startswith(HUB_PREFIX) or self.source.endswith(LOCAL_SUFFIXES)


@dataclass(frozen=True)
class EvaluateParams:
    models: dict[str, str]  # name: hub id or local model directory
    datasets: dict[str, DatasetParams]
    prediction_length: int = field(metadata=positive)
    quantile_levels: list[float] = field(metadata=unit)
    num_samples: int = field(metadata=positive)  # Chronos-T5 sample paths per forecast
    batch_size: int = field(metadata=positive)
    n_fan_charts: int
    bootstrap: BootstrapParams  # series resampled within each dataset
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
        for name, d in self.datasets.items():
            key = f"{section}.datasets.{name}"
            if d.season_length is None and not d.benchmark_schema:
                raise ParamError(
                    f"param {key}.season_length: null (the frequency's season) needs a source with timestamps "
                    f"(a Chronos benchmark file or chronos:NAME), got {d.source!r}"
                )
            horizon = d.prediction_length or self.prediction_length
            if d.offset is not None and (d.offset >= 0 or d.offset + d.windows * horizon > 0):
                raise ParamError(
                    f"param {key}.offset must be negative and leave room for {d.windows} window(s) of "
                    f"{horizon} before the end, got {d.offset}"
                )


def load_windows(p: EvaluateParams) -> dict[str, HeldoutSet]:
    """Every dataset's held-out windows, loaded and checked before any model runs."""
    out = {}
    for name, d in p.datasets.items():
        season = d.season_length
        if d.benchmark_schema:
            from ..data.chronos_benchmark import read_dataset, season_length

            source = d.source[len(HUB_PREFIX) :] if d.source.startswith(HUB_PREFIX) else d.source
            entries, freq = read_dataset(source, name)
            entries = entries[: d.max_series] if d.max_series else entries
            season = season or season_length(freq)
        else:
            entries = series_entries(load_heldout_series(d.source, name, d.max_series), name)
        horizon = d.prediction_length or p.prediction_length
        out[name] = HeldoutSet(cut_windows(entries, horizon, d.windows, d.offset, name), horizon, season)
    return out
