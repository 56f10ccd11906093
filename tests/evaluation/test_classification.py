"""The bootstrap interval of every TEST accuracy and the classification table that shows it."""

import re

import numpy as np
import pytest

from tests.conftest import REPO, write_params
from tsfmlab.errors import ParamError
from tsfmlab.evaluation.bootstrap import BootstrapParams
from tsfmlab.evaluation.classification import (
    accuracy_interval,
    accuracy_resamples,
    bootstrap_params,
    classification_table,
    markdown_table,
    scores_with_interval,
)
from tsfmlab.params import load_params

P = BootstrapParams(resamples=1000, confidence=0.95, seed=0)


def predictions(n: int, accuracy: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(3, size=n)
    wrong = rng.permutation(n)[: round(n * (1 - accuracy))]
    y_pred = y_true.copy()
    y_pred[wrong] = (y_pred[wrong] + 1) % 3
    return y_true, y_pred


def row(dataset: str, column: str, n_test: int, n_correct: int) -> dict:
    encoder, head = column.split("-")
    accuracy = round(n_correct / n_test, 6)
    return {
        "dataset": dataset, "encoder": encoder, "head": head, "accuracy": accuracy,
        "accuracy_interval": accuracy_interval(n_correct, n_test, dataset, P),
        "balanced_accuracy": accuracy, "macro_f1": accuracy, "n_test": n_test,
    }  # fmt: skip


def test_the_interval_contains_the_accuracy_and_has_the_bootstrap_width():
    y_true, y_pred = predictions(400, 0.8)
    scores = scores_with_interval(y_true, y_pred, "GunPoint", P)
    low, high = scores["accuracy_interval"]
    assert list(scores)[:2] == ["accuracy", "accuracy_interval"] and scores["n_test"] == 400
    assert low < scores["accuracy"] == 0.8 < high
    # a resample's accuracy is binomial(n, 0.8) / n: the 95 % interval spans about 2 x 1.96 standard errors
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(0.8 * 0.2 / 400), rel=0.1)
    assert accuracy_interval(30, 30, "GunPoint", P) == [1.0, 1.0]


def test_the_interval_is_seeded_by_the_bootstrap_seed_and_the_dataset_name():
    y_true, y_pred = predictions(150, 0.7)
    first = scores_with_interval(y_true, y_pred, "GunPoint", P)
    assert scores_with_interval(y_true, y_pred, "GunPoint", P) == first
    draws = accuracy_resamples(105, 150, "GunPoint", P)
    assert np.array_equal(draws, accuracy_resamples(105, 150, "GunPoint", P))
    other_seed = BootstrapParams(resamples=1000, confidence=0.95, seed=1)
    assert not np.array_equal(draws, accuracy_resamples(105, 150, "GunPoint", other_seed))
    assert not np.array_equal(draws, accuracy_resamples(105, 150, "ItalyPowerDemand", P))
    # every classifier of a dataset is scored on the same resamples (TEST examples numbered correct first)
    assert np.all(accuracy_resamples(110, 150, "GunPoint", P) >= draws)


def test_the_interval_narrows_with_more_test_examples():
    widths = [np.diff(accuracy_interval(round(0.75 * n), n, "GunPoint", P))[0] for n in (40, 400, 4000)]
    assert widths[0] > widths[1] > widths[2] > 0
    assert widths[0] / widths[2] == pytest.approx(10, rel=0.2)  # as 1 / sqrt(n)


def test_the_table_does_not_depend_on_the_order_of_the_datasets():
    rows = [
        row("GunPoint", "teacher-catboost", 150, 103),
        row("GunPoint", "raw-minirocket", 150, 149),
        row("ItalyPowerDemand", "teacher-catboost", 1029, 761),
        row("ItalyPowerDemand", "raw-minirocket", 1029, 992),
        row("ItalyPowerDemand", "timae_mamba2-avg_pretrained", 1029, 950),
    ]
    table = classification_table(rows, "minirocket", P)
    assert table == classification_table(rows[::-1], "minirocket", P)
    cells = table["datasets"]["ItalyPowerDemand"]["cells"]
    assert cells["teacher-catboost"]["accuracy_interval"] == rows[2]["accuracy_interval"]
    # a column run on one dataset: the interval of its mean is that cell's interval
    column = "timae_mamba2-avg_pretrained"
    assert table["mean_accuracy_interval"][column] == cells[column]["accuracy_interval"]
    low, high = table["mean_accuracy_interval"]["teacher-catboost"]
    assert low < table["mean_accuracy"]["teacher-catboost"] < high
    # each dataset resampled on its own: the mean's standard error is half the root of the summed variances
    variance = sum(a * (1 - a) / n for a, n in ((103 / 150, 150), (761 / 1029, 1029)))
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(variance) / 2, rel=0.1)


def test_the_markdown_table_shows_the_interval_next_to_each_accuracy():
    cell = {"accuracy": 0.726667, "accuracy_interval": [0.68, 0.773333], "balanced_accuracy": 0.7, "macro_f1": 0.7}
    table = {
        "baseline": "raw-minirocket",
        "mean_accuracy": {"teacher-mlp_frozen": 0.726667, "timae_mamba2-avg_scratch": 0.9},
        "mean_accuracy_interval": {"teacher-mlp_frozen": [0.68, 0.773333], "timae_mamba2-avg_scratch": [0.88, 0.92]},
        "datasets": {"GunPoint": {"cells": {"teacher-mlp_frozen": cell}}},
    }
    lines = markdown_table(table, 0.95).splitlines()
    assert lines[0] == "TEST accuracy [95 % percentile bootstrap interval]"
    assert lines[2] == "| dataset | teacher-mlp_frozen | timae_mamba2-avg_scratch |"
    assert lines[4] == "| GunPoint | 0.727 [0.680, 0.773] | - |"
    assert lines[5] == "| mean | 0.727 [0.680, 0.773] | 0.900 [0.880, 0.920] |"


@pytest.mark.parametrize(
    ("bootstrap", "message"),
    [
        ({"resamples": 0, "confidence": 0.95, "seed": 0}, "shared.bootstrap.resamples must be > 0"),
        ({"resamples": 100, "confidence": 1.5, "seed": 0}, "shared.bootstrap.confidence must be in [0, 1]"),
        ({"resamples": 100, "confidence": 0.95}, "missing param shared.bootstrap.seed"),
        (None, "missing param shared.bootstrap"),
    ],
)
def test_bad_bootstrap_params_are_refused(tmp_path, bootstrap, message):
    params = load_params(REPO / "params.yaml")
    params["shared"].pop("bootstrap")
    if bootstrap is not None:
        params["shared"]["bootstrap"] = bootstrap
    path = write_params(tmp_path, base=params)
    with pytest.raises(ParamError, match=re.escape(message)):
        bootstrap_params(path)
