"""Ti-MAE Lightning training: data windows, dvclive logs, best-weights restore, learning, determinism."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from tests.models.test_timae import TINY
from tsfmlab.errors import DataError, ParamError
from tsfmlab.launch import LaunchParams
from tsfmlab.models.timae import TiMAEConfig, read_config, save_timae
from tsfmlab.params import parse_section
from tsfmlab.training.lightning_engine import BestWeightsInMemory, best_weights, make_trainer
from tsfmlab.training.timae_lightning import (
    PretrainParams,
    SeriesDataset,
    TiMAEFinetuneParams,
    decay_groups,
    fit_classifier,
    fit_pretrain,
    warmup_cosine,
)

LENGTH = 40
CONFIG = TiMAEConfig(backbone="transformer", **{**TINY, "input_dim": 1})
pytestmark = pytest.mark.usefixtures("one_thread")


def sines(n, seed, length=LENGTH):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 4 * np.pi, length)
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    return (np.sin(t + phase) + 0.1 * rng.normal(size=(n, 1, length))).astype(np.float32)


def sine_or_square(n, seed, length=32):
    """Class 0: sine; class 1: square wave; random phases, a little noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    wave = np.sin(np.linspace(0, 4 * np.pi, length) + rng.uniform(0, 2 * np.pi, (n, 1, 1)))
    x = np.where(y[:, None, None] == 1, np.sign(wave), wave) + 0.1 * rng.normal(size=(n, 1, length))
    return x.astype(np.float32), y


#: every key of the params sections, at the values these tests start from (params.yaml holds the stages')
PRETRAIN_KEYS = dict(
    mask_ratio=0.75, seq_len=None, crop=False, normalize=False, unlabeled_pool=[], lr=1e-3, weight_decay=0.05,
    warmup_ratio=0.05, batch_size=64, max_epochs=100, patience=None, val_mask_seed=0, precision="32-true",
    gradient_checkpointing=False, distributed="ddp", n_plots=0, seed=0,
    launch=LaunchParams(nodes=1, procs_per_node=1),
)  # fmt: skip
FINETUNE_KEYS = dict(
    seq_len=None, crop=False, normalize=False, lr=1e-3, encoder_lr=1e-4, weight_decay=0.01, warmup_ratio=0.0,
    label_smoothing=0.0, freeze_encoder=False, head_hidden=[], head_dropout=0.0, batch_size=32, max_epochs=50,
    patience=None, monitor="val/loss", precision="32-true", gradient_checkpointing=False, distributed="ddp",
    seed=0, launch=LaunchParams(nodes=1, procs_per_node=1),
)  # fmt: skip


def pretrain_params(**changes) -> PretrainParams:
    return PretrainParams(**{**PRETRAIN_KEYS, **changes})


def finetune_params(**changes) -> TiMAEFinetuneParams:
    return TiMAEFinetuneParams(**{**FINETUNE_KEYS, **changes})


PRETRAIN = pretrain_params(lr=3e-3, batch_size=16, max_epochs=2, crop=True, warmup_ratio=0.2)
FINETUNE = finetune_params(lr=1e-2, encoder_lr=1e-2, batch_size=8, max_epochs=20)


# ---- data


def test_windows_random_in_training_centred_in_evaluation():
    x = np.arange(3 * 50, dtype=np.float32).reshape(3, 1, 50)
    evaluation = SeriesDataset(x, seq_len=32, crop=True)
    assert torch.equal(evaluation[1], torch.from_numpy(x[1, :, 9:41]))  # (50 - 32) // 2 = 9
    torch.manual_seed(0)
    training = SeriesDataset(x, np.array([0, 1, 0]), seq_len=32, crop=True, train=True)
    starts = {int(training[0][0][0, 0].item()) for _ in range(30)}
    assert len(starts) > 3 and min(starts) >= 0 and max(starts) <= 18
    window, label = training[1]
    assert window.shape == (1, 32) and label.item() == 1 and label.dtype == torch.int64


def test_normalisation_per_series_and_channel():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(4, 2, 32)) * 5 + 3).astype(np.float32)
    x[0, 1] = 7.0  # constant channel: becomes zeros, not NaN
    ds = SeriesDataset(x, seq_len=32, normalize=True)
    z = torch.stack([ds[i] for i in range(4)])
    torch.testing.assert_close(z[1:].mean(-1), torch.zeros(3, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(z[1:].std(-1, unbiased=False), torch.ones(3, 2), atol=1e-4, rtol=0)
    assert torch.equal(z[0, 1], torch.zeros(32))


def test_series_shorter_than_seq_len_or_longer_without_crop():
    with pytest.raises(ParamError, match=r"param seq_len \(64\) is longer than the series \(length 40\)"):
        SeriesDataset(sines(2, 0), seq_len=64, crop=True)
    with pytest.raises(ParamError, match=r"length 40\) are longer than param seq_len \(32\).*crop: true"):
        SeriesDataset(sines(2, 0), seq_len=32)
    with pytest.raises(ParamError, match="seq_len"):
        fit_pretrain(CONFIG, sines(4, 0), sines(4, 1), pretrain_params(max_epochs=1), None)


def test_missing_values_are_rejected():
    x = sines(5, 0)
    x[3] = np.nan
    with pytest.raises(DataError, match=r"series \[3\] hold only NaN"):
        SeriesDataset(x, seq_len=LENGTH)
    x = sines(5, 0)
    x[2, 0, 5] = np.nan
    with pytest.raises(DataError, match=r"series \[2\] hold NaN"):
        SeriesDataset(x, seq_len=LENGTH)
    with pytest.raises(DataError, match="integer labels"):
        SeriesDataset(sines(5, 0), np.zeros(4, dtype=int), seq_len=LENGTH)


def test_training_params_parse_like_the_other_sections():
    launch = {"launch": {"nodes": 1, "procs_per_node": 1}}  # as params.yaml writes it
    pretrain, finetune = PRETRAIN_KEYS | launch, FINETUNE_KEYS | launch
    p = parse_section(TiMAEFinetuneParams, {**finetune, "monitor": "val/acc", "head_hidden": [16]}, "finetune_timae")
    assert p.monitor == "val/acc" and p.head_hidden == [16] and p.patience is None and p.launch.world_size == 1
    with pytest.raises(ParamError, match=r"finetune_timae\.label_smoothing"):
        parse_section(TiMAEFinetuneParams, {**finetune, "label_smoothing": 1.0}, "finetune_timae")
    with pytest.raises(ParamError, match=r"pretrain_timae\.patience"):
        parse_section(PretrainParams, {**pretrain, "patience": 0}, "pretrain_timae")
    with pytest.raises(ParamError, match=r"missing param pretrain_timae\.seed"):
        parse_section(PretrainParams, {k: v for k, v in pretrain.items() if k != "seed"}, "pretrain_timae")


# ---- optimisation pieces


def test_warmup_then_cosine():
    factors = [warmup_cosine(s, 100, 10) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[55] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:])) and factors[-1] < 0.01
    assert warmup_cosine(0, 10, 0) == 1.0


def test_weight_decay_spares_biases_norms_and_tokens():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1, bias=False))
    model.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
    decay, no_decay = decay_groups(model, 1e-3, 0.1)
    assert [p.shape for p in decay["params"]] == [(4, 3), (1, 4)] and decay["weight_decay"] == 0.1
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0 and no_decay["lr"] == 1e-3


def test_best_weights_are_kept_in_memory_and_restored():
    module = nn.Linear(2, 1)
    callback = BestWeightsInMemory("val/loss", "min")
    weights = []
    for epoch, loss in enumerate([0.9, 0.5, 0.7, 0.6]):
        with torch.no_grad():
            module.weight.fill_(epoch)
        weights.append(module.weight.clone())
        trainer = SimpleNamespace(
            sanity_checking=False, current_epoch=epoch, callback_metrics={"val/loss": torch.tensor(loss)}
        )
        callback.on_validation_end(trainer, module)
    assert callback.best_epoch == 1 and callback.best_score == 0.5 and callback.epochs_run == 4
    callback.on_fit_end(trainer, module)
    assert torch.equal(module.weight, weights[1])
    accuracy = BestWeightsInMemory("val/acc", "max")
    assert accuracy.improves(0.1) and not BestWeightsInMemory().improves(math.inf)


def test_trainer_writes_no_checkpoints_and_early_stops(tmp_path):
    trainer = make_trainer(5, tmp_path / "live", patience=2, monitor="val/acc")
    names = [type(cb).__name__ for cb in trainer.callbacks]
    assert "EarlyStopping" in names and "ModelCheckpoint" not in names
    assert best_weights(trainer).mode == "max"
    assert trainer.checkpoint_callback is None


# ---- fits


def test_tiny_pretraining_logs_to_dvclive(tmp_path):
    model, stats = fit_pretrain(CONFIG, sines(32, 0), sines(16, 1), PRETRAIN, tmp_path / "live")
    assert stats["epochs_run"] == 2 and stats["best_epoch"] in (0, 1)
    assert math.isfinite(stats["best_val_loss"]) and stats["n_params"] > 0
    assert not model.training
    live = tmp_path / "live"
    assert not (live / "metrics.json").exists()  # curves only: the numbers are in the stage's metrics file
    val_rows = (live / "plots/metrics/val/loss.tsv").read_text().splitlines()
    assert val_rows[0] == "step\tloss" and len(val_rows) == 3
    val = [float(r.split("\t")[1]) for r in val_rows[1:]]
    assert stats["best_val_loss"] == pytest.approx(min(val))
    # the curves' step is the Trainer's epoch (from 0, like best_epoch), one row per epoch
    for split in ("train", "val"):
        rows = (live / f"plots/metrics/{split}/loss.tsv").read_text().splitlines()[1:]
        assert [int(r.split("\t")[0]) for r in rows] == list(range(stats["epochs_run"])), split
    assert val[stats["best_epoch"]] == pytest.approx(stats["best_val_loss"])
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("dvc.yaml"))


def test_a_killed_pretraining_reruns_to_the_same_weights_stats_and_curves(tmp_path):
    """Lightning fits keep no checkpoints: a stage killed after an epoch trains again from the start,
    to the weights, statistics and curves of an uninterrupted run."""
    from tests.conftest import Killed, differing_files, kill_at_epoch

    def pretrain(log_dir, callbacks=()):
        return fit_pretrain(CONFIG, sines(32, 0), sines(16, 1), PRETRAIN, log_dir, callbacks=list(callbacks))

    expected_model, expected = pretrain(tmp_path / "uninterrupted")
    with pytest.raises(Killed):
        pretrain(tmp_path / "rerun", [kill_at_epoch(1)])
    assert len((tmp_path / "rerun/plots/metrics/val/loss.tsv").read_text().splitlines()) == 1 + 1
    model, stats = pretrain(tmp_path / "rerun")
    assert stats == expected
    weights, reference = model.state_dict(), expected_model.state_dict()
    assert all(torch.equal(weights[k], reference[k]) for k in reference)
    assert differing_files(tmp_path / "rerun", tmp_path / "uninterrupted", ["plots"]) == []


def test_pretraining_is_deterministic():
    runs = [fit_pretrain(CONFIG, sines(32, 0), sines(16, 1), PRETRAIN, None) for _ in range(2)]
    (a, stats_a), (b, stats_b) = runs
    assert stats_a == stats_b
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_mamba_pretraining_runs(tmp_path):
    config = TiMAEConfig(**{**CONFIG.model_dump(), "backbone": "mamba2", "chunk_size": 32})
    params = pretrain_params(lr=3e-3, batch_size=16, max_epochs=1, crop=True)
    model, stats = fit_pretrain(config, sines(16, 0), sines(8, 1), params, None)
    assert stats["epochs_run"] == 1 and math.isfinite(stats["best_val_loss"])


def val_loss_and_accuracy(model, x, y):
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    y = torch.from_numpy(y)
    return nn.functional.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def test_classifier_learns_sine_versus_square_from_a_pretrained_encoder(tmp_path):
    pretrained, _ = fit_pretrain(CONFIG, sines(32, 0), sines(16, 1), PRETRAIN, None)
    save_timae(pretrained, tmp_path / "encoder")
    train, val = sine_or_square(32, 2), sine_or_square(32, 3)
    config = read_config(tmp_path / "encoder")
    model, stats = fit_classifier(
        config, 2, train, val, FINETUNE, "avg", tmp_path / "live", encoder_dir=tmp_path / "encoder"
    )
    assert stats["best_val_acc"] >= 0.9
    # the returned weights are the best validation epoch's, whichever epoch came last
    loss, acc = val_loss_and_accuracy(model, *val)
    assert loss == pytest.approx(stats["best_val_loss"], rel=1e-5)
    assert acc == pytest.approx(stats["best_val_acc"])
    curves = tmp_path / "live" / "plots" / "metrics" / "val"
    assert {"loss.tsv", "acc.tsv"} <= {p.name for p in curves.iterdir()}


def test_classifier_best_epoch_restore_with_accuracy_monitor():
    params = finetune_params(lr=0.3, encoder_lr=0.3, batch_size=8, max_epochs=6, monitor="val/acc")
    train, val = sine_or_square(16, 4), sine_or_square(16, 5)
    model, stats = fit_classifier(CONFIG, 2, train, val, params, "avg", None)
    assert 0 <= stats["best_epoch"] < stats["epochs_run"] == 6
    assert val_loss_and_accuracy(model, *val)[1] == pytest.approx(stats["best_val_acc"])


def test_frozen_encoder_is_unchanged(tmp_path):
    pretrained, _ = fit_pretrain(
        CONFIG, sines(16, 0), sines(8, 1), pretrain_params(max_epochs=1, crop=True), None
    )
    save_timae(pretrained, tmp_path / "encoder")
    params = finetune_params(freeze_encoder=True, batch_size=8, max_epochs=2, head_hidden=[8])
    model, _ = fit_classifier(
        CONFIG, 2, sine_or_square(16, 2), sine_or_square(8, 3), params, "cls", None,
        encoder_dir=tmp_path / "encoder",
    )
    before, after = pretrained.encoder.state_dict(), model.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_labels_outside_the_classes_are_rejected():
    x, y = sine_or_square(8, 0)
    with pytest.raises(DataError, match=r"val labels must lie in \[0, 2\)"):
        fit_classifier(CONFIG, 2, (x, y), (x, y + 1), FINETUNE, "avg", None)
