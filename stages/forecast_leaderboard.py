"""Stage forecast_leaderboard: evaluate_forecast's fev summaries next to published fev results.

Reads --summaries (evaluate_forecast's fev evaluation summaries of every model on every held-out task)
and every published fev result table in ``forecast_leaderboard.published_dir`` (fev's
``benchmarks/*/results/*.csv``), joins them by task where the tasks are defined alike
(tsfmlab.evaluation.fev_tasks.compare_with_published) and ranks the models with ``fev.leaderboard`` on
``forecast_leaderboard.metric`` over the tasks every model has. Outs: reports/forecast_leaderboard.md
(the leaderboard, every task's score per model from ``fev.pivot_table``, and the tasks left out, each
named), reports/forecast_leaderboard.json (skill score and win rate of every model, the tasks compared
and left out), metrics/forecast_leaderboard.json (the project's models' skill score and win rate),
plots/forecast/leaderboard.csv (skill scores: a bar chart).
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
from pathlib import Path

import pandas as pd

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.errors import DataError
from tsfmlab.evaluation.baselines import NAIVE
from tsfmlab.evaluation.fev_tasks import compare_with_published
from tsfmlab.evaluation.plots import write_csv
from tsfmlab.io.atomic import write_results, write_text
from tsfmlab.params import Params, stage_params

SECTION = "forecast_leaderboard"


class LeaderboardParams(Params):
    published_dir: str  # published fev result CSVs (a dep); an empty directory: the project's models alone
    metric: str  # the summaries' column the models are ranked on (fev's metric names, or test_error)


def main() -> None:
    args = stage_args(summaries="evaluate_forecast's fev summaries")
    p = stage_params(LeaderboardParams, SECTION)
    try:
        summaries = pd.read_csv(args.summaries)
    except (OSError, ValueError) as err:
        raise DataError(f"{args.summaries}: missing or not a CSV of fev summaries ({err}); run evaluate_forecast") from err
    if p.metric not in summaries.columns:
        raise DataError(f"param {SECTION}.metric: {p.metric!r} is not a column of {args.summaries}")
    published = sorted(Path(p.published_dir).glob("*.csv"))
    comparison = compare_with_published(summaries, published, p.metric)
    board = comparison.leaderboard(p.metric)
    n_tasks = comparison.rows["task_name"].nunique()
    table = {
        model: {"skill_score": round(float(row["skill_score"]), 6), "win_rate": round(float(row["win_rate"]), 6)}
        for model, row in board.iterrows()
    }
    ours = set(summaries["model_name"]) - set(NAIVE)  # the project's models: the columns of dvc exp show
    headline = {m: v for m, v in table.items() if m in ours}
    write_results("forecast_leaderboard", {**table, "tasks_compared": int(n_tasks), "left_out": comparison.missing},
                  headline)  # fmt: skip
    columns = ["win_rate", "skill_score", "num_failures"]
    text = [
        f"# Forecast leaderboard ({p.metric}, {n_tasks} task(s) that every model has)\n",
        f"Published results: {', '.join(f.name for f in published) or f'none in {p.published_dir}'}.\n",
        board[columns].round(4).to_markdown(), "",
        f"## {p.metric} per task\n", comparison.per_task.round(4).to_markdown(), "",
        "## Left out\n", *([f"- {line}" for line in comparison.missing] or ["none"]), "",
    ]  # fmt: skip
    write_text("reports/forecast_leaderboard.md", "\n".join(text))
    write_csv([{"model": m, "skill_score": table[m]["skill_score"]} for m in board.index],
              "plots/forecast/leaderboard.csv")  # fmt: skip
    print(board[columns].round(4).to_string())
    for line in comparison.missing:
        print(f"left out: {line}")


if __name__ == "__main__":
    run_stage(main)
