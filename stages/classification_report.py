"""Stage classification_report: the dataset x encoder x head table of the classify grid and baseline.

Reads reports/classify/<dataset>-<encoder>-<head>.json for every cell of the current grid and the
baseline, and the Ti-MAE rows of reports/timae/finetune-<backbone>-<pooling>.json (encoder
``timae_<backbone>``, head ``<pooling>_pretrained`` or ``<pooling>_scratch``) for the datasets of
``timae.datasets``. Outs: reports/classification.json (per dataset: each encoder-head's TEST scores, the
baseline's, and the best foundation-model cell's accuracy gap to the baseline; means over datasets; every
accuracy with its bootstrap interval, shared.bootstrap), reports/classification.md (the
accuracies as a table, ``0.727 [0.680, 0.773]``), plots/classification.png (accuracy heatmap).
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from tsfmlab.cli import run_stage
from tsfmlab.errors import DataError
from tsfmlab.evaluation.classification import bootstrap_params, classification_grid, classification_table, markdown_table
from tsfmlab.evaluation.plots import save_figure
from tsfmlab.io.atomic import read_results, write_results, write_text
from tsfmlab.params import load_params, param


def heatmap(table: dict, path: str) -> None:
    datasets = list(table["datasets"])
    columns = list(table["mean_accuracy"])
    cells = [[table["datasets"][d]["cells"].get(c) for c in columns] for d in datasets]
    acc = np.array([[np.nan if c is None else c["accuracy"] for c in row] for row in cells])
    fig, ax = plt.subplots(figsize=(1.2 * len(columns) + 2, 0.5 * len(datasets) + 1.5))
    im = ax.imshow(acc, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(datasets)), datasets, fontsize=8)
    for (i, j), v in np.ndenumerate(acc):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
    fig.colorbar(im, ax=ax, label="TEST accuracy")
    fig.tight_layout()
    save_figure(fig, path)


def with_interval(scores: dict, path: Path) -> dict:
    """``scores`` read from ``path``, refused without the accuracy interval the scoring stages write."""
    if not {"accuracy_interval", "n_test"} <= set(scores):
        raise DataError(f"{path}: no accuracy_interval (written before the bootstrap); run `dvc repro`")
    return scores


def timae_rows() -> list[dict]:
    """Rows of the Ti-MAE grid (pretrained and from-scratch starts), if params.yaml has one."""
    from tsfmlab.models.timae import timae_grid

    if "timae" not in load_params():
        return []
    g, rows = timae_grid(), []
    for backbone in g.backbones:
        for pooling in g.poolings:
            results, path = read_results(f"timae/finetune-{backbone}-{pooling}", "run the finetune_timae stages")
            for dataset in g.datasets:
                for start, scores in results[dataset].items():
                    rows.append({"dataset": dataset, "encoder": f"timae_{backbone}",
                                 "head": f"{pooling}_{start}", **with_interval(scores, path)})  # fmt: skip
    return rows


def main() -> None:
    g = classification_grid()
    baseline = param("baseline.classifier")
    cells = [(d, e, h) for d in g.datasets for e in g.encoders for h in g.heads]
    cells += [(d, "raw", baseline) for d in g.datasets]
    rows = []
    for d, e, h in cells:
        scores, path = read_results(f"classify/{d}-{e}-{h}", "run the classify and baseline stages")
        rows.append(with_interval(scores, path))
    rows += timae_rows()
    bootstrap = bootstrap_params()
    table = classification_table(rows, baseline, bootstrap)
    write_results("classification", table)  # the cells' accuracies are their stages' metrics
    text = markdown_table(table, bootstrap.confidence)
    write_text("reports/classification.md", text)
    heatmap(table, "plots/classification.png")
    print(text, end="")


if __name__ == "__main__":
    run_stage(main)
