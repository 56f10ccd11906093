"""tsfmlab.cluster without a cluster: the checks before submitting, the sweep grid, the batch script, the
records, and sbatch refusing or missing (a stand-in ``sbatch`` on PATH). The real SLURM run is in
tests/stages/test_experiments.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, tool_env
from tsfmlab import cluster
from tsfmlab.cluster import ClusterError, exp_grid, launch_nodes, submit


def sh(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A Git + DVC repository with the project's params.yaml, pushed to a bare remote, with a DVC remote."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    sh(["git", "init", "-q", "-b", "main"], root)
    sh(["dvc", "init", "-q"], root)
    sh(["git", "add", "-A"], root)
    sh([*git, "commit", "-q", "-m", "init"], root)
    sh(["git", "init", "-q", "--bare", str(tmp_path / "remote.git")], tmp_path)
    sh(["git", "remote", "add", "origin", str(tmp_path / "remote.git")], root)
    sh(["git", "push", "-q", "origin", "main"], root)
    sh(["dvc", "remote", "add", "-d", "--local", "store", str(tmp_path / "store")], root)
    monkeypatch.setenv("PATH", tool_env()["PATH"])
    return root


def fake_sbatch(tmp_path: Path, monkeypatch, body: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def nothing_written(repo: Path) -> bool:
    return not (repo / ".cluster" / "jobs.json").exists() and not list((repo / ".cluster").rglob("*.sbatch"))


def test_a_sweep_is_a_grid_in_hydra_syntax():
    points = exp_grid(["teacher.train.learning_rate=1e-3,3e-3", "baseline.seed=2", "+x.y=[1,2]"])
    assert points == [
        ["teacher.train.learning_rate=0.001", "baseline.seed=2", "+x.y=[1,2]"],
        ["teacher.train.learning_rate=0.003", "baseline.seed=2", "+x.y=[1,2]"],
    ]
    assert exp_grid([]) == [[]]


def test_the_job_asks_for_the_nodes_its_stages_launch_on(repo):
    assert launch_nodes(repo, []) == 1
    assert launch_nodes(repo, ["teacher.launch.nodes=4"]) == 4
    assert launch_nodes(repo, ["distill.launch={nodes:2,procs_per_node:8}"]) == 2
    # the values of the grid point replace params.yaml's, in either direction
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace(
        "  launch: {nodes: 1, procs_per_node: 1}  # tsfmlab.launch", "  launch: {nodes: 3, procs_per_node: 1}  # tsfmlab.launch"))  # fmt: skip
    assert launch_nodes(repo, []) == 3 and launch_nodes(repo, ["teacher.launch.nodes=1"]) == 1


def test_submit_writes_one_script_per_grid_point_and_records_the_jobs(repo, tmp_path, monkeypatch):
    fake_sbatch(tmp_path, monkeypatch, 'echo "$2" >> "$(dirname "$0")/submitted"; echo 4242')
    jobs = submit(repo, "seeds", ["baseline.seed=2,3"], ["--time=01:00:00"])
    assert [j.name for j in jobs] == ["seeds-1", "seeds-2"] and all(j.job_id == "4242" for j in jobs)
    script = (repo / ".cluster/jobs/seeds-2.sbatch").read_text()
    commit = sh(["git", "rev-parse", "HEAD"], repo).strip()
    assert "#SBATCH --time=01:00:00" in script and "#SBATCH --nodes=1" in script
    assert f"git checkout --quiet --detach {commit}" in script
    assert f"git clone --quiet {tmp_path / 'remote.git'}" in script
    assert f"dvc remote add --local --force --default store {tmp_path / 'store'}" in script
    assert "dvc exp run --pull --allow-missing --name seeds-2 -S baseline.seed=3" in script
    assert f"ln -s {repo / '.cluster/checkpoints/seeds-2'} .checkpoints" in script  # resumed when resubmitted
    assert "dvc pull --quiet" not in script  # this repository has no stage reading part of an output
    # pushed only after the experiment succeeded (set -e), and the run history with it
    assert script.index("set -euo pipefail") < script.index("dvc exp run") < script.index("dvc exp push --run-cache origin seeds-2")
    records = json.loads((repo / ".cluster/jobs.json").read_text())
    assert [r["params"] for r in records] == [["baseline.seed=2"], ["baseline.seed=3"]]
    assert (tmp_path / "bin/submitted").read_text().split() == [str(repo / ".cluster/jobs/seeds-1.sbatch"),
                                                               str(repo / ".cluster/jobs/seeds-2.sbatch")]  # fmt: skip
    # once SLURM has forgotten a job (no scontrol or sacct answer), its log tells
    monkeypatch.setattr(cluster.shutil, "which", lambda name: None)
    assert [r["state"] for r in cluster.list_jobs(repo)] == ["UNKNOWN", "UNKNOWN"]
    (repo / ".cluster/logs/seeds-1.log").write_text(f"...\n{cluster.DONE} seeds-1\n")
    (repo / ".cluster/logs/seeds-2.log").write_text("ERROR: failed to reproduce 'baseline'\n")
    assert [r["state"] for r in cluster.list_jobs(repo)] == ["COMPLETED", "FAILED"]


@pytest.mark.parametrize(
    "change, args, message",
    [
        (None, {"assignments": ["teacher.train.lr=1"]}, "-S teacher.train.lr: not a param of params.yaml"),
        (["git", "remote", "remove", "origin"], {}, "no Git remote 'origin'"),
        (["dvc", "remote", "remove", "--local", "store"], {}, "no DVC remote"),
        (["touch", "params.yaml"], {"dirty": True}, "uncommitted changes"),
        (["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x"], {},
         "is not on the Git remote 'origin': git push origin first"),
        (None, {"name": "a b"}, "-n 'a b'"),
    ],
)  # fmt: skip
def test_bad_submissions_fail_before_anything_is_written(repo, tmp_path, monkeypatch, change, args, message):
    fake_sbatch(tmp_path, monkeypatch, 'touch "$(dirname "$0")/called"; echo 1')
    if change:
        sh(change, repo)
    if args.pop("dirty", False):
        (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "\n# edited\n")
    with pytest.raises(ClusterError, match=message):
        submit(repo, args.get("name", "exp"), args.get("assignments", ["baseline.seed=2"]), [])
    assert nothing_written(repo) and not (tmp_path / "bin/called").exists()


def test_sbatch_refusing_leaves_no_script_and_no_record(repo, tmp_path, monkeypatch):
    fake_sbatch(tmp_path, monkeypatch, 'echo "sbatch: error: invalid partition specified: gpu" >&2; exit 1')
    with pytest.raises(ClusterError, match="sbatch refused exp: sbatch: error: invalid partition"):
        submit(repo, "exp", ["baseline.seed=2"], ["--partition=gpu"])
    assert nothing_written(repo)


def test_no_sbatch_is_an_error_naming_it(repo, monkeypatch):
    monkeypatch.setattr(cluster.shutil, "which", lambda name: None if name == "sbatch" else shutil.which(name))
    with pytest.raises(ClusterError, match="sbatch not found"):
        submit(repo, "exp", [], [])
    assert nothing_written(repo)


def test_the_command_line_reports_errors_with_exit_code_2(repo):
    proc = subprocess.run(
        [sys.executable, "-m", "tsfmlab.cluster", "submit", "-n", "x", "-S", "nope.key=1", "--dry-run"],
        cwd=repo, env=tool_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2 and "cluster: error: -S nope.key: not a param" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "tsfmlab.cluster", "submit", "-n", "x", "-S", "baseline.seed=4", "--dry-run"],
        cwd=repo, env=tool_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0 and "-S baseline.seed=4" in proc.stdout and not (repo / ".cluster").exists()


def test_outputs_read_in_part_are_pulled_whole_by_the_jobs():
    # classify@<cell> and baseline@<dataset> read data/ucr/<dataset>.safetensors: --pull would check out
    # that part alone, and extract_features, which reads data/ucr whole, would then run on it
    # (--allow-missing skips only stages whose inputs are absent)
    whole = cluster.partly_read_outputs(REPO)
    assert "data/ucr" in whole and "data/tsmixup" not in whole and "data/dysts" not in whole  # fev: data/fev/*
