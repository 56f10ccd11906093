"""The full-scale profile rehearsed on CPU: profiles/gpu.yaml with its sizes shrunk (profiles/gpu_rehearsal.yaml)
runs its training engines through `dvc exp run` of the teacher (Chronos-T5 through the Hugging Face
Trainer) and Chronos-2 with the corpora they read: torch.compile on inductor's CPU backend, bf16 autocast
and the profile's 8 DataLoader workers reading the corpora through their index. Every other stage runs
the same code under the smoke profile (tests/stages/test_pipeline.py), and every stage's params check
passes on the profile (tests/test_profile.py). What only a GPU exercises is named in CUDA_ONLY (and in
docs/gpu_run.md)."""

from __future__ import annotations

import json
import math
import re

import pytest
from ruamel.yaml import YAML

from tests.conftest import REPO, commit, fresh_project, run

pytestmark = pytest.mark.slow

#: What the rehearsal cannot exercise on a CPU, each a key of docs/gpu_run.md's "Rehearsed on CPU" list.
CUDA_ONLY = {
    "tf32": "TF32 matrix multiplies (`shared.train.tf32`): Ampere and later GPUs; ignored on CPU",
    "adamw_torch_fused": "the fused AdamW kernel: on CPU the same update rule runs unfused (`adamw_torch`)",
    "triton": "torch.compile's GPU code (Triton kernels); on CPU inductor generates C++/OpenMP",
    "mamba-ssm": "Mamba-2's CUDA scan kernels (mamba-ssm); on CPU transformers' PyTorch path runs",
    "fsdp": "`distributed: fsdp` (accelerate shards over GPUs only; refused on CPU, see multi_gpu.md)",
    "bf16 matmuls": "bf16 speed: CPUs without AMX emulate it, so the rehearsal checks wiring, not speed",
}


#: the stages the rehearsal runs (with the stages they depend on): one per Hugging Face training engine
REHEARSED = ("teacher", "chronos2")


def profile_args(root, *names: str) -> list[str]:
    proc = run(["python", "-m", "tsfmlab.profile", *(f"profiles/{n}.yaml" for n in names)], cwd=root)
    return proc.stdout.split()


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    root = fresh_project(tmp_path_factory.mktemp("rehearsal") / "project")
    # the default params' record goes: every rehearsed stage runs anyway (the profile changes its params),
    # and DVC rewrites dvc.lock (a round-trip YAML load and dump) after each stage, at a cost that grows
    # with the file
    (root / "dvc.lock").unlink()
    commit(root, "no lock")
    cache = root.parent / "inductor"
    args = profile_args(root, "gpu", "gpu_rehearsal")
    proc = run(
        ["dvc", "exp", "run", *args, *REHEARSED], cwd=root, timeout=3000,
        env={"PYTHONPATH": str(root / "src"), "TORCHINDUCTOR_CACHE_DIR": str(cache), "TSFMLAB_NO_PROGRESS": "1",
             # one data worker and inductor compiling in the stage's process (no pool of compile workers, each
             # importing torch): the other test worker has the second core. Inductor's C++ wrapper: one C++
             # file per graph over precompiled headers, where the Python wrapper runs g++ once per kernel
             # (the same lowering and kernels; a quarter less time in this test)
             "TSFMLAB_N_JOBS": "1", "TORCHINDUCTOR_COMPILE_THREADS": "1", "TORCHINDUCTOR_CPP_WRAPPER": "1"},
    )  # fmt: skip
    return root, cache, proc.stdout + proc.stderr


def test_the_training_engines_run_with_the_profile(rehearsal):
    root, _, log = rehearsal
    ran = {m.group(1) for m in re.finditer(r"Running stage '([^'@]+)(@[^']*)?'", log)}
    assert ran == {"generate_dysts", "kernelsynth", "build_mixups", *REHEARSED}, log[-3000:]
    params = YAML(typ="safe").load((root / "params.yaml").read_text())
    teacher = params["teacher"]
    assert teacher["train"]["torch_compile"] and params["shared"]["train"]["dataloader_num_workers"] == 8
    assert params["shared"]["train"]["mixed_precision"] == "bf16" and params["chronos2"]["model"]["context_length"] == 2048
    assert teacher["tokenizer"]["context_length"] == 512 and teacher["tokenizer"]["n_tokens"] == 4096
    for name in REHEARSED:
        loss = json.loads((root / "metrics" / f"{name}.json").read_text())["train_loss"]
        assert math.isfinite(loss), name


def test_training_compiled_with_inductor_on_cpu(rehearsal):
    _, cache, _ = rehearsal
    kernels = list(cache.rglob("*.cpp")) + list(cache.rglob("*.so"))
    assert kernels, "torch.compile generated no C++ kernel"


def test_what_needs_cuda_is_documented():
    text = (REPO / "docs" / "gpu_run.md").read_text()
    section = text.split("### Rehearsed on CPU", 1)[1].split("\n## ", 1)[0]
    for key in CUDA_ONLY:
        assert f"**{key}**" in section, key
