"""fev tasks: the published Seasonal Naive row of Chronos Benchmark II reproduced offline, fev's scores
against the gluonts scorers of the project's earlier evaluation on the same forecasts, and bad input named
by its task."""

import csv
import os

import fev
import numpy as np
import pytest

from tsfmlab.data.fev_data import SHIPPED, mirror_packaged, packaged_items, write_fev_dataset
from tsfmlab.errors import DataError
from tsfmlab.evaluation.baselines import LAST_VALUE, SEASONAL_NAIVE
from tsfmlab.evaluation.fev_tasks import load_tasks
from tsfmlab.evaluation.forecasting import benchmark, chronos_forecaster, predict_chronos2
from tsfmlab.evaluation.metrics import Forecasts

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
    [summary] = [s for s in benchmark({}, {config: task}, mirror=tmp_path).summaries if s["model_name"] == SEASONAL_NAIVE]
    row = published(bench / "results" / "seasonal_naive.csv", config)
    assert summary["eval_metric"] == row["eval_metric"] == "MASE"
    for metric in ("MASE", "WQL", "test_error"):
        assert summary[metric] == pytest.approx(float(row[metric]), abs=1e-6), metric


def gluonts_score(metric, truth, median=None, quantiles=None, levels=()) -> float:
    """A gluonts.ev metric (the scorers of the project's evaluation before fev) pooled over every point of
    ``truth`` ``(N, H)``: the ``median`` ``(N, H)`` and ``quantiles`` ``(N, H, Q)`` at ``levels``."""
    data = {"label": np.ma.masked_invalid(np.asarray(truth, np.float64))}
    if median is not None:
        data["0.5"] = np.asarray(median, np.float64)
    if quantiles is not None:
        data.update({str(q): np.asarray(quantiles[..., i], np.float64) for i, q in enumerate(levels)})
    return float(metric(axis=None).update(data).get())


@pytest.mark.parametrize("num_windows", [1, 2])
def test_fev_scores_agree_with_the_gluonts_scorers_on_the_same_forecasts(tmp_path, num_windows):
    """Random quantile forecasts of M1 yearly scored by fev and, on each window, by the gluonts scorers of
    the earlier evaluation: WQL, MASE (scaled by the item's seasonal error), sMAPE, MAE and MAPE agree to
    1e-9. Over several windows fev averages the windows' scores, where the Chronos evaluation pooled the
    windows' losses before dividing: the one definition that differs."""
    from gluonts.ev.metrics import MAE, MAPE, MASE, SMAPE, MeanWeightedSumQuantileLoss
    from gluonts.ev.ts_stats import seasonal_error

    items = [it for it in packaged_items("monash_m1_yearly") if len(it["target"]) >= 20]
    path = write_fev_dataset(items, tmp_path / "m1" / "data.parquet")
    task = fev.Task(dataset_path=str(path), horizon=6, num_windows=num_windows, seasonality=2, eval_metric="MASE",
                    extra_metrics=["WQL", "SMAPE", "MAE", "MAPE"], quantile_levels=LEVELS, task_name="m1")  # fmt: skip
    rng = np.random.default_rng(0)

    def random_quantiles(task, inputs):
        last = np.array([h[-1] for h in inputs.flat(inputs.histories)], dtype=np.float64)
        q = last[:, None, None] * (1 + 0.1 * np.sort(rng.normal(size=(len(last), task.horizon, len(LEVELS))), axis=-1))
        return Forecasts(q, q[..., 4], 0.0)

    run = benchmark({"random": random_quantiles}, {"m1": task}, keep=["m1"])
    [summary] = [s for s in run.summaries if s["model_name"] == "random"]
    f, truth = run.forecasts["m1"]["random"], run.truths["m1"]
    histories = [np.asarray(x, np.float64) for w in task.iter_windows() for x in w.get_input_data()[0]["target"]]
    histories = [histories[w * len(items) + i] for i in range(len(items)) for w in range(num_windows)]  # forecast order
    scores = {m: [] for m in ("WQL", "MASE", "SMAPE", "MAE", "MAPE")}
    for w in range(num_windows):
        rows = slice(w, None, num_windows)  # the window's forecasts: each item's windows are in turn
        y, m, q = truth[rows], f.median[rows], f.quantiles[rows]
        scales = np.array([seasonal_error(np.ma.masked_invalid(h), 2, time_axis=-1)[0] for h in histories[rows]])
        scores["WQL"].append(gluonts_score(MeanWeightedSumQuantileLoss(quantile_levels=LEVELS), y, quantiles=q, levels=LEVELS))
        scores["MASE"].append(float(MASE(forecast_type="0.5")(axis=None).update(
            {"label": np.ma.masked_invalid(y), "0.5": m, "seasonal_error": scales[:, None]}).get()))  # fmt: skip
        for name, metric in (("SMAPE", SMAPE), ("MAE", MAE), ("MAPE", MAPE)):
            scores[name].append(gluonts_score(metric(forecast_type="0.5"), y, m))
    for name, per_window in scores.items():
        assert summary[name] == pytest.approx(np.mean(per_window), rel=1e-9), name
    if num_windows == 2:  # pooled over windows (the old aggregation) is another number
        pooled = gluonts_score(MeanWeightedSumQuantileLoss(quantile_levels=LEVELS), truth, quantiles=f.quantiles, levels=LEVELS)
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
        (lambda f: Forecasts(f.quantiles[:, :-1], f.median[:, :-1], 0.0), r"shape \(181, 5, 9\).*expected \(181, 6, 9\)"),
        (lambda f: Forecasts(f.quantiles[..., :2], f.median, 0.0), r"shape \(181, 6, 2\).*expected \(181, 6, 9\).*quantile levels"),
        (lambda f: Forecasts(f.quantiles[:-1], f.median[:-1], 0.0), r"shape \(180, 6, 9\)"),
        (lambda f: Forecasts(f.quantiles, np.where(np.arange(6) == 2, np.nan, f.median), 0.0),
         "window 0, spoiled: item 0 has NaN or infinite forecasts"),
    ],
)  # fmt: skip
def test_bad_forecasts_fail_naming_the_task(m1_task, spoil, message):
    """A model's forecasts of the wrong horizon, quantile levels or number of items, or with a NaN."""
    from tsfmlab.evaluation.forecasting import naive_forecaster

    naive = naive_forecaster(1)
    with pytest.raises(DataError, match=f"task m1.*{message}"):
        benchmark({"spoiled": lambda task, inputs: spoil(naive(task, inputs))}, {"m1": m1_task})


def test_a_dataset_missing_from_the_mirror_names_the_task(tmp_path):
    task = fev.Task(dataset_path="autogluon/chronos_datasets", dataset_config="monash_m3_yearly", horizon=6)
    with pytest.raises(DataError, match=r"task monash_m3_yearly: cannot load its dataset .* \(not in the mirror"):
        benchmark({}, {"monash_m3_yearly": task}, mirror=tmp_path)
    assert "FEV_DATASETS_PREFIX" not in os.environ  # set for a mirrored dataset's loading only


def test_the_command_writes_summaries_and_the_leaderboard_lists_missing_published_rows(m1_yearly, tmp_path, capsys):
    """Two tasks (M1 yearly under two names), seasonal naive and naive; a "published" table with a row for
    one task only: the leaderboard covers the complete task and names the other, never drops it silently."""
    import pandas as pd

    from tsfmlab.evaluation.fev_cli import main
    from tsfmlab.evaluation.fev_tasks import compare_with_published

    tasks = tmp_path / "tasks.yaml"
    task = ("- dataset_path: autogluon/chronos_datasets\n  dataset_config: monash_m1_yearly\n  horizon: 6\n"
            "  eval_metric: MASE\n  extra_metrics: [WQL]\n  quantile_levels: [0.1, 0.5, 0.9]\n")  # fmt: skip
    tasks.write_text("tasks:\n" + task + task.replace("horizon: 6", "horizon: 4") + "  task_name: m1_h4\n")
    out = tmp_path / "summaries.csv"
    main([str(tasks), "--mirror", str(m1_yearly), "--out", str(out)])  # no model: the naive baselines alone
    summaries = pd.read_csv(out)
    assert sorted(zip(summaries["task_name"], summaries["model_name"])) == [
        ("m1_h4", LAST_VALUE), ("m1_h4", SEASONAL_NAIVE), ("monash_m1_yearly", LAST_VALUE),
        ("monash_m1_yearly", SEASONAL_NAIVE)]  # fmt: skip
    assert "| monash_m1_yearly |" in capsys.readouterr().out
    published = tmp_path / "published.csv"
    other = summaries[(summaries["task_name"] == "monash_m1_yearly") & (summaries["model_name"] == LAST_VALUE)]
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
    from tests.conftest import tiny_chronos2
    from tsfmlab.data.fev_data import nominal_timestamps
    from tsfmlab.evaluation.fev_tasks import chronos2_inputs, univariate_input

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

    run = benchmark({"c2": chronos_forecaster(tiny_chronos2(), 8, 1, 0, inference="library")}, {"mv": task})
    for summary in run.summaries:
        assert summary["num_forecasts"] == 2 * 2 * 2 and np.isfinite(summary["WQL"])  # windows x items x targets
    pipeline = tiny_chronos2()
    shifted = [{**x, "future_covariates": {"hour": x["future_covariates"]["hour"] + 100}} for x in inputs]
    base = predict_chronos2(pipeline, inputs, 16, [0.5], 4).median
    assert not np.allclose(base, predict_chronos2(pipeline, shifted, 16, [0.5], 4).median)
