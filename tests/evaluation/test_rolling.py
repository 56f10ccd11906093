from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tsfmlab.data.energy import EnergyFrame, chronological_split, split_bounds, synthetic_energy
from tsfmlab.errors import DataError, ParamError
from tsfmlab.evaluation.rolling import (
    MODES,
    chronos2_inputs,
    chronos2_windows,
    fit_catboost_lags,
    lag_features,
    point_metrics,
    predict_catboost_lags,
    predict_library,
    predict_rolling,
    predict_window_by_window,
    rolling_metrics,
    rolling_origins,
    seasonal_naive,
    truth_windows,
    wql,
)

# the tiny model forecasts 16 steps at once: longer horizons take chronos' long-horizon path, which warns
pytestmark = pytest.mark.filterwarnings("ignore:We recommend keeping prediction length")

LEVELS = [0.1, 0.5, 0.9]
CONTEXT, HORIZON = 96, 24


def tiny_chronos2(seed: int = 0):
    """A random-weight Chronos-2 (d_model 32, one layer) built from chronos' own config classes."""
    import torch
    from chronos.chronos2 import Chronos2CoreConfig, Chronos2Model, Chronos2Pipeline

    config = Chronos2CoreConfig(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4, dropout_rate=0.0)
    config.chronos_config = {
        "context_length": 512,
        "input_patch_size": 16,
        "input_patch_stride": 16,
        "output_patch_size": 16,
        "max_output_patches": 1,  # horizons > 16 take the long-horizon (autoregressive) path
        "quantiles": [0.01, 0.05, *[i / 10 for i in range(1, 10)], 0.95, 0.99],
        "use_reg_token": True,
        "use_arcsinh": True,
    }
    config.architectures = ["Chronos2Model"]
    torch.manual_seed(seed)
    return Chronos2Pipeline(Chronos2Model(config).eval())


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for the cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny():
    return tiny_chronos2()


@pytest.fixture(scope="module")
def frame() -> EnergyFrame:
    return synthetic_energy(5, seed=0)


@pytest.fixture(scope="module")
def origins(frame) -> np.ndarray:
    return rolling_origins(3 * 96, len(frame), HORIZON, 19)


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


# --- windows and the input contract ---------------------------------------------------------------


def test_rolling_origins():
    np.testing.assert_array_equal(rolling_origins(100, 140, 10, 10), [100, 110, 120, 130])
    np.testing.assert_array_equal(rolling_origins(100, 140, 10, 7), [100, 107, 114, 121, 128])
    with pytest.raises(DataError, match="shorter than the horizon 50"):
        rolling_origins(100, 140, 50, 1)
    with pytest.raises(ParamError, match="stride"):
        rolling_origins(100, 140, 10, 0)


def test_inputs_follow_the_chronos2_contract(frame, origins):
    from chronos.chronos2.preprocess import from_list_of_dicts

    none, past, both = (chronos2_inputs(frame, origins, CONTEXT, HORIZON, m) for m in MODES)
    assert len(none) == len(origins) and set(none[0]) == {"target"}
    assert set(past[0]) == {"target", "past_covariates"} and set(past[0]["past_covariates"]) == {"production"}
    assert set(both[0]["past_covariates"]) == {"production", "NSM", "WeekStatus", "Day_of_week"}
    assert set(both[0]["future_covariates"]) == {"NSM", "WeekStatus", "Day_of_week"}  # no production
    o = int(origins[1])
    np.testing.assert_array_equal(both[1]["target"], frame.target[o - CONTEXT : o])
    np.testing.assert_array_equal(
        both[1]["past_covariates"]["NSM"], frame.future_covariates["NSM"][o - CONTEXT : o]
    )
    np.testing.assert_array_equal(
        both[1]["future_covariates"]["NSM"], frame.future_covariates["NSM"][o : o + HORIZON]
    )
    assert all(v.shape == (CONTEXT,) for v in both[1]["past_covariates"].values())
    assert all(v.shape == (HORIZON,) for v in both[1]["future_covariates"].values())
    prepared = from_list_of_dicts(both, prediction_length=HORIZON)  # chronos' own validation
    assert prepared[0]["n_covariates"] == 4 and prepared[0]["n_future_covariates"] == 3
    future = prepared[0]["future_covariates"].numpy()  # rows: target, past-only, known-future
    assert np.isnan(future[:2]).all() and np.isfinite(future[2:]).all()
    with pytest.raises(ParamError, match="unknown covariate mode 'all'"):
        chronos2_inputs(frame, origins, CONTEXT, HORIZON, "all")
    with pytest.raises(DataError, match="fewer than 1000 points of history"):
        chronos2_inputs(frame, origins, 1000, HORIZON, "none")
    with pytest.raises(DataError, match="runs past the end"):
        chronos2_inputs(frame, [len(frame) - 1], CONTEXT, HORIZON, "none")


@pytest.mark.parametrize("mode", MODES)
def test_inputs_never_read_the_future_target_or_past_only_covariates(frame, origins, mode):
    o = int(origins[2])
    reference = chronos2_inputs(frame, [o], CONTEXT, HORIZON, mode)[0]
    changed = chronos2_inputs(replaced_after(frame, o, target=True, past=True), [o], CONTEXT, HORIZON, mode)[
        0
    ]
    assert set(changed) == set(reference)
    np.testing.assert_array_equal(changed["target"], reference["target"])
    for group in ("past_covariates", "future_covariates"):
        assert set(changed.get(group, {})) == set(reference.get(group, {}))
        for name, values in reference.get(group, {}).items():
            np.testing.assert_array_equal(changed[group][name], values)


@pytest.mark.parametrize("mode", MODES)
def test_window_arrays_are_what_chronos_builds_from_the_dicts(frame, origins, mode):
    """The vectorised windows hold exactly the rows, in exactly the order, that chronos-forecasting's
    own preprocessing and dataset build from the per-window dicts."""
    from chronos.chronos2.dataset import Chronos2Dataset, DatasetMode

    windows = chronos2_windows(frame, origins, CONTEXT, HORIZON, mode)
    inputs = chronos2_inputs(frame, origins, CONTEXT, HORIZON, mode)
    dataset = Chronos2Dataset(
        inputs,
        context_length=CONTEXT,
        prediction_length=HORIZON,
        batch_size=10**6,
        output_patch_size=16,
        mode=DatasetMode.TEST,
    )
    (batch,) = list(dataset)
    n, rows = len(origins), len(windows.rows)
    assert rows == 1 + len(inputs[0].get("past_covariates", {}))
    np.testing.assert_array_equal(windows.context.reshape(n * rows, CONTEXT), batch["context"].numpy())
    np.testing.assert_array_equal(
        windows.future_covariates.reshape(n * rows, HORIZON), batch["future_covariates"].numpy()
    )
    np.testing.assert_array_equal(batch["group_ids"].numpy(), np.repeat(np.arange(n), rows))
    assert windows.rows[0] == "target" and windows.context.dtype == np.float32


# --- Chronos-2 predictions ------------------------------------------------------------------------


def assert_same_forecasts(a, b):
    """Equal up to float32 rounding: batching changes the summation order of some reductions, and the
    long-horizon unrolling (horizon > the model's 16 steps) feeds such differences back once."""
    scale = np.abs(b.quantiles).max()
    np.testing.assert_allclose(a.quantiles, b.quantiles, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(a.median, b.median, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("horizon", [1, HORIZON])  # one model pass; and the long-horizon unrolling
@pytest.mark.parametrize("mode", MODES)
def test_batched_equals_window_by_window_tiny_model(tiny, frame, origins, mode, horizon):
    inputs = chronos2_inputs(frame, origins, CONTEXT, horizon, mode)
    batched = predict_rolling(
        tiny, chronos2_windows(frame, origins, CONTEXT, horizon, mode), horizon, LEVELS, 4
    )
    assert batched.quantiles.shape == (len(origins), horizon, 3)
    assert batched.median.shape == (len(origins), horizon)
    assert_same_forecasts(batched, predict_window_by_window(tiny, inputs, horizon, LEVELS))
    assert_same_forecasts(batched, predict_library(tiny, inputs, horizon, LEVELS, 4))  # inference: library
    np.testing.assert_array_equal(batched.median, batched.quantiles[:, :, 1])  # median = the 0.5 quantile


@pytest.mark.parametrize("mode", MODES)
def test_batched_equals_window_by_window_fixture_model(shared_dir, frame, origins, mode):
    from tsfmlab.models.chronos_models import load_pipeline

    pipeline = load_pipeline(shared_dir / "fixtures/chronos/dummy-chronos2-model", "chronos-2")
    inputs = chronos2_inputs(frame, origins, CONTEXT, HORIZON, mode)
    windows = chronos2_windows(frame, origins, CONTEXT, HORIZON, mode)
    batched = predict_rolling(pipeline, windows, HORIZON, LEVELS, batch_size=3)
    assert_same_forecasts(batched, predict_window_by_window(pipeline, inputs, HORIZON, LEVELS))


@pytest.mark.parametrize("mode", MODES)
def test_forecasts_ignore_the_future_target_and_past_only_covariates(tiny, frame, origins, mode):
    o = int(origins[3])
    reference = predict_rolling(
        tiny, chronos2_windows(frame, [o], CONTEXT, HORIZON, mode), HORIZON, LEVELS, 8
    )
    changed_frame = replaced_after(frame, o, target=True, past=True)
    changed = predict_rolling(
        tiny, chronos2_windows(changed_frame, [o], CONTEXT, HORIZON, mode), HORIZON, LEVELS, 8
    )
    np.testing.assert_array_equal(changed.quantiles, reference.quantiles)
    # positive control: the future values of the future-known covariates do reach the model
    calendar_changed = replaced_after(frame, o, future=True)
    moved = predict_rolling(
        tiny, chronos2_windows(calendar_changed, [o], CONTEXT, HORIZON, mode), HORIZON, LEVELS, 8
    )
    assert np.array_equal(moved.quantiles, reference.quantiles) == (mode != "past_future")


# --- metrics --------------------------------------------------------------------------------------


def test_point_metrics_on_hand_made_arrays():
    truth = np.array([[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]])
    perfect = point_metrics(truth, truth)
    assert perfect["rmse"] == 0 and perfect["mae"] == 0 and perfect["r2"] == 1 and perfect["mape"] == 0
    m = point_metrics(np.array([0.0, 2.0, 4.0]), np.array([1.0, 1.0, 4.0]))
    assert m["mape"] == pytest.approx(0.25)  # the zero is skipped: (1/2 + 0) / 2
    assert m["mape_share"] == pytest.approx(2 / 3)
    assert m["mae"] == pytest.approx(2 / 3) and m["rmse"] == pytest.approx(np.sqrt(2 / 3))
    assert m["r2"] == pytest.approx(1 - 2 / 8)  # SST around the mean 2
    mean_forecast = point_metrics(truth, np.full_like(truth, truth.mean()))
    assert mean_forecast["r2"] == pytest.approx(0.0)


def test_wql():
    from gluonts.evaluation.metrics import quantile_loss

    rng = np.random.default_rng(0)
    truth = rng.normal(10, 3, size=(4, 6))
    assert wql(truth, np.repeat(truth[..., None], 3, axis=-1), LEVELS) == 0.0
    quantiles = np.sort(rng.normal(10, 3, size=(4, 6, 3)), axis=-1)
    expected = np.mean(
        [quantile_loss(truth, quantiles[..., i], q) / np.abs(truth).sum() for i, q in enumerate(LEVELS)]
    )
    assert wql(truth, quantiles, LEVELS) == pytest.approx(expected, rel=1e-12)


def test_rolling_metrics_per_lead():
    truth = np.arange(12, dtype=float).reshape(3, 4) + 1
    forecast = truth.copy()
    forecast[:, 3] += 1.0
    scores = rolling_metrics(truth, forecast, np.repeat(forecast[..., None], 3, -1), LEVELS, leads=[1, 4])
    assert set(scores) == {"all", "h1", "h4"}
    assert scores["h1"]["rmse"] == 0 and scores["h1"]["wql"] == 0
    assert scores["h4"]["mae"] == 1.0 and scores["all"]["mae"] == 0.25
    with pytest.raises(ParamError, match=r"lead time\(s\) \[5\]"):
        rolling_metrics(truth, forecast, leads=[5])


# --- baselines ------------------------------------------------------------------------------------


def test_seasonal_naive(frame):
    forecast = seasonal_naive(frame, [200, 300], horizon=5, season=3)
    np.testing.assert_array_equal(forecast[0], frame.target[[197, 198, 199, 197, 198]])
    np.testing.assert_array_equal(truth_windows(frame, [300], 2)[0], frame.target[300:302])
    with pytest.raises(DataError, match="fewer than 96 points of history"):
        seasonal_naive(frame, [50], horizon=5, season=96)


@pytest.mark.parametrize("mode", MODES)
def test_lag_features_only_read_the_past(frame, mode):
    o = 300
    x, names = lag_features(frame, [o], 8, (1, 2), (96,), mode)
    changed, _ = lag_features(replaced_after(frame, o, target=True, past=True), [o], 8, (1, 2), (96,), mode)
    np.testing.assert_array_equal(changed, x)
    assert x.shape == (8, len(names)) and names[:4] == ["step", "y_lag1", "y_lag2", "y_season96"]
    assert ("production_lag1" in names) == (mode != "none") and ("NSM" in names) == (mode == "past_future")
    with pytest.raises(ParamError, match="shorter than the horizon"):
        fit_catboost_lags(frame, frame, (1,), mode, horizon=8, seasonal_lags=(4,))


def test_catboost_with_past_covariates_beats_seasonal_naive():
    frame = synthetic_energy(14, seed=1)
    train, val, _ = chronological_split(frame, 0.2, 0.2)
    _, test_start = split_bounds(len(frame), 0.2, 0.2)
    origins = rolling_origins(test_start, len(frame), 1, 1)
    truth = truth_windows(frame, origins, 1)
    naive = point_metrics(truth, seasonal_naive(frame, origins, 1, season=96))["rmse"]
    rmse = {}
    for mode in ("none", "past"):
        model = fit_catboost_lags(train, val, (1, 2, 3), mode, 1, {"iterations": 150, "thread_count": 1})
        forecast = predict_catboost_lags(model, frame, origins)
        assert forecast.shape == (len(origins), 1)
        rmse[mode] = point_metrics(truth, forecast)["rmse"]
    # the measured production leads the target by one step: it must help at horizon 1
    assert rmse["past"] < 0.8 * rmse["none"] < 0.8 * naive, (rmse, naive)
