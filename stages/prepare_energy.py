"""Stage prepare_energy: the series with covariates of the energy stages, split in time.

``energy.source: synthetic`` generates the offline stand-in (a load driven by known covariates);
``steel`` reads the UCI steel-industry CSV, which must lie under --raw (this stage's dep).
Outs: --out frame.safetensors (target, past-only and future-known covariates, timestamps) and split.json
(train | validation | test bounds), --fev-out data.parquet (the frame in fev's schema: what
evaluate_energy's fev tasks read); reports/energy_data.json.
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.data.energy import FEV_FILE, read_steel_csv, save_prepared, split_bounds, synthetic_energy
from tsfmlab.data.fev_data import write_fev_dataset
from tsfmlab.errors import ParamError
from tsfmlab.data.energy import EnergyParams
from tsfmlab.io.atomic import write_results
from tsfmlab.params import stage_params

SECTION = "energy"


def load(p: EnergyParams, raw: Path):
    if p.source == "steel":
        csv = Path(p.steel.csv)
        if raw.resolve() not in csv.resolve().parents:
            raise ParamError(
                f"param {SECTION}.steel.csv: {csv} is outside {raw}/, so DVC would not track it; copy it "
                f"there (`dvc add {raw}/{csv.name}`) and point the param at it"
            )
        frame = read_steel_csv(
            csv, p.steel.target, p.steel.past_covariates, p.steel.future_covariates, f"{SECTION}.steel"
        )
        return frame, hashlib.sha256(csv.read_bytes()).hexdigest()
    s = p.synthetic
    frame = synthetic_energy(
        s.n_days, seed=s.seed, ar=s.ar, production_std=s.production_std, noise_std=s.noise_std
    )
    future = {n: frame.future_covariates[n] for n in s.future_covariates}
    return dataclasses.replace(frame, future_covariates=future), None


def split_stats(frame, bounds):
    out = {}
    for name, (start, stop) in bounds.items():
        y = frame.target[start:stop]
        out[name] = {
            "points": int(stop - start),
            "start": str(frame.timestamps[start]),
            "end": str(frame.timestamps[stop - 1]),
            "target_mean": round(float(np.nanmean(y)), 4),
            "target_std": round(float(np.nanstd(y)), 4),
        }
    return out


def main() -> None:
    args = stage_args(raw="the data you bring (a dep)", out="the frame and its split", fev_out="fev's dataset")
    p = stage_params(EnergyParams, SECTION)
    frame, digest = load(p, args.raw)
    val_start, test_start = split_bounds(
        len(frame), p.val_fraction, p.test_fraction, min_length=max(p.horizons)
    )
    if val_start < p.context_length + max(p.horizons):
        raise ParamError(
            f"params {SECTION}: the train split has {val_start} points, fewer than context_length "
            f"({p.context_length}) + the longest horizon ({max(p.horizons)})"
        )
    bounds = {"train": (0, val_start), "val": (val_start, test_start), "test": (test_start, len(frame))}
    save_prepared(args.out, frame, val_start, test_start)
    item = {"id": frame.target_name, "timestamp": frame.timestamps, "target": frame.target,
            **frame.past_covariates, **frame.future_covariates}  # fmt: skip
    write_fev_dataset([item], args.fev_out / FEV_FILE)  # one item; evaluate_energy's tasks say which covariates are known
    write_results(
        "energy_data",
        {
            "source": p.source,
            "sha256": digest,
            "target": frame.target_name,
            "past_covariates": list(frame.past_covariates),
            "future_covariates": list(frame.future_covariates),
            **split_stats(frame, bounds),
        },
    )
    print(
        f"prepare_energy: {len(frame)} points, train/val/test {val_start}/{test_start - val_start}/{len(frame) - test_start}"
    )


if __name__ == "__main__":
    run_stage(main)
