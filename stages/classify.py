"""Stage classify@<dataset>-<encoder>-<head>: one cell of the classification grid.

Heads: ``mlp_frozen`` (MLP on the cached features), ``mlp_finetune`` (the same MLP trained jointly with
the encoder the features came from, at a lower encoder learning rate), ``catboost`` (on the features).
Training sees the train split; early stopping and the learning-rate schedule see the validation split;
the TEST labels are read once, after training, to score. Outs: metrics/classify/<cell>.json (accuracy),
reports/classify/<cell>.json (accuracy with its bootstrap interval over the TEST examples
(shared.bootstrap), balanced accuracy, macro-F1 on TEST), plots/classify/<cell>.csv (confusion
matrix rows), dvclive/classify/<cell>/ (loss and accuracy curves; step: the MLP's epoch or CatBoost's
iteration).
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
import json
import os
import typing
from pathlib import Path

import numpy as np
import torch

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.data.ucr import load_classes, load_inputs, load_split
from tsfmlab.errors import DataError, ParamError
from tsfmlab.evaluation.baselines import CatBoostParams, fit_catboost_classifier
from tsfmlab.evaluation.classification import HEADS, bootstrap_params, confusion_rows, scores_with_interval
from tsfmlab.evaluation.plots import write_csv
from tsfmlab.io.atomic import write_results
from tsfmlab.params import Params, stage_params
from tsfmlab.runtime import is_main_process
from tsfmlab.training.classifier import (
    MLPFinetuneParams,
    MLPParams,
    finetune_with_encoder,
    predict_logits,
    train_head,
)
from tsfmlab.training.live import curves_live

SECTION = "classify"


class ClassifyParams(Params):
    """The section: one block per head; a classify stage reads its head's block only."""

    mlp_frozen: MLPParams
    mlp_finetune: MLPFinetuneParams
    catboost: CatBoostParams


HEAD_PARAMS = typing.get_type_hints(ClassifyParams)  # head: its params class


def load_features(path: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except Exception as err:
        raise DataError(f"{path}: unreadable features ({err})") from err


def finetune_encoder(encoder_dir: Path):
    """The encoder extract_features used, reloaded; refuses weights that changed since."""
    from tsfmlab.models.encoders import ChronosEncoder
    from tsfmlab.models.loading import load_pipeline, weights_digest

    info = json.loads((encoder_dir / "encoder.json").read_text())
    digest = weights_digest(info["source"])
    if digest != info["weights_sha256"]:
        raise DataError(
            f"{info['source']}: weights differ from those {encoder_dir} was extracted with; "
            "run `dvc repro` to refresh the features first"
        )
    return ChronosEncoder(load_pipeline(info["source"])), info


def train_mlp(cell: str, head: str, p: MLPParams | MLPFinetuneParams, data: Path, feats: dict, encoder_dir: Path, y_tr, y_va,
              n_classes: int):  # fmt: skip
    """Train an MLP head (and for mlp_finetune the encoder); return a function TEST inputs -> labels."""
    mp = p if head == "mlp_frozen" else p.head
    live_dir = f"dvclive/classify/{cell}"  # the curves' step: the head's epochs, then the joint ones
    model, result = train_head(feats, y_tr, y_va, n_classes, mp, live_dir)
    forward, test_inputs = model, lambda: torch.from_numpy(feats["test"])  # noqa: E731
    if head == "mlp_finetune":
        from tsfmlab.models.encoders import embed_batch

        encoder, info = finetune_encoder(encoder_dir)
        pooling, channels, long_series = info["pooling"], info["channels"], info["long_series"]
        forward, result = finetune_with_encoder(
            model, encoder, lambda enc, x: embed_batch(enc, x, pooling, channels, long_series),
            (load_inputs(data, "train"), load_inputs(data, "val")), y_tr, y_va, p, live_dir,
            first_epoch=result.epochs_run,
        )  # fmt: skip
        test_inputs = lambda: torch.from_numpy(load_inputs(data, "test"))  # noqa: E731
    info = {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "val_accuracy": round(result.best_val_accuracy, 6)}  # fmt: skip
    return lambda: predict_logits(forward, test_inputs(), mp.batch_size).argmax(1).numpy(), info


def log_catboost_curves(clf, live_dir: str) -> None:
    """CatBoost's per-iteration train and validation losses, as dvclive curves like the MLP's."""
    curves = clf.get_evals_result()
    train, val = curves["learn"]["MultiClass"], curves["validation"]["MultiClass"]
    live = curves_live(live_dir, summary=False)
    for iteration, (a, b) in enumerate(zip(train, val)):
        live.step = iteration  # the curves' step is CatBoost's iteration (from 0)
        live.log_metric("train/loss", a)
        live.log_metric("val/loss", b)
        live.next_step()
    live.end()


def main() -> None:
    args = stage_args(
        "dataset", "encoder", "head", ucr="prepare_ucr's datasets", features="the encoder's features"
    )
    dataset, encoder, head = args.dataset, args.encoder, args.head
    if head not in HEADS:
        raise ParamError(f"{head!r} is not a head of classification.heads ({', '.join(HEADS)})")
    p = stage_params(HEAD_PARAMS[head], f"{SECTION}.{head}")
    cell = f"{dataset}-{encoder}-{head}"
    if not is_main_process():  # torchrun: the heads train in one process (rank 0), which writes everything
        print(f"classify@{cell}: rank {os.environ['RANK']}: nothing to do (the heads train on rank 0)")
        return
    data = args.ucr / f"{dataset}.safetensors"
    feats_path = args.features / f"{dataset}.safetensors"
    feats = load_features(feats_path)
    (_, y_tr), (_, y_va) = load_split(data, "train"), load_split(data, "val")
    classes = load_classes(data)
    if head == "catboost":
        clf = fit_catboost_classifier((feats["train"], y_tr), (feats["val"], y_va), p)
        log_catboost_curves(clf, f"dvclive/classify/{cell}")
        predict = lambda: clf.predict(feats["test"]).ravel().astype(np.int64)  # noqa: E731
        info = {"best_iteration": int(clf.get_best_iteration())}
    else:
        predict, info = train_mlp(
            cell, head, p, data, feats, args.features, y_tr, y_va, len(classes)
        )
    y_pred = predict()
    _, y_test = load_split(data, "test")  # the only read of the TEST labels
    scores = scores_with_interval(y_test, y_pred, dataset, bootstrap_params())
    results = {"dataset": dataset, "encoder": encoder, "head": head, **scores, **info}
    write_results(f"classify/{cell}", results, {"accuracy": scores["accuracy"]})
    write_csv(confusion_rows(y_test, y_pred, classes), f"plots/classify/{cell}.csv")
    print(f"classify@{cell}: {scores}")


if __name__ == "__main__":
    run_stage(main)
