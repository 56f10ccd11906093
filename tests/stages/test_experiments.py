"""Experiments as users run them from a reproduced project: `dvc exp run --queue` two at a time, and
SLURM jobs (a one-node cluster on 127.0.0.1, tests/slurm_cluster.py) collected back into the local
results. They start from a clone of `project` (tests/stages/pipeline_project.py: the smoke profile's
`dvc repro`, made once per test run) that shares its DVC cache."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run, stage_argv
from tests.stages.pipeline_project import downstream, dvc, git_clone, ran_stages

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def experiments(project, tmp_path_factory) -> Path:
    """A clone of the reproduced project, its outputs checked out of the cache it shares with it: the
    experiments here change its git refs and DVC config, not those of the project other tests read."""
    clone = git_clone(project, tmp_path_factory.mktemp("experiments") / "project")
    for ext in (project / "src").rglob("*.so"):  # compiled by the install, not in Git (as in the project)
        shutil.copy2(ext, clone / ext.relative_to(project))
    cache = run(["dvc", "cache", "dir"], cwd=project).stdout.strip()
    dvc("cache", "dir", "--local", cache, cwd=clone)
    dvc("checkout", cwd=clone)
    return clone


#: two experiments run locally through the queue; the first again as a SLURM job (the same metrics, byte
#: for byte)
EXPERIMENTS = {"baseline-seed": "baseline.seed=2", "fewer-kernels": "baseline.n_kernels=840"}
SLURM_EXPERIMENTS = dict(list(EXPERIMENTS.items())[:1])


def follow(repo: Path, name: str, timeout: float = 600) -> str:
    """The output of the queued experiment ``name``, followed until its run ends: `dvc queue logs -f` (one
    process that waits, not a `dvc queue status` every few seconds), once the queue has started it."""
    deadline = time.time() + timeout
    while (proc := dvc("queue", "logs", "-f", name, cwd=repo, check=False)).returncode != 0:
        assert "has not been started" in proc.stderr + proc.stdout and time.time() < deadline, proc.stderr[-2000:]
        time.sleep(1)
    return proc.stdout


def test_queued_experiments_run_two_at_a_time_and_compare(experiments):
    # Two experiments of the MiniRocket baseline (another seed, fewer kernels: other accuracies), side by
    # side (one thread each: numerics.threads). Both are short: the baseline stages and the reports
    # after them. A thread-count change would rerun every stage (results depend on it).
    for name, change in EXPERIMENTS.items():
        dvc("exp", "run", "--queue", "-n", name, "-S", change, cwd=experiments)
    dvc("queue", "start", "-j", "2", cwd=experiments)
    logs = {name: follow(experiments, name) for name in EXPERIMENTS}
    deadline = time.time() + 120  # after its run, each task commits its experiment
    while (status := dvc("queue", "status", cwd=experiments).stdout) and ("Queued" in status or "Running" in status):
        assert time.time() < deadline, f"queue did not finish:\n{status}"
        time.sleep(1)
    assert status.count("Success") >= 2, status
    # incremental: each param change reran exactly its stage and what depends on it (DVC's graph says the
    # same holds for the data stages, e.g. the energy data)
    assert downstream("baseline") == {"baseline", "classification_report", "report"}
    for name, log in logs.items():
        assert ran_stages(log) == downstream("baseline"), f"{name}:\n{log[-3000:]}"
    assert {"finetune_energy", "evaluate_energy", "report"} <= downstream("prepare_energy")
    assert "chronos2" not in downstream("prepare_energy")
    shown = json.loads(dvc("exp", "show", "--json", cwd=experiments).stdout)
    text = json.dumps(shown)
    assert all(name in text for name in EXPERIMENTS) and '"n_kernels": 840' in text
    diff = json.loads(dvc("exp", "diff", "HEAD", "fewer-kernels", "--json", cwd=experiments).stdout)["metrics"]
    changed = [path for path, values in diff.items() if "minirocket" in path and values["accuracy"]["diff"]]
    assert changed, diff  # other kernels, other accuracies
    dvc("queue", "stop", cwd=experiments, check=False)


# --------------------------------------------------------------------------------------------------
# SLURM: a one-node cluster on 127.0.0.1 (tests/slurm_cluster.py), stopped and removed afterwards


@pytest.fixture(scope="module")
def slurm():
    from tests.slurm_cluster import Unavailable, start

    try:
        cluster = start()
    except Unavailable as err:
        pytest.skip(f"no SLURM cluster here: {err}")
    try:
        yield cluster
    finally:
        cluster.stop()


def exp_refs(repo: Path) -> dict[str, str]:
    refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=repo).stdout.split()
    return {ref.rsplit("/", 1)[1]: ref for ref in refs}


def test_experiments_submitted_as_slurm_jobs_collect_to_the_local_results(experiments, slurm, tmp_path):
    import sys

    from tests.conftest import tool_env

    env = {**tool_env(), "SLURM_CONF": slurm.env["SLURM_CONF"]}
    bare = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(bare)], cwd=tmp_path)
    run(["git", "remote", "add", "slurm-origin", str(bare)], cwd=experiments)
    run(["git", "push", "-q", "slurm-origin", "HEAD:refs/heads/main"], cwd=experiments)
    dvc("remote", "add", "--local", "-f", "slurm-store", str(tmp_path / "store"), cwd=experiments)
    dvc("push", "-r", "slurm-store", cwd=experiments)
    submitted = {f"slurm-{name}": change for name, change in SLURM_EXPERIMENTS.items()}
    submitted["slurm-broken"] = "baseline.seed=oops"  # a valid key, a value its stage refuses on the node
    for name, change in submitted.items():
        cmd = [sys.executable, "-m", "tsfmlab.cluster", "submit", "-n", name, "-S", change,
               "--git-remote", "slurm-origin", "--dvc-remote", "slurm-store", "--sbatch-arg=--time=30"]  # fmt: skip
        assert "submitted" in run(cmd, cwd=experiments, env=env).stdout
    jobs = json.loads((experiments / ".cluster/jobs.json").read_text())
    assert "dvc pull --quiet data/features/teacher data/ucr" in (experiments / jobs[0]["script"]).read_text()
    states = {job["name"]: slurm.wait_job(job["job_id"]) for job in jobs}
    logs = {name: (experiments / f".cluster/logs/{name}.log").read_text() for name in submitted}
    expected = {"slurm-baseline-seed": "COMPLETED", "slurm-broken": "FAILED"}
    assert states == expected, f"{states}\n{logs}\n{slurm.logs()}"
    # the failed job kept its log, naming the param, and pushed nothing
    assert "baseline.seed" in logs["slurm-broken"]
    pushed = run(["git", "ls-remote", str(bare)], cwd=experiments).stdout
    assert "slurm-baseline-seed" in pushed and "slurm-broken" not in pushed
    listed = run([sys.executable, "-m", "tsfmlab.cluster", "list"], cwd=experiments, env=env).stdout
    assert "slurm-broken" in listed and "FAILED" in listed
    collected = run([sys.executable, "-m", "tsfmlab.cluster", "collect", "--git-remote", "slurm-origin"],
                    cwd=experiments, env=env).stdout  # fmt: skip
    assert "slurm-baseline-seed: collected" in collected and "slurm-broken: FAILED" in collected
    shown = json.dumps(json.loads(dvc("exp", "show", "--json", cwd=experiments).stdout))
    assert "slurm-baseline-seed" in shown
    # the same params run here give the same metrics, byte for byte
    refs = exp_refs(experiments)
    metrics = run(["git", "ls-files", "metrics"], cwd=experiments).stdout.split()
    for name, change in SLURM_EXPERIMENTS.items():
        if name not in refs:  # the queue test made them; run alone, make them here
            dvc("exp", "run", "-n", name, "-S", change, cwd=experiments)
            refs = exp_refs(experiments)
        for path in metrics:
            mine = run(["git", "show", f"{refs[name]}:{path}"], cwd=experiments).stdout
            theirs = run(["git", "show", f"{refs['slurm-' + name]}:{path}"], cwd=experiments).stdout
            assert mine == theirs, f"{name}: {path} differs between the local and the SLURM run"


def test_a_training_stage_on_two_processes_through_srun(slurm, tmp_path):
    from tests.training.test_torchrun_training import teacher_work

    work = teacher_work(tmp_path / "work", procs=2)
    job = work / "job.sh"
    job.write_text(
        f"#!/bin/bash\nset -euo pipefail\nexport PYTHONPATH={REPO / 'src'} OMP_NUM_THREADS=1\n"
        f"python -m tsfmlab.launch teacher {REPO / 'stages' / 'teacher.py'} {' '.join(stage_argv('teacher'))}\n"
    )
    from tests.conftest import tool_env

    env = {**tool_env(), "SLURM_CONF": slurm.env["SLURM_CONF"]}
    proc = run(["sbatch", "--parsable", f"--output={work / 'job.log'}", "--cpus-per-task=2", str(job)], cwd=work, env=env)
    state = slurm.wait_job(proc.stdout.strip().split(";")[0])
    log = (work / "job.log").read_text()
    assert state == "COMPLETED", f"{log}\n{slurm.logs()}"
    assert "launch: srun --nodes=1 --ntasks=1 --ntasks-per-node=1 --kill-on-bad-exit=1" in log
    assert log.count("teacher: {") == 2  # both ranks of the srun step trained and reported
    assert (work / "data/models/teacher/model.safetensors").exists()
