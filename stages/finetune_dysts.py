"""Stage finetune_dysts: fine-tune a Chronos-T5 (the teacher or the student) on dysts *train* systems.

Windows come from channels of the train trajectories, augmented on the fly (random affine, convex
combination, projected skew); test systems are refused. ``finetune_mode`` full trains every weight, lora
trains peft adapters only; the cross-entropy's target (one-hot or HL-Gauss rows, the first forecast
step's weight) is merged from the teacher's.

Outs: --out (the merged model in the save_pretrained layout, loadable with
BaseChronosPipeline.from_pretrained; for LoRA also adapter/ with the adapter alone);
metrics/finetune_dysts.json (train loss), reports/finetune_dysts.json; dvclive/finetune_dysts/ (loss
curves).
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
from pathlib import Path
from typing import Literal

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.io.atomic import atomic_dir, write_results
from tsfmlab.models.loading import count_parameters, inner_model, load_pipeline
from tsfmlab.models.lora import LoraParams, add_lora, merged, save_adapter
from tsfmlab.launch import LaunchParams, check_world
from tsfmlab.params import Params, stage_params
from tsfmlab.runtime import is_main_process
from tsfmlab.training.dysts_finetune_data import (
    AugmentedDystsWindows,
    DystsWindowParams,
    load_train_trajectories,
)
from tsfmlab.training.hf_trainer import ScheduleParams, train_params, fit
from tsfmlab.training.token_loss import TargetParams, target_trainer

SECTION = "finetune_dysts"


class DystsFinetuneParams(Params):
    base_model: str  # model directory (data/models/teacher or data/models/student) or hub id
    finetune_mode: Literal["full", "lora"]
    lora: LoraParams
    data: DystsWindowParams
    train: ScheduleParams
    target: TargetParams  # the cross-entropy's target, merged from teacher.target
    launch: LaunchParams


def main() -> None:
    args = stage_args(out="the fine-tuned model's directory")
    p = stage_params(DystsFinetuneParams, SECTION)
    train = train_params(p.train)
    check_world(p.launch, SECTION)
    pipeline = load_pipeline(p.base_model, "chronos-t5")
    config = pipeline.model.config
    d = p.data
    trajectories = load_train_trajectories(d.dysts_dir)
    dataset = AugmentedDystsWindows(
        trajectories,
        d.augmentations,
        pipeline.tokenizer,
        context_length=config.context_length,
        prediction_length=config.prediction_length,
        min_past=d.min_past,
        max_missing_prop=d.max_missing_prop,
        drop_prob=d.drop_prob,
        shuffle_buffer_length=d.shuffle_buffer_length,
        seed=train.seed,
    )
    model = inner_model(pipeline).train()
    n_total = count_parameters(pipeline)
    if p.finetune_mode == "lora":
        model = add_lora(model, p.lora, f"{SECTION}.lora", train.seed)
    n_trainable = sum(t.numel() for t in model.parameters() if t.requires_grad)

    live = Path("dvclive/finetune_dysts")
    trainer_class = target_trainer(p.target, config.n_tokens, config.n_special_tokens)
    _, stats = fit(
        model, dataset, train, SECTION, p, live, trainer_class, inputs=[p.base_model, d.dysts_dir]
    )
    print(f"finetune_dysts: {stats}")
    if not is_main_process():
        return  # torchrun: rank 0 writes the outputs
    model.eval()
    with atomic_dir(args.out) as tmp:
        if p.finetune_mode == "lora":
            save_adapter(model, tmp / "adapter")
            model = merged(model)
        model.save_pretrained(tmp, safe_serialization=True)
    results = {
        "mode": p.finetune_mode,
        "parameters": n_total,
        "trainable_parameters": n_trainable,
        "train_loss": round(stats["train_loss"], 6),
        "steps": stats["steps"],
        "train_systems": len(set(trajectories.systems)),
    }
    write_results("finetune_dysts", results, {"train_loss": results["train_loss"]})


if __name__ == "__main__":
    run_stage(main)
