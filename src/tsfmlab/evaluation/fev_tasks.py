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
* :func:`chronos2_inputs`: a window's covariates as Chronos-2 reads them, by covariate mode;
* :func:`predictions_dataset`: forecasts handed to fev's ``evaluation_summary`` without its per-value
  hashing (the models and the scoring loop: :func:`tsfmlab.evaluation.forecasting.benchmark`);
* :func:`compare_with_published`: the summaries next to published result tables, task by task.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.covariates import covariate_columns as mode_columns
from ..errors import DataError, ParamError
from ..io.atomic import atomic_file
from .baselines import SEASONAL_NAIVE


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
# windows and predictions


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


@contextlib.contextmanager
def shared_window_splits():
    """Within this context each evaluation window's data is split once, whatever the number of models.

    fev splits a window's data (``EvaluationWindow._get_past_future_test_data``, a private method of fev
    0.10) again for every model's ``evaluation_summary`` and for the model's inputs and the truth: with
    hundreds of windows (the energy tasks) the splitting is most of the scoring time. This memoizes it by
    the window's dataset and definition; the splits are ``datasets`` objects that no caller modifies, so
    scores are those of fev's own path (tests/evaluation/test_energy_eval.py). Memory: every split of the
    run is kept until the context ends. Used behind ``evaluate_energy.scoring: fast``; ``library`` is fev's
    own path, the tested reference."""
    from fev.task import EvaluationWindow

    original = EvaluationWindow._get_past_future_test_data
    splits: dict = {}

    def split_once(window):
        key = (id(window.full_dataset), window.cutoff, window.horizon, window.min_context_length,
               window.max_context_length, window.id_column, window.timestamp_column, tuple(window.target_columns),
               tuple(window.known_dynamic_columns), tuple(window.past_dynamic_columns), tuple(window.static_columns))  # fmt: skip
        if key not in splits:
            splits[key] = original(window)
        return splits[key]

    EvaluationWindow._get_past_future_test_data = split_once
    try:
        yield
    finally:
        EvaluationWindow._get_past_future_test_data = original


def univariate_input(window):
    """A window's ``(past, future)`` with one item per target column (fev's own ``as_univariate`` view,
    column ``target``; covariates unchanged): every model here forecasts one target at a time."""
    import fev

    return fev.convert_input_data(window, "datasets", as_univariate=True)


def chronos2_inputs(task, past_data, future_data, covariates: str = "past_future",
                    context_length: int | None = None) -> list[dict]:  # fmt: skip
    """Chronos-2's input dicts of a window's univariate view (chronos-forecasting's ``Chronos2Pipeline.predict``
    contract): ``target``; ``past_covariates``, the history of every past-only and known covariate the mode
    reads; ``future_covariates``, the known ones over the horizon (a covariate absent from it is unknown
    over the horizon). Histories are the last ``context_length`` points (None: all). fev's window holds
    nothing of the target or of a past-only covariate at or after the cutoff: no input can leak it."""
    past_cols, known = mode_columns(task.past_dynamic_columns, task.known_dynamic_columns, covariates)
    tail = slice(-context_length if context_length else None, None)
    inputs = []
    for past, future in zip(past_data, future_data, strict=True):
        item = {"target": np.asarray(past["target"], dtype=np.float32)[tail]}
        if past_cols or known:
            item["past_covariates"] = {c: np.asarray(past[c], dtype=np.float32)[tail] for c in [*past_cols, *known]}
        if known:
            item["future_covariates"] = {c: np.asarray(future[c], dtype=np.float32) for c in known}
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
# published rows (the command line: :mod:`tsfmlab.evaluation.fev_cli`)


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
