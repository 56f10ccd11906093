"""The data stages as DVC runs them (script + params.yaml in a working directory), on tiny params."""

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.conftest import (
    DATA_STAGES,
    TINY,
    run_stage_in_process,
    run_stage_script,
    stage_outputs,
    write_params,
)


def tree_digest(root: Path, rel_paths: list[str]) -> dict[str, str]:
    digests = {}
    for rel in rel_paths:
        path = root / rel
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            digests[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return digests


@pytest.mark.parametrize("stage", DATA_STAGES)
def test_stage_writes_every_declared_output(tiny_run, stage):
    for rel in stage_outputs(stage):
        path = tiny_run / rel
        assert path.is_file() and path.stat().st_size or any(path.rglob("*")), f"{stage} declares {rel}: missing or empty"


def corpus(path: Path) -> list[dict]:
    from tsfmlab.data.arrow_io import read_series

    return read_series(path)


def fev_items(pattern: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return [row for f in sorted(pattern.parent.glob(pattern.name)) for row in pq.read_table(f).to_pylist()]


def test_the_corpora_hold_what_the_params_ask(tiny_run):
    """Series counts, lengths and splits as TINY sets them; every value finite; the held-out series in
    fev's schema are exactly the test split's channels (dysts) and items (kernelsynth)."""
    import json

    import numpy as np

    dysts, ks, mix = TINY["generate_dysts"], TINY["kernelsynth"], TINY["build_mixups"]
    splits = json.loads((tiny_run / "data/dysts/systems.json").read_text())
    assert not set(splits["train"]) & set(splits["test"]) and set(splits["train"]) | set(splits["test"]) <= set(dysts["systems"])
    assert splits["test"], "no held-out system"
    test_channels = 0
    for split in ("train", "test"):
        entries = corpus(tiny_run / "data/dysts" / split)
        assert entries and {e["system"] for e in entries} <= set(splits[split]), split
        for e in entries:
            x = np.atleast_2d(e["target"])
            assert x.shape[1] == dysts["length"] and np.isfinite(x).all(), e["system"]
            test_channels += len(x) if split == "test" else 0
    held_out = fev_items(tiny_run / "data/fev/dysts_test/*.parquet")
    assert len(held_out) == test_channels and all(len(i["target"]) == dysts["length"] for i in held_out)

    train = corpus(tiny_run / "data/kernelsynth/train")
    assert len(train) == ks["n_series"] and all(len(e["target"]) == ks["length"] for e in train)
    assert all(np.isfinite(e["target"]).all() for e in train)
    test = fev_items(tiny_run / "data/fev/kernelsynth_test/*.parquet")
    assert len(test) == ks["n_heldout"] and all(len(i["target"]) == ks["length"] for i in test)
    train_values = {tuple(np.round(e["target"], 5)) for e in train}
    assert not {tuple(np.round(np.asarray(i["target"], np.float32), 5)) for i in test} & train_values  # held out

    mixups = corpus(tiny_run / "data/tsmixup")
    assert len(mixups) == mix["n_series"]
    assert all(mix["min_length"] <= len(e["target"]) <= mix["max_length"] and np.isfinite(e["target"]).all() for e in mixups)

    heldout = TINY["prepare_heldout"]
    for name in heldout["real"]:
        assert fev_items(tiny_run / "data/fev/heldout" / f"{name}.parquet")
    for config in heldout["benchmark"]:
        items = fev_items(tiny_run / "data/fev/mirror" / config / "data.parquet")
        assert len(items) == 181 if config == "monash_m1_yearly" else items  # M1 yearly: 181 series


def test_outputs_are_byte_identical_across_runs_and_worker_counts(tiny_run, tmp_path):
    write_params(tmp_path, TINY)
    for stage in DATA_STAGES:
        run_stage_script(stage, tmp_path, TSFMLAB_N_JOBS="2")
    outs = [rel for stage in DATA_STAGES for rel in stage_outputs(stage)]
    first, second = tree_digest(tiny_run, outs), tree_digest(tmp_path, outs)
    assert first == second
    assert any(k.endswith(".arrow") for k in first)


@pytest.mark.parametrize(
    "stage, overrides, message",
    [
        ("generate_dysts", {"systems": ["Lorenz", "NotASystem"]}, "unknown dysts system 'NotASystem'"),
        (
            "generate_dysts",
            {"test_fraction": 1.5},
            "generate_dysts.test_fraction must be in the open interval",
        ),
        ("generate_dysts", {"length": 0}, "generate_dysts.length must be >= 2"),
        (
            "generate_dysts",
            {"n_param_perturbations": "2"},
            "generate_dysts.n_param_perturbations must be int",
        ),
        ("kernelsynth", {"n_series": -4}, "kernelsynth.n_series must be > 0"),
        ("kernelsynth", {"max_kernels": 0}, "kernelsynth.max_kernels must be > 0"),
        (
            "build_mixups",
            {"real_datasets": ["m4_hourly"]},
            "build_mixups.real_datasets: unknown real dataset",
        ),
        ("build_mixups", {"n_series": 0}, "build_mixups.n_series must be > 0"),
        ("prepare_heldout", {"real": ["solar", "airline"]}, "prepare_heldout.real: ['airline'] mixed into training"),
        ("prepare_heldout", {"benchmark": ["monash_m4_daily"]}, "prepare_heldout.benchmark: unknown dataset(s)"),
    ],
)
def test_bad_params_fail_fast_without_outputs(tmp_path, stage, overrides, message):
    write_params(tmp_path, {s: {**v, **(overrides if s == stage else {})} for s, v in TINY.items()})
    proc = run_stage_in_process(stage, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing partial


def test_corrupted_arrow_input_is_named(tiny_run, tmp_path):
    for rel in ("data", "params.yaml"):
        src = tiny_run / rel
        shutil.copytree(src, tmp_path / rel) if src.is_dir() else shutil.copy(src, tmp_path / rel)
    shutil.rmtree(tmp_path / "data" / "tsmixup")
    shard = next((tmp_path / "data" / "kernelsynth" / "train").glob("*.arrow"))
    shard.write_bytes(shard.read_bytes()[: len(shard.read_bytes()) // 2])
    proc = run_stage_in_process("build_mixups", tmp_path)
    assert proc.returncode == 2
    assert str(shard.relative_to(tmp_path)) in proc.stderr and "corrupted" in proc.stderr
    assert not (tmp_path / "data" / "tsmixup").exists() and not (tmp_path / "metrics").exists()


def test_missing_input_corpus_is_named(tmp_path):
    write_params(tmp_path, TINY)
    proc = run_stage_in_process("build_mixups", tmp_path)
    assert proc.returncode == 2 and "data/dysts/systems.json" in proc.stderr
