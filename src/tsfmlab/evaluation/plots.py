"""Plot outputs that ``dvc plots`` understands: PNG images and CSV tables for its templates."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..io.atomic import atomic_file  # noqa: E402

# Fixed metadata keeps PNG bytes identical across runs (matplotlib otherwise stamps its version only).
_PNG_META = {"Software": None}


def save_figure(fig, path: str | Path) -> None:
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=_PNG_META)
    plt.close(fig)


def series_grid(
    series: Sequence[np.ndarray], titles: Sequence[str], path: str | Path, ncols: int = 3
) -> None:
    """One panel per series; a (D, T) target draws its D channels in one panel."""
    n = max(1, len(series))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 2.4 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, x, title in zip(axes.flat, series, titles):
        x = np.atleast_2d(np.asarray(x))
        for channel in x:
            ax.plot(channel, lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """A CSV table (header from the first row) for ``dvc plots`` templates."""
    with atomic_file(path, suffix=".csv") as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows(rows)


def fan_charts(
    panels: Sequence[dict[str, Any]], quantile_levels: Sequence[float], path: str | Path, ncols: int = 2
) -> None:
    """Forecast fan charts. Each panel: ``title``, ``history`` (tail shown), ``truth`` and
    ``forecasts`` = {model: (H, Q) quantiles} at ``quantile_levels`` (or the panel's own ``levels``);
    drawn: the median and the outermost-quantile band."""
    n = max(1, len(panels))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6 * ncols, 2.8 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, panel in zip(axes.flat, panels):
        levels = list(panel.get("levels", quantile_levels))
        lo, mid, hi = 0, levels.index(0.5) if 0.5 in levels else len(levels) // 2, len(levels) - 1
        history, truth = np.asarray(panel["history"]), np.asarray(panel["truth"])
        t_future = np.arange(len(history), len(history) + len(truth))
        ax.plot(np.arange(len(history)), history, color="black", lw=0.8, label="history")
        ax.plot(t_future, truth, color="black", lw=0.8, ls="--", label="truth")
        for color, (model, q) in zip(colors, panel["forecasts"].items()):
            ax.fill_between(t_future, q[:, lo], q[:, hi], color=color, alpha=0.2)
            ax.plot(
                t_future, q[:, mid], color=color, lw=1.0, label=f"{model} (median, {levels[lo]}-{levels[hi]})"
            )
        ax.set_title(panel["title"], fontsize=9)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    save_figure(fig, path)
