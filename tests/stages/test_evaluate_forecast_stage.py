"""The evaluate_forecast stage on tiny data with random-weight models: outputs, determinism, bad input."""

import json
import shutil
from pathlib import Path

import fev
import pandas as pd
import pytest

from tests.conftest import (
    REPO,
    TINY,
    run_stage_in_process,
    run_stage_script,
    stage_outputs,
    tiny_chronos,
    write_params,
)
from tsfmlab.params import load_params


def task(path: str, horizon: int, num_windows: int, seasonality: int, config=None) -> dict:
    return {"dataset_path": path, "dataset_config": config, "horizon": horizon, "num_windows": num_windows,
            "window_step_size": None, "seasonality": seasonality}  # fmt: skip


TASKS = {
    "dysts_test": task("data/fev/dysts_test/*.parquet", 8, 1, 10),
    "kernelsynth_test": task("data/fev/kernelsynth_test/*.parquet", 8, 2, 8),
    "solar": task("data/fev/heldout/solar.parquet", 16, 2, 48),  # (its last 8 points are night: WQL 0/0)
    "monash_m1_yearly": task("autogluon/chronos_datasets", 6, 1, 1, config="monash_m1_yearly"),
}
EVALUATE = {
    **load_params(REPO / "params.yaml")["evaluate_forecast"],
    "models": {"teacher": "data/models/teacher", "student": "data/models/student"},
    "tasks": TASKS,
    "num_samples": 4,
    "batch_size": 8,
    "n_fan_charts": 2,
}


@pytest.fixture(scope="module")
def with_models(tiny_run, tmp_path_factory) -> Path:
    """Tiny data plus a random-weight 'teacher' and a smaller 'student' (no training needed here)."""
    from tsfmlab.models.loading import save_pipeline

    work = tmp_path_factory.mktemp("models")
    shutil.copytree(tiny_run / "data", work / "data")
    save_pipeline(tiny_chronos(seed=0), work / "data/models/teacher")
    save_pipeline(tiny_chronos(seed=1, num_layers=1, num_decoder_layers=1), work / "data/models/student")
    return work


def workdir(with_models: Path, dest: Path, shared: dict | None = None, **changes) -> Path:
    shutil.copytree(with_models / "data", dest / "data")
    (dest / "data/raw").mkdir(exist_ok=True)
    shutil.copy(REPO / "data/raw/fev_tasks.yaml", dest / "data/raw/fev_tasks.yaml")  # the benchmark: none
    shared = {**load_params(REPO / "params.yaml")["shared"], **(shared or {})}
    write_params(dest, {**TINY, "shared": shared, "evaluate_forecast": {**EVALUATE, **changes}})
    return dest


def items(path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in sorted(path.parent.glob(path.name)))


def test_writes_fev_scores_for_every_model_and_repeats(with_models, tmp_path):
    work = workdir(with_models, tmp_path)
    run_stage_script("evaluate_forecast", work)
    for rel in stage_outputs("evaluate_forecast"):
        assert (work / rel).exists(), rel
    metrics = json.loads((work / "reports/forecast.json").read_text())
    assert metrics["seasonal_naive"]["skill_score_wql"] == 0.0 and metrics["seasonal_naive"]["relative_wql"] == 1.0
    for model in ("teacher", "student", "last_value_naive"):
        row = metrics[model]
        assert not any("per_s" in k for k in row)  # timings: the log only
        assert row["relative_wql"] == pytest.approx(1 - row["skill_score_wql"], abs=2e-6) and row["relative_mase"] > 0
        low, high = row["skill_score_wql_interval"]
        assert low <= row["skill_score_wql"] <= high and 0 <= row["win_rate_wql"] <= 1
    assert metrics["teacher"]["parameters"] > metrics["student"]["parameters"] > 0
    ratio = metrics["student_vs_teacher"]
    assert ratio["parameter_ratio"] < 1
    assert ratio["relative_wql_ratio"] == pytest.approx(
        metrics["student"]["relative_wql"] / metrics["teacher"]["relative_wql"], rel=1e-3
    )
    windows = {name: t["num_windows"] for name, t in TASKS.items()}
    expected = {name: windows[name] * items(work / t["dataset_path"]) for name, t in TASKS.items() if t["dataset_config"] is None}
    assert {d: v["n_forecasts"] for d, v in metrics["tasks"].items()} == {**expected, "monash_m1_yearly": 181}
    summaries = pd.read_csv(work / "reports/forecast_summaries.csv")
    assert len(summaries) == 4 * len(TASKS) and summaries["inference_time_s"].isna().all()  # no wall clock
    board = fev.leaderboard(summaries)  # what fev's own tools make of the stage's summaries
    assert board.loc["teacher", "skill_score"] == pytest.approx(metrics["teacher"]["skill_score_wql"], abs=1e-6)
    headline = json.loads((work / "metrics/forecast.json").read_text())
    assert set(headline["teacher"]) == {"skill_score", "skill_score_low", "skill_score_high"}
    table = (work / "plots/forecast/skill_scores.csv").read_text().splitlines()
    assert table[0] == "model,skill_score_wql,skill_score_mase" and len(table) == 5  # 2 naive baselines, 2 models

    # same params, the same bytes in every out
    again = workdir(with_models, tmp_path / "again")
    run_stage_script("evaluate_forecast", again)
    for rel in stage_outputs("evaluate_forecast"):
        assert (again / rel).read_bytes() == (work / rel).read_bytes(), rel


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"tasks": {"leak": task("data/kernelsynth/train/x.parquet", 8, 1, 1)}},
            "evaluate_forecast.tasks.leak.dataset_path: data/kernelsynth/train/x.parquet overlaps a training corpus",
        ),
        ({"models": {"teacher": "data/models/nowhere/x"}}, "neither a local directory nor reachable"),
        ({"models": {"seasonal_naive": "data/models/teacher"}}, "built-in baseline"),
        ({"shared": {"quantile_levels": [0.5, 0.1]}}, "shared.quantile_levels must be increasing"),
        ({"tasks": {"s": task("data/fev/heldout/solar.parquet", 8, 0, 48)}}, "tasks.s.num_windows must be > 0"),
        ({"eval_metric": "WQLL"}, "evaluate_forecast.tasks.dysts_test: fev refuses the task"),
        ({"tasks": {"s": task("data/fev/heldout/nowhere.parquet", 8, 1, 48)}}, "task s: no file matches its dataset_path data/fev/heldout/nowhere.parquet"),
        ({"tasks": {"s": task("data/fev/heldout/solar.parquet", 8, 1, 48)}}, "task(s) ['s']: seasonal_naive's WQL is [nan]"),
        ({"tasks": {"m": task("autogluon/chronos_datasets", 6, 1, 1, config="monash_m3_yearly")}},
         "task m: cannot load its dataset autogluon/chronos_datasets monash_m3_yearly (not in the mirror"),
        ({"benchmark": {"tasks_file": "bench.yaml", "tasks": ["solar"]}},
         "bench.yaml has a task named 'solar', as evaluate_forecast.tasks has"),
        ({"benchmark": {"tasks_file": "bench.yaml", "tasks": ["nope"]}}, "bench.yaml: no task named ['nope']"),
    ],
)  # fmt: skip
def test_bad_input_fails_before_writing(with_models, tmp_path, changes, message):
    work = workdir(with_models, tmp_path, **changes)
    (work / "bench.yaml").write_text("tasks:\n- {dataset_path: data/fev/heldout/solar.parquet, horizon: 8, task_name: solar}\n")
    proc = run_stage_in_process("evaluate_forecast", work)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not any((work / rel).exists() for rel in stage_outputs("evaluate_forecast"))


def test_the_leaderboard_joins_published_rows_of_the_same_tasks(with_models, tmp_path, shared_dir):
    """The project's summaries alone, then next to fev's published Benchmark II rows: only M1 yearly is a
    published task, so it alone is compared, and every other task is named as left out."""
    work = workdir(with_models, tmp_path)
    run_stage_script("evaluate_forecast", work)
    (work / "data/raw/fev_results").mkdir(parents=True)
    run_stage_script("forecast_leaderboard", work)
    ours = json.loads((work / "metrics/forecast.json").read_text())
    alone = json.loads((work / "metrics/forecast_leaderboard.json").read_text())
    assert set(alone) == {"teacher", "student"}
    assert alone["teacher"]["skill_score"] == pytest.approx(ours["teacher"]["skill_score"], abs=1e-6)
    assert "Published results: none in data/raw/fev_results" in (work / "reports/forecast_leaderboard.md").read_text()

    results = shared_dir / "reference" / "fev" / "chronos_zeroshot" / "results"
    shutil.copy(results / "chronos_bolt_small.csv", work / "data/raw/fev_results")
    run_stage_script("forecast_leaderboard", work)
    report = json.loads((work / "reports/forecast_leaderboard.json").read_text())
    assert report["tasks_compared"] == 1
    assert "dysts_test (chronos_bolt_small): no published row" in report["left_out"]
    assert len(report["left_out"]) == len(TASKS) - 1
    bolt = pd.read_csv(results / "chronos_bolt_small.csv").set_index("task_name").loc["monash_m1_yearly", "WQL"]
    naive = pd.read_csv(work / "reports/forecast_summaries.csv")
    naive = naive[(naive.task_name == "monash_m1_yearly") & (naive.model_name == "seasonal_naive")]["WQL"].item()
    assert report["chronos_bolt_small"]["skill_score"] == pytest.approx(1 - bolt / naive, abs=1e-6)
    table = (work / "reports/forecast_leaderboard.md").read_text()
    assert "chronos_bolt_small" in table and "- solar (chronos_bolt_small): no published row" in table

    write_params(work, {**TINY, "evaluate_forecast": EVALUATE, "forecast_leaderboard": {"metric": "NOPE"}})
    proc = run_stage_in_process("forecast_leaderboard", work)
    assert proc.returncode == 2 and "forecast_leaderboard.metric: 'NOPE' is not a column" in proc.stderr


def test_a_benchmark_task_file_joins_with_its_own_definitions(with_models, tmp_path):
    """A fev task file of one task with two target columns, a past-only and a known covariate, its own
    metric: the stage runs it next to the held-out tasks, as the file defines it."""
    import numpy as np

    from tsfmlab.data.fev_data import nominal_timestamps, write_fev_dataset

    t = np.arange(100)
    items = [{"id": f"s{i}", "timestamp": nominal_timestamps(100), "a": np.sin(t / 5) + 3 + i, "b": np.cos(t / 9) + 5,
              "load": np.sin(t / 3), "hour": (t % 24).astype(float)} for i in range(2)]  # fmt: skip
    work = workdir(with_models, tmp_path, tasks={"solar": TASKS["solar"]},
                   benchmark={"tasks_file": "data/raw/bench.yaml", "tasks": None})  # fmt: skip
    write_fev_dataset(items, work / "data/raw/mv.parquet")
    (work / "data/raw/bench.yaml").write_text(
        "tasks:\n- {dataset_path: data/raw/mv.parquet, horizon: 8, num_windows: 2, seasonality: 24, target: [a, b],\n"
        "   past_dynamic_columns: [load], known_dynamic_columns: [hour], eval_metric: MASE, extra_metrics: [WQL],\n"
        "   quantile_levels: [0.1, 0.5, 0.9], task_name: mv}\n"
    )
    run_stage_script("evaluate_forecast", work)
    summaries = pd.read_csv(work / "reports/forecast_summaries.csv").set_index(["task_name", "model_name"])
    row = summaries.loc[("mv", "teacher")]
    assert row["eval_metric"] == "MASE" and row["test_error"] == row["MASE"] and row["num_forecasts"] == 8
    assert json.loads((work / "reports/forecast.json").read_text())["tasks"]["mv"]["n_forecasts"] == 8
