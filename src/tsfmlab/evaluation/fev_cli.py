"""Any fev task file with any model, outside the pipeline: fev's summaries, and the leaderboard next to published rows.

    python -m tsfmlab.evaluation.fev_cli TASKS.yaml [--task NAME ...] [--model NAME=SOURCE ...]
        [--mirror DIR [--mirror-shipped]] [--published CSV ...] --out SUMMARIES.csv

Seasonal naive and last-value naive always run; a model is a Chronos or TTM checkpoint directory or hub id
(:func:`tsfmlab.models.ttm.load_model`). The summaries are written once every task has run.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..data.fev_data import SHIPPED, mirror_packaged
from ..errors import DataError, ParamError
from ..models.ttm import load_model
from .baselines import LAST_VALUE, SEASONAL_NAIVE
from .fev_tasks import check_datasets, compare_with_published, load_tasks, write_summaries
from .forecasting import benchmark, chronos_forecaster


def model_forecasters(specs: Sequence[str], batch_size: int, num_samples: int, seed: int) -> dict:
    """``NAME=SOURCE`` each (a Chronos or TTM checkpoint directory or hub id), as models of
    :func:`~tsfmlab.evaluation.forecasting.benchmark` (the naive baselines are always there)."""
    out = {}
    for spec in specs:
        name, sep, source = spec.partition("=")
        if not sep or not name or name in (SEASONAL_NAIVE, LAST_VALUE):
            raise ParamError(f"model {spec!r}: use NAME=CHECKPOINT_DIR_OR_HUB_ID ({SEASONAL_NAIVE} and {LAST_VALUE} always run)")
        out[name] = chronos_forecaster(load_model(source), batch_size, num_samples, seed, inference="library")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    import pandas as pd

    parser = argparse.ArgumentParser(prog="python -m tsfmlab.evaluation.fev_cli", description=__doc__.split("\n")[0])
    parser.add_argument("tasks_file", help="a fev task file (tasks: [...]), e.g. fev's chronos_zeroshot/tasks.yaml")
    parser.add_argument("--task", action="append", help="only these task names (repeatable)")
    parser.add_argument("--model", action="append", default=[],
                        help=f"NAME=CHECKPOINT_DIR_OR_HUB_ID (repeatable; {SEASONAL_NAIVE} and {LAST_VALUE} always run)")
    parser.add_argument("--mirror", help="read datasets from this fev mirror (FEV_DATASETS_PREFIX layout) where it has them")
    parser.add_argument("--mirror-shipped", action="store_true",
                        help="first write the tasks' datasets that installed packages ship into --mirror")
    parser.add_argument("--published", action="append", default=[], help="published fev result CSV (repeatable)")
    parser.add_argument("--out", required=True, help="the summaries CSV (written once every task has run)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        tasks = load_tasks(args.tasks_file, args.task)
        if args.mirror_shipped:
            if not args.mirror:
                raise ParamError("--mirror-shipped needs --mirror DIR")
            for task in tasks:
                if task.dataset_config in SHIPPED:
                    mirror_packaged(task.dataset_config, args.mirror)
        check_datasets(tasks)
        models = model_forecasters(args.model, args.batch_size, args.num_samples, args.seed)
        summaries = benchmark(models, {t.task_name: t for t in tasks}, mirror=args.mirror).summaries
    except (ParamError, DataError) as err:
        raise SystemExit(f"fev_tasks: error: {err}") from err
    write_summaries(summaries, args.out, wall_clock=True)
    table = pd.DataFrame(summaries).pivot_table(index="task_name", columns="model_name", values="test_error")
    print(table.to_markdown())
    if args.published:
        comparison = compare_with_published(summaries, args.published, "test_error")
        print(comparison.leaderboard("test_error").to_string())
        for line in comparison.missing:
            print(f"left out: {line}")


if __name__ == "__main__":
    main()
