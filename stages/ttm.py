"""Stage ttm (granite-tsfm, the extra ``ttm`` of pyproject.toml; docs/usage.md: TTM): a TinyTimeMixer fine-tuned on dysts *train* systems, full or LoRA, on the windows finetune_dysts trains on.

The model is new (``source: scratch``, random weights from ``model``), a hub id (granite-tsfm picks the
revision for ``model.context_length`` / ``model.prediction_length``) or a local model directory. The last
``data.val_windows`` windows of every train channel are held out and scored before and after training
(window-standardised MSE, next to repeating the last value). Outs: --out (save_pretrained
layout: config.json + model.safetensors, loadable by tsfmlab.models.ttm.load_model and so by evaluate_forecast; for LoRA
also adapter/ with the adapter alone); metrics/ttm.json and reports/ttm.json; dvclive/ttm/ (training loss curve).
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
from pathlib import Path
from typing import Literal

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.errors import ParamError
from tsfmlab.io.atomic import atomic_dir, write_results
from tsfmlab.models.loading import count_parameters
from tsfmlab.models.lora import LoraParams, add_lora, merged, save_adapter
from tsfmlab.models.ttm import TTMParams, is_ttm_source, load_ttm, new_ttm
from tsfmlab.params import Params, stage_params
from tsfmlab.runtime import is_main_process
from tsfmlab.training.dysts_finetune_data import load_train_trajectories
from tsfmlab.training.hf_trainer import ScheduleParams, train_params, fit
from tsfmlab.training.ttm_finetune import (
    TTMDataParams,
    TTMDystsWindows,
    naive_validation_loss,
    split_validation,
    ttm_trainer_class,
    validation_loss,
)

SECTION = "ttm"


class TTMStageParams(Params):
    source: str  # scratch | a TTM hub id (ibm-granite/granite-timeseries-ttm-r2) | a local TTM directory
    model: TTMParams  # scratch: the architecture; every source: the context and prediction lengths
    finetune_mode: Literal["full", "lora"]
    lora: LoraParams
    data: TTMDataParams
    train: ScheduleParams


def base_model(p: TTMStageParams, seed: int):
    if p.source == "scratch":
        return new_ttm(p.model, seed=seed, section=f"{SECTION}.model")
    if not is_ttm_source(p.source):
        raise ParamError(
            f"param {SECTION}.source: {p.source!r} is neither scratch, a TTM model directory (config.json "
            f"with model_type tinytimemixer) nor a TTM hub id (ibm-granite/granite-timeseries-ttm-r2, ...)"
        )
    forecaster = load_ttm(p.source, p.model.context_length, p.model.prediction_length)
    if Path(p.source).exists():
        for name, value in (
            ("context_length", forecaster.context_length),
            ("prediction_length", forecaster.prediction_length),
        ):
            if getattr(p.model, name) != value:
                raise ParamError(
                    f"param {SECTION}.model.{name}={getattr(p.model, name)} differs from the model's "
                    f"({p.source}: {value})"
                )
    return forecaster


def main() -> None:
    args = stage_args(out="the TTM model directory")
    p = stage_params(TTMStageParams, SECTION)
    train = train_params(p.train)
    forecaster = base_model(p, train.seed)
    context_length, prediction_length = forecaster.context_length, forecaster.prediction_length
    trajectories = load_train_trajectories(p.data.dysts_dir)
    train_trajectories, val = split_validation(
        trajectories,
        p.data.val_windows,
        context_length,
        prediction_length,
        p.data.min_past,
        f"{SECTION}.data",
    )
    dataset = TTMDystsWindows(
        train_trajectories,
        p.data.augmentations,
        context_length=context_length,
        prediction_length=prediction_length,
        min_past=p.data.min_past,
        max_missing_prop=p.data.max_missing_prop,
        drop_prob=p.data.drop_prob,
        shuffle_buffer_length=p.data.shuffle_buffer_length,
        seed=train.seed,
    )
    model = forecaster.model
    n_total = count_parameters(forecaster)
    batch = train.per_device_train_batch_size
    val_before = validation_loss(model, val, batch)
    if p.finetune_mode == "lora":
        model = add_lora(model, p.lora, f"{SECTION}.lora", train.seed)
    n_trainable = sum(t.numel() for t in model.parameters() if t.requires_grad)

    _, stats = fit(
        model.train(), dataset, train, SECTION, p, Path("dvclive/ttm"), trainer_class=ttm_trainer_class(),
        inputs=[p.source, p.data.dysts_dir],
    )  # fmt: skip
    print(f"ttm: {stats}")
    if not is_main_process():
        return  # torchrun: rank 0 writes the outputs
    model.eval()
    val_after = validation_loss(model, val, batch)
    with atomic_dir(args.out) as tmp:
        if p.finetune_mode == "lora":
            save_adapter(model, tmp / "adapter")
            model = merged(model)
        model.save_pretrained(tmp, safe_serialization=True)
    results = {
        "source": p.source,
        "mode": p.finetune_mode,
        "parameters": n_total,
        "trainable_parameters": n_trainable,
        "context_length": context_length,
        "prediction_length": prediction_length,
        "train_loss": round(stats["train_loss"], 6),
        "steps": stats["steps"],
        "train_systems": len({t["system"] for t in trajectories}),
        "val_windows": len(val),
        "val_loss_before": round(val_before, 6),
        "val_loss_after": round(val_after, 6),
        "val_loss_last_value": round(naive_validation_loss(val), 6),
    }
    write_results("ttm", results, {k: results[k] for k in ("val_loss_after", "val_loss_last_value")})
    print(f"ttm: validation loss {val_before:.4f} -> {val_after:.4f}")


if __name__ == "__main__":
    run_stage(main)
