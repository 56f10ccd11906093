"""Stage prepare_heldout: the held-out datasets that installed packages ship, written once in fev's schema.

Params: prepare_heldout (``real``: names of tsfmlab.data.real_series; ``benchmark``: fev benchmark
datasets that a package ships as published, tsfmlab.evaluation.fev_tasks.SHIPPED) and
build_mixups.real_datasets (a real dataset mixed into training data is refused: it would not be held out).
Outs: --heldout <name>.parquet (fev's schema, one item per channel) and
--mirror <name>/data.parquet (the layout fev reads through FEV_DATASETS_PREFIX).
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load

from tsfmlab.cli import run_stage, stage_args
from tsfmlab.data.real_series import REAL_SERIES
from tsfmlab.errors import ParamError
from tsfmlab.data.fev_data import SHIPPED, mirror_packaged, real_items, write_fev_dataset
from tsfmlab.io.atomic import atomic_dir
from tsfmlab.params import Params, param, stage_params

SECTION = "prepare_heldout"


class HeldoutParams(Params):
    real: list[str]
    benchmark: list[str]


def main() -> None:
    args = stage_args(heldout="one fev dataset per real series", mirror="fev's layout of packaged benchmarks")
    p = stage_params(HeldoutParams, SECTION)
    mixed = sorted(set(p.real) & set(param("build_mixups.real_datasets")))
    for key, names, known in (("real", p.real, REAL_SERIES), ("benchmark", p.benchmark, SHIPPED)):
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ParamError(f"param {SECTION}.{key}: unknown dataset(s) {unknown}; available: {sorted(known)}")
    if mixed:
        raise ParamError(f"param {SECTION}.real: {mixed} mixed into training data (build_mixups.real_datasets)")
    with atomic_dir(args.heldout) as out:
        for name in p.real:
            write_fev_dataset(real_items(name, f"{SECTION}.real"), out / f"{name}.parquet")
    with atomic_dir(args.mirror) as out:
        for name in p.benchmark:
            mirror_packaged(name, out)
    print(f"held out in fev's schema: {p.real} ({args.heldout}), {p.benchmark} ({args.mirror})")


if __name__ == "__main__":
    run_stage(main)
