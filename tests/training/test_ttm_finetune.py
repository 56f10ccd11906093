"""TTM fine-tuning: validation carved from train, the loss, the windows, and (with granite-tsfm) a run
that learns and a LoRA run whose adapter is saved and merged."""

import numpy as np
import pytest
import torch

from tsfmlab.errors import DataError
from tsfmlab.models.lora import LoraParams
from tsfmlab.models.ttm import granite_available
from tsfmlab.training.dysts_finetune_data import AugmentationParams
from tsfmlab.training.hf_trainer import TrainParams
from tsfmlab.training.ttm_finetune import (
    TTMDystsWindows,
    naive_validation_loss,
    split_validation,
    standardized_mse,
    ttm_trainer_class,
    validation_loss,
)

C, H = 32, 8
NO_AUGMENTATION = AugmentationParams(rate=0.0, probabilities={"random_affine": 1.0}, out_dim=None)


def sines(n_systems: int = 4, length: int = 160, seed: int = 0) -> list[dict]:
    """Three-channel trajectories of shifted, scaled sines (periods 8-20): learnable from 32 steps."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    out = []
    for s in range(n_systems):
        channels = [
            rng.uniform(1, 10) * np.sin(2 * np.pi * t / rng.uniform(8, 20) + rng.uniform(0, 6))
            + rng.uniform(-5, 5)
            for _ in range(3)
        ]
        out.append({"target": np.stack(channels).astype(np.float32), "system": f"sys{s}"})
    return out


@pytest.fixture(scope="module")
def granite():
    if not granite_available():
        pytest.skip("granite-tsfm (the optional extra ttm) is not installed")
    return pytest.importorskip("tsfm_public")


def test_validation_is_the_held_out_tail_of_every_channel():
    trajectories = sines(n_systems=2, length=100)
    train, val = split_validation(trajectories, 2, C, H, min_past=8, section="ttm.data")
    assert [t["target"].shape for t in train] == [(3, 84), (3, 84)]
    assert len(val) == 2 * 3 * 2 and val.past.shape == (12, C) and val.future.shape == (12, H)
    channel = trajectories[1]["target"][2]
    np.testing.assert_array_equal(val.future[-2], channel[84:92])
    np.testing.assert_array_equal(val.future[-1], channel[92:100])
    np.testing.assert_array_equal(val.past[-1], channel[92 - C : 92])  # the context reaches into train
    with pytest.raises(DataError, match=r"sys0 has 100 steps: too few to hold out ttm.data.val_windows=12"):
        split_validation(trajectories, 12, C, H, min_past=8, section="ttm.data")


def test_standardized_mse_matches_its_definition():
    rng = np.random.default_rng(1)
    past = rng.normal(3, 2, (4, C)).astype(np.float32)
    past[0, :5] = np.nan
    future, forecast = (
        rng.normal(3, 2, (4, H)).astype(np.float32),
        rng.normal(3, 2, (4, H)).astype(np.float32),
    )
    future[1, 2] = np.nan
    expected_terms = []
    for p, f, y in zip(past, forecast, future):
        var = np.nanvar(p) + 1e-5
        expected_terms += [(fi - yi) ** 2 / var for fi, yi in zip(f, y) if np.isfinite(yi)]
    past_mask, future_mask = np.isfinite(past), np.isfinite(future)
    got = standardized_mse(
        torch.from_numpy(forecast),
        torch.from_numpy(np.nan_to_num(future)),
        torch.from_numpy(future_mask.astype(np.float32)),
        torch.from_numpy(np.nan_to_num(past)),
        torch.from_numpy(past_mask.astype(np.float32)),
    )
    assert float(got) == pytest.approx(np.mean(expected_terms), rel=1e-5)
    # invariant to the series' scale and offset
    scaled = standardized_mse(*(torch.from_numpy(np.nan_to_num(x)) * 7 + 100 for x in (forecast, future)),
                              torch.from_numpy(future_mask.astype(np.float32)),
                              torch.from_numpy(np.nan_to_num(past)) * 7 + 100,
                              torch.from_numpy(past_mask.astype(np.float32)))  # fmt: skip
    assert float(scaled) == pytest.approx(float(got), rel=1e-3)


def test_training_windows_never_reach_the_validation_tail():
    trajectories = sines(n_systems=2, length=100)
    train, _ = split_validation(trajectories, 1, C, H, min_past=8, section="ttm.data")
    dataset = TTMDystsWindows(
        train, NO_AUGMENTATION, C, H, min_past=8, max_missing_prop=0.9, drop_prob=0.0,
        shuffle_buffer_length=0, seed=0,
    )  # fmt: skip
    stream = iter(dataset)
    full = [c for t in trajectories for c in t["target"]]
    for _ in range(50):
        item = next(stream)
        assert item["past_values"].shape == (C, 1) and item["future_values"].shape == (H, 1)
        future = item["future_values"][:, 0].numpy()
        starts = [s for c in full for s in range(len(c) - H + 1) if np.array_equal(c[s : s + H], future)]
        assert starts and max(starts) + H <= 100 - H  # every future lies before the held-out window


TRAIN = dict(
    save_steps=1000, log_steps=10, per_device_train_batch_size=16, gradient_accumulation_steps=1,
    optim="adamw_torch", lr_scheduler_type="linear", warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=1.0,
    dataloader_num_workers=0, mixed_precision="no", tf32=False, torch_compile=False,
    gradient_checkpointing=False, distributed="ddp", seed=0,
)  # fmt: skip


def tiny_ttm(seed: int = 0):
    from tsfmlab.models.ttm import TTMParams, new_ttm

    return new_ttm(
        TTMParams(
            context_length=C,
            prediction_length=H,
            patch_length=8,
            d_model=16,
            num_layers=2,
            decoder_d_model=8,
            decoder_num_layers=1,
            adaptive_patching_levels=0,
            expansion_factor=2,
            dropout=0.0,
            head_dropout=0.0,
            overrides=None,
        ),
        seed=seed,
    )


def train_on_sines(model, tmp_path, monkeypatch, max_steps: int, learning_rate: float):
    from tsfmlab.training.hf_trainer import fit

    train, val = split_validation(sines(), 1, C, H, min_past=8, section="ttm.data")
    dataset = TTMDystsWindows(
        train, NO_AUGMENTATION, C, H, min_past=8, max_missing_prop=0.9, drop_prob=0.0,
        shuffle_buffer_length=10, seed=0,
    )  # fmt: skip
    monkeypatch.chdir(tmp_path)  # the trainer's checkpoints go to ./.checkpoints
    params = TrainParams(max_steps=max_steps, learning_rate=learning_rate, **TRAIN)
    before = validation_loss(model, val, 64)
    _, stats = fit(model.train(), dataset, params, "ttm", {"test": max_steps}, tmp_path / "live",
                   trainer_class=ttm_trainer_class())  # fmt: skip
    model.eval()
    return before, validation_loss(model, val, 64), naive_validation_loss(val), stats


def test_finetuning_lowers_the_validation_loss(granite, tmp_path, monkeypatch, one_thread):
    model = tiny_ttm().model
    before, after, naive, stats = train_on_sines(model, tmp_path, monkeypatch, 60, 1e-2)
    assert stats["steps"] == 60 and np.isfinite(stats["train_loss"])
    assert after < 0.5 * before and after < naive, (before, after, naive)
    assert (tmp_path / "live" / "plots" / "metrics" / "loss.tsv").is_file()  # the dvclive loss curve


def test_lora_trains_adapters_only_and_merges(granite, tmp_path, monkeypatch, one_thread):
    from peft import PeftModel

    from tsfmlab.models.lora import add_lora, merged, save_adapter
    from tsfmlab.models.ttm import TTMForecaster

    base = tiny_ttm().model
    base_state = {k: v.clone() for k, v in base.state_dict().items()}
    peft_model = add_lora(
        base, LoraParams(r=4, alpha=8.0, dropout=0.0, target_modules=["fc1", "fc2"]), "ttm.lora"
    )
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    before, after, _, _ = train_on_sines(peft_model, tmp_path, monkeypatch, 40, 1e-2)
    assert after < before
    frozen = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
              for k, v in peft_model.state_dict().items() if "lora_" not in k}  # fmt: skip
    assert all(torch.equal(base_state[k], frozen[k]) for k in base_state)  # base weights untouched

    save_adapter(peft_model, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    context = [np.sin(np.arange(40, dtype=np.float32) / 2) * 3 + 1]
    with_adapter = TTMForecaster(peft_model).predict(context, H)
    plain = merged(peft_model).eval()
    assert not any("lora_" in n for n, _ in plain.named_parameters())
    torch.testing.assert_close(TTMForecaster(plain).predict(context, H), with_adapter, rtol=1e-4, atol=1e-4)
    reloaded = PeftModel.from_pretrained(
        tiny_ttm().model, tmp_path / "adapter"
    ).eval()  # same seed: same base
    torch.testing.assert_close(
        TTMForecaster(reloaded).predict(context, H), with_adapter, rtol=1e-4, atol=1e-4
    )
    untuned = TTMForecaster(tiny_ttm().model).predict(context, H)
    assert (untuned - with_adapter).abs().max() > 1e-3  # the adapter changed the forecasts
