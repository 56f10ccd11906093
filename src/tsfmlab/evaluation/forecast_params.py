"""Params of the held-out forecast benchmark (section ``evaluate_forecast``; evaluate_dysts re-scores its
models on the same tasks): each held-out dataset is a ``fev.Task`` whose fields are params."""

from __future__ import annotations

from typing import Self

from pydantic import ValidationInfo, field_validator, model_validator

from ..errors import ParamError
from ..models.fast_paths import Inference, require_tested
from ..params import Invalid, Named, Params, PositiveInt, QuantileLevels, Shared, section_of
from .baselines import NAIVE
from .bootstrap import BootstrapParams


class TaskParams(Params):
    """One held-out dataset as a fev task (``fev.Task``'s fields of the same names). ``dataset_path``: a
    Parquet file in fev's schema, written by the data stage that owns the dataset; or, with
    ``dataset_config``, a dataset of a fev benchmark repository on the hub (``autogluon/chronos_datasets``,
    ``autogluon/fev_datasets``), read from ``evaluate_forecast.datasets_mirror`` where it is there, from
    the hub otherwise."""

    dataset_path: str
    dataset_config: str | None
    horizon: PositiveInt
    num_windows: PositiveInt  # rolling windows, window_step_size apart, the last ending each series
    window_step_size: PositiveInt | None  # null: horizon (non-overlapping windows)
    seasonality: PositiveInt  # MASE's and seasonal naive's season


class BenchmarkParams(Params):
    """A published fev benchmark by its own task file (Chronos Benchmark II, fev-bench, fev-bench mini):
    its tasks join the held-out ones, each as the file defines it (metrics, targets, covariates)."""

    tasks_file: str  # a fev tasks.yaml (a dep); data/raw/fev_tasks.yaml holds none
    tasks: list[str] | None  # the file's tasks to run, by name (null: all)


class EvaluateParams(Params):
    models: dict[str, str]  # name: hub id or local model directory
    tasks: Named[TaskParams]
    benchmark: BenchmarkParams
    datasets_mirror: str  # dataset_config tasks read from <mirror>/<dataset_config>/*.parquet where it is, else the hub
    eval_metric: str  # fev metric names: every task's test_error, the headline skill score's metric
    extra_metrics: list[str]
    quantile_levels: Shared[QuantileLevels]
    num_samples: PositiveInt  # Chronos-T5 sample paths per forecast
    batch_size: PositiveInt
    n_fan_charts: int
    bootstrap: Shared[BootstrapParams]  # series resampled within each task
    inference: Inference  # fast: tsfmlab.models.chronos_sampling; library: chronos-forecasting's predict
    seed: int

    @field_validator("models")
    @classmethod
    def _no_baseline_names(cls, models: dict[str, str]) -> dict[str, str]:
        clash = [m for m in NAIVE if m in models]
        if clash:
            raise Invalid(f": {clash[0]!r} is a built-in baseline")
        return models

    @model_validator(mode="after")
    def _fev_accepts(self, info: ValidationInfo) -> Self:
        section = section_of(info, "evaluate_forecast")
        if self.inference == "fast":
            require_tested("chronos_t5_sampling", f"param {section}.inference=fast")
        fev_tasks(self, section, benchmark=False)  # fev refuses a bad field or metric: named before any work
        return self


def fev_tasks(p: EvaluateParams, section: str = "evaluate_forecast", benchmark: bool = True) -> dict:
    """Every held-out dataset's ``fev.Task`` (by name), and with ``benchmark`` the tasks of the benchmark's
    task file; a value fev refuses fails naming the param, a task of the file naming the file."""
    import fev

    from .fev_tasks import load_tasks

    tasks = {}
    for name, t in p.tasks.items():
        try:
            tasks[name] = fev.Task(
                dataset_path=t.dataset_path, dataset_config=t.dataset_config, horizon=t.horizon,
                num_windows=t.num_windows, window_step_size=t.window_step_size, seasonality=t.seasonality,
                eval_metric=p.eval_metric, extra_metrics=list(p.extra_metrics), quantile_levels=list(p.quantile_levels),
                task_name=name,
            )  # fmt: skip
        except (TypeError, ValueError, AssertionError) as err:
            raise ParamError(f"param {section}.tasks.{name}: fev refuses the task: {err}") from err
    if benchmark:
        for task in load_tasks(p.benchmark.tasks_file, p.benchmark.tasks):
            if task.task_name in tasks:
                raise ParamError(f"param {section}.benchmark: {p.benchmark.tasks_file} has a task named "
                                 f"{task.task_name!r}, as {section}.tasks has")  # fmt: skip
            tasks[task.task_name] = task
    return tasks
