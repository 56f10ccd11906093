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
