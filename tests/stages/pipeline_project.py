"""The smoke profile's `dvc repro` in a fresh copy of the project, made once per test run (the `project`
fixture of tests/stages/conftest.py) and the DVC helpers of the tests that start from it.

The copy's params are the smoke profile (profiles/smoke.yaml: every stage, smallest sizes), whose outputs
must hash as tests/stages/smoke_outputs.json records; ``TSFMLAB_TEST_PROFILE=default`` reproduces the
default params instead and compares with the committed dvc.lock (a full `dvc repro`, about 12 minutes).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ruamel.yaml import YAML

from tests.conftest import REPO, commit, fresh_project, run
from tests.stages.file_audit import strace_prefix

STAGES = list(YAML(typ="safe").load((REPO / "dvc.yaml").read_text())["stages"])
#: the params the pipeline tests reproduce: "smoke" (profiles/smoke.yaml over params.yaml) or "default"
PROFILE = os.environ.get("TSFMLAB_TEST_PROFILE", "smoke")


def dvc(*args: str, cwd: Path, check: bool = True, env: dict | None = None):
    return run(["dvc", *args], cwd=cwd, check=check, env=env)


def ran_stages(output: str) -> set[str]:
    """The stages (foreach/matrix groups by their name) that a dvc command ran."""
    return {m.group(1) for m in re.finditer(r"Running stage '([^'@]+)(@[^']*)?'", output)}


def declared_outputs(root: Path) -> list[Path]:
    """Every out, metric and plot of every stage, foreach/matrix stages expanded (DVC's own index)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return [Path(out.fs_path) for stage in repo.index.stages for out in stage.outs]


def downstream(stage: str) -> set[str]:
    """``stage`` and every stage that (transitively) depends on one of its outputs, from DVC's own graph
    of the expanded stages (foreach/matrix groups reported by their name)."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        group = {node: node.addressing.split("@")[0] for node in graph}
        found = {stage}
        for node in [n for n in graph if group[n] == stage]:
            found |= {group[a] for a in nx.ancestors(graph, node)}
    return found


def git_clone(src: Path, dest: Path) -> Path:
    run(["git", "clone", "-q", str(src), str(dest)], cwd=src.parent)
    return dest


#: what `project` reproduces in a second copy of the project while the first one trains the forecasters:
#: the stages that need no Chronos teacher (classification data and baselines, Ti-MAE, Chronos-2 on energy)
SIDE = ["prepare_ucr", "baseline", "pretrain_timae", "finetune_timae", "prepare_energy", "evaluate_energy"]
#: where both copies start: the corpora every branch reads
DATA = ["generate_dysts", "kernelsynth", "build_mixups"]


def addresses(output: str) -> list[str]:
    """The stages (foreach/matrix items by their full address) that a dvc command ran, in order."""
    return re.findall(r"Running stage '([^']+)'", output)


def transplant(src: Path, dest: Path, stages: list[str]) -> None:
    """Copy what ``stages`` wrote in ``src`` into ``dest`` and record it there as `dvc commit --force`
    does: DVC hashes the copied outs and writes each stage's lock entry as `dvc repro` would (entries
    keep their place in dvc.lock; the objects are in the cache both copies share). One write of
    dvc.lock for all of them, where `dvc commit a b c` rewrites it (a round-trip YAML load and dump)
    once per target."""
    import contextlib
    import shutil

    from dvc.repo import Repo

    with Repo(str(src)) as repo:
        outs = [Path(o.fs_path).relative_to(src) for s in repo.index.stages if s.name in stages for o in s.outs]
    for rel in outs:
        if (src / rel).is_dir():
            shutil.copytree(src / rel, dest / rel, dirs_exist_ok=True)
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dest / rel)
    with contextlib.chdir(dest), Repo(str(dest)) as repo, repo.lock:
        recorded = sorted((s for s in repo.index.stages if s.name in stages), key=lambda s: stages.index(s.name))
        assert [s.name for s in recorded] == stages and len({s.dvcfile.path for s in recorded}) == 1, stages
        for stage in recorded:  # what `dvc commit --force` does for each target
            stage.save()
            stage.commit()
        recorded[0].dvcfile.dump_stages(recorded, update_pipeline=False)


def apply_profile(root: Path, profile: Path) -> None:
    """Write ``profile`` over the copy's params.yaml (tsfmlab.profile's merge) and commit it there with
    the removal of the outputs, so that the copy's HEAD is the tree `dvc repro` starts from."""
    from tsfmlab.params import load_params
    from tsfmlab.profile import merged

    params = merged(load_params(root / "params.yaml"), load_params(profile))
    with (root / "params.yaml").open("w") as f:  # round-trip: keys in their order (grids run in it)
        YAML(typ="rt", pure=True).dump(params, f)
    (root / "dvc.lock").unlink()  # the default params' record: `dvc repro` writes the profile's
    commit(root, profile.stem)


def build(base: Path) -> Path:
    """In ``base``, a fresh copy of the project after `dvc repro` of the smoke profile (or the default params).

    Two copies share one DVC cache, so that the branches that need no Chronos teacher run beside the
    forecasters' training: after the corpora (DATA), a second copy reproduces SIDE while this one trains
    the forecasters; SIDE's outputs then come back here through `dvc commit` (transplant) and a last
    `dvc repro` here runs the rest. Every stage runs once, in one of the copies, from a tree holding only
    code, params and inputs. Each run is traced where strace exists (``traces.json``, read by
    test_every_stage_opens_only_declared_paths); each copy runs its own library."""
    import subprocess

    from tests.conftest import tool_env

    root, side = fresh_project(base / "project"), fresh_project(base / "side")
    for repo in (root, side):
        if PROFILE != "default":
            apply_profile(repo, REPO / "profiles" / f"{PROFILE}.yaml")
        dvc("cache", "dir", "--local", str(base / "cache"), cwd=repo)
    traces = []

    def traced(name: str, repo: Path) -> list[str]:
        prefix = strace_prefix(base / f"{name}.strace") or []
        if prefix:
            traces.append([str(base / f"{name}.strace"), str(repo)])
        return [*prefix, "dvc", "repro"]

    # test_params_header_holds reads what each stage read; one data-generation worker per stage, since
    # the other test worker has the second core (worker counts give the same bytes: test_data_stages)
    params_read = {"TSFMLAB_PARAMS_TRACE": str(base / "params_read.tsv"), "TSFMLAB_N_JOBS": "1"}
    env = {"PYTHONPATH": str(root / "src"), **params_read}
    data = addresses(run([*traced("data", root), *DATA], cwd=root, env=env).stdout)
    transplant(root, side, data)
    log = base / "side.log"  # a file, not a pipe: nobody reads a pipe while this copy trains (it would fill)
    with log.open("w") as out:
        side_run = subprocess.Popen(
            [*traced("side", side), *SIDE], cwd=side, env={**tool_env(), "PYTHONPATH": str(side / "src"), **params_read},
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            forecasters = run([*traced("forecasters", root), "evaluate_dysts", "forecast_leaderboard"], cwd=root, env=env)
        finally:
            side_run.wait(timeout=1800)
    side_out = log.read_text()
    assert side_run.returncode == 0, side_out[-5000:]
    assert not set(addresses(side_out)) & set(data + addresses(forecasters.stdout)), side_out  # run once
    transplant(side, root, addresses(side_out))
    rest = run(traced("rest", root), cwd=root, env=env).stdout
    assert not set(addresses(rest)) & set(addresses(side_out)), rest  # SIDE's results were taken as done
    ran = {a.split("@")[0] for a in data + addresses(forecasters.stdout) + addresses(side_out) + addresses(rest)}
    assert ran == set(STAGES), (forecasters.stdout, side_out, rest)
    (base / "traces.json").write_text(json.dumps(traces))
    # what the repro changed among committed files (test_committed_outputs_are_reproduced_bit_for_bit);
    # a profile's results are then committed, as a user commits a repro, for the experiments to start from
    status = run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root).stdout
    (base / "git_status.txt").write_text(status)
    if PROFILE != "default":
        commit(root, "dvc repro")
    return root


