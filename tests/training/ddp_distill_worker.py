"""One rank of a 2-process distillation run (launched by test_ddp_distillation.py through torchrun).

Trains a tiny student against a tiny teacher with the distillation Trainer through ``fit`` on CPU (gloo).
Before each optimizer step it records this rank's gradients of both projections and one student weight,
and each step's local loss terms, in OUT/rank-R.safetensors and OUT/rank-R.json.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
from safetensors.torch import save_file
from transformers import TrainerCallback

from tests.conftest import tokenizer_params
from tsfmlab.models.chronos_models import new_chronos_t5
from tsfmlab.models.loading import inner_model
from tsfmlab.training.chronos_data import ChronosWindowDataset
from tsfmlab.training.distillation import TERMS, DistillationModel, LossWeights, distillation_trainer_class
from tsfmlab.training.hf_trainer import TrainParams, fit

STEPS = 3
WATCHED = ("encoder_projection.weight", "decoder_projection.weight", "student.shared.weight")


class RecordGradients(TrainerCallback):
    def __init__(self, model):
        self.model, self.grads = model, {}

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        params = dict(self.model.named_parameters())
        for name in WATCHED:
            self.grads[f"step{state.global_step}/{name}"] = params[name].grad.detach().clone()


def main(out: Path) -> None:
    rank = int(os.environ["RANK"])
    tok = tokenizer_params()
    teacher = inner_model(new_chronos_t5("nano", tok, seed=1))
    small = {"d_model": 16, "d_ff": 32, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 2, "d_kv": 8}
    student_pipeline = new_chronos_t5("nano", tok, overrides=small, seed=2)
    model = DistillationModel(
        inner_model(student_pipeline),
        teacher,
        LossWeights(task=0.5, distill=0.5, encoder=0.1, decoder=0.1, temperature=2.0),
    )
    rng = np.random.default_rng(0)
    corpus = [np.cumsum(rng.normal(size=80)).astype(np.float32) for _ in range(20)]
    dataset = ChronosWindowDataset(
        [corpus], [1.0], student_pipeline.tokenizer, 16, 4, min_past=4, shuffle_buffer_length=0, seed=0
    )
    train = TrainParams(
        max_steps=STEPS, save_steps=100, log_steps=1, per_device_train_batch_size=4,
        gradient_accumulation_steps=1, learning_rate=1e-3, optim="adamw_torch", lr_scheduler_type="linear",
        warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=1.0, dataloader_num_workers=0,
        mixed_precision="no", tf32=False, torch_compile=False, gradient_checkpointing=False, distributed="ddp",
        seed=0,
    )  # fmt: skip
    recorder = RecordGradients(model)

    class RecordingTrainer(distillation_trainer_class()):
        local_terms: list = []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            self.local_terms.append({k: float(outputs[k]) for k in ("loss", *TERMS)})
            return (loss, outputs) if return_outputs else loss

    trainer, stats = fit(
        model, dataset, train, "ddp", {"run": "ddp"}, out / "live", RecordingTrainer, [recorder]
    )
    save_file({k: v.contiguous() for k, v in recorder.grads.items()}, str(out / f"rank-{rank}.safetensors"))
    (out / f"rank-{rank}.json").write_text(
        json.dumps(
            {"world_size": trainer.args.world_size, "steps": stats["steps"], "terms": trainer.local_terms}
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
