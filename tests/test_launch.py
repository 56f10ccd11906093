"""tsfmlab.launch: the command line each launch gives, the errors before anything starts, and the
launcher itself running a script as one process and under torchrun."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, tool_env, write_params
from tsfmlab.errors import ParamError
from tsfmlab.launch import ENDPOINT_ENV, LaunchParams, check_world, command, launch_params

SCRIPT = ["stages/teacher.py"]


def test_one_process_is_the_plain_script():
    assert command(LaunchParams(nodes=1, procs_per_node=1), "teacher", [*SCRIPT, "x"], {}) == [
        sys.executable,
        *SCRIPT,
        "x",
    ]


def test_several_processes_on_one_machine_is_standalone_torchrun():
    cmd = command(LaunchParams(nodes=1, procs_per_node=4), "teacher", SCRIPT, {})
    assert cmd[:4] == [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=4"]
    assert cmd[4:] == ["--standalone", *SCRIPT]


def test_several_nodes_outside_slurm_fail_naming_the_param():
    with pytest.raises(ParamError, match=r"param teacher\.launch\.nodes=2 needs a SLURM allocation"):
        command(LaunchParams(nodes=2, procs_per_node=1), "teacher", SCRIPT, {})


def test_a_rendezvous_endpoint_starts_this_node_of_a_c10d_job():
    cmd = command(
        LaunchParams(nodes=2, procs_per_node=3), "distill", SCRIPT, {ENDPOINT_ENV: "10.0.0.1:29400"}
    )
    assert "--nnodes=2" in cmd and "--nproc-per-node=3" in cmd and "--rdzv-backend=c10d" in cmd
    assert "--rdzv-endpoint=10.0.0.1:29400" in cmd and "--rdzv-id=distill" in cmd


SLURM = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "gpu01,gpu02",
         "SLURMD_NODENAME": "gpu02", "SLURM_CPUS_ON_NODE": "16"}  # fmt: skip


def test_inside_a_slurm_allocation_srun_starts_torchrun_on_every_node(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)  # no scontrol: a plain list is split
    cmd = command(LaunchParams(nodes=2, procs_per_node=8), "teacher", SCRIPT, SLURM)
    srun = cmd[: cmd.index(sys.executable)]
    assert srun == ["srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
                    "--job-name=teacher", "--cpus-per-task=16"]  # fmt: skip
    # the first node hosts the store; this one is not it, so the port comes from the job id
    assert "--rdzv-endpoint=gpu01:29642" in cmd and "--rdzv-id=4242-teacher" in cmd and "--nnodes=2" in cmd
    assert cmd[-1] == SCRIPT[0]


def test_more_nodes_than_the_allocation_fail_naming_the_param():
    with pytest.raises(ParamError, match=r"teacher\.launch\.nodes=4.*allocation 4242 has 2 node"):
        command(LaunchParams(nodes=4, procs_per_node=1), "teacher", SCRIPT, SLURM)


def test_the_stage_refuses_a_world_size_its_params_do_not_name(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ParamError, match=r"param teacher\.launch asks for 1 node\(s\) x 1 process\(es\) = 1, but"):
        check_world(LaunchParams(nodes=1, procs_per_node=1), "teacher")
    check_world(LaunchParams(nodes=1, procs_per_node=2), "teacher")
    check_world(LaunchParams(nodes=2, procs_per_node=1), "teacher")


@pytest.mark.parametrize(
    "values, message",
    [
        ({"nodes": 0, "procs_per_node": 1}, "teacher.launch.nodes must be > 0"),
        ({"nodes": 1, "procs_per_node": "2"}, "teacher.launch.procs_per_node"),
        ({"nodes": 1}, "missing param teacher.launch.procs_per_node"),
        (None, "missing param teacher.launch"),
    ],
)
def test_bad_launch_params(tmp_path, values, message):
    params = write_params(tmp_path, {"teacher": {"launch": values}})
    if values is None:
        text = params.read_text().replace("  launch: null\n", "")
        params.write_text(text)
    with pytest.raises(ParamError, match=message):
        launch_params("teacher", params)


# One write(2) per rank: the ranks share the launcher's stdout pipe, and writes of up to PIPE_BUF bytes
# are atomic there (print() may split a line into several writes, which interleave).
PROBE = (
    "import os, sys\n"
    "line = ' '.join(['ran', os.environ.get('RANK', '-'), os.environ.get('WORLD_SIZE', '-'), *sys.argv[1:]])\n"
    "os.write(1, (line + '\\n').encode())\n"
)


@pytest.mark.parametrize("procs", [1, 2])
def test_the_launcher_runs_the_script(tmp_path, procs):
    (tmp_path / "probe.py").write_text(PROBE)
    write_params(tmp_path, {"teacher": {"launch": {"nodes": 1, "procs_per_node": procs}}})
    proc = subprocess.run(
        [sys.executable, "-m", "tsfmlab.launch", "teacher", "probe.py", "a"],
        cwd=tmp_path, env={**tool_env(), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("ran"))
    expected = ["ran - - a"] if procs == 1 else ["ran 0 2 a", "ran 1 2 a"]
    assert lines == expected, proc.stdout + proc.stderr[-2000:]


def test_the_launcher_fails_before_starting_on_bad_input(tmp_path):
    write_params(tmp_path, {"teacher": {"launch": {"nodes": 3, "procs_per_node": 1}}})
    (tmp_path / "probe.py").write_text(PROBE)
    env = {k: v for k, v in tool_env().items() if not k.startswith("SLURM_") and k != ENDPOINT_ENV}
    run = [sys.executable, "-m", "tsfmlab.launch", "teacher"]
    proc = subprocess.run([*run, "probe.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "teacher.launch.nodes=3 needs a SLURM allocation" in proc.stderr
    assert "ran" not in proc.stdout
    proc = subprocess.run([*run, "nowhere.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "nowhere.py: no such stage script" in proc.stderr
