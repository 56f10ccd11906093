"""Probabilistic forecast evaluation as in the Chronos benchmark (Ansari et al. 2024, sec. 5).

Each dataset is a list of univariate series; its last ``windows`` blocks of ``prediction_length`` points
are forecast (rolling origin, non-overlapping) from everything before them, by every model and by the
naive baselines (:mod:`tsfmlab.evaluation.baselines`: seasonal naive at the dataset's ``season_length``,
last-value naive). Scores (:mod:`tsfmlab.evaluation.metrics`, gluonts' definitions):

* WQL over ``quantile_levels`` (quantile losses summed over all series and steps, divided by the summed
  absolute targets);
* MASE: mean over forecasts of the median's absolute error scaled by the in-sample seasonal naive error
  with the dataset's ``season_length``.

Each model's score on a dataset is divided by seasonal naive's; the aggregate over datasets is the
geometric mean of these relative scores, so every dataset counts equally whatever its scale.

Point forecasters (the naive baselines, TTM: family ``ttm``) give their point forecast at every quantile
level (:func:`tsfmlab.evaluation.metrics.point_forecasts`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..errors import DataError
from ..models.fast_paths import Inference
from . import baselines
from .metrics import (
    Forecasts,
    WindowScores,
    geometric_mean,
    mase,
    mase_parts,
    point_forecasts,
    quantile_forecasts,
    relative_interval,
    seasonal_errors,
    with_median,
    wql,
    wql_parts,
)

FREQ = "h"  # nominal: the scores do not depend on it (seasonality is given per dataset)
START = pd.Period("2000-01-01 00:00", freq=FREQ)
BASELINE = baselines.SEASONAL_NAIVE  # every score is relative to it


def series_entries(series: Sequence[np.ndarray], name: str) -> list[dict]:
    """gluonts entries of plain arrays (a nominal hourly start: no score depends on it)."""
    return [
        {"start": START, "target": np.asarray(x, dtype=np.float32), "item_id": f"{name}/{i}"}
        for i, x in enumerate(series)
    ]


def cut_windows(entries: list[dict], prediction_length: int, windows: int, offset: int | None, name: str):
    """gluonts ``TestData``: ``windows`` windows of ``prediction_length``, ``prediction_length`` apart,
    the first starting ``-offset`` steps before every series' end (``offset=None``: the last
    ``windows`` non-overlapping windows), each forecast from everything before it. A series that
    leaves fewer than two points of history fails, naming it."""
    from gluonts.dataset.split import split

    offset = -windows * prediction_length if offset is None else offset
    for entry in entries:
        if len(entry["target"]) + offset < 2:
            raise DataError(
                f"dataset {name}: series {entry['item_id']} has {len(entry['target'])} points, too few for "
                f"{windows} window(s) of {prediction_length} from offset {offset} plus a history"
            )
    _, template = split(entries, offset=offset)
    return template.generate_instances(prediction_length, windows=windows, distance=prediction_length)


def heldout_windows(series: Sequence[np.ndarray], prediction_length: int, windows: int, name: str):
    """gluonts ``TestData``: the last ``windows`` non-overlapping windows of every series."""
    return cut_windows(series_entries(series, name), prediction_length, windows, None, name)


@dataclass
class HeldoutSet:
    """One dataset's forecast windows, with the horizon and season it is scored at."""

    test_data: object  # gluonts TestData
    prediction_length: int
    season_length: int


def history_arrays(test_data) -> list[np.ndarray]:
    return [np.asarray(entry["target"], dtype=np.float32) for entry in test_data.input]


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
    TTM forecaster (a point forecast at every quantile: see the module docstring).

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


def predict_naive(
    histories: Sequence[np.ndarray], prediction_length: int, season_length: int, n_quantiles: int
) -> dict[str, Forecasts]:
    """Both naive baselines as :class:`Forecasts` (a point forecast at every quantile level)."""
    out = {}
    for name, season in baselines.naive_seasons(season_length).items():
        start = time.perf_counter()
        points = baselines.seasonal_naive(histories, prediction_length, season)
        out[name] = point_forecasts(points, n_quantiles, time.perf_counter() - start)
    return out


def scores(
    forecasts: Forecasts, test_data, quantile_levels: Sequence[float], season_length: int
) -> dict[str, float]:
    """WQL and MASE of one model on one dataset's windows."""
    return window_scores(forecasts, test_data, quantile_levels, season_length)[0]


def window_scores(
    forecasts: Forecasts, test_data, quantile_levels: Sequence[float], season_length: int
) -> tuple[dict[str, float], WindowScores]:
    """WQL and MASE of one model on one dataset's windows, and their per-window parts (bootstrap)."""
    truth = np.stack([np.asarray(entry["target"]) for entry in test_data.label])
    scales = seasonal_errors(history_arrays(test_data), season_length)
    loss, _ = wql_parts(truth, forecasts.quantiles, quantile_levels)
    items = [entry["item_id"] for entry in test_data.input]
    series = np.unique(items, return_inverse=True)[1]
    parts = WindowScores(loss, mase_parts(truth, forecasts.median, scales), series)
    return {
        "wql": wql(truth, forecasts.quantiles, quantile_levels),
        "mase": mase(truth, forecasts.median, scales),
    }, parts


@dataclass
class BenchmarkRun:
    scores: dict[str, dict[str, dict[str, float]]]  # model -> dataset -> {"wql", "mase"}
    windows: dict[str, dict[str, WindowScores]]  # model -> dataset -> per-window parts
    seconds: dict[str, float]  # model -> total prediction time
    n_forecasts: dict[str, int]  # dataset -> forecast windows
    panels: list[dict]  # the first window of the first datasets, for fan charts

    def intervals(self, n_resamples: int, confidence: float, seed: int) -> dict[str, dict[str, list[float]]]:
        """Per model, the bootstrap intervals of its relative WQL and MASE (:func:`metrics.relative_interval`)."""
        base = self.windows[BASELINE]
        return {m: relative_interval(w, base, n_resamples, confidence, seed) for m, w in self.windows.items()}

    @property
    def total_forecasts(self) -> int:
        return sum(self.n_forecasts.values())


def benchmark(
    pipelines: dict,
    datasets: dict[str, HeldoutSet],
    quantile_levels: Sequence[float],
    batch_size: int,
    num_samples: int,
    seed: int,
    *,
    inference: Inference,
    n_panels: int = 0,
) -> BenchmarkRun:
    """The naive baselines and every pipeline on every dataset's held-out windows (:class:`HeldoutSet`)."""
    models = [*baselines.NAIVE, *pipelines]
    run = BenchmarkRun({m: {} for m in models}, {m: {} for m in models}, dict.fromkeys(models, 0.0), {}, [])
    for name, heldout in datasets.items():
        test_data, prediction_length, season = heldout.test_data, heldout.prediction_length, heldout.season_length
        histories = history_arrays(test_data)
        run.n_forecasts[name] = len(histories)
        forecasts = predict_naive(histories, prediction_length, season, len(quantile_levels))
        for model, pipeline in pipelines.items():
            forecasts[model] = predict_chronos(
                pipeline, histories, prediction_length, quantile_levels, batch_size, num_samples, seed,
                inference=inference,
            )  # fmt: skip
        for model, f in forecasts.items():
            run.scores[model][name], run.windows[model][name] = window_scores(f, test_data, quantile_levels, season)
            run.seconds[model] += f.seconds
        if len(run.panels) < n_panels:
            run.panels.append(
                {
                    "title": f"{name}: {next(iter(test_data.input))['item_id']}",
                    "history": histories[0][-4 * prediction_length :],
                    "truth": next(iter(test_data.label))["target"],
                    "forecasts": {m: f.quantiles[0] for m, f in forecasts.items()},
                }
            )
        print(
            f"{name}: {len(histories)} forecasts, "
            + ", ".join(f"{m} wql {run.scores[m][name]['wql']:.3f}" for m in forecasts)
        )
    return run


def relative_summary(per_dataset: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """``per_dataset[model][dataset] = {"wql", "mase"}`` -> per model, the geometric means over datasets
    of the scores relative to the seasonal naive baseline."""
    base = per_dataset[BASELINE]
    out = {}
    for model, by_dataset in per_dataset.items():
        out[model] = {
            f"relative_{metric}": geometric_mean(
                [by_dataset[d][metric] / base[d][metric] for d in by_dataset]
            )
            for metric in ("wql", "mase")
        }
    return out


REAL_PREFIX = "real:"


def load_heldout_series(source: str, name: str, max_series: int | None) -> list[np.ndarray]:
    """Univariate series of a held-out dataset: ``real:NAME`` (a dataset shipped in a package, see
    ``tsfmlab.data.real_series``) or a GluonTS Arrow corpus (each channel of a (D, T) target is a
    series). The first ``max_series`` are kept, in corpus order."""
    from ..data.real_series import load_real_series
    from ..training.chronos_data import load_corpora

    if source.startswith(REAL_PREFIX):
        series = load_real_series([source[len(REAL_PREFIX) :]], f"datasets.{name}.source")
        series = next(iter(series.values()))
    else:
        series = load_corpora([source], min_length=1)[0]
    series = [s for s in series if np.isfinite(s).any()]
    if not series:
        raise DataError(f"dataset {name} ({source}): no series with a finite value")
    return series[:max_series] if max_series else series
