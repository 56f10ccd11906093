"""Stage evaluate_forecast: every model and seasonal naive on held-out series (Chronos benchmark metrics).

Params: evaluate_forecast (models, held-out datasets, horizon, quantiles); and, to refuse leakage, the
training corpora of teacher and distill and the real datasets mixed by build_mixups.
Outs: metrics/forecast.json (per model: parameters, relative WQL, relative MASE, series/s; per dataset:
raw scores); plots/forecast/relative_scores.csv (bar chart); plots/forecast/fan_charts.png.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tsfmlab.cli import run_stage
from tsfmlab.errors import ParamError
from tsfmlab.evaluation.forecasting import (
    BASELINE,
    REAL_PREFIX,
    heldout_windows,
    history_arrays,
    load_heldout_series,
    predict_chronos,
    predict_seasonal_naive,
    relative_summary,
    scores,
)
from tsfmlab.evaluation.plots import fan_charts, write_csv
from tsfmlab.io.atomic import write_json
from tsfmlab.models.chronos_models import count_parameters, load_pipeline
from tsfmlab.params import load_params, positive, stage_params, unit

SECTION = "evaluate_forecast"


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
    seed: int

    def validate(self, section: str) -> None:
        if BASELINE in self.models:
            raise ParamError(f"param {section}.models: {BASELINE!r} is the built-in baseline")
        q = self.quantile_levels
        if not q or sorted(set(q)) != q or q[0] <= 0 or q[-1] >= 1:
            raise ParamError(f"param {section}.quantile_levels must be increasing in (0, 1), got {q}")


def check_heldout(p: EvaluateParams, params: dict) -> None:
    """Refuse a dataset that some model was trained on (by corpus path or real dataset name)."""
    trained_paths = {
        Path(x).resolve()
        for x in params["teacher"]["data"]["training_data_paths"] + params["distill"]["training_data_paths"]
    }
    mixed_real = set(params["build_mixups"]["real_datasets"])
    for name, d in p.datasets.items():
        key = f"{SECTION}.datasets.{name}.source"
        if d.source.startswith(REAL_PREFIX):
            if d.source[len(REAL_PREFIX) :] in mixed_real:
                raise ParamError(
                    f"param {key}: {d.source} is mixed into training data (build_mixups.real_datasets)"
                )
            continue
        path = Path(d.source).resolve()
        if any(path == t or t in path.parents or path in t.parents for t in trained_paths):
            raise ParamError(f"param {key}: {d.source} overlaps a training corpus")


def main() -> None:
    p = stage_params(EvaluateParams, SECTION)
    check_heldout(p, load_params())
    datasets = {name: load_heldout_series(d.source, name, d.max_series) for name, d in p.datasets.items()}
    windows = {
        name: heldout_windows(series, p.prediction_length, p.datasets[name].windows, name)
        for name, series in datasets.items()
    }
    pipelines = {name: load_pipeline(source) for name, source in p.models.items()}  # fail before work

    per_dataset: dict[str, dict[str, dict[str, float]]] = {BASELINE: {}, **{m: {} for m in pipelines}}
    seconds = dict.fromkeys(per_dataset, 0.0)
    panels = []
    n_forecasts = 0
    for name, test_data in windows.items():
        histories = history_arrays(test_data)
        n_forecasts += len(histories)
        forecasts = {
            BASELINE: predict_seasonal_naive(
                histories, p.prediction_length, p.datasets[name].season_length, len(p.quantile_levels)
            )
        }
        for model, pipeline in pipelines.items():
            forecasts[model] = predict_chronos(
                pipeline,
                histories,
                p.prediction_length,
                p.quantile_levels,
                p.batch_size,
                p.num_samples,
                p.seed,
            )
        for model, f in forecasts.items():
            per_dataset[model][name] = scores(f, test_data, p.quantile_levels, p.datasets[name].season_length)
            seconds[model] += f.seconds
        if len(panels) < p.n_fan_charts:
            truth = next(iter(test_data.label))["target"]
            panels.append(
                {
                    "title": f"{name}: {next(iter(test_data.input))['item_id']}",
                    "history": histories[0][-4 * p.prediction_length :],
                    "truth": truth,
                    "forecasts": {m: f.quantiles[0] for m, f in forecasts.items()},
                }
            )
        print(
            f"{name}: {len(histories)} forecasts, "
            + ", ".join(f"{m} wql {per_dataset[m][name]['wql']:.3f}" for m in forecasts)
        )

    summary = relative_summary(per_dataset)
    parameters = {BASELINE: 0, **{m: count_parameters(pl) for m, pl in pipelines.items()}}
    metrics = {
        model: {
            "parameters": parameters[model],
            **{k: round(v, 6) for k, v in summary[model].items()},
            "series_per_s": round(n_forecasts / max(seconds[model], 1e-9), 1),
        }
        for model in per_dataset
    }
    if {"teacher", "student"} <= set(pipelines):
        s, t = metrics["student"], metrics["teacher"]
        metrics["student_vs_teacher"] = {
            "relative_wql_ratio": round(s["relative_wql"] / t["relative_wql"], 4),
            "parameter_ratio": round(s["parameters"] / t["parameters"], 4),
            "throughput_ratio": round(s["series_per_s"] / t["series_per_s"], 2),
        }
    metrics["datasets"] = {
        name: {
            "n_forecasts": len(history_arrays(windows[name])),
            **{m: {k: round(v, 6) for k, v in per_dataset[m][name].items()} for m in per_dataset},
        }
        for name in windows
    }
    write_json("metrics/forecast.json", metrics)
    write_csv(
        [{"model": m, **{k: round(v, 6) for k, v in summary[m].items()}} for m in per_dataset],
        "plots/forecast/relative_scores.csv",
    )
    fan_charts(panels, p.quantile_levels, "plots/forecast/fan_charts.png")
    for m in per_dataset:
        print(f"{m}: {metrics[m]}")
    if not np.isfinite([summary[m]["relative_wql"] for m in summary]).all():
        print("warning: a relative score is not finite (a dataset where seasonal naive scores 0?)")


if __name__ == "__main__":
    run_stage(main)
