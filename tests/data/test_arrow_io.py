import numpy as np
import pytest

from tsfmlab.data.arrow_io import read_series, read_targets, shard_name, write_series
from tsfmlab.errors import DataError


def test_roundtrip_multivariate_and_metadata(tmp_path):
    entries = [
        {"target": np.arange(12, dtype=np.float32).reshape(3, 4), "system": "Lorenz", "ic": [1.0, 2.0, 3.0]},
        {"target": np.ones((2, 5)), "system": "Rossler", "ic": [0.0, 1.0]},
    ]
    write_series(entries, tmp_path / "c" / shard_name(0, 1))
    back = read_series(tmp_path / "c")
    assert [e["system"] for e in back] == ["Lorenz", "Rossler"]
    assert back[0]["target"].shape == (3, 4) and back[1]["target"].shape == (2, 5)
    np.testing.assert_array_equal(back[0]["target"], entries[0]["target"])
    assert read_targets(tmp_path / "c")[1].dtype == np.float32


def test_same_entries_give_identical_bytes(tmp_path):
    entries = [{"target": np.random.default_rng(0).normal(size=(3, 50))}]
    write_series(entries, tmp_path / "a.arrow")
    write_series(entries, tmp_path / "b.arrow")
    assert (tmp_path / "a.arrow").read_bytes() == (tmp_path / "b.arrow").read_bytes()


def test_corrupted_file_is_named(tmp_path):
    write_series([{"target": np.ones(10)}], tmp_path / "part-00000-of-00002.arrow")
    bad = tmp_path / "part-00001-of-00002.arrow"
    bad.write_bytes((tmp_path / "part-00000-of-00002.arrow").read_bytes()[:40])
    with pytest.raises(DataError, match="part-00001-of-00002.arrow"):
        read_series(tmp_path)


def test_missing_corpus_is_named(tmp_path):
    with pytest.raises(DataError, match="nowhere.*not found"):
        read_series(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .arrow files"):
        read_series(tmp_path / "empty")
