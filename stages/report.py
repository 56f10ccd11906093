"""Stage report: the headline metrics of every stage (metrics/) -> plots/summary.png.

Usage: python stages/report.py METRICS_FILE [METRICS_FILE ...]   (the deps listed in dvc.yaml)
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
import sys

from tsfmlab.cli import run_stage
from tsfmlab.evaluation.report import collect, summary_figure


def main(paths: list[str]) -> None:
    summary = collect(paths)
    summary_figure(summary, "plots/summary.png")
    print(f"summary of {len(summary)} metrics files")


if __name__ == "__main__":
    run_stage(lambda: main(sys.argv[1:]))
