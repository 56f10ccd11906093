"""Forecasts scored as the field scores them: fev tasks, fev's ``evaluation_summary``, fev's leaderboard.

fev (autogluon/fev) defines a forecasting task by its dataset and a handful of fields (``horizon``,
``num_windows``, ``window_step_size``, ``seasonality``, ``eval_metric``, ``quantile_levels``, covariate
columns), cuts the rolling evaluation windows, and scores predictions with its own metrics. Chronos
Benchmark II and fev-bench are published as fev task files (``tasks.yaml``) with per-task result tables,
so a summary made here sits next to a published row without translation.

This module adds only what fev leaves to its user:

* :func:`load_tasks`: a task file's tasks, with an unknown field or a bad value named by its task (fev
  raises a bare ``TypeError``/``AssertionError``);
* :func:`task_windows`: a task's windows, its ``dataset_config`` read from a mirror directory where it is
  there (datasets in fev's schema: :mod:`tsfmlab.data.fev_data`), from the hub otherwise;
* :func:`naive_predictions` and :func:`chronos_predictor`: seasonal naive, naive and any Chronos pipeline in
  fev's prediction format (a point forecaster's point at every quantile level, as the published baseline
  rows were made);
* :func:`evaluate`: every window of a task through a model, the predictions checked (horizon, quantile
  levels, finite values) with errors naming the task, then fev's own ``evaluation_summary``;
* :func:`compare_with_published`: the summaries next to published result tables, task by task.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.fev_data import SHIPPED, mirror_packaged
from ..errors import DataError, ParamError
from ..io.atomic import atomic_file
from .baselines import SEASONAL_NAIVE  # fev's (and its leaderboard's) name too

NAIVE = "naive"  # fev's name of last-value naive (the project's own: baselines.LAST_VALUE)

#: a model's predictions of one window: one mapping per item, ``predictions`` (the point forecast) and one
#: key per quantile level (``str(level)``), each an array of ``horizon`` values
Predictions = list[dict[str, np.ndarray]]
Predictor = Callable[[Any, Any, Any], Predictions]  # (task, past_data, future_data) -> Predictions


def task_name(conf: Mapping[str, Any]) -> str:
    return str(conf.get("task_name") or conf.get("dataset_config") or conf.get("dataset_path"))


def load_tasks(path: str | Path, names: Sequence[str] | None = None) -> list:
    """The ``fev.Task``s of a task file (``tasks: [...]``), or of those named in ``names`` (in file order).

    An unknown field, a missing dataset path or a value fev refuses fails naming the task and the file."""
    import fev
    import yaml

    path = Path(path)
    try:
        confs = yaml.safe_load(path.read_text())["tasks"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise DataError(f"{path}: not a fev task file (a YAML mapping with a 'tasks' list): {err}") from err
    fields = {f.name for f in dataclasses.fields(fev.Task)}
    tasks = []
    for conf in confs:
        name = task_name(conf)
        if names is not None and name not in names:
            continue
        unknown = sorted(set(conf) - fields)
        if unknown:
            raise DataError(f"{path}: task {name}: unknown field(s) {unknown} (fev.Task has {sorted(fields)})")
        try:
            tasks.append(fev.Task(**conf))
        except (TypeError, ValueError, AssertionError) as err:  # fev.Task is a pydantic dataclass
            detail = "; ".join(e["msg"] for e in err.errors()) if hasattr(err, "errors") else str(err)
            raise DataError(f"{path}: task {name}: {detail}") from err
    missing = sorted(set(names or ()) - {t.task_name for t in tasks})
    if missing:
        raise ParamError(f"{path}: no task named {missing}")
    return tasks


def check_datasets(tasks: Sequence) -> None:
    """Fail before any work when a task's local ``dataset_path`` matches no file."""
    import glob

    for t in tasks:
        if t.dataset_config is None and "://" not in t.dataset_path and not glob.glob(t.dataset_path):
            raise DataError(f"task {t.task_name}: no file matches its dataset_path {t.dataset_path}")


# --------------------------------------------------------------------------------------------------
# predictions and scores


def naive_predictions(task, past_data, future_data, season: int | None = None) -> Predictions:
    """Seasonal Naive at ``season`` (default: the task's seasonality; 1 is Naive), the project's baseline
    (:func:`tsfmlab.evaluation.baselines.seasonal_naive`: each item's last ``season`` observations repeated)."""
    from .baselines import seasonal_naive
    from .forecasting import fev_predictions, histories_of
    from .metrics import point_forecasts

    points = seasonal_naive(histories_of(past_data), task.horizon, task.seasonality if season is None else season)
    return fev_predictions(point_forecasts(points, len(task.quantile_levels), 0.0), task.quantile_levels)


def check_predictions(task, predictions: Predictions, n_items: int, window: int) -> None:
    """The checks fev would make, with the task, window and item in the message (fev's own name neither):
    one forecast per (univariate) item, ``horizon`` values per key, every quantile level, finite values."""
    where = f"task {task.task_name}, window {window}"
    if len(predictions) != n_items:
        raise DataError(f"{where}: {len(predictions)} forecasts for {n_items} items")
    keys = {"predictions", *(str(q) for q in task.quantile_levels)}
    for i, item in enumerate(predictions):
        if set(item) != keys:
            raise DataError(f"{where}, item {i}: forecast keys {sorted(item)}, expected {sorted(keys)}")
        for key, values in item.items():
            values = np.asarray(values)
            if values.shape != (task.horizon,):
                raise DataError(f"{where}, item {i}: {key} has shape {values.shape}, expected ({task.horizon},)")
            if not np.isfinite(values).all():
                raise DataError(f"{where}, item {i}: {key} has NaN or infinite values")


def predictions_dataset(columns: Mapping[str, np.ndarray], fingerprint: str):
    """One window's predictions (``predictions`` and one key per quantile level, each ``(items, horizon)``)
    as the ``datasets.Dataset`` fev scores, made from the arrays at once: given a list of dicts, fev
    builds it through ``Dataset.from_list``, which hashes every value for a fingerprint (most of an
    evaluation's time on small models); ``fingerprint`` names it instead."""
    import datasets
    import pyarrow as pa

    def column(values) -> pa.Array:
        values = np.ascontiguousarray(values, dtype=np.float64)
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])

    table = pa.table({key: column(values) for key, values in columns.items()})
    return datasets.Dataset(datasets.table.InMemoryTable(table), fingerprint=fingerprint)


def task_windows(task, mirror: str | Path | None = None) -> list:
    """The evaluation windows of ``task``, its dataset loaded: a ``dataset_config`` from the ``mirror``
    directory when it holds ``<dataset_config>/*.parquet`` (fev's ``FEV_DATASETS_PREFIX`` layout),
    otherwise from the hub; a dataset that cannot be loaded fails naming the task (fev wraps the
    ``datasets`` error in a ``RuntimeError`` naming the arguments only)."""
    local = bool(mirror and task.dataset_config and list((Path(mirror) / task.dataset_config).glob("*.parquet")))
    before = os.environ.get("FEV_DATASETS_PREFIX")
    try:
        if local:
            os.environ["FEV_DATASETS_PREFIX"] = str(Path(mirror).resolve())
        return list(task.iter_windows())  # fev keeps the loaded dataset in the task
    except Exception as err:
        where = f"{task.dataset_path} {task.dataset_config or ''}".strip()
        hint = f" (not in the mirror {mirror}; offline?)" if task.dataset_config and not local else ""
        raise DataError(f"task {task.task_name}: cannot load its dataset {where}{hint}: {err}") from err
    finally:  # (restored by hand: unittest.mock.patch.dict leaves it set once datasets has run)
        if before is None:
            os.environ.pop("FEV_DATASETS_PREFIX", None)
        else:
            os.environ["FEV_DATASETS_PREFIX"] = before


def univariate_input(window):
    """A window's ``(past, future)`` with one item per target column (fev's own ``as_univariate`` view,
    column ``target``; covariates unchanged): every model here forecasts one target at a time."""
    import fev

    return fev.convert_input_data(window, "datasets", as_univariate=True)


def evaluate(task, predict: Predictor, model_name: str, mirror: str | Path | None = None, **summary_kwargs) -> dict[str, Any]:
    """fev's ``evaluation_summary`` of ``model_name`` on every window of ``task``; ``predict(task, past,
    future)`` gives one window's :data:`Predictions` on its univariate view (:func:`univariate_input`),
    joined back to the task's target columns; ``mirror``: see :func:`task_windows`. Inference time is
    the sum over windows."""
    import fev

    per_window, seconds = [], 0.0
    for w, window in enumerate(task_windows(task, mirror)):
        past, future = univariate_input(window)
        start = time.perf_counter()
        predictions = predict(task, past, future)
        seconds += time.perf_counter() - start
        check_predictions(task, predictions, len(past), w)
        keys = ["predictions", *(str(q) for q in task.quantile_levels)]
        dataset = predictions_dataset({k: np.stack([p[k] for p in predictions]) for k in keys},
                                      f"{task.task_name}-{w}-{model_name}")  # fmt: skip
        per_window.append(fev.combine_univariate_predictions_to_multivariate(dataset, task.target_columns)
                          if task.is_multivariate else dataset)  # fmt: skip
    return task.evaluation_summary(per_window, model_name=model_name, inference_time_s=seconds, **summary_kwargs)


def chronos_predictor(pipeline, batch_size: int, num_samples: int, seed: int, inference: str = "library") -> Predictor:
    """Any Chronos pipeline (T5, Bolt, Chronos-2) as a fev predictor: its median as ``predictions`` and
    its quantiles at the task's levels. Chronos-2 reads the task's covariates (past-only and known
    columns: their history, and the known ones over the horizon, :func:`chronos2_inputs`); the others
    forecast the target from its history alone (:func:`tsfmlab.evaluation.forecasting.predict_chronos`)."""
    from .forecasting import fev_predictions, forecast_task, histories_of

    def predict(task, past_data, future_data) -> Predictions:
        f = forecast_task(pipeline, task, [histories_of(past_data)], [(past_data, future_data)], batch_size,
                          num_samples, seed, inference)  # fmt: skip
        return fev_predictions(f, task.quantile_levels)

    return predict


def chronos2_inputs(task, past_data, future_data) -> list[dict]:
    """Chronos-2's input dicts of a window's univariate view: ``target``; ``past_covariates``, the
    history of every past-only and known covariate; ``future_covariates``, the known ones over the horizon."""
    past_names = [*task.past_dynamic_columns, *task.known_dynamic_columns]
    inputs = []
    for past, future in zip(past_data, future_data, strict=True):
        item = {"target": np.asarray(past["target"], dtype=np.float32),
                "past_covariates": {c: np.asarray(past[c]) for c in past_names}}  # fmt: skip
        if task.known_dynamic_columns:
            item["future_covariates"] = {c: np.asarray(future[c]) for c in task.known_dynamic_columns}
        inputs.append(item)
    return inputs


#: wall-clock fields of a summary: kept out of a stage's outputs, which are functions of params and deps alone
WALL_CLOCK = ("training_time_s", "inference_time_s")


def write_summaries(summaries: Sequence[Mapping[str, Any]], path: str | Path, wall_clock: bool = False) -> Path:
    """fev summaries as one CSV (what ``fev.leaderboard`` and published result tables read), atomically;
    without ``wall_clock`` the timing fields are left empty, so the same params give the same bytes."""
    import pandas as pd

    frame = pd.DataFrame([{**s, **({} if wall_clock else dict.fromkeys(WALL_CLOCK))} for s in summaries])
    with atomic_file(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


# --------------------------------------------------------------------------------------------------
# command line: a task file, some models, fev summaries (and the leaderboard next to published rows)


def model_predictors(specs: Sequence[str], batch_size: int, num_samples: int, seed: int) -> dict[str, Predictor]:
    """``seasonal_naive``, ``naive`` or ``NAME=SOURCE`` (a Chronos checkpoint directory or hub id) each."""
    from ..models.loading import load_pipeline

    out: dict[str, Predictor] = {}
    for spec in specs:
        if spec == SEASONAL_NAIVE:
            out[spec] = naive_predictions
        elif spec == NAIVE:
            out[spec] = lambda task, past, future: naive_predictions(task, past, future, season=1)
        elif "=" in spec:
            name, source = spec.split("=", 1)
            out[name] = chronos_predictor(load_pipeline(source), batch_size, num_samples, seed)
        else:
            raise ParamError(f"model {spec!r}: use {SEASONAL_NAIVE}, {NAIVE} or NAME=CHECKPOINT_DIR_OR_HUB_ID")
    return out


def run_benchmark(tasks: Sequence, predictors: Mapping[str, Predictor], mirror: str | Path | None = None) -> list[dict[str, Any]]:
    """One fev summary per task and model (every model on a task before the next task)."""
    from tqdm.auto import tqdm

    summaries = []
    for task in tqdm(tasks, desc="fev tasks", disable=bool(os.environ.get("TSFMLAB_NO_PROGRESS"))):
        for name, predict in predictors.items():
            summaries.append(evaluate(task, predict, name, mirror))
    return summaries


#: the fields of a task that decide its scores: a published row counts for a task only where they agree
SCORE_FIELDS = ("dataset_config", "horizon", "num_windows", "initial_cutoff", "window_step_size", "seasonality",
                "quantile_levels", "target")  # fmt: skip


@dataclass
class Comparison:
    """The project's fev summaries next to published ones: ``rows`` (the summaries of the tasks that every
    model has, published rows aligned to the project's task definitions), ``per_task`` (every task's score
    per model, NaN where a row is missing) and ``missing`` (each absent or differently defined published
    row, named: never dropped silently)."""

    rows: Any
    per_task: Any
    missing: list[str]

    def leaderboard(self, metric: str, baseline: str = SEASONAL_NAIVE):
        """``fev.leaderboard`` (win rate, skill score) on ``metric`` over the tasks every model has."""
        import fev

        return fev.leaderboard(self.rows, metric_column=metric, baseline_model=baseline)


def compare_with_published(summaries, published: Sequence[str | Path], metric: str) -> Comparison:
    """Join ``summaries`` (fev summaries: records or a frame) with published fev result tables by task
    name, where the task's score-deciding fields (:data:`SCORE_FIELDS`) agree; the project's rows win
    for a model both have (the project's own seasonal naive, say)."""
    import fev
    import pandas as pd

    ours = pd.DataFrame(summaries)
    tasks = ours.drop_duplicates("task_name").set_index("task_name")
    theirs = pd.concat([pd.read_csv(p) for p in published], ignore_index=True) if published else ours.iloc[:0]
    theirs = theirs[theirs["task_name"].isin(tasks.index) & ~theirs["model_name"].isin(set(ours["model_name"]))]
    models, aligned, missing, unusable = set(theirs["model_name"]), [], [], set()
    for _, row in theirs.iterrows():
        task = tasks.loc[row["task_name"]]
        differ = [f for f in SCORE_FIELDS if str(row[f]) != str(task[f])]
        if differ:
            missing.append(f"{row['task_name']} ({row['model_name']}): published for another {', '.join(differ)}")
            unusable.add((row["task_name"], row["model_name"]))
        else:  # the same task: fev's leaderboard groups rows by the whole task definition, so take ours
            aligned.append({**row.to_dict(), **{c: task[c] for c in fev.analysis.TASK_DEF_COLUMNS if c in task}})
    have = {(r["task_name"], r["model_name"]) for r in aligned}
    absent = sorted({(t, m) for t in tasks.index for m in models} - have - unusable)
    missing += [f"{t} ({m}): no published row" for t, m in absent]
    rows = pd.concat([ours, *([pd.DataFrame(aligned)] if aligned else [])], ignore_index=True)
    per_task = fev.pivot_table(rows, metric_column=metric, task_columns="task_name")
    complete = set(tasks.index) - {t for t, _ in [*absent, *unusable]}
    return Comparison(rows[rows["task_name"].isin(complete)], per_task, sorted(missing))


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    import pandas as pd

    parser = argparse.ArgumentParser(prog="python -m tsfmlab.evaluation.fev_tasks", description=__doc__.split("\n")[0])
    parser.add_argument("tasks_file", help="a fev task file (tasks: [...]), e.g. fev's chronos_zeroshot/tasks.yaml")
    parser.add_argument("--task", action="append", help="only these task names (repeatable)")
    parser.add_argument("--model", action="append", required=True,
                        help=f"{SEASONAL_NAIVE}, {NAIVE} or NAME=CHECKPOINT_DIR_OR_HUB_ID (repeatable)")
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
        predictors = model_predictors(args.model, args.batch_size, args.num_samples, args.seed)
        summaries = run_benchmark(tasks, predictors, args.mirror)
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
