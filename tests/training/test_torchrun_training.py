"""Training stages under torchrun with 2 CPU processes (gloo), as a multi-GPU job would run them.

* Ti-MAE pretraining (Lightning) with ``distributed: ddp`` and with ``distributed: fsdp`` plus
  ``gradient_checkpointing: true`` (FSDP2 runs on CPU): both ranks train and agree, rank 0 alone writes,
  one dvclive row per epoch, and the FSDP run gives the DDP run's weights.
* The teacher stage (Hugging Face Trainer) with DDP, bf16 autocast and gradient checkpointing: both
  ranks train, only rank 0 writes outputs or logs; ``distributed: fsdp`` is refused on CPU, naming the
  param (accelerate applies FSDP on GPUs only).
* FSDP2 sharding of a Chronos-T5 by ``block_classes`` and ``gather_full_weights`` (what ``fit`` does
  around accelerate's FSDP): the gathered weights equal an unsharded step on both ranks' batches.

Writes are audited per rank by write_audit/sitecustomize.py (every open-for-write, mkdir, rename and
removal under the working directory).
"""

import ast
import json
import math
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import REPO, run_stage_script, section_params, stage_argv, tool_env, write_params

HERE = Path(__file__).parent
AUDIT = HERE / "write_audit"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(
    args: list[str], cwd: Path, audit: Path | None = None, check: bool = True, nproc: int = 2
) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node 2`` with every output line prefixed by its rank (``[default1]:``)."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--tee=3",
        "--master-addr=127.0.0.1", f"--master-port={free_port()}", *args,
    ]  # fmt: skip
    env = {**tool_env(), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    if audit is not None:
        audit.mkdir(parents=True, exist_ok=True)
        env |= {"PYTHONPATH": f"{REPO}:{AUDIT}", "AUDIT_ROOT": str(cwd), "AUDIT_LOG": str(audit)}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc


def written(audit: Path, rank: int) -> set[str]:
    log = audit / f"rank-{rank}.txt"
    return set(log.read_text().split("\n")) - {""} if log.exists() else set()


def rank_stats(stdout: str, rank: int, prefix: str) -> dict:
    """The stats dict a stage printed on ``rank`` in a line starting with ``prefix``."""
    lines = [line for line in stdout.splitlines() if line.startswith(f"[default{rank}]:{prefix}")]
    assert len(lines) == 1, f"rank {rank} printed no (or several) '{prefix}' lines:\n{stdout[-3000:]}"
    return ast.literal_eval(re.search(r"\{.*\}", lines[0]).group(0))


# --------------------------------------------------------------------------------------------------
# Ti-MAE (Lightning)

ARCH = {"emb_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_dim": 32, "decoder_emb_size": 16,
        "decoder_layers": 1, "decoder_heads": 2, "decoder_intermediate_dim": 32}  # fmt: skip
TIMAE = {
    "classification": {"datasets": ["ItalyPowerDemand"], "encoders": {"tiny": "-"}, "heads": ["mlp_frozen"]},
    "timae": {
        "datasets": ["ItalyPowerDemand"],
        "backbones": {"transformer": section_params("timae")["backbones"]["transformer"] | ARCH},
        "poolings": ["avg"],
    },
}
TWO_PROCS = {"nodes": 1, "procs_per_node": 2}  # the launch params of a 2-process run
PRETRAIN = {"max_epochs": 4, "patience": None, "n_plots": 1, "batch_size": 16, "launch": TWO_PROCS}
RUNS = {
    "ddp": {"distributed": "ddp", "gradient_checkpointing": False},
    "fsdp": {"distributed": "fsdp", "gradient_checkpointing": True},
}
PRINTED = "pretrain_timae@transformer (rank {rank} of 2): ItalyPowerDemand:"


@pytest.fixture(scope="module")
def timae_runs(tmp_path_factory) -> dict[str, tuple[Path, Path, str]]:
    """name: (working directory, audit directory, torchrun output) of pretrain_timae@transformer."""
    base = tmp_path_factory.mktemp("timae")
    write_params(base, {**TIMAE, "pretrain_timae": PRETRAIN})
    run_stage_script("prepare_ucr", base)
    runs = {}
    for name, values in RUNS.items():
        work, audit = base.parent / f"{base.name}-{name}", base.parent / f"{base.name}-{name}-audit"
        shutil.copytree(base, work)
        write_params(work, {**TIMAE, "pretrain_timae": PRETRAIN | values})
        proc = torchrun([str(REPO / "stages" / "pretrain_timae.py"), *stage_argv("pretrain_timae", ("transformer",))], work, audit)
        runs[name] = (work, audit, proc.stdout + proc.stderr)  # Lightning's info lines go to stderr
    return runs


@pytest.mark.parametrize("name", RUNS)
def test_timae_both_ranks_train_and_select_the_same_epoch(timae_runs, name):
    work, _, stdout = timae_runs[name]
    stats = [rank_stats(stdout, r, PRINTED.format(rank=r)) for r in (0, 1)]
    assert stats[0] == stats[1]  # validation losses are averaged over the ranks: one best epoch
    assert stats[0]["epochs_run"] == 4 and stats[0]["n_train_series"] == 53
    metrics = json.loads((work / "reports/timae/pretrain-transformer.json").read_text())["ItalyPowerDemand"]
    assert metrics == stats[0]
    val = work / "dvclive/timae/pretrain-transformer/ItalyPowerDemand/plots/metrics/val/loss.tsv"
    rows = val.read_text().splitlines()
    assert len(rows) == 1 + 4  # one row per epoch, from rank 0 alone
    losses = [float(r.split("\t")[1]) for r in rows[1:]]
    assert all(math.isfinite(v) for v in losses) and metrics["best_val_loss"] == round(min(losses), 6)
    assert min(losses) < losses[0]  # it learns


@pytest.mark.parametrize("name", RUNS)
def test_timae_only_rank_zero_writes(timae_runs, name):
    work, audit, _ = timae_runs[name]
    assert written(audit, 1) == set()
    rank0 = written(audit, 0)
    for out in ("data/models/timae", "reports/timae/pretrain-transformer.json",
                "plots/timae/reconstruction-transformer.png", "dvclive/timae/pretrain-transformer"):  # fmt: skip
        assert any(p.startswith(out) for p in rank0), out
    assert (work / "data/models/timae/transformer/ItalyPowerDemand/model.safetensors").is_file()
    assert not list((work / "data/models/timae").glob(".*"))  # no temporary directory left behind


def test_timae_fsdp_shards_and_matches_ddp(timae_runs):
    (ddp, _, ddp_out), (fsdp, _, fsdp_out) = timae_runs["ddp"], timae_runs["fsdp"]
    held = re.search(r"FSDP2 over 2 ranks: rank 0 holds (\d+) of (\d+) parameters", fsdp_out)
    assert held and "FSDP2" not in ddp_out, fsdp_out[-3000:]
    n_params = json.loads((fsdp / "reports/timae/pretrain-transformer.json").read_text())["ItalyPowerDemand"]
    assert int(held.group(2)) == n_params["n_params"] and int(held.group(1)) < 0.6 * n_params["n_params"]
    assert "activation checkpointing: 2 backbone layers" in fsdp_out  # one encoder and one decoder layer
    # the same gradient averaging (and checkpointing keeps dropout masks): the same weights
    name = "data/models/timae/transformer/ItalyPowerDemand/model.safetensors"
    a, b = load_file(str(ddp / name)), load_file(str(fsdp / name))
    assert a.keys() == b.keys() and not any("_checkpoint_wrapped" in k for k in b)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)


# --------------------------------------------------------------------------------------------------
# the teacher stage (Hugging Face Trainer)

TEACHER_OVERRIDES = {"d_model": 32, "d_ff": 64, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 2,
                     "d_kv": 16}  # fmt: skip


def teacher_params(**train) -> dict:
    base = section_params("teacher")
    return {
        "model": {**base["model"], "overrides": TEACHER_OVERRIDES},
        "tokenizer": {**base["tokenizer"], "context_length": 32, "prediction_length": 8, "n_tokens": 64},
        "data": {
            **base["data"],
            "training_data_paths": ["data/corpus"],
            "probability": [1.0],
            "min_past": 8,
            "shuffle_buffer_length": 10,
        },  # fmt: skip
        "train": {
            **base["train"],
            "max_steps": 4,
            "save_steps": 2,
            "log_steps": 1,
            "per_device_train_batch_size": 4,
            **train,
        },  # fmt: skip
    }


DDP_STEPS = 40  # room for a node to die between two checkpoints (save_steps 10)


def teacher_work(path: Path, procs: int = 1, nodes: int = 1, **train) -> Path:
    from tsfmlab.data.arrow_io import shard_name, write_series

    rng = np.random.default_rng(0)
    series = [{"target": np.cumsum(rng.normal(size=120)).astype(np.float32)} for _ in range(16)]
    write_series(series, path / "data" / "corpus" / shard_name(0, 1))
    from tsfmlab.training.hf_trainer import ScheduleParams

    launch = {"nodes": nodes, "procs_per_node": procs}
    schedule = set(ScheduleParams.model_fields)
    shared = section_params("shared")
    shared["train"] |= {k: v for k, v in train.items() if k not in schedule}  # the Trainer settings
    teacher = teacher_params(**{k: v for k, v in train.items() if k in schedule}) | {"launch": launch}
    write_params(path, {"shared": shared, "teacher": teacher})
    return path


DDP_TRAIN = {"max_steps": DDP_STEPS, "save_steps": 10, "gradient_checkpointing": True, "mixed_precision": "bf16"}


@pytest.fixture(scope="module")
def teacher_ddp(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """The teacher stage on one node with 2 processes: working directory, write audit, output."""
    base = tmp_path_factory.mktemp("teacher-ddp")
    work = teacher_work(base / "work", procs=2, **DDP_TRAIN)
    audit = base / "audit"
    return work, audit, torchrun([str(REPO / "stages" / "teacher.py"), *stage_argv("teacher")], work, audit)


def test_teacher_ddp_bf16_checkpointing_rank_zero_writes(teacher_ddp):
    from chronos import BaseChronosPipeline

    work, audit, proc = teacher_ddp
    stats = [rank_stats(proc.stdout, r, "teacher: ") for r in (0, 1)]
    assert all(s["steps"] == DDP_STEPS and math.isfinite(s["train_loss"]) for s in stats)
    assert stats[0]["train_loss"] == stats[1]["train_loss"]  # the Trainer reports the mean over ranks
    rows = (work / "dvclive/teacher/plots/metrics/loss.tsv").read_text().splitlines()
    assert len(rows) == 1 + DDP_STEPS  # one row per step, from rank 0 alone
    pipeline = BaseChronosPipeline.from_pretrained(work / "data/models/teacher")
    assert pipeline.model.config.n_tokens == 64
    # rank 1 writes nothing but its own RNG state into the checkpoints (HF Trainer's exact resume)
    rank1 = written(audit, 1)
    assert rank1 and all(re.fullmatch(r"\.checkpoints/teacher/\w+/checkpoint-\d+", p) for p in rank1), rank1
    rank0 = written(audit, 0)
    for out in ("data/models/teacher", "reports/teacher.json", "metrics/teacher.json", "dvclive/teacher/plots"):
        assert any(p.startswith(out) for p in rank0), out
    assert not list((work / ".checkpoints").rglob("checkpoint-*"))  # removed once every rank finished


def start_nodes(work: Path, rdzv_id: str) -> list[subprocess.Popen]:
    """Two torchrun "nodes" on 127.0.0.1 (c10d rendezvous), each started by the launcher as dvc repro
    would on its machine, in one working directory (a shared filesystem)."""
    from tsfmlab.launch import ENDPOINT_ENV, RDZV_ID_ENV

    env = {**tool_env(), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src"),
           ENDPOINT_ENV: f"127.0.0.1:{free_port()}", RDZV_ID_ENV: rdzv_id}  # fmt: skip
    cmd = [sys.executable, "-m", "tsfmlab.launch", "teacher", str(REPO / "stages" / "teacher.py"), *stage_argv("teacher")]
    return [subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]  # fmt: skip


def kill_node(node: subprocess.Popen) -> None:
    """What a machine that dies does to its processes: torchrun and its workers end at once (SIGKILL)."""
    import psutil

    agent = psutil.Process(node.pid)
    for proc in [agent, *agent.children(recursive=True)]:
        proc.kill()


def test_a_node_that_dies_fails_the_run_and_a_rerun_resumes_to_the_weights_of_one_node(teacher_ddp, tmp_path):
    """Two nodes train the teacher; one dies after a complete checkpoint. The other node fails within
    seconds (its gloo peer is gone), the stage writes no output, and the same two-node command started
    again resumes from the checkpoint and ends with the weights of one node with 2 processes."""
    from tsfmlab.training.hf_trainer import last_checkpoint

    def resumable() -> list[str]:  # the checkpoint a rerun of the two ranks resumes, if any
        return [c for d in (work / ".checkpoints/teacher").glob("*") if (c := last_checkpoint(d, 2))]

    one_node = teacher_ddp[0]
    work = teacher_work(tmp_path / "work", nodes=2, procs=1, **DDP_TRAIN)
    nodes = start_nodes(work, "dies")
    deadline = time.monotonic() + 300
    while not resumable():
        assert time.monotonic() < deadline and all(n.poll() is None for n in nodes), "no checkpoint was written"
        time.sleep(0.02)
    kill_node(nodes[1])
    survivor = nodes[0].communicate(timeout=120)
    nodes[1].communicate()
    assert nodes[0].returncode != 0, f"the run ended although a node died:\n{survivor[1][-3000:]}"
    assert "teacher: {" not in survivor[0]  # it stopped before the last step
    for out in ("data/models/teacher", "metrics/teacher.json", "reports/teacher.json"):
        assert not (work / out).exists(), out
    kept = resumable()
    assert len(kept) == 1 and int(kept[0].split("-")[-1]) < DDP_STEPS

    nodes = start_nodes(work, "dies-rerun")
    outs = [node.communicate(timeout=600) for node in nodes]
    for node, (out, err) in zip(nodes, outs):
        assert node.returncode == 0, f"{out[-2000:]}\n{err[-4000:]}"
    assert sum("--nnodes=2" in err for _, err in outs) == 2  # each node went through torchrun's c10d
    printed = [line for out, _ in outs for line in out.splitlines() if line.startswith("teacher: {")]
    stats = [ast.literal_eval(line.removeprefix("teacher: ")) for line in printed]
    assert len(stats) == 2 and all(s["resumed"] and s["steps"] == DDP_STEPS for s in stats), printed
    mine = load_file(work / "data/models/teacher/model.safetensors")
    theirs = load_file(one_node / "data/models/teacher/model.safetensors")
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_teacher_fsdp_is_refused_on_cpu_naming_the_param(tmp_path):
    work = teacher_work(tmp_path, distributed="fsdp")
    proc = run_stage_script("teacher", work, check=False, in_process=True)  # refused before any Trainer
    assert proc.returncode == 2, proc.stderr
    assert "param shared.train.distributed=fsdp needs CUDA GPUs" in proc.stderr
    assert not (work / "data/models/teacher").exists() and not (work / "metrics").exists()


def test_finetune_energy_ddp_full_and_lora_rank_zero_writes(tmp_path):
    """Chronos2Pipeline.fit (its own Trainer) under torchrun, from a random tiny Chronos-2."""
    from tests.stages.test_energy_stages import PARAMS
    from tsfmlab.models.chronos2 import Chronos2Params, new_chronos2
    from tsfmlab.models.loading import save_pipeline
    from tsfmlab.params import parse_section

    work, audit = tmp_path / "work", tmp_path / "audit"
    finetune = PARAMS["finetune_energy"] | {"modes": ["full", "lora"], "covariates": ["past_future"], "launch": TWO_PROCS}
    write_params(work, {"energy": PARAMS["energy"], "finetune_energy": finetune})
    run_stage_script("prepare_energy", work)
    model = parse_section(Chronos2Params, PARAMS["chronos2"]["model"], "chronos2.model")
    save_pipeline(new_chronos2(model), work / "data/models/chronos2")
    proc = torchrun([str(REPO / "stages" / "finetune_energy.py"), *stage_argv("finetune_energy")], work, audit)
    for run in ("full-past_future", "lora-past_future"):
        printed = [
            line.split(":", 1)[1]
            for line in proc.stdout.splitlines()
            if re.match(rf"\[default[01]\]:finetune_energy: {run}: validation loss", line)
        ]
        assert len(printed) == 2 and printed[0] == printed[1], printed  # both ranks, the same losses
        rows = (work / f"dvclive/finetune_energy/{run}/plots/metrics/loss.tsv").read_text().splitlines()
        assert len(rows) == 1 + 4  # one row per step, from rank 0 alone
        assert (work / f"data/models/chronos2_energy/{run}/model.safetensors").is_file()
    assert (work / "data/models/chronos2_energy/lora-past_future/adapter").is_dir()
    # rank 1 writes only the copy of the model that fit saves from every rank, in its own directory
    rank1 = written(audit, 1)
    assert rank1 and all(
        re.match(r"\.checkpoints/finetune_energy/\w+/[\w-]+/finetuned-ckpt-rank1", p) for p in rank1
    )
    assert any(p.startswith("reports/finetune_energy.json") for p in written(audit, 0))
    assert not list((work / ".checkpoints").rglob("finetuned-ckpt-*"))  # removed once both finished


# --------------------------------------------------------------------------------------------------
# FSDP2 sharding and gathering of a Chronos-T5 (the part of fit's FSDP path that runs on CPU)


def test_fsdp_sharded_step_gathers_to_the_unsharded_step(tmp_path):
    torchrun([str(HERE / "fsdp_gather_worker.py"), str(tmp_path)], tmp_path)
    info = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    for i in info:
        assert i["world_size"] == 2 and i["blocks"] == ["T5Block"] and i["sharded"]
        assert i["held"] == i["total"] // 2  # every parameter split in two
    gathered, replica, initial = (load_file(str(tmp_path / f"{n}.safetensors")) for n in
                                  ("gathered", "replica", "initial"))  # fmt: skip
    assert gathered.keys() == replica.keys() == initial.keys()
    moved = max((gathered[k] - initial[k]).abs().max().item() for k in gathered)
    assert moved > 1e-4  # the step changed the weights
    for k in gathered:
        torch.testing.assert_close(gathered[k], replica[k], rtol=1e-5, atol=1e-7, msg=k)
