import json

import numpy as np
import pytest

from tests.conftest import section_params
from tsfmlab.data.arrow_io import write_series
from tsfmlab.data.dysts_gen import (
    DystsParams,
    available_systems,
    generate_dysts,
    split_systems,
    training_channels,
)
from tsfmlab.errors import DataError, ParamError
from tsfmlab.params import parse_section

SMALL = ["Lorenz", "Rossler", "Chua", "Thomas", "Halvorsen", "SprottB"]


def params(**overrides) -> DystsParams:
    values = section_params(
        "generate_dysts",
        systems=SMALL,
        exclude_systems=[],
        n_param_perturbations=2,
        n_initial_conditions=1,
        length=256,
        transient=50,
        test_fraction=0.34,
    )
    values.update(overrides)
    return parse_section(DystsParams, values, "generate_dysts", section_params("shared"))


def test_catalogue_has_the_continuous_systems():
    assert len(available_systems(False)) == 129
    assert len(available_systems(True)) > 129


def test_system_split_is_seeded_and_disjoint():
    s = split_systems(params())
    assert s == split_systems(params())
    assert not set(s["train"]) & set(s["test"])
    assert sorted(s["train"] + s["test"]) == sorted(SMALL)
    assert len(s["test"]) == 2


def test_explicit_split():
    s = split_systems(params(train_systems=["Lorenz", "Chua"], test_systems=["Rossler"]))
    assert s == {"train": ["Chua", "Lorenz"], "test": ["Rossler"]}
    with pytest.raises(ParamError, match="overlap: Lorenz"):
        split_systems(params(train_systems=["Lorenz"], test_systems=["Lorenz"]))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"systems": ["Lorenz", "Lorentz96x"]}, "unknown dysts system 'Lorentz96x'"),
        ({"exclude_systems": ["Nope"]}, "generate_dysts.exclude_systems: unknown dysts system 'Nope'"),
        ({"test_fraction": 1.2}, "generate_dysts.test_fraction must be in the open interval"),
        ({"test_fraction": 0.0}, "generate_dysts.test_fraction must be in the open interval"),
        ({"length": 0}, "generate_dysts.length must be >= 2"),
        ({"n_initial_conditions": -1}, "generate_dysts.n_initial_conditions must be > 0"),
        ({"shard_index": 2, "num_shards": 2}, "shard_index must be < generate_dysts.num_shards"),
        ({"method": "Euler"}, "generate_dysts.method must be one of"),
    ],
)
def test_bad_params_fail_before_integration(overrides, message):
    with pytest.raises(ParamError, match=message):
        p = params(**overrides)
        generate_dysts(p)


def test_unknown_system_suggests_close_names():
    with pytest.raises(ParamError, match="did you mean Lorenz"):
        split_systems(params(systems=["Lorenzz"]))


def test_generation_metadata_and_filters():
    c = generate_dysts(params())
    assert c.requested == {"train": 8, "test": 4}
    for split, entries in c.entries.items():
        for e in entries:
            assert e["split"] == split and e["system"] in c.splits[split]
            dim = len(e["initial_condition"])
            assert e["target"].shape == (dim, 256) and e["target"].dtype == np.float32
            assert np.all(np.isfinite(e["target"]))
            assert isinstance(json.loads(e["params"]), dict)
    accepted = sum(len(v) for v in c.entries.values())
    rejected = sum(sum(r.values()) for r in c.rejections.values())
    assert accepted + rejected == 12
    # perturbation 0 keeps the published parameters, perturbation 1 changes them
    lorenz = [e for es in c.entries.values() for e in es if e["system"] == "Lorenz"]
    by_index = {e["param_index"]: json.loads(e["params"]) for e in lorenz}
    if {0, 1} <= set(by_index):
        assert by_index[0] == {"beta": 2.667, "rho": 28, "sigma": 10}
        assert by_index[1] != by_index[0]


def _entries_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            if isinstance(x[k], np.ndarray):
                np.testing.assert_array_equal(x[k], y[k])
            else:
                assert x[k] == y[k], k


def test_worker_count_and_shards_do_not_change_samples():
    one = generate_dysts(params())
    two = generate_dysts(params(), n_jobs=2)
    for split in ("train", "test"):
        _entries_equal(one.entries[split], two.entries[split])
    shards = [generate_dysts(params(shard_index=i, num_shards=2)) for i in range(2)]
    for split in ("train", "test"):
        merged = sorted((e for s in shards for e in s.entries[split]), key=lambda e: e["sample_index"])
        _entries_equal(one.entries[split], merged)


def test_training_channels_refuse_held_out_systems(tmp_path):
    (tmp_path / "systems.json").write_text(json.dumps({"train": ["Lorenz"], "test": ["Rossler"]}))
    write_series(
        [{"target": np.ones((3, 8)), "system": "Lorenz", "split": "train"}], tmp_path / "train" / "p.arrow"
    )
    assert len(training_channels(tmp_path)) == 3
    write_series(
        [{"target": np.ones((3, 8)), "system": "Rossler", "split": "train"}], tmp_path / "train" / "p.arrow"
    )
    with pytest.raises(DataError, match="held-out system 'Rossler'"):
        training_channels(tmp_path)


def test_delay_systems_only_when_enabled():
    delay = ["MackeyGlass", "IkedaDelay", "Lorenz"]
    with pytest.raises(ParamError, match="unknown dysts system 'MackeyGlass'"):
        split_systems(params(systems=delay))
    c = generate_dysts(params(systems=delay, include_delay_systems=True, n_param_perturbations=1))
    kept = {e["system"] for es in c.entries.values() for e in es}
    assert {"MackeyGlass", "IkedaDelay"} & kept
    assert all(np.all(np.isfinite(e["target"])) for es in c.entries.values() for e in es)
