import json

import numpy as np
import pytest

from tests.conftest import section_params
from tsfmlab.data.tsmixup import MixupParams, build_mixups, mean_scale
from tsfmlab.errors import ParamError
from tsfmlab.params import parse_section


def params(**overrides) -> MixupParams:
    values = section_params("build_mixups", n_series=40, min_length=16, max_length=64)
    values.update(overrides)
    return parse_section(MixupParams, values, "build_mixups", section_params("shared"))


def sources():
    rng = np.random.default_rng(0)
    return {
        "dysts": [rng.normal(size=200) + 5 for _ in range(4)],
        "kernelsynth": [np.sin(np.arange(100) / 5) * 3 + 1 for _ in range(3)],
        "real": [np.arange(1.0, 81.0), np.ones(5)],  # the 5-point series is too short to use
    }


def test_mixtures_have_valid_lengths_weights_and_provenance():
    p = params()
    out = list(build_mixups(sources(), p))
    assert len(out) == 40
    for e in out:
        assert 16 <= len(e["target"]) <= 64 and e["target"].dtype == np.float32
        w = np.array(e["weights"])
        assert 1 <= len(w) <= p.max_sources and np.all(w >= 0) and abs(w.sum() - 1) < 1e-9
        origin = json.loads(e["sources"])
        assert len(origin) == len(w)
        assert all(o.split(":")[0] in {"dysts", "kernelsynth", "real"} for o in origin)
        assert not any(o.startswith("real:1:") for o in origin)


def test_single_component_is_a_mean_scaled_window():
    p = params(max_sources=1, source_probabilities={"real": 1.0}, real_datasets=[])
    for e in build_mixups({"real": [np.arange(1.0, 81.0)]}, p):
        start = int(json.loads(e["sources"])[0].split(":")[2])
        window = np.arange(1.0, 81.0)[start : start + len(e["target"])]
        np.testing.assert_allclose(e["target"], mean_scale(window), rtol=1e-6)


def test_deterministic_for_a_seed():
    a, b = list(build_mixups(sources(), params())), list(build_mixups(sources(), params()))
    assert all(np.array_equal(x["target"], y["target"]) for x, y in zip(a, b))
    c = list(build_mixups(sources(), params(seed=1)))
    assert not all(np.array_equal(x["target"], y["target"]) for x, y in zip(a, c))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"min_length": 100, "max_length": 50},
            "build_mixups.min_length=100 exceeds build_mixups.max_length=50",
        ),
        ({"n_series": 0}, "build_mixups.n_series must be > 0"),
        ({"alpha": -1.0}, "build_mixups.alpha must be > 0"),
        ({"source_probabilities": {"dysts": -0.5}}, "build_mixups.source_probabilities.dysts must be >= 0"),
    ],
)
def test_bad_params(overrides, message):
    with pytest.raises(ParamError, match=message):
        params(**overrides)


def test_unknown_or_empty_source():
    with pytest.raises(ParamError, match="unknown source"):
        build_mixups(sources(), params(source_probabilities={"m4": 1.0}))
    with pytest.raises(ParamError, match="no finite, non-constant series"):
        build_mixups({"real": [np.ones(100)]}, params(source_probabilities={"real": 1.0}))


def test_memory_mapped_sources_give_the_same_mixtures(tmp_path):
    """A source read lazily from a corpus on disk (float32, as the stage reads KernelSynth) mixes to the
    same bytes as the same series in memory; only usable series are counted, as in memory."""
    from tsfmlab.data.corpus import Corpus, CorpusWriter

    listed = {k: [np.asarray(s, np.float32) for s in v] for k, v in sources().items()}
    with CorpusWriter(tmp_path / "ks", shard_size=2, batch_rows=1) as writer:
        for s in listed["kernelsynth"]:
            writer.add({"target": s})
    lazy = {**listed, "kernelsynth": Corpus(tmp_path / "ks")}
    a, b = list(build_mixups(listed, params())), list(build_mixups(lazy, params()))
    assert [x["sources"] for x in a] == [y["sources"] for y in b]
    assert all(np.array_equal(x["target"], y["target"]) for x, y in zip(a, b))
