"""Test-split scores of a classifier and the rows of its confusion matrix (for ``dvc plots``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import ParamError
from ..params import load_params, parse_section

HEADS = ("mlp_frozen", "mlp_finetune", "catboost")


@dataclass(frozen=True)
class ClassificationGrid:
    """The grid of the classification stages, params section ``classification`` (dvc.yaml expands it
    with matrix/foreach: prepare_ucr, extract_features@encoder, classify@dataset-encoder-head)."""

    datasets: list[str]
    encoders: dict[str, str]  # name: local model directory (teacher, student, a downloaded checkpoint)
    heads: list[Literal["mlp_frozen", "mlp_finetune", "catboost"]]

    def validate(self, section: str) -> None:
        for key in ("datasets", "heads"):
            values = getattr(self, key)
            if not values or len(set(values)) != len(values):
                raise ParamError(
                    f"param {section}.{key} must be a non-empty list without repeats, got {values}"
                )
        if not self.encoders:
            raise ParamError(f"param {section}.encoders must name at least one model")


def grid(path: str = "params.yaml") -> ClassificationGrid:
    return parse_section(ClassificationGrid, load_params(path).get("classification"), "classification")


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


def confusion_rows(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> list[dict[str, str]]:
    """One row per test case, as DVC's ``confusion`` template reads them (actual, predicted)."""
    return [{"actual": classes[t], "predicted": classes[p]} for t, p in zip(y_true, y_pred)]


def classification_table(rows: list[dict], baseline: str) -> dict:
    """Cells (``encoder-head``) per dataset, the mean accuracy of each over the datasets it was run on,
    and per dataset the best foundation-model cell's accuracy minus the baseline's (``raw-<baseline>``)."""
    base = f"raw-{baseline}"
    datasets: dict[str, dict] = {}
    for r in rows:
        cells = datasets.setdefault(r["dataset"], {"cells": {}})["cells"]
        cells[f"{r['encoder']}-{r['head']}"] = {
            k: r[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")
        }
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
    return {"baseline": base, "mean_accuracy": mean, "datasets": datasets}
