"""Tests of the seeded GluonTS augmentations in tsfmlab.data.augmentations."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from gluonts.transform import Chain

from tsfmlab.data.augmentations import (
    RandomAffineTransform,
    RandomConvexCombinationTransform,
    RandomProjectedSkewTransform,
    standardize,
)
from tsfmlab.errors import DataError, ParamError

T = 200


def make_entry(system: str, dim: int = 3, length: int = T, seed: int = 0) -> dict:
    """A small synthetic trajectory with channels of very different offsets and scales."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 10, length)
    channels = [np.sin(t * (i + 1) + rng.uniform(0, 6)) * 10.0**i + 5 * i for i in range(dim)]
    target = (np.stack(channels) + 0.1 * rng.standard_normal((dim, length))).astype(np.float32)
    return {"target": target, "system": system, "start": "2000-01-01"}


def make_stream(systems: list[str], dim: int = 3) -> list[dict]:
    return [make_entry(s, dim=dim, length=T + 10 * i, seed=i) for i, s in enumerate(systems)]


def run(transform, entries, is_train: bool = True) -> list[dict]:
    return list(transform(iter(entries), is_train=is_train))


MAP_TRANSFORMS = [RandomAffineTransform, RandomConvexCombinationTransform]
ALL_TRANSFORMS = [*MAP_TRANSFORMS, RandomProjectedSkewTransform]


# ------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("cls", MAP_TRANSFORMS)
@pytest.mark.parametrize("out_dim, expected", [(None, 3), (1, 1), (5, 5)])
def test_map_transform_shapes(cls, out_dim, expected):
    (out,) = run(cls(out_dim=out_dim), [make_entry("lorenz")])
    assert out["target"].shape == (expected, T)
    assert out["target"].dtype == np.float32
    assert out["system"] == "lorenz" and out["start"] == "2000-01-01"


@pytest.mark.parametrize("cls", MAP_TRANSFORMS)
def test_univariate_target_is_treated_as_one_channel(cls):
    entry = {"target": np.linspace(0.0, 1.0, T).astype(np.float32), "system": "ramp"}
    (same,) = run(cls(), [entry])
    assert same["target"].shape == (T,)
    (wide,) = run(cls(out_dim=4), [entry])
    assert wide["target"].shape == (4, T)


def test_skew_shapes_crop_to_common_length():
    a = make_entry("lorenz", dim=3, length=300)
    b = make_entry("rossler", dim=5, length=250, seed=1)
    (out,) = run(RandomProjectedSkewTransform(out_dim=4), [a, b])
    assert out["target"].shape == (4, 250)
    assert out["target"].dtype == np.float32
    assert np.isfinite(out["target"]).all()


# ------------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("cls", ALL_TRANSFORMS)
def test_same_seed_same_output_different_seed_different_output(cls):
    entries = make_stream(["a", "b", "c", "d"])
    first = run(cls(seed=7), entries)
    second = run(cls(seed=7), entries)
    other = run(cls(seed=8), entries)
    assert len(first) == len(second) == len(other)
    for x, y in zip(first, second, strict=True):
        np.testing.assert_array_equal(x["target"], y["target"])
        assert x["system"] == y["system"]
    assert any(not np.array_equal(x["target"], z["target"]) for x, z in zip(first, other, strict=True))


@pytest.mark.parametrize("cls", MAP_TRANSFORMS)
def test_generator_advances_between_entries(cls):
    entry = make_entry("lorenz")
    out1, out2 = run(cls(seed=0), [entry, entry])
    assert not np.array_equal(out1["target"], out2["target"])


# ------------------------------------------------------------------------------------------- affine


def test_affine_is_invariant_to_channel_offset_and_scale():
    entry = make_entry("lorenz")
    rescaled = dict(
        entry, target=entry["target"] * np.float32([[1e4], [1.0], [1e-3]]) + np.float32([[3.0], [-1e3], [0]])
    )
    (out,) = run(RandomAffineTransform(seed=3), [entry])
    (out_rescaled,) = run(RandomAffineTransform(seed=3), [rescaled])
    np.testing.assert_allclose(out["target"], out_rescaled["target"], rtol=1e-3, atol=1e-3)


def test_affine_matches_definition():
    entry = make_entry("lorenz")
    transform = RandomAffineTransform(out_dim=2, scale=0.5, seed=4)
    (out,) = run(transform, [entry])
    rng = np.random.default_rng(4)
    rng.random()  # the probability gate
    a = rng.standard_normal((2, 3)) * 0.5 / np.sqrt(3)
    b = rng.standard_normal((2, 1)) * 0.5
    expected = a @ standardize(entry["target"]) + b
    np.testing.assert_allclose(out["target"], expected, rtol=1e-5, atol=1e-5)


def test_standardize_zero_mean_unit_std_and_constant_channel():
    x = np.stack([np.arange(10.0) * 100 + 7, np.full(10, 3.0)])
    z = standardize(x)
    np.testing.assert_allclose(z[0].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(z[0].std(), 1, atol=1e-12)
    np.testing.assert_array_equal(z[1], 0.0)


def test_partial_nans_are_confined_to_their_time_steps():
    entry = make_entry("lorenz")
    entry["target"][1, 5] = np.nan
    (out,) = run(RandomAffineTransform(), [entry])
    bad = ~np.isfinite(out["target"])
    assert bad[:, 5].all()
    assert bad.sum() == out["target"].shape[0]


# -------------------------------------------------------------------------------------------- convex


@pytest.mark.parametrize("alpha", [0.05, 1.0, 20.0])
@pytest.mark.parametrize("out_dim", [None, 2, 6])
def test_convex_weights_on_simplex(alpha, out_dim):
    transform = RandomConvexCombinationTransform(out_dim=out_dim, alpha=alpha, seed=1)
    for _ in range(20):
        w = transform.sample_weights(4)
        assert w.shape == (out_dim or 4, 4)
        assert (w >= 0).all()
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("out_dim", [None, 2, 7])
def test_convex_output_within_channel_range(out_dim):
    entries = make_stream(["a", "b", "c"], dim=4)
    for entry, out in zip(
        entries, run(RandomConvexCombinationTransform(out_dim=out_dim, alpha=0.5), entries), strict=True
    ):
        x, y = entry["target"], out["target"]
        tol = 1e-5 * np.abs(x).max()
        assert (y >= x.min(axis=0) - tol).all()
        assert (y <= x.max(axis=0) + tol).all()


# ----------------------------------------------------------------------------- copies and pass-through


@pytest.mark.parametrize("cls", ALL_TRANSFORMS)
@pytest.mark.parametrize("probability", [0.0, 0.5, 1.0])
def test_inputs_not_modified_in_place(cls, probability):
    entries = make_stream(["a", "b", "a", "c", "b"])
    entries[0]["target"] = entries[0]["target"][0]  # a univariate one too
    before = copy.deepcopy(entries)
    outputs = run(cls(probability=probability, seed=2), entries)
    for entry, saved in zip(entries, before, strict=True):
        assert entry.keys() == saved.keys()
        assert entry["system"] == saved["system"]
        np.testing.assert_array_equal(entry["target"], saved["target"])
        assert entry["target"].dtype == saved["target"].dtype
    for out in outputs:
        assert all(out is not e for e in entries)
        assert all(not np.shares_memory(out["target"], e["target"]) for e in entries)


@pytest.mark.parametrize("cls", ALL_TRANSFORMS)
def test_probability_zero_passes_through(cls):
    entries = make_stream(["a", "b", "c"])
    outputs = run(cls(probability=0.0), entries)
    assert len(outputs) == len(entries)
    for entry, out in zip(entries, outputs, strict=True):
        assert out == {**entry, "target": out["target"]}
        np.testing.assert_array_equal(out["target"], entry["target"])
        assert out["target"].dtype == entry["target"].dtype


@pytest.mark.parametrize("cls", ALL_TRANSFORMS)
def test_inference_passes_through(cls):
    entries = make_stream(["a", "b", "c"])
    transform = cls(seed=5)
    outputs = run(transform, entries, is_train=False)
    assert [o["system"] for o in outputs] == ["a", "b", "c"]
    for entry, out in zip(entries, outputs, strict=True):
        np.testing.assert_array_equal(out["target"], entry["target"])
    # no random numbers were drawn: training output equals that of a fresh instance
    for x, y in zip(run(transform, entries), run(cls(seed=5), entries), strict=True):
        np.testing.assert_array_equal(x["target"], y["target"])


def test_probability_gates_a_fraction_of_entries():
    entry = make_entry("lorenz")
    outputs = run(RandomAffineTransform(probability=0.5, seed=0), [entry] * 200)
    unchanged = sum(np.array_equal(o["target"], entry["target"]) for o in outputs)
    assert 60 < unchanged < 140


# ---------------------------------------------------------------------------------------------- skew


def test_skew_pairs_different_systems_only():
    systems = ["a", "a", "a", "b", "b", "c", "a", "c", "c", "b", "d", "d"]
    entries = make_stream(systems)
    outputs = run(RandomProjectedSkewTransform(seed=0), entries)
    skewed = [o for o in outputs if "skew_systems" in o]
    passed = [o for o in outputs if "skew_systems" not in o]
    assert skewed
    for out in skewed:
        driver, response = out["skew_systems"]
        assert driver != response
        assert out["system"] == f"{driver}+{response}"
    # every input is used exactly once: in a pair or passed through unaugmented at the end
    assert 2 * len(skewed) + len(passed) == len(entries)
    used = sorted(s for o in skewed for s in o["skew_systems"]) + sorted(o["system"] for o in passed)
    assert sorted(used) == sorted(systems)


def test_skew_single_system_stream_passes_through():
    entries = make_stream(["a"] * 5)
    outputs = run(RandomProjectedSkewTransform(buffer_size=2), entries)
    assert len(outputs) == 5
    for entry, out in zip(entries, outputs, strict=True):
        assert out["system"] == "a" and "skew_systems" not in out
        np.testing.assert_array_equal(out["target"], entry["target"])


def test_skew_matches_definition():
    a, b = make_entry("a", dim=3, length=220), make_entry("b", dim=2, length=200, seed=1)
    (out,) = run(RandomProjectedSkewTransform(out_dim=2, seed=11, coupling_range=(0.2, 0.4)), [a, b])
    rng = np.random.default_rng(11)
    rng.random(), rng.random()  # the two probability gates
    (driver, response) = (a, b) if rng.random() < 0.5 else (b, a)
    assert out["skew_systems"] == [driver["system"], response["system"]]
    z_d, z_r = standardize(driver["target"])[:, :200], standardize(response["target"])[:, :200]
    p_d = rng.standard_normal((2, z_d.shape[0])) / np.sqrt(z_d.shape[0])
    p_r = rng.standard_normal((2, z_r.shape[0])) / np.sqrt(z_r.shape[0])
    c = rng.uniform(0.2, 0.4)
    np.testing.assert_allclose(out["target"], p_r @ z_r + c * p_d @ z_d, rtol=1e-5, atol=1e-5)


def test_skew_needs_system_field():
    with pytest.raises(DataError, match="system"):
        run(RandomProjectedSkewTransform(), [{"target": np.ones((2, 10), dtype=np.float32)}])


# --------------------------------------------------------------------------------------------- chain


def test_usage_inside_gluonts_chain():
    entries = make_stream(["a", "b", "c", "d", "e", "f"])
    chain = Chain(
        [
            RandomConvexCombinationTransform(alpha=0.5, seed=1),
            RandomAffineTransform(out_dim=4, seed=2),
            RandomProjectedSkewTransform(out_dim=3, seed=3),
        ]
    )
    outputs = list(chain.apply(entries, is_train=True))
    assert len(outputs) == 3
    lengths = {e["system"]: e["target"].shape[1] for e in entries}
    for out in outputs:
        driver, response = out["skew_systems"]
        assert driver != response
        assert out["target"].shape == (3, min(lengths[driver], lengths[response]))
    untouched = list(chain.apply(entries, is_train=False))
    for entry, out in zip(entries, untouched, strict=True):
        np.testing.assert_array_equal(out["target"], entry["target"])


# ------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "cls, kwargs, name",
    [
        (RandomAffineTransform, {"out_dim": 0}, "out_dim"),
        (RandomAffineTransform, {"out_dim": 2.5}, "out_dim"),
        (RandomAffineTransform, {"scale": 0.0}, "scale"),
        (RandomAffineTransform, {"scale": float("nan")}, "scale"),
        (RandomAffineTransform, {"probability": 1.5}, "probability"),
        (RandomAffineTransform, {"seed": -1}, "seed"),
        (RandomConvexCombinationTransform, {"alpha": 0}, "alpha"),
        (RandomConvexCombinationTransform, {"alpha": -1.0}, "alpha"),
        (RandomConvexCombinationTransform, {"out_dim": -3}, "out_dim"),
        (RandomConvexCombinationTransform, {"probability": -0.1}, "probability"),
        (RandomProjectedSkewTransform, {"out_dim": None}, "out_dim"),
        (RandomProjectedSkewTransform, {"out_dim": 0}, "out_dim"),
        (RandomProjectedSkewTransform, {"probability": 2}, "probability"),
        (RandomProjectedSkewTransform, {"coupling_range": (1.0, 0.5)}, "coupling_range"),
        (RandomProjectedSkewTransform, {"coupling_range": 3}, "coupling_range"),
        (RandomProjectedSkewTransform, {"buffer_size": 0}, "buffer_size"),
    ],
)
def test_bad_arguments_raise_param_error(cls, kwargs, name):
    with pytest.raises(ParamError, match=name):
        cls(**kwargs)


@pytest.mark.parametrize("cls", ALL_TRANSFORMS)
def test_target_without_finite_values_raises_naming_system(cls):
    bad = {"target": np.full((3, T), np.nan, dtype=np.float32), "system": "broken_sys"}
    with pytest.raises(DataError, match="broken_sys"):
        run(cls(), [make_entry("ok"), bad])


@pytest.mark.parametrize("cls", ALL_TRANSFORMS)
def test_target_with_wrong_rank_raises(cls):
    bad = {"target": np.ones((2, 3, T), dtype=np.float32), "system": "cube"}
    with pytest.raises(DataError, match=r"cube.*1-D.*2-D"):
        run(cls(), [bad])
