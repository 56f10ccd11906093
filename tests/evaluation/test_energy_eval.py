"""The energy evaluation as fev tasks: the windows cover the test period; Chronos-2 reads the columns of its
covariate mode and nothing of the future target or of a past-only covariate; batching keeps every
window's rows together; the CatBoost lag model forecasts through fev's windows as from the frame; the rows'
scores are fev's, and agree with the pooled scores of the earlier evaluation where the definitions agree."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.conftest import REPO, tiny_chronos2
from tests.evaluation.test_fev_tasks import gluonts_score
from tsfmlab.data.covariates import MODES
from tsfmlab.data.energy import (
    EnergyFrame,
    EnergyParams,
    chronological_split,
    split_bounds,
    synthetic_energy,
)
from tsfmlab.data.fev_data import write_fev_dataset
from tsfmlab.errors import ParamError
from tsfmlab.evaluation.baselines import CatBoostParams, seasonal_naive
from tsfmlab.evaluation.energy_eval import (
    catboost_forecaster,
    energy_rows,
    energy_tasks,
    fit_catboost_lags,
    lag_features,
    predict_catboost_lags,
    window_frame,
)
from tsfmlab.evaluation.fev_tasks import WALL_CLOCK, chronos2_inputs, univariate_input
from tsfmlab.evaluation.forecasting import benchmark, predict_chronos2
from tsfmlab.params import load_params, parse_section

# the tiny model forecasts 16 steps at once: longer horizons take chronos' long-horizon path, which warns
pytestmark = pytest.mark.filterwarnings("ignore:We recommend keeping prediction length")

LEVELS = [0.1, 0.5, 0.9]
CONTEXT, HORIZON, TEST_START = 96, 24, 3 * 96
WINDOWS = [(1, 7), (HORIZON, 19)]  # (horizon, stride)
CATBOOST = CatBoostParams(
    iterations=150, depth=6, learning_rate=0.1, border_count=254, early_stopping_rounds=30, thread_count=1, seed=0
)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for the cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def replaced_after(frame: EnergyFrame, origin: int, target=False, past=False, future=False) -> EnergyFrame:
    """A copy of ``frame`` with new (random) values from ``origin`` on in the chosen arrays."""
    rng = np.random.default_rng(123)

    def new(values: np.ndarray, replace: bool) -> np.ndarray:
        values = values.copy()
        if replace:
            values[origin:] = rng.normal(50, 30, len(values) - origin).astype(np.float32)
        return values

    return dataclasses.replace(
        frame,
        target=new(frame.target, target),
        past_covariates={k: new(v, past) for k, v in frame.past_covariates.items()},
        future_covariates={k: new(v, future) for k, v in frame.future_covariates.items()},
    )


def tasks_of(frame: EnergyFrame, directory) -> dict:
    energy = parse_section(EnergyParams, {**load_params(REPO / "params.yaml")["energy"],
                                          "horizons": [h for h, _ in WINDOWS], "strides": [s for _, s in WINDOWS],
                                          "context_length": CONTEXT}, "energy")  # fmt: skip
    item = {"id": frame.target_name, "timestamp": frame.timestamps, "target": frame.target,
            **frame.past_covariates, **frame.future_covariates}  # as prepare_energy writes it
    path = write_fev_dataset([item], directory / "data.parquet")
    return energy_tasks(path, frame, TEST_START, energy, "MAE", ["WQL", "MSE", "MAPE"], LEVELS)


@pytest.fixture(scope="module")
def frame() -> EnergyFrame:
    return synthetic_energy(5, seed=0)


@pytest.fixture(scope="module")
def tasks(frame, tmp_path_factory) -> dict:
    return tasks_of(frame, tmp_path_factory.mktemp("energy"))


@pytest.fixture(scope="module")
def tiny():
    return tiny_chronos2()


def inputs_of(task, window: int, mode: str) -> list[dict]:
    return chronos2_inputs(task, *univariate_input(task.get_window(window)), mode, CONTEXT)


# --- tasks and inputs ------------------------------------------------------------------------------


def test_one_task_per_horizon_covers_the_test_period(frame, tasks):
    assert list(tasks) == ["h1", f"h{HORIZON}"]
    for (horizon, stride), task in zip(WINDOWS, tasks.values()):
        origins = list(range(TEST_START, len(frame) - horizon + 1, stride))
        assert task.cutoffs == origins and task.num_windows == len(origins)
        truth = task.get_window(task.num_windows - 1).get_ground_truth()["target"][0]
        np.testing.assert_array_equal(truth, frame.target[origins[-1] : origins[-1] + horizon])
        assert task.past_dynamic_columns == ["production"]
        assert task.known_dynamic_columns == sorted(frame.future_covariates)  # fev sorts them


def test_inputs_follow_the_chronos2_contract(frame, tasks):
    from chronos.chronos2.preprocess import from_list_of_dicts

    task = tasks[f"h{HORIZON}"]
    none, past, both = (inputs_of(task, 1, mode)[0] for mode in MODES)
    known = set(frame.future_covariates)
    assert set(none) == {"target"}
    assert set(past) == {"target", "past_covariates"} and set(past["past_covariates"]) == {"production"}
    assert set(both["past_covariates"]) == {"production", *known} and set(both["future_covariates"]) == known
    o = task.cutoffs[1]
    np.testing.assert_array_equal(both["target"], frame.target[o - CONTEXT : o])
    np.testing.assert_array_equal(both["past_covariates"]["NSM"], frame.future_covariates["NSM"][o - CONTEXT : o])
    np.testing.assert_array_equal(both["future_covariates"]["NSM"], frame.future_covariates["NSM"][o : o + HORIZON])
    prepared = from_list_of_dicts([both], prediction_length=HORIZON)  # chronos' own validation
    assert prepared[0]["n_covariates"] == 1 + len(known) and prepared[0]["n_future_covariates"] == len(known)
    future = prepared[0]["future_covariates"].numpy()  # rows: target, past-only, known
    assert np.isnan(future[:2]).all() and np.isfinite(future[2:]).all()
    with pytest.raises(ParamError, match="unknown covariate mode 'all'"):
        inputs_of(task, 0, "all")


@pytest.fixture(scope="module")
def spoiled(frame, tmp_path_factory) -> dict:
    """The tasks of a frame whose target and past-only covariate are replaced from the first cutoff on,
    and of one whose known covariates are."""
    return {"target_and_past": tasks_of(replaced_after(frame, TEST_START, target=True, past=True),
                                        tmp_path_factory.mktemp("target_and_past")),
            "known": tasks_of(replaced_after(frame, TEST_START, future=True), tmp_path_factory.mktemp("known"))}  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
def test_windows_never_hold_the_future_target_or_past_only_covariates(tasks, spoiled, mode, frame):
    for name, task in tasks.items():
        a, b = inputs_of(task, 0, mode)[0], inputs_of(spoiled["target_and_past"][name], 0, mode)[0]
        assert set(a) == set(b)
        for key in a:
            for column, values in (a[key].items() if isinstance(a[key], dict) else [(key, a[key])]):
                np.testing.assert_array_equal(values, b[key][column] if isinstance(b[key], dict) else b[key])
        # the CatBoost features of the window: the same
        frames = [window_frame(t, *(v[0] for v in univariate_input(t.get_window(0))), frame)
                  for t in (task, spoiled["target_and_past"][name])]  # fmt: skip
        x, y = (lag_features(f, [len(f) - task.horizon], task.horizon, (1, 2), (96,), mode)[0] for f in frames)
        np.testing.assert_array_equal(x, y)


# --- Chronos-2 predictions ------------------------------------------------------------------------


@pytest.mark.parametrize("horizon", [1, HORIZON])  # one model pass; and the long-horizon unrolling
@pytest.mark.parametrize("mode", MODES)
def test_batches_of_windows_equal_one_call_per_window(tiny, tasks, mode, horizon):
    """``batch_size`` counts windows: every row of a window (its covariates) stays in its batch."""
    task = tasks[f"h{horizon}"]
    inputs = [inputs_of(task, w, mode)[0] for w in range(0, task.num_windows, max(1, task.num_windows // 7))]
    batched = predict_chronos2(tiny, inputs, horizon, LEVELS, 4)
    assert batched.quantiles.shape == (len(inputs), horizon, 3) and batched.median.shape == (len(inputs), horizon)
    for i, item in enumerate(inputs):
        single = predict_chronos2(tiny, [item], horizon, LEVELS, 1)
        np.testing.assert_allclose(batched.quantiles[i], single.quantiles[0], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(batched.median, batched.quantiles[:, :, 1])  # median = the 0.5 quantile


@pytest.mark.parametrize("mode", MODES)
def test_forecasts_ignore_the_future_target_and_past_only_covariates(tiny, tasks, spoiled, mode):
    task = f"h{HORIZON}"

    def forecast(tasks):
        return predict_chronos2(tiny, inputs_of(tasks[task], 0, mode), HORIZON, LEVELS, 8).quantiles

    reference = forecast(tasks)
    np.testing.assert_array_equal(forecast(spoiled["target_and_past"]), reference)
    # positive control: the future values of the known covariates do reach the model
    assert np.array_equal(forecast(spoiled["known"]), reference) == (mode != "past_future")


def test_fixture_model_forecasts_the_windows(shared_dir, tasks):
    from tsfmlab.models.loading import load_pipeline

    pipeline = load_pipeline(shared_dir / "fixtures/chronos/dummy-chronos2-model", "chronos-2")
    inputs = [inputs_of(tasks[f"h{HORIZON}"], w, "past_future")[0] for w in range(4)]
    batched = predict_chronos2(pipeline, inputs, HORIZON, LEVELS, batch_size=3)
    assert batched.quantiles.shape == (4, HORIZON, 3) and np.isfinite(batched.quantiles).all()
    single = predict_chronos2(pipeline, inputs[3:], HORIZON, LEVELS, 1)
    np.testing.assert_allclose(batched.quantiles[3], single.quantiles[0], rtol=1e-5, atol=1e-4)


# --- CatBoost and the rows --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_lag_features_only_read_the_past(frame, mode):
    o = 300
    x, names = lag_features(frame, [o], 8, (1, 2), (96,), mode)
    changed, _ = lag_features(replaced_after(frame, o, target=True, past=True), [o], 8, (1, 2), (96,), mode)
    np.testing.assert_array_equal(changed, x)
    assert x.shape == (8, len(names)) and names[:4] == ["step", "y_lag1", "y_lag2", "y_season96"]
    assert ("production_lag1" in names) == (mode != "none") and ("NSM" in names) == (mode == "past_future")
    with pytest.raises(ParamError, match="shorter than the horizon"):
        fit_catboost_lags(frame, frame, mode, 8, (1,), (4,), 1, CATBOOST)


def test_catboost_with_past_covariates_beats_seasonal_naive():
    frame = synthetic_energy(14, seed=1)
    train, val, _ = chronological_split(frame, 0.2, 0.2)
    _, test_start = split_bounds(len(frame), 0.2, 0.2)
    origins = np.arange(test_start, len(frame))
    truth = frame.target[origins, None]

    def rmse_of(forecast):
        return float(np.sqrt(np.mean((forecast - truth) ** 2)))

    naive = rmse_of(seasonal_naive([frame.target[:o] for o in origins], 1, 96))
    rmse = {}
    for mode in ("none", "past"):
        model = fit_catboost_lags(train, val, mode, 1, (1, 2, 3), (), 1, CATBOOST)
        forecast = predict_catboost_lags(model, frame, origins)
        assert forecast.shape == (len(origins), 1)
        rmse[mode] = rmse_of(forecast)
    # the measured production leads the target by one step: it must help at horizon 1
    assert rmse["past"] < 0.8 * rmse["none"] < 0.8 * naive, (rmse, naive)


@pytest.fixture(scope="module")
def catboost_run(frame, tasks):
    """The CatBoost lag model of every mode on both tasks, through fev's windows; and its models."""
    train, val = frame.slice(0, 2 * 96), frame.slice(96, TEST_START)  # validation rows: lags from train
    models = {(h, mode): fit_catboost_lags(train, val, mode, h, (1, 2, 3), (96,) if h < 96 else (), 1, CATBOOST)
              for h, _ in WINDOWS for mode in MODES}  # fmt: skip
    forecasters = {f"catboost_lags/baseline/{mode}": catboost_forecaster(models, mode, frame) for mode in MODES}
    return benchmark(forecasters, tasks, keep=list(tasks)), models, forecasters


def test_catboost_forecasts_through_fevs_windows_as_from_the_frame(catboost_run, tasks, frame):
    run, models, _ = catboost_run
    for name, task in tasks.items():
        for mode in MODES:
            expected = predict_catboost_lags(models[(task.horizon, mode)], frame, np.array(task.cutoffs))
            np.testing.assert_array_equal(run.forecasts[name][f"catboost_lags/baseline/{mode}"].median, expected)


def test_rows_hold_fevs_scores_and_agree_with_the_pooled_scores(catboost_run, tasks):
    """fev's MAE, MAPE and the square root of its MSE, each a mean over windows, equal the scores pooled over
    all points (the earlier evaluation: gluonts' MAE, MAPE, RMSE) to 1e-9; R² is scikit-learn's over all
    points; fev's WQL is the mean of the windows' WQL (gluonts' on each window: the one definition that
    differs, the pooled WQL being another number). The rows hold them, rounded."""
    from gluonts.ev.metrics import MAE, MAPE, RMSE, MeanWeightedSumQuantileLoss
    from sklearn.metrics import r2_score

    run, _, _ = catboost_run
    rows = {(r["model"], r["covariates"], r["horizon"]): r for r in energy_rows(run, tasks)}
    assert len(rows) == len(run.summaries) == 2 * (3 + 2)  # two tasks: three CatBoost modes, both naive baselines
    for s in run.summaries:
        task, model = tasks[s["task_name"]], s["model_name"]
        truth, f = run.truths[s["task_name"]], run.forecasts[s["task_name"]][model]
        pooled = {m: gluonts_score(metric(forecast_type="0.5"), truth, f.median) for m, metric in
                  (("MAE", MAE), ("MAPE", MAPE), ("RMSE", RMSE))}  # fmt: skip
        assert s["MAE"] == pytest.approx(pooled["MAE"], rel=1e-9) and s["MAPE"] == pytest.approx(pooled["MAPE"], rel=1e-9)
        assert np.sqrt(s["MSE"]) == pytest.approx(pooled["RMSE"], rel=1e-9)
        wql = MeanWeightedSumQuantileLoss(quantile_levels=LEVELS)
        per_window = [gluonts_score(wql, truth[w : w + 1], quantiles=f.quantiles[w : w + 1], levels=LEVELS)
                      for w in range(len(truth))]  # fmt: skip
        assert s["WQL"] == pytest.approx(np.mean(per_window), rel=1e-9)
        assert abs(gluonts_score(wql, truth, quantiles=f.quantiles, levels=LEVELS) - s["WQL"]) > 1e-6
        row = rows[(*model.split("/")[::2], task.horizon) if "/" in model else (model, "none", task.horizon)]
        assert row["windows"] == task.num_windows and row["mae"] == round(s["MAE"], 6)
        assert row["rmse"] == round(pooled["RMSE"], 6) and row["wql"] == round(s["WQL"], 6)
        assert row["r2"] == round(r2_score(truth.ravel(), f.median.ravel()), 6)


def test_fast_scoring_gives_the_summaries_of_fevs_own_path(catboost_run, tasks):
    """``scoring="fast"`` (each window split once for all models) against fev's own path: equal summaries,
    and fev's private method is back in place afterwards."""
    from fev.task import EvaluationWindow

    run, _, forecasters = catboost_run
    original = EvaluationWindow._get_past_future_test_data
    fast = benchmark(forecasters, tasks, scoring="fast")

    def scores(summaries):  # without the wall-clock fields
        return [{k: v for k, v in s.items() if k not in WALL_CLOCK} for s in summaries]

    assert scores(fast.summaries) == scores(run.summaries)
    assert EvaluationWindow._get_past_future_test_data is original


def test_fast_scoring_is_refused_on_an_untested_fev(tmp_path, monkeypatch):
    from tests.conftest import run_stage_in_process, write_params
    from tsfmlab.models import fast_paths

    real = fast_paths.metadata.version
    monkeypatch.setattr(fast_paths.metadata, "version", lambda d: "0.99.0" if d == "fev" else real(d))
    write_params(tmp_path)
    proc = run_stage_in_process("evaluate_energy", tmp_path)
    assert proc.returncode == 2 and "param evaluate_energy.scoring=fast patches private internals of fev 0.10.x" in proc.stderr


def test_a_metric_fev_does_not_know_names_its_param(tmp_path):
    from tests.conftest import run_stage_in_process, write_params

    write_params(tmp_path, {"evaluate_energy": {"extra_metrics": ["WQL", "NOPE"]}})
    proc = run_stage_in_process("evaluate_energy", tmp_path)
    assert proc.returncode == 2 and "param evaluate_energy.extra_metrics" in proc.stderr and "NOPE" in proc.stderr
    assert not (tmp_path / "reports").exists() and not (tmp_path / "metrics").exists()
