"""The Ti-MAE stages on tiny params: pretrain_timae for both backbones, finetune_timae (pretrained and
from scratch), their rows in classification_report; TEST never enters pretraining; bad params fail early."""

import json
import shutil
from pathlib import Path

import pytest
from safetensors.numpy import load_file

from tests.conftest import run_stage_in_process, run_stage_script, section_params, write_params

SMALL = {"emb_size": 16, "num_layers": 1, "decoder_emb_size": 16, "decoder_layers": 1}
ARCH = {
    "transformer": {**SMALL, "num_heads": 2, "intermediate_dim": 32, "decoder_heads": 2,
                    "decoder_intermediate_dim": 32},
    "mamba2": {**SMALL, "ssm_state_size": 8, "mamba_head_dim": 8, "chunk_size": 32},
}  # fmt: skip
BACKBONES = {
    name: arch | ARCH[arch["backbone"]] for name, arch in section_params("timae")["backbones"].items()
}
PARAMS = {
    "classification": {"datasets": ["ItalyPowerDemand"], "encoders": {"tiny": "-"}, "heads": ["mlp_frozen"]},
    "timae": {"datasets": ["ItalyPowerDemand"], "backbones": BACKBONES, "poolings": ["cls", "avg"]},
    "pretrain_timae": {"max_epochs": 3, "patience": None, "n_plots": 1},
    "finetune_timae": {"max_epochs": 3, "patience": None},
}


def write(work: Path, **sections) -> None:
    write_params(work, {**PARAMS, **{k: PARAMS.get(k, {}) | v for k, v in sections.items()}})


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("timae")
    write(work)
    run_stage_script("prepare_ucr", work)
    for backbone in BACKBONES:
        run_stage_script("pretrain_timae", work, args=(backbone,))
    return work


def test_pretraining_outputs(pretrained):
    for backbone in BACKBONES:
        model = pretrained / f"data/models/timae/{backbone}/ItalyPowerDemand"
        assert (model / "model.safetensors").is_file() and (model / "config.json").is_file()
        config = json.loads((model / "config.json").read_text())
        assert config["backbone"] == backbone and config["seq_len"] == 24 and config["mask_ratio"] == 0.75
        m = json.loads((pretrained / f"reports/timae/pretrain-{backbone}.json").read_text())[
            "ItalyPowerDemand"
        ]
        assert m["epochs_run"] == 3 and m["n_train_series"] == 53 and m["best_val_loss"] > 0
        assert (pretrained / f"plots/timae/reconstruction-{backbone}.png").stat().st_size > 0
        assert list((pretrained / f"dvclive/timae/pretrain-{backbone}/ItalyPowerDemand").rglob("loss.tsv"))


def test_pretraining_never_reads_test(pretrained, tmp_path):
    """TEST series replaced by NaN (which any read would reject): the same weights come out."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    work = tmp_path / "poisoned"
    shutil.copytree(pretrained, work)
    path = work / "data/ucr/ItalyPowerDemand.safetensors"
    arrays = load_file(str(path))
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    arrays["x_test"][:] = float("nan")
    save_file(arrays, str(path), metadata=meta)
    run_stage_script("pretrain_timae", work, args=("transformer",))
    name = "data/models/timae/transformer/ItalyPowerDemand/model.safetensors"
    a, b = load_file(str(pretrained / name)), load_file(str(work / name))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # also: deterministic on CPU


@pytest.mark.parametrize(("backbone", "pooling"), [("transformer", "cls"), ("mamba2", "avg")])
def test_finetune_pretrained_and_scratch_rows_in_the_report(pretrained, tmp_path, backbone, pooling):
    work = tmp_path / "ft"
    shutil.copytree(pretrained, work)
    write(work, timae={"backbones": {backbone: BACKBONES[backbone]}, "poolings": [pooling]})
    run_stage_script("finetune_timae", work, args=(backbone, pooling))
    m = json.loads((work / f"reports/timae/finetune-{backbone}-{pooling}.json").read_text())[
        "ItalyPowerDemand"
    ]
    assert set(m) == {"pretrained", "scratch"}
    for start in m.values():
        assert 0 <= start["accuracy"] <= 1 and start["epochs_run"] == 3 and start["n_params"] > 0
        low, high = start["accuracy_interval"]
        assert low <= start["accuracy"] <= high and start["n_test"] == 1029
    assert m["pretrained"]["n_params"] == m["scratch"]["n_params"]  # the same architecture
    run_stage_script("baseline", work, args=("ItalyPowerDemand",))
    table = json.loads(_report(work).read_text())
    cells = table["datasets"]["ItalyPowerDemand"]["cells"]
    cell = cells[f"timae_{backbone}-{pooling}_pretrained"]
    assert cell["accuracy"] == m["pretrained"]["accuracy"]
    assert cell["accuracy_interval"] == m["pretrained"]["accuracy_interval"]
    assert f"timae_{backbone}-{pooling}_scratch" in cells and "raw-minirocket" in cells


def _report(work: Path) -> Path:
    """classification_report over the baseline, the Ti-MAE rows and one stand-in classify cell."""
    cell = {"dataset": "ItalyPowerDemand", "encoder": "tiny", "head": "mlp_frozen", "accuracy": 0.5,
            "accuracy_interval": [0.47, 0.53], "balanced_accuracy": 0.5, "macro_f1": 0.5,
            "n_test": 1029}  # fmt: skip
    (work / "reports/classify/ItalyPowerDemand-tiny-mlp_frozen.json").write_text(json.dumps(cell))
    run_stage_script("classification_report", work)
    return work / "reports/classification.json"


@pytest.mark.parametrize(
    ("section", "values", "match"),
    [
        ("pretrain_timae", {"mask_ratio": 1.0}, "pretrain_timae.mask_ratio"),
        ("pretrain_timae", {"seq_len": 100}, "pretrain_timae.seq_len=100 exceeds the series length 24"),
        ("pretrain_timae", {"seq_len": 16}, "set pretrain_timae.crop: true"),
        ("pretrain_timae", {"unlabeled_pool": ["ECG5000"]}, "'ECG5000' is not prepared"),
        (
            "timae",
            {"backbones": {"transformer": {"backbone": "transformer"}}},
            "missing param timae.backbones.transformer.emb_size",
        ),
        (
            "timae",
            {
                "backbones": {
                    "transformer": {**BACKBONES["mamba2"], "num_heads": 2},  # the stage's own backbone
                    "m": BACKBONES["mamba2"],
                }
            },
            "unknown param(s) timae.backbones.transformer.num_heads",
        ),
    ],
)
def test_bad_params_fail_before_training(pretrained, tmp_path, section, values, match):
    work = tmp_path / "bad"
    shutil.copytree(pretrained, work)
    shutil.rmtree(work / "data/models/timae")
    write(work, **{section: values})
    proc = run_stage_in_process("pretrain_timae", work, args=("transformer",))
    assert proc.returncode != 0 and match in proc.stderr, proc.stderr
    assert not (work / "data/models/timae").exists()
