import json

import numpy as np
import pytest
import torch

from tests.conftest import tokenizer_params
from tsfmlab.data.arrow_io import write_series
from tsfmlab.errors import DataError, ParamError
from tsfmlab.models.chronos_models import new_chronos_t5
from tsfmlab.params import parse_section
from tsfmlab.training.dysts_finetune_data import (
    AugmentationParams,
    AugmentedDystsWindows,
    load_train_trajectories,
)

TOK = tokenizer_params()


def trajectories():
    rng = np.random.default_rng(0)
    return [
        {"target": np.cumsum(rng.normal(size=(3, 60)), axis=1).astype(np.float32), "system": s}
        for s in ("A", "A", "B", "C")
    ]


def windows(rate, probabilities, seed=0, n=20):
    augment = AugmentationParams(rate=rate, probabilities=probabilities, out_dim=None)
    tokenizer = new_chronos_t5("nano", TOK).tokenizer
    ds = AugmentedDystsWindows(
        trajectories(), augment, tokenizer, context_length=16, prediction_length=4, min_past=4,
        shuffle_buffer_length=0, seed=seed,
    )  # fmt: skip
    it = iter(ds)
    return [next(it) for _ in range(n)]


ALL = {"random_affine": 1.0, "convex_combination": 1.0, "projected_skew": 1.0}


def test_stream_is_seeded_and_yields_chronos_windows():
    a, b, c = windows(1.0, ALL), windows(1.0, ALL), windows(1.0, ALL, seed=1)
    assert all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(a, b))
    assert not all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(a, c))
    assert a[0]["input_ids"].shape == (17,) and a[0]["labels"].shape == (5,)


def test_the_order_of_the_probabilities_does_not_change_the_stream():
    """The same params as a mapping give the same windows, whatever the order of the keys (a params
    file rewritten with sorted keys, for one)."""
    reordered = dict(sorted(ALL.items()))
    assert list(reordered) != list(ALL)
    a, b = windows(1.0, ALL), windows(1.0, reordered)
    assert all(torch.equal(x["labels"], y["labels"]) for x, y in zip(a, b))


def test_rate_zero_draws_original_channels_only():
    base = windows(0.0, ALL)
    augmented = windows(1.0, {"projected_skew": 1.0})
    assert not all(torch.equal(x["labels"], y["labels"]) for x, y in zip(base, augmented))


def test_params_refuse_unknown_augmentations():
    with pytest.raises(ParamError, match=r"param ft.probabilities: unknown key 'flip'; known: random_affine"):
        parse_section(
            AugmentationParams, {"rate": 0.5, "probabilities": {"flip": 1.0}, "out_dim": None}, "ft"
        )
    with pytest.raises(ParamError, match="positive sum"):
        parse_section(
            AugmentationParams, {"rate": 0.5, "probabilities": {"random_affine": 0}, "out_dim": 2}, "ft"
        )


def test_held_out_systems_are_refused(tmp_path):
    write_series([{"target": np.ones((2, 50)), "system": "Lorenz"}], tmp_path / "train" / "part.arrow")
    (tmp_path / "systems.json").write_text(json.dumps({"train": [], "test": ["Lorenz"]}))
    with pytest.raises(DataError, match="held-out test system\\(s\\) in training data: Lorenz"):
        load_train_trajectories(tmp_path)
    (tmp_path / "systems.json").write_text(json.dumps({"train": ["Lorenz"], "test": ["Rossler"]}))
    (traj,) = load_train_trajectories(tmp_path)
    assert traj["target"].shape == (2, 50) and traj["system"] == "Lorenz"
