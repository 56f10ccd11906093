"""fev tasks: the published Seasonal Naive row of Chronos Benchmark II reproduced offline, fev's scores
against the project's gluonts scorers on the same forecasts, and bad input named by its task."""

import csv
import os

import fev
import numpy as np
import pytest

from tsfmlab.data.fev_data import SHIPPED, mirror_packaged, packaged_items, write_fev_dataset
from tsfmlab.errors import DataError
from tsfmlab.evaluation import metrics
from tsfmlab.evaluation.fev_tasks import (
    SEASONAL_NAIVE,
    evaluate,
    load_tasks,
    naive_predictions,
)

LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


@pytest.fixture(scope="module")
def m1_yearly(tmp_path_factory):
    """The mirror directory holding monash_m1_yearly (from aeon's copy of the Monash file)."""
    root = tmp_path_factory.mktemp("mirror")
    mirror_packaged("monash_m1_yearly", root)
    return root


def published(path, task: str, model_column: str = "model_name") -> dict:
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["task_name"] == task]
    assert len(rows) == 1, f"{path}: {len(rows)} rows for {task}"
    return rows[0]


@pytest.mark.parametrize("config", sorted(SHIPPED))
def test_seasonal_naive_on_shipped_benchmark_data_gives_the_published_row(shared_dir, tmp_path, config):
    """A Benchmark II task from its own task file, its data mirrored from the package that ships it and
    read offline through fev's mirror prefix, Seasonal Naive, fev's summary: fev's published Seasonal
    Naive scores (MASE, WQL) to 1e-6."""
    bench = shared_dir / "reference" / "fev" / "chronos_zeroshot"
    [task] = load_tasks(bench / "tasks.yaml", [config])
    mirror_packaged(config, tmp_path)
    summary = evaluate(task, naive_predictions, SEASONAL_NAIVE, mirror=tmp_path)
    row = published(bench / "results" / "seasonal_naive.csv", config)
    assert summary["eval_metric"] == row["eval_metric"] == "MASE"
    for metric in ("MASE", "WQL", "test_error"):
        assert summary[metric] == pytest.approx(float(row[metric]), abs=1e-6), metric


def window_arrays(task, predictions_per_window):
    """truth (N, H), quantiles (N, H, Q) and histories of every window, as the project's scorers take them."""
    out = []
    for window, preds in zip(task.iter_windows(), predictions_per_window):
        past, _ = window.get_input_data()
        truth = np.stack([np.asarray(x, np.float64) for x in window.get_ground_truth()[task.target]])
        q = np.stack([np.stack([p[str(level)] for level in task.quantile_levels], axis=-1) for p in preds])
        median = np.stack([p["predictions"] for p in preds])
        out.append((truth, q, median, [np.asarray(x, np.float64) for x in past[task.target]]))
    return out


@pytest.mark.parametrize("num_windows", [1, 2])
def test_fev_scores_agree_with_the_gluonts_scorers_on_the_same_forecasts(tmp_path, num_windows):
    """WQL and MASE of random quantile forecasts: fev's equal metrics.wql / metrics.mase (gluonts) to 1e-9
    on each window. Over several windows fev averages the windows' scores, where the Chronos evaluation
    pools the windows' losses before dividing: the one definition that differs."""
    items = [it for it in packaged_items("monash_m1_yearly") if len(it["target"]) >= 20]
    path = write_fev_dataset(items, tmp_path / "m1" / "data.parquet")
    task = fev.Task(dataset_path=str(path), horizon=6, num_windows=num_windows, seasonality=2, eval_metric="MASE",
                    extra_metrics=["WQL"], quantile_levels=LEVELS)  # fmt: skip
    rng = np.random.default_rng(0)

    def predict(task, past, future):
        last = np.array([x[-1] for x in past[task.target]], dtype=np.float64)
        spread = np.sort(rng.normal(size=(len(last), task.horizon, len(LEVELS))), axis=-1)
        q = last[:, None, None] * (1 + 0.1 * spread)
        return [{"predictions": qi[:, 4], **{str(lv): qi[:, j] for j, lv in enumerate(LEVELS)}} for qi in q]

    preds = [predict(task, w.get_input_data()[0], None) for w in task.iter_windows()]
    summary = task.evaluation_summary(preds, model_name="random")
    wqls, mases = [], []
    for truth, q, median, histories in window_arrays(task, preds):
        wqls.append(metrics.wql(truth, q, LEVELS))
        mases.append(metrics.mase(truth, median, metrics.seasonal_errors(histories, 2)))
    assert summary["WQL"] == pytest.approx(np.mean(wqls), abs=1e-9)
    assert summary["MASE"] == pytest.approx(np.mean(mases), abs=1e-9)
    if num_windows == 2:  # pooled over windows (the old aggregation) is another number
        pooled = metrics.wql(*[np.concatenate(x) for x in zip(*[(t, q) for t, q, _, _ in window_arrays(task, preds)])],
                             LEVELS)  # fmt: skip
        assert abs(pooled - summary["WQL"]) > 1e-6


def test_a_task_file_with_an_unknown_field_names_the_task(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text("tasks:\n- dataset_path: x/y\n  dataset_config: m1\n  horizon: 6\n  horizn: 6\n")
    with pytest.raises(DataError, match=r"task m1: unknown field\(s\) \['horizn'\]"):
        load_tasks(path)
    path.write_text("tasks:\n- dataset_path: x/y\n  dataset_config: m1\n  horizon: 6\n  num_windows: 0\n")
    with pytest.raises(DataError, match="task m1: Assertion failed, `num_windows` must satisfy >= 1$"):
        load_tasks(path)
    with pytest.raises(DataError, match="not a fev task file"):
        load_tasks(tmp_path / "missing.yaml")


@pytest.fixture(scope="module")
def m1_task(m1_yearly):
    return fev.Task(dataset_path=str(m1_yearly / "monash_m1_yearly" / "data.parquet"), horizon=6, seasonality=1,
                    eval_metric="MASE", extra_metrics=["WQL"], quantile_levels=LEVELS, task_name="m1")  # fmt: skip


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda p: [{**x, "predictions": x["predictions"][:-1]} for x in p], r"predictions has shape \(5,\)"),
        (lambda p: [{k: v for k, v in x.items() if k != "0.9"} for x in p], "forecast keys"),
        (lambda p: [{**x, "0.5": np.full(6, np.nan)} for x in p], "0.5 has NaN"),
        (lambda p: p[:-1], "180 forecasts for 181 items"),
    ],
)
def test_bad_forecasts_fail_naming_the_task_and_window(m1_task, spoil, message):
    def predict(task, past, future):
        return spoil(naive_predictions(task, past, future))

    with pytest.raises(DataError, match=f"task m1, window 0.*{message}"):
        evaluate(m1_task, predict, "spoiled")


def test_a_dataset_missing_from_the_mirror_names_the_task(tmp_path):
    task = fev.Task(dataset_path="autogluon/chronos_datasets", dataset_config="monash_m3_yearly", horizon=6)
    with pytest.raises(DataError, match=r"task monash_m3_yearly: cannot load its dataset .* \(not in the mirror"):
        evaluate(task, naive_predictions, SEASONAL_NAIVE, mirror=tmp_path)
    assert "FEV_DATASETS_PREFIX" not in os.environ  # set for a mirrored dataset's loading only


def test_the_command_writes_summaries_and_the_leaderboard_lists_missing_published_rows(m1_yearly, tmp_path, capsys):
    """Two tasks (M1 yearly under two names), seasonal naive and naive; a "published" table with a row for
    one task only: the leaderboard covers the complete task and names the other, never drops it silently."""
    import pandas as pd

    from tsfmlab.evaluation.fev_tasks import compare_with_published, main

    tasks = tmp_path / "tasks.yaml"
    task = ("- dataset_path: autogluon/chronos_datasets\n  dataset_config: monash_m1_yearly\n  horizon: 6\n"
            "  eval_metric: MASE\n  extra_metrics: [WQL]\n  quantile_levels: [0.1, 0.5, 0.9]\n")  # fmt: skip
    tasks.write_text("tasks:\n" + task + task.replace("horizon: 6", "horizon: 4") + "  task_name: m1_h4\n")
    out = tmp_path / "summaries.csv"
    main([str(tasks), "--model", "seasonal_naive", "--model", "naive", "--mirror", str(m1_yearly), "--out", str(out)])
    summaries = pd.read_csv(out)
    assert sorted(zip(summaries["task_name"], summaries["model_name"])) == [
        ("m1_h4", "naive"), ("m1_h4", "seasonal_naive"), ("monash_m1_yearly", "naive"),
        ("monash_m1_yearly", "seasonal_naive")]  # fmt: skip
    assert "| monash_m1_yearly |" in capsys.readouterr().out
    published = tmp_path / "published.csv"
    other = summaries[(summaries["task_name"] == "monash_m1_yearly") & (summaries["model_name"] == "naive")]
    other.assign(model_name="someone", test_error=other["test_error"] * 0.5).to_csv(published, index=False)
    comparison = compare_with_published(summaries, [published], "test_error")
    assert comparison.missing == ["m1_h4 (someone): no published row"]
    board = comparison.leaderboard("test_error")
    assert board.loc["someone", "win_rate"] == 1.0 and board.loc["someone", "skill_score"] == pytest.approx(0.5)
    assert np.isnan(comparison.per_task.loc["m1_h4", "someone"])  # shown, empty, in the per-task table
    # a published row of another task definition (here: another horizon) is named, not joined
    other.assign(model_name="someone", horizon=4).to_csv(published, index=False)
    comparison = compare_with_published(summaries, [published], "test_error")
    assert comparison.missing == ["m1_h4 (someone): no published row",
                                  "monash_m1_yearly (someone): published for another horizon"]  # fmt: skip


def test_a_multivariate_task_with_covariates_is_forecast_target_by_target(tmp_path):
    """Two target columns and covariates (one past-only, one known): every model forecasts each target
    from its univariate view; Chronos-2 also reads the covariates, and the known one changes its forecast
    (the future values reach it); fev scores the joined predictions."""
    from tests.evaluation.test_rolling import tiny_chronos2
    from tsfmlab.data.fev_data import nominal_timestamps
    from tsfmlab.evaluation.fev_tasks import chronos2_inputs, chronos_predictor, univariate_input

    rng = np.random.default_rng(0)
    t = np.arange(120)
    items = [{"id": f"s{i}", "timestamp": nominal_timestamps(120), "a": np.sin(t / 5) + i, "b": np.cos(t / 7) - i,
              "load": rng.normal(size=120), "hour": (t % 24).astype(float)} for i in range(2)]  # fmt: skip
    path = write_fev_dataset(items, tmp_path / "mv" / "data.parquet")
    task = fev.Task(dataset_path=str(path), horizon=16, num_windows=2, target=["a", "b"], seasonality=24,
                    past_dynamic_columns=["load"], known_dynamic_columns=["hour"], eval_metric="WQL",
                    quantile_levels=[0.1, 0.5, 0.9], task_name="mv")  # fmt: skip
    past, future = univariate_input(task.get_window(0))
    assert len(past) == 4 and list(past["id"]) == ["s0_a", "s0_b", "s1_a", "s1_b"]
    inputs = chronos2_inputs(task, past, future)
    assert set(inputs[0]["past_covariates"]) == {"load", "hour"} and len(inputs[0]["future_covariates"]["hour"]) == 16
    np.testing.assert_array_equal(inputs[1]["target"], np.float32(np.cos(t[:88] / 7)))  # s0_b: window 0's history

    for name, predict in (("seasonal_naive", naive_predictions), ("c2", chronos_predictor(tiny_chronos2(), 8, 1, 0))):
        summary = evaluate(task, predict, name)
        assert summary["num_forecasts"] == 2 * 2 * 2 and np.isfinite(summary["WQL"])  # windows x items x targets
    pipeline = tiny_chronos2()
    shifted = [{**x, "future_covariates": {"hour": x["future_covariates"]["hour"] + 100}} for x in inputs]
    from tsfmlab.evaluation.rolling import predict_chronos2

    base = predict_chronos2(pipeline, inputs, 16, [0.5], 4).median
    assert not np.allclose(base, predict_chronos2(pipeline, shifted, 16, [0.5], 4).median)
