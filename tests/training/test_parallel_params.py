"""The multi-process and memory params in one process: ``distributed`` (ddp | fsdp) to the Hugging Face
``TrainingArguments`` and to Lightning's strategy, gradient checkpointing, precision, and their errors."""


import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import REPO, section_params, tiny_chronos, train_values
from tsfmlab.errors import ParamError
from tsfmlab.models.loading import inner_model
from tsfmlab.params import load_params, parse_section
from tsfmlab.training.hf_parallel import block_classes, enable_activation_checkpointing, fsdp_options
from tsfmlab.training.hf_trainer import TrainerParams, TrainParams, section_of, training_arguments

TRAIN = parse_section(TrainParams, train_values("teacher"), "teacher.train")
TRAINING_SECTIONS = {  # section: where its distributed / gradient_checkpointing keys sit
    "shared": ("train",),  # teacher, distill, finetune_dysts, chronos2 (and ttm)
    "finetune_energy": (),
    "pretrain_timae": (),
    "finetune_timae": (),
}


def tiny_chronos2():
    from tsfmlab.models.chronos2 import Chronos2Params, new_chronos2

    sizes = {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2, "context_length": 32}
    p = parse_section(Chronos2Params, section_params("chronos2")["model"] | sizes, "chronos2.model")
    return new_chronos2(p).model


def distillation_model():
    from tsfmlab.training.distillation import DistillationModel, LossWeights

    student, teacher = inner_model(tiny_chronos(seed=1)), inner_model(tiny_chronos(seed=2, d_model=32))
    return DistillationModel(
        student, teacher, LossWeights(task=0.5, distill=0.5, encoder=0.1, decoder=0.1, temperature=2.0)
    )


def test_every_training_section_defaults_to_single_process_behaviour():
    """The default (CPU) profile is unchanged: DDP only under torchrun, no checkpointing, no bf16."""
    params = load_params(REPO / "params.yaml")
    for section, path in TRAINING_SECTIONS.items():
        values = params[section]
        for key in path:
            values = values[key]
        assert values["distributed"] == "ddp", section
        assert values.get("gradient_checkpointing", False) is False, section
        assert values.get("mixed_precision", "auto") == "auto", section
        assert values.get("precision", "32-true") == "32-true", section


# ---- Hugging Face Trainer


def test_fsdp_maps_to_fsdp2_training_arguments_sharding_the_t5_blocks(tmp_path):
    from transformers import TrainingArguments

    model = inner_model(tiny_chronos())
    assert fsdp_options(TRAIN, model, "teacher.train.distributed") == {}  # ddp: the Trainer's default
    p = TRAIN.model_copy(update={"distributed": "fsdp", "gradient_checkpointing": True})
    options = fsdp_options(p, model, "teacher.train.distributed")
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", **options)
    plugin = args.fsdp_plugin_args  # what the Trainer hands to accelerate's FullyShardedDataParallelPlugin
    assert plugin["fsdp_version"] == 2 and plugin["reshard_after_forward"] is True
    assert plugin["auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert plugin["transformer_cls_names_to_wrap"] == "T5Block"
    assert plugin["state_dict_type"] == "FULL_STATE_DICT" and plugin["activation_checkpointing"] is True
    assert args.activation_checkpointing is False  # FSDP's own checkpointing instead (HF refuses both)


def test_fsdp_units_of_each_forecasting_model():
    assert block_classes(inner_model(tiny_chronos())) == ["T5Block"]
    assert block_classes(distillation_model()) == ["T5Block"]  # the student's; the teacher is unregistered
    assert block_classes(tiny_chronos2()) == ["Chronos2EncoderBlock"]
    p = TRAIN.model_copy(update={"distributed": "fsdp"})
    with pytest.raises(ParamError, match=r"param x\.distributed=fsdp: Sequential declares no transformer"):
        fsdp_options(p, nn.Sequential(nn.Linear(2, 2)), "x.distributed")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_fsdp_is_refused_without_cuda(tmp_path):
    p = TRAIN.model_copy(update={"distributed": "fsdp"})
    with pytest.raises(ParamError, match=r"param distill\.distributed=fsdp needs CUDA GPUs"):
        training_arguments(p, tmp_path, "distill", model=inner_model(tiny_chronos()))
    with pytest.raises(ParamError, match="shared.train.distributed"):
        parse_section(TrainerParams, section_params("shared")["train"] | {"distributed": "zero3"}, "shared.train")


def test_the_param_names_follow_the_section_layout():
    nested = type("Nested", (), {"train": TRAIN})()
    assert section_of("teacher", nested) == "shared.train"  # the Trainer settings of a stage's train block
    assert section_of("distill", TRAIN) == "distill"  # a flat TrainParams section


def test_gradient_checkpointing_reaches_the_student_inside_the_distillation_wrapper():
    model = distillation_model()
    assert not model.student.is_activation_checkpointing
    enable_activation_checkpointing(model, "distill.gradient_checkpointing")
    assert model.student.is_activation_checkpointing and not model.teacher.is_activation_checkpointing


def test_gradient_checkpointing_of_chronos2_under_ddp_fails_naming_the_param():
    with pytest.raises(ParamError, match=r"chronos2\.train\.gradient_checkpointing=true: Chronos2Model"):
        enable_activation_checkpointing(tiny_chronos2(), "chronos2.train.gradient_checkpointing")


def test_checkpointing_does_not_change_a_t5_training_step():
    """Same inputs, same weights: the gradients with and without checkpointing agree (dropout off)."""
    batch = {
        "input_ids": torch.randint(2, 60, (4, 32), generator=torch.Generator().manual_seed(0)),
        "attention_mask": torch.ones(4, 32, dtype=torch.long),
        "labels": torch.randint(2, 60, (4, 9), generator=torch.Generator().manual_seed(1)),
    }
    grads = []
    for checkpointing in (False, True):
        model = inner_model(tiny_chronos(seed=3, dropout_rate=0.0)).train()
        if checkpointing:
            enable_activation_checkpointing(model, "teacher.train.gradient_checkpointing")
        assert model.is_activation_checkpointing is checkpointing
        model(**batch).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], msg=name)


def test_chronos2_finetuning_refuses_fsdp_and_maps_precision():
    from tsfmlab.training.chronos2_finetune import Chronos2FinetuneParams, trainer_options

    values = section_params("finetune_energy")
    with pytest.raises(ParamError, match=r"param finetune_energy\.distributed=fsdp is not supported"):
        parse_section(Chronos2FinetuneParams, values | {"distributed": "fsdp"}, "finetune_energy")
    p = parse_section(Chronos2FinetuneParams, values | {"mixed_precision": "bf16"}, "finetune_energy")
    assert trainer_options(p)["bf16"] is True and trainer_options(p)["fp16"] is False
    p = parse_section(Chronos2FinetuneParams, values, "finetune_energy")
    auto = trainer_options(p)["bf16"]
    assert auto == (torch.cuda.is_available() and torch.cuda.is_bf16_supported())


# ---- Lightning (Ti-MAE)


def test_lightning_strategy_follows_torchrun_and_the_param(monkeypatch):
    from lightning.pytorch.strategies import ModelParallelStrategy

    from tsfmlab.training.lightning_engine import parallel_options

    for var in ("WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert parallel_options("fsdp") == {"devices": 1, "num_nodes": 1, "strategy": "auto"}  # no torchrun
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun --nnodes 2 --nproc-per-node 4
    assert parallel_options("ddp") == {"devices": 4, "num_nodes": 2, "strategy": "ddp"}
    fsdp = parallel_options("fsdp")
    assert fsdp["devices"] == 4 and fsdp["num_nodes"] == 2
    assert isinstance(fsdp["strategy"], ModelParallelStrategy)
    with pytest.raises(ParamError, match="distributed must be ddp or fsdp"):
        parallel_options("deepspeed")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("pretrain_timae", "precision", "bf16"),
        ("pretrain_timae", "distributed", "zero3"),
        ("finetune_timae", "distributed", "fsdp2"),
        ("finetune_timae", "gradient_checkpointing", "yes"),
    ],
)
def test_timae_parallel_params_are_validated(section, key, value):
    from tsfmlab.training.timae_lightning import PretrainParams, TiMAEFinetuneParams

    cls = PretrainParams if section == "pretrain_timae" else TiMAEFinetuneParams
    with pytest.raises(ParamError, match=rf"param {section}\.{key} must be"):
        parse_section(cls, section_params(section) | {key: value}, section)


def test_timae_gradient_checkpointing_trains_the_same_model(one_thread, caplog):
    """Checkpointing recomputes each backbone layer with the dropout masks of its forward pass: the
    same weights come out, in a plain (unwrapped) model."""
    from tests.models.test_timae import TINY
    from tests.training.test_timae_lightning import pretrain_params
    from tsfmlab.models.timae import TiMAEConfig, TiMAEForPretraining
    from tsfmlab.training.timae_lightning import fit_pretrain

    config = TiMAEConfig(backbone="transformer", **{**TINY, "input_dim": 1, "dropout": 0.1})
    rng = np.random.default_rng(0)
    x = np.sin(np.linspace(0, 8, 32) + rng.uniform(0, 6, (24, 1, 1))).astype(np.float32)
    models = []
    for checkpointing in (False, True):
        p = pretrain_params(batch_size=8, max_epochs=2, gradient_checkpointing=checkpointing)
        with caplog.at_level("INFO"):
            model, _ = fit_pretrain(config, x[:16], x[16:], p, None)
        models.append(model)
        assert ("activation checkpointing: 2 backbone layers" in caplog.text) is checkpointing
    plain, checkpointed = (m.state_dict() for m in models)
    assert type(models[1]) is TiMAEForPretraining and plain.keys() == checkpointed.keys()
    assert not any("checkpoint" in type(m).__name__.lower() for m in models[1].modules())
    for k in plain:
        torch.testing.assert_close(checkpointed[k], plain[k], msg=k)
