"""Held-out forecasting as fev tasks: the tasks from params, every model scored by fev, the series bootstrap
on fev's per-window scores, the naive baselines and Chronos forecasts."""

import numpy as np
import pytest

from tests.conftest import REPO
from tsfmlab.data.fev_data import nominal_timestamps, write_fev_dataset
from tsfmlab.errors import ParamError
from tsfmlab.evaluation.baselines import LAST_VALUE
from tsfmlab.evaluation.forecast_params import EvaluateParams, fev_tasks
from tsfmlab.evaluation.forecasting import BASELINE, benchmark, chronos_forecaster, predict_chronos
from tsfmlab.evaluation.metrics import SeriesParts, geometric_mean
from tsfmlab.params import parse_section

LEVELS = [0.1, 0.5, 0.9]
EMPTY = REPO / "data/raw/fev_tasks.yaml"  # a benchmark of no task


def params(tasks: dict, **overrides) -> EvaluateParams:
    values = {
        "models": {}, "tasks": tasks, "datasets_mirror": "mirror",
        "benchmark": {"tasks_file": str(EMPTY), "tasks": None}, "eval_metric": "WQL", "extra_metrics": ["MASE"],
        "num_samples": 4, "batch_size": 8, "n_fan_charts": 0, "inference": "library", "seed": 0, **overrides,
    }  # fmt: skip
    shared = {"quantile_levels": LEVELS, "bootstrap": {"resamples": 500, "confidence": 0.9, "seed": 0}}
    return parse_section(EvaluateParams, values, "evaluate_forecast", shared)


def task(path, horizon: int, num_windows: int, seasonality: int) -> dict:
    return {"dataset_path": str(path), "dataset_config": None, "horizon": horizon, "num_windows": num_windows,
            "window_step_size": None, "seasonality": seasonality}  # fmt: skip


def dataset(tmp_path, name: str, series: list[np.ndarray]):
    items = [{"id": f"{i:03d}", "timestamp": nominal_timestamps(len(x)), "target": x} for i, x in enumerate(series)]
    return write_fev_dataset(items, tmp_path / f"{name}.parquet")


@pytest.fixture(scope="module")
def seasonal_run(tmp_path_factory):
    """Two tasks of noisy seasonal series: six series, three windows; one series, five windows."""
    tmp = tmp_path_factory.mktemp("tasks")
    rng = np.random.default_rng(1)
    t = np.arange(200)
    series = [(10 + np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.3, 200)).astype(np.float32) for _ in range(6)]
    p = params({"a": task(dataset(tmp, "a", series), 6, 3, 12), "b": task(dataset(tmp, "b", series[:1]), 4, 5, 12)})
    return p, benchmark({}, fev_tasks(p))


def test_every_window_is_forecast_and_scored_by_fev(seasonal_run):
    _, run = seasonal_run
    assert run.n_forecasts == {"a": 18, "b": 5}
    rows = {(s["task_name"], s["model_name"]) for s in run.summaries}
    assert rows == {(t, m) for t in ("a", "b") for m in (BASELINE, LAST_VALUE)}
    assert all(s["eval_metric"] == "WQL" and s["test_error"] == s["WQL"] for s in run.summaries)


def test_the_series_parts_reproduce_fevs_scores(seasonal_run):
    """Every unit drawn once, the parts give fev's summary of each task (mean over windows of each
    window's WQL and MASE) to 1e-9: the bootstrap resamples fev's own definition."""
    _, run = seasonal_run
    for model, by_task in run.parts.items():
        for name, parts in by_task.items():
            everything = np.ones((1, parts.loss.shape[0]))
            for metric in ("WQL", "MASE"):
                assert parts.scores(everything)[metric][0] == pytest.approx(run.scores(metric)[model][name], abs=1e-9)
    assert run.parts[BASELINE]["b"].loss.shape == (5, 1, 1)  # one series: its windows are the units


def test_the_skill_score_is_fevs_and_has_a_paired_interval_around_it(seasonal_run):
    _, run = seasonal_run
    board = run.leaderboard("WQL")
    ratios = [run.scores("WQL")[LAST_VALUE][t] / run.scores("WQL")[BASELINE][t] for t in ("a", "b")]
    assert board.loc[LAST_VALUE, "skill_score"] == pytest.approx(1 - geometric_mean(ratios), rel=1e-12)
    assert board.loc[BASELINE, "skill_score"] == 0.0
    for metric in ("WQL", "MASE"):
        iv = run.intervals(metric, 500, 0.9, seed=0)
        assert iv[BASELINE] == [0.0, 0.0]  # paired: the baseline against itself
        low, high = iv[LAST_VALUE]
        assert low < run.leaderboard(metric).loc[LAST_VALUE, "skill_score"] < high
    assert run.intervals("WQL", 500, 0.9, seed=0) == run.intervals("WQL", 500, 0.9, seed=0)  # seeded
    assert run.intervals("WQL", 500, 0.9, seed=0) != run.intervals("WQL", 500, 0.9, seed=1)


def test_the_interval_does_not_depend_on_the_order_of_the_tasks():
    from tsfmlab.evaluation.metrics import skill_interval

    rng = np.random.default_rng(0)

    def parts(n, scale):
        return SeriesParts(*(rng.gamma(2.0, s, (n, 3, 1)) for s in (scale, 1.0, scale)))

    model = {"a": parts(20, 1.0), "b": parts(15, 2.0), "c": parts(10, 0.5)}
    base = {"a": parts(20, 1.2), "b": parts(15, 1.5), "c": parts(10, 0.6)}
    iv = skill_interval(model, base, "WQL", 200, 0.9, 0, (1e-2, 100.0))
    order = ["c", "a", "b"]
    assert iv == skill_interval({k: model[k] for k in order}, {k: base[k] for k in order}, "WQL", 200, 0.9, 0, (1e-2, 100.0))


def test_seasonal_naive_is_exact_on_a_periodic_series(tmp_path):
    x = np.tile(np.array([1.0, 3.0, 2.0, 5.0], dtype=np.float32), 20)
    p = params({"p": task(dataset(tmp_path, "p", [x]), 8, 2, 4)})
    run = benchmark({}, fev_tasks(p))
    assert run.scores("WQL")[BASELINE]["p"] == 0.0
    assert run.scores("WQL")[LAST_VALUE]["p"] > 0.1  # the last point repeated: not exact


def test_a_task_fev_refuses_names_its_param(tmp_path):
    with pytest.raises(ParamError, match="param evaluate_forecast.tasks.a: fev refuses the task"):
        params({"a": task("x.parquet", 6, 1, 1)}, eval_metric="NOPE")
    with pytest.raises(ParamError, match="evaluate_forecast.tasks.a.horizon"):
        params({"a": task("x.parquet", 0, 1, 1)})


@pytest.fixture(scope="module")
def tiny_pipeline():
    from tests.conftest import tiny_chronos

    return tiny_chronos()


def test_chronos_forecasts_have_ordered_quantiles_and_repeat_with_the_seed(tiny_pipeline):
    rng = np.random.default_rng(0)
    histories = [rng.normal(10, 2, n).astype(np.float32) for n in (40, 25, 60)]
    run = dict(batch_size=2, num_samples=5, inference="fast")
    a = predict_chronos(tiny_pipeline, histories, 8, LEVELS, seed=1, **run)
    b = predict_chronos(tiny_pipeline, histories, 8, LEVELS, seed=1, **run)
    c = predict_chronos(tiny_pipeline, histories, 8, LEVELS, seed=2, **run)
    assert a.quantiles.shape == (3, 8, 3) and a.median.shape == (3, 8)
    assert np.all(np.diff(a.quantiles, axis=2) >= 0)
    np.testing.assert_array_equal(a.quantiles, b.quantiles)
    assert not np.array_equal(a.quantiles, c.quantiles)


@pytest.mark.parametrize("top_k", [0, 1])
def test_fast_inference_equals_the_library_path(tiny_pipeline, top_k):
    """Full-vocabulary sampling (top_k=0) draws the library's sample paths at a fixed seed; greedy
    decoding (top_k=1) gives its forecasts."""
    rng = np.random.default_rng(0)
    histories = [rng.normal(10, 2, n).astype(np.float32) for n in (40, 25, 60)]
    run = dict(batch_size=2, num_samples=5, seed=3, top_k=top_k)
    fast = predict_chronos(tiny_pipeline, histories, 8, LEVELS, inference="fast", **run)
    library = predict_chronos(tiny_pipeline, histories, 8, LEVELS, inference="library", **run)
    np.testing.assert_allclose(fast.quantiles, library.quantiles, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast.median, library.median, rtol=1e-5, atol=1e-6)


def test_a_chronos_model_is_scored_on_the_tasks(tiny_pipeline, tmp_path):
    rng = np.random.default_rng(2)
    series = [rng.normal(10, 2, 80).astype(np.float32) for _ in range(3)]
    p = params({"r": task(dataset(tmp_path, "r", series), 8, 2, 1)}, n_fan_charts=1)
    run = benchmark({"tiny": chronos_forecaster(tiny_pipeline, 2, 4, 0, inference="fast")}, fev_tasks(p), n_panels=1)
    assert {s["model_name"] for s in run.summaries} == {BASELINE, LAST_VALUE, "tiny"}
    assert np.isfinite(run.leaderboard("WQL").loc["tiny", "skill_score"])
    assert run.panels[0]["title"] == "r: 000" and run.panels[0]["forecasts"]["tiny"].shape == (8, 3)


def test_a_multivariate_task_with_covariates_keeps_fevs_scores_in_the_parts(tmp_path):
    """Two target columns, a past-only and a known covariate, Chronos-2 among the models: the joined
    predictions are fev's to score, and the per-item parts still reproduce fev's WQL and MASE to 1e-9
    (fev averages over target columns: so do the parts)."""
    import fev

    from tests.conftest import tiny_chronos2

    rng = np.random.default_rng(0)
    t = np.arange(120)
    items = [{"id": f"s{i}", "timestamp": nominal_timestamps(120), "a": np.sin(t / 5) * (i + 1) + 3,
              "b": rng.gamma(2.0, 1.0 + i, 120), "load": rng.normal(size=120), "hour": (t % 24).astype(float)}
             for i in range(3)]  # fmt: skip
    path = write_fev_dataset(items, tmp_path / "mv.parquet")
    task = fev.Task(dataset_path=str(path), horizon=16, num_windows=2, target=["a", "b"], seasonality=24,
                    past_dynamic_columns=["load"], known_dynamic_columns=["hour"], eval_metric="WQL",
                    extra_metrics=["MASE"], quantile_levels=LEVELS, task_name="mv")  # fmt: skip
    run = benchmark({"c2": chronos_forecaster(tiny_chronos2(), 4, 1, 0, inference="library")}, {"mv": task})
    assert run.n_forecasts["mv"] == 3 * 2 * 2  # items x targets x windows
    for model, by_task in run.parts.items():
        parts = by_task["mv"]
        assert parts.loss.shape == (3, 2, 2)  # items, windows, targets
        for metric in ("WQL", "MASE"):
            assert parts.scores(np.ones((1, 3)))[metric][0] == pytest.approx(run.scores(metric)[model]["mv"], abs=1e-9)


def test_forecasts_become_fevs_predictions_and_non_finite_ones_are_named():
    from tsfmlab.errors import DataError
    from tsfmlab.evaluation.forecasting import fev_dataset
    from tsfmlab.evaluation.metrics import Forecasts

    q = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    ds = fev_dataset(Forecasts(q, q[..., 1], 0.0), LEVELS, "t")
    assert ds.column_names == ["predictions", "0.1", "0.5", "0.9"] and ds[1]["0.9"] == list(q[1, :, 2])
    q[1, 2, 0] = np.nan
    with pytest.raises(DataError, match="task a, window 0, m: item 1 has NaN or infinite forecasts"):
        fev_dataset(Forecasts(q, q[..., 1], 0.0), LEVELS, "task a, window 0, m")
