"""Distillation under DDP: 2 CPU processes (gloo) launched by torchrun, as a multi-GPU job would be."""

import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import tool_env

WORKER = Path(__file__).with_name("ddp_distill_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], cwd: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
        "--master_addr=127.0.0.1", f"--master_port={free_port()}", *args,
    ]  # fmt: skip
    env = {**tool_env(), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    torchrun([str(WORKER), str(out)], cwd=out)
    return out


def test_every_rank_trains_with_finite_losses_on_its_own_data(ddp_run):
    ranks = [json.loads((ddp_run / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 and r["steps"] == 3 for r in ranks)
    for r in ranks:
        assert len(r["terms"]) == 3
        assert all(math.isfinite(v) for step in r["terms"] for v in step.values())
    # the ranks saw different batches (so equal gradients below come from the all-reduce)
    assert ranks[0]["terms"][0]["loss"] != ranks[1]["terms"][0]["loss"]


def test_projection_gradients_are_identical_across_ranks(ddp_run):
    g0, g1 = (load_file(str(ddp_run / f"rank-{r}.safetensors")) for r in (0, 1))
    assert set(g0) == set(g1) and len(g0) == 3 * 3
    for name in g0:
        assert torch.equal(g0[name], g1[name]), name
        assert g0[name].abs().sum() > 0, name
    assert any("encoder_projection" in n for n in g0) and any("decoder_projection" in n for n in g0)


def test_only_rank_zero_logs(ddp_run):
    live = ddp_run / "live" / "plots" / "metrics"
    for term in ("loss", "task_loss", "distill_loss", "encoder_loss", "decoder_loss"):
        rows = (live / f"{term}.tsv").read_text().splitlines()
        assert len(rows) == 1 + 3, term  # a header and one row per step, not one per rank
