"""The Chronos-2 pretraining mixture: corpus probabilities, dysts groups kept whole, seeded batches."""

import numpy as np
import pytest

from tsfmlab.errors import DataError, ParamError
from tsfmlab.params import parse_section
from tsfmlab.training.chronos2_pretrain import Chronos2DataParams, load_groups, mixture_dataset

PATHS = ["data/kernelsynth/train", "data/dysts/train"]
COVARIATES = {"probability": 0.0, "n_groups": 16, "max_covariates": 2, "max_lag": 4,
              "future_probability": 0.5, "noise_std": [0.05, 0.3]}  # fmt: skip


def data_params(**change) -> Chronos2DataParams:
    values = {"training_data_paths": PATHS, "probability": [0.5, 0.5], "multivariate": [False, True],
              "prediction_length": 16, "min_past": 16, "covariates": COVARIATES} | change  # fmt: skip
    return parse_section(Chronos2DataParams, values, "chronos2.data")


def batches(work, params, n, seed=0):
    import os

    cwd = os.getcwd()
    os.chdir(work)
    try:
        it = iter(mixture_dataset(params, context_length=32, batch_size=12, patch_size=16, seed=seed))
        return [next(it) for _ in range(n)]
    finally:
        os.chdir(cwd)


def test_groups_keep_channels_together(tiny_run):
    multi = load_groups(tiny_run / "data/dysts/train", True, 32)
    single = load_groups(tiny_run / "data/dysts/train", False, 32)
    assert all(g.ndim == 2 and g.shape[0] > 1 for g in multi)
    assert sum(g.shape[0] for g in multi) == len(single) and all(g.shape[0] == 1 for g in single)


def test_batches_are_seeded_and_hold_groups(tiny_run):
    p = data_params()
    a, b, c = batches(tiny_run, p, 3), batches(tiny_run, p, 3), batches(tiny_run, p, 3, seed=1)
    for x, y in zip(a, b):
        assert np.array_equal(x["context"].numpy(), y["context"].numpy(), equal_nan=True)
    assert not all(
        np.array_equal(x["context"].numpy(), z["context"].numpy(), equal_nan=True) for x, z in zip(a, c)
    )
    sizes = np.bincount(np.concatenate([batch["group_ids"].numpy() for batch in a[:1]]))
    assert sizes.max() > 1  # a dysts trajectory's channels share a group id
    assert a[0]["future_target"].shape[1] == 16 and a[0]["context"].shape[1] <= 32


def test_zero_probability_corpus_is_never_drawn(tiny_run):
    only_univariate = batches(tiny_run, data_params(probability=[1.0, 0.0]), 4)
    for batch in only_univariate:
        assert np.bincount(batch["group_ids"].numpy()).max() == 1


def test_bad_params_and_missing_corpus(tiny_run, tmp_path):
    with pytest.raises(ParamError, match="chronos2.data.multivariate"):
        data_params(multivariate=[True])
    with pytest.raises(ParamError, match="probability"):
        data_params(probability=[0.0, 0.0])
    with pytest.raises(DataError, match="nowhere"):
        load_groups(tmp_path / "nowhere", False, 8)


def test_covariate_groups_mask_their_covariates_future(tiny_run):
    """Covariate groups only (corpora at probability 0): one target row per group; its covariates have
    no loss target, and only the future-known ones carry values over the horizon."""
    only = data_params(probability=[0.0, 0.0], covariates=COVARIATES | {"probability": 1.0})
    a, b = batches(tiny_run, only, 2), batches(tiny_run, only, 2)
    assert all(
        np.array_equal(x["context"].numpy(), y["context"].numpy(), equal_nan=True) for x, y in zip(a, b)
    )
    saw_future = saw_past = False
    for batch in a:
        ids = batch["group_ids"].numpy()
        target_rows = ~np.isnan(batch["future_target"].numpy()).all(axis=1)
        assert np.bincount(ids[target_rows]).max() == 1  # one target per group
        assert np.bincount(ids).max() > 1  # with its covariates
        known = ~np.isnan(batch["future_covariates"].numpy()).all(axis=1)
        assert not (known & target_rows).any()
        saw_future |= known.any()
        saw_past |= (~known & ~target_rows).any()
    assert saw_future and saw_past


def test_no_covariate_groups_at_probability_zero(tiny_run):
    for batch in batches(tiny_run, data_params(), 3):
        assert np.isnan(batch["future_covariates"].numpy()).all()
