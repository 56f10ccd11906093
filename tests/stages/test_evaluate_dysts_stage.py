"""The evaluate_dysts stage on tiny data with random-weight models: outputs, held-out checks."""

import json
import shutil
from pathlib import Path

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
from tests.stages.test_evaluate_forecast_stage import EVALUATE
from tsfmlab.params import load_params

DYSTS = {
    **load_params(REPO / "params.yaml")["evaluate_dysts"],
    "context_length": 32,
    "horizon": 16,
    "num_samples": 4,
    "n_plots": 2,
}


@pytest.fixture(scope="module")
def with_models(tiny_run, tmp_path_factory) -> Path:
    from tsfmlab.models.loading import save_pipeline

    work = tmp_path_factory.mktemp("dysts_models")
    shutil.copytree(tiny_run / "data", work / "data")
    save_pipeline(tiny_chronos(seed=0), work / "data/models/student")
    save_pipeline(tiny_chronos(seed=1), work / "data/models/finetuned_dysts")
    return work


def workdir(with_models: Path, dest: Path, **changes) -> Path:
    shutil.copytree(with_models / "data", dest / "data")
    write_params(dest, {**TINY, "evaluate_forecast": EVALUATE, "evaluate_dysts": {**DYSTS, **changes}})
    return dest


def test_writes_per_system_scores_and_generic_scores(with_models, tmp_path):
    work = workdir(with_models, tmp_path)
    run_stage_script("evaluate_dysts", work)
    for rel in stage_outputs("evaluate_dysts"):
        assert (work / rel).exists(), rel
    metrics = json.loads((work / "reports/dysts_eval.json").read_text())
    test_systems = json.loads((work / "data/dysts/systems.json").read_text())["test"]
    assert metrics["n_systems"] <= len(test_systems) and metrics["n_systems"] >= 1
    for model in ("zero_shot", "finetuned"):
        m = metrics[model]
        assert 0 <= m["median_smape"] <= 200 and 0 <= m["median_vpt_steps"] <= 16
        assert set(metrics["generic"][model]) == {"skill_score_wql", "skill_score_mase"}
    for naive in ("seasonal_naive", "last_value_naive"):  # the baselines, on the same trajectories
        assert 0 <= metrics[naive]["median_smape"] <= 200 and 0 <= metrics[naive]["median_vpt_steps"] <= 16
    rows = (work / "plots/dysts_eval/per_system.csv").read_text().splitlines()
    assert len(rows) == 1 + metrics["n_systems"] and "zero_shot_smape" in rows[0]
    assert "last_value_naive_smape" in rows[0]
    shown = min(2, metrics["n_trajectories"])
    assert len((work / "plots/dysts_eval/forecasts.csv").read_text().splitlines()) == 1 + shown * 16


def test_a_test_system_in_training_data_fails(with_models, tmp_path):
    work = workdir(with_models, tmp_path)
    systems = json.loads((work / "data/dysts/systems.json").read_text())
    systems["test"].append(systems["train"][0])
    (work / "data/dysts/systems.json").write_text(json.dumps(systems))
    proc = run_stage_in_process("evaluate_dysts", work)
    assert proc.returncode == 2 and "held-out test system(s) in training data" in proc.stderr
    assert not any((work / rel).exists() for rel in stage_outputs("evaluate_dysts"))


def test_too_long_a_horizon_fails_naming_the_lengths(with_models, tmp_path):
    work = workdir(with_models, tmp_path, horizon=120)
    proc = run_stage_in_process("evaluate_dysts", work)
    assert proc.returncode == 2 and "fewer than context_length + horizon (32 + 120)" in proc.stderr
