"""Stage evaluate_energy: rolling-origin evaluation over the energy test period of the Chronos-2 of
stage chronos2 (zero-shot) and of every finetune_energy run, each in its covariate modes, with
seasonal naive, last-value naive and CatBoost lag-feature baselines on the same windows.

Outs: metrics/energy.json (MAE per horizon), reports/energy.json (rows: model, mode, covariates, horizon -> RMSE, MAE, R2, MAPE, WQL),
plots/energy/week.png (the first test week: forecast vs actual with quantile bands),
plots/energy/bars.png and plots/energy/rows.csv (metric bars per row).
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
import json
from dataclasses import dataclass, field
from pathlib import Path

from tsfmlab.cli import run_stage
from tsfmlab.data.energy import EnergyParams, load_frame
from tsfmlab.evaluation.baselines import CatBoostLagParams
from tsfmlab.evaluation.energy_eval import (
    evaluate_baselines,
    evaluate_chronos2,
    metric_bars,
    row_label,
    rows_table,
    week_figure,
    week_panel,
)
from tsfmlab.evaluation.plots import write_csv
from tsfmlab.evaluation.rolling import MODES
from tsfmlab.io.atomic import write_results
from tsfmlab.models.loading import load_pipeline
from tsfmlab.params import load_params, parse_section, positive

SECTION = "evaluate_energy"
ZERO_SHOT = Path("data/models/chronos2")
TUNED = Path("data/models/chronos2_energy")


@dataclass(frozen=True)
class EvaluateEnergyParams:
    batch_size: int = field(metadata=positive)  # windows per forward pass
    catboost: CatBoostLagParams
    plot_days: int = field(metadata=positive)


def main() -> None:
    params = load_params()
    p = parse_section(EvaluateEnergyParams, params.get(SECTION), SECTION)
    energy = parse_section(EnergyParams, params.get("energy"), "energy")
    frame = load_frame("data/energy/frame.safetensors")
    split = json.loads(Path("data/energy/split.json").read_text())
    val_start, test_start = split["val_start"], split["test_start"]
    runs = json.loads((TUNED / "runs.json").read_text())

    models = [("chronos2", "zero-shot", ZERO_SHOT, list(MODES))]
    models += [("chronos2", r["mode"], TUNED / r["name"], [r["covariates"]]) for r in runs]
    pipelines = {str(path): load_pipeline(path, "chronos-2") for _, _, path, _ in models}  # fail fast

    rows, panels = [], {}
    horizon, stride = max(energy.windows)
    for name, mode, path, covariates in models:
        result = evaluate_chronos2(
            pipelines[str(path)], name, mode, frame, test_start, energy, covariates, p.batch_size
        )
        rows += result.rows
        for cov in covariates:
            panel = week_panel(frame, test_start, horizon, stride, result.forecasts[(cov, horizon)],
                               energy.quantile_levels, p.plot_days)  # fmt: skip
            panels[f"{name}/{mode}/{cov}"] = panel
        print(
            f"evaluate_energy: {name}/{mode} ({', '.join(covariates)}): {result.windows_per_s:.0f} windows/s"
        )
    rows += evaluate_baselines(frame, val_start, test_start, energy, p.catboost, list(MODES))

    table = {f"{row_label(r)}/h{r['horizon']}": r for r in rows}  # dvc metrics show flattens dicts
    headline: dict[str, dict[str, float]] = {}  # MAE per horizon, without covariates and with all of them
    for r in rows:
        if r["covariates"] in (MODES[0], MODES[-1]):
            headline.setdefault(f"h{r['horizon']}", {})[row_label(r)] = r["mae"]
    write_results("energy", {"rows": table}, headline)  # wall-clock speeds are printed, not tracked
    week_figure(
        panels, energy.quantile_levels, f"first test days, {horizon}-step forecasts", "plots/energy/week.png"
    )
    metric_bars(rows, "plots/energy/bars.png")
    write_csv(rows_table(rows), "plots/energy/rows.csv")


if __name__ == "__main__":
    run_stage(main)
