"""The DVC pipeline as users drive it: repro, incremental rebuilds, experiments, queues, shared caches.

Everything runs in fresh git repositories holding a copy of the project, never in the developer's checkout.
The copy's params are the smoke profile (profiles/smoke.yaml: every stage, smallest sizes), whose outputs
must hash as tests/stages/smoke_outputs.json records; ``TSFMLAB_TEST_PROFILE=default`` reproduces the
default params instead and compares with the committed dvc.lock (a full `dvc repro`, about 12 minutes).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.conftest import REPO, commit, fresh_project, run, stage_argv
from tests.stages.file_audit import StageFiles, covered, parse, strace_prefix, temp_sibling

pytestmark = pytest.mark.slow

STAGES = list(YAML(typ="safe", pure=True).load((REPO / "dvc.yaml").read_text())["stages"])
#: the params the pipeline tests reproduce: "smoke" (profiles/smoke.yaml over params.yaml) or "default"
PROFILE = os.environ.get("TSFMLAB_TEST_PROFILE", "smoke")
#: every output's md5 after `dvc repro` of the smoke profile, by stage (what dvc.lock is to the default)
SMOKE_OUTPUTS = REPO / "tests" / "stages" / "smoke_outputs.json"


def dvc(*args: str, cwd: Path, check: bool = True, env: dict | None = None):
    return run(["dvc", *args], cwd=cwd, check=check, env=env)


def ran_stages(output: str) -> set[str]:
    """The stages (foreach/matrix groups by their name) that a dvc command ran."""
    import re

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


def _addresses(output: str) -> list[str]:
    """The stages (foreach/matrix items by their full address) that a dvc command ran, in order."""
    return re.findall(r"Running stage '([^']+)'", output)


def _transplant(src: Path, dest: Path, stages: list[str]) -> None:
    """Copy what ``stages`` wrote in ``src`` into ``dest`` and record it there with `dvc commit`: DVC
    hashes the copied outs and writes each stage's lock entry as `dvc repro` would (entries keep their
    place in dvc.lock; the objects are in the cache both copies share)."""
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
    dvc("commit", "--force", *stages, cwd=dest)


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


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fresh copy of the project after `dvc repro` of the smoke profile (or the default params).

    Two copies share one DVC cache, so that the branches that need no Chronos teacher run beside the
    forecasters' training: after the corpora (DATA), a second copy reproduces SIDE while this one trains
    the forecasters; SIDE's outputs then come back here through `dvc commit` (_transplant) and a last
    `dvc repro` here runs the rest. Every stage runs once, in one of the copies, from a tree holding only
    code, params and inputs. Each run is traced where strace exists (``traces.json``, read by
    test_every_stage_opens_only_declared_paths); each copy runs its own library."""
    import subprocess

    from tests.conftest import tool_env

    base = tmp_path_factory.mktemp("pipeline")
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

    params_read = {"TSFMLAB_PARAMS_TRACE": str(base / "params_read.tsv")}  # test_params_header_holds
    env = {"PYTHONPATH": str(root / "src"), **params_read}
    data = _addresses(run([*traced("data", root), *DATA], cwd=root, env=env).stdout)
    _transplant(root, side, data)
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
    assert not set(_addresses(side_out)) & set(data + _addresses(forecasters.stdout)), side_out  # run once
    _transplant(side, root, _addresses(side_out))
    rest = run(traced("rest", root), cwd=root, env=env).stdout
    assert not set(_addresses(rest)) & set(_addresses(side_out)), rest  # SIDE's results were taken as done
    ran = {a.split("@")[0] for a in data + _addresses(forecasters.stdout) + _addresses(side_out) + _addresses(rest)}
    assert ran == set(STAGES), (forecasters.stdout, side_out, rest)
    (base / "traces.json").write_text(json.dumps(traces))
    # what the repro changed among committed files (test_committed_outputs_are_reproduced_bit_for_bit);
    # a profile's results are then committed, as a user commits a repro, for the experiments to start from
    status = run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root).stdout
    (base / "git_status.txt").write_text(status)
    if PROFILE != "default":
        commit(root, "dvc repro")
    return root


def test_repro_produces_every_declared_output(project):
    missing = [str(p.relative_to(project)) for p in declared_outputs(project) if not p.exists()]
    assert not missing
    assert json.loads((project / "reports" / "dysts.json").read_text())["train"]["accepted"] > 0


def _covers(key: str, other: str) -> bool:
    return other == key or other.startswith(key + ".")


def _leaves(obj, prefix: str = "") -> list[str]:
    if isinstance(obj, dict) and obj:
        return [leaf for k, v in obj.items() for leaf in _leaves(v, f"{prefix}{k}.")]
    return [prefix[:-1]]


def test_params_header_holds(project):
    """What params.yaml's header says: each stage reads exactly the keys it declares in dvc.yaml (as DVC
    records them in dvc.lock), and every key is read by some stage. Each read is recorded by
    tsfmlab.params (TSFMLAB_PARAMS_TRACE) under DVC's name of the running stage."""
    from tsfmlab.params import load_params

    read: dict[str, set[str]] = {}
    for line in (project.parent / "params_read.tsv").read_text().splitlines():
        stage, key = line.split("\t")
        read.setdefault(stage, set()).add(key)
    lock = YAML(typ="safe", pure=True).load((project / "dvc.lock").read_text())["stages"]
    declared = {name: set(s.get("params", {}).get("params.yaml", {})) for name, s in lock.items()}
    assert set(read) == set(declared), set(read) ^ set(declared)
    for stage, keys in declared.items():
        undeclared = [r for r in read[stage] if not any(_covers(d, r) for d in keys)]
        assert not undeclared, f"{stage} reads {undeclared} without declaring them"
        unread = [d for d in keys if not any(_covers(d, r) or _covers(r, d) for r in read[stage])]
        assert not unread, f"{stage} declares {unread} but never reads them"
    every = set().union(*read.values())
    leaves = _leaves(load_params(project / "params.yaml"))
    assert [leaf for leaf in leaves if not any(_covers(r, leaf) for r in every)] == []


def numeric_leaves(obj) -> int:
    if isinstance(obj, dict):
        return sum(numeric_leaves(v) for v in obj.values())
    return int(isinstance(obj, (int, float)) and not isinstance(obj, bool))


def test_metrics_are_headline_numbers():
    """`dvc exp show` lists at most 70 metric columns for the default profile (70 today: a stage's headline
    and its baseline; a forecasting model adds its skill score with interval and its leaderboard row):
    details are reports. The default's metrics are committed (git-tracked files)."""
    shown = json.loads(dvc("metrics", "show", "--json", cwd=REPO).stdout)
    files = next(iter(shown.values()))["data"]
    columns = {path: numeric_leaves(content.get("data", {})) for path, content in files.items()}
    assert 0 < sum(columns.values()) <= 70, columns
    assert not any(path.startswith("dvclive/") for path in columns)


# Paths a stage may touch that are no DVC dep or out: git and DVC internals (dvclive reads the commit and
# the ignore files), byte-code caches, compiled extension modules (their C source is the dep), and the
# resume checkpoints of training stages (keyed by params and input hashes).
UNTRACKED = (".git", ".dvc", ".checkpoints", ".gitignore", ".dvcignore")


def _untracked(path: str) -> bool:
    parts = path.split("/")
    return parts[0] in UNTRACKED or "__pycache__" in parts or (parts[0] == "src" and path.endswith(".so"))


def test_every_stage_opens_only_declared_paths(project):
    """Every file a stage opened for reading is a declared dep (or its own out, or params.yaml), and
    every file it wrote is a declared out (or an atomic-write temporary beside one)."""
    traces = json.loads((project.parent / "traces.json").read_text())
    if not traces:
        pytest.skip("strace is not installed: no record of the files stages open")
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        stages = list(repo.index.stages)
        commands = {(s.cmd if isinstance(s.cmd, str) else " ".join(s.cmd)).strip(): s.name for s in stages}
        declared = {
            s.name: (
                [str(Path(d.fs_path).relative_to(project)) for d in s.deps],
                [str(Path(o.fs_path).relative_to(project)) for o in s.outs],
            )
            for s in stages
        }
    files = {name: StageFiles() for name in commands.values()}
    for log, root in traces:  # each copy's runs, paths relative to that copy
        for name, seen in parse(Path(log), commands, Path(root)).items():
            files[name].reads |= seen.reads
            files[name].writes |= seen.writes
    # classify@*-mlp_finetune reloads the encoder extract_features used from the directory that
    # data/features/<encoder>/encoder.json names (a dep holding the weights' SHA-256, which the stage
    # verifies before training): DVC cannot template a matrix item's value into deps, so that directory is
    # tracked through the hash. The only read allowed outside a stage's deps.
    encoders = YAML(typ="safe", pure=True).load((project / "params.yaml").read_text())["classification"][
        "encoders"
    ]
    for name in files:
        if name.startswith("classify@"):
            encoder = name.split("@")[1].split("-")[1]
            declared[name][0].append(encoders[encoder])
    assert files["teacher"].reads and files["generate_dysts"].writes, "the trace saw no stage at work"
    problems = []
    for name, seen in files.items():
        deps, outs = declared[name]
        known = deps + outs
        for path in sorted(seen.reads):
            ancestor = any(k.startswith(path.rstrip("/") + "/") for k in known)  # a directory listing
            if not (
                covered(path, [*known, "params.yaml"])
                or ancestor
                or temp_sibling(path, outs)
                or _untracked(path)
            ):
                problems.append(f"{name} read {path}, not a dep")
        for path in sorted(seen.writes):
            ancestor = any(o.startswith(path.rstrip("/") + "/") for o in outs)  # mkdir of an out's parent
            if not (covered(path, outs) or ancestor or temp_sibling(path, outs) or _untracked(path)):
                problems.append(f"{name} wrote {path}, not an out")
    assert not problems, "\n".join(problems)


def _encodings(node):
    """Every vega-lite ``encoding`` mapping inside a rendered plot (layered templates nest them)."""
    if isinstance(node, dict):
        if isinstance(node.get("encoding"), dict):
            yield node["encoding"]
        for value in node.values():
            yield from _encodings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _encodings(value)


def test_every_plot_renders(project):
    """`dvc plots show` renders every declared plot without an error; each data plot has its x and y
    fields in every row, and dvclive curves use the trainer's step, strictly increasing."""
    from dvc.repo import Repo

    shown = json.loads(dvc("plots", "show", "--json", cwd=project).stdout)
    assert not shown.get("errors"), shown.get("errors")
    data = {name: items[0] for name, items in shown["data"].items()}
    with Repo(str(project)) as repo:
        declared = [
            str(Path(o.fs_path).relative_to(project)) for s in repo.index.stages for o in s.outs if o.plot
        ]
    for path in declared:
        assert any(name == path or name.startswith(path + "/") for name in data), f"{path} not rendered"
    for name, plot in data.items():
        if plot["type"] == "image":
            assert plot["url"], name
            continue
        rows = plot["content"]["data"]["values"]
        assert rows, f"{name}: no data"
        fields = {
            enc[axis]["field"]
            for enc in _encodings(plot["content"])
            for axis in ("x", "y")
            if "field" in enc.get(axis, {})
        }
        assert fields, f"{name}: no x/y encoding"
        for field in fields - {"rev", "filename", "field"}:
            assert all(field in row for row in rows), f"{name}: rows without {field!r}"
        if name.startswith("dvclive/") and name.endswith(".tsv"):
            steps = [int(float(row["step"])) for row in rows]
            assert steps == sorted(set(steps)), f"{name}: steps not strictly increasing: {steps[:20]}"


def parse_lock(text: str) -> dict:
    return YAML(typ="safe", pure=True).load(text)


def dag_order(root: Path) -> list[str]:
    """Every expanded stage, each after the stages it depends on (ties by name), from DVC's own graph."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph.reverse()  # edges from a stage to the stages that depend on it
        names = {node: node.addressing for node in graph}
        order = nx.lexicographical_topological_sort(graph, key=names.get)
        return [names[node] for node in order if names[node] != "dvc.yaml"]  # nodes are stages


def outputs_by_stage(lock: dict) -> dict[str, dict[str, str | None]]:
    """A parsed dvc.lock's outs: stage -> out path -> md5 (the form of smoke_outputs.json)."""
    return {name: {o["path"]: o.get("md5") for o in s.get("outs", [])} for name, s in lock["stages"].items()}


def first_difference(new: dict, committed: dict, order: list[str]) -> str | None:
    """The first stage in ``order`` whose outs (or their hashes) differ between two :func:`outputs_by_stage`
    maps, with the first differing out and the count of stages that differ; None where all agree."""
    differing = [s for s in order if new.get(s, {}) != committed.get(s, {})]
    if not differing:
        return None
    stage = differing[0]
    a, b = new.get(stage, {}), committed.get(stage, {})
    path = next(p for p in sorted(a.keys() | b.keys()) if a.get(p) != b.get(p))
    return (
        f"{stage} is the first stage in DAG order whose outputs differ from the committed record: {path} "
        f"(md5 {a.get(path)} here, {b.get(path)} committed); {len(differing)} stage(s) differ in all"
    )


def test_first_difference_names_the_first_stage_in_dag_order():
    lock = {"stages": {s: {"outs": [{"path": f"{s}/out", "md5": "a"}]} for s in ("up", "mid", "down")}}
    changed = json.loads(json.dumps(lock))
    assert first_difference(outputs_by_stage(changed), outputs_by_stage(lock), ["up", "mid", "down"]) is None
    changed["stages"]["down"]["outs"][0]["md5"] = changed["stages"]["mid"]["outs"][0]["md5"] = "b"
    message = first_difference(outputs_by_stage(changed), outputs_by_stage(lock), ["up", "mid", "down"])
    assert message.startswith("mid is the first stage") and "mid/out (md5 b here, a committed)" in message
    assert "2 stage(s) differ" in message


def test_committed_outputs_are_reproduced_bit_for_bit(project):
    # Same params -> identical output hashes on any CPU: every output hashes as recorded in the
    # repository (smoke_outputs.json; the committed dvc.lock for the default params), and no committed
    # file changes (no out holds a wall-clock figure).
    from tsfmlab.params import load_params

    # The record was made on another machine: its bytes are comparable only under the pinned CPU
    # numerics (tsfmlab.numerics), which make every stage bit-identical across x86-64 CPUs.
    assert load_params(project / "params.yaml")["numerics"]["portable"] is True
    lock = parse_lock((project / "dvc.lock").read_text())
    new = outputs_by_stage(lock)
    if PROFILE == "default":
        committed = parse_lock(run(["git", "show", "HEAD:dvc.lock"], cwd=project).stdout)
        old, hint = outputs_by_stage(committed), ""
    else:
        produced = project.parent / SMOKE_OUTPUTS.name
        produced.write_text(json.dumps(new, indent=1, sort_keys=True) + "\n")
        old = json.loads(SMOKE_OUTPUTS.read_text())
        hint = f" (a change meant to alter them: copy {produced} to {SMOKE_OUTPUTS})"
    difference = first_difference(new, old, dag_order(project))
    assert difference is None, f"{difference}{hint}"
    assert new == old, hint
    if PROFILE == "default":
        assert lock == committed
        changed = (project.parent / "git_status.txt").read_text()
        assert changed == "", f"dvc repro of the default params changed committed files:\n{changed}"
    assert "up to date" in dvc("status", cwd=project).stdout


def test_repro_again_runs_nothing(project):
    proc = dvc("repro", cwd=project)
    assert ran_stages(proc.stdout) == set()


def test_local_remote_shares_every_output(project, tmp_path):
    remote = tmp_path / "remote"
    dvc("remote", "add", "-d", "--local", "shared", str(remote), cwd=project)
    dvc("push", cwd=project)
    clone = git_clone(project, tmp_path / "clone")
    dvc("remote", "add", "-d", "--local", "shared", str(remote), cwd=clone)
    dvc("pull", cwd=clone)
    assert all(p.exists() for p in declared_outputs(clone))
    assert "up to date" in dvc("status", cwd=clone).stdout
    assert ran_stages(dvc("repro", cwd=clone).stdout) == set()

    # incremental: one param reruns exactly its stage and what depends on it (a stage that runs in
    # seconds; DVC's graph says the same holds for the data stages, e.g. the energy data)
    params = YAML(typ="rt", pure=True)
    data = params.load(clone / "params.yaml")
    data["baseline"]["seed"] = 5
    params.dump(data, clone / "params.yaml")
    assert ran_stages(dvc("repro", cwd=clone).stdout) == downstream("baseline")
    assert downstream("baseline") == {"baseline", "classification_report", "report"}
    assert {"finetune_energy", "evaluate_energy", "report"} <= downstream("prepare_energy")
    assert "chronos2" not in downstream("prepare_energy")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_s3_remote_shares_every_output(project, tmp_path):
    pytest.importorskip("dvc_s3", reason="installed without the s3 extra")
    moto_server = pytest.importorskip("moto.server", reason="installed without the dev extra")
    import boto3

    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        creds = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            **{k.lower(): v for k, v in creds.items() if "KEY" in k},
            region_name="us-east-1",
        ).create_bucket(Bucket="tsfmlab")
        for repo in (project, git_clone(project, tmp_path / "clone")):
            dvc("remote", "add", "--local", "-f", "s3", "s3://tsfmlab/cache", cwd=repo)
            dvc("remote", "modify", "--local", "s3", "endpointurl", endpoint, cwd=repo)
        dvc("push", "-r", "s3", cwd=project, env=creds)
        clone = tmp_path / "clone"
        dvc("pull", "-r", "s3", cwd=clone, env=creds)
        assert all(p.exists() for p in declared_outputs(clone))
        assert "up to date" in dvc("status", cwd=clone).stdout
        assert ran_stages(dvc("repro", cwd=clone).stdout) == set()
    finally:
        server.stop()


#: two experiments run locally through the queue; the first again as a SLURM job (the same metrics, byte
#: for byte)
EXPERIMENTS = {"baseline-seed": "baseline.seed=2", "fewer-kernels": "baseline.n_kernels=840"}
SLURM_EXPERIMENTS = dict(list(EXPERIMENTS.items())[:1])


def test_queued_experiments_run_two_at_a_time_and_compare(project):
    # Two experiments of the MiniRocket baseline (another seed, fewer kernels: other accuracies), side by
    # side (one thread each: numerics.threads). Both are short: the baseline stages and the reports
    # after them. A thread-count change would rerun every stage (results depend on it).
    for name, change in EXPERIMENTS.items():
        dvc("exp", "run", "--queue", "-n", name, "-S", change, cwd=project)
    dvc("queue", "start", "-j", "2", cwd=project)
    deadline = time.time() + 600
    while time.time() < deadline:
        status = dvc("queue", "status", cwd=project).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(3)
    else:
        pytest.fail(f"queue did not finish:\n{status}")
    assert status.count("Success") >= 2, status
    shown = json.loads(dvc("exp", "show", "--json", cwd=project).stdout)
    text = json.dumps(shown)
    assert all(name in text for name in EXPERIMENTS) and '"n_kernels": 840' in text
    diff = json.loads(dvc("exp", "diff", "HEAD", "fewer-kernels", "--json", cwd=project).stdout)["metrics"]
    changed = [path for path, values in diff.items() if "minirocket" in path and values["accuracy"]["diff"]]
    assert changed, diff  # other kernels, other accuracies
    dvc("queue", "stop", cwd=project, check=False)


# --------------------------------------------------------------------------------------------------
# SLURM: a one-node cluster on 127.0.0.1 (tests/slurm_cluster.py), stopped and removed afterwards


@pytest.fixture(scope="module")
def slurm():
    from tests.slurm_cluster import Unavailable, start

    try:
        cluster = start()
    except Unavailable as err:
        pytest.skip(f"no SLURM cluster here: {err}")
    try:
        yield cluster
    finally:
        cluster.stop()


def exp_refs(repo: Path) -> dict[str, str]:
    refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=repo).stdout.split()
    return {ref.rsplit("/", 1)[1]: ref for ref in refs}


def test_experiments_submitted_as_slurm_jobs_collect_to_the_local_results(project, slurm, tmp_path):
    import sys

    from tests.conftest import tool_env

    env = {**tool_env(), "SLURM_CONF": slurm.env["SLURM_CONF"]}
    bare = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(bare)], cwd=tmp_path)
    run(["git", "remote", "add", "slurm-origin", str(bare)], cwd=project)
    run(["git", "push", "-q", "slurm-origin", "HEAD:refs/heads/main"], cwd=project)
    dvc("remote", "add", "--local", "-f", "slurm-store", str(tmp_path / "store"), cwd=project)
    dvc("push", "-r", "slurm-store", cwd=project)
    submitted = {f"slurm-{name}": change for name, change in SLURM_EXPERIMENTS.items()}
    submitted["slurm-broken"] = "baseline.seed=oops"  # a valid key, a value its stage refuses on the node
    for name, change in submitted.items():
        cmd = [sys.executable, "-m", "tsfmlab.cluster", "submit", "-n", name, "-S", change,
               "--git-remote", "slurm-origin", "--dvc-remote", "slurm-store", "--sbatch-arg=--time=30"]  # fmt: skip
        assert "submitted" in run(cmd, cwd=project, env=env).stdout
    jobs = json.loads((project / ".cluster/jobs.json").read_text())
    assert "dvc pull --quiet data/features/teacher data/ucr" in (project / jobs[0]["script"]).read_text()
    states = {job["name"]: slurm.wait_job(job["job_id"]) for job in jobs}
    logs = {name: (project / f".cluster/logs/{name}.log").read_text() for name in submitted}
    expected = {"slurm-baseline-seed": "COMPLETED", "slurm-broken": "FAILED"}
    assert states == expected, f"{states}\n{logs}\n{slurm.logs()}"
    # the failed job kept its log, naming the param, and pushed nothing
    assert "baseline.seed" in logs["slurm-broken"]
    pushed = run(["git", "ls-remote", str(bare)], cwd=project).stdout
    assert "slurm-baseline-seed" in pushed and "slurm-broken" not in pushed
    listed = run([sys.executable, "-m", "tsfmlab.cluster", "list"], cwd=project, env=env).stdout
    assert "slurm-broken" in listed and "FAILED" in listed
    collected = run([sys.executable, "-m", "tsfmlab.cluster", "collect", "--git-remote", "slurm-origin"],
                    cwd=project, env=env).stdout  # fmt: skip
    assert "slurm-baseline-seed: collected" in collected and "slurm-broken: FAILED" in collected
    shown = json.dumps(json.loads(dvc("exp", "show", "--json", cwd=project).stdout))
    assert "slurm-baseline-seed" in shown
    # the same params run here give the same metrics, byte for byte
    refs = exp_refs(project)
    metrics = run(["git", "ls-files", "metrics"], cwd=project).stdout.split()
    for name, change in SLURM_EXPERIMENTS.items():
        if name not in refs:  # the queue test made them; run alone, make them here
            dvc("exp", "run", "-n", name, "-S", change, cwd=project)
            refs = exp_refs(project)
        for path in metrics:
            mine = run(["git", "show", f"{refs[name]}:{path}"], cwd=project).stdout
            theirs = run(["git", "show", f"{refs['slurm-' + name]}:{path}"], cwd=project).stdout
            assert mine == theirs, f"{name}: {path} differs between the local and the SLURM run"


def test_a_training_stage_on_two_processes_through_srun(slurm, tmp_path):
    from tests.training.test_torchrun_training import teacher_work

    work = teacher_work(tmp_path / "work", procs=2)
    job = work / "job.sh"
    job.write_text(
        f"#!/bin/bash\nset -euo pipefail\nexport PYTHONPATH={REPO / 'src'} OMP_NUM_THREADS=1\n"
        f"python -m tsfmlab.launch teacher {REPO / 'stages' / 'teacher.py'} {' '.join(stage_argv('teacher'))}\n"
    )
    from tests.conftest import tool_env

    env = {**tool_env(), "SLURM_CONF": slurm.env["SLURM_CONF"]}
    proc = run(["sbatch", "--parsable", f"--output={work / 'job.log'}", "--cpus-per-task=2", str(job)], cwd=work, env=env)
    state = slurm.wait_job(proc.stdout.strip().split(";")[0])
    log = (work / "job.log").read_text()
    assert state == "COMPLETED", f"{log}\n{slurm.logs()}"
    assert "launch: srun --nodes=1 --ntasks=1 --ntasks-per-node=1 --kill-on-bad-exit=1" in log
    assert log.count("teacher: {") == 2  # both ranks of the srun step trained and reported
    assert (work / "data/models/teacher/model.safetensors").exists()
