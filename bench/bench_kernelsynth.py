"""Benchmark of tsfmlab's KernelSynth generator against the straightforward Chronos recipe.

What it measures
----------------
1. Throughput (series/s) of ``tsfmlab.data.kernelsynth.generate_kernelsynth`` over ``--n-series`` items
   with ``--n-jobs`` worker processes (-1: all cores), and with one process for reference. The worker
   pool is started by a small warm-up call first, so process start-up is not counted.
2. Throughput of the REFERENCE recipe, written as chronos-forecasting's ``scripts/kernel-synth.py``
   does it: for the same kernels (same ``random_kernel`` draws from the same ``item_rng(seed, index)``),
   ``GaussianProcessRegressor(kernel=kernel).sample_y(X[:, None], n_samples=1, random_state=...)``
   (which evaluates the kernel with scikit-learn and samples through numpy's SVD-based
   ``multivariate_normal``), one series at a time in a single process with default BLAS threading,
   over the first ``--n-ref`` items.
   ``speedup = ours / reference`` is the ratio of the two throughputs, measured in the same run.
3. A statistical check that both samplers draw from the same distribution: for fixed composite kernels,
   N=300 series each way at length 256, then
   (a) two-sample Kolmogorov-Smirnov tests (``scipy.stats.ks_2samp``) on the values at a few fixed time
       indices and on the lag-1 differences at those indices,
   (b) for each sampler, a two-sided chi-square test of the empirical variance against the theoretical
       one (``diag K``, resp. the variance of the difference) at the same indices.
   FAIL if the smallest p-value times the number of tests (Bonferroni) is below 0.01.

Run it from the repository root::

    .venv/bin/python bench/bench_kernelsynth.py                 # defaults: 64 series of length 1024
    .venv/bin/python bench/bench_kernelsynth.py --n-series 16 --n-ref 4 --out bench.json

The exit code is 0 unless an exception is raised (a FAIL is reported, not raised).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import numpy as np
from scipy import stats
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import (
    RBF,
    DotProduct,
    ExpSineSquared,
    Kernel,
    RationalQuadratic,
    WhiteKernel,
)
from threadpoolctl import threadpool_info, threadpool_limits

from tsfmlab.data.kernelsynth import generate_kernelsynth, kernel_bank, random_kernel, sample_prior
from tsfmlab.parallel import item_rng, resolve_n_jobs

STAT_LENGTH = 256
STAT_SAMPLES = 300
ALPHA = 0.01


def reference_series(index: int, seed: int, length: int, max_kernels: int) -> np.ndarray:
    """The Chronos recipe for item ``index``: same kernel draw as ours, sampled by scikit-learn."""
    rng = item_rng(seed, index)
    kernel = random_kernel(rng, kernel_bank(length), max_kernels)
    x = np.linspace(0, 1, length)
    gpr = GaussianProcessRegressor(kernel=kernel)
    state = np.random.RandomState(int(rng.integers(2**32)))
    return gpr.sample_y(x[:, None], n_samples=1, random_state=state).squeeze(1)


def time_ours(n_series: int, seed: int, length: int, max_kernels: int, n_jobs: int) -> float:
    """Seconds for ``generate_kernelsynth`` over ``range(n_series)`` (after a warm-up call)."""
    n_workers = resolve_n_jobs(n_jobs)
    generate_kernelsynth(range(10**6, 10**6 + 2 * n_workers), seed, length, max_kernels, n_jobs=n_jobs)
    start = time.perf_counter()
    out = generate_kernelsynth(range(n_series), seed, length, max_kernels, n_jobs=n_jobs)
    elapsed = time.perf_counter() - start
    assert len(out) == n_series and all(s.shape == (length,) for s in out)
    return elapsed


def time_reference(n_ref: int, seed: int, length: int, max_kernels: int) -> float:
    """Seconds for the reference recipe over ``range(n_ref)``, one series at a time."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "covariance is not symmetric PSD"
        for index in range(n_ref):
            reference_series(index, seed, length, max_kernels)
    return time.perf_counter() - start


def stat_kernels(length: int) -> dict[str, Kernel]:
    """Fixed composite kernels for the distribution check: one well-conditioned (white noise), one
    numerically low-rank (smooth: sampled through the truncated pivoted Cholesky)."""
    return {
        "ESS(24)*RBF(1) + RQ(1)*DotProduct(1) + White(0.1)": ExpSineSquared(periodicity=24 / length)
        * RBF(1.0)
        + RationalQuadratic(alpha=1.0) * DotProduct(1.0)
        + WhiteKernel(0.1),
        "ESS(52) + RBF(0.1)*DotProduct(0) + RQ(10)": ExpSineSquared(periodicity=52 / length)
        + RBF(0.1) * DotProduct(0.0)
        + RationalQuadratic(alpha=10.0),
    }


def _chi2_var_pvalue(values: np.ndarray, variance: float) -> float:
    """Two-sided p-value of ``sum(v**2) / variance ~ chi2(n)`` for zero-mean Gaussian ``values``."""
    statistic = float(np.sum(values**2) / variance)
    n = values.size
    return float(min(1.0, 2 * min(stats.chi2.cdf(statistic, n), stats.chi2.sf(statistic, n))))


def distribution_check(seed: int) -> dict:
    """KS and variance tests of ours vs the reference sampler on fixed kernels (see module docstring)."""
    length, n = STAT_LENGTH, STAT_SAMPLES
    x = np.linspace(0, 1, length)[:, None]
    times = [0, length // 4, length // 2, 3 * length // 4, length - 2]
    results: dict = {"kernels": {}}
    pvalues: list[float] = []
    for k_i, (name, kernel) in enumerate(stat_kernels(length).items()):
        rng = np.random.default_rng([seed, 1, k_i])
        ours = np.stack([sample_prior(kernel, length, rng) for _ in range(n)]).astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = GaussianProcessRegressor(kernel=kernel).sample_y(
                x, n_samples=n, random_state=np.random.RandomState(seed + 1000 + k_i)
            )
        ref = ref.T  # (n, length)
        cov = kernel(x)
        rows = []
        for t in times:
            diff_var = cov[t, t] + cov[t + 1, t + 1] - 2 * cov[t, t + 1]
            d_ours, d_ref = ours[:, t + 1] - ours[:, t], ref[:, t + 1] - ref[:, t]
            row = {
                "t": t,
                "ks_value_p": float(stats.ks_2samp(ours[:, t], ref[:, t]).pvalue),
                "ks_diff_p": float(stats.ks_2samp(d_ours, d_ref).pvalue),
                "var_theory": float(cov[t, t]),
                "var_ours": float(np.mean(ours[:, t] ** 2)),
                "var_ref": float(np.mean(ref[:, t] ** 2)),
                "var_ours_p": _chi2_var_pvalue(ours[:, t], cov[t, t]),
                "var_ref_p": _chi2_var_pvalue(ref[:, t], cov[t, t]),
                "diff_var_ours_p": _chi2_var_pvalue(d_ours, diff_var),
                "diff_var_ref_p": _chi2_var_pvalue(d_ref, diff_var),
            }
            pvalues += [v for key, v in row.items() if key.endswith("_p")]
            rows.append(row)
        results["kernels"][name] = rows
    n_tests = len(pvalues)
    min_p = min(pvalues)
    results.update(
        n_tests=n_tests,
        min_p=min_p,
        bonferroni_min_p=min(1.0, min_p * n_tests),
        passed=bool(min_p * n_tests >= ALPHA),
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n-series", type=int, default=64, help="series generated by ours")
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--max-kernels", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=-1, help="worker processes for ours (-1: all cores)")
    parser.add_argument("--n-ref", type=int, default=16, help="series generated by the reference recipe")
    parser.add_argument("--out", default=None, help="optional JSON file for the results")
    args = parser.parse_args()
    os.environ.setdefault("TSFMLAB_NO_PROGRESS", "1")

    n_jobs = resolve_n_jobs(args.n_jobs)
    blas_threads = max(
        (lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=1
    )
    load_before = os.getloadavg()[0]
    cfg = (args.seed, args.length, args.max_kernels)
    rows = [
        ("reference (sklearn sample_y)", args.n_ref, 1, time_reference(args.n_ref, *cfg)),
        ("ours", args.n_series, 1, time_ours(args.n_series, *cfg, n_jobs=1)),
        ("ours", args.n_series, n_jobs, time_ours(args.n_series, *cfg, n_jobs=n_jobs)),
    ]
    print(
        f"KernelSynth, length={args.length}, max_kernels={args.max_kernels}, seed={args.seed}, "
        f"cpus={os.cpu_count()}, reference BLAS threads={blas_threads}, "
        f"load average before: {load_before:.2f}"
    )
    print(f"{'method':<30} {'series':>7} {'jobs':>5} {'seconds':>9} {'series/s':>10}")
    table = []
    for method, count, jobs, seconds in rows:
        print(f"{method:<30} {count:>7} {jobs:>5} {seconds:>9.3f} {count / seconds:>10.2f}")
        table.append({"method": method, "n_series": count, "n_jobs": jobs, "seconds": seconds,
                      "series_per_s": count / seconds})  # fmt: skip
    ref_rate = table[0]["series_per_s"]
    speedup_1 = table[1]["series_per_s"] / ref_rate
    speedup = table[2]["series_per_s"] / ref_rate
    print(f"speedup (1 job)   = ours / reference = {speedup_1:.1f}x")
    print(f"speedup ({n_jobs} jobs) = ours / reference = {speedup:.1f}x   (target >= 30x)")

    with threadpool_limits(1):  # small matrices: BLAS threads only contend with each other here
        check = distribution_check(args.seed)
    print(f"\nDistribution check: N={STAT_SAMPLES} series each way, length {STAT_LENGTH}")
    for name, check_rows in check["kernels"].items():
        print(f"  kernel {name}")
        print(f"    {'t':>4} {'KS value p':>11} {'KS diff p':>10} {'var theory':>11} {'var ours':>9} "
              f"{'var ref':>9} {'var p ours':>11} {'var p ref':>10}")  # fmt: skip
        for r in check_rows:
            print(f"    {r['t']:>4} {r['ks_value_p']:>11.3f} {r['ks_diff_p']:>10.3f} {r['var_theory']:>11.4g} "
                  f"{r['var_ours']:>9.4g} {r['var_ref']:>9.4g} {r['var_ours_p']:>11.3f} {r['var_ref_p']:>10.3f}")  # fmt: skip
    verdict = "PASS" if check["passed"] else "FAIL"
    print(f"  {check['n_tests']} tests, min p = {check['min_p']:.4f}, Bonferroni-corrected = "
          f"{check['bonferroni_min_p']:.4f} -> {verdict} (alpha = {ALPHA})")  # fmt: skip

    if args.out:
        results = {
            "config": {
                **vars(args),
                "n_jobs_resolved": n_jobs,
                "cpu_count": os.cpu_count(),
                "reference_blas_threads": blas_threads,
                "load_average_before": load_before,
                "python": platform.python_version(),
            },  # fmt: skip
            "timings": table,
            "speedup_1_job": speedup_1,
            "speedup": speedup,
            "distribution_check": check,
        }
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
