"""Benchmark: our dysts trajectory generator vs dysts' default ``make_trajectory``.

Reference: ``model.make_trajectory(n, init_cond=ic, pts_per_period=...)`` with dysts' defaults
(Radau, rtol = atol = 1e-12), one trajectory after another in this process (JIT warmed first).
Ours: the generator's integration path (DOP853 at the params.yaml tolerances, 1e-9) in parallel over
all cores, one task per system as in the stage, timed cold (worker start-up and numba compilation
included). Like the generator, ours integrates several samples per system (``--ics-per-system``: the
published initial condition and perturbed copies of it); the reference, at ~20 s a trajectory,
integrates the first ``--ref-ics-per-system`` of them, and rates are trajectories per second. On the
shared initial conditions both produce the same time grid, so we report the deviation of ours from the
reference over the first ``--compare`` points, relative to each channel's standard deviation.

Run: .venv/bin/python bench/bench_dysts.py [--systems Lorenz Rossler ...] [--n-systems 8] [--out file.json]
Target: speedup >= 50x at max relative deviation <= 1e-3.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np

from tsfmlab.data.dysts_gen import available_systems, integrate, make_system
from tsfmlab.parallel import parallel_map
from tsfmlab.params import load_params

DEFAULT_SYSTEMS = ["Lorenz", "Rossler", "Chua", "Thomas", "Halvorsen", "SprottB", "HindmarshRose", "Duffing"]


def initial_conditions(name: str, k: int) -> list[np.ndarray]:
    """The published initial condition and k - 1 copies perturbed by 1% (fixed seed)."""
    ic = np.asarray(make_system(name).ic, dtype=np.float64)
    rng = np.random.default_rng(0)
    return [ic] + [ic * (1 + 0.01 * rng.standard_normal(ic.shape)) for _ in range(k - 1)]


def ours(name: str, k: int, n: int, pts_per_period: int, method: str, rtol: float, atol: float) -> list:
    model = make_system(name)
    ics = initial_conditions(name, k)
    return [integrate(model, ic, n, pts_per_period, method, rtol, atol)[0] for ic in ics]


def reference(name: str, k: int, n: int, pts_per_period: int) -> list[np.ndarray]:
    model = make_system(name)
    model.make_trajectory(8, pts_per_period=pts_per_period)  # compile the numba right-hand side
    ics = initial_conditions(name, k)
    return [np.asarray(model.make_trajectory(n, init_cond=ic, pts_per_period=pts_per_period)) for ic in ics]


def main() -> None:
    p = load_params()["generate_dysts"]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", nargs="*", default=None)
    ap.add_argument("--n-systems", type=int, default=len(DEFAULT_SYSTEMS))
    ap.add_argument("--length", type=int, default=p["length"] + p["transient"])
    ap.add_argument("--compare", type=int, default=200)
    ap.add_argument("--ics-per-system", type=int, default=4)
    ap.add_argument("--ref-ics-per-system", type=int, default=1)
    ap.add_argument("--n-jobs", type=int, default=-1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    systems = args.systems or DEFAULT_SYSTEMS[: args.n_systems]
    unknown = set(systems) - set(available_systems(False))
    if unknown:
        raise SystemExit(f"unknown systems: {sorted(unknown)}")

    t0 = time.perf_counter()
    fn = partial(
        ours,
        k=args.ics_per_system,
        n=args.length,
        pts_per_period=p["pts_per_period"],
        method=p["method"],
        rtol=p["rtol"],
        atol=p["atol"],
    )
    mine = parallel_map(fn, systems, n_jobs=args.n_jobs, desc="ours", batch_size=1)
    t_ours = time.perf_counter() - t0

    refs, t_ref = [], 0.0
    for name in systems:
        t = time.perf_counter()
        refs.append(reference(name, args.ref_ics_per_system, args.length, p["pts_per_period"]))
        t_ref += time.perf_counter() - t

    rows = []
    for name, a_list, b_list in zip(systems, mine, refs):
        for a, b in zip(a_list, b_list):  # the shared initial conditions
            if a is None:
                dev = float("inf")
            else:
                std = b.std(axis=0)
                dev = float(np.max(np.abs(a[: args.compare] - b[: args.compare]) / np.where(std > 0, std, 1)))
            rows.append({"system": name, "rel_deviation": dev})
    rate_ours = len(systems) * args.ics_per_system / t_ours
    rate_ref = len(systems) * args.ref_ics_per_system / t_ref
    result = {
        "systems": systems,
        "length": args.length,
        "ics_per_system": {"ours": args.ics_per_system, "reference": args.ref_ics_per_system},
        "ours": {
            "method": p["method"],
            "rtol": p["rtol"],
            "atol": p["atol"],
            "seconds": t_ours,
            "traj_per_s": rate_ours,
        },
        "reference": {
            "method": "Radau",
            "rtol": 1e-12,
            "atol": 1e-12,
            "seconds": t_ref,
            "traj_per_s": rate_ref,
        },
        "speedup": rate_ours / rate_ref,
        "max_rel_deviation": max(r["rel_deviation"] for r in rows),
        "per_system": rows,
    }
    for r in rows:
        print(f"{r['system']:16s} deviation/std over first {args.compare} points: {r['rel_deviation']:.2e}")
    print(f"reference (Radau 1e-12, serial): {rate_ref:.3f} traj/s   ours: {rate_ours:.2f} traj/s")
    print(
        f"speedup = {result['speedup']:.1f}x   max deviation = {result['max_rel_deviation']:.2e}  (target >= 50x, <= 1e-3)"
    )
    if args.out:
        from tsfmlab.io.atomic import write_json

        write_json(args.out, result)


if __name__ == "__main__":
    main()
