"""Knowledge distillation of a Chronos-T5 teacher into a smaller student.

    loss = task_w · CE(student, labels)                                        the teacher's target
         + distill_w · T² · KL(softmax(teacher / T) ‖ softmax(student / T))     on label positions
         + encoder_w · MSE(P_enc · h_enc(student), h_enc(teacher))            on context tokens
         + decoder_w · MSE(P_dec · h_dec(student), h_dec(teacher))            on label positions

The task term is the cross-entropy the teacher was trained with (``distill.target``, the teacher's
``target`` section: one-hot or HL-Gauss rows, the first forecast step's weight); with the Chronos recipe
(one-hot, every step weighing 1) it is the student's own cross-entropy.

``P_enc``/``P_dec`` are trainable linear maps from the student's width to the teacher's (identity when
they agree). They live inside :class:`DistillationModel`, the module the Trainer wraps, so under DDP
their gradients are averaged with the student's. The teacher is frozen, in eval mode, never receives
gradients, and is kept out of the module tree (not wrapped, sharded or checkpointed): it simply follows
the inputs onto each rank's own device.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..params import NonNegativeFloat, Params, PositiveFloat
from .chronos_data import IGNORE_INDEX
from .token_loss import TargetParams, soft_cross_entropy, target_matrix

PROJECTIONS_FILE = "projections.safetensors"
TERMS = ("task_loss", "distill_loss", "encoder_loss", "decoder_loss")


class LossWeights(Params):
    """The ``loss`` params of distillation: the weights of the four terms and the temperature ``T``."""

    task: NonNegativeFloat
    distill: NonNegativeFloat
    encoder: NonNegativeFloat
    decoder: NonNegativeFloat
    temperature: PositiveFloat


def tokenizer_mismatch(teacher_config, student_config) -> list[str]:
    """The ChronosConfig fields on which teacher and student disagree (they must share tokens)."""
    fields = (
        "tokenizer_class",
        "tokenizer_kwargs",
        "n_tokens",
        "n_special_tokens",
        "pad_token_id",
        "eos_token_id",
        "use_eos_token",
        "model_type",
        "context_length",
        "prediction_length",
    )
    return [
        f"{f}: teacher {getattr(teacher_config, f)!r} vs student {getattr(student_config, f)!r}"
        for f in fields
        if getattr(teacher_config, f) != getattr(student_config, f)
    ]


def kl_term(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, t: float
) -> torch.Tensor:
    """T² · KL(teacher_T ‖ student_T), averaged over the positions where ``mask`` is true."""
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)  # (batch, positions)
    return (t * t) * masked_mean(kl, mask)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def hidden_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per hidden unit, averaged over the positions where ``mask`` is true."""
    return masked_mean(((student.float() - teacher.float()) ** 2).mean(-1), mask)


class DistillationModel(nn.Module):
    """Student + projections; returns the weighted loss and each term (for logging)."""

    def __init__(
        self, student: nn.Module, teacher: nn.Module, weights: LossWeights, target: TargetParams | None = None
    ) -> None:
        super().__init__()
        self.student = student
        self.weights = weights
        self.target = target
        self._task_targets = None
        if target is not None:
            chronos = student.config.chronos_config  # a Chronos-T5: the tokenizer's vocabulary
            self._task_targets = target_matrix(target, chronos["n_tokens"], chronos["n_special_tokens"])
        teacher.eval().requires_grad_(False)
        self._teacher = (teacher,)  # a tuple: not a registered submodule
        d_s, d_t = student.config.d_model, teacher.config.d_model
        self.encoder_projection = nn.Linear(d_s, d_t) if d_s != d_t else nn.Identity()
        self.decoder_projection = nn.Linear(d_s, d_t) if d_s != d_t else nn.Identity()

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    @property
    def config(self):  # the Trainer inspects model.config
        return self.student.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> dict:
        w = self.weights
        need_hidden = w.encoder > 0 or w.decoder > 0
        own_loss = self._task_targets is None
        s = run_seq2seq(self.student, input_ids, attention_mask, labels, with_loss=own_loss)
        if not own_loss:
            s["loss"] = soft_cross_entropy(
                s["logits"], labels, self._task_targets, self.target.first_step_weight
            )
        terms = {"task_loss": s["loss"]}
        label_mask = labels != IGNORE_INDEX
        zero = s["loss"].new_zeros(())
        if w.distill > 0 or need_hidden:
            teacher = self.teacher
            if next(teacher.parameters()).device != input_ids.device:
                teacher.to(input_ids.device)
            with torch.no_grad():
                t = run_seq2seq(teacher, input_ids, attention_mask, labels, with_loss=False)
            terms["distill_loss"] = (
                kl_term(s["logits"], t["logits"], label_mask, w.temperature) if w.distill > 0 else zero
            )
            terms["encoder_loss"] = (
                hidden_mse(self.encoder_projection(s["encoder"]), t["encoder"], attention_mask.bool())
                if w.encoder > 0
                else zero
            )
            terms["decoder_loss"] = (
                hidden_mse(self.decoder_projection(s["decoder"]), t["decoder"], label_mask)
                if w.decoder > 0
                else zero
            )
        else:
            terms.update({k: zero for k in TERMS[1:]})
        loss = (
            w.task * terms["task_loss"]
            + w.distill * terms["distill_loss"]
            + w.encoder * terms["encoder_loss"]
            + w.decoder * terms["decoder_loss"]
        )
        return {"loss": loss, **terms}


def run_seq2seq(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    with_loss: bool,
) -> dict[str, torch.Tensor]:
    """Logits, the last encoder and decoder states, and (``with_loss``) the cross-entropy of a T5.

    The decoder's final state is taken by a forward hook instead of ``output_hidden_states=True``, which
    would keep every layer's output; without ``with_loss`` (the teacher) the cross-entropy over the
    vocabulary is not computed at all: the decoder is fed the shifted labels directly."""
    captured = {}

    def keep(module, args, output):
        captured["decoder"] = output[0] if isinstance(output, tuple) else output.last_hidden_state

    handle = model.decoder.register_forward_hook(keep)
    try:
        if with_loss:
            out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        else:
            out = model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                decoder_input_ids=model._shift_right(labels),
            )
    finally:
        handle.remove()
    return {
        "loss": out.loss,
        "logits": out.logits,
        "encoder": out.encoder_last_hidden_state,
        "decoder": captured["decoder"],
    }


def distillation_trainer_class():
    """A ``transformers.Trainer`` that logs every loss term next to the total."""
    from ..models.fast_paths import require_tested

    require_tested("distillation_trainer", "the distillation trainer (stage distill)")
    from transformers import Trainer

    class DistillationTrainer(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._sums: dict[str, torch.Tensor] = {}
            self._count = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = model(**inputs)
            for k in TERMS:
                self._sums[k] = self._sums.get(k, 0) + out[k].detach()
            self._count += 1
            return (out["loss"], out) if return_outputs else out["loss"]

        # Checkpoints: the student in its own save_pretrained layout (T5 shares embedding tensors, which a
        # plain state-dict safetensors file refuses) and the projections in projections.safetensors.
        def _save(self, output_dir=None, state_dict=None):
            from safetensors.torch import save_file

            out = Path(output_dir or self.args.output_dir)
            model = self.accelerator.unwrap_model(self.model)
            model.student.save_pretrained(out, safe_serialization=True)
            projections = {
                k: v.detach().contiguous().cpu()
                for k, v in model.state_dict().items()
                if not k.startswith("student.")
            }
            save_file(projections, str(out / PROJECTIONS_FILE))

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            from safetensors.torch import load_file

            model = self.accelerator.unwrap_model(model or self.model)
            ckpt = Path(resume_from_checkpoint)
            saved = type(model.student).from_pretrained(ckpt)
            model.student.load_state_dict(saved.state_dict())
            model.load_state_dict(load_file(str(ckpt / PROJECTIONS_FILE)), strict=False)

        def log(self, logs, *args, **kwargs):
            if self._count and "loss" in logs:
                for k, v in self._sums.items():
                    mean = self.accelerator.reduce(v / self._count, reduction="mean")
                    logs[k] = round(float(mean), 6)
                self._sums, self._count = {}, 0
            super().log(logs, *args, **kwargs)

    return DistillationTrainer
