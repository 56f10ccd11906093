"""Stage prepare_ucr: the UCR/UEA datasets of classification.datasets, cleaned and split.

Each dataset is read by name (local archive directory, aeon's bundled copies, or a download when allowed),
made equal-length and complete by params or refused, its labels encoded by TRAIN's sorted classes, and a
stratified, seeded validation split carved from TRAIN. Outs: --out <Name>.safetensors (x/y of train,
val, test), reports/ucr.json (sizes per dataset).
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
from typing import Literal

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.data import ucr
from tsfmlab.io.atomic import atomic_dir, write_results
from tsfmlab.params import Distinct, OpenUnit, Params, stage_params, typed_param

SECTION = "prepare_ucr"


class PrepareUcrParams(Params):
    local_dir: str | None  # a UCR/UEA archive: <local_dir>/<Name>/<Name>_TRAIN.ts|.tsv|.arff, _TEST.*
    download: bool  # fetch names that are neither local nor bundled (needs the internet)
    download_dir: str
    unequal_length: Literal["error", "pad", "truncate", "resample"]
    missing: Literal["error", "interpolate"]
    val_fraction: OpenUnit
    seed: int


def main() -> None:
    args = stage_args(out="one safetensors file per dataset")
    p = stage_params(PrepareUcrParams, SECTION)
    names = typed_param(Distinct[str], "classification.datasets")
    prepared = [
        ucr.prepare(
            n, p.local_dir, p.download, p.download_dir, p.unequal_length, p.missing, p.val_fraction, p.seed
        )
        for n in names
    ]  # everything is read and checked before anything is written
    with atomic_dir(args.out) as tmp:
        for ds in prepared:
            ucr.save(ds, tmp / f"{ds.name}.safetensors")
    write_results("ucr", {ds.name: {**ds.info, "classes": ds.classes} for ds in prepared})
    for ds in prepared:
        print(f"prepare_ucr: {ds.name}: {ds.info}")


if __name__ == "__main__":
    run_stage(main)
