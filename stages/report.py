"""Stage report: the headline metrics of every stage -> plots/summary.png.

Usage: python stages/report.py METRICS_DIR   (every stage's metrics files: its dep in dvc.yaml)
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
from tsfmlab.cli import run_stage, stage_args
from tsfmlab.evaluation.report import collect, summary_figure


def main() -> None:
    args = stage_args("metrics")
    summary = collect(args.metrics)
    summary_figure(summary, "plots/summary.png")
    print(f"summary of {len(summary)} metrics files")


if __name__ == "__main__":
    run_stage(main)
