"""Scores next to the published ones: the Chronos aggregate, the comparison table, bad input."""

import json
import math

import pytest

from tsfmlab.errors import DataError
from tsfmlab.evaluation.published import aggregate, compare, main, read_results


def write_csv(path, model, rows):
    lines = ["dataset,model,MASE,WQL"] + [f"{d},{model},{mase},{wql}" for d, mase, wql in rows]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def published(tmp_path):
    write_csv(tmp_path / "chronos-t5-small-zero-shot.csv", "amazon/chronos-t5-small",
              [("a", 0.8, 0.2), ("b", 1.5, 0.3), ("z", 1.0, 0.1)])  # fmt: skip
    write_csv(tmp_path / "seasonal-naive-zero-shot.csv", "seasonal-naive",
              [("a", 1.0, 0.4), ("b", 1.0, 0.1), ("z", 1.0, 0.1)])  # fmt: skip
    return tmp_path


def report(scores):
    """An evaluate_forecast report holding only per-dataset scores: ``{dataset: {model: (wql, mase)}}``."""
    return {
        "datasets": {
            d: {"n_forecasts": 1, **{m: {"wql": w, "mase": s} for m, (w, s) in by_model.items()}}
            for d, by_model in scores.items()
        }
    }


def test_aggregate_is_the_geometric_mean_of_ratios():
    model = {"a": {"wql": 0.2, "mase": 0.8}, "b": {"wql": 0.3, "mase": 1.5}}
    base = {"a": {"wql": 0.4, "mase": 1.0}, "b": {"wql": 0.1, "mase": 1.0}}
    got = aggregate(model, base, ["a", "b"])
    assert got["relative_wql"] == pytest.approx(math.sqrt(0.5 * 3.0))  # 1.2247
    assert got["relative_mase"] == pytest.approx(math.sqrt(0.8 * 1.5))  # 1.0954


def test_compare_hand_checked(published):
    ours = report({
        "a": {"seasonal_naive": (0.4, 1.0), "small": (0.1, 0.5)},
        "b": {"seasonal_naive": (0.1, 1.0), "small": (0.2, 1.0)},
        "solar": {"seasonal_naive": (0.2, 1.0), "small": (0.9, 2.0)},  # not in the benchmark: left out
    })  # fmt: skip
    result = compare(ours, "small", published, "chronos-t5-small", "zero-shot")
    assert list(result["datasets"]) == ["a", "b"] and result["missing"] == ["z"]
    assert result["datasets"]["a"]["published"] == {"wql": 0.2, "mase": 0.8}
    assert result["datasets"]["b"]["seasonal_naive_ours"] == {"wql": 0.1, "mase": 1.0}
    # ours: a 0.1 / 0.4 = 0.25, b 0.2 / 0.1 = 2 -> sqrt(0.5); published over the same two datasets
    assert result["aggregate"]["ours"]["relative_wql"] == pytest.approx(math.sqrt(0.5))
    assert result["aggregate"]["ours"]["relative_mase"] == pytest.approx(math.sqrt(0.5))
    assert result["aggregate"]["published"]["relative_wql"] == pytest.approx(math.sqrt(1.5))


def test_bad_input_is_named(published, tmp_path):
    ours = report({"a": {"seasonal_naive": (0.4, 1.0), "small": (0.1, 0.5)}})
    with pytest.raises(DataError, match="chronos-t5-mini-zero-shot.csv"):
        compare(ours, "small", published, "chronos-t5-mini", "zero-shot")
    with pytest.raises(DataError, match="no scores of model 'large'"):
        compare(ours, "large", published, "chronos-t5-small", "zero-shot")
    with pytest.raises(DataError, match="no dataset of the report"):
        compare(report({"q": {"seasonal_naive": (1, 1), "small": (1, 1)}}), "small", published, "chronos-t5-small", "zero-shot")  # fmt: skip
    bad = tmp_path / "bad.csv"
    bad.write_text("name,score\nx,1\n")
    with pytest.raises(DataError, match="bad.csv: not a published results CSV"):
        read_results(bad)
    bad.write_text("dataset,model,MASE,WQL\nx,m,one,0.1\n")
    with pytest.raises(DataError, match="not a number"):
        read_results(bad)


def test_command_line_prints_the_table_and_writes_json(published, tmp_path, capsys):
    path = tmp_path / "forecast.json"
    path.write_text(json.dumps(report({"a": {"seasonal_naive": (0.4, 1.0), "small": (0.1, 0.5)}})))
    out = tmp_path / "published.json"
    main(
        [str(path), str(published), "--model", "small", "--published", "chronos-t5-small", "--json", str(out)]
    )
    text = capsys.readouterr().out
    assert "| a | 0.1000 | 0.2000 | 0.5000 | 0.8000 | 0.4000 / 0.4000 |" in text
    assert "not in the report: b, z" in text
    assert json.loads(out.read_text())["aggregate"]["ours"]["relative_wql"] == pytest.approx(0.25)
    with pytest.raises(SystemExit):
        main(
            [
                str(tmp_path / "missing.json"),
                str(published),
                "--model",
                "small",
                "--published",
                "chronos-t5-small",
            ]
        )
    assert "missing.json: not a readable JSON report" in capsys.readouterr().err


@pytest.mark.parametrize("benchmark", ["zero-shot", "in-domain"])
@pytest.mark.parametrize("model", ["chronos-t5-small", "chronos-t5-large", "chronos-bolt-base"])
def test_aggregate_reproduces_the_published_aggregates(shared_dir, benchmark, model):
    """From chronos-forecasting's published per-dataset results, :func:`aggregate` gives the published
    aggregate relative scores (``{model}-agg-rel-scores.csv``), for both benchmarks."""
    results = shared_dir / "reference" / "chronos_eval_results"
    if not (results / f"{model}-{benchmark}.csv").is_file():
        pytest.skip(f"no published {model} results")
    scores = read_results(results / f"{model}-{benchmark}.csv")
    naive = read_results(results / f"seasonal-naive-{benchmark}.csv")
    got = aggregate(scores, naive, scores)
    lines = (results / f"{model}-agg-rel-scores.csv").read_text().splitlines()[1:]
    expected = {(b, m): float(v) for b, m, v in (line.split(",") for line in lines)}
    assert len(scores) == {"zero-shot": 27, "in-domain": 15}[benchmark]
    assert got["relative_wql"] == pytest.approx(expected[(benchmark, "WQL")], rel=1e-12)
    assert got["relative_mase"] == pytest.approx(expected[(benchmark, "MASE")], rel=1e-12)
