"""The Hugging Face Trainer on several processes (``torchrun``): which ``distributed`` mode a machine
allows, FSDP2's units and options, activation checkpointing, and the weights an FSDP run hands back.
:func:`tsfmlab.training.hf_trainer.fit` uses them; single-process runs never reach past the checks."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ParamError

#: FSDP units of models that declare no ``_no_split_modules`` (chronos-forecasting's Chronos-2)
KNOWN_BLOCKS = {"Chronos2Model": ("Chronos2EncoderBlock",)}


def check_distributed(distributed: str, key: str) -> None:
    """``fsdp`` needs CUDA: accelerate enables FSDP for multi-GPU runs only (a CPU run would silently
    train with DDP instead), so it is refused with the param named."""
    if distributed == "fsdp" and not torch.cuda.is_available():
        raise ParamError(
            f"param {key}=fsdp needs CUDA GPUs (accelerate applies FSDP to multi-GPU runs only; on CPU "
            f"the run would silently be DDP): use ddp on this machine"
        )


def block_classes(model) -> list[str]:
    """Class names of the repeated transformer blocks of ``model`` (FSDP units): the
    ``_no_split_modules`` of its Hugging Face submodules, else :data:`KNOWN_BLOCKS`."""
    names: list[str] = []
    for module in model.modules():
        declared = getattr(module, "_no_split_modules", None) or KNOWN_BLOCKS.get(type(module).__name__, ())
        names += [n for n in declared if n not in names]
    present = {type(m).__name__ for m in model.modules()}
    return [n for n in names if n in present]


def fsdp_options(p: Any, model, key: str) -> dict[str, Any]:  # p: hf_trainer.TrainParams
    """The ``TrainingArguments`` of ``distributed: fsdp``: FSDP2 with one unit per transformer block,
    parameters resharded after the forward pass (ZeRO-3), full (unsharded) state dicts in checkpoints,
    FSDP's own activation checkpointing for ``gradient_checkpointing``. Nothing for ``ddp``."""
    if p.distributed != "fsdp":
        return {}
    blocks = block_classes(model)
    if not blocks:
        raise ParamError(
            f"param {key}=fsdp: {type(model).__name__} declares no transformer block class to shard "
            f"(no _no_split_modules); use ddp"
        )
    return {
        "fsdp": True,
        "fsdp_config": {
            "version": 2,
            "reshard_after_forward": True,
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "transformer_layer_cls_to_wrap": blocks,
            "state_dict_type": "FULL_STATE_DICT",
            "activation_checkpointing": p.gradient_checkpointing,
        },
    }


def checkpointing_targets(model) -> list:
    """The modules whose Hugging Face activation checkpointing covers ``model``: the model itself if it
    is a Hugging Face (or peft) model, else its outermost Hugging Face submodules (the student of a
    distillation wrapper)."""
    if hasattr(model, "activation_checkpointing_enable") or hasattr(model, "gradient_checkpointing_enable"):
        return [model]
    from transformers import PreTrainedModel

    targets, inside = [], set()
    for module in model.modules():  # pre-order: an outer model comes before the models inside it
        if isinstance(module, PreTrainedModel) and id(module) not in inside:
            targets.append(module)
            inside |= {id(m) for m in module.modules()}
    return targets


def enable_activation_checkpointing(model, key: str) -> None:
    """Hugging Face activation checkpointing (non-reentrant) on ``model`` (see
    :func:`checkpointing_targets`); a model without support fails naming the param ``key``."""
    targets = checkpointing_targets(model)
    unsupported = [
        type(t).__name__ for t in targets if not getattr(t, "supports_gradient_checkpointing", True)
    ]
    if not targets or unsupported:
        name = ", ".join(unsupported) or type(model).__name__
        raise ParamError(
            f"param {key}=true: {name} does not support gradient checkpointing under ddp "
            f"(set it to false, or use distributed: fsdp, whose activation checkpointing wraps any block)"
        )
    for target in targets:
        if hasattr(target, "activation_checkpointing_enable"):
            target.activation_checkpointing_enable()
        else:  # transformers < 5
            target.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def gather_full_weights(sharded, model) -> None:
    """Copy the weights of the FSDP-trained ``sharded`` copy into the unsharded ``model`` on rank 0.

    A collective: every rank must call it. The full state dict is assembled on rank 0 only (on CPU)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    from ..runtime import is_main_process

    full = get_model_state_dict(sharded, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if is_main_process():
        model.load_state_dict(full)


def wait_for_all_ranks() -> None:
    """A barrier across the ranks of a torchrun job (nothing in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
