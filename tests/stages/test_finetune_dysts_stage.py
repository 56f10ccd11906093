"""The finetune_dysts stage on tiny data, from a random-weight base model: full and LoRA, resume, bad input."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import (
    REPO,
    TINY,
    TINY_TRAIN,
    TINY_WINDOWS,
    differing_files,
    kill_at_step,
    run_stage_in_process,
    run_stage_script,
    stage_outputs,
    tiny_chronos,
    write_params,
)
from tsfmlab.params import load_params

BASE = load_params(REPO / "params.yaml")["finetune_dysts"]
FINETUNE = {
    **BASE,
    "lora": {**BASE["lora"], "r": 2},
    "data": {**BASE["data"], **TINY_WINDOWS},
    "train": {**BASE["train"], **TINY_TRAIN},
}


@pytest.fixture(scope="module")
def with_base(tiny_run, tmp_path_factory) -> Path:
    from tsfmlab.models.loading import save_pipeline

    work = tmp_path_factory.mktemp("base")
    shutil.copytree(tiny_run / "data", work / "data")
    save_pipeline(tiny_chronos(), work / "data/models/student")
    return work


def workdir(with_base: Path, dest: Path, **changes) -> Path:
    shutil.copytree(with_base / "data", dest / "data")
    write_params(dest, {**TINY, "finetune_dysts": {**FINETUNE, **changes}})
    return dest


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.fixture(scope="module")
def finetuned(with_base, tmp_path_factory) -> dict[str, Path]:
    """The stage run once per finetune_mode, uninterrupted."""
    runs = {}
    for mode in ("full", "lora"):
        runs[mode] = workdir(with_base, tmp_path_factory.mktemp(mode), finetune_mode=mode)
        run_stage_script("finetune_dysts", runs[mode])
    return runs


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_finetune_writes_a_loadable_model(finetuned, mode):
    from chronos import BaseChronosPipeline

    work = finetuned[mode]
    for rel in stage_outputs("finetune_dysts"):
        assert (work / rel).exists(), rel
    out = work / "data/models/finetuned_dysts"
    tuned = BaseChronosPipeline.from_pretrained(out)
    assert tuned.model.config.context_length == 32
    before, after = weights(work / "data/models/student"), weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # training changed the model
    metrics = json.loads((work / "reports/finetune_dysts.json").read_text())
    assert metrics["steps"] == 4 and metrics["mode"] == mode
    if mode == "full":
        assert metrics["trainable_parameters"] == metrics["parameters"]
        assert not (out / "adapter").exists()
    else:
        assert 0 < metrics["trainable_parameters"] < metrics["parameters"]
        assert (out / "adapter" / "adapter_model.safetensors").is_file()
        # the merged model computes what base + adapter computes
        from peft import PeftModel
        from transformers import T5ForConditionalGeneration

        base = T5ForConditionalGeneration.from_pretrained(work / "data/models/student")
        adapted = PeftModel.from_pretrained(base, out / "adapter").eval()
        merged = T5ForConditionalGeneration.from_pretrained(out).eval()
        g = torch.Generator().manual_seed(0)
        batch = {
            "input_ids": torch.randint(3, 64, (2, 33), generator=g),
            "labels": torch.randint(3, 64, (2, 9), generator=g),
        }
        with torch.no_grad():
            assert torch.allclose(adapted(**batch).logits, merged(**batch).logits, atol=1e-5)


def test_killed_lora_finetuning_resumes_to_the_bytes_of_an_uninterrupted_run(finetuned, with_base, tmp_path):
    work = workdir(with_base, tmp_path, finetune_mode="lora")
    kill_at_step("finetune_dysts", work, 4)  # after checkpoint-2 and the logs of step 3
    assert not (work / "data/models/finetuned_dysts").exists()
    out = run_stage_script("finetune_dysts", work).stdout
    assert "'resumed': True" in out and "'steps': 4" in out
    assert differing_files(work, finetuned["lora"], stage_outputs("finetune_dysts")) == []


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"lora": {**FINETUNE["lora"], "target_modules": ["query"]}}, "finetune_dysts.lora.target_modules"),
        (
            {"train": {**FINETUNE["train"], "learning_rate": -1.0}},
            "finetune_dysts.train.learning_rate must be > 0",
        ),
        (
            {
                "data": {
                    **FINETUNE["data"],
                    "augmentations": {**FINETUNE["data"]["augmentations"], "rate": 2.0},
                }
            },
            "finetune_dysts.data.augmentations.rate must be in [0, 1]",
        ),
        ({"base_model": "data/models/none"}, "neither a local directory nor reachable"),
    ],
)
def test_bad_input_fails_before_training(with_base, tmp_path, changes, message):
    work = workdir(with_base, tmp_path, finetune_mode="lora", **changes)
    proc = run_stage_in_process("finetune_dysts", work)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not any((work / rel).exists() for rel in stage_outputs("finetune_dysts"))


def test_held_out_systems_in_training_data_are_refused(with_base, tmp_path):
    work = workdir(with_base, tmp_path)
    systems = json.loads((work / "data/dysts/systems.json").read_text())
    systems["test"].append(systems["train"][0])  # pretend a train system were held out
    (work / "data/dysts/systems.json").write_text(json.dumps(systems))
    proc = run_stage_in_process("finetune_dysts", work)
    assert proc.returncode == 2 and "held-out test system(s) in training data" in proc.stderr
