"""Benchmark of one distillation training step: tsfmlab's path against a straightforward reference.

What it measures
----------------
The same student (same initial weights), teacher, projections and batch, trained for ``--steps`` timed
optimizer steps after ``--warmup`` untimed ones, each variant in its own process:

* REFERENCE, as the seed's ``DistillationTrainer`` does it: an overridden ``compute_loss`` that calls the
  student with labels and ``output_hidden_states=True``, then the teacher the same way under
  ``torch.no_grad()`` (so the teacher computes its own unused cross-entropy and keeps every layer's
  output), the same loss formula, fp32, eager, ``torch.optim.AdamW`` (for-each implementation).
* OURS: ``tsfmlab.training.distillation.DistillationModel`` with what ``training_arguments`` picks on the
  device: on CUDA bf16 autocast, the frozen teacher cast to bf16 once, TF32, ``torch.compile`` of the
  module and fused AdamW; on CPU fp32 eager with the lean forward (no teacher cross-entropy, no per-layer
  hidden states) and for-each AdamW.

Reported per variant: samples/s (batch x steps / seconds, synchronised on CUDA), peak memory (CUDA:
``max_memory_allocated``; CPU: the process's peak RSS), and the loss terms of the initial weights on the
batch (evaluated without dropout, before any step). The loss check compares these terms of the two
variants: relative difference <= 2e-2 (bf16) on CUDA,
<= 1e-4 on CPU. ``speedup = ours / reference`` in the same run.

Run from the repository root::

    .venv/bin/python bench/bench_distill_step.py                       # CPU-sized defaults
    .venv/bin/python bench/bench_distill_step.py --device cuda --teacher small --student tiny \\
        --context 512 --prediction 64 --batch 256 --n-tokens 4096     # the issue's GPU setting
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import time

import torch
import torch.nn.functional as F

TERMS = ("loss", "task_loss", "distill_loss", "encoder_loss", "decoder_loss")
WEIGHTS = dict(task=0.5, distill=0.5, encoder=0.0025, decoder=0.025, temperature=2.0)


def build(args, device):
    from tsfmlab.models.chronos_models import TokenizerParams, new_chronos_t5
    from tsfmlab.models.loading import inner_model

    tok = TokenizerParams(
        tokenizer_class="MeanScaleUniformBins",
        tokenizer_kwargs={"low_limit": -15.0, "high_limit": 15.0},
        n_tokens=args.n_tokens,
        use_eos_token=True,
        context_length=args.context,
        prediction_length=args.prediction,
        num_samples=20,
    )
    teacher = inner_model(new_chronos_t5(args.teacher, tok, seed=1)).to(device)
    student = inner_model(new_chronos_t5(args.student, tok, seed=2)).to(device).train()
    g = torch.Generator().manual_seed(0)
    batch = {
        "input_ids": torch.randint(2, args.n_tokens, (args.batch, args.context + 1), generator=g),
        "attention_mask": torch.ones(args.batch, args.context + 1, dtype=torch.bool),
        "labels": torch.randint(2, args.n_tokens, (args.batch, args.prediction + 1), generator=g),
    }
    batch["input_ids"][:, -1] = 1  # EOS
    batch["labels"][:, -1] = 1
    return teacher, student, {k: v.to(device) for k, v in batch.items()}


class ReferenceDistiller(torch.nn.Module):
    """The seed trainer's compute_loss, written out: two full forward calls, fp32, all hidden states."""

    def __init__(self, student, teacher):
        super().__init__()
        self.student, self._teacher = student, (teacher.eval().requires_grad_(False),)
        d_s, d_t = student.config.d_model, teacher.config.d_model
        self.encoder_projection = torch.nn.Linear(d_s, d_t)
        self.decoder_projection = torch.nn.Linear(d_s, d_t)

    def forward(self, input_ids, attention_mask, labels):
        w, t_ = WEIGHTS, WEIGHTS["temperature"]
        s = self.student(
            input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_hidden_states=True
        )
        with torch.no_grad():
            t = self._teacher[0](
                input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_hidden_states=True
            )
        mask = (labels != -100).float()
        kl = F.kl_div(
            F.log_softmax(s.logits / t_, -1),
            F.log_softmax(t.logits / t_, -1),
            reduction="none",
            log_target=True,
        ).sum(-1)
        distill = t_**2 * (kl * mask).sum() / mask.sum()
        enc_mask = attention_mask.float()
        enc = (
            (self.encoder_projection(s.encoder_last_hidden_state) - t.encoder_last_hidden_state) ** 2
        ).mean(-1)
        enc = (enc * enc_mask).sum() / enc_mask.sum()
        dec = (
            (self.decoder_projection(s.decoder_hidden_states[-1]) - t.decoder_hidden_states[-1]) ** 2
        ).mean(-1)
        dec = (dec * mask).sum() / mask.sum()
        loss = w["task"] * s.loss + w["distill"] * distill + w["encoder"] * enc + w["decoder"] * dec
        return {
            "loss": loss,
            "task_loss": s.loss,
            "distill_loss": distill,
            "encoder_loss": enc,
            "decoder_loss": dec,
        }


def run_variant(variant: str, args, queue) -> None:
    torch.manual_seed(0)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = variant == "ours"
        torch.backends.cudnn.allow_tf32 = variant == "ours"
    teacher, student, batch = build(args, device)
    if variant == "reference":
        torch.manual_seed(0)  # projections initialised alike in both variants
        model = ReferenceDistiller(student, teacher).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
        autocast = torch.autocast(device.type, enabled=False)
    else:
        from tsfmlab.training.distillation import DistillationModel, LossWeights

        if cuda:
            teacher.to(torch.bfloat16)
        torch.manual_seed(0)  # projections initialised as in the reference
        model = DistillationModel(student, teacher, LossWeights(**WEIGHTS)).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda, foreach=not cuda)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda)
    step_model = torch.compile(model) if (cuda and variant == "ours" and not args.no_compile) else model

    def step():
        with autocast:
            out = step_model(**batch)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return out

    model.eval()  # the loss check: same weights, no dropout
    with torch.no_grad(), autocast:
        out = step_model(**batch)
    first_terms = {k: float(out[k]) for k in TERMS}
    model.train()
    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = (
        torch.cuda.max_memory_allocated()
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    queue.put(
        {
            "variant": variant,
            "samples_per_s": args.batch * args.steps / seconds,
            "seconds": seconds,
            "peak_memory_mib": peak / 2**20,
            "first_step": first_terms,
        }
    )


def measure(variant: str, args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=run_variant, args=(variant, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--teacher", default="mini", help="T5 size preset of the teacher")
    ap.add_argument("--student", default="nano", help="T5 size preset of the student")
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--prediction", type=int, default=16)
    ap.add_argument("--n-tokens", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true", help="ours without torch.compile (CUDA)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()

    ref = measure("reference", args)
    ours = measure("ours", args)
    tol = 2e-2 if args.device.startswith("cuda") else 1e-4
    rel = {
        k: abs(ours["first_step"][k] - ref["first_step"][k]) / max(abs(ref["first_step"][k]), 1e-8)
        for k in TERMS
    }
    result = {
        "setting": vars(args),
        "machine": platform.platform(),
        "device_name": torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else platform.processor(),
        "torch": torch.__version__,
        "reference": ref,
        "ours": ours,
        "speedup": ours["samples_per_s"] / ref["samples_per_s"],
        "memory_ratio": ours["peak_memory_mib"] / ref["peak_memory_mib"],
        "loss_rel_diff": rel,
        "losses_match": all(v <= tol for v in rel.values()),
    }
    for name in ("reference", "ours"):
        r = result[name]
        print(f"{name:>9}: {r['samples_per_s']:9.1f} samples/s, peak {r['peak_memory_mib']:8.1f} MiB")
    print(f"speedup {result['speedup']:.2f}x, memory ratio {result['memory_ratio']:.2f}")
    print(
        f"first-step losses match within {tol}: {result['losses_match']} (max rel diff {max(rel.values()):.2e})"
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
