"""The optional ttm stage (not in dvc.yaml: it needs granite-tsfm) on tiny dysts data, full and LoRA, and
its model in the evaluate_forecast stage; bad input and a missing extra fail cleanly, before any work."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, TINY, run_stage_script, write_params
from tsfmlab.models.ttm import granite_available
from tsfmlab.params import load_params
from tsfmlab.training.dysts_finetune_data import load_train_trajectories

PARAMS = load_params(REPO / "params.yaml")
BASE = PARAMS["ttm"]
TTM = {
    **BASE,
    "model": {
        **BASE["model"],
        "context_length": 32,
        "prediction_length": 8,
        "patch_length": 8,
        "d_model": 16,
        "num_layers": 1,
        "decoder_d_model": 8,
        "decoder_num_layers": 1,
        "adaptive_patching_levels": 0,
    },
    "lora": {**BASE["lora"], "r": 2},
    "data": {**BASE["data"], "min_past": 8, "shuffle_buffer_length": 10},
    "train": {
        **BASE["train"],
        "max_steps": 4,
        "save_steps": 2,
        "log_steps": 1,
        "per_device_train_batch_size": 4,
    },
}
#: what the `dvc stage add` command of docs/usage.md declares for the stage
OUTPUTS = ["data/models/ttm", "reports/ttm.json", "metrics/ttm.json", "dvclive/ttm/plots/metrics"]


def workdir(dest: Path, data: Path | None = None, **changes) -> Path:
    if data is not None:
        shutil.copytree(data / "data", dest / "data")
    write_params(dest, {**TINY, "ttm": {**TTM, **changes}})
    return dest


@pytest.fixture(scope="module")
def granite():
    if not granite_available():
        pytest.skip("granite-tsfm (the optional extra ttm) is not installed")
    return pytest.importorskip("tsfm_public")


@pytest.fixture(scope="module")
def trained(granite, tiny_run, tmp_path_factory) -> dict[str, Path]:
    """The stage run once per finetune_mode on the tiny data."""
    runs = {}
    for mode in ("full", "lora"):
        work = workdir(tmp_path_factory.mktemp(mode), tiny_run, finetune_mode=mode)
        run_stage_script("ttm", work)
        runs[mode] = work
    return runs


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_writes_a_loadable_model_and_validation_scores(trained, mode):
    from tsfmlab.models.loading import pipeline_family
    from tsfmlab.models.ttm import load_model

    work = trained[mode]
    for rel in OUTPUTS:
        assert (work / rel).exists(), rel
    out = work / "data/models/ttm"
    assert {p.name for p in out.glob("*.*")} == {"config.json", "model.safetensors"}
    forecaster = load_model(out)
    assert pipeline_family(forecaster) == "ttm" and forecaster.context_length == 32
    metrics = json.loads((work / "reports/ttm.json").read_text())
    assert metrics["mode"] == mode and metrics["steps"] == 4 and metrics["source"] == "scratch"
    trajectories = load_train_trajectories(work / "data/dysts")  # one held-out window per channel
    assert metrics["train_systems"] == len({t["system"] for t in trajectories}) > 1
    assert metrics["val_windows"] == sum(len(t["target"]) for t in trajectories)
    for key in ("val_loss_before", "val_loss_after", "val_loss_last_value", "train_loss"):
        assert metrics[key] > 0
    assert metrics["val_loss_after"] != metrics["val_loss_before"]  # training changed the model
    if mode == "full":
        assert metrics["trainable_parameters"] == metrics["parameters"]
        assert not (out / "adapter").exists()
    else:
        assert 0 < metrics["trainable_parameters"] < metrics["parameters"]
        assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_lora_output_is_base_plus_adapter(trained):
    """The merged model forecasts what the untrained base (rebuilt from the same seed) plus the adapter does."""
    from peft import PeftModel

    from tsfmlab.models.ttm import TTMForecaster, TTMParams, load_model, new_ttm
    from tsfmlab.params import parse_section

    base = new_ttm(parse_section(TTMParams, TTM["model"], "ttm.model"), seed=0)
    out = trained["lora"] / "data/models/ttm"
    adapted = PeftModel.from_pretrained(base.model, out / "adapter").eval()
    context = [torch.sin(torch.arange(40.0) / 3) * 5 + 2]
    expected = TTMForecaster(adapted).predict(context, 8)
    torch.testing.assert_close(load_model(out).predict(context, 8), expected, rtol=1e-4, atol=1e-4)


def test_evaluate_forecast_scores_the_ttm(trained, tmp_path):
    work = trained["full"]
    evaluate = {
        **PARAMS["evaluate_forecast"],
        "models": {"ttm": "data/models/ttm"},
        "tasks": {  # 12 steps: past the TTM's horizon of 8, rolled out
            name: {"dataset_path": f"data/fev/{name}/*.parquet", "dataset_config": None, "horizon": 12,
                   "num_windows": windows, "window_step_size": None, "seasonality": 8}
            for name, windows in (("dysts_test", 1), ("kernelsynth_test", 2))
        },
        "n_fan_charts": 1,
    }  # fmt: skip
    shutil.copytree(work / "data", tmp_path / "data")
    (tmp_path / "data/raw").mkdir(exist_ok=True)
    shutil.copy(REPO / "data/raw/fev_tasks.yaml", tmp_path / "data/raw/fev_tasks.yaml")
    write_params(tmp_path, {**TINY, "evaluate_forecast": evaluate})
    run_stage_script("evaluate_forecast", tmp_path)
    metrics = json.loads((tmp_path / "reports/forecast.json").read_text())
    row = metrics["ttm"]
    assert row["parameters"] == json.loads((work / "reports/ttm.json").read_text())["parameters"]
    assert row["relative_wql"] > 0 and row["relative_mase"] > 0
    assert metrics["tasks"]["kernelsynth_test"]["n_forecasts"] == 2 * TINY["kernelsynth"]["n_heldout"]
    assert (tmp_path / "plots/forecast/fan_charts.png").is_file()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"source": "data/models/none"}, "param ttm.source: 'data/models/none' is neither scratch"),
        ({"finetune_mode": "prefix"}, "param ttm.finetune_mode must be one of 'full', 'lora'"),
        ({"model": {**TTM["model"], "patch_length": 64}}, "ttm.model.patch_length=64 exceeds"),
    ],
)
def test_bad_params_fail_before_any_work(tmp_path, changes, message):
    work = workdir(tmp_path, **changes)
    proc = run_stage_script("ttm", work, check=False, in_process=True)  # refused before any training
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not any((work / rel).exists() for rel in OUTPUTS)


def test_missing_extra_fails_naming_it(tmp_path):
    """Without granite-tsfm (simulated by a package that fails to import) the stage stops at once."""
    stub = tmp_path / "stub" / "tsfm_public"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'tsfm_public'\")\n")
    work = workdir(tmp_path / "work")
    proc = run_stage_script("ttm", work, check=False, in_process=False, PYTHONPATH=str(stub.parent))
    assert proc.returncode == 2, proc.stderr
    assert "needs the optional extra granite-tsfm" in proc.stderr and "pip install --no-deps" in proc.stderr
    assert not any((work / rel).exists() for rel in OUTPUTS)
