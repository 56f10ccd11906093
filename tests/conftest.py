"""Shared fixtures. Tests never read ../shared except through `shared_dir`, which skips when absent."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# ``make test`` runs two workers next to the end-to-end pipeline's stages: OpenMP threads that sleep when
# idle instead of spinning let them share the cores (the wait policy changes no result). Before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Before numpy: tests, like the stages they run, use params.yaml's pinned CPU numerics (portable kernels,
# one thread per process, so the two test workers share two cores).
import tsfmlab  # noqa: E402, F401

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TSFMLAB_NO_PROGRESS", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub


#: test files outside tests/stages/ that also run stages or torchrun in subprocesses
SUBPROCESS_FILES = {"test_torchrun_training.py", "test_ddp_distillation.py"}


#: the longest test files (end-to-end ``dvc repro`` of the smoke profile, the emulated CPU, the GPU
#: profile's rehearsal): collected first, so that under ``make test`` (pytest-xdist, one file per worker
#: at a time) one worker starts with the pipeline, the other with the next two, and the rest fill in
LONGEST_FIRST = ("test_pipeline.py", "test_numerics.py", "test_gpu_rehearsal.py")
#: collected last: the experiments start from the pipeline's reproduced project (made once, shared by the
#: workers), ready by the time a worker reaches them; the torchrun tests after them keep the other worker busy
LAST = ("test_experiments.py", "test_torchrun_training.py")


def pytest_collection_modifyitems(items) -> None:
    """Mark the tests that run stage scripts or multi-process training (``make test-fast`` skips them),
    and put the end-to-end pipeline tests first."""
    for item in items:
        path = Path(str(item.fspath))
        if "stages" in path.parts or path.name in SUBPROCESS_FILES:
            item.add_marker(pytest.mark.stage)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)} | {name: 99 + i for i, name in enumerate(LAST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).name, len(LONGEST_FIRST)))  # stable otherwise


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = REPO.parent / "shared"
    if not path.is_dir():
        pytest.skip("../shared is absent")
    return path


@pytest.fixture
def one_thread():
    """One torch thread for the test (tiny models: thread start-up costs more than it saves)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tool_env() -> dict[str, str]:
    """Environment whose PATH finds this interpreter's dvc and python first."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["TSFMLAB_NO_PROGRESS"] = "1"
    env["DVC_NO_ANALYTICS"] = "1"
    env["HF_HUB_OFFLINE"] = "1"
    return env


def run(
    cmd: list[str], cwd: Path, check: bool = True, timeout: int = 1800, env: dict | None = None
) -> subprocess.CompletedProcess:
    env = {**tool_env(), **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def copy_project(dest: Path) -> Path:
    """A fresh git repository holding the project's tracked and untracked-not-ignored files, and the
    extension modules the install compiled into ``src/`` (``tsfmlab._mkl_dispatch``)."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    files += [str(p.relative_to(REPO)) for p in (REPO / "src").rglob("*.so")]  # built by the install
    dest.mkdir(parents=True, exist_ok=True)
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=dest, check=True)
    commit(dest, "snapshot")
    return dest


def commit(root: Path, message: str) -> None:
    """Commit everything in the test repository ``root`` (added, changed and removed files)."""
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    git = ["git", "-c", "user.email=ci@tsfmlab", "-c", "user.name=ci"]
    subprocess.run([*git, "commit", "-q", "-m", message], cwd=root, check=True)


def fresh_project(dest: Path) -> Path:
    """:func:`copy_project` holding nothing but code, params and inputs: every stage output removed
    (``data/raw`` holds the files a researcher brings, a stage dep, not outputs)."""
    root = copy_project(dest)
    inputs = root / "data" / "raw"
    for rel in ("data", "metrics", "reports", "plots"):
        for f in (root / rel).rglob("*"):
            if f.is_file() and f.name != ".gitignore" and inputs not in f.parents:
                f.unlink()
    return root


def section_params(section: str, **overrides) -> dict:
    """The repository's params.yaml section with some keys replaced (nested dicts merged)."""
    from tsfmlab.params import load_params

    values = dict(load_params(REPO / "params.yaml")[section])
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return values


TINY = {
    "generate_dysts": {
        "systems": ["Lorenz", "Rossler", "Chua", "Thomas", "Halvorsen", "SprottB"],
        "exclude_systems": [],
        "n_initial_conditions": 1,
        "length": 128,
        "transient": 20,
        "test_fraction": 0.34,
    },
    "kernelsynth": {"n_series": 8, "n_heldout": 2, "length": 64},
    "build_mixups": {"n_series": 16, "min_length": 16, "max_length": 64, "real_datasets": ["airline"]},
    "prepare_heldout": {"real": ["solar"], "benchmark": ["monash_m1_yearly"]},
}


def train_values(section: str, **overrides) -> dict:
    """A stage's ``train`` block joined with ``shared.train``: the values of one run's ``TrainParams``."""
    from tsfmlab.params import load_params

    params = load_params(REPO / "params.yaml")
    return {**params["shared"]["train"], **params[section]["train"], **overrides}


def write_params(dest: Path, overrides: dict | None = None, base: dict | None = None) -> Path:
    """params.yaml in ``dest``: the repository's (or ``base``) with per-section key overrides."""
    from ruamel.yaml import YAML

    from tsfmlab.params import load_params

    params = base if base is not None else load_params(REPO / "params.yaml")
    params = {k: (dict(v) if isinstance(v, dict) else v) for k, v in params.items()}
    for section, values in (overrides or {}).items():
        params[section] = {**params.get(section, {}), **values}
    dest.mkdir(parents=True, exist_ok=True)
    with (dest / "params.yaml").open("w") as f:
        YAML(typ="safe", pure=True).dump(params, f)
    return dest / "params.yaml"


def differing_files(a: Path, b: Path, rels: list[str]) -> list[str]:
    """The files under ``a / rel`` and ``b / rel`` (files or directories) whose bytes differ, or that
    only one of them has; ``rel`` first if it is missing from both."""
    files: dict[str, list[bytes | None]] = {}
    for i, root in enumerate((a, b)):
        for rel in rels:
            path = root / rel
            found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            for file in found:
                files.setdefault(file.relative_to(root).as_posix(), [None, None])[i] = file.read_bytes()
    missing = [rel for rel in rels if not (a / rel).exists() and not (b / rel).exists()]
    return missing + sorted(rel for rel, (x, y) in files.items() if x != y)


@functools.cache
def dvc_yaml() -> dict:
    """dvc.yaml, parsed once per test process (read it, do not modify it)."""
    from ruamel.yaml import YAML

    return YAML(typ="safe").load((REPO / "dvc.yaml").read_text())


def with_paths(text: str) -> str:
    """``text`` with every ``${paths.<name>}`` of dvc.yaml's vars filled in."""
    import re

    paths = next(v["paths"] for v in dvc_yaml()["vars"] if "paths" in v)
    return re.sub(r"\$\{paths\.(\w+)\}", lambda m: paths[m.group(1)], text)


def stage_argv(stage: str, args: tuple[str, ...] = ()) -> list[str]:
    """The arguments dvc.yaml's cmd gives ``stages/<stage>.py``: ``args`` for its positional ``${key}`` /
    ``${item...}`` ones (a grid cell), then its ``--<path>`` flags with the paths and the cell filled in."""
    import re
    import shlex

    spec = dvc_yaml()["stages"][stage]
    tokens = shlex.split(with_paths(spec.get("do", spec)["cmd"]))
    tokens = tokens[next(i for i, t in enumerate(tokens) if t.endswith(f"stages/{stage}.py")) + 1 :]
    positional = tokens[: next((i for i, t in enumerate(tokens) if t.startswith("--")), len(tokens))]
    cell = dict(zip(positional, args))
    flags = [re.sub(r"\$\{[\w.]+\}", lambda m: cell.get(m.group(0), m.group(0)), t) for t in tokens[len(positional) :]]
    return [*(args or [t for t in positional if "${" not in t]), *flags]


def stage_outputs(stage: str) -> list[str]:
    """Every out, metric and plot that dvc.yaml declares for ``stage`` (``${paths.*}`` filled in)."""
    spec = dvc_yaml()["stages"][stage]
    paths = []
    for kind in ("outs", "metrics", "plots"):
        for item in spec.get(kind, []):
            paths.append(with_paths(next(iter(item)) if isinstance(item, dict) else item))
    return paths


#: stages that ``run_stage_script`` runs in the test process (``in_process=None``): they hold no state
#: between runs beyond pure caches (the Hugging Face Trainer's arguments reset accelerate's state; what a
#: run changes of the process, :func:`run_stage_in_process` restores), start no worker processes at the
#: tests' sizes and are not launched through torchrun, so a run here writes the bytes a
#: ``python stages/<stage>.py`` process writes (the resume tests compare a killed process's rerun with
#: such runs, tests/stages/test_classification_stages.py both ways) without an interpreter start-up and
#: a second import of torch, transformers, Lightning and chronos per run.
IN_PROCESS = {
    "prepare_ucr", "extract_features", "classify", "baseline", "classification_report", "prepare_energy",
    "evaluate_energy", "evaluate_forecast", "forecast_leaderboard", "evaluate_dysts", "prepare_heldout",
    "pretrain_timae", "finetune_timae", "report",
    "teacher", "distill", "finetune_dysts", "chronos2", "finetune_energy", "ttm",
}  # fmt: skip


def run_stage_script(
    stage: str,
    cwd: Path,
    check: bool = True,
    args: tuple[str, ...] = (),
    in_process: bool | None = None,
    **env,
) -> subprocess.CompletedProcess:
    """``python stages/<stage>.py args`` in ``cwd``, with the path flags of dvc.yaml's cmd (extra
    environment variables: ``env``); in this process where ``in_process`` is true, or is None and the
    stage is in :data:`IN_PROCESS`."""
    if in_process or (in_process is None and stage in IN_PROCESS):
        proc = run_stage_in_process(stage, cwd, args, env)
    else:
        cmd = [sys.executable, str(REPO / "stages" / f"{stage}.py"), *stage_argv(stage, args)]
        proc = subprocess.run(
            cmd, cwd=cwd, env={**tool_env(), **env}, capture_output=True, text=True, timeout=1800
        )
    if check and proc.returncode != 0:
        raise AssertionError(f"stage {stage} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_stage_in_process(
    stage: str, cwd: Path, args: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run a stage script in this process, as ``python stages/<stage>.py`` would run it in ``cwd``: no
    interpreter start-up, no second import of torch (``args``: as :func:`stage_argv`; ``env``: extra environment
    variables, for the run only). The exit status and output come back as from a subprocess."""
    import contextlib
    import io
    import runpy
    import traceback

    import torch

    script = str(REPO / "stages" / f"{stage}.py")
    out, err, code = io.StringIO(), io.StringIO(), 0
    old_cwd, old_argv, old_env = os.getcwd(), sys.argv, dict(os.environ)
    old_torch = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), torch.get_default_dtype())
    try:
        os.chdir(cwd)
        sys.argv = [script, *stage_argv(stage, args)]
        os.environ.update(env or {})
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(script, run_name="__main__")
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
            except Exception:  # what the interpreter would print before exiting with status 1
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(old_cwd)
        sys.argv = old_argv
        os.environ.clear()
        os.environ.update(old_env)  # e.g. what a Trainer's arguments export for accelerate
        torch.set_num_threads(old_torch[0])
        torch.use_deterministic_algorithms(old_torch[1])
        torch.set_default_dtype(old_torch[2])
    return subprocess.CompletedProcess([sys.executable, script, *args], code, out.getvalue(), err.getvalue())


#: trainer keys that make a training stage run a few tiny steps (with models from ``tiny_chronos``)
TINY_TRAIN = {"max_steps": 4, "save_steps": 2, "log_steps": 1, "per_device_train_batch_size": 4}
#: window keys for tiny corpora (context and prediction lengths are the model's)
TINY_WINDOWS = {"min_past": 8, "shuffle_buffer_length": 10}


def tokenizer_params(
    context_length: int = 16,
    prediction_length: int = 4,
    num_samples: int = 2,
    n_tokens: int = 64,
    limit: float = 15.0,
):
    """The tokenizer of the tests' Chronos-T5 models: mean scaling, ``n_tokens`` uniform bins in +-``limit``."""
    from tsfmlab.models.chronos_models import TokenizerParams

    return TokenizerParams(
        tokenizer_class="MeanScaleUniformBins",
        tokenizer_kwargs={"low_limit": -limit, "high_limit": limit},
        n_tokens=n_tokens,
        use_eos_token=True,
        context_length=context_length,
        prediction_length=prediction_length,
        num_samples=num_samples,
    )


def tiny_chronos(context_length: int = 32, prediction_length: int = 8, seed: int = 0, **overrides):
    """A random-weight Chronos-T5 pipeline small enough for tests (64 tokens, d_model 16)."""
    from tsfmlab.models.chronos_models import new_chronos_t5

    tok = tokenizer_params(context_length=context_length, prediction_length=prediction_length, num_samples=4)
    dims = {"d_model": 16, "d_ff": 32, "num_heads": 2, "d_kv": 8, **overrides}
    return new_chronos_t5("nano", tok, overrides=dims, seed=seed)


def tiny_chronos2(seed: int = 0):
    """A random-weight Chronos-2 (d_model 32, one layer, 16 steps per pass: longer horizons take the
    long-horizon path) built from chronos' own config classes."""
    import torch
    from chronos.chronos2 import Chronos2CoreConfig, Chronos2Model, Chronos2Pipeline

    config = Chronos2CoreConfig(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4, dropout_rate=0.0)
    config.chronos_config = {
        "context_length": 512, "input_patch_size": 16, "input_patch_stride": 16, "output_patch_size": 16,
        "max_output_patches": 1, "quantiles": [0.01, 0.05, *[i / 10 for i in range(1, 10)], 0.95, 0.99],
        "use_reg_token": True, "use_arcsinh": True,
    }  # fmt: skip
    config.architectures = ["Chronos2Model"]
    torch.manual_seed(seed)
    return Chronos2Pipeline(Chronos2Model(config).eval())


DATA_STAGES = ["generate_dysts", "kernelsynth", "build_mixups", "prepare_heldout"]


def made_once(tmp_path_factory, name: str, make) -> Path:
    """The directory ``name`` that ``make(directory)`` fills, made once per test run: under pytest-xdist
    the workers share it (the first to need it makes it while the others wait on a lock; a worker that
    failed half-way leaves it to be made again)."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    root = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root  # the workers' common directory
    work, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            make(work)
            done.touch()
    return work


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A working directory in which the data stages ran on TINY params (shared, do not modify)."""

    def make(work: Path) -> None:
        write_params(work, TINY)
        for stage in DATA_STAGES:  # one worker: in this process (test_data_stages compares with two processes)
            run_stage_script(stage, work, in_process=True, TSFMLAB_N_JOBS="1")

    return made_once(tmp_path_factory, "tiny_run", make)


#: ``python -c KILL_AT_STEP <n> <script> [args]``: the stage script, killed (SIGKILL) as the ``n``-th
#: training step of its Hugging Face Trainers begins
KILL_AT_STEP = """
import os, runpy, signal, sys
import tsfmlab
from transformers.trainer_callback import CallbackHandler

kill_at, begun, on_step_begin = int(sys.argv[1]), [], CallbackHandler.on_step_begin

def counted(self, args, state, control, **kwargs):
    begun.append(state.global_step)
    if len(begun) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return on_step_begin(self, args, state, control, **kwargs)

CallbackHandler.on_step_begin = counted
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class Killed(Exception):
    """Raised by ``kill_at_epoch``'s callback: the stand-in for a process killed mid-run."""


def kill_at_epoch(epoch: int):
    """A Lightning callback that raises ``Killed`` as epoch ``epoch`` (0-based) begins: after the
    checkpoints and logs of the epochs before."""
    import lightning as L

    class Kill(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == epoch:
                raise Killed

    return Kill()


def kill_at_step(stage: str, cwd: Path, step: int, args: tuple[str, ...] = ()) -> None:
    """Run a training stage and kill it (SIGKILL) as the ``step``-th training step begins, counted over
    every Hugging Face Trainer it runs: after the logs and checkpoints of the steps before."""
    import signal

    script = str(REPO / "stages" / f"{stage}.py")
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AT_STEP, str(step), script, *stage_argv(stage, args)],
        cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, f"{stage} was not killed:\n{proc.stdout}\n{proc.stderr}"
