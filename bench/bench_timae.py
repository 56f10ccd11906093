"""Benchmark of Ti-MAE pretraining throughput (series/s) for both backbones.

What it measures
----------------
Training steps (forward, masked-MSE loss, backward, AdamW step) of ``TiMAEForPretraining`` on random
series of ``--seq-len`` points in batches of ``--batch-size`` (ECG5000's shape by default: length 140),
after ``--warmup`` untimed steps, for

* the Transformer backbone (the seed's 91.7K-parameter architecture), fp32 and, on a GPU, bf16 autocast;
* the Mamba-2 backbone with ``chunk_size`` 64 (ours) and the ``transformers`` default 256 (the reference:
  on short series a long chunk only adds padding to the PyTorch scan); on a GPU with ``mamba-ssm``
  installed, also the fused kernels vs the PyTorch path (``--no-kernels`` hides them).

Ratios are measured in the same run: Mamba chunk 64 / chunk 256, bf16 / fp32, kernels / PyTorch path.

    .venv/bin/python bench/bench_timae.py [--device cuda] [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from tsfmlab.models.timae import TiMAEConfig, TiMAEForPretraining, parameter_counts

TRANSFORMER = dict(backbone="transformer", emb_size=64, num_layers=2, num_heads=4, intermediate_dim=256)
MAMBA = dict(backbone="mamba2", emb_size=32, num_layers=2, ssm_state_size=16, mamba_head_dim=16)


def series_per_s(config: TiMAEConfig, args, dtype: torch.dtype | None = None) -> tuple[float, int]:
    torch.manual_seed(0)
    model = TiMAEForPretraining(config).to(args.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(args.batch_size, 1, config.seq_len, device=args.device)

    def step() -> None:
        with torch.autocast(args.device.split(":")[0], dtype=dtype, enabled=dtype is not None):
            loss = model(x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    return args.steps * args.batch_size / (time.perf_counter() - start), parameter_counts(model)["total"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seq-len", type=int, default=140)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-kernels", action="store_true", help="hide mamba-ssm (PyTorch path only)")
    ap.add_argument("--out")
    args = ap.parse_args()

    base = dict(input_dim=1, seq_len=args.seq_len)
    rows = {}
    t32 = TiMAEConfig(**base, **TRANSFORMER)
    rows["transformer_fp32"] = series_per_s(t32, args)
    m64 = TiMAEConfig(**base, **MAMBA, chunk_size=64)
    rows["mamba2_chunk64"] = series_per_s(m64, args)
    rows["mamba2_chunk256"] = series_per_s(m64.model_copy(update={"chunk_size": 256}), args)
    ratios = {"mamba2_chunk64_over_chunk256": rows["mamba2_chunk64"][0] / rows["mamba2_chunk256"][0]}
    if args.device.startswith("cuda"):
        rows["transformer_bf16"] = series_per_s(t32, args, torch.bfloat16)
        ratios["transformer_bf16_over_fp32"] = rows["transformer_bf16"][0] / rows["transformer_fp32"][0]
        try:
            import mamba_ssm  # noqa: F401

            kernels = not args.no_kernels
        except ImportError:
            kernels = False
        if kernels:  # the PyTorch path, for the kernel ratio: hide the kernels from transformers
            from transformers.models.mamba2 import modeling_mamba2 as mm

            saved = mm.is_fast_path_available
            mm.is_fast_path_available = False
            rows["mamba2_chunk64_pytorch_path"] = series_per_s(m64, args)
            mm.is_fast_path_available = saved
            ratios["mamba2_kernels_over_pytorch_path"] = (
                rows["mamba2_chunk64"][0] / rows["mamba2_chunk64_pytorch_path"][0]
            )
    for name, (rate, n_params) in rows.items():
        print(f"{name:28s} {rate:9.1f} series/s  ({n_params / 1e3:.1f}K parameters)")
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    if args.out:
        result = {
            "setting": vars(args),
            "machine": platform.platform(),
            "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
            "torch_threads": torch.get_num_threads(),
            "series_per_s": {k: v[0] for k, v in rows.items()},
            "parameters": {k: v[1] for k, v in rows.items()},
            "ratios": ratios,
        }
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
