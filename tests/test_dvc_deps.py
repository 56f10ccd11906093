"""dvc.yaml declares every project file a stage can execute: its script and its import closure."""

from __future__ import annotations

import subprocess
import sys

from ruamel.yaml import YAML

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "dvc_deps.py"


def check(dvc_yaml) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--dvc-yaml", str(dvc_yaml)], capture_output=True, text=True
    )


def test_every_stage_declares_its_import_closure():
    proc = check(REPO / "dvc.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_missing_or_stale_code_dep_is_reported(tmp_path):
    spec = YAML(typ="rt", pure=True).load((REPO / "dvc.yaml").read_text())
    deps = spec["stages"]["distill"]["deps"]
    deps.remove("src/tsfmlab/training/distillation.py")
    deps.append("src/tsfmlab/data/ucr.py")
    path = tmp_path / "dvc.yaml"
    YAML(typ="rt", pure=True).dump(spec, path)
    proc = check(path)
    assert proc.returncode == 1
    assert "distill: imports src/tsfmlab/training/distillation.py, not a dep" in proc.stdout
    assert "distill: declares src/tsfmlab/data/ucr.py, which it does not import" in proc.stdout


def test_closure_follows_lazy_and_relative_imports():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import dvc_deps
    finally:
        sys.path.pop(0)
    files = {str(p.relative_to(REPO)) for p in dvc_deps.closure(REPO / "stages" / "generate_dysts.py")}
    # cli imports numerics relatively; __init__ of every package on the way is executed
    assert {"src/tsfmlab/__init__.py", "src/tsfmlab/numerics.py", "src/tsfmlab/data/__init__.py"} <= files
    assert "src/tsfmlab/params.py" in files  # imported by every stage through tsfmlab.params


def stages_depending_on(module: str) -> set[str]:
    spec = YAML(typ="safe").load((REPO / "dvc.yaml").read_text())
    return {name for name, stage in spec["stages"].items() if module in (stage.get("deps") or stage["do"]["deps"])}


def test_an_edit_to_the_ttm_or_energy_code_reruns_only_the_stages_that_use_it():
    """TTMs load through models/ttm (only the forecast evaluation takes any family), and the energy
    frame is read by the energy stages alone: editing either module reruns nothing else."""
    assert stages_depending_on("src/tsfmlab/models/ttm.py") == {"ttm", "evaluate_forecast"}
    assert stages_depending_on("src/tsfmlab/data/energy.py") == {"prepare_energy", "finetune_energy", "evaluate_energy"}


def test_write_restores_the_committed_layout(tmp_path):
    """--write on a dvc.yaml whose distill stage lost a code dep and gained a stale one gives back the
    committed file byte for byte: its data deps first, its code deps after, comments and the rest kept."""
    text = (REPO / "dvc.yaml").read_text()
    broken = text.replace(" src/tsfmlab/training/distillation.py,", " src/tsfmlab/data/ucr.py,", 1)
    assert broken != text
    path = tmp_path / "dvc.yaml"
    path.write_text(broken)
    assert check(path).returncode == 1
    proc = subprocess.run([sys.executable, str(SCRIPT), "--write", "--dvc-yaml", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert path.read_text() == text


def test_the_committed_lock_records_this_trees_code_and_params():
    """dvc.lock is the record of `dvc repro` of this tree: every stage has an entry, and every code or
    input file a stage reads (no stage's output) and every param it declares has the hash and value that
    the lock records, so a change to code or params comes with the repro it calls for. (That the recorded
    outputs are what `dvc repro` writes: tests/stages/test_pipeline.py with TSFMLAB_TEST_PROFILE=default.)"""
    import hashlib

    from dvc.repo import Repo

    from tsfmlab.params import load_params

    lock = YAML(typ="safe").load((REPO / "dvc.lock").read_text())["stages"]
    with Repo(str(REPO)) as repo:
        names = {stage.addressing for stage in repo.index.stages}
        outs = {str(o.def_path) for stage in repo.index.stages for o in stage.outs}
    assert set(lock) == names, set(lock) ^ names
    params = load_params(REPO / "params.yaml")
    stale = []
    for name, entry in lock.items():
        for dep in entry.get("deps", []):
            path = REPO / dep["path"]
            if dep["path"] in outs or any(dep["path"].startswith(o + "/") for o in outs) or not path.is_file():
                continue  # another stage's output (its own check is the pipeline test) or a directory input
            if hashlib.md5(path.read_bytes()).hexdigest() != dep["md5"]:
                stale.append(f"{name}: {dep['path']}")
        for key, value in entry.get("params", {}).get("params.yaml", {}).items():
            node = params
            for part in key.split("."):
                node = node[part]
            if node != value:
                stale.append(f"{name}: param {key}")
    assert not stale, "dvc.lock is not the record of this tree (run `dvc repro`):\n" + "\n".join(stale)
