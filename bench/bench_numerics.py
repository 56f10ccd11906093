"""Portable CPU numerics (``numerics.portable``): same bytes across CPUs, and what it costs in speed.

What it does
------------
Copies the project (its tracked and untracked-not-ignored files) into one temporary directory per
condition and runs ``dvc repro -s`` of each ``--stages`` entry there, in order, timing each stage:

* ``native``           ``numerics.portable: false``: every library picks the kernels of this CPU.
* ``native-capped``    the same, on a simulated smaller CPU: AVX-512 dispatch switched off in numpy,
                       OpenBLAS, MKL, oneDNN, torch and numba through their own variables, one core
                       (``taskset -c 0``) and one thread.
* ``portable``         ``numerics.portable: true`` (the default profile).
* ``portable-capped``  the pinned setting on the simulated smaller CPU.

It prints, per stage, the hashes of every output (from each copy's ``dvc.lock``), whether they agree
between a condition and its capped twin, whether ``portable`` reproduces the committed ``dvc.lock`` (made
on another machine), and the speed ratio ``native time / portable time`` measured in the same run.
Expected: native != native-capped where a stage does floating-point work, portable == portable-capped
everywhere.

    .venv/bin/python bench/bench_numerics.py                       # data stages + teacher
    .venv/bin/python bench/bench_numerics.py --stages kernelsynth --out numerics.json
    .venv/bin/python bench/bench_numerics.py --kernels             # MKL kernels, vendor dispatch on/off

``--kernels`` times MKL's kernels under the portable settings in two fresh processes, one with
``tsfmlab._mkl_dispatch`` loaded (Intel's AVX2 kernels on any vendor: the default) and one without (MKL's
own choice by vendor), and prints the ratio. On an Intel CPU both run the same kernels (expected: 1.0);
on an AMD CPU the ratio is what the same bytes on every vendor cost or save.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STAGES = ["generate_dysts", "kernelsynth", "build_mixups", "prepare_ucr", "prepare_energy", "teacher"]
CAPS = {
    "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL "
    "AVX512_ICL AVX512_SPR",
    "OPENBLAS_CORETYPE": "Haswell",
    "MKL_CBWR": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "NUMBA_CPU_NAME": "haswell",
    "NUMBA_CPU_FEATURES": "+avx,+avx2,+fma,+f16c,+bmi,+bmi2,+popcnt,+sse4.2",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TSFMLAB_N_JOBS": "1",
}
CONDITIONS = {
    "native": (False, False),
    "native-capped": (False, True),
    "portable": (True, False),
    "portable-capped": (True, True),
}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def copy_project(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    built = [str(p.relative_to(REPO)) for p in (REPO / "src").rglob("*.so")]  # built by the install
    for rel in [*filter(None, files.split("\0")), *built]:
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.email=bench@tsfmlab", "-c", "user.name=bench"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot"], cwd=dest, check=True)  # dvclive needs a commit


def set_portable(dest: Path, portable: bool) -> None:
    yaml = YAML()
    yaml.preserve_quotes = True
    path = dest / "params.yaml"
    params = yaml.load(path.read_text())
    params["numerics"]["portable"] = portable
    with path.open("w") as f:
        yaml.dump(params, f)


def lock_hashes(dest: Path, stage: str) -> dict[str, str]:
    lock = YAML(typ="safe", pure=True).load((dest / "dvc.lock").read_text())
    outs = lock["stages"].get(stage, {}).get("outs", [])
    return {o["path"]: o.get("md5", "") for o in outs}


def run_condition(name: str, stages: list[str], root: Path) -> dict[str, dict]:
    portable, capped = CONDITIONS[name]
    dest = root / name
    dest.mkdir()
    copy_project(dest)
    set_portable(dest, portable)
    env = {**os.environ, "TSFMLAB_NO_PROGRESS": "1", "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(dest / "src")  # the copy's library, not the installed one
    prefix: list[str] = []
    if capped:
        env.update(CAPS)
        prefix = ["taskset", "-c", "0"]
    results = {}
    for stage in stages:
        start = time.perf_counter()
        proc = subprocess.run(
            [*prefix, "dvc", "repro", "-s", "-f", stage], cwd=dest, env=env, capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{name}: dvc repro -s {stage} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        results[stage] = {"seconds": round(seconds, 1), "outs": lock_hashes(dest, stage)}
        print(f"{name:16s} {stage:16s} {seconds:7.1f} s", flush=True)
    return results


KERNELS = """
import ctypes, json, os, sys, time
from tsfmlab import numerics
os.environ.update(numerics.portable_env(1))
if sys.argv[1] == "dispatch":
    numerics.load_mkl_dispatch()
import torch
g = torch.Generator().manual_seed(0)
def best(f, repeat=7):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter(); f(); times.append(time.perf_counter() - t0)
    return min(times)
out = {}
for m, k, n in [(64, 256, 256), (256, 512, 256), (512, 1024, 512)]:
    a, b = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)
    out[f"matmul {m}x{k}x{n} GFLOP/s"] = 2 * m * k * n / best(lambda: [a @ b for _ in range(20)]) * 20 / 1e9
x = torch.randn(256 * 1024, generator=g).abs() + 0.1
for name in ("exp", "log", "sqrt", "erf"):
    op = getattr(torch, name)
    out[f"{name} 256k us"] = best(lambda: [op(x) for _ in range(20)]) / 20 * 1e6
print(json.dumps(out))
"""


def kernels() -> None:
    """MKL kernel speed with and without the vendor-dispatch extension, measured in the same run."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    runs = {}
    for mode in ("dispatch", "vendor"):
        with tempfile.TemporaryDirectory() as cwd:  # no params.yaml: importing tsfmlab pins nothing
            proc = subprocess.run(
                [sys.executable, "-c", KERNELS, mode], cwd=cwd, env=env, capture_output=True, text=True
            )
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        runs[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"CPU: {cpu_model()}, one thread, portable settings")
    print(f"{'kernel':28s} {'by vendor':>10s} {'dispatch':>10s} {'dispatch/vendor':>16s}")
    for key, value in runs["dispatch"].items():
        print(f"{key:28s} {runs['vendor'][key]:10.1f} {value:10.1f} {value / runs['vendor'][key]:16.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", nargs="+", default=DEFAULT_STAGES)
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    ap.add_argument("--out", type=Path, default=None, help="write the full results as JSON here")
    ap.add_argument("--kernels", action="store_true", help="time MKL's kernels, vendor dispatch on and off")
    args = ap.parse_args()
    if args.kernels:
        return kernels()

    committed = YAML(typ="safe", pure=True).load((REPO / "dvc.lock").read_text())["stages"]
    with tempfile.TemporaryDirectory(prefix="bench-numerics-") as tmp:
        runs = {name: run_condition(name, args.stages, Path(tmp)) for name in args.conditions}

    print(f"\nCPU: {cpu_model()} ({os.cpu_count()} cores)")
    header = f"{'stage':16s} {'native=capped':>14s} {'portable=capped':>16s} {'portable=lock':>14s} {'native/portable':>16s}"
    print(header)
    summary = {}
    for stage in args.stages:

        def outs(name: str, stage: str = stage) -> dict[str, str] | None:
            return runs[name][stage]["outs"] if name in runs else None

        lock = {o["path"]: o.get("md5", "") for o in committed.get(stage, {}).get("outs", [])}
        row = {
            "native_equals_capped": outs("native") == outs("native-capped") if "native-capped" in runs else None,
            "portable_equals_capped": (
                outs("portable") == outs("portable-capped") if "portable-capped" in runs else None
            ),
            "portable_equals_committed_lock": outs("portable") == lock if "portable" in runs else None,
            "differing_outs_native": sorted(
                p for p in (outs("native") or {}) if (outs("native-capped") or {}).get(p) != outs("native")[p]
            ),
            "differing_outs_portable": sorted(
                p
                for p in (outs("portable") or {})
                if (outs("portable-capped") or {}).get(p) != outs("portable")[p]
            ),
        }
        if "native" in runs and "portable" in runs:
            row["speed_ratio_native_over_portable"] = round(
                runs["native"][stage]["seconds"] / runs["portable"][stage]["seconds"], 3
            )
        summary[stage] = row
        print(
            f"{stage:16s} {row['native_equals_capped']!s:>14s} {row['portable_equals_capped']!s:>16s} "
            f"{row['portable_equals_committed_lock']!s:>14s} {row.get('speed_ratio_native_over_portable', '')!s:>16s}"
        )
    if args.out:
        args.out.write_text(json.dumps({"cpu": cpu_model(), "runs": runs, "summary": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
