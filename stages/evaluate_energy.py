"""Stage evaluate_energy: the energy test period as fev tasks (one per horizon, every window of the test
period; measured covariates past-only, calendar ones known), scored by fev: the Chronos-2 of stage
chronos2 (zero-shot) and of every finetune_energy run, each in its covariate modes, next to seasonal
naive, last-value naive and CatBoost lag-feature baselines (one per covariate mode).

Params: energy (data, horizons, strides, season, context_length, quantile levels), evaluate_energy.
Outs: metrics/energy.json (the tasks' eval_metric per horizon, without covariates and with all of them),
reports/energy.json (rows: model, mode, covariates, horizon -> fev's scores, RMSE over all points, R²;
fev's leaderboard: skill score and win rate over the horizons), reports/energy_summaries.csv (fev's
evaluation summaries), plots/energy/week.png (the first test week: forecast vs actual with quantile
bands), plots/energy/bars.png and plots/energy/rows.csv (metric bars per row).
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
from typing import Self
import json

from pydantic import ValidationInfo, field_validator, model_validator
from tsfmlab.cli import run_stage, stage_args
from tsfmlab.data.covariates import MODES
from tsfmlab.data.energy import FEV_FILE, EnergyParams, load_prepared
from tsfmlab.evaluation.energy_eval import (
    CatBoostLagParams,
    catboost_forecaster,
    energy_rows,
    energy_tasks,
    fit_catboost,
    metric_bars,
    row_label,
    rows_table,
    week_figure,
    week_panel,
)
from tsfmlab.evaluation.fev_tasks import write_summaries
from tsfmlab.evaluation.forecasting import benchmark, chronos_forecaster
from tsfmlab.evaluation.plots import write_csv
from tsfmlab.io.atomic import write_results
from tsfmlab.models.fast_paths import Inference, require_tested
from tsfmlab.models.loading import load_pipeline
from tsfmlab.params import Invalid, Params, PositiveInt, QuantileLevels, Shared, section_of, stage_params

SECTION = "evaluate_energy"


class EvaluateEnergyParams(Params):
    eval_metric: str  # fev metric: every task's test_error, the headline and the leaderboard's skill score
    extra_metrics: list[str]  # more fev metrics per row (MSE adds RMSE over all points)
    batch_size: PositiveInt  # windows per forward pass
    catboost: CatBoostLagParams
    plot_days: PositiveInt
    scoring: Inference  # fast: fev splits each window once for all models; library: fev's own path
    quantile_levels: Shared[QuantileLevels]  # WQL's and the fan charts'

    @field_validator("quantile_levels")
    @classmethod
    def _median(cls, levels: list[float]) -> list[float]:
        if 0.5 not in levels:
            raise Invalid(f"must include 0.5 (the energy forecasts' median), got {levels}")
        return levels

    @field_validator("eval_metric", "extra_metrics")
    @classmethod
    def _fev_metrics(cls, names: str | list[str]) -> str | list[str]:
        from fev.metrics import get_metric

        for name in [names] if isinstance(names, str) else names:
            try:
                get_metric(name)
            except ValueError as err:
                raise Invalid(f": {err}") from err
        return names

    @model_validator(mode="after")
    def _tested_scoring(self, info: ValidationInfo) -> Self:
        if self.scoring == "fast":
            require_tested("fev_window_splits", f"param {section_of(info, SECTION)}.scoring=fast")
        return self


def main() -> None:
    args = stage_args(
        zero_shot="stage chronos2's model", tuned="finetune_energy's runs", energy="prepare_energy's frame",
        energy_fev="prepare_energy's fev dataset",
    )
    p = stage_params(EvaluateEnergyParams, SECTION)
    energy = stage_params(EnergyParams, "energy")
    frame, val_start, test_start = load_prepared(args.energy)
    runs = json.loads((args.tuned / "runs.json").read_text())
    tasks = energy_tasks(args.energy_fev / FEV_FILE, frame, test_start, energy, p.eval_metric, p.extra_metrics, p.quantile_levels)

    models = [("chronos2", "zero-shot", args.zero_shot, list(MODES))]
    models += [("chronos2", r["mode"], args.tuned / r["name"], [r["covariates"]]) for r in runs]
    pipelines = {str(path): load_pipeline(path, "chronos-2") for _, _, path, _ in models}  # fail fast
    forecasters = {
        f"{name}/{mode}/{cov}": chronos_forecaster(pipelines[str(path)], p.batch_size, 1, 0, inference="library",
                                                   covariates=cov, context_length=energy.context_length)
        for name, mode, path, covariates in models
        for cov in covariates
    }  # fmt: skip
    catboost = fit_catboost(frame, val_start, test_start, energy, p.catboost)
    forecasters.update({f"catboost_lags/baseline/{cov}": catboost_forecaster(catboost, cov, frame)
                        for cov in MODES})  # fmt: skip
    run = benchmark(forecasters, tasks, keep=list(tasks), scoring=p.scoring)

    rows = energy_rows(run, tasks)
    for row in rows:
        if row["model"] == "catboost_lags":
            row["best_iteration"] = catboost[(row["horizon"], row["covariates"])].best_iteration
    key = p.eval_metric.lower()
    board = run.leaderboard(p.eval_metric)
    leaderboard = {m: {"skill_score": round(float(board.loc[m, "skill_score"]), 6),
                       "win_rate": round(float(board.loc[m, "win_rate"]), 6)} for m in board.index}  # fmt: skip
    table = {f"{row_label(r)}/h{r['horizon']}": r for r in rows}  # dvc metrics show flattens dicts
    headline: dict[str, dict[str, float]] = {}  # per horizon, without covariates and with all of them
    for r in rows:
        if r["covariates"] in (MODES[0], MODES[-1]):
            headline.setdefault(f"h{r['horizon']}", {})[row_label(r)] = r[key]
    write_results("energy", {"eval_metric": p.eval_metric, "rows": table, "leaderboard": leaderboard}, headline)
    write_summaries(run.summaries, "reports/energy_summaries.csv")  # wall-clock speeds are printed, not tracked

    horizon, stride = max(energy.windows)
    panels = {name: week_panel(frame, test_start, horizon, stride, f, p.quantile_levels, p.plot_days)
              for name, f in run.forecasts[f"h{horizon}"].items() if name.startswith("chronos2/")}  # fmt: skip
    week_figure(
        panels, p.quantile_levels, f"first test days, {horizon}-step forecasts", "plots/energy/week.png"
    )
    metric_bars(rows, "plots/energy/bars.png")
    write_csv(rows_table(rows), "plots/energy/rows.csv")
    for model, seconds in run.seconds.items():
        print(f"evaluate_energy: {model}: {run.total_forecasts / max(seconds, 1e-9):.0f} windows/s")


if __name__ == "__main__":
    run_stage(main)
