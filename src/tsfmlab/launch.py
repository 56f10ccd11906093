"""How a training stage is started: one process, ``torchrun`` on this machine, or ``srun … torchrun``
across the nodes of a SLURM allocation.

``dvc.yaml`` runs every training stage as ``python -m tsfmlab.launch SECTION SCRIPT [ARGS…]``. The
section's ``launch`` params pick the way, so the launch is a param like any other: ``dvc.lock``
records it, ``dvc exp show`` shows it and changing it reruns the stage.

=========================================  ================================================================
``launch`` params                           what runs
=========================================  ================================================================
``nodes: 1, procs_per_node: 1``             ``python SCRIPT ARGS`` (exactly today's single process)
``nodes: 1, procs_per_node: P``             ``torchrun --standalone --nproc-per-node P SCRIPT ARGS``
inside a SLURM allocation, any size > 1     ``srun --nodes N --ntasks-per-node 1 torchrun --nnodes N
                                            --nproc-per-node P --rdzv-backend c10d --rdzv-endpoint
                                            FIRST_NODE:PORT --rdzv-id JOBID SCRIPT ARGS``
``TSFMLAB_RDZV_ENDPOINT=HOST:PORT`` set      ``torchrun --nnodes N --nproc-per-node P --rdzv-backend c10d
                                            …`` on this node: every node runs the same command
                                            (machines without SLURM)
=========================================  ================================================================

``nodes > 1`` with neither a SLURM allocation nor a rendezvous endpoint is an error, raised before
anything starts. torchrun and srun are the engines; this module only writes their command line and
replaces itself with it (``exec``), so exit codes and signals are theirs. A rank that dies makes its
node's torchrun fail, and ``srun --kill-on-bad-exit`` ends the other nodes' tasks; the stage fails and
DVC commits nothing; the Trainer's complete checkpoints let a rerun resume. A node whose processes all
die closes its connections, so the other nodes fail within seconds, with or without SLURM; one that
leaves the network silently is noticed at the process group's timeout (docs/multi_gpu.md).

Every training stage also checks (:func:`check_world`) that it runs with the world size its params
name, so a stage started by hand under another process count cannot record the wrong params.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from .errors import ParamError, TsfmlabError
from .params import Params, PositiveInt, load_params, stage_params

ENDPOINT_ENV = "TSFMLAB_RDZV_ENDPOINT"  # HOST:PORT of the c10d store, for multi-node runs without SLURM
RDZV_ID_ENV = "TSFMLAB_RDZV_ID"  # the run's name at that endpoint (default: the section)
SLURM_PORT_BASE = 29400  # rendezvous port when the first node is not this one: base + job id % 1000
#: how a training stage's processes share the model under torchrun: ddp (replicated) | fsdp (sharded)
Distributed = Literal["ddp", "fsdp"]


class LaunchParams(Params):
    """A training stage's ``launch`` section: how many processes train, on how many machines. It
    changes the results (the global batch is ``nodes * procs_per_node`` times the per-device batch)."""

    nodes: PositiveInt
    procs_per_node: PositiveInt

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node


def check_world(launch: LaunchParams, section: str) -> None:
    """Fail unless this process belongs to a run of ``launch.world_size`` processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != launch.world_size:
        raise ParamError(
            f"param {section}.launch asks for {launch.nodes} node(s) x {launch.procs_per_node} process(es) "
            f"= {launch.world_size}, but this run has {world}: start the stage with dvc repro (or "
            f"`python -m tsfmlab.launch {section} …`), or set {section}.launch to the launch you use"
        )


def _first_node(env: Mapping[str, str]) -> str:
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or ""
    if shutil.which("scontrol"):
        proc = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.split():
            return proc.stdout.split()[0]
    if nodelist and "[" not in nodelist:
        return nodelist.split(",")[0]
    raise TsfmlabError(f"cannot expand the SLURM node list {nodelist!r} (scontrol missing?)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def command(launch: LaunchParams, section: str, argv: list[str], env: Mapping[str, str]) -> list[str]:
    """The command line that starts ``argv`` (script and its arguments) as ``launch`` asks."""
    python = sys.executable
    if launch.world_size == 1:
        return [python, *argv]
    torchrun = [python, "-m", "torch.distributed.run", f"--nproc-per-node={launch.procs_per_node}"]
    endpoint = env.get(ENDPOINT_ENV)
    if endpoint:
        rdzv = [f"--nnodes={launch.nodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}",
                f"--rdzv-id={env.get(RDZV_ID_ENV, section)}"]  # fmt: skip
        return [*torchrun, *rdzv, *argv]
    if env.get("SLURM_JOB_ID"):
        allocated = int(env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or "1")
        if launch.nodes > allocated:
            raise ParamError(
                f"param {section}.launch.nodes={launch.nodes}, but the SLURM allocation "
                f"{env['SLURM_JOB_ID']} has {allocated} node(s): ask sbatch/salloc for --nodes={launch.nodes}"
            )
        head = _first_node(env)
        here = env.get("SLURMD_NODENAME") or socket.gethostname()
        port = _free_port() if head == here else SLURM_PORT_BASE + int(env["SLURM_JOB_ID"]) % 1000
        srun = ["srun", f"--nodes={launch.nodes}", f"--ntasks={launch.nodes}", "--ntasks-per-node=1",
                "--kill-on-bad-exit=1", f"--job-name={section}"]  # fmt: skip
        if env.get("SLURM_CPUS_ON_NODE"):  # the step may use the node's CPUs (data workers, gloo)
            srun.append(f"--cpus-per-task={env['SLURM_CPUS_ON_NODE']}")
        rdzv = [f"--nnodes={launch.nodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={head}:{port}",
                f"--rdzv-id={env['SLURM_JOB_ID']}-{section}"]  # fmt: skip
        return [*srun, *torchrun, *rdzv, *argv]
    if launch.nodes > 1:
        raise ParamError(
            f"param {section}.launch.nodes={launch.nodes} needs a SLURM allocation (run dvc repro inside "
            f"sbatch or salloc, or submit it with python -m tsfmlab.cluster) or {ENDPOINT_ENV}=HOST:PORT "
            f"on every node; on one machine set {section}.launch.nodes: 1"
        )
    return [*torchrun, "--standalone", *argv]


def launch_params(section: str, params_path: str | Path = "params.yaml") -> LaunchParams:
    values = load_params(params_path).get(section)
    if not isinstance(values, Mapping) or "launch" not in values:
        raise ParamError(f"missing param {section}.launch (a training stage's nodes and procs_per_node)")
    return stage_params(LaunchParams, f"{section}.launch", params_path)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        raise SystemExit("usage: python -m tsfmlab.launch SECTION SCRIPT [ARGS...]")
    section, script = argv[0], argv[1]
    try:
        if not Path(script).is_file():
            raise TsfmlabError(f"{script}: no such stage script")
        cmd = command(launch_params(section), section, argv[1:], os.environ)
    except TsfmlabError as err:
        print(f"launch: error: {err}", file=sys.stderr)
        sys.exit(2)
    if cmd[0] == "srun" and not shutil.which("srun"):
        print("launch: error: srun not found in this SLURM allocation", file=sys.stderr)
        sys.exit(2)
    if cmd != [sys.executable, *argv[1:]]:
        print(f"launch: {' '.join(cmd)}", file=sys.stderr, flush=True)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main()
