"""Stage evaluate_forecast: every model, seasonal naive and last-value naive on held-out series (Chronos
benchmark metrics).

Params: evaluate_forecast (models, held-out datasets, horizon, quantiles); and, to refuse leakage, the
training corpora of teacher and distill and the real datasets mixed by build_mixups.
Outs: metrics/forecast.json (headline relative WQL per model), reports/forecast.json (per model:
parameters, relative WQL and MASE with intervals; per dataset: raw scores);
plots/forecast/relative_scores.csv (bar chart); plots/forecast/fan_charts.png. Every out is a function of
the params and deps alone; the inference throughput (series/s, a wall-clock figure) goes to the log, and
``bench/bench_forecast_throughput.py`` measures it against a reference.
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
from pathlib import Path

import numpy as np

from tsfmlab.cli import run_stage
from tsfmlab.errors import ParamError
from tsfmlab.evaluation.forecast_params import HUB_PREFIX, EvaluateParams, load_windows
from tsfmlab.evaluation.baselines import LAST_VALUE, NAIVE
from tsfmlab.evaluation.forecasting import REAL_PREFIX, benchmark, relative_summary
from tsfmlab.evaluation.plots import fan_charts, write_csv
from tsfmlab.io.atomic import write_results
from tsfmlab.models.loading import count_parameters, load_pipeline
from tsfmlab.params import load_params, stage_params

SECTION = "evaluate_forecast"


def check_heldout(p: EvaluateParams, params: dict) -> None:
    """Refuse a dataset that some model was trained on (by corpus path or real dataset name)."""
    trained_paths = {
        Path(x).resolve()
        for x in params["teacher"]["data"]["training_data_paths"]
        + params["distill"]["data"]["training_data_paths"]
    }
    mixed_real = set(params["build_mixups"]["real_datasets"])
    for name, d in p.datasets.items():
        key = f"{SECTION}.datasets.{name}.source"
        if d.source.startswith(HUB_PREFIX):
            continue
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
    windows = load_windows(p)
    pipelines = {name: load_pipeline(source) for name, source in p.models.items()}  # fail before work

    run = benchmark(
        pipelines, windows, p.quantile_levels, p.batch_size, p.num_samples, p.seed,
        inference=p.inference, n_panels=p.n_fan_charts,
    )  # fmt: skip
    per_dataset, seconds, n_forecasts, panels = run.scores, run.seconds, run.total_forecasts, run.panels
    summary = relative_summary(per_dataset)
    b = p.bootstrap
    intervals = run.intervals(b.resamples, b.confidence, b.seed)
    parameters = {**dict.fromkeys(NAIVE, 0), **{m: count_parameters(pl) for m, pl in pipelines.items()}}
    metrics = {
        model: {
            "parameters": parameters[model],
            **{k: round(v, 6) for k, v in summary[model].items()},
            **{f"{k}_interval": [round(x, 6) for x in v] for k, v in intervals[model].items()},
        }
        for model in per_dataset
    }
    if {"teacher", "student"} <= set(pipelines):
        s, t = metrics["student"], metrics["teacher"]
        metrics["student_vs_teacher"] = {
            "relative_wql_ratio": round(s["relative_wql"] / t["relative_wql"], 4),
            "parameter_ratio": round(s["parameters"] / t["parameters"], 4),
        }
    metrics["inference"] = p.inference
    metrics["datasets"] = {
        name: {
            "n_forecasts": run.n_forecasts[name],
            **{m: {k: round(v, 6) for k, v in per_dataset[m][name].items()} for m in per_dataset},
        }
        for name in windows
    }
    models = [m for m in per_dataset if m not in NAIVE]  # seasonal naive scores 1 by definition
    def with_interval(m: str) -> dict:
        low, high = metrics[m]["relative_wql_interval"]
        return {"relative_wql": metrics[m]["relative_wql"], "relative_wql_low": low, "relative_wql_high": high}

    headline = {m: with_interval(m) for m in models}  # relative MASE and the rest: reports/forecast.json
    headline[LAST_VALUE] = {"relative_wql": metrics[LAST_VALUE]["relative_wql"]}
    if "student_vs_teacher" in metrics:
        headline["student_vs_teacher"] = {
            "relative_wql_ratio": metrics["student_vs_teacher"]["relative_wql_ratio"]
        }
    write_results("forecast", metrics, headline)
    write_csv(
        [{"model": m, **{k: round(v, 6) for k, v in summary[m].items()}} for m in per_dataset],
        "plots/forecast/relative_scores.csv",
    )
    fan_charts(panels, p.quantile_levels, "plots/forecast/fan_charts.png")
    for m in per_dataset:
        print(f"{m}: {metrics[m]} ({n_forecasts / max(seconds[m], 1e-9):.1f} series/s)")
    if not np.isfinite([summary[m]["relative_wql"] for m in summary]).all():
        print("warning: a relative score is not finite (a dataset where seasonal naive scores 0?)")


if __name__ == "__main__":
    run_stage(main)
