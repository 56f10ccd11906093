"""Stage pretrain_timae@<backbone>: Ti-MAE masked-reconstruction pretraining, one model per dataset.

For every dataset of ``timae.datasets``: self-supervised on its TRAIN series (the train split prepared by
prepare_ucr, plus the train and val series of ``unlabeled_pool`` datasets), validated on its val split
with fixed masks; TEST series are never read. Outs: --out <dataset>/
(model.safetensors + config.json), metrics/timae/pretrain-<backbone>.json and reports/timae/... (per dataset: best validation
reconstruction MSE on masked steps, epochs, parameters), plots/timae/reconstruction-<backbone>.png
(input, masked steps, reconstruction of validation series), dvclive/timae/pretrain-<backbone>/<dataset>/.
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
import time
from contextlib import nullcontext

import numpy as np
import torch

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.evaluation.plots import save_figure
from tsfmlab.io.atomic import atomic_dir, write_results
from tsfmlab.data.ucr import pretraining_series
from tsfmlab.models.timae import backbone_config, check_dataset, prepared_datasets, save_timae, timae_datasets
from tsfmlab.launch import check_world
from tsfmlab.params import stage_params
from tsfmlab.runtime import is_main_process, rank_label
from tsfmlab.training.timae_lightning import PretrainParams, SeriesDataset, fit_pretrain, series_length

SECTION = "pretrain_timae"


def reconstruction_figure(panels: list[dict], path: str) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.8 * len(panels) + 0.4), squeeze=False)
    for ax, p in zip(axes[:, 0], panels):
        t = np.arange(len(p["input"]))
        ax.plot(t, p["input"], color="k", lw=1, label="input")
        ax.scatter(
            t[p["mask"]],
            p["reconstruction"][p["mask"]],
            s=6,
            color="tab:red",
            label="reconstruction (masked)",
        )
        ax.scatter(t[~p["mask"]], p["input"][~p["mask"]], s=6, color="tab:blue", label="visible")
        ax.set_title(p["title"], fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    save_figure(fig, path)


def panels(model, x_val: np.ndarray, p: PretrainParams, dataset: str) -> list[dict]:
    """The first ``n_plots`` validation series with the stage's validation masks (channel 0)."""
    if p.n_plots == 0:
        return []
    ds = SeriesDataset(x_val[: p.n_plots], seq_len=model.config.seq_len, crop=p.crop, normalize=p.normalize)
    x = torch.stack([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        out = model(x, generator=torch.Generator().manual_seed(p.val_mask_seed))
    return [
        {
            "title": f"{dataset} val {i}: masked-step MSE {float(((out.reconstruction[i] - x[i]) ** 2)[:, out.mask[i].bool()].mean()):.3f}",
            "input": x[i, 0].numpy(),
            "mask": out.mask[i].bool().numpy(),
            "reconstruction": out.reconstruction[i, 0].numpy(),
        }
        for i in range(len(x))
    ]


def main() -> None:
    args = stage_args("backbone", ucr="prepare_ucr's datasets", out="one encoder per dataset")
    backbone = args.backbone
    p = stage_params(PretrainParams, SECTION)
    check_world(p.launch, SECTION)
    datasets = timae_datasets()
    for dataset in p.unlabeled_pool:
        check_dataset(dataset, prepared_datasets())
    data, configs = {}, {}
    for dataset in datasets:  # every check before any training
        train_x, val_x = pretraining_series(args.ucr, dataset, p.unlabeled_pool)
        seq_len = series_length(train_x, p.seq_len, p.crop, SECTION)
        configs[dataset] = backbone_config(backbone, train_x.shape[1], seq_len, p.mask_ratio)
        data[dataset] = (train_x, val_x)
    metrics, figures = {}, []
    writes = is_main_process()  # torchrun: every rank trains, rank 0 writes the outputs
    with atomic_dir(args.out) if writes else nullcontext() as out:
        for dataset, (train_x, val_x) in data.items():
            start = time.perf_counter()
            log_dir = f"dvclive/timae/pretrain-{backbone}/{dataset}"
            model, stats = fit_pretrain(configs[dataset], train_x, val_x, p, log_dir)
            seconds = time.perf_counter() - start
            if writes:
                save_timae(model, out / dataset)
            metrics[dataset] = {
                **{k: round(v, 6) if isinstance(v, float) else v for k, v in stats.items()},
                "n_train_series": len(train_x),
                "seq_len": configs[dataset].seq_len,
            }  # no wall-clock figures: the same params give the same metrics file (bench/bench_timae.py times it)
            figures += panels(model, val_x, p, dataset) if writes else []
            rate = len(train_x) * stats["epochs_run"] / seconds
            print(
                f"pretrain_timae@{backbone}{rank_label()}: {dataset}: {metrics[dataset]}, {rate:.0f} series/s"
            )
    if not writes:
        return
    headline = {d: {"best_val_loss": m["best_val_loss"]} for d, m in metrics.items()}
    write_results(f"timae/pretrain-{backbone}", metrics, headline)
    if figures:
        reconstruction_figure(figures, f"plots/timae/reconstruction-{backbone}.png")


if __name__ == "__main__":
    run_stage(main)
