"""LoRA adapters (peft) for fine-tuning: validated params, adapter saving and merging.

A LoRA run keeps two things: the adapter alone (``adapter_model.safetensors`` + ``adapter_config.json``,
small, loads back onto the base model with ``peft.PeftModel.from_pretrained``) and the merged model
(base + adapter folded into the weights), saved in the model's usual layout so that
``BaseChronosPipeline.from_pretrained`` loads it like any other checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..errors import ParamError
from ..io.atomic import atomic_dir
from ..params import Params, PositiveFloat, PositiveInt, Unit


class LoraParams(Params):
    r: PositiveInt
    alpha: PositiveFloat
    dropout: Unit
    target_modules: list[str]  # leaf names of linear layers, e.g. [q, v] (T5 attention), [wi, wo] (T5 FFN)


def linear_names(model: nn.Module) -> list[str]:
    """The distinct leaf names of the model's ``nn.Linear`` layers (what ``target_modules`` may name)."""
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})


def add_lora(model: nn.Module, p: LoraParams, section: str, seed: int = 0):
    """Wrap ``model`` with LoRA adapters on ``p.target_modules``; the base weights are frozen. The
    adapters' random initial weights are drawn from ``seed`` (torch's global generator is seeded), not
    from whatever state loading the model left the generator in."""
    import torch
    from peft import LoraConfig, get_peft_model

    available = linear_names(model)
    unknown = [t for t in p.target_modules if t not in available]
    if not p.target_modules or unknown:
        raise ParamError(
            f"param {section}.target_modules: {unknown or 'empty'} not linear layers of the model; "
            f"available: {', '.join(available)}"
        )
    config = LoraConfig(
        r=p.r,
        lora_alpha=p.alpha,
        lora_dropout=p.dropout,
        target_modules=list(p.target_modules),
        bias="none",
    )
    torch.manual_seed(seed)
    return get_peft_model(model, config)


def save_adapter(peft_model, out_dir: str | Path) -> Path:
    """The adapter alone, as safetensors, written atomically and byte-reproducibly: peft keeps
    ``target_modules`` as a set (its saved order follows the interpreter's hash seed), so the list is
    sorted; peft's empty model-card README is dropped."""
    import json

    with atomic_dir(out_dir) as tmp:
        peft_model.save_pretrained(tmp, safe_serialization=True)
        config_path = tmp / "adapter_config.json"
        config = json.loads(config_path.read_text())
        if isinstance(config.get("target_modules"), list):
            config["target_modules"] = sorted(config["target_modules"])
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (tmp / "README.md").unlink(missing_ok=True)
    return Path(out_dir)


def merged(peft_model) -> nn.Module:
    """The base model with the adapters folded into its weights (no peft wrapper left)."""
    return peft_model.merge_and_unload()
