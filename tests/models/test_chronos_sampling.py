import pytest
import torch
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from tests.conftest import tiny_chronos
from tsfmlab.models.chronos_sampling import fast_pipeline, sample_next
from tsfmlab.models.loading import load_pipeline


def contexts(n: int = 5, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(60, dtype=torch.float32)
    return [torch.sin(t / (3 + i)) * (i + 1) + 0.1 * torch.randn(60, generator=g) + i for i in range(n)][:n]


def both(pipeline, **kwargs):
    out = []
    for p in (pipeline, fast_pipeline(pipeline)):
        torch.manual_seed(0)
        out.append(p.predict(contexts(), prediction_length=20, num_samples=6, **kwargs))
    return out


@pytest.mark.parametrize("kwargs", [{"top_k": 1}, {"top_k": 0}, {"top_k": 0, "temperature": 0.6}])
def test_same_samples_as_generate(kwargs):
    """Greedy, and full-vocabulary sampling at a fixed seed, give exactly generate's paths (20 steps
    with a prediction length of 8 also covers chronos' rollout)."""
    hf, fast = both(tiny_chronos(seed=1), **kwargs)
    assert hf.shape == fast.shape == (5, 6, 20)
    assert torch.equal(hf, fast)


def test_fixture_checkpoint_same_greedy_paths(shared_dir):
    """A real-format chronos-t5 checkpoint (tied embeddings: the decoder output is rescaled)."""
    pipeline = load_pipeline(shared_dir / "fixtures" / "chronos" / "dummy-chronos-model", "chronos-t5")
    hf, fast = both(pipeline, top_k=1)
    assert torch.equal(hf, fast)


def test_default_sampling_is_random_but_seeded():
    pipeline = fast_pipeline(tiny_chronos(seed=1))
    runs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        runs.append(pipeline.predict(contexts(), prediction_length=8, num_samples=6))
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    assert (runs[0].std(dim=1) > 0).any()  # sample paths differ


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(1.0, 4, 1.0), (0.7, 5, 0.8), (1.3, 0, 0.6)])
def test_sample_next_draws_from_generates_distribution(temperature, top_k, top_p):
    """Drawing among the top-k candidates only is the distribution generate's warpers define."""
    logits = torch.tensor([[2.0, 1.5, 1.4, 0.3, -0.5, 0.9, -2.0, 0.0, 1.1, -1.0]])
    warped = logits.clone()
    for warper in (
        TemperatureLogitsWarper(temperature),
        TopKLogitsWarper(top_k) if top_k else None,
        TopPLogitsWarper(top_p) if top_p < 1 else None,
    ):
        warped = warper(None, warped) if warper is not None else warped
    expected = warped.softmax(-1)[0]
    torch.manual_seed(0)
    draws = sample_next(logits.expand(200_000, -1), temperature, top_k, top_p)[:, 0]
    freq = torch.bincount(draws, minlength=logits.shape[-1]).double() / len(draws)
    assert torch.allclose(freq, expected.double(), atol=4e-3)
    assert (freq[expected == 0] == 0).all()  # filtered tokens are never drawn
