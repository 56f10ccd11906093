"""The classification stages on tiny params: prepare_ucr, extract_features, classify (every head),
baseline and classification_report; no TEST leakage; bad input fails before any output."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import (
    REPO,
    differing_files,
    run_stage_in_process,
    run_stage_script,
    section_params,
    tiny_chronos,
    write_params,
)

GRID = {"datasets": ["ItalyPowerDemand", "BasicMotions"], "encoders": {"tiny": "data/models/tiny"},
        "heads": ["mlp_frozen", "mlp_finetune", "catboost"]}  # fmt: skip
SMALL_MLP = {"epochs": 15, "patience": 5, "hidden_sizes": [8]}
PARAMS = {
    "classification": GRID,
    "classify": {
        "mlp_frozen": section_params("classify")["mlp_frozen"] | SMALL_MLP,
        "mlp_finetune": {
            **section_params("classify")["mlp_finetune"],
            "finetune_epochs": 2,
            "head": section_params("classify")["mlp_finetune"]["head"] | SMALL_MLP,
        },
        "catboost": section_params("classify")["catboost"] | {"iterations": 30, "early_stopping_rounds": 5},
    },
    "baseline": {"n_kernels": 84},
}
CELLS = [(d, "tiny", h) for d in GRID["datasets"] for h in GRID["heads"]]


def write(work: Path, **sections) -> None:
    """These stages' params without the Ti-MAE grid (tests/stages/test_timae_stages.py covers its rows)."""
    from tsfmlab.params import load_params

    base = {k: v for k, v in load_params(REPO / "params.yaml").items() if k != "timae"}
    write_params(work, {**PARAMS, **sections}, base=base)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    from tsfmlab.models.loading import save_pipeline

    work = tmp_path_factory.mktemp("classification")
    write(work)
    save_pipeline(tiny_chronos(context_length=32), work / "data/models/tiny")
    run_stage_script("prepare_ucr", work)
    run_stage_script("extract_features", work, args=("tiny",))
    return work


@pytest.fixture(scope="module")
def classified(prepared, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("classified")
    shutil.copytree(prepared, work, dirs_exist_ok=True)
    for cell in CELLS:
        run_stage_script("classify", work, args=cell)
    for d in GRID["datasets"]:
        run_stage_script("baseline", work, args=(d,))
    run_stage_script("classification_report", work)
    return work


def test_prepare_and_features(prepared):
    info = json.loads((prepared / "reports/ucr.json").read_text())
    assert info["BasicMotions"]["n_channels"] == 6 and info["ItalyPowerDemand"]["n_test"] == 1029
    from safetensors.numpy import load_file

    feats = load_file(str(prepared / "data/features/tiny/BasicMotions.safetensors"))
    assert feats["train"].shape == (32, 6 * 16) and feats["test"].shape == (40, 96)  # channels concatenated
    enc = json.loads((prepared / "data/features/tiny/encoder.json").read_text())
    assert enc["family"] == "chronos-t5" and len(enc["weights_sha256"]) == 64


def test_every_cell_scores_on_test_and_the_report_tabulates_them(classified):
    for d, e, h in CELLS + [(d, "raw", "minirocket") for d in GRID["datasets"]]:
        m = json.loads((classified / f"reports/classify/{d}-{e}-{h}.json").read_text())
        assert 0 <= m["accuracy"] <= 1 and {"balanced_accuracy", "macro_f1"} <= set(m)
        low, high = m["accuracy_interval"]
        assert low <= m["accuracy"] <= high and m["n_test"] == {"ItalyPowerDemand": 1029, "BasicMotions": 40}[d]
        rows = (classified / f"plots/classify/{d}-{e}-{h}.csv").read_text().splitlines()
        assert rows[0] == "actual,predicted" and len(rows) == 1 + m["n_test"]
    for d, e, h in CELLS:
        curve = classified / f"dvclive/classify/{d}-{e}-{h}/plots/metrics/val/loss.tsv"
        steps = [int(r.split("\t")[0]) for r in curve.read_text().splitlines()[1:]]
        assert steps == list(range(len(steps))) and steps, (d, h)  # epochs (iterations) from 0, no repeats
    table = json.loads((classified / "reports/classification.json").read_text())
    assert set(table["mean_accuracy"]) == {
        "tiny-mlp_frozen",
        "tiny-mlp_finetune",
        "tiny-catboost",
        "raw-minirocket",
    }
    assert table["datasets"]["BasicMotions"]["best"] in table["mean_accuracy"]
    assert set(table["mean_accuracy_interval"]) == set(table["mean_accuracy"])
    markdown = (classified / "reports/classification.md").read_text()
    for d, e, h in CELLS + [(d, "raw", "minirocket") for d in GRID["datasets"]]:
        m = json.loads((classified / f"reports/classify/{d}-{e}-{h}.json").read_text())
        cell = table["datasets"][d]["cells"][f"{e}-{h}"]
        assert cell["accuracy_interval"] == m["accuracy_interval"]
        low, high = m["accuracy_interval"]
        assert f"{m['accuracy']:.3f} [{low:.3f}, {high:.3f}]" in markdown
    assert (classified / "plots/classification.png").stat().st_size > 0


def test_poisoned_test_split_leaves_training_identical(classified, tmp_path):
    """TEST labels (and series) replaced: every training curve is unchanged; only the scores move."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    work = tmp_path / "poisoned"
    shutil.copytree(classified, work)
    path = work / "data/ucr/ItalyPowerDemand.safetensors"
    arrays = load_file(str(path))
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    arrays["y_test"] = 1 - arrays["y_test"]
    save_file(arrays, str(path), metadata=meta)
    for cell in [c for c in CELLS if c[0] == "ItalyPowerDemand"]:
        run_stage_script("classify", work, args=cell)
        name = "-".join(cell)
        curves = sorted((classified / f"dvclive/classify/{name}/plots/metrics").rglob("*.tsv"))
        assert curves
        for f in curves:
            assert (work / f.relative_to(classified)).read_text() == f.read_text(), f
        old = json.loads((classified / f"reports/classify/{name}.json").read_text())
        new = json.loads((work / f"reports/classify/{name}.json").read_text())
        assert new["accuracy"] == pytest.approx(1 - old["accuracy"], abs=1e-6)


def test_classify_is_deterministic(classified, tmp_path):
    """Run again in its own process (the fixture ran the cells in the test process): the same bytes."""
    work = tmp_path / "again"
    shutil.copytree(classified, work)
    cell = ("BasicMotions", "tiny", "mlp_finetune")
    run_stage_script("classify", work, args=cell, in_process=False)
    name = "-".join(cell)
    outs = [f"reports/classify/{name}.json", f"plots/classify/{name}.csv", f"dvclive/classify/{name}"]
    assert not differing_files(work, classified, outs)


def test_a_report_without_the_accuracy_interval_is_refused(classified, tmp_path):
    work = tmp_path / "stale"
    shutil.copytree(classified, work)
    path = work / "reports/classify/BasicMotions-tiny-catboost.json"
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "accuracy_interval"}))
    proc = run_stage_in_process("classification_report", work)
    assert proc.returncode == 2 and "BasicMotions-tiny-catboost.json: no accuracy_interval" in proc.stderr


def test_changed_encoder_weights_are_refused_by_finetuning(prepared, tmp_path):
    from tsfmlab.models.loading import save_pipeline

    work = tmp_path / "changed"
    shutil.copytree(prepared, work)
    save_pipeline(tiny_chronos(context_length=32, seed=5), work / "data/models/tiny")
    proc = run_stage_in_process("classify", work, args=("BasicMotions", "tiny", "mlp_finetune"))
    assert proc.returncode == 2 and "weights differ from those" in proc.stderr


def test_unknown_dataset_fails_before_any_output(tmp_path):
    write(tmp_path, classification=GRID | {"datasets": ["GunPoint", "NoSuchSet"]})
    proc = run_stage_in_process("prepare_ucr", tmp_path)
    assert (
        proc.returncode == 2 and "unknown dataset 'NoSuchSet'" in proc.stderr and "local_dir" in proc.stderr
    )
    assert not (tmp_path / "data/ucr").exists() and not (tmp_path / "reports/ucr.json").exists()


def test_unknown_encoder_and_bad_param_types(prepared, tmp_path):
    proc = run_stage_in_process("extract_features", prepared, args=("nope",))
    assert proc.returncode == 2 and "missing param classification.encoders.nope (known: tiny)" in proc.stderr
    write(tmp_path, extract_features={"pooling": "max"})
    shutil.copytree(prepared / "data", tmp_path / "data")
    proc = run_stage_in_process("extract_features", tmp_path, args=("tiny",))
    assert proc.returncode == 2 and "extract_features.pooling" in proc.stderr


def test_local_archive_by_name(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("TRAIN", 10), ("TEST", 6)):
        rows = [[str(i % 2), *np.round(rng.normal(size=20), 3)] for i in range(n)]
        path = tmp_path / "archive/ECG5000" / f"ECG5000_{split}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    write(tmp_path, classification=GRID | {"datasets": ["ECG5000"]}, prepare_ucr={"local_dir": "archive"})
    run_stage_script("prepare_ucr", tmp_path)
    assert json.loads((tmp_path / "reports/ucr.json").read_text())["ECG5000"]["n_test"] == 6
