"""Stage finetune_energy: Chronos2Pipeline.fit on the energy train split, one run per
(mode in finetune_energy.modes) x (covariates in finetune_energy.covariates), model selection on the
validation split (never test). evaluate_energy scores the runs.

Deps: --base (stage chronos2's model), --energy (prepare_energy's frame and split). Outs: --out
<mode>-<covariates>/ (merged model, from_pretrained-loadable; LoRA runs also adapter/) and runs.json;
metrics/finetune_energy.json (best validation loss per run), reports/finetune_energy.json;
dvclive/finetune_energy/<run>/ (train and validation loss curves).
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
from contextlib import nullcontext
from pathlib import Path

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.data.energy import load_prepared
from tsfmlab.errors import ParamError
from tsfmlab.io.atomic import atomic_dir, write_json, write_results
from tsfmlab.models.loading import count_parameters, load_pipeline, weights_digest
from tsfmlab.launch import check_world
from tsfmlab.params import param, stage_params
from tsfmlab.runtime import is_main_process
from tsfmlab.training.chronos2_finetune import Chronos2FinetuneParams, finetune, run_name
from tsfmlab.training.hf_trainer import checkpoint_dir, dvclive_callback

SECTION = "finetune_energy"
LIVE = Path("dvclive/finetune_energy")


def main() -> None:
    args = stage_args(base="the Chronos-2 to fine-tune", energy="prepare_energy's frame", out="the runs")
    p = stage_params(Chronos2FinetuneParams, SECTION)
    check_world(p.launch, SECTION)
    horizons = param("energy.horizons")
    if horizons and p.prediction_length < max(horizons):
        raise ParamError(
            f"param {SECTION}.prediction_length ({p.prediction_length}) is shorter than the longest "
            f"horizon of energy.horizons ({max(horizons)})"
        )
    frame, val_start, test_start = load_prepared(args.energy)
    base = load_pipeline(args.base, "chronos-2")
    runs, metrics = [], {"base_weights_sha256": weights_digest(args.base)}
    writes = is_main_process()  # torchrun: every rank trains, rank 0 writes the outputs
    work = checkpoint_dir(SECTION, p, [args.base, args.energy])  # keyed by params and input contents
    with atomic_dir(args.out) if writes else nullcontext() as tmp:
        for mode, covariates in p.runs:
            name = run_name(mode, covariates)
            tuned, val_losses = finetune(
                base, frame, val_start, test_start, mode, covariates, p,
                work_dir=work / name,
                adapter_dir=tmp / name / "adapter" if mode == "lora" and writes else None,
                callbacks=[dvclive_callback(LIVE / name)],
            )  # fmt: skip
            if writes:
                tuned.model.save_pretrained(tmp / name, safe_serialization=True)
            best_step, best = min(val_losses, key=lambda sl: sl[1])
            metrics[name] = {
                "mode": mode,
                "covariates": covariates,
                "best_val_loss": round(best, 6),
                "best_step": best_step,
                "val_loss": {str(step): round(loss, 6) for step, loss in val_losses},
                "parameters": count_parameters(tuned),
            }
            runs.append({"name": name, "mode": mode, "covariates": covariates})
            print(
                f"finetune_energy: {name}: validation loss {val_losses[0][1]:.4f} -> best {best:.4f} at step {best_step}"
            )
        if writes:
            write_json(tmp / "runs.json", runs)
    if writes:
        headline = {r["name"]: {"best_val_loss": metrics[r["name"]]["best_val_loss"]} for r in runs}
        write_results("finetune_energy", metrics, headline)


if __name__ == "__main__":
    run_stage(main)
