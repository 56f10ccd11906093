"""Stage evaluate_dysts: zero-shot vs fine-tuned Chronos on the held-out dysts *test* systems, next to
seasonal naive and last-value naive.

Per system and aggregated (median, mean over systems): sMAPE, MASE, valid prediction time (steps and
Lyapunov times). Fails if a test system appears in the training trajectories. Also re-scores both models
on the held-out tasks of evaluate_forecast (fev's skill score vs seasonal naive) to show whether
fine-tuning cost generic skill. Outs: metrics/dysts_eval.json, plots/dysts_eval/per_system.csv,
plots/dysts_eval/forecasts.csv (forecast vs truth, for `dvc plots`), plots/dysts_eval/forecasts.png,
plots/dysts_eval/smape_by_system.png.
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load

from typing import Self
import matplotlib.pyplot as plt
import numpy as np

from pydantic import ValidationInfo, model_validator
from tsfmlab.cli import run_stage
from tsfmlab.evaluation.baselines import LAST_VALUE
from tsfmlab.evaluation.dysts_eval import (
    aggregate,
    load_test_trajectories,
    median_forecasts,
    naive_forecasts,
    per_system,
    trajectory_scores,
)
from tsfmlab.evaluation.forecast_params import TaskParams, fev_tasks
from tsfmlab.evaluation.forecasting import benchmark, chronos_forecaster
from tsfmlab.evaluation.plots import fan_charts, save_figure, write_csv
from tsfmlab.models.fast_paths import Inference, require_tested
from tsfmlab.io.atomic import write_results
from tsfmlab.models.loading import load_pipeline
from tsfmlab.params import (
    Named,
    Params,
    PositiveFloat,
    PositiveInt,
    QuantileLevels,
    Shared,
    load_params,
    param,
    parse_section,
    section_of,
    stage_params,
)
from tsfmlab.training.dysts_finetune_data import load_train_trajectories

SECTION = "evaluate_dysts"
MODELS = ("zero_shot", "finetuned")


class EvaluateDystsParams(Params):
    zero_shot: str  # the base model before fine-tuning (finetune_dysts.base_model)
    finetuned: str
    dysts_dir: str
    context_length: PositiveInt
    horizon: PositiveInt  # steps forecast (autoregressive past the model's own length)
    num_samples: PositiveInt
    batch_size: PositiveInt
    vpt_threshold: PositiveFloat  # sMAPE (0-200) above which a forecast step is invalid
    n_plots: int
    seed: int
    generic: bool  # also re-score both models on evaluate_forecast's held-out datasets
    inference: Inference  # fast: tsfmlab.models.chronos_sampling; library: chronos-forecasting's predict

    @model_validator(mode="after")
    def _tested_inference(self, info: ValidationInfo) -> Self:
        if self.inference == "fast":
            require_tested("chronos_t5_sampling", f"param {section_of(info, SECTION)}.inference=fast")
        return self


class HeldoutTasks(Params):
    """What the generic re-scoring reads of evaluate_forecast: its held-out tasks and metrics."""

    tasks: Named[TaskParams]
    datasets_mirror: str
    eval_metric: str
    extra_metrics: list[str]
    quantile_levels: Shared[QuantileLevels]


def generic_scores(pipelines: dict, p: EvaluateDystsParams) -> dict:
    """fev's skill score (vs seasonal naive) on every metric of evaluate_forecast's held-out tasks."""
    values = {k: param(f"evaluate_forecast.{k}") for k in ("tasks", "datasets_mirror", "eval_metric", "extra_metrics")}
    ep = parse_section(HeldoutTasks, values, "evaluate_forecast", load_params().get("shared"))
    models = {name: chronos_forecaster(pl, p.batch_size, p.num_samples, p.seed, inference=p.inference)
              for name, pl in pipelines.items()}  # fmt: skip
    run = benchmark(models, fev_tasks(ep, benchmark=False), mirror=ep.datasets_mirror)
    boards = {m: run.leaderboard(m) for m in [ep.eval_metric, *ep.extra_metrics]}
    return {model: {f"skill_score_{m.lower()}": round(float(b.loc[model, "skill_score"]), 6) for m, b in boards.items()}
            for model in pipelines}  # fmt: skip


def smape_bars(by_model: dict, path: str) -> None:
    systems = list(next(iter(by_model.values())))
    y = np.arange(len(systems))
    fig, ax = plt.subplots(figsize=(7, 0.25 * len(systems) + 1.2))
    height = 0.8 / len(by_model)
    for i, (model, rows) in enumerate(by_model.items()):
        offset = (i - (len(by_model) - 1) / 2) * height
        ax.barh(y + offset, [rows[s]["smape"] for s in systems], height=height, label=model)
    ax.set_yticks(y, systems, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("sMAPE (0-200)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def main() -> None:
    p = stage_params(EvaluateDystsParams, SECTION)
    load_train_trajectories(p.dysts_dir)  # refuses a held-out system in the training trajectories
    trajectories = load_test_trajectories(p.dysts_dir, p.context_length, p.horizon)
    pipelines = {
        "zero_shot": load_pipeline(p.zero_shot, "chronos-t5"),
        "finetuned": load_pipeline(p.finetuned),
    }

    forecasts, by_system, seconds = {}, {}, {}
    for model, pipeline in pipelines.items():
        forecasts[model], seconds[model] = median_forecasts(
            pipeline, trajectories, p.horizon, p.batch_size, p.num_samples, p.seed, inference=p.inference
        )
    forecasts.update(naive_forecasts(trajectories, p.horizon))
    for model, rows in forecasts.items():
        scores = [trajectory_scores(t, f, p.vpt_threshold) for t, f in zip(trajectories, rows)]
        by_system[model] = per_system(trajectories, scores)

    systems = list(by_system["zero_shot"])
    improved = sum(by_system["finetuned"][s]["smape"] < by_system["zero_shot"][s]["smape"] for s in systems)
    metrics = {model: {k: round(v, 6) for k, v in aggregate(by_system[model]).items()} for model in forecasts}
    metrics.update(n_systems=len(systems), n_trajectories=len(trajectories), n_improved_smape=int(improved))
    metrics["inference"] = p.inference
    if p.generic:
        metrics["generic"] = generic_scores(pipelines, p)
    headline = {m: {k: metrics[m][k] for k in ("median_smape", "median_vpt_lyapunov")} for m in MODELS}
    headline[LAST_VALUE] = {"median_smape": metrics[LAST_VALUE]["median_smape"]}
    if p.generic:
        headline["generic"] = {m: {"skill_score": next(iter(metrics["generic"][m].values()))} for m in MODELS}
    write_results("dysts_eval", metrics, headline)

    def r(v):
        return None if v is None else round(v, 6)

    write_csv(
        [
            {"system": s, **{f"{m}_{k}": r(by_system[m][s][k]) for m in by_system for k in by_system[m][s]}}
            for s in systems
        ],
        "plots/dysts_eval/per_system.csv",
    )
    shown = trajectories[: p.n_plots]
    write_csv(
        [
            {"system": t["system"], "step": step, "truth": round(float(t["truth"][0, step]), 6),
             **{m: round(float(forecasts[m][i][0, step]), 6) for m in MODELS}}
            for i, t in enumerate(shown)
            for step in range(p.horizon)
        ],
        "plots/dysts_eval/forecasts.csv",
    )  # fmt: skip
    fan_charts(
        [
            {
                "title": f"{t['system']} (channel 0)",
                "history": t["context"][0],
                "truth": t["truth"][0],
                "forecasts": {m: forecasts[m][i][:1].T for m in MODELS},
            }
            for i, t in enumerate(shown)
        ],
        [0.5],
        "plots/dysts_eval/forecasts.png",
    )
    smape_bars(by_system, "plots/dysts_eval/smape_by_system.png")
    n_series = sum(len(t["context"]) for t in trajectories)
    for m in forecasts:
        speed = f" ({n_series / seconds[m]:.1f} series/s)" if m in seconds else ""
        print(f"{m}: {metrics[m]}{speed}")
    print(f"sMAPE improved on {improved} of {len(systems)} held-out systems")


if __name__ == "__main__":
    run_stage(main)
