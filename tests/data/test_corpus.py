"""Corpora on disk: streamed Arrow shards with an index, random-access reads, clear errors on bad files."""

import pickle

import numpy as np
import pyarrow as pa
import pytest

from tsfmlab.data.arrow_io import read_series, write_series
from tsfmlab.data.corpus import Corpus, CorpusWriter, main
from tsfmlab.errors import DataError


def series(n=50, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = rng.standard_normal(int(rng.integers(5, 60))).astype(np.float32)
        if i % 5 == 0:
            x[: len(x) // 2] = np.nan
        if i % 11 == 0:
            x[-1] = np.inf
        out.append(x)
    return out


def write(path, xs, shard_size=16, batch_rows=4, **extra):
    with CorpusWriter(path, shard_size=shard_size, batch_rows=batch_rows) as writer:
        for i, x in enumerate(xs):
            writer.add({"target": x, "item_index": i, **extra})
    return path


def test_roundtrip_in_shards_with_index(tmp_path):
    xs = series()
    write(tmp_path / "c", xs)
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    index = ["_index-00000-of-00001.json", "_index-00000-of-00001.npy"]
    assert names == index + [f"part-00000-{k:05d}.arrow" for k in range(4)]
    corpus = Corpus(tmp_path / "c")
    assert len(corpus) == len(xs)
    for i, x in enumerate(xs):
        np.testing.assert_array_equal(corpus[i], x)
    entries = read_series(tmp_path / "c")  # gluonts reads the same files
    assert [e["item_index"] for e in entries] == list(range(len(xs)))
    np.testing.assert_array_equal(entries[7]["target"], xs[7])


def test_same_entries_same_bytes(tmp_path):
    xs = series()
    a, b = write(tmp_path / "a", xs), write(tmp_path / "b", xs)
    for p in sorted(a.iterdir()):
        assert p.read_bytes() == (b / p.name).read_bytes()


def test_filter_reads_the_index_only(tmp_path):
    xs = series()
    corpus = Corpus(write(tmp_path / "c", xs))
    for min_length, missing in [(1, 1.0), (20, 0.3), (40, 0.0)]:
        expected = [
            i for i, x in enumerate(xs)
            if len(x) >= min_length and np.isfinite(x).any() and (~np.isfinite(x)).mean() <= missing
        ]  # fmt: skip
        assert list(corpus.eligible(min_length, missing)) == expected


def test_multivariate_entries_are_channels(tmp_path):
    rng = np.random.default_rng(1)
    trajectories = [rng.standard_normal((3, 20 + i)).astype(np.float32) for i in range(5)]
    with CorpusWriter(tmp_path / "m", shard_size=2) as writer:
        for i, t in enumerate(trajectories):
            writer.add({"target": t, "system": f"s{i % 2}"})
    corpus = Corpus(tmp_path / "m")
    assert len(corpus) == 15 and list(corpus.entries()) == [0, 3, 6, 9, 12]
    np.testing.assert_array_equal(corpus[7], trajectories[2][1])
    np.testing.assert_array_equal(corpus.target(8), trajectories[2])
    assert corpus.column("system") == ["s0", "s1", "s0", "s1", "s0"]
    assert read_series(tmp_path / "m")[4]["target"].shape == (3, 24)


def test_pickled_corpus_holds_the_index_not_the_values(tmp_path):
    xs = [np.full(5000, i, np.float32) for i in range(40)]
    corpus = Corpus(write(tmp_path / "c", xs))
    corpus[3]  # maps a shard in this process
    blob = pickle.dumps(corpus)
    assert len(blob) < 10_000 < sum(x.nbytes for x in xs)
    np.testing.assert_array_equal(pickle.loads(blob)[39], xs[39])


def test_a_gluonts_corpus_without_index_is_indexed_on_opening(tmp_path):
    xs = series(20)
    write_series([{"target": x} for x in xs], tmp_path / "g" / "data.arrow")
    corpus = Corpus(tmp_path / "g")
    assert list(corpus.n_finite) == [int(np.isfinite(x).sum()) for x in xs]
    main(["index", str(tmp_path / "g")])
    indexed = Corpus(tmp_path / "g")
    assert np.array_equal(indexed.n_finite, corpus.n_finite) and (tmp_path / "g" / "_index-00000-of-00001.npy").exists()


@pytest.fixture
def corpus_dir(tmp_path):
    return write(tmp_path / "c", series())


def test_truncated_shard(corpus_dir):
    shard = corpus_dir / "part-00000-00001.arrow"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"part-00000-00001\.arrow.*truncated"):
        Corpus(corpus_dir)


def test_corrupted_shard_of_the_same_size(corpus_dir):
    shard = corpus_dir / "part-00000-00002.arrow"
    raw = bytearray(shard.read_bytes())
    raw[-40:] = b"\xff" * 40  # the footer
    shard.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"part-00000-00002\.arrow"):
        Corpus(corpus_dir)


def test_shard_of_the_wrong_schema(corpus_dir):
    shard = corpus_dir / "part-00000-00000.arrow"
    table = pa.table({"target": pa.array([["a", "b"]] * 16)})
    with pa.OSFile(str(shard), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    with pytest.raises(DataError, match=r"part-00000-00000\.arrow.*list of floats"):
        Corpus(corpus_dir)


def test_index_that_disagrees_with_its_shards(corpus_dir, tmp_path):
    (corpus_dir / "part-00000-00003.arrow").rename(tmp_path / "away.arrow")
    with pytest.raises(DataError, match=r"index disagrees.*part-00000-00003"):
        Corpus(corpus_dir)
    (tmp_path / "away.arrow").rename(corpus_dir / "part-00000-00003.arrow")
    write_series([{"target": np.ones(8)}], corpus_dir / "part-00000-00009.arrow")
    with pytest.raises(DataError, match=r"not indexed: \['part-00000-00009\.arrow'\]"):
        Corpus(corpus_dir)
    (corpus_dir / "part-00000-00009.arrow").unlink()
    # a shard swapped for another of the same size: the lengths give it away
    other = write(tmp_path / "other", series(seed=5))
    (other / "part-00000-00001.arrow").replace(corpus_dir / "part-00000-00001.arrow")
    with pytest.raises(DataError, match=r"part-00000-00001\.arrow"):
        Corpus(corpus_dir)


@pytest.mark.parametrize("suffix", [".json", ".npy"])
def test_corrupted_index(corpus_dir, suffix):
    (corpus_dir / f"_index-00000-of-00001{suffix}").write_bytes(b"not an index")
    with pytest.raises(DataError, match=rf"_index-00000-of-00001\{suffix}.*corrupted"):
        Corpus(corpus_dir)


def test_index_of_another_length_than_its_header(corpus_dir, tmp_path):
    other = write(tmp_path / "other", series(7))
    (other / "_index-00000-of-00001.npy").replace(corpus_dir / "_index-00000-of-00001.npy")
    with pytest.raises(DataError, match=r"_index-00000-of-00001\.npy.*header records"):
        Corpus(corpus_dir)


def test_the_index_is_mapped_and_the_streamed_columns_are_gone(tmp_path):
    write(tmp_path / "c", series(40))
    corpus = Corpus(tmp_path / "c")
    assert isinstance(corpus.lengths, np.memmap) and not corpus.lengths.flags.writeable
    assert not list((tmp_path / "c").glob(".*"))


def test_parts_written_on_several_machines_combine_by_copying(tmp_path):
    xs = series(30)
    for part in range(3):
        with CorpusWriter(tmp_path / f"m{part}", shard_size=4, part=part, num_parts=3) as writer:
            for i in range(part, 30, 3):
                writer.add({"target": xs[i]})
    combined = tmp_path / "all"
    combined.mkdir()
    for part in range(2):
        for p in (tmp_path / f"m{part}").iterdir():
            p.rename(combined / p.name)
    with pytest.raises(DataError, match="2 index file.*3 parts"):
        Corpus(combined)
    for p in (tmp_path / "m2").iterdir():
        p.rename(combined / p.name)
    corpus = Corpus(combined)
    assert len(corpus) == 30
    order = [i for part in range(3) for i in range(part, 30, 3)]  # part by part
    for k, i in enumerate(order):
        np.testing.assert_array_equal(corpus[k], xs[i])


def test_record_batches_are_cut_by_bytes(tmp_path):
    xs = [np.full(100, i, np.float32) for i in range(10)]  # 400 bytes each
    with CorpusWriter(tmp_path / "c", shard_size=8, batch_bytes=1000) as writer:
        for x in xs:
            writer.add({"target": x})
    corpus = Corpus(tmp_path / "c")
    assert corpus._batch_rows == [[3, 3, 2], [2]]  # a shard ends a batch too
    assert [float(corpus[i][0]) for i in range(10)] == list(range(10))
