"""A one-node SLURM cluster on 127.0.0.1 for the tests: Debian's slurmctld, slurmd and munge (22.05).

:func:`start` installs the packages when they are missing (as root, through apt-get), writes a
``slurm.conf`` in a scratch directory, starts munged, slurmctld and slurmd, and waits until the node is
idle; :meth:`Cluster.stop` shuts them down and removes the directory. Commands reach this cluster through
the ``SLURM_CONF`` of :attr:`Cluster.env`. Anything missing (not root, no apt, a daemon that does not
come up) is a :class:`Unavailable` with the reason, which the fixtures turn into a skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
BINARIES = ["slurmctld", "slurmd", "sbatch", "srun", "scontrol", "munged"]


class Unavailable(Exception):
    """No SLURM cluster can be brought up here (the reason)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )


def install() -> None:
    if all(_which(b) for b in BINARIES):
        return
    if os.geteuid() != 0:
        raise Unavailable("SLURM is not installed and installing it needs root")
    if shutil.which("apt-get") is None:
        raise Unavailable("SLURM is not installed and there is no apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise Unavailable(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-500:]}")
    missing = [b for b in BINARIES if not _which(b)]
    if missing:
        raise Unavailable(f"installed {PACKAGES}, yet {missing} are missing")


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]
    node: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    def run(self, cmd: list[str], cwd: Path | None = None, timeout: int = 60) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout)

    def wait_job(self, job_id: str, timeout: float = 900) -> str:
        """Poll until the job leaves the queue; its final state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.run(["scontrol", "show", "job", job_id]).stdout
            state = next((w.split("=", 1)[1] for w in out.split() if w.startswith("JobState=")), "UNKNOWN")
            if state not in {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED"}:
                return state
            time.sleep(2)
        self.run(["scancel", job_id])
        raise TimeoutError(f"job {job_id} still running after {timeout} s")

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.root.glob("*.log")) if p.is_file()
        )

    def stop(self) -> None:
        self.run(["scontrol", "shutdown"], timeout=30) if _which("scontrol") else None
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


CONF = """\
ClusterName=tsfmlabtest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge.socket
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
LaunchParameters=use_interactive_step
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=3600
SlurmdTimeout=300
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
"""


def start() -> Cluster:
    """Bring the cluster up (see the module's docstring); raises :class:`Unavailable`."""
    if os.geteuid() != 0:
        raise Unavailable("bringing up slurmd needs root")
    install()
    root = Path(tempfile.mkdtemp(prefix="tsfmlab-slurm-"))
    root.chmod(0o755)
    (root / "state").mkdir()
    (root / "spool").mkdir()
    node = socket.gethostname()
    try:
        socket.gethostbyname(node)
    except OSError as err:
        raise Unavailable(f"this machine's name {node!r} does not resolve") from err
    conf = root / "slurm.conf"
    conf.write_text(CONF.format(node=node, root=root, ctld_port=_free_port(), slurmd_port=_free_port(),
                                cpus=os.cpu_count() or 2))  # fmt: skip
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cluster = Cluster(root, env, node)
    try:
        key = root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        munged = [_which("munged"), "--foreground", "--force", f"--key-file={key}", f"--socket={root}/munge.socket",
                  f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log", f"--seed-file={root}/munge.seed"]  # fmt: skip
        cluster.processes.append(subprocess.Popen(munged, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        _wait(lambda: (root / "munge.socket").exists(), 20, "munged", cluster)
        for daemon in ("slurmctld", "slurmd"):
            cmd = [_which(daemon), "-D", "-f", str(conf)] + (["-i"] if daemon == "slurmctld" else [])
            cluster.processes.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        _wait(lambda: "State=IDLE" in cluster.run(["scontrol", "show", "node", node]).stdout, 60, "the node", cluster)
    except BaseException:
        logs = cluster.logs()
        cluster.stop()
        raise Unavailable(f"the cluster did not come up:\n{logs}") from None
    return cluster


def _wait(ready, timeout: float, what: str, cluster: Cluster) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in cluster.processes):
            raise Unavailable(f"a daemon exited while waiting for {what}")
        if ready():
            return
        time.sleep(0.5)
    raise Unavailable(f"{what} not ready after {timeout} s")
