"""Held-out forecasting as fev tasks: every model and both naive baselines, scored and ranked by fev.

Each held-out dataset is a ``fev.Task`` (:mod:`tsfmlab.evaluation.forecast_params`): fev cuts its
rolling windows, scores every model with its own ``evaluation_summary`` (the task's ``eval_metric`` and
``extra_metrics``, e.g. WQL over the quantile levels and MASE of the median, each averaged over the
task's windows) and ``fev.leaderboard`` aggregates over tasks: skill score (1 - the geometric mean over
tasks of the error relative to seasonal naive's, clipped to [0.01, 100]) and win rate. A model is a
:data:`Forecaster`, which reads only what fev's windows give it (:class:`TaskInputs`): any Chronos
pipeline or TTM forecaster (:func:`chronos_forecaster`), the naive baselines every run includes
(:mod:`tsfmlab.evaluation.baselines`: seasonal naive at the task's seasonality, last-value naive; a point
forecaster gives its point at every quantile level), or the energy stage's CatBoost lag model.

What fev lacks stays here: a **paired bootstrap interval of each skill score that resamples the series
within each task** (fev's own bootstrap resamples tasks, which says little about a handful of them).
:class:`~tsfmlab.evaluation.metrics.SeriesParts` splits fev's per-window WQL and MASE into per-series
parts computed with fev's own metric classes, so that a resample recomputes fev's definition and the
full sample reproduces fev's summary (tests/evaluation/test_forecasting.py: to 1e-9).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..models.fast_paths import Inference
from . import baselines
from .fev_tasks import (
    chronos2_inputs,
    predictions_dataset,
    shared_window_splits,
    task_windows,
    univariate_input,
)
from .metrics import (
    Forecasts,
    SeriesParts,
    point_forecasts,
    quantile_forecasts,
    series_parts,
    skill_interval,
    with_median,
)

BASELINE = baselines.SEASONAL_NAIVE  # every skill score is relative to it (fev's default baseline name)
#: fev.leaderboard's clipping of each task's relative error (its defaults, written out: they define the score)
RELATIVE_ERROR_CLIP = (1e-2, 100.0)


def predict_chronos(
    pipeline,
    histories: Sequence[np.ndarray],
    prediction_length: int,
    quantile_levels: Sequence[float],
    batch_size: int,
    num_samples: int,
    seed: int,
    *,
    inference: Inference,
    **sampling,
) -> Forecasts:
    """Quantiles and medians of any Chronos pipeline (T5 samples, Bolt and Chronos-2 quantile heads) or
    TTM forecaster (a point forecast at every quantile).

    ``inference="fast"``: Chronos-T5 samples through ``tsfmlab.models.chronos_sampling`` (the encoder
    once per series; the same sample paths at a fixed seed); ``"library"``: chronos-forecasting's own
    ``predict_quantiles``. ``sampling`` goes to ``predict`` (e.g. ``top_k=1`` for greedy decoding)."""
    from ..models.loading import pipeline_family

    family = pipeline_family(pipeline)
    if inference == "fast" and family == "chronos-t5":
        from ..models.chronos_sampling import fast_pipeline

        pipeline = fast_pipeline(pipeline)
    kwargs = {"num_samples": num_samples, **sampling} if family == "chronos-t5" else {}
    levels = with_median(quantile_levels)
    torch.manual_seed(seed)  # Chronos-T5 samples; the same seed gives the same forecasts on CPU
    quantiles = []
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(histories), batch_size):
            batch = [torch.from_numpy(h) for h in histories[i : i + batch_size]]
            q, _ = pipeline.predict_quantiles(
                batch, prediction_length=prediction_length, quantile_levels=levels, **kwargs
            )
            if family == "chronos-2":  # one (n_variates=1, H, Q) tensor per series
                q = torch.cat(list(q))
            quantiles.append(q.float().numpy())
    seconds = time.perf_counter() - start
    return quantile_forecasts(np.concatenate(quantiles), quantile_levels, seconds)


def predict_chronos2(pipeline, inputs: Sequence[Mapping], horizon: int, quantile_levels: Sequence[float],
                     batch_size: int) -> Forecasts:  # fmt: skip
    """Chronos-2's own batched API, ``Chronos2Pipeline.predict_quantiles``, on input dicts
    (:func:`~tsfmlab.evaluation.fev_tasks.chronos2_inputs`), ``batch_size`` series (all their covariate
    rows) per forward pass: quantiles at ``quantile_levels`` and the median of each series' target."""
    if batch_size <= 0:
        raise DataError(f"batch_size must be > 0, got {batch_size}")
    levels = with_median(quantile_levels)
    rows = 1 + len(inputs[0].get("past_covariates", {})) if inputs else 1  # the target and every covariate
    start = time.perf_counter()
    with torch.inference_mode():
        q, _ = pipeline.predict_quantiles(list(inputs), prediction_length=horizon, quantile_levels=levels,
                                          batch_size=batch_size * rows)  # fmt: skip
    q = np.stack([x[0].float().numpy() for x in q])  # one (1, H, Q) per series: its target
    return quantile_forecasts(q, quantile_levels, time.perf_counter() - start)


def fev_dataset(f: Forecasts, levels: Sequence[float], name: str):
    """:class:`Forecasts` as the ``datasets.Dataset`` fev scores (:func:`~tsfmlab.evaluation.fev_tasks.predictions_dataset`),
    a non-finite forecast failing with ``name`` and the item."""
    bad = np.flatnonzero(~np.isfinite(f.quantiles).all(axis=(1, 2)) | ~np.isfinite(f.median).all(axis=1))
    if len(bad):
        raise DataError(f"{name}: item {int(bad[0])} has NaN or infinite forecasts")
    return predictions_dataset({"predictions": f.median, **{str(q): f.quantiles[:, :, j] for j, q in enumerate(levels)}},
                               name)  # fmt: skip


def histories_of(past_data) -> list[np.ndarray]:
    """The ``target`` histories of a window's univariate view (:func:`tsfmlab.evaluation.fev_tasks.univariate_input`)."""
    return [np.asarray(x, dtype=np.float32) for x in past_data["target"]]


@dataclass
class TaskInputs:
    """What a model may read of a task: every window's histories (one per item of the univariate view) and
    its ``(past, future)`` view (covariates: past-only up to the cutoff, known ones over the horizon too)."""

    histories: list[list[np.ndarray]]  # [window][item]
    views: list[tuple]  # [window] -> (past_data, future_data)
    ids: list[str]

    def flat(self, per_window: Sequence[Sequence]) -> list:
        """``per_window[w][i]`` item by item, each item's windows in turn: the order of every forecast."""
        return [per_window[w][i] for i in range(len(self.ids)) for w in range(len(per_window))]


#: a model: ``(task, inputs)`` -> :class:`Forecasts` of every (item, window), in :meth:`TaskInputs.flat` order
Forecaster = Callable[[Any, TaskInputs], Forecasts]


def naive_forecaster(season: int | None) -> Forecaster:
    """Seasonal naive at ``season`` (None: the task's seasonality; 1: last-value naive), a point forecast
    at every quantile level (as fev's published baseline rows were made)."""

    def forecast(task, inputs: TaskInputs) -> Forecasts:
        start = time.perf_counter()
        points = baselines.seasonal_naive(inputs.flat(inputs.histories), task.horizon, season or task.seasonality)
        return point_forecasts(points, len(task.quantile_levels), time.perf_counter() - start)

    return forecast


def chronos_forecaster(pipeline, batch_size: int, num_samples: int, seed: int, *, inference: Inference,
                       covariates: str = "past_future", context_length: int | None = None) -> Forecaster:  # fmt: skip
    """Any Chronos pipeline (or TTM forecaster) as a model: Chronos-2 reads the task's covariates that
    ``covariates`` names (:func:`~tsfmlab.evaluation.fev_tasks.chronos2_inputs`); the others forecast the
    target from its history alone (:func:`predict_chronos`). ``context_length``: the history each
    forecast sees (None: all of it, the model truncating it to its own context)."""
    from ..models.loading import pipeline_family

    family = pipeline_family(pipeline)

    def forecast(task, inputs: TaskInputs) -> Forecasts:
        if family == "chronos-2":
            per_window = [chronos2_inputs(task, *view, covariates, context_length) for view in inputs.views]
            return predict_chronos2(pipeline, inputs.flat(per_window), task.horizon, task.quantile_levels, batch_size)
        histories = [h[-context_length:] if context_length else h for h in inputs.flat(inputs.histories)]
        return predict_chronos(pipeline, histories, task.horizon, task.quantile_levels, batch_size, num_samples, seed,
                               inference=inference)  # fmt: skip

    return forecast


@dataclass
class BenchmarkRun:
    summaries: list[dict]  # fev's evaluation_summary of every model on every task
    parts: dict[str, dict[str, SeriesParts]]  # model -> task -> per-series parts (the bootstrap)
    seconds: dict[str, float]  # model -> total prediction time
    n_forecasts: dict[str, int]  # task -> forecasts over its windows
    panels: list[dict] = field(default_factory=list)  # the first window of the first tasks (fan charts)
    forecasts: dict[str, dict[str, Forecasts]] = field(default_factory=dict)  # kept tasks: model -> forecasts
    truths: dict[str, np.ndarray] = field(default_factory=dict)  # kept tasks: truth, in forecast order

    def leaderboard(self, metric: str):
        """``fev.leaderboard`` on ``metric`` (a column of the summaries: ``test_error``, ``WQL``, ``MASE``)."""
        import fev

        bad = {t: v for t, v in self.scores(metric)[BASELINE].items() if not np.isfinite(v) or v <= 0}
        if bad:  # fev divides by it (and raises a bare ValueError)
            raise DataError(f"task(s) {sorted(bad)}: {BASELINE}'s {metric} is {sorted(bad.values())}, no score can be "
                            f"relative to it (a window whose truth is all zero?); change the task's windows or metric")  # fmt: skip
        low, high = RELATIVE_ERROR_CLIP
        return fev.leaderboard(self.summaries, metric_column=metric, baseline_model=BASELINE,
                               min_relative_error=low, max_relative_error=high)  # fmt: skip

    def scores(self, metric: str) -> dict[str, dict[str, float]]:
        """model -> task -> fev's score on ``metric``."""
        out: dict[str, dict[str, float]] = {}
        for s in self.summaries:
            out.setdefault(s["model_name"], {})[s["task_name"]] = float(s[metric])
        return out

    def intervals(self, metric: str, n_resamples: int, confidence: float, seed: int) -> dict[str, list[float]]:
        """Per model, the paired series bootstrap interval of its skill score on ``metric``."""
        base = self.parts[BASELINE]
        return {m: skill_interval(p, base, metric, n_resamples, confidence, seed, RELATIVE_ERROR_CLIP)
                for m, p in self.parts.items()}  # fmt: skip

    @property
    def total_forecasts(self) -> int:
        return sum(self.n_forecasts.values())


def task_inputs(task, windows) -> tuple[TaskInputs, list[np.ndarray]]:
    """Every window's :class:`TaskInputs` in its univariate view (:func:`~tsfmlab.evaluation.fev_tasks.univariate_input`)
    and truth ``(items x targets, horizon)``; a window whose items differ from the first's fails naming the
    task (the bootstrap pairs them)."""
    histories, truths, views, ids = [], [], [], None
    for w, window in enumerate(windows):
        past, future = univariate_input(window)
        if ids is None:
            ids = list(past["id"])
        elif list(past["id"]) != ids:
            raise DataError(f"task {task.task_name}: window {w} holds other items than window 0")
        histories.append(histories_of(past))
        views.append((past, future))
        truth = window.get_ground_truth()
        truths.append(np.stack([np.asarray(row[c], np.float64) for row in truth for c in task.target_columns]))
    return TaskInputs(histories, views, ids or []), truths


def benchmark(forecasters: Mapping[str, Forecaster], tasks: Mapping, *, n_panels: int = 0, mirror: str | None = None,
              keep: Collection[str] = (), scoring: Inference = "library") -> BenchmarkRun:  # fmt: skip
    """Both naive baselines and every model on every window of every ``fev.Task`` (by name), scored by
    fev's ``evaluation_summary``; the windows of every task are loaded (``mirror``:
    :func:`~tsfmlab.evaluation.fev_tasks.task_windows`) before any model runs. A model forecasts all
    windows of a task in one call, series by series (each series' windows in turn), so that the sample
    paths do not depend on how fev groups the windows; a task of several target columns is forecast one
    target at a time (fev's univariate view) and scored on the joined predictions. ``keep``: tasks whose
    forecasts and truth the run keeps. A model's forecasts of the wrong shape (items, horizon, quantile
    levels) or with a non-finite value fail naming the task, model and window. ``scoring="fast"``: fev
    splits each window once for all models (:func:`~tsfmlab.evaluation.fev_tasks.shared_window_splits`)."""
    with shared_window_splits() if scoring == "fast" else contextlib.nullcontext():
        return _benchmark(forecasters, tasks, n_panels, mirror, keep)


def _benchmark(forecasters, tasks, n_panels, mirror, keep) -> BenchmarkRun:
    import fev

    loaded = {name: task_inputs(task, task_windows(task, mirror)) for name, task in tasks.items()}
    models = {name: naive_forecaster(season) for name, season in baselines.naive_seasons(None).items()}
    models.update(forecasters)
    run = BenchmarkRun([], {m: {} for m in models}, dict.fromkeys(models, 0.0), {})
    for name, task in tasks.items():
        inputs, truths = loaded[name]
        n_windows, levels = len(inputs.histories), task.quantile_levels
        run.n_forecasts[name] = n_windows * len(inputs.ids)
        forecasts = {}
        for model, forecaster in models.items():
            forecasts[model] = f = forecaster(task, inputs)
            shape = (run.n_forecasts[name], task.horizon, len(levels))
            if f.quantiles.shape != shape or f.median.shape != shape[:2]:
                raise DataError(f"task {name}, {model}: forecasts of shape {f.quantiles.shape} (median {f.median.shape}),"
                                f" expected {shape}: (items x windows, horizon, quantile levels {levels})")  # fmt: skip
            per_window = [Forecasts(f.quantiles[w::n_windows], f.median[w::n_windows], f.seconds / n_windows)
                          for w in range(n_windows)]  # fmt: skip
            predictions = [fev_dataset(x, levels, f"task {name}, window {w}, {model}") for w, x in enumerate(per_window)]
            if task.is_multivariate:
                predictions = [fev.combine_univariate_predictions_to_multivariate(p, task.target_columns)
                               for p in predictions]  # fmt: skip
            run.summaries.append(task.evaluation_summary(predictions, model_name=model, inference_time_s=f.seconds))
            run.parts[model][name] = series_parts(task, list(zip(per_window, inputs.histories, truths)))
            run.seconds[model] += f.seconds
        if name in keep:
            run.forecasts[name], run.truths[name] = forecasts, np.stack(inputs.flat(truths))
        if len(run.panels) < n_panels:
            run.panels.append({"title": f"{name}: {inputs.ids[0]}", "history": inputs.histories[0][0][-4 * task.horizon :],
                               "truth": truths[0][0], "forecasts": {m: f.quantiles[0] for m, f in forecasts.items()},
                               "levels": levels})  # fmt: skip
        print(f"{name}: {run.n_forecasts[name]} forecasts, test_error "
              + ", ".join(f"{s['model_name']} {s['test_error']:.3f}" for s in run.summaries[-len(models):]))
    return run
