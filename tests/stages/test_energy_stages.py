"""The Chronos-2 energy stages on tiny params: prepare_energy -> chronos2 (scratch) -> finetune_energy
(full and LoRA, without and with covariates) -> evaluate_energy; checkpoints reload to the same scores;
fine-tuning never reads the test period; bad input fails before any output."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.conftest import (
    differing_files,
    kill_at_step,
    run_stage_in_process,
    run_stage_script,
    stage_outputs,
    write_params,
)
from tsfmlab.models.chronos2 import CHRONOS2_QUANTILES

STAGES = ["prepare_energy", "chronos2", "finetune_energy", "evaluate_energy"]
PARAMS = {
    "energy": {
        "synthetic": {
            "n_days": 8,
            "seed": 0,
            "ar": 0.9,
            "production_std": 10.0,
            "noise_std": 2.0,
            "future_covariates": ["WeekStatus", "NSM"],
        },
        "horizons": [1, 16],
        "strides": [4, 16],
        "context_length": 64,
    },  # fmt: skip
    "chronos2": {
        "model": {
            "d_model": 16,
            "d_kv": 8,
            "d_ff": 32,
            "num_layers": 1,
            "num_heads": 2,
            "dropout_rate": 0.1,
            "context_length": 64,
            "patch_size": 16,
            "max_output_patches": 1,
            "quantiles": CHRONOS2_QUANTILES,
        },
        "data": {
            "training_data_paths": ["data/tsmixup", "data/kernelsynth/train", "data/dysts/train"],
            "probability": [0.4, 0.3, 0.3],
            "multivariate": [False, False, True],
            "prediction_length": 16,
            "min_past": 16,
            "covariates": {"probability": 0.2, "n_groups": 32, "max_covariates": 2, "max_lag": 4,
                           "future_probability": 0.5, "noise_std": [0.05, 0.3]},
        },
    },  # fmt: skip
    "finetune_energy": {
        "num_steps": 4,
        "eval_steps": 2,
        "log_steps": 1,
        "val_stride": 8,
        "batch_size": 16,
        "context_length": 64,
        "prediction_length": 16,
        "min_past": 16,
    },  # fmt: skip
    "evaluate_energy": {
        "batch_size": 64,
        "plot_days": 1,
        "catboost": {
            "lags": [1, 2, 4],
            "seasonal_lags": [96],
            "origin_stride": 4,
            "iterations": 20,
            "learning_rate": 0.1,
            "depth": 4,
            "border_count": 254,
            "early_stopping_rounds": 10,
            "thread_count": 1,
            "seed": 0,
        },
    },  # fmt: skip
}
TINY_TRAIN = {"max_steps": 4, "save_steps": 2, "log_steps": 1, "per_device_train_batch_size": 16}


def write(work: Path, **sections) -> None:
    from tests.conftest import REPO
    from tsfmlab.params import load_params

    train = load_params(REPO / "params.yaml")["chronos2"]["train"] | TINY_TRAIN
    overrides = {k: dict(v) for k, v in PARAMS.items()}
    overrides["chronos2"]["train"] = train
    for section, values in sections.items():
        overrides[section] = overrides.get(section, {}) | values
    write_params(work, overrides)


@pytest.fixture(scope="module")
def energy_run(tiny_run, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("energy")
    shutil.copytree(tiny_run / "data", work / "data")
    (work / "data/raw").mkdir()
    write(work)
    for stage in STAGES:
        run_stage_script(stage, work)
    return work


def rows(work: Path) -> dict:
    return json.loads((work / "reports/energy.json").read_text())["rows"]


def test_every_declared_output_and_row(energy_run):
    for stage in STAGES:
        for rel in stage_outputs(stage):
            assert (energy_run / rel).exists(), f"{stage} declares {rel} but did not write it"
    table = rows(energy_run)
    expected = {f"chronos2/zero-shot/{c}/h{h}" for c in ("none", "past", "past_future") for h in (1, 16)}
    expected |= {
        f"chronos2/{m}/{c}/h{h}" for m in ("full", "lora") for c in ("none", "past_future") for h in (1, 16)
    }
    expected |= {f"catboost_lags/baseline/{c}/h{h}" for c in ("none", "past", "past_future") for h in (1, 16)}
    expected |= {f"{n}/baseline/none/h{h}" for n in ("seasonal_naive", "last_value_naive") for h in (1, 16)}
    assert set(table) == expected
    split = json.loads((energy_run / "data/energy/split.json").read_text())
    n_test = split["n"] - split["test_start"]
    for key, row in table.items():
        stride = 4 if row["horizon"] == 1 else 16
        assert row["windows"] == len(range(0, n_test - row["horizon"] + 1, stride)), key
        assert np.isfinite([row["rmse"], row["mae"], row["r2"], row["wql"], row["mse"]]).all(), key
        assert row["rmse"] >= row["mae"] > 0, key
    report = json.loads((energy_run / "reports/energy.json").read_text())
    assert report["eval_metric"] == "MAE" and report["leaderboard"]["seasonal_naive"]["skill_score"] == 0.0
    summaries = (energy_run / "reports/energy_summaries.csv").read_text().splitlines()
    assert len(summaries) == 1 + len(table) and summaries[0].startswith("model_name,")
    ft = json.loads((energy_run / "reports/finetune_energy.json").read_text())
    assert set(ft["full-none"]["val_loss"]) == {"2", "4"}
    assert (energy_run / "data/models/chronos2_energy/lora-none/adapter/adapter_config.json").is_file()
    assert list((energy_run / "dvclive/finetune_energy/full-past_future").rglob("loss.tsv"))

    def steps(curve: str) -> list[int]:  # a dvclive curve's step column: the Trainer's global step
        return [int(r.split("\t")[0]) for r in (energy_run / curve).read_text().splitlines()[1:]]

    curves = "dvclive/finetune_energy/full-none/plots/metrics"
    assert steps(f"{curves}/eval/loss.tsv") == [int(s) for s in ft["full-none"]["val_loss"]] == [2, 4]
    assert steps(f"{curves}/loss.tsv") == [1, 2, 3, 4]
    assert steps("dvclive/chronos2/plots/metrics/loss.tsv") == [1, 2, 3, 4]


def test_saved_checkpoints_reload_to_the_same_scores(energy_run, one_thread):
    from tsfmlab.data.energy import EnergyParams, load_frame
    from tsfmlab.evaluation.energy_eval import energy_rows, energy_tasks
    from tsfmlab.evaluation.forecasting import benchmark, chronos_forecaster
    from tsfmlab.models.loading import load_pipeline
    from tsfmlab.params import load_params, parse_section

    params = load_params(energy_run / "params.yaml")
    energy = parse_section(EnergyParams, params["energy"], "energy")
    frame = load_frame(energy_run / "data/energy/frame.safetensors")
    split = json.loads((energy_run / "data/energy/split.json").read_text())
    ev = params["evaluate_energy"]
    tasks = energy_tasks(energy_run / "data/fev/energy/data.parquet", frame, split["test_start"], energy,
                         ev["eval_metric"], ev["extra_metrics"], params["shared"]["quantile_levels"])  # fmt: skip
    table = rows(energy_run)
    for run in ("full-past_future", "lora-none"):
        mode, cov = run.split("-")
        pipeline = load_pipeline(energy_run / "data/models/chronos2_energy" / run, "chronos-2")
        name = f"chronos2/{mode}/{cov}"
        forecaster = chronos_forecaster(pipeline, 64, 1, 0, inference="library", covariates=cov,
                                        context_length=energy.context_length)  # fmt: skip
        result = benchmark({name: forecaster}, tasks, keep=list(tasks))
        for row in energy_rows(result, tasks):
            if row["model"] == "chronos2":
                saved = table[f"{name}/h{row['horizon']}"]
                assert row["rmse"] == pytest.approx(saved["rmse"], rel=1e-5)


def test_lora_adapter_on_the_base_equals_the_merged_model(energy_run, one_thread):
    import torch
    from chronos.chronos2 import Chronos2Pipeline
    from peft import PeftModel

    base = Chronos2Pipeline.from_pretrained(str(energy_run / "data/models/chronos2"))
    adapted = PeftModel.from_pretrained(
        base.model, str(energy_run / "data/models/chronos2_energy/lora-none/adapter")
    )
    merged = Chronos2Pipeline.from_pretrained(str(energy_run / "data/models/chronos2_energy/lora-none"))
    x = torch.randn(3, 64).cumsum(-1)
    a = Chronos2Pipeline(model=adapted.eval()).predict_quantiles(list(x), prediction_length=16)[1]
    b = merged.predict_quantiles(list(x), prediction_length=16)[1]
    assert all(torch.allclose(u, v, atol=1e-4) for u, v in zip(a, b))


def test_finetuning_never_reads_the_test_period(energy_run, tmp_path):
    """The test target replaced by absurd values: fine-tuning produces the very same weights."""
    from tsfmlab.data.energy import load_frame, save_frame

    work = tmp_path / "poisoned"
    shutil.copytree(energy_run, work)
    split = json.loads((work / "data/energy/split.json").read_text())
    frame = load_frame(work / "data/energy/frame.safetensors")
    target = frame.target.copy()
    target[split["test_start"] :] = 1e6
    save_frame(
        frame.__class__(**{**frame.__dict__, "target": target}), work / "data/energy/frame.safetensors"
    )
    write(
        work, finetune_energy=PARAMS["finetune_energy"] | {"modes": ["full"], "covariates": ["past_future"]}
    )
    run_stage_script("finetune_energy", work)
    name = "data/models/chronos2_energy/full-past_future/model.safetensors"
    a, b = load_file(str(energy_run / name)), load_file(str(work / name))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # also: deterministic on CPU


def test_killed_training_reruns_to_the_bytes_of_an_uninterrupted_run(energy_run, tmp_path):
    """chronos2 resumes from its checkpoint, finetune_energy (Chronos2Pipeline.fit, no resume) starts
    afresh over its checkpoints: both give the outputs of the uninterrupted energy_run."""
    shutil.copytree(energy_run / "data", tmp_path / "data", ignore=shutil.ignore_patterns("models"))
    write(tmp_path)
    kill_at_step("chronos2", tmp_path, 4)  # after checkpoint-2 and the logs of step 3
    out = run_stage_script("chronos2", tmp_path).stdout
    assert "'resumed': True" in out and "'steps': 4" in out
    assert differing_files(tmp_path, energy_run, stage_outputs("chronos2")) == []
    kill_at_step("finetune_energy", tmp_path, 7)  # in its second run, after checkpoint-2 and step 3
    assert list((tmp_path / ".checkpoints/finetune_energy").glob("*/full-past_future/checkpoint-2"))
    run_stage_script("finetune_energy", tmp_path)
    assert differing_files(tmp_path, energy_run, stage_outputs("finetune_energy")) == []


def test_zero_shot_forecasts_use_the_covariates(energy_run):
    table = rows(energy_run)
    a, b = table["chronos2/zero-shot/none/h1"], table["chronos2/zero-shot/past_future/h1"]
    assert a["rmse"] != b["rmse"]  # covariates reach the model (their worth is measured, not assumed)


@pytest.mark.parametrize(
    ("section", "change", "message"),
    [
        ("energy", {"source": "steel", "steel": {"csv": "elsewhere/steel.csv", "target": "Usage_kWh",
                    "past_covariates": [], "future_covariates": []}}, "outside data/raw"),
        ("energy", {"strides": [1]}, "energy.horizons and energy.strides"),
        ("energy", {"source": "wind"}, "energy.source"),
        ("energy", {"val_fraction": 1.5}, "energy.val_fraction"),
    ],
)  # fmt: skip
def test_bad_energy_params_fail_without_outputs(tmp_path, section, change, message):
    (tmp_path / "data/raw").mkdir(parents=True)
    write(tmp_path, **{section: change})
    proc = run_stage_in_process("prepare_energy", tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "data/energy").exists() and not (tmp_path / "metrics").exists()


def test_finetune_horizon_shorter_than_evaluated_fails_early(energy_run, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(energy_run, work)
    shutil.rmtree(work / "data/models/chronos2_energy")
    write(work, finetune_energy=PARAMS["finetune_energy"] | {"prediction_length": 8})
    proc = run_stage_in_process("finetune_energy", work)
    assert proc.returncode == 2 and "finetune_energy.prediction_length" in proc.stderr
    assert not (work / "data/models/chronos2_energy").exists()


def test_steel_csv_from_data_raw(shared_dir, tmp_path):
    (tmp_path / "data/raw").mkdir(parents=True)
    shutil.copy(shared_dir / "data/steel_industry/Steel_industry_data.csv", tmp_path / "data/raw")
    write(
        tmp_path, energy={"source": "steel", "horizons": [1, 96], "strides": [1, 24], "context_length": 512}
    )
    run_stage_script("prepare_energy", tmp_path)
    m = json.loads((tmp_path / "reports/energy_data.json").read_text())
    assert m["source"] == "steel" and len(m["sha256"]) == 64 and m["target"] == "Usage_kWh"
    assert m["train"]["points"] + m["val"]["points"] + m["test"]["points"] == 35040
    assert len(m["past_covariates"]) == 7 and m["future_covariates"] == ["WeekStatus", "NSM"]


def test_chronos2_from_a_local_checkpoint(shared_dir, tiny_run, tmp_path):
    source = shared_dir / "fixtures/chronos/dummy-chronos2-model"
    shutil.copytree(tiny_run / "data", tmp_path / "data")
    write(tmp_path, chronos2={"source": str(source)})
    run_stage_script("chronos2", tmp_path)
    a = load_file(str(source / "model.safetensors"))
    b = load_file(str(tmp_path / "data/models/chronos2/model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert json.loads((tmp_path / "reports/chronos2.json").read_text())["source"] == str(source)
