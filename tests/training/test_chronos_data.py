"""Tests of the Chronos training windows: shapes, padding, masking, mixing, seeding and loading."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from chronos import ChronosConfig
from torch.utils.data import DataLoader

from tsfmlab.data.arrow_io import write_series
from tsfmlab.errors import DataError, ParamError
from tsfmlab.training.chronos_data import ChronosWindowDataset, load_corpora

CTX, PRED = 32, 8


def make_tokenizer(use_eos_token: bool = True):
    return ChronosConfig(
        tokenizer_class="MeanScaleUniformBins",
        tokenizer_kwargs={"low_limit": -15.0, "high_limit": 15.0},
        context_length=CTX,
        prediction_length=PRED,
        n_tokens=64,
        n_special_tokens=2,
        pad_token_id=0,
        eos_token_id=1,
        use_eos_token=use_eos_token,
        model_type="seq2seq",
        num_samples=4,
        temperature=1.0,
        top_k=50,
        top_p=1.0,
    ).create_tokenizer()


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


def make_dataset(corpora, tokenizer, **kwargs) -> ChronosWindowDataset:
    args = dict(
        probabilities=[1.0] * len(corpora),
        context_length=CTX,
        prediction_length=PRED,
        min_past=4,
        max_missing_prop=0.5,
        drop_prob=0.0,
        mode="training",
        shuffle_buffer_length=10,
        seed=0,
    )
    args.update(kwargs)
    return ChronosWindowDataset(corpora, tokenizer=tokenizer, **args)


def take(dataset, n: int) -> list[dict[str, torch.Tensor]]:
    return list(itertools.islice(iter(dataset), n))


def walk(length: int, seed: int = 0) -> np.ndarray:
    return (10 + np.random.default_rng(seed).normal(size=length).cumsum()).astype(np.float32)


def token_of(tokenizer, value: float) -> int:
    """The token of a value in a context whose mean |value| is |value| (i.e. scaled to +-1)."""
    return int(tokenizer.context_input_transform(torch.full((1, 4), value))[0][0, 0])


@pytest.mark.parametrize("use_eos", [True, False])
def test_item_shapes_and_dtypes(use_eos):
    dataset = make_dataset([[walk(100, s) for s in range(3)]], make_tokenizer(use_eos))
    for item in take(dataset, 5):
        extra = 1 if use_eos else 0
        assert set(item) == {"input_ids", "attention_mask", "labels"}
        assert item["input_ids"].shape == (CTX + extra,) and item["input_ids"].dtype == torch.long
        assert item["attention_mask"].shape == (CTX + extra,) and item["attention_mask"].dtype == torch.bool
        assert item["labels"].shape == (PRED + extra,) and item["labels"].dtype == torch.long
        if use_eos:
            assert item["input_ids"][-1] == 1 and item["labels"][-1] == 1 and item["attention_mask"][-1]


def test_short_series_left_padded(tokenizer):
    series = walk(12)  # min_past 4 + prediction 8: the only window has 4 past points
    for mode in ("training", "validation"):
        (item,) = take(make_dataset([[series]], tokenizer, mode=mode), 1)
        mask = item["attention_mask"]
        assert not mask[: CTX - 4].any() and mask[CTX - 4 :].all()
        assert (item["input_ids"][: CTX - 4] == 0).all()  # pad token
        assert (item["labels"] >= 2).sum() == PRED  # all future points observed


def test_training_padding_matches_window_start(tokenizer):
    # with 20 points, forecast starts lie in [4, 12]: between 4 and 12 observed past points
    items = take(make_dataset([[walk(20)]], tokenizer), 100)
    observed = {int(item["attention_mask"][:CTX].sum()) for item in items}
    assert observed <= set(range(4, 13)) and len(observed) > 3
    for item in items:
        n = int(item["attention_mask"][:CTX].sum())
        assert item["attention_mask"][CTX - n : CTX].all()


def test_labels_ignored_where_future_missing(tokenizer):
    series = walk(60)
    series[-3] = np.nan
    (item,) = take(make_dataset([[series]], tokenizer, mode="validation"), 1)
    labels = item["labels"]
    assert labels[PRED - 3] == -100
    assert (labels[:PRED] == -100).sum() == 1
    assert labels[-1] == 1  # EOS stays a target


def test_mixing_probabilities(tokenizer):
    pos, neg = token_of(tokenizer, 1.0), token_of(tokenizer, -1.0)
    corpora = [[np.full(50, 3.0, np.float32)], [np.full(50, -3.0, np.float32)]]
    firsts = [
        int(it["input_ids"][CTX - 1])
        for it in take(make_dataset(corpora, tokenizer, probabilities=[1, 0]), 200)
    ]
    assert set(firsts) == {pos}
    firsts = [
        int(it["input_ids"][CTX - 1])
        for it in take(make_dataset(corpora, tokenizer, probabilities=[1, 3]), 400)
    ]
    assert set(firsts) == {pos, neg}
    assert 0.65 < firsts.count(neg) / 400 < 0.85


def test_short_and_missing_series_never_used(tokenizer):
    pos = token_of(tokenizer, 1.0)
    too_short = np.full(4 + PRED - 1, -3.0, np.float32)
    too_missing = np.full(50, -3.0, np.float32)
    too_missing[:30] = np.nan  # 60% missing > max_missing_prop 0.5
    dataset = make_dataset([[np.full(50, 3.0, np.float32), too_short, too_missing]], tokenizer)
    assert list(dataset.kept[0]) == [0]
    for item in take(dataset, 100):
        assert set(item["input_ids"][item["attention_mask"]][:-1].tolist()) == {pos}
    with pytest.raises(DataError, match="12 points"):
        make_dataset([[too_short]], tokenizer)


def test_drop_prob_masks_past_only(tokenizer):
    corpora = [[walk(200, s) for s in range(4)]]
    items = take(make_dataset(corpora, tokenizer, min_past=CTX, drop_prob=0.3), 300)
    context_mask = torch.stack([it["attention_mask"][:CTX] for it in items])
    assert abs((~context_mask).float().mean().item() - 0.3) < 0.03
    assert all((it["labels"] != -100).all() for it in items)  # future untouched
    clean = take(make_dataset(corpora, tokenizer, min_past=CTX), 50)
    assert all(it["attention_mask"].all() for it in clean)


def test_validation_deterministic_last_window(tokenizer):
    corpora = [[walk(100, 1), walk(15, 2)], [walk(70, 3)]]
    dataset = make_dataset(corpora, tokenizer, mode="validation", drop_prob=0.5, probabilities=[0, 1])
    first, second = list(dataset), list(dataset)
    assert len(first) == 3
    for a, b in zip(first, second):
        assert all(torch.equal(a[k], b[k]) for k in a)
    series = corpora[0][0]
    ids, mask, scale = tokenizer.context_input_transform(torch.from_numpy(series[-PRED - CTX : -PRED])[None])
    labels, _ = tokenizer.label_input_transform(torch.from_numpy(series[-PRED:])[None], scale)
    assert torch.equal(first[0]["input_ids"], ids[0]) and torch.equal(first[0]["labels"], labels[0])
    assert first[0]["attention_mask"].all()  # no drop_prob injection in validation


def stream(dataset, n: int) -> list[list[int]]:
    return [it["input_ids"].tolist() + it["labels"].tolist() for it in take(dataset, n)]


def test_workers_get_different_reproducible_streams(tokenizer):
    dataset = make_dataset([[walk(200, s) for s in range(5)]], tokenizer, drop_prob=0.1)

    def per_worker():
        loader = DataLoader(dataset, batch_size=None, num_workers=2)
        rows = [it["input_ids"].tolist() + it["labels"].tolist() for it in itertools.islice(loader, 20)]
        return rows[0::2], rows[1::2]  # workers' items alternate

    w0, w1 = per_worker()
    assert w0 != w1
    assert per_worker() == (w0, w1)
    assert stream(dataset, 10) == w0  # worker 0 of rank 0 has the seed of a plain iteration
    assert stream(make_dataset(dataset.corpora, tokenizer, drop_prob=0.1, seed=1), 10) != w0


def test_ranks_get_different_streams(tokenizer, monkeypatch):
    dataset = make_dataset([[walk(200, s) for s in range(5)]], tokenizer)
    rank0 = stream(dataset, 10)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    rank1 = stream(dataset, 10)
    assert rank1 != rank0 and stream(dataset, 10) == rank1


def test_validation_yields_each_series_once_across_ranks_and_workers(tokenizer, monkeypatch):
    corpora = [[walk(60 + i, i) for i in range(7)], [walk(50, 10 + i) for i in range(4)]]
    dataset = make_dataset(corpora, tokenizer, mode="validation")
    everything = sorted(map(tuple, stream(dataset, 100)))
    assert len(everything) == 11
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    seen = []
    for rank in (0, 1):
        monkeypatch.setattr(torch.distributed, "get_rank", lambda rank=rank: rank)
        loader = DataLoader(dataset, batch_size=None, num_workers=2)
        seen += [tuple(it["input_ids"].tolist() + it["labels"].tolist()) for it in loader]
    assert sorted(seen) == everything


def test_a_corpus_on_disk_streams_as_its_series_in_memory(tokenizer, tmp_path):
    """Memory-mapped shards (read per DataLoader worker) give the windows of the same series in memory;
    inf is missing, as NaN."""
    from tsfmlab.data.corpus import CorpusWriter
    from tsfmlab.training.chronos_data import open_corpora

    series = [walk(40 + 7 * i, i).astype(np.float32) for i in range(9)] + [np.ones(5, np.float32)]
    series[2][10:14] = np.inf
    with CorpusWriter(tmp_path / "c", shard_size=4, batch_rows=3) as writer:
        for x in series:
            writer.add({"target": x})
    (corpus,) = open_corpora([tmp_path / "c"], min_length=4 + PRED)
    in_memory = [np.where(np.isfinite(x), x, np.nan).astype(np.float32) for x in series]
    for mode, n in (("training", 12), ("validation", 9)):  # validation: each usable series once
        lazy, eager = make_dataset([corpus], tokenizer, mode=mode), make_dataset([in_memory], tokenizer, mode=mode)
        assert stream(lazy, 30) == stream(eager, 30)
        loader = DataLoader(lazy, batch_size=None, num_workers=2)
        assert len(list(itertools.islice(loader, 12))) == n


def test_load_corpora_splits_channels(tmp_path):
    write_series([{"target": np.ones((3, 50))}], tmp_path / "c.arrow")
    write_series(
        [{"target": np.arange(150.0).reshape(3, 50)}, {"target": np.arange(5.0)}], tmp_path / "d.arrow"
    )
    ones, ranges = load_corpora([tmp_path / "c.arrow", str(tmp_path / "d.arrow")], min_length=10)
    assert len(ones) == 3 and all(s.shape == (50,) and s.dtype == np.float32 for s in ones)
    assert len(ranges) == 3  # the 5-point series is too short
    np.testing.assert_array_equal(ranges[1], np.arange(50.0, 100.0))


def test_load_corpora_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_corpora([tmp_path / "missing.arrow"], min_length=10)
    write_series([{"target": np.ones(5)}, {"target": np.full(50, np.nan)}], tmp_path / "short.arrow")
    with pytest.raises(DataError, match=r"short\.arrow.*at least 10"):
        load_corpora([tmp_path / "short.arrow"], min_length=10)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"context_length": 0}, "context_length"),
        ({"prediction_length": 0}, "prediction_length"),
        ({"min_past": 0}, "min_past"),
        ({"max_missing_prop": 1.5}, "max_missing_prop"),
        ({"drop_prob": 1.0}, "drop_prob"),
        ({"drop_prob": -0.1}, "drop_prob"),
        ({"probabilities": [1.0, 1.0]}, "probabilities"),
        ({"probabilities": [-1.0]}, "probabilities"),
        ({"probabilities": [0.0]}, "probabilities"),
        ({"mode": "test"}, "mode"),
        ({"model_type": "causal"}, "causal"),
        ({"context_length": 16}, "context_length"),  # differs from the tokenizer's
    ],
)
def test_bad_arguments(tokenizer, kwargs, name):
    with pytest.raises(ParamError, match=name):
        make_dataset([[walk(50)]], tokenizer, **kwargs)
