"""Stage baseline@<dataset>: a non-foundation-model reference for the classification table.

aeon's MiniRocket (or Rocket) classifier on the raw series, fit on the whole official TRAIN split
(train + validation: it tunes its ridge penalty by internal cross-validation, so it needs no held-out
split) and scored on TEST, the accuracy with its bootstrap interval over the TEST examples
(shared.bootstrap). Outs: metrics/ and reports/classify/<dataset>-raw-<classifier>.json,
plots/classify/<dataset>-raw-<classifier>.csv (confusion matrix rows).
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
import time

import numpy as np

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.data.ucr import load_classes, load_inputs, load_split
from tsfmlab.evaluation.baselines import RocketParams, fit_rocket
from tsfmlab.evaluation.classification import bootstrap_params, confusion_rows, scores_with_interval
from tsfmlab.evaluation.plots import write_csv
from tsfmlab.io.atomic import write_results
from tsfmlab.params import stage_params

SECTION = "baseline"


def main() -> None:
    args = stage_args("dataset", ucr="prepare_ucr's datasets")
    p = stage_params(RocketParams, SECTION)
    dataset = args.dataset
    data = args.ucr / f"{dataset}.safetensors"
    (x_tr, y_tr), (x_va, y_va) = load_split(data, "train"), load_split(data, "val")
    start = time.perf_counter()
    clf = fit_rocket(np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va]), p)
    y_pred = clf.predict(load_inputs(data, "test").astype(np.float64)).astype(np.int64)
    _, y_test = load_split(data, "test")  # TEST labels: scoring only
    scores = scores_with_interval(y_test, y_pred, dataset, bootstrap_params())
    cell = f"{dataset}-raw-{p.classifier}"
    results = {"dataset": dataset, "encoder": "raw", "head": p.classifier, **scores}
    write_results(f"classify/{cell}", results, {"accuracy": scores["accuracy"]})
    write_csv(confusion_rows(y_test, y_pred, load_classes(data)), f"plots/classify/{cell}.csv")
    print(f"baseline@{dataset}: {p.classifier} {scores} ({time.perf_counter() - start:.1f}s)")


if __name__ == "__main__":
    run_stage(main)
