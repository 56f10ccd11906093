"""Encoder features: shapes of every pooling, equality with chronos-forecasting's embed, determinism."""

import numpy as np
import pytest
import torch

from tests.conftest import tiny_chronos
from tsfmlab.models.encoders import ChronosEncoder, embed_batch, embed_series, pool, windows_of


@pytest.fixture(scope="module")
def pipeline():
    return tiny_chronos(context_length=32)


def contexts(b=3, t=20, seed=0):
    x = torch.from_numpy(np.random.default_rng(seed).normal(size=(b, t)).astype(np.float32))
    x[0, :5] = float("nan")  # a shorter series, left-padded
    return x


def test_mean_without_eos_equals_masked_mean_of_pipeline_embed(pipeline):
    x = contexts()
    hidden, mask, summary = ChronosEncoder(pipeline)(x)
    ref, _ = pipeline.embed(x)
    torch.testing.assert_close(hidden, ref)
    assert summary == hidden.shape[1] - 1 and mask.sum(1).tolist() == [15, 20, 20]
    valid = ~torch.isnan(x)
    expected = (ref[:, :-1] * valid[..., None]).sum(1) / valid.sum(1, keepdim=True)
    torch.testing.assert_close(pool(hidden, mask, summary, "mean_no_eos"), expected)
    with_eos = (ref[:, :-1] * valid[..., None]).sum(1) + ref[:, -1]
    torch.testing.assert_close(
        pool(hidden, mask, summary, "mean"), with_eos / (valid.sum(1, keepdim=True) + 1)
    )
    torch.testing.assert_close(pool(hidden, mask, summary, "last"), ref[:, -1])


@pytest.mark.parametrize("channels,width", [("concat", 3 * 16), ("mean", 16)])
@pytest.mark.parametrize("pooling", ["mean", "mean_no_eos", "last"])
def test_feature_shapes_and_determinism(pipeline, pooling, channels, width):
    x = np.random.default_rng(1).normal(size=(5, 3, 40)).astype(np.float32)
    enc = ChronosEncoder(pipeline)
    a = embed_series(enc, x, pooling, channels, "windows", batch_size=2)
    b = embed_series(enc, x, pooling, channels, "windows", batch_size=5)
    assert a.shape == (5, width) and a.dtype == np.float32
    np.testing.assert_array_equal(a, embed_series(enc, x, pooling, channels, "windows", batch_size=2))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_long_series_is_the_mean_of_its_windows(pipeline):
    enc = ChronosEncoder(pipeline)
    x = np.random.default_rng(2).normal(size=(2, 1, 70)).astype(np.float32)
    windows = windows_of(torch.from_numpy(x), 32, "windows")
    assert [w.shape[-1] for w in windows] == [32, 32, 32] and torch.isnan(windows[0][..., :26]).all()
    parts = [embed_series(enc, w.numpy(), "mean", "concat", "truncate", 8) for w in windows]
    np.testing.assert_allclose(
        embed_series(enc, x, "mean", "concat", "windows", 8), np.mean(parts, 0), atol=1e-6
    )
    last = embed_series(enc, x[..., -32:], "mean", "concat", "truncate", 8)
    np.testing.assert_array_equal(embed_series(enc, x, "mean", "concat", "truncate", 8), last)


def test_gradients_reach_the_encoder_and_dropout_stays_off(pipeline):
    enc = ChronosEncoder(pipeline).train()
    assert not enc.training and not any(m.training for m in enc.modules())
    z = embed_batch(enc, torch.randn(4, 1, 32), "mean", "concat", "truncate")
    z.sum().backward()
    assert all(p.grad is not None for p in enc.parameters() if p.requires_grad and p.dim() > 1)


@pytest.mark.parametrize("name", ["dummy-chronos-bolt-model", "dummy-chronos2-model"])
def test_bolt_and_chronos2_fixtures(shared_dir, name):
    from tsfmlab.models.loading import load_pipeline

    path = shared_dir / "fixtures/chronos" / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    pipe = load_pipeline(path)
    enc = ChronosEncoder(pipe)
    x = contexts(t=48)
    hidden, mask, summary = enc(x)
    if enc.family == "chronos-bolt":
        torch.testing.assert_close(hidden, pipe.embed(x)[0])
    else:
        ref, _ = pipe.embed([row[~torch.isnan(row)] for row in x], batch_size=1)
        torch.testing.assert_close(hidden[1:], torch.cat(ref[1:]), atol=1e-5, rtol=1e-4)
    assert mask.sum(1).tolist()[1] == mask.sum(1).max() and summary is not None
    feats = embed_series(enc, np.random.default_rng(0).normal(size=(3, 2, 48)).astype(np.float32), "last", "concat",
                         "windows", 2)  # fmt: skip
    assert feats.shape == (3, 2 * enc.d_model) and np.isfinite(feats).all()
