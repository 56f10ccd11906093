"""The distill stage on tiny params: a tiny teacher, then distillation, resume and bad input."""

import shutil
from pathlib import Path

import pytest

from tests.conftest import (
    REPO,
    TINY,
    TINY_TRAIN,
    TINY_WINDOWS,
    differing_files,
    kill_at_step,
    run_stage_in_process,
    run_stage_script,
    stage_argv,
    stage_outputs,
    write_params,
)
from tests.stages.test_teacher_stage import TEACHER
from tsfmlab.params import load_params

BASE = load_params(REPO / "params.yaml")["distill"]
DISTILL = {
    **BASE,
    "student": {
        **BASE["student"],
        "overrides": {
            "d_model": 16,
            "d_ff": 32,
            "num_layers": 1,
            "num_decoder_layers": 1,
            "num_heads": 2,
            "d_kv": 8,
        },
    },
    "data": {**BASE["data"], **TINY_WINDOWS},
    "train": {**BASE["train"], **TINY_TRAIN},
}


@pytest.fixture(scope="module")
def with_teacher(tiny_run, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("teacher")
    shutil.copytree(tiny_run / "data", work / "data")
    write_params(work, {**TINY, "teacher": TEACHER})
    run_stage_script("teacher", work)
    return work


def workdir(with_teacher: Path, dest: Path, **changes) -> Path:
    shutil.copytree(with_teacher / "data", dest / "data")
    write_params(dest, {**TINY, "teacher": TEACHER, "distill": {**DISTILL, **changes}})
    return dest


@pytest.fixture(scope="module")
def distilled(with_teacher, tmp_path_factory) -> tuple[Path, str]:
    """The distill stage on DISTILL params, uninterrupted: its directory and output."""
    work = workdir(with_teacher, tmp_path_factory.mktemp("distill"))
    return work, run_stage_script("distill", work).stdout


def test_distill_writes_student_and_every_loss_curve(distilled):
    from chronos import BaseChronosPipeline

    work, out = distilled
    for rel in stage_outputs("distill"):
        assert (work / rel).exists(), rel
    student = BaseChronosPipeline.from_pretrained(work / "data" / "models" / "student")
    assert student.model.config.n_tokens == 64 and student.model.model.config.d_model == 16
    curves = work / "dvclive" / "distill" / "plots" / "metrics"
    for term in ("loss", "task_loss", "distill_loss", "encoder_loss", "decoder_loss"):
        assert len((curves / f"{term}.tsv").read_text().splitlines()) == 1 + 4, term
    assert "'steps': 4" in out


@pytest.fixture(scope="module")
def killed(with_teacher, tmp_path_factory) -> Path:
    """The distill stage killed as step 4 begins (after checkpoint-2 and the logs of step 3); each test
    resumes a copy (checkpoints are keyed by contents, not by the directory)."""
    work = workdir(with_teacher, tmp_path_factory.mktemp("killed"))
    kill_at_step("distill", work, 4)
    assert not (work / "data" / "models" / "student").exists()
    return work


def test_killed_distillation_resumes_to_the_bytes_of_an_uninterrupted_run(distilled, killed, tmp_path):
    work = shutil.copytree(killed, tmp_path / "work")
    out = run_stage_script("distill", work).stdout
    assert "'resumed': True" in out and "'steps': 4" in out
    assert differing_files(work, distilled[0], stage_outputs("distill")) == []


def test_distillation_from_a_retrained_teacher_starts_afresh(killed, tmp_path):
    work = shutil.copytree(killed, tmp_path / "work")
    config = work / "data/models/teacher/config.json"
    config.write_text(config.read_text() + "\n")  # the teacher changed while distill was down
    out = run_stage_script("distill", work).stdout
    assert "'resumed': False" in out and "'steps': 4" in out
    rows = (work / "dvclive/distill/plots/metrics/distill_loss.tsv").read_text().splitlines()[1:]
    assert [int(r.split("\t")[0]) for r in rows] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"loss": {**DISTILL["loss"], "temperature": 0.0}}, "distill.loss.temperature must be > 0"),
        ({"loss": {**DISTILL["loss"], "encoder": -1.0}}, "distill.loss.encoder must be >= 0"),
        (
            {"data": {**DISTILL["data"], "probability": [1.0]}},
            "distill.data.training_data_paths and distill.data.probability differ in length",
        ),
        ({"student": {**DISTILL["student"], "model_id": "huge"}}, "model_id 'huge' with random_init"),
        ({"teacher_id": "data/models/none"}, "data/models/none"),
    ],
)
def test_bad_input_fails_before_training(with_teacher, tmp_path, changes, message):
    work = workdir(with_teacher, tmp_path, **changes)
    proc = run_stage_in_process("distill", work)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-1500:]
    assert not (work / "data" / "models" / "student").exists() and not (work / "metrics").exists()


def test_distill_under_torchrun_writes_outputs_once(with_teacher, tmp_path):
    from tests.training.test_ddp_distillation import torchrun

    work = workdir(with_teacher, tmp_path, launch={"nodes": 1, "procs_per_node": 2})
    out = torchrun([str(REPO / "stages" / "distill.py"), *stage_argv("distill")], cwd=work).stdout
    for rel in stage_outputs("distill"):
        assert (work / rel).exists(), rel
    rows = (work / "dvclive/distill/plots/metrics/distill_loss.tsv").read_text().splitlines()
    assert len(rows) == 1 + 4  # rank 0 logged each of the 4 steps once
    assert out.count("'steps': 4") == 1  # the summary line comes from rank 0 only
