"""Family ttm (TinyTimeMixer, optional extra granite-tsfm): build, save/load, forecasts, clear errors.

Tests that need granite-tsfm skip without it (the ``granite`` fixture); the others check what works
without it: recognising a TTM, refusing a wrong family, and naming the extra when it is missing.
"""

import json
import sys

import numpy as np
import pytest
import torch

from tsfmlab.errors import ParamError
from tsfmlab.models.loading import count_parameters, inner_model, pipeline_family
from tsfmlab.models.loading import save_pipeline as save_model
from tsfmlab.models.ttm import TTMParams, granite_available, is_ttm_source, load_model, load_ttm, new_ttm
from tsfmlab.params import parse_section

ARCH = {
    "context_length": 32,
    "prediction_length": 8,
    "patch_length": 8,
    "d_model": 16,
    "num_layers": 2,
    "decoder_d_model": 8,
    "decoder_num_layers": 1,
    "adaptive_patching_levels": 0,
    "expansion_factor": 2,
    "dropout": 0.0,
    "head_dropout": 0.0,
    "overrides": None,
}


def arch(**changes) -> TTMParams:
    return parse_section(TTMParams, {**ARCH, **changes}, "ttm.model")


@pytest.fixture(scope="module")
def granite():
    """granite-tsfm, imported through tsfmlab (which keeps the root logger as it was), or a skip."""
    if not granite_available():
        pytest.skip("granite-tsfm (the optional extra ttm) is not installed")
    return pytest.importorskip("tsfm_public")


@pytest.fixture
def ttm_dir_config(tmp_path):
    """A directory that is a TTM by its config.json alone (no weights: enough for the checks before loading)."""
    path = tmp_path / "ttm"
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "tinytimemixer"}))
    return path


# --- without granite-tsfm -------------------------------------------------------------------------------


def test_ttm_sources_are_recognised_without_granite(ttm_dir_config, tmp_path):
    assert is_ttm_source(ttm_dir_config)
    assert is_ttm_source("ibm-granite/granite-timeseries-ttm-r2")
    assert not is_ttm_source("amazon/chronos-t5-small")
    other = tmp_path / "t5"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "t5"}))
    assert not is_ttm_source(other) and not is_ttm_source(tmp_path / "missing")


def test_missing_extra_is_named(ttm_dir_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "tsfm_public", None)  # as if granite-tsfm were not installed
    assert not granite_available()
    with pytest.raises(ParamError, match=r"needs the optional extra granite-tsfm.*pip install --no-deps"):
        load_model(ttm_dir_config)
    with pytest.raises(ParamError, match=r"param ttm.model is a TinyTimeMixer.*granite-tsfm"):
        new_ttm(arch())


def test_wrong_family_is_refused_before_loading(ttm_dir_config, tmp_path):
    with pytest.raises(ParamError, match=r"unknown model family 'timesfm'.*known: chronos-t5, .*ttm"):
        load_model(ttm_dir_config, "timesfm")
    with pytest.raises(ParamError, match=r"is a ttm model, not chronos-t5"):
        load_model(ttm_dir_config, "chronos-t5")


def test_stages_of_chronos_models_refuse_a_ttm(ttm_dir_config):
    """load_pipeline (every stage but the forecast evaluation) takes Chronos families and names the loader
    that takes a TTM, so that only those stages import tsfmlab.models.ttm."""
    from tsfmlab.models.loading import load_pipeline

    with pytest.raises(ParamError, match=r"is a ttm model, not chronos-2: this stage takes Chronos models"):
        load_pipeline(ttm_dir_config, "chronos-2")
    with pytest.raises(ParamError, match=r"is a ttm model: this stage takes Chronos models"):
        load_pipeline("ibm-granite/granite-timeseries-ttm-r2")


def test_chronos_model_is_not_a_ttm(tmp_path):
    from tests.conftest import tiny_chronos

    save_model(tiny_chronos(), tmp_path / "chronos")
    with pytest.raises(ParamError, match=r"is a chronos-t5 model, not ttm"):
        load_model(tmp_path / "chronos", "ttm")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"patch_length": 64}, r"ttm.model.patch_length=64 exceeds ttm.model.context_length=32"),
        ({"patch_stride": 8}, r"unknown param\(s\) ttm.model.patch_stride"),
        ({"d_model": 0}, r"param ttm.model.d_model must be > 0"),
        ({"dropout": 1.5}, r"param ttm.model.dropout must be in \[0, 1\]"),
    ],
)
def test_bad_architecture_params_are_named(changes, message):
    with pytest.raises(ParamError, match=message):
        arch(**changes)


# --- with granite-tsfm ----------------------------------------------------------------------------------


def test_new_model_saves_and_reloads_identically(granite, tmp_path, one_thread):
    forecaster = new_ttm(arch(), seed=3)
    assert pipeline_family(forecaster) == "ttm" and 0 < count_parameters(forecaster) < 20_000
    save_model(forecaster, tmp_path / "model")
    files = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert files == ["config.json", "model.safetensors"]  # safetensors only
    assert is_ttm_source(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert pipeline_family(loaded) == "ttm" and not loaded.model.training
    a, b = inner_model(forecaster).state_dict(), inner_model(loaded).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (loaded.context_length, loaded.prediction_length) == (32, 8)
    context = [np.sin(np.arange(50, dtype=np.float32) / 3)]
    torch.testing.assert_close(
        forecaster.predict(context, 8), loaded.predict(context, 8), rtol=1e-6, atol=1e-6
    )
    # the same seed builds the same model, another seed another one
    c = inner_model(new_ttm(arch(), seed=3)).state_dict()
    d = inner_model(new_ttm(arch(), seed=4)).state_dict()
    assert all(torch.equal(a[k], c[k]) for k in a) and not all(torch.equal(a[k], d[k]) for k in a)


def test_point_forecasts_at_every_quantile(granite, one_thread):
    forecaster = new_ttm(arch(), seed=0)
    rng = np.random.default_rng(0)
    long, short = rng.normal(5, 2, 100).astype(np.float32), rng.normal(-3, 1, 10).astype(np.float32)
    gappy = long.copy()
    gappy[-20:-10] = np.nan
    quantiles, mean = forecaster.predict_quantiles(
        [torch.from_numpy(long), short, gappy], prediction_length=8, quantile_levels=[0.1, 0.5, 0.9]
    )
    assert quantiles.shape == (3, 8, 3) and mean.shape == (3, 8)
    assert torch.isfinite(quantiles).all()
    assert all(torch.equal(quantiles[..., i], mean) for i in range(3))
    # only the last context_length values count; the three series get different forecasts
    torch.testing.assert_close(forecaster.predict([long[-32:]], 8), mean[:1], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(mean[0], mean[1]) and not torch.allclose(mean[0], mean[2])
    # longer horizons roll out: the first pass is the one-pass forecast
    rolled = forecaster.predict([long], 20)
    assert rolled.shape == (1, 20)
    torch.testing.assert_close(rolled[:, :8], mean[:1], rtol=1e-5, atol=1e-5)
    fed_back = np.concatenate([long, rolled[0, :8].numpy()])
    torch.testing.assert_close(rolled[:, 8:16], forecaster.predict([fed_back], 8), rtol=1e-5, atol=1e-5)


def test_the_evaluator_scores_a_ttm_as_a_point_forecaster(granite, one_thread, tmp_path):
    """evaluate_forecast's path: a TTM on a fev task, every quantile at its point forecast, so fev's WQL
    is the summed absolute error over the summed |target| (fev's MAE x points / sum |target|)."""
    import fev

    from tsfmlab.data.fev_data import write_fev_dataset
    from tsfmlab.evaluation.forecasting import benchmark, chronos_forecaster

    start = np.datetime64("2020-01-01T00:00")
    items = [{"id": f"s{i}", "timestamp": start + np.arange(120) * np.timedelta64(1, "h"),
              "target": np.sin(np.arange(120, dtype=np.float32) / 4) + i} for i in range(3)]  # fmt: skip
    path = write_fev_dataset(items, tmp_path / "data.parquet")
    task = fev.Task(dataset_path=str(path), horizon=8, num_windows=1, seasonality=1, eval_metric="WQL",
                    extra_metrics=["MAE"], quantile_levels=[0.1, 0.5, 0.9], task_name="sine")  # fmt: skip
    model = chronos_forecaster(new_ttm(arch()), 4, 1, 0, inference="library")
    run = benchmark({"ttm": model}, {"sine": task}, keep=("sine",))
    forecasts, truth = run.forecasts["sine"]["ttm"], run.truths["sine"]
    assert forecasts.quantiles.shape == (3, 8, 3)
    for level in range(3):
        np.testing.assert_array_equal(forecasts.quantiles[..., level], forecasts.median)
    np.testing.assert_allclose(truth, np.stack([x["target"][-8:] for x in items]), rtol=1e-6)
    scores = {m: run.scores(m)["ttm"]["sine"] for m in ("WQL", "MAE")}
    assert scores["WQL"] == pytest.approx(scores["MAE"] * truth.size / np.abs(truth).sum(), rel=1e-5)
    assert scores["WQL"] == pytest.approx(np.abs(forecasts.median - truth).sum() / np.abs(truth).sum(), rel=1e-5)


def test_bad_overrides_are_named(granite):
    with pytest.raises(
        ParamError, match=r"ttm.model.overrides: unknown TinyTimeMixerConfig field\(s\) d_modle"
    ):
        new_ttm(arch(overrides={"d_modle": 8}))
    with pytest.raises(ParamError, match=r"ttm.model.overrides: num_input_channels \(fixed by univariate"):
        new_ttm(arch(overrides={"num_input_channels": 3}))
    with pytest.raises(ParamError, match=r"ttm.model.overrides: d_model have their own params"):
        new_ttm(arch(overrides={"d_model": 8}))
    with pytest.raises(ParamError, match=r"ttm.model.overrides: patch_stride \(fixed by patch_length"):
        new_ttm(arch(overrides={"patch_stride": 4}))
    with pytest.raises(
        ParamError, match=r"param ttm.model: not a valid TinyTimeMixer architecture.*divisible"
    ):
        new_ttm(arch(overrides={"self_attn": True, "self_attn_heads": 3}))  # 3 heads for d_model 16
    assert new_ttm(arch(overrides={"scaling": "mean"})).config.scaling == "mean"


def test_hub_ids_go_through_granite_get_model(granite, monkeypatch):
    with pytest.raises(ParamError, match=r"neither a local directory nor reachable on the Hugging Face hub"):
        load_model("ibm-granite/granite-timeseries-ttm-r2")  # tests run with HF_HUB_OFFLINE=1
    get_model_module = sys.modules["tsfm_public.toolkit.get_model"]  # the package re-exports the function

    calls = []

    def fake_get_model(model_path, context_length=None, prediction_length=None, **kwargs):
        calls.append((model_path, context_length, prediction_length))
        return new_ttm(arch(context_length=64, prediction_length=16)).model.train()

    monkeypatch.setattr(get_model_module, "get_model", fake_get_model)
    forecaster = load_ttm("ibm-granite/granite-timeseries-ttm-r2", 64, 16)
    assert calls == [("ibm-granite/granite-timeseries-ttm-r2", 64, 16)]
    assert not forecaster.model.training and forecaster.context_length == 64


def test_unreadable_checkpoint_is_named(granite, ttm_dir_config):
    with pytest.raises(ParamError, match=rf"{ttm_dir_config}: unreadable TTM checkpoint"):
        load_model(ttm_dir_config)
