"""``evaluate_forecast``'s scores next to the scores chronos-forecasting publishes for the same tasks.

chronos-forecasting keeps its published results in its repository's ``scripts/evaluation/results/``,
one CSV per model and benchmark, ``{model}-{benchmark}.csv`` with the columns ``dataset, model, MASE,
WQL`` (e.g. ``chronos-t5-small-zero-shot.csv`` and ``seasonal-naive-zero-shot.csv``). ``zero-shot`` is
Benchmark II (27 datasets), ``in-domain`` Benchmark I (15 datasets). The Chronos paper aggregates a
model's scores as the geometric mean, over the benchmark's datasets, of each score divided by seasonal
naive's on the same dataset: :func:`aggregate` does exactly that, with ``evaluate_forecast``'s
:func:`~tsfmlab.evaluation.metrics.geometric_mean`.

``profiles/chronos-zero-shot.yaml`` adds the 27 zero-shot tasks (by hub name, with their published
prediction lengths, offsets and windows) and ``amazon/chronos-t5-small`` to ``evaluate_forecast``.
After that run (online)::

    python -m tsfmlab.evaluation.published reports/forecast.json RESULTS_DIR \\
        --model chronos_t5_small --published chronos-t5-small --benchmark zero-shot

prints, per dataset, our and the published WQL and MASE of the model and of seasonal naive, and both
aggregates over the datasets the two have in common. Seasonal naive agreeing to several digits shows
that the data and the windows are the published ones.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from ..errors import DataError, TsfmlabError
from .forecasting import BASELINE
from .metrics import geometric_mean

METRICS = ("wql", "mase")
#: The published results' name of seasonal naive (its CSV: ``seasonal-naive-{benchmark}.csv``).
PUBLISHED_BASELINE = "seasonal-naive"


def read_results(path: str | Path) -> dict[str, dict[str, float]]:
    """A published results CSV as ``{dataset: {"wql": ..., "mase": ...}}``."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise DataError(f"{path}: cannot read the published results ({err})") from err
    if not rows or not {"dataset", "MASE", "WQL"} <= set(rows[0]):
        raise DataError(f"{path}: not a published results CSV (columns dataset, model, MASE, WQL)")
    try:
        return {r["dataset"]: {"wql": float(r["WQL"]), "mase": float(r["MASE"])} for r in rows}
    except ValueError as err:
        raise DataError(f"{path}: a MASE or WQL value is not a number ({err})") from err


def aggregate(model: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]], datasets) -> dict:
    """``{"relative_wql", "relative_mase"}``: the geometric mean over ``datasets`` of the model's score
    over the baseline's (the Chronos paper's aggregate relative score)."""
    datasets = list(datasets)
    return {
        f"relative_{m}": geometric_mean([model[d][m] / baseline[d][m] for d in datasets]) for m in METRICS
    }


def report_scores(report: dict, model: str) -> dict[str, dict[str, float]]:
    """``evaluate_forecast``'s per-dataset scores of ``model`` (``reports/forecast.json``)."""
    datasets = report.get("datasets")
    if not isinstance(datasets, dict):
        raise DataError("the report has no per-dataset scores (not an evaluate_forecast report)")
    scores = {name: {m: float(d[model][m]) for m in METRICS} for name, d in datasets.items() if model in d}
    if not scores:
        models = sorted({m for d in datasets.values() for m in d if isinstance(d[m], dict)})
        raise DataError(f"the report has no scores of model {model!r}; it has {models}")
    return scores


def compare(report: dict, model: str, results_dir: str | Path, published: str, benchmark: str) -> dict:
    """Per dataset the report's and the published scores of the model and of seasonal naive, and both
    aggregates over the datasets they share."""
    results_dir = Path(results_dir)
    pub_model = read_results(results_dir / f"{published}-{benchmark}.csv")
    pub_base = read_results(results_dir / f"{PUBLISHED_BASELINE}-{benchmark}.csv")
    ours = report_scores(report, model)
    base = report_scores(report, BASELINE)
    shared = [d for d in pub_model if d in pub_base and d in ours and d in base]
    if not shared:
        raise DataError(
            f"no dataset of the report is in the published {benchmark} results; the report has "
            f"{sorted(ours)}, the results {sorted(pub_model)}"
        )
    rows = {
        d: {
            "ours": ours[d],
            "published": pub_model[d],
            "seasonal_naive_ours": base[d],
            "seasonal_naive_published": pub_base[d],
        }
        for d in shared
    }
    return {
        "model": model,
        "published_model": published,
        "benchmark": benchmark,
        "datasets": rows,
        "missing": sorted(d for d in pub_model if d not in shared),
        "aggregate": {
            "ours": aggregate(ours, base, shared),
            "published": aggregate(pub_model, pub_base, shared),
        },
    }


def markdown(result: dict) -> str:
    lines = [
        f"{result['model']} vs published {result['published_model']} ({result['benchmark']})",
        "",
        "| dataset | WQL ours | WQL published | MASE ours | MASE published | seasonal naive WQL ours / published |",
        "|---|---|---|---|---|---|",
    ]
    for d, r in result["datasets"].items():
        lines.append(
            f"| {d} | {r['ours']['wql']:.4f} | {r['published']['wql']:.4f} | {r['ours']['mase']:.4f} | "
            f"{r['published']['mase']:.4f} | {r['seasonal_naive_ours']['wql']:.4f} / "
            f"{r['seasonal_naive_published']['wql']:.4f} |"
        )
    ours, pub = result["aggregate"]["ours"], result["aggregate"]["published"]
    lines += [
        "",
        f"aggregate over {len(result['datasets'])} datasets: relative WQL {ours['relative_wql']:.4f} "
        f"(published {pub['relative_wql']:.4f}), relative MASE {ours['relative_mase']:.4f} "
        f"(published {pub['relative_mase']:.4f})",
    ]
    if result["missing"]:
        lines.append(f"not in the report: {', '.join(result['missing'])}")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tsfmlab.evaluation.published", description=__doc__.split("\n")[0]
    )
    parser.add_argument("report", help="evaluate_forecast's report (reports/forecast.json)")
    parser.add_argument("results_dir", help="chronos-forecasting's scripts/evaluation/results/")
    parser.add_argument("--model", required=True, help="the model's name in evaluate_forecast.models")
    parser.add_argument("--published", required=True, help="its published name, e.g. chronos-t5-small")
    parser.add_argument("--benchmark", default="zero-shot", choices=("zero-shot", "in-domain"))
    parser.add_argument("--json", help="also write the comparison to this file")
    args = parser.parse_args(argv)
    try:
        try:
            report = json.loads(Path(args.report).read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"{args.report}: not a readable JSON report ({err})") from err
        result = compare(report, args.model, args.results_dir, args.published, args.benchmark)
    except TsfmlabError as err:
        print(f"published: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(markdown(result))
    if args.json:
        from ..io.atomic import write_json

        write_json(Path(args.json), result)


if __name__ == "__main__":
    main(sys.argv[1:])
