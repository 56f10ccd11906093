"""Stage finetune_timae@<backbone>-<pooling>: Ti-MAE classifiers, pretrained encoder vs from scratch.

For every dataset of ``timae.datasets``: the encoder pretrain_timae saved (loaded bit for bit) under a
``pooling`` (cls token or average) and an MLP/linear head, fine-tuned on the train split; and the same
architecture trained from random weights with the same params, so the table shows what pretraining buys.
Early stopping and model selection see the validation split only; TEST labels are read once, to score.
Outs: reports/timae/finetune-<backbone>-<pooling>.json (per dataset and start: accuracy with its
bootstrap interval over the TEST examples (shared.bootstrap), balanced accuracy, macro-F1,
parameters, best epoch), metrics/timae/finetune-<backbone>-<pooling>.json (the accuracies),
dvclive/timae/finetune-<backbone>-<pooling>/<dataset>-<start>/.
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load

import numpy as np
import torch

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.data.ucr import labelled, load_classes, load_inputs
from tsfmlab.errors import ParamError
from tsfmlab.evaluation import classification
from tsfmlab.io.atomic import write_results
from tsfmlab.models.timae import read_config, timae_datasets
from tsfmlab.launch import check_world
from tsfmlab.params import stage_params
from tsfmlab.runtime import is_main_process, rank_label
from tsfmlab.training.timae_lightning import TiMAEFinetuneParams, SeriesDataset, fit_classifier, series_length

SECTION = "finetune_timae"
STARTS = ("pretrained", "scratch")


def predict(model, x: np.ndarray, p: TiMAEFinetuneParams) -> np.ndarray:
    ds = SeriesDataset(x, seq_len=model.config.seq_len, crop=p.crop, normalize=p.normalize)
    preds = []
    with torch.no_grad():
        for i in range(0, len(ds), p.batch_size):
            batch = torch.stack([ds[j] for j in range(i, min(i + p.batch_size, len(ds)))])
            preds.append(model(batch).argmax(1))
    return torch.cat(preds).numpy()


def main() -> None:
    args = stage_args("backbone", "pooling", ucr="prepare_ucr's datasets", encoders="pretrain_timae's encoders")
    backbone, pooling = args.backbone, args.pooling
    p = stage_params(TiMAEFinetuneParams, SECTION)
    check_world(p.launch, SECTION)
    if pooling not in ("cls", "avg"):
        raise ParamError(f"{pooling!r} is not a pooling of timae.poolings (cls, avg)")
    bootstrap = classification.bootstrap_params()
    jobs = []
    for dataset in timae_datasets():  # every check before any training
        encoder_dir = args.encoders / dataset
        saved = read_config(encoder_dir)
        train, val = labelled(args.ucr, dataset, "train"), labelled(args.ucr, dataset, "val")
        seq_len = series_length(train[0], p.seq_len or saved.seq_len, p.crop, SECTION)
        config = saved.model_copy(update={"seq_len": seq_len})
        if pooling == "cls" and not config.cls_embed:
            raise ParamError(f"timae.backbones.{backbone}.cls_embed is false: no cls pooling")
        jobs.append((dataset, encoder_dir, config, train, val))
    metrics = {}
    for dataset, encoder_dir, config, train, val in jobs:
        n_classes = len(load_classes(args.ucr / f"{dataset}.safetensors"))
        metrics[dataset] = {}
        for start in STARTS:
            model, stats = fit_classifier(
                config,
                n_classes,
                train,
                val,
                p,
                pooling,
                f"dvclive/timae/finetune-{backbone}-{pooling}/{dataset}-{start}",
                encoder_dir=encoder_dir if start == "pretrained" else None,
            )
            y_pred = predict(model, load_inputs(args.ucr / f"{dataset}.safetensors", "test"), p)
            _, y_test = labelled(args.ucr, dataset, "test")  # TEST labels: scoring only
            scores = classification.scores_with_interval(y_test, y_pred, dataset, bootstrap)
            metrics[dataset][start] = {
                **scores,
                **{k: round(v, 6) if isinstance(v, float) else v for k, v in stats.items()},
            }
            print(f"finetune_timae@{backbone}-{pooling}{rank_label()}: {dataset} {start}: {scores}")
    if is_main_process():  # torchrun: every rank trains, rank 0 writes the outputs
        headline = {d: {s: {"accuracy": m[s]["accuracy"]} for s in m} for d, m in metrics.items()}
        write_results(f"timae/finetune-{backbone}-{pooling}", metrics, headline)


if __name__ == "__main__":
    run_stage(main)
