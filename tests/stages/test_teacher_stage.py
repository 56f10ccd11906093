"""The teacher stage on tiny params: outputs, reloadability, resume after interruption, bad input."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import (
    REPO,
    TINY,
    differing_files,
    kill_at_step,
    run_stage_in_process,
    run_stage_script,
    stage_outputs,
    write_params,
)
from tsfmlab.params import load_params

BASE = load_params(REPO / "params.yaml")["teacher"]
TEACHER = {
    "model": {
        **BASE["model"],
        "overrides": {
            "d_model": 32,
            "d_ff": 64,
            "num_layers": 1,
            "num_decoder_layers": 1,
            "num_heads": 2,
            "d_kv": 16,
        },
    },
    "tokenizer": {**BASE["tokenizer"], "context_length": 32, "prediction_length": 8, "n_tokens": 64},
    "data": {**BASE["data"], "min_past": 8, "shuffle_buffer_length": 10},
    "train": {
        **BASE["train"],
        "max_steps": 4,
        "save_steps": 2,
        "log_steps": 1,
        "per_device_train_batch_size": 4,
    },
}


def workdir(tiny_run: Path, dest: Path, **teacher) -> Path:
    shutil.copytree(tiny_run / "data", dest / "data")
    write_params(dest, {**TINY, "teacher": {**TEACHER, **teacher}})
    return dest


@pytest.fixture(scope="module")
def trained(tiny_run, tmp_path_factory) -> Path:
    """The teacher trained from scratch on TEACHER params, uninterrupted."""
    work = workdir(tiny_run, tmp_path_factory.mktemp("teacher"))
    run_stage_script("teacher", work)
    return work


def test_teacher_from_scratch_writes_a_loadable_model(trained):
    from chronos import BaseChronosPipeline

    work = trained
    for rel in stage_outputs("teacher"):
        assert (work / rel).exists(), rel
    pipeline = BaseChronosPipeline.from_pretrained(work / "data" / "models" / "teacher")
    assert pipeline.model.config.context_length == 32 and pipeline.model.config.n_tokens == 64
    loss_rows = (work / "dvclive" / "teacher" / "plots" / "metrics" / "loss.tsv").read_text().splitlines()
    assert len(loss_rows) == 1 + 4  # header + one row per logged step
    assert not (
        work / "dvclive" / "teacher" / "metrics.json"
    ).exists()  # curves only: metrics are the stage's
    assert not (work / ".checkpoints" / "teacher").exists() or not any(
        (work / ".checkpoints" / "teacher").iterdir()
    )


def test_killed_training_resumes_to_the_bytes_of_an_uninterrupted_run(trained, tiny_run, tmp_path):
    work = workdir(tiny_run, tmp_path)
    kill_at_step("teacher", work, 4)  # after checkpoint-2 and the logs of step 3
    assert not (work / "data" / "models" / "teacher").exists()
    assert [p.name for p in (work / ".checkpoints/teacher").glob("*/checkpoint-*")] == ["checkpoint-2"]
    rows = (work / "dvclive/teacher/plots/metrics/loss.tsv").read_text().splitlines()[1:]
    assert [int(r.split("\t")[0]) for r in rows] == [1, 2, 3]
    # resumed in a process of its own: also the proof that `trained`, run in the test process, wrote the
    # bytes of a stage process (conftest.IN_PROCESS)
    out = run_stage_script("teacher", work, in_process=False).stdout
    assert "'resumed': True" in out and "'steps': 4" in out
    assert differing_files(work, trained, stage_outputs("teacher")) == []


def test_teacher_from_a_local_checkpoint(shared_dir, tiny_run, tmp_path):
    source = shared_dir / "fixtures" / "chronos" / "dummy-chronos-model"
    work = workdir(tiny_run, tmp_path, model={**TEACHER["model"], "source": str(source)})
    run_stage_script("teacher", work)
    assert (work / "data" / "models" / "teacher" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "section, change, message",
    [
        ("model", {"source": "amazon/chronos-t5-nonexistent"}, "'amazon/chronos-t5-nonexistent' is neither"),
        ("tokenizer", {"context_length": 0}, "teacher.tokenizer.context_length must be > 0"),
        (
            "data",
            {"training_data_paths": ["data/nowhere", "data/kernelsynth/train", "data/dysts/train"]},
            "data/nowhere: corpus not found",
        ),
        ("data", {"probability": [0.5, 0.5]}, "differ in length"),
        ("train", {"learning_rate": -1.0}, "teacher.train.learning_rate must be > 0"),
    ],
)
def test_bad_input_fails_before_training(tiny_run, tmp_path, section, change, message):
    work = workdir(tiny_run, tmp_path, **{section: {**TEACHER[section], **change}})
    proc = run_stage_in_process("teacher", work)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
    assert not (work / "data" / "models").exists() and not (work / "metrics").exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate", "truncated"),
        ("unindexed", "not indexed: ['part-00000-00009.arrow']"),
        ("index", "corrupted or not a corpus index"),
    ],
)
def test_a_damaged_corpus_fails_before_training(tiny_run, tmp_path, damage, message):
    """A truncated shard, a shard the index does not list, an unreadable index: one error naming the
    file, before any training, and no outputs."""
    from tsfmlab.data.arrow_io import write_series

    work = workdir(tiny_run, tmp_path)
    corpus = work / "data" / "kernelsynth" / "train"
    shard = next(corpus.glob("part-*.arrow"))
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:-64])
    elif damage == "unindexed":
        write_series([{"target": np.ones(100)}], corpus / "part-00000-00009.arrow")
    else:
        next(corpus.glob("_index-*.npy")).write_bytes(b"\0" * 64)
    proc = run_stage_in_process("teacher", work)
    assert proc.returncode == 2 and message in proc.stderr and "kernelsynth/train" in proc.stderr, proc.stderr[-2000:]
    assert not (work / "data" / "models").exists() and not (work / "metrics").exists()
