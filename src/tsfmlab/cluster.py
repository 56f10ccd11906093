"""Experiments as SLURM batch jobs, collected back with DVC.

SLURM schedules, DVC records: this module writes one ``sbatch`` script per experiment (per grid point of
a ``-S`` sweep), submits it, and remembers the job ids. Each job

1. clones the Git remote at the submitted commit into a scratch directory (removed when the job ends),
2. runs ``dvc exp run --pull --allow-missing -n NAME -S …``: stages the experiment does not change are
   skipped (their outputs stay on the DVC remote), the others pull their inputs and run, training
   stages through :mod:`tsfmlab.launch` (``srun … torchrun`` when a stage asks for several processes);
   outputs that a stage reads only in part are pulled whole first (:func:`partly_read_outputs`),
3. and only if that succeeded, ``dvc exp push --run-cache`` to the Git remote (the experiment's ref) and
   the DVC remote (its outputs and run history).

A failed job leaves its log and pushes nothing; the training checkpoints of the experiment live in
``.cluster/checkpoints/NAME`` (the job's ``.checkpoints`` links there), so submitting the same name
again resumes training from the last complete checkpoint. ``collect`` then ``dvc exp pull``s every finished
experiment, so ``dvc exp show`` compares them with local ones.

    python -m tsfmlab.cluster submit -n lr -S teacher.train.learning_rate=1e-3,3e-3 --sbatch-arg=--gres=gpu:8
    python -m tsfmlab.cluster list
    python -m tsfmlab.cluster collect
    python -m tsfmlab.cluster log lr-1

Records live in ``.cluster/`` of the repository (ignored by Git): ``jobs.json``, the scripts and the
logs. The logs are written by the nodes, so ``.cluster/`` (the checkout) must be on a filesystem the
nodes share, as must the Python environment the job uses (the submitting one, or ``--setup``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import TsfmlabError
from .io.atomic import write_text as atomic_write_text
from .params import load_params
from .profile import is_param, leaves

STATE_DIR = ".cluster"
DONE = "tsfmlab-cluster: pushed"  # the job's last line once the experiment is on both remotes
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
         "DEADLINE"}  # fmt: skip
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class ClusterError(TsfmlabError):
    """A submission that cannot go out as asked (nothing was submitted or written)."""


@dataclass
class Job:
    name: str  # the DVC experiment's name
    job_id: str
    commit: str
    params: list[str]  # the -S arguments
    script: str  # relative to the repository
    log: str
    submitted: str  # ISO time
    collected: bool = False


# ---------------------------------------------------------------------------------------------------
# Git, DVC and SLURM facts, each checked before anything is written


def _run(cmd: list[str], cwd: Path, what: str) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as err:
        raise ClusterError(f"{what}: {cmd[0]} not found") from err
    if proc.returncode != 0:
        raise ClusterError(f"{what}: `{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip()[-1500:]}")
    return proc.stdout


def git_remote_url(repo: Path, remote: str) -> str:
    proc = subprocess.run(["git", "remote", "get-url", remote], cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(f"no Git remote {remote!r} (the jobs clone from it and push to it): git remote add {remote} URL")
    return proc.stdout.strip()


def check_commit_on_remote(repo: Path, remote: str, commit: str) -> None:
    """The jobs clone the remote: the commit must be reachable from one of its refs, and the work tree
    must be that commit (uncommitted changes would not reach the jobs)."""
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], repo, "git status").strip()
    if dirty:
        raise ClusterError(f"uncommitted changes would not reach the jobs; commit them first:\n{dirty}")
    refs = _run(["git", "ls-remote", remote], repo, f"Git remote {remote!r}").split()
    tips = set(refs[0::2])
    for tip in tips:
        if tip == commit or subprocess.run(
            ["git", "merge-base", "--is-ancestor", commit, tip], cwd=repo, capture_output=True
        ).returncode == 0:  # fmt: skip
            return
    raise ClusterError(f"commit {commit[:12]} is not on the Git remote {remote!r}: git push {remote} first")


def dvc_remote(repo: Path, name: str | None) -> tuple[str, str]:
    """The DVC remote the jobs pull from and push to: ``name``, or the default one. (name, url)"""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        config = dvc_repo.config
        remotes = {k: v.get("url", "") for k, v in config.get("remote", {}).items()}
        default = config.get("core", {}).get("remote")
    name = name or default
    if name is None:
        raise ClusterError("no DVC remote: the jobs need one they can reach (dvc remote add -d NAME URL)")
    if name not in remotes:
        raise ClusterError(f"no DVC remote {name!r} (known: {', '.join(remotes) or 'none'})")
    return name, remotes[name]


def partly_read_outputs(repo: Path) -> list[str]:
    """Directory outputs that some stage depends on only in part (``data/dysts/test`` of ``data/dysts``).

    ``dvc exp run --pull`` checks out just that part, after which the directory exists with another hash
    than ``dvc.lock`` records: ``--allow-missing`` then no longer skips the stages that read it whole,
    and they run on a partial input. The job pulls these outputs whole first."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        root = dvc_repo.root_dir
        outs = {os.path.relpath(o.fs_path, root) for s in dvc_repo.index.stages for o in s.outs}
        deps = {os.path.relpath(d.fs_path, root) for s in dvc_repo.index.stages for d in s.deps}
    return sorted(o for o in outs if any(d.startswith(o + os.sep) for d in deps))


def check_params(assignments: list[str], repo: Path) -> None:
    """Every ``-S`` key is a param of params.yaml (``+key`` adds one, as in DVC)."""
    params = leaves(load_params(repo / "params.yaml"))
    for text in assignments:
        key, sep, _ = text.partition("=")
        if not sep:
            raise ClusterError(f"-S {text!r}: expected key=value")
        if key.startswith("+"):
            continue
        key = key.split(":", 1)[1] if ":" in key else key
        if not is_param(key, params):
            raise ClusterError(f"-S {key}: not a param of params.yaml")


def exp_grid(assignments: list[str]) -> list[list[str]]:
    """The grid points of a ``-S`` sweep (Hydra's override grammar, as DVC reads ``-S``): ``a=1,2 -S b=x``
    gives ``[a=1, b=x]`` and ``[a=2, b=x]``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        overrides = OverridesParser.create().parse_overrides(assignments)
    except HydraException as err:
        raise ClusterError(f"-S: {err}") from err
    axes = []
    for text, override in zip(assignments, overrides):
        key = text.partition("=")[0]
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [text.partition("=")[2]]
        axes.append([f"{key}={v}" for v in values])
    return [list(point) for point in itertools.product(*axes)]


def launch_nodes(repo: Path, assignments: list[str]) -> int:
    """The most nodes a training stage of the experiment asks for: its ``launch.nodes`` once the
    (non-sweep) ``-S`` values of one grid point are applied to params.yaml."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = load_params(repo / "params.yaml")
    for override in OverridesParser.create().parse_overrides(assignments):
        *path, last = override.key_or_group.split(":")[-1].split(".")
        node = params
        for part in path:
            node = node.setdefault(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node[last] = override.value()
    nodes = [s["launch"].get("nodes", 1) for s in params.values() if isinstance(s, dict) and isinstance(s.get("launch"), dict)]
    return max((int(n) for n in nodes), default=1)


# ---------------------------------------------------------------------------------------------------
# the batch script


def batch_script(
    name: str, commit: str, git_url: str, remote: tuple[str, str], assignments: list[str], log: Path,
    nodes: int, sbatch_args: list[str], setup: str, extensions: list[Path], checkpoints: Path,
    whole: list[str],
) -> str:  # fmt: skip
    q = shlex.quote
    directives = [f"--job-name=tsfmlab-{name}", f"--output={log}", f"--nodes={nodes}"]
    if any(a.startswith(("--nodes", "-N")) for a in sbatch_args):
        directives = directives[:2]
    directives += sbatch_args
    sets = " ".join(f"-S {q(a)}" for a in assignments)
    copies = "\n".join(f"cp {q(str(p))} src/tsfmlab/" for p in extensions)
    pull_whole = f"dvc pull --quiet {' '.join(q(w) for w in whole)}  # read in part by stages" if whole else ""
    return f"""#!/bin/bash
{chr(10).join(f"#SBATCH {d}" for d in directives)}
# DVC experiment {name} at commit {commit}, written by `python -m tsfmlab.cluster submit`.
set -euo pipefail
{setup}
export DVC_NO_ANALYTICS=1 TSFMLAB_NO_PROGRESS=1
scratch="$(mktemp -d "${{TSFMLAB_SCRATCH:-${{TMPDIR:-/tmp}}}}/tsfmlab-{name}.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
echo "tsfmlab-cluster: job $SLURM_JOB_ID on $(hostname), experiment {name}, commit {commit}"
git clone --quiet {q(git_url)} "$scratch/repo"
cd "$scratch/repo"
git checkout --quiet --detach {commit}
git config user.name "${{GIT_AUTHOR_NAME:-tsfmlab-cluster}}"
git config user.email "${{GIT_AUTHOR_EMAIL:-tsfmlab-cluster@localhost}}"
export PYTHONPATH="$PWD/src${{PYTHONPATH:+:$PYTHONPATH}}"  # this commit's library, not the installed one
{copies}
dvc remote add --local --force --default {q(remote[0])} {q(remote[1])}
mkdir -p {q(str(checkpoints))} && ln -s {q(str(checkpoints))} .checkpoints  # a resubmitted job resumes
{pull_whole}
dvc exp run --pull --allow-missing --name {q(name)} {sets}
dvc exp push --run-cache origin {q(name)}
echo "{DONE} {name}"
"""


# ---------------------------------------------------------------------------------------------------
# records


def state_dir(repo: Path) -> Path:
    return repo / STATE_DIR


def load_jobs(repo: Path) -> dict[str, Job]:
    path = state_dir(repo) / "jobs.json"
    if not path.exists():
        return {}
    return {j["name"]: Job(**j) for j in json.loads(path.read_text())}


def save_jobs(repo: Path, jobs: dict[str, Job]) -> None:
    atomic_write_text(state_dir(repo) / "jobs.json", json.dumps([asdict(j) for j in jobs.values()], indent=1))


def job_state(job: Job, repo: Path) -> str:
    """SLURM's state of the job (``scontrol``, then ``sacct``); once SLURM has forgotten it, the log's."""
    if shutil.which("scontrol"):
        proc = subprocess.run(["scontrol", "show", "job", job.job_id], capture_output=True, text=True)
        match = re.search(r"JobState=(\w+)", proc.stdout)
        if proc.returncode == 0 and match:
            return match.group(1)
    if shutil.which("sacct"):
        proc = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", job.job_id], capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.split()[0]
    log = repo / job.log
    if log.exists():
        return "COMPLETED" if f"{DONE} {job.name}" in log.read_text() else "FAILED"
    return "UNKNOWN"


# ---------------------------------------------------------------------------------------------------
# commands


def submit(
    repo: Path, name: str, assignments: list[str], sbatch_args: list[str], git_remote: str = "origin",
    dvc_remote_name: str | None = None, setup: str | None = None, dry_run: bool = False,
) -> list[Job]:  # fmt: skip
    """Check everything, then write and submit one batch script per grid point."""
    if not NAME.fullmatch(name):
        raise ClusterError(f"-n {name!r}: use letters, digits, '.', '_' and '-'")
    check_params(assignments, repo)
    points = exp_grid(assignments)
    names = [name] if len(points) == 1 else [f"{name}-{i + 1}" for i in range(len(points))]
    jobs = load_jobs(repo)
    for n in names:
        if n in jobs and job_state(jobs[n], repo) not in FINAL | {"UNKNOWN"}:
            raise ClusterError(f"experiment {n} is already queued or running as job {jobs[n].job_id}")
    git_url = git_remote_url(repo, git_remote)
    commit = _run(["git", "rev-parse", "HEAD"], repo, "git rev-parse").strip()
    check_commit_on_remote(repo, git_remote, commit)
    remote = dvc_remote(repo, dvc_remote_name)
    if not dry_run and shutil.which("sbatch") is None:
        raise ClusterError("sbatch not found: submit from a SLURM login node (or a machine with slurm-client)")
    if setup is None:
        setup = f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"  # the submitting environment'
    extensions = sorted((repo / "src" / "tsfmlab").glob("*.so"))  # compiled by the install, not in Git
    whole = partly_read_outputs(repo)
    out = state_dir(repo)
    if not dry_run:
        (out / "logs").mkdir(parents=True, exist_ok=True)
        (out / "jobs").mkdir(parents=True, exist_ok=True)
        if not (out / ".gitignore").exists():
            atomic_write_text(out / ".gitignore", "*\n")
    submitted = []
    for n, point in zip(names, points):
        log = out / "logs" / f"{n}.log"
        text = batch_script(n, commit, git_url, remote, point, log.resolve(), launch_nodes(repo, point),
                            sbatch_args, setup, extensions, (out / "checkpoints" / n).resolve(), whole)  # fmt: skip
        script = out / "jobs" / f"{n}.sbatch"
        if dry_run:
            print(text)
            continue
        atomic_write_text(script, text)
        proc = subprocess.run(["sbatch", "--parsable", str(script)], cwd=repo, capture_output=True, text=True)
        if proc.returncode != 0:
            script.unlink()
            raise ClusterError(f"sbatch refused {n}: {(proc.stderr or proc.stdout).strip()}")
        job = Job(n, proc.stdout.strip().split(";")[0], commit, point, str(script.relative_to(repo)),
                  str(log.relative_to(repo)), dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))  # fmt: skip
        jobs[n] = job
        save_jobs(repo, jobs)
        submitted.append(job)
        print(f"submitted {n}: job {job.job_id} ({' '.join(point) or 'the committed params'})")
    return submitted


def collect(repo: Path, names: list[str], git_remote: str = "origin") -> list[str]:
    """``dvc exp pull`` every completed, not yet collected experiment (or those named)."""
    jobs = load_jobs(repo)
    unknown = [n for n in names if n not in jobs]
    if unknown:
        raise ClusterError(f"no submitted experiment {', '.join(unknown)} (python -m tsfmlab.cluster list)")
    pulled = []
    for job in jobs.values():
        if (names and job.name not in names) or (not names and job.collected):
            continue
        state = job_state(job, repo)
        if state != "COMPLETED":
            print(f"{job.name}: {state}, not collected (log: {job.log})")
            continue
        _run(["dvc", "exp", "pull", "--run-cache", git_remote, job.name], repo, f"dvc exp pull {job.name}")
        job.collected = True
        save_jobs(repo, jobs)
        pulled.append(job.name)
        print(f"{job.name}: collected")
    return pulled


def list_jobs(repo: Path) -> list[dict[str, Any]]:
    rows = []
    for job in load_jobs(repo).values():
        rows.append({"name": job.name, "job": job.job_id, "state": job_state(job, repo), "collected": job.collected,
                     "commit": job.commit[:10], "params": " ".join(job.params), "log": job.log})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tsfmlab.cluster", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("submit", help="one sbatch job per experiment (per grid point of a -S sweep)")
    s.add_argument("-n", "--name", required=True, help="the experiment's name (grid points: NAME-1, NAME-2, ...)")
    s.add_argument("-S", "--set-param", action="append", default=[], dest="params", help="as dvc exp run -S")
    s.add_argument("--sbatch-arg", action="append", default=[], help="passed to sbatch, e.g. --sbatch-arg=--gres=gpu:8")
    s.add_argument("--git-remote", default="origin")
    s.add_argument("--dvc-remote", default=None, help="default: the DVC default remote")
    s.add_argument("--setup", default=None, help="shell line that prepares the environment (default: this PATH)")
    s.add_argument("--dry-run", action="store_true", help="check and print the scripts, submit nothing")
    c = sub.add_parser("collect", help="dvc exp pull the finished experiments")
    c.add_argument("names", nargs="*")
    c.add_argument("--git-remote", default="origin")
    sub.add_parser("list", help="jobs, their SLURM states and logs")
    g = sub.add_parser("log", help="print a job's log")
    g.add_argument("name")
    args = parser.parse_args(argv)
    repo = Path.cwd()
    try:
        if args.command == "submit":
            submit(repo, args.name, args.params, args.sbatch_arg, args.git_remote, args.dvc_remote, args.setup,
                   args.dry_run)  # fmt: skip
        elif args.command == "collect":
            collect(repo, args.names, args.git_remote)
        elif args.command == "list":
            for row in list_jobs(repo):
                print("\t".join(str(v) for v in row.values()))
        else:
            jobs = load_jobs(repo)
            if args.name not in jobs:
                raise ClusterError(f"no submitted experiment {args.name}")
            sys.stdout.write((repo / jobs[args.name].log).read_text() if (repo / jobs[args.name].log).exists() else "")
    except TsfmlabError as err:
        print(f"cluster: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
