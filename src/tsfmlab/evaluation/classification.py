"""Test-split scores of a classifier, the bootstrap interval of its accuracy, the rows of its confusion
matrix (for ``dvc plots``) and the table of the classification grid."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from ..params import Distinct, Named, Params, stage_params
from .bootstrap import BootstrapParams, bootstrap_rng, percentile_interval

HEADS = ("mlp_frozen", "mlp_finetune", "catboost")


class ClassificationGrid(Params):
    """The grid of the classification stages, params section ``classification`` (dvc.yaml expands it
    with matrix/foreach: prepare_ucr, extract_features@encoder, classify@dataset-encoder-head); the
    bootstrap of every TEST accuracy they report is ``shared.bootstrap`` (:func:`bootstrap_params`)."""

    datasets: Distinct[str]
    encoders: Named[str]  # name: local model directory (teacher, student, a downloaded checkpoint)
    heads: Distinct[Literal["mlp_frozen", "mlp_finetune", "catboost"]]


def classification_grid(path: str = "params.yaml") -> ClassificationGrid:
    return stage_params(ClassificationGrid, "classification", path)


def bootstrap_params(path: str = "params.yaml") -> BootstrapParams:
    """``shared.bootstrap``: the interval of every TEST accuracy (TEST examples resampled)."""
    return stage_params(BootstrapParams, "shared.bootstrap", path)


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """scikit-learn's accuracy, balanced accuracy (mean recall over the classes present) and macro-F1
    (over the classes present in either array), rounded to 6 decimals."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    with warnings.catch_warnings():  # a class predicted but absent from y_true: its recall is left out
        warnings.simplefilter("ignore", UserWarning)
        balanced = balanced_accuracy_score(y_true, y_pred)
    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 6),
        "balanced_accuracy": round(float(balanced), 6),
        "macro_f1": round(float(f1_score(y_true, y_pred, average="macro", zero_division=0.0)), 6),
    }


def accuracy_resamples(n_correct: int, n_test: int, dataset: str, p: BootstrapParams) -> np.ndarray:
    """The accuracy of each of ``p.resamples`` bootstrap resamples of a TEST set of ``n_test`` examples,
    ``n_correct`` of them classified correctly: ``n_test`` examples drawn with replacement. Which examples
    are correct does not change how a resample's accuracy is distributed, so the correct ones are
    numbered first; the draws come from the bootstrap seed and the dataset's name. Every classifier of a
    dataset is thus scored on the same resamples, and the order of the datasets changes nothing."""
    rng = bootstrap_rng(p.seed, dataset)
    hits = [np.count_nonzero(rng.integers(n_test, size=n_test) < n_correct) for _ in range(p.resamples)]
    return np.array(hits, dtype=np.float64) / n_test


def accuracy_interval(n_correct: int, n_test: int, dataset: str, p: BootstrapParams) -> list[float]:
    """The percentile bootstrap interval of a TEST accuracy (:func:`accuracy_resamples`), rounded to 6
    decimals."""
    resamples = accuracy_resamples(n_correct, n_test, dataset, p)
    return [round(x, 6) for x in percentile_interval(resamples, p.confidence)]


def scores_with_interval(y_true: np.ndarray, y_pred: np.ndarray, dataset: str, p: BootstrapParams) -> dict:
    """:func:`classification_scores` with the accuracy's bootstrap interval next to it
    (``accuracy_interval``, :func:`accuracy_interval`) and the number of TEST examples (``n_test``)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    scores = classification_scores(y_true, y_pred)
    interval = accuracy_interval(int(np.count_nonzero(y_true == y_pred)), len(y_true), dataset, p)
    return {"accuracy": scores["accuracy"], "accuracy_interval": interval, **scores, "n_test": len(y_true)}


def confusion_rows(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> list[dict[str, str]]:
    """One row per test case, as DVC's ``confusion`` template reads them (actual, predicted)."""
    return [{"actual": classes[t], "predicted": classes[p]} for t, p in zip(y_true, y_pred)]


def classification_table(rows: list[dict], baseline: str, p: BootstrapParams) -> dict:
    """Cells (``encoder-head``) per dataset with each accuracy's bootstrap interval, the mean accuracy of
    each over the datasets it was run on with its interval (each dataset's TEST examples resampled, the
    resamples' accuracies averaged over the datasets: :func:`accuracy_resamples`), and per dataset the best
    foundation-model cell's accuracy minus the baseline's (``raw-<baseline>``)."""
    base = f"raw-{baseline}"
    datasets: dict[str, dict] = {}
    resamples: dict[str, list[np.ndarray]] = {}
    for r in rows:
        cells = datasets.setdefault(r["dataset"], {"cells": {}})["cells"]
        column = f"{r['encoder']}-{r['head']}"
        cells[column] = {k: r[k] for k in ("accuracy", "accuracy_interval", "balanced_accuracy", "macro_f1")}
        n_correct = round(r["accuracy"] * r["n_test"])
        resamples.setdefault(column, []).append(accuracy_resamples(n_correct, r["n_test"], r["dataset"], p))
    columns = list(dict.fromkeys(c for d in datasets.values() for c in d["cells"]))
    for d in datasets.values():
        fm = {c: v["accuracy"] for c, v in d["cells"].items() if c != base}
        best = max(fm, key=fm.get)
        d["best"] = best
        d["best_minus_baseline"] = round(fm[best] - d["cells"][base]["accuracy"], 6)
    mean = {
        c: round(float(np.mean([d["cells"][c]["accuracy"] for d in datasets.values() if c in d["cells"]])), 6)
        for c in columns
    }
    mean_interval = {
        c: [round(x, 6) for x in percentile_interval(np.mean(resamples[c], axis=0), p.confidence)]
        for c in columns
    }
    return {
        "baseline": base,
        "mean_accuracy": mean,
        "mean_accuracy_interval": mean_interval,
        "datasets": datasets,
    }


def markdown_table(table: dict, confidence: float) -> str:
    """:func:`classification_table` as a Markdown table: a row per dataset and the mean, a column per
    ``encoder-head``, each cell ``accuracy [low, high]`` to three decimals."""

    def cell(accuracy: float, interval: list[float]) -> str:
        return f"{accuracy:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"

    columns = list(table["mean_accuracy"])
    lines = [
        f"TEST accuracy [{100 * confidence:g} % percentile bootstrap interval]",
        "",
        "| dataset | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, d in table["datasets"].items():
        values = [cell(d["cells"][c]["accuracy"], d["cells"][c]["accuracy_interval"]) if c in d["cells"] else "-"
                  for c in columns]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    means = [cell(table["mean_accuracy"][c], table["mean_accuracy_interval"][c]) for c in columns]
    lines.append("| mean | " + " | ".join(means) + " |")
    return "\n".join(lines) + "\n"
