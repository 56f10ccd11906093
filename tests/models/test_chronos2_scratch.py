"""A new Chronos-2 from params: chronos-forecasting's own model, deterministic, saved and reloaded."""


import numpy as np
import pytest
import torch

from tsfmlab.errors import ParamError
from tsfmlab.models.chronos2 import CHRONOS2_QUANTILES, Chronos2Params, new_chronos2
from tsfmlab.params import parse_section

SMALL = dict(d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, dropout_rate=0.1, context_length=64,
             patch_size=16, max_output_patches=2, quantiles=list(CHRONOS2_QUANTILES))  # fmt: skip


def test_new_model_is_deterministic_and_reloads(tmp_path, one_thread):
    from tsfmlab.models.loading import load_pipeline, save_pipeline

    p = Chronos2Params(**SMALL)
    a, b, c = new_chronos2(p, seed=0), new_chronos2(p, seed=0), new_chronos2(p, seed=1)
    sa, sc = a.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in sa.items())
    assert any(not torch.equal(v, sc[k]) for k, v in sa.items())
    save_pipeline(a, tmp_path / "m")
    loaded = load_pipeline(tmp_path / "m", "chronos-2")
    assert loaded.model_context_length == 64 and loaded.quantiles == list(CHRONOS2_QUANTILES)
    x = [torch.tensor(np.sin(np.arange(80) / 5), dtype=torch.float32)]
    qa, _ = a.predict_quantiles(x, prediction_length=16, quantile_levels=[0.5])
    qb, _ = loaded.predict_quantiles(x, prediction_length=16, quantile_levels=[0.5])
    assert torch.allclose(qa[0], qb[0], rtol=1e-5, atol=1e-7) and qa[0].shape == (1, 16, 1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"context_length": 60}, "multiple of"),
        ({"quantiles": [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]}, "deciles"),
        ({"quantiles": list(CHRONOS2_QUANTILES)[::-1]}, "increasing"),
        ({"d_model": 0}, "chronos2.model.d_model"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
    ],
)
def test_bad_params_are_named(change, message):
    with pytest.raises(ParamError, match=message):
        parse_section(Chronos2Params, {**SMALL, **change}, "chronos2.model")


def test_params_roundtrip():
    p = parse_section(Chronos2Params, SMALL, "chronos2.model")
    assert p.model_dump() == SMALL
