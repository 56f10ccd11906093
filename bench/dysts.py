"""Benchmark: our dysts trajectory generator vs dysts' default ``make_trajectory``.

Reference: ``model.make_trajectory(n, init_cond=ic, pts_per_period=...)`` with dysts' defaults
(Radau, rtol = atol = 1e-12), one trajectory after another in this process (JIT warmed first).
Ours: the generator's integration path (DOP853 at the params.yaml tolerances, 1e-9) over the same
systems and initial conditions, in parallel over all cores, timed cold (worker start-up and numba
compilation included). Both produce the same time grid, so we also report the deviation of ours from
the reference over the first ``--compare`` points, relative to each channel's standard deviation.

Run: .venv/bin/python bench/dysts.py [--systems Lorenz Rossler ...] [--n-systems 8] [--out file.json]
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


def ours(name: str, n: int, pts_per_period: int, method: str, rtol: float, atol: float) -> np.ndarray | None:
    model = make_system(name)
    traj, _ = integrate(model, np.asarray(model.ic), n, pts_per_period, method, rtol, atol)
    return traj


def reference(name: str, n: int, pts_per_period: int) -> np.ndarray:
    model = make_system(name)
    model.make_trajectory(8, pts_per_period=pts_per_period)  # compile the numba right-hand side
    return np.asarray(model.make_trajectory(n, init_cond=np.asarray(model.ic), pts_per_period=pts_per_period))


def main() -> None:
    p = load_params()["generate_dysts"]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", nargs="*", default=None)
    ap.add_argument("--n-systems", type=int, default=len(DEFAULT_SYSTEMS))
    ap.add_argument("--length", type=int, default=p["length"] + p["transient"])
    ap.add_argument("--compare", type=int, default=200)
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
        model_ref = partial(reference, n=args.length, pts_per_period=p["pts_per_period"])
        t = time.perf_counter()
        refs.append(model_ref(name))
        t_ref += time.perf_counter() - t

    rows = []
    for name, a, b in zip(systems, mine, refs):
        if a is None:
            dev = float("inf")
        else:
            std = b.std(axis=0)
            dev = float(np.max(np.abs(a[: args.compare] - b[: args.compare]) / np.where(std > 0, std, 1)))
        rows.append({"system": name, "rel_deviation": dev})
    rate_ours = len(systems) / t_ours
    rate_ref = len(systems) / t_ref
    result = {
        "systems": systems,
        "length": args.length,
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
