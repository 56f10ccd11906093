"""The pipeline's summary: every stage's headline metrics in one picture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ..errors import DataError
from .plots import save_figure


def flatten(obj: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts as ``{"a.b.c": value}``."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix[:-1]] = obj
    return out


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: missing or not valid JSON ({err})") from err


def collect(root: str | Path) -> dict[str, Any]:
    """Every metrics file under ``root`` by name (a directory: its files by name, as one entry), sorted."""
    summary = {}
    for path in sorted(Path(root).iterdir()):
        if path.suffix != ".json" and not path.is_dir():
            continue
        if path.is_dir():
            summary[path.name] = {f.stem: read_json(f) for f in sorted(path.glob("*.json"))}
        else:
            summary[path.stem] = read_json(path)
    return summary


def summary_figure(summary: dict[str, Any], path: str | Path) -> None:
    """One panel per metrics file: its numeric metrics as a horizontal bar chart of log10 magnitudes
    annotated with the exact values (metrics differ by orders of magnitude)."""
    n = len(summary)
    heights = [max(2.0, 0.22 * len(flatten(m))) for m in summary.values()]
    fig, axes = plt.subplots(n, 1, figsize=(9, sum(heights) + 0.5), squeeze=False, height_ratios=heights)
    for ax, (name, metrics) in zip(axes[:, 0], summary.items()):
        flat = flatten(metrics)
        keys = list(flat)
        vals = np.array([flat[k] for k in keys], dtype=float)
        ax.barh(range(len(keys)), np.log10(np.abs(vals) + 1), color="tab:blue")
        for i, v in enumerate(vals):
            ax.text(0.01, i, f"{v:.4g}", va="center", fontsize=7, transform=ax.get_yaxis_transform())
        ax.set_yticks(range(len(keys)), keys, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(name, fontsize=10, loc="left")
        ax.set_xlabel("log10(1 + |value|)", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
