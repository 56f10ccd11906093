"""Stage evaluate_forecast: every model, seasonal naive and last-value naive on the held-out datasets as
fev tasks, scored by fev (evaluation_summary, leaderboard), each skill score with a series bootstrap interval.

Params: evaluate_forecast (models, tasks with their fev fields, metrics, quantile levels); and, to refuse
leakage, the training corpora of teacher and distill.
Outs: metrics/forecast.json (headline skill score with its interval per model),
reports/forecast.json (per model: parameters, skill score, relative error and win rate on every metric;
per task: fev's scores), --summaries (fev's evaluation summaries as CSV, one row per task and
model: what fev.leaderboard and published rows join on), plots/forecast/skill_scores.csv (bar chart),
plots/forecast/fan_charts.png. Every out is a function of the params and deps alone; the inference
throughput (series/s, a wall-clock figure) goes to the log, and ``bench/bench_forecast_throughput.py``
measures it against a reference.
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
from pathlib import Path

import numpy as np

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.errors import ParamError
from tsfmlab.evaluation.baselines import LAST_VALUE, NAIVE
from tsfmlab.evaluation.fev_tasks import check_datasets, write_summaries
from tsfmlab.evaluation.forecast_params import EvaluateParams, fev_tasks
from tsfmlab.evaluation.forecasting import benchmark, chronos_forecaster
from tsfmlab.evaluation.plots import fan_charts, write_csv
from tsfmlab.io.atomic import write_results
from tsfmlab.models.loading import count_parameters
from tsfmlab.models.ttm import load_model
from tsfmlab.params import param, stage_params

SECTION = "evaluate_forecast"


def check_heldout(p: EvaluateParams) -> None:
    """Refuse a task whose dataset file lies in a training corpus of teacher or distill (the real datasets
    that build_mixups mixes in are refused by prepare_heldout, which writes the packaged ones)."""
    trained = {Path(x).resolve() for x in param("teacher.data.training_data_paths")
               + param("distill.data.training_data_paths")}  # fmt: skip
    for name, t in p.tasks.items():
        path = Path(t.dataset_path).resolve()
        if t.dataset_config is None and any(path == x or x in path.parents or path in x.parents for x in trained):
            raise ParamError(f"param {SECTION}.tasks.{name}.dataset_path: {t.dataset_path} overlaps a training corpus")


def main() -> None:
    args = stage_args(summaries="fev's evaluation summaries (forecast_leaderboard's input)")
    p = stage_params(EvaluateParams, SECTION)
    check_heldout(p)
    tasks = fev_tasks(p)
    check_datasets(list(tasks.values()))
    pipelines = {name: load_model(source) for name, source in p.models.items()}  # fail before work (any family, TTM too)
    models = {name: chronos_forecaster(pl, p.batch_size, p.num_samples, p.seed, inference=p.inference)
              for name, pl in pipelines.items()}  # fmt: skip
    run = benchmark(models, tasks, n_panels=p.n_fan_charts, mirror=p.datasets_mirror)
    metrics_names = [p.eval_metric, *p.extra_metrics]  # fev's column of each metric
    boards = {m: run.leaderboard(m) for m in metrics_names}
    b = p.bootstrap
    intervals = {m: run.intervals(m, b.resamples, b.confidence, b.seed)  # the parts the series bootstrap recomputes
                 for m in metrics_names if m in ("WQL", "MASE")}  # fmt: skip
    parameters = {**dict.fromkeys(NAIVE, 0), **{m: count_parameters(pl) for m, pl in pipelines.items()}}
    metrics = {}
    for model in run.parts:
        row = {"parameters": parameters[model]}
        for m in metrics_names:
            skill = float(boards[m].loc[model, "skill_score"])
            row[f"skill_score_{m.lower()}"] = round(skill, 6)
            row[f"relative_{m.lower()}"] = round(1.0 - skill, 6)  # fev's geometric mean relative error
            row[f"win_rate_{m.lower()}"] = round(float(boards[m].loc[model, "win_rate"]), 6)
            if m in intervals:
                low, high = intervals[m][model]
                row[f"skill_score_{m.lower()}_interval"] = [round(low, 6), round(high, 6)]
        metrics[model] = row
    key = metrics_names[0].lower()
    if {"teacher", "student"} <= set(pipelines):
        s, t = metrics["student"], metrics["teacher"]
        metrics["student_vs_teacher"] = {
            f"relative_{key}_ratio": round(s[f"relative_{key}"] / t[f"relative_{key}"], 4),
            "parameter_ratio": round(s["parameters"] / t["parameters"], 4),
        }
    metrics["inference"] = p.inference
    scores = {m: run.scores(m) for m in metrics_names}
    metrics["tasks"] = {
        name: {"n_forecasts": run.n_forecasts[name],
               **{model: {m: round(scores[m][model][name], 6) for m in metrics_names} for model in run.parts}}
        for name in tasks
    }  # fmt: skip

    def headline_of(model: str) -> dict:
        row = metrics[model]
        out = {"skill_score": row[f"skill_score_{key}"]}  # win rates: reports/ and the forecast leaderboard
        if f"skill_score_{key}_interval" in row:
            out["skill_score_low"], out["skill_score_high"] = row[f"skill_score_{key}_interval"]
        return out

    headline = {m: headline_of(m) for m in run.parts if m not in NAIVE}  # seasonal naive's skill is 0
    headline[LAST_VALUE] = {"skill_score": metrics[LAST_VALUE][f"skill_score_{key}"]}
    write_results("forecast", metrics, headline)
    write_summaries(run.summaries, args.summaries)
    write_csv(
        [{"model": m, **{f"skill_score_{x.lower()}": metrics[m][f"skill_score_{x.lower()}"] for x in metrics_names}}
         for m in run.parts],
        "plots/forecast/skill_scores.csv",
    )  # fmt: skip
    fan_charts(run.panels, p.quantile_levels, "plots/forecast/fan_charts.png")
    for m in run.parts:
        print(f"{m}: {metrics[m]} ({run.total_forecasts / max(run.seconds[m], 1e-9):.1f} series/s)")
    if not np.isfinite([metrics[m][f"skill_score_{key}"] for m in run.parts]).all():
        print("warning: a skill score is not finite (a task where seasonal naive scores 0?)")


if __name__ == "__main__":
    run_stage(main)
