"""The published Chronos training corpora's schema (id, timestamp, target) as training corpora."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tsfmlab.data.corpus import Corpus
from tsfmlab.data.published_corpora import open_corpus
from tsfmlab.errors import DataError


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TSFMLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    return tmp_path / "cache"


def write_parquet(directory, n_files=2, rows=30, seed=0, row_group_size=7):
    """Files as the hub's training_corpus/*/train-XXXXX-of-YYYYY.parquet: float64 targets."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    everything = []
    for f in range(n_files):
        targets = [rng.standard_normal(int(rng.integers(10, 80))) for _ in range(rows)]
        targets[3][2] = np.nan
        stamps = [list(pd.date_range("2020-01-01", periods=len(t), freq="h")) for t in targets]
        table = pa.table(
            {
                "id": [f"f{f}_{i}" for i in range(rows)],
                "timestamp": pa.array(stamps, pa.list_(pa.timestamp("ms"))),
                "target": pa.array([t.tolist() for t in targets], pa.list_(pa.float64())),
            }
        )
        pq.write_table(table, directory / f"train-{f:05d}-of-{n_files:05d}.parquet", row_group_size=row_group_size)
        everything += targets
    return everything


def test_a_local_parquet_corpus_is_cached_as_arrow_shards(tmp_path, cache):
    targets = write_parquet(tmp_path / "tsmixup_10m")
    corpus = open_corpus(tmp_path / "tsmixup_10m")
    assert corpus.path.parent == cache / "corpora" and len(corpus) == len(targets)
    for i, t in enumerate(targets):
        np.testing.assert_array_equal(corpus[i], t.astype(np.float32))
    assert corpus.column("item_id")[:2] == ["f0_0", "f0_1"]
    assert int(corpus.n_finite[3]) == len(targets[3]) - 1
    again = open_corpus(tmp_path / "tsmixup_10m")  # the cache entry is reused
    assert again.path == corpus.path and isinstance(again, Corpus)


def test_the_training_windows_read_a_parquet_corpus(tmp_path):
    from chronos import ChronosConfig

    from tsfmlab.training.chronos_data import ChronosWindowDataset, open_corpora

    write_parquet(tmp_path / "kernel_synth_1m")
    config = ChronosConfig(
        tokenizer_class="MeanScaleUniformBins", tokenizer_kwargs={"low_limit": -15.0, "high_limit": 15.0},
        n_tokens=64, n_special_tokens=2, pad_token_id=0, eos_token_id=1, use_eos_token=True,
        model_type="seq2seq", context_length=16, prediction_length=4, num_samples=2, temperature=1.0,
        top_k=50, top_p=1.0,
    )  # fmt: skip
    corpora = open_corpora([tmp_path / "kernel_synth_1m"], min_length=20)
    dataset = ChronosWindowDataset(
        corpora, [1.0], config.create_tokenizer(), context_length=16, prediction_length=4, min_past=16
    )
    item = next(iter(dataset))
    assert item["input_ids"].shape == (17,) and item["labels"].shape == (5,)


def test_bad_parquet_files(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(DataError, match=r"train-00000-of-00001\.parquet.*Parquet"):
        open_corpus(tmp_path / "broken")
    (tmp_path / "schema").mkdir()
    pq.write_table(pa.table({"id": ["a"], "values": [[1.0, 2.0]]}), tmp_path / "schema" / "x.parquet")
    with pytest.raises(DataError, match=r"x\.parquet.*no 'target' column"):
        open_corpus(tmp_path / "schema")
    assert not [p for p in (tmp_path / "cache" / "corpora").glob("schema-*") if p.is_dir()]  # nothing partial


def test_hub_names(tmp_path):
    with pytest.raises(DataError, match="unknown published training corpus.*training_corpus_tsmixup_10m"):
        open_corpus("chronos:tsmixup_10m")
    with pytest.raises(DataError, match="chronos:training_corpus_kernel_synth_1m: cannot stream.*offline"):
        open_corpus("chronos:training_corpus_kernel_synth_1m")
    assert not [p for p in (tmp_path / "cache" / "corpora").glob("training_corpus_*") if p.is_dir()]
