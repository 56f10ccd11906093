"""The evaluate_forecast stage on tiny data with random-weight models: outputs, determinism, bad input."""

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
from tsfmlab.params import load_params

DATASETS = {
    "dysts_test": {"source": "data/dysts/test", "season_length": 10, "prediction_length": None, "offset": None, "windows": 1, "max_series": 2},
    "kernelsynth_test": {
        "source": "data/kernelsynth/test",
        "season_length": 8, "prediction_length": None, "offset": None,
        "windows": 2,
        "max_series": None,
    },
    "solar": {"source": "real:solar", "season_length": 48, "prediction_length": None, "offset": None, "windows": 2, "max_series": None},
}
EVALUATE = {
    **load_params(REPO / "params.yaml")["evaluate_forecast"],
    "datasets": DATASETS,
    "prediction_length": 8,
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


def workdir(with_models: Path, dest: Path, **changes) -> Path:
    shutil.copytree(with_models / "data", dest / "data")
    write_params(dest, {**TINY, "evaluate_forecast": {**EVALUATE, **changes}})
    return dest


def test_writes_relative_scores_for_every_model_and_repeats(with_models, tmp_path):
    work = workdir(with_models, tmp_path)
    run_stage_script("evaluate_forecast", work)
    for rel in stage_outputs("evaluate_forecast"):
        assert (work / rel).exists(), rel
    metrics = json.loads((work / "reports/forecast.json").read_text())
    assert metrics["seasonal_naive"]["relative_wql"] == 1.0 and metrics["last_value_naive"]["relative_wql"] > 0
    for model in ("teacher", "student"):
        row = metrics[model]
        assert row["parameters"] > 0 and not any("per_s" in k for k in row)  # timings: the log only
        assert row["relative_wql"] > 0 and row["relative_mase"] > 0
    ratio = metrics["student_vs_teacher"]
    assert ratio["parameter_ratio"] < 1
    assert ratio["relative_wql_ratio"] == pytest.approx(
        metrics["student"]["relative_wql"] / metrics["teacher"]["relative_wql"], rel=1e-3
    )
    # 2 dysts channels (max_series) x 1 window, 2 kernelsynth series x 2 windows, solar x 2 windows
    assert {d: v["n_forecasts"] for d, v in metrics["datasets"].items()} == {
        "dysts_test": 2,
        "kernelsynth_test": 4,
        "solar": 2,
    }
    table = (work / "plots/forecast/relative_scores.csv").read_text().splitlines()
    assert table[0] == "model,relative_wql,relative_mase" and len(table) == 5  # 2 naive baselines, 2 models

    # same params, the same bytes in every out
    again = workdir(with_models, tmp_path / "again")
    run_stage_script("evaluate_forecast", again)
    assert (again / "reports/forecast.json").read_bytes() == (work / "reports/forecast.json").read_bytes()
    assert (again / "plots/forecast/relative_scores.csv").read_text() == "\n".join(table) + "\n"


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"datasets": {"leak": {**DATASETS["solar"], "source": "data/kernelsynth/train"}}},
            "evaluate_forecast.datasets.leak.source: data/kernelsynth/train overlaps a training corpus",
        ),
        (
            {"datasets": {"leak": {**DATASETS["solar"], "source": "real:airline"}}},
            "real:airline is mixed into training data",
        ),
        ({"models": {"teacher": "data/models/nowhere/x"}}, "neither a local directory nor reachable"),
        ({"models": {"seasonal_naive": "data/models/teacher"}}, "built-in baseline"),
        ({"quantile_levels": [0.5, 0.1]}, "quantile_levels must be increasing"),
        ({"datasets": {"s": {**DATASETS["solar"], "windows": 0}}}, "datasets.s.windows must be > 0"),
        ({"datasets": {"s": {**DATASETS["solar"], "windows": 100}}}, "dataset s: series s/0 has 289 points"),
        ({"datasets": {"s": {**DATASETS["solar"], "season_length": None}}}, "datasets.s.season_length: null"),
        ({"datasets": {"s": {**DATASETS["solar"], "offset": 4}}}, "datasets.s.offset must be negative"),
    ],
)
def test_bad_input_fails_before_writing(with_models, tmp_path, changes, message):
    work = workdir(with_models, tmp_path, **changes)
    proc = run_stage_in_process("evaluate_forecast", work)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not any((work / rel).exists() for rel in stage_outputs("evaluate_forecast"))
