"""The DVC pipeline as users drive it: repro, rerunning nothing when nothing changed, shared caches and remotes.

Everything runs in fresh git repositories holding a copy of the project, never in the developer's checkout:
`project` (tests/stages/pipeline_project.py) is that copy after `dvc repro` of the smoke profile (or of the
default params). Experiments (the queue, SLURM jobs) start from it in tests/stages/test_experiments.py, which
also checks incremental rebuilds: a param change reruns exactly its stage and what depends on it.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.conftest import REPO, run
from tests.stages.file_audit import StageFiles, covered, parse, temp_sibling
from tests.stages.pipeline_project import PROFILE, declared_outputs, dvc, git_clone, ran_stages

pytestmark = pytest.mark.slow

#: every output's md5 after `dvc repro` of the smoke profile, by stage (what dvc.lock is to the default)
SMOKE_OUTPUTS = REPO / "tests" / "stages" / "smoke_outputs.json"


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
    lock = YAML(typ="safe").load((project / "dvc.lock").read_text())["stages"]
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
    encoders = YAML(typ="safe").load((project / "params.yaml").read_text())["classification"][
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
    return YAML(typ="safe").load(text)


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_remote_shares_every_output(project, tmp_path):
    """Every output through a directory remote (what the SLURM test's jobs pull from too): pushed from
    the project, pulled into a fresh clone, which is then up to date."""
    clone = git_clone(project, tmp_path / "clone")
    for repo, default in ((project, []), (clone, ["-d"])):  # the project's later tests keep no default remote
        dvc("remote", "add", *default, "--local", "-f", "shared", str(tmp_path / "remote"), cwd=repo)
    dvc("push", "-r", "shared", cwd=project)
    dvc("pull", cwd=clone)
    assert all(p.exists() for p in declared_outputs(clone))
    assert "up to date" in dvc("status", cwd=clone).stdout
    assert ran_stages(dvc("repro", cwd=clone).stdout) == set()


@pytest.fixture
def s3_remote():
    """An S3 bucket on moto's server on 127.0.0.1 (the s3 extra's code path): (url, endpoint, the
    environment DVC's commands need)."""
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("dvc_s3")
    moto_server = pytest.importorskip("moto.server")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        endpoint = f"http://127.0.0.1:{port}"
        keys = {k.lower(): v for k, v in creds.items() if "KEY" in k}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys).create_bucket(Bucket="tsfmlab")
        yield "s3://tsfmlab/cache", endpoint, creds
    finally:
        server.stop()


def test_an_s3_remote_carries_a_stages_outputs(project, s3_remote, tmp_path):
    """One stage's outputs (two Arrow directories) through S3: pushed from the project, pulled into a
    fresh clone by stage name, byte for byte, and nothing else with them. The code path is the same for
    every object, so one stage's do (the directory remote above carries all of them)."""
    url, endpoint, creds = s3_remote
    clone = git_clone(project, tmp_path / "clone")
    for repo in (project, clone):
        dvc("remote", "add", "--local", "-f", "s3", url, cwd=repo)
        dvc("remote", "modify", "--local", "s3", "endpointurl", endpoint, cwd=repo)
    dvc("push", "-r", "s3", "generate_dysts", cwd=project, env=creds)
    dvc("pull", "-r", "s3", "generate_dysts", cwd=clone, env=creds)
    paths = YAML(typ="safe").load((project / "dvc.yaml").read_text())["vars"][0]["paths"]
    for key in ("dysts", "dysts_test"):
        files = sorted(p.relative_to(project) for p in (project / paths[key]).rglob("*") if p.is_file())
        assert files and all((clone / f).read_bytes() == (project / f).read_bytes() for f in files), key
    assert "up to date" in dvc("status", "generate_dysts", cwd=clone).stdout
    assert not (clone / paths["kernelsynth"]).exists()  # pulled by stage: the other outputs stay remote
