import numpy as np
import pytest

from tsfmlab.data.arrow_io import write_series
from tsfmlab.errors import DataError
from tsfmlab.evaluation.dysts_eval import (
    aggregate,
    load_test_trajectories,
    naive_forecasts,
    per_system,
    trajectory_scores,
)


def traj(system="A", d=2, lyap=0.5):
    t = np.linspace(0, 10, 80)
    x = np.stack([np.sin(t + k) + 3 for k in range(d)]).astype(np.float32)
    return {"system": system, "context": x[:, :64], "truth": x[:, 64:], "dt": 0.1, "max_lyapunov": lyap}


def test_a_perfect_forecast_is_valid_for_the_whole_horizon():
    t = traj()
    s = trajectory_scores(t, t["truth"], vpt_threshold=30)
    assert s["smape"] == 0 and s["mase"] == 0 and s["vpt_steps"] == 16
    assert s["vpt_lyapunov"] == pytest.approx(16 * 0.1 * 0.5)
    off = t["truth"].copy()
    off[:, 5:] += 100
    assert trajectory_scores(t, off, 30)["vpt_steps"] == 5
    assert trajectory_scores(traj(lyap=None), off, 30)["vpt_lyapunov"] is None


def test_per_system_means_then_median_over_systems():
    trajs = [traj("A"), traj("A"), traj("B")]
    scores = [{"smape": 10.0, "x": None}, {"smape": 20.0, "x": None}, {"smape": 40.0, "x": 1.0}]
    by_system = per_system(trajs, scores)
    assert by_system == {"A": {"smape": 15.0, "x": None}, "B": {"smape": 40.0, "x": 1.0}}
    agg = aggregate(by_system)
    assert agg["median_smape"] == 27.5 and agg["mean_smape"] == 27.5 and agg["median_x"] == 1.0


def test_test_trajectories_must_be_held_out_and_long_enough(tmp_path):
    import json

    entry = {"target": np.ones((3, 50)), "system": "Lorenz", "dt": 0.01, "period": 0.1}
    write_series([entry], tmp_path / "test" / "p.arrow")
    (tmp_path / "systems.json").write_text(json.dumps({"train": ["Lorenz"], "test": ["Rossler"]}))
    with pytest.raises(DataError, match="'Lorenz' is not a held-out system"):
        load_test_trajectories(tmp_path, 32, 8)
    (tmp_path / "systems.json").write_text(json.dumps({"train": [], "test": ["Lorenz"]}))
    with pytest.raises(DataError, match="fewer than context_length \\+ horizon"):
        load_test_trajectories(tmp_path, 48, 8)
    (t,) = load_test_trajectories(tmp_path, 32, 8)
    assert t["context"].shape == (3, 32) and t["truth"].shape == (3, 8) and t["season"] == 10
    write_series([{**entry, "period": None}], tmp_path / "test" / "p.arrow")
    with pytest.raises(DataError, match="Lorenz has no dt and period"):
        load_test_trajectories(tmp_path, 32, 8)


def test_naive_forecasts_repeat_the_last_value_and_the_last_period():
    context = np.stack([np.arange(20.0), 100 + np.arange(20.0) % 5])
    naive = naive_forecasts([{"context": context, "season": 5}], 7)
    (last,), (seasonal,) = naive["last_value_naive"], naive["seasonal_naive"]
    np.testing.assert_array_equal(last, [[19.0] * 7, [104.0] * 7])
    np.testing.assert_array_equal(seasonal[0], [15, 16, 17, 18, 19, 15, 16])
    np.testing.assert_array_equal(seasonal[1], 100 + np.arange(7) % 5)
