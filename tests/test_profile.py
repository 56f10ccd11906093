import subprocess
import sys

import pytest

from tests.conftest import REPO
from tsfmlab.errors import ParamError
from tsfmlab.params import load_params
from tsfmlab.profile import leaves, set_arguments


def test_gpu_profile_overrides_only_existing_params():
    args = set_arguments(REPO / "profiles" / "gpu.yaml", REPO / "params.yaml")
    pairs = dict(a.removeprefix("+").split("=", 1) for a in args[1::2])
    assert args[0::2] == ["-S"] * len(pairs)
    assert pairs["teacher.model.size"] == '"small"' and pairs["teacher.tokenizer.n_tokens"] == "4096"
    assert pairs["evaluate_forecast.tasks.solar.num_windows"] == "2"
    params = leaves(load_params(REPO / "params.yaml"))
    assert set(pairs) <= set(params) | {"distill.student.overrides", "classification.encoders.student"}
    # every stage family is scaled: data, Chronos, dysts fine-tuning, classification, Ti-MAE, Chronos-2
    sections = {key.split(".")[0] for key in pairs}
    assert {
        "generate_dysts", "kernelsynth", "build_mixups", "teacher", "distill", "finetune_dysts",
        "classification", "prepare_ucr", "classify", "pretrain_timae", "finetune_timae", "chronos2",
        "energy", "finetune_energy", "evaluate_energy",
    } <= sections  # fmt: skip
    assert pairs["classification.datasets"] == '["ECG5000","UWaveGestureLibraryX","FordA"]'


def test_cpu_long_profile_trains_the_default_models_longer():
    args = set_arguments(REPO / "profiles" / "cpu-long.yaml", REPO / "params.yaml")
    pairs = dict(a.split("=", 1) for a in args[1::2])  # existing keys only: no "+"
    default = leaves(load_params(REPO / "params.yaml"))
    for stage in ("teacher", "distill"):
        key = f"{stage}.train.max_steps"
        assert int(pairs[key]) > default[key]
    assert not any(k.startswith(("teacher.model", "teacher.tokenizer", "evaluate_forecast")) for k in pairs)


def test_profiles_may_add_entries_to_named_collections_only(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "classification:\n  encoders:\n    mini: data/raw/models/chronos-t5-mini\n"
    )
    assert set_arguments(tmp_path / "p.yaml", REPO / "params.yaml") == [
        "-S",
        '+classification.encoders.mini="data/raw/models/chronos-t5-mini"',  # + adds a key in DVC
    ]
    (tmp_path / "q.yaml").write_text("evaluate_forecast:\n  tasks:\n    solar:\n      windowz: 3\n")
    with pytest.raises(ParamError, match="evaluate_forecast.tasks.solar.windowz is not a param"):
        set_arguments(tmp_path / "q.yaml", REPO / "params.yaml")


def test_unknown_key_is_refused(tmp_path):
    (tmp_path / "p.yaml").write_text("teacher:\n  train:\n    max_stepz: 3\n")
    with pytest.raises(ParamError, match="teacher.train.max_stepz is not a param"):
        set_arguments(tmp_path / "p.yaml", REPO / "params.yaml")


def test_command_line_prints_arguments_without_spaces_inside():
    out = subprocess.run(
        [sys.executable, "-m", "tsfmlab.profile", "profiles/gpu.yaml"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert out[0] == "-S" and len(out) % 2 == 0


def test_dvc_applies_the_whole_gpu_profile(tmp_path):
    """DVC's own ``-S`` machinery (what ``dvc exp run`` calls) accepts every argument, and the result is
    params.yaml with the profile's values."""
    import shutil

    from dvc.utils.hydra import apply_overrides

    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    args = set_arguments(REPO / "profiles" / "gpu.yaml", REPO / "params.yaml")
    apply_overrides(params, args[1::2])
    applied = load_params(params)
    assert applied["teacher"]["model"]["size"] == "small" and applied["energy"]["source"] == "steel"
    assert applied["classification"]["encoders"] == {
        "teacher": "data/models/teacher",
        "student": "data/models/student",
    }
    assert applied["timae"]["datasets"] == ["ECG5000"]
    assert applied["shared"]["train"]["seed"] == 0  # untouched keys stay
    assert applied["shared"]["train"]["dataloader_num_workers"] == 8


#: Benchmark II of the Chronos paper, as chronos-forecasting publishes its zero-shot results.
def test_rehearsal_profile_shrinks_sizes_and_keeps_the_gpu_profiles_switches():
    """profiles/gpu_rehearsal.yaml changes sizes (and the offline inputs); a mapping for a null param
    (teacher.model.overrides) passes whole, in Hydra's syntax."""
    gpu = dict(a.removeprefix("+").split("=", 1) for a in set_arguments(REPO / "profiles" / "gpu.yaml")[1::2])
    stacked = set_arguments([REPO / "profiles" / "gpu.yaml", REPO / "profiles" / "gpu_rehearsal.yaml"])
    both = dict(a.removeprefix("+").split("=", 1) for a in stacked[1::2])
    assert both["distill.student.overrides.d_model"] == "32" and "distill.student.overrides" not in both
    assert both["teacher.train.max_steps"] == "3" and both["teacher.train.torch_compile"] == "true"
    shrunk = dict(a.split("=", 1) for a in set_arguments(REPO / "profiles" / "gpu_rehearsal.yaml")[1::2])
    assert shrunk["teacher.model.overrides"] == "{d_model:32,d_ff:64,num_layers:1,num_decoder_layers:1,num_heads:2,d_kv:16}"
    for key in ("teacher.train.torch_compile", "shared.train.dataloader_num_workers",
                "teacher.tokenizer.context_length", "teacher.tokenizer.n_tokens"):  # fmt: skip
        assert key in gpu and key not in shrunk
    assert int(shrunk["build_mixups.n_series"]) < int(gpu["build_mixups.n_series"])


def _section_classes() -> dict[str, type]:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import params_schema
    finally:
        sys.path.pop(0)
    return {section: params_schema.load_class(spec) for section, spec in params_schema.SECTIONS.items()}


PROFILE_STACKS = [("gpu",), ("gpu", "gpu_rehearsal"), ("smoke",), ("cpu-long",)]


@pytest.mark.parametrize("stack", PROFILE_STACKS, ids="+".join)
def test_every_stage_accepts_each_profile_and_its_dag_is_whole(stack, tmp_path):
    """Each profile (stacked as documented) over params.yaml passes every section's params check, the
    cross-key rules included; and DVC's graph of dvc.yaml under those params (the grids' stages
    expanded) has every dep either made by a stage or present in the repository. The profiles' runs are
    the GPU rehearsal (its training engines) and the pipeline test (smoke); this checks all stages."""
    from dvc.repo import Repo

    from tsfmlab.params import parse_section
    from tsfmlab.profile import merged

    params = load_params(REPO / "params.yaml")
    for name in stack:
        params = merged(params, load_params(REPO / "profiles" / f"{name}.yaml"))
    for section, cls in _section_classes().items():
        parse_section(cls, params[section], section, params["shared"])
    for rel in ("dvc.yaml", "src/tsfmlab/__init__.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((REPO / rel).read_text())
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    no_scm = True\n")
    from ruamel.yaml import YAML

    with (tmp_path / "params.yaml").open("w") as f:
        YAML(typ="safe", pure=True).dump(params, f)
    with Repo(str(tmp_path)) as repo:
        stages = list(repo.index.stages)
        outs = {str(o.def_path) for s in stages for o in s.outs}
        missing = [
            f"{s.name}: {d.def_path}"
            for s in stages
            for d in s.deps
            if str(d.def_path) not in outs
            and not any(str(d.def_path).startswith(o + "/") for o in outs)
            and not (REPO / str(d.def_path)).exists()
        ]
    assert len(stages) > 20 and not missing, missing
