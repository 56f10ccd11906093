from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tsfmlab.data.energy import EnergyFrame, synthetic_energy
from tsfmlab.errors import DataError, ParamError
from tsfmlab.evaluation.rolling import (
    MODES,
    chronos2_inputs,
    predict_chronos2,
    rolling_origins,
    truth_windows,
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


# --- Chronos-2 predictions ------------------------------------------------------------------------


def assert_same_forecasts(a, b):
    """Equal up to float32 rounding: batching changes the summation order of some reductions, and the
    long-horizon unrolling (horizon > the model's 16 steps) feeds such differences back once."""
    scale = np.abs(b.quantiles).max()
    np.testing.assert_allclose(a.quantiles, b.quantiles, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(a.median, b.median, rtol=1e-5, atol=1e-5 * scale)


def one_call_per_window(pipeline, inputs, horizon):
    """The plain reference: one public ``predict_quantiles`` call per window dict."""
    return [predict_chronos2(pipeline, [item], horizon, LEVELS, 1) for item in inputs]


@pytest.mark.parametrize("horizon", [1, HORIZON])  # one model pass; and the long-horizon unrolling
@pytest.mark.parametrize("mode", MODES)
def test_batches_of_windows_equal_one_call_per_window(tiny, frame, origins, mode, horizon):
    """``batch_size`` counts windows: every row of a window (its covariates) stays in its batch."""
    inputs = chronos2_inputs(frame, origins, CONTEXT, horizon, mode)
    batched = predict_chronos2(tiny, inputs, horizon, LEVELS, 4)
    assert batched.quantiles.shape == (len(origins), horizon, 3)
    assert batched.median.shape == (len(origins), horizon)
    singles = one_call_per_window(tiny, inputs, horizon)
    for i, single in enumerate(singles):
        np.testing.assert_allclose(batched.quantiles[i], single.quantiles[0], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(batched.median, batched.quantiles[:, :, 1])  # median = the 0.5 quantile
    with pytest.raises(ParamError, match="batch_size must be > 0"):
        predict_chronos2(tiny, inputs, horizon, LEVELS, 0)


def test_fixture_model_forecasts_the_windows(shared_dir, frame, origins):
    from tsfmlab.models.loading import load_pipeline

    pipeline = load_pipeline(shared_dir / "fixtures/chronos/dummy-chronos2-model", "chronos-2")
    inputs = chronos2_inputs(frame, origins[:4], CONTEXT, HORIZON, "past_future")
    batched = predict_chronos2(pipeline, inputs, HORIZON, LEVELS, batch_size=3)
    assert batched.quantiles.shape == (4, HORIZON, 3) and np.isfinite(batched.quantiles).all()
    single = one_call_per_window(pipeline, inputs[3:], HORIZON)[0]
    np.testing.assert_allclose(batched.quantiles[3], single.quantiles[0], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_forecasts_ignore_the_future_target_and_past_only_covariates(tiny, frame, origins, mode):
    o = int(origins[3])

    def forecast(f):
        return predict_chronos2(tiny, chronos2_inputs(f, [o], CONTEXT, HORIZON, mode), HORIZON, LEVELS, 8)

    reference = forecast(frame)
    changed = forecast(replaced_after(frame, o, target=True, past=True))
    np.testing.assert_array_equal(changed.quantiles, reference.quantiles)
    # positive control: the future values of the future-known covariates do reach the model
    moved = forecast(replaced_after(frame, o, future=True))
    assert np.array_equal(moved.quantiles, reference.quantiles) == (mode != "past_future")


def test_truth_windows(frame):
    np.testing.assert_array_equal(truth_windows(frame, [300], 2)[0], frame.target[300:302])
    with pytest.raises(DataError, match="runs past the end"):
        truth_windows(frame, [len(frame) - 1], 2)
