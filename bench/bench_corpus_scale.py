"""Benchmark: what a corpus costs as it grows, from generation to training (time, peak RSS, disk).

What it measures
----------------
Each step runs the project's own stage script (``stages/*.py``) in a scratch workspace whose
``params.yaml`` is the repository's with the sizes below changed, as a separate process; its wall time
and peak resident set size come from ``os.wait4`` (for ``torchrun``, the largest of its processes).

1. ``build_mixups`` at each of ``--sizes`` series (lengths as the default profile draws them, sources: the
   default profile's dysts and KernelSynth corpora): generation throughput (series/s, as the stage
   prints it: the drawing and writing loop, without interpreter start-up), peak RSS, disk.
2. ``kernelsynth`` at each of ``--ks-sizes`` series (length 1024, as the default profile): the same.
3. ``teacher``: ``--steps`` training steps of the default profile's teacher reading the mixture of that
   size (with the default KernelSynth and dysts corpora): the step time (the Trainer's samples per
   second, as the stage prints it) and peak RSS, in one process and in two ranks under ``torchrun``
   (gloo), both started by ``python -m tsfmlab.launch`` as ``dvc repro`` starts them.

Targets, each a ratio of the largest size to the smallest, in the same run:
peak RSS <= 1.25x for every step; generation throughput >= 0.8x; the teacher's step time within 10%.
A 10M-series TSMixup build is extrapolated from the largest size measured (time and disk are linear in
the number of series: each is drawn independently and written once).

Run it from the repository root (``make bench`` runs the default)::

    .venv/bin/python bench/bench_corpus_scale.py                       # 16k, 131k, 1M mixtures
    .venv/bin/python bench/bench_corpus_scale.py --sizes 1024 8192 --ks-sizes 64 256 --steps 10

The exit code is 0 unless a step fails (a missed target is reported, not raised).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_params(work: Path, overrides: dict) -> None:
    from ruamel.yaml import YAML

    from tsfmlab.params import load_params

    params = load_params(REPO / "params.yaml")
    for key, value in overrides.items():
        *path, last = key.split(".")
        node = params
        for part in path:
            node = node[part]
        node[last] = value
    work.mkdir(parents=True, exist_ok=True)
    with (work / "params.yaml").open("w") as f:
        YAML(typ="safe", pure=True).dump(params, f)


def run(cmd: list[str], work: Path) -> dict:
    """Run ``cmd`` in ``work``; its wall time, peak RSS (MB) and output."""
    log = work / "last.log"
    env = {**os.environ, "TSFMLAB_NO_PROGRESS": "1"}
    with log.open("w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    text = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{text[-3000:]}")
    return {"wall_s": round(seconds, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "log": text}


def stage(name: str, work: Path) -> dict:
    return run([sys.executable, str(REPO / "stages" / f"{name}.py")], work)


def launched(section: str, work: Path, procs: int) -> dict:
    """A training stage as ``dvc repro`` runs it: through the launcher, ``procs`` processes (torchrun)."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    params = yaml.load((work / "params.yaml").read_text())
    params[section]["launch"] = {"nodes": 1, "procs_per_node": procs}
    with (work / "params.yaml").open("w") as f:
        yaml.dump(params, f)
    return run([sys.executable, "-m", "tsfmlab.launch", section, str(REPO / "stages" / f"{section}.py")], work)


def disk_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def generation(name: str, work: Path, n: int, out_dir: str) -> dict:
    r = stage(name, work)
    m = re.search(r"(\d+) (?:series|mixtures).* in ([\d.]+) s", r["log"])
    seconds = float(m.group(2))
    return {
        "step": name, "n_series": n, "wall_s": r["wall_s"], "loop_s": seconds,
        "series_per_s": round(n / seconds, 1), "peak_rss_mb": r["peak_rss_mb"], "disk_mb": disk_mb(work / out_dir),
    }  # fmt: skip


def teacher(work: Path, n: int, steps: int, batch: int, ranks: int, repeats: int) -> dict:
    """The best of ``repeats`` runs (step time; peak RSS: the largest seen)."""
    os.sync()  # the corpus just written is on disk: no write-back competes with the timed steps
    runs = []
    for _ in range(repeats):
        r = launched("teacher", work, ranks)
        line = next(ln for ln in r["log"].splitlines() if "teacher: {" in ln)
        sps = float(re.search(r"'samples_per_second': ([\d.]+)", line).group(1))
        runs.append((round(1000 * batch * ranks / sps, 1), r))
    step_ms, r = min(runs, key=lambda x: x[0])
    return {
        "step": f"teacher ({ranks} rank{'s' if ranks > 1 else ''})", "n_series": n, "wall_s": r["wall_s"],
        "step_ms": step_ms, "step_ms_runs": [x[0] for x in runs],
        "peak_rss_mb": max(x[1]["peak_rss_mb"] for x in runs),
    }  # fmt: skip


def ratio(rows: list[dict], step: str, key: str) -> float | None:
    mine = sorted((r for r in rows if r["step"] == step), key=lambda r: r["n_series"])
    return round(mine[-1][key] / mine[0][key], 3) if len(mine) > 1 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16384, 131072, 1048576])
    ap.add_argument("--ks-sizes", type=int, nargs="+", default=[1024, 8192, 32768])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--ranks", type=int, default=2, help="torchrun ranks (0: skip the torchrun runs)")
    ap.add_argument("--repeats", type=int, default=2, help="teacher runs per size (the fastest counts)")
    ap.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="corpus-scale-"))
    batch = 32
    overrides = {
        "teacher.train.max_steps": args.steps, "teacher.train.save_steps": 10 * args.steps,
        "teacher.train.log_steps": max(1, args.steps // 5), "teacher.train.per_device_train_batch_size": batch,
    }  # fmt: skip
    rows: list[dict] = []
    try:
        write_params(work, overrides)
        for name in ("generate_dysts", "kernelsynth"):  # the mixtures' sources, default sizes
            stage(name, work)
        for n in args.sizes:
            write_params(work, {**overrides, "build_mixups.n_series": n})
            rows.append(generation("build_mixups", work, n, "data/tsmixup"))
            rows.append(teacher(work, n, args.steps, batch, 1, args.repeats))
            if args.ranks > 1:
                rows.append(teacher(work, n, args.steps, batch, args.ranks, args.repeats))
            print(json.dumps(rows[-3:] if args.ranks > 1 else rows[-2:]), flush=True)
        ks_work = work / "kernelsynth"
        for n in args.ks_sizes:
            write_params(ks_work, {"kernelsynth.n_series": n})
            rows.append(generation("kernelsynth", ks_work, n, "data/kernelsynth/train"))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    steps = list(dict.fromkeys(r["step"] for r in rows))
    targets = {}
    for s in steps:
        targets[f"{s}: peak RSS ratio (<= 1.25)"] = ratio(rows, s, "peak_rss_mb")
        if "series_per_s" in rows[[r["step"] for r in rows].index(s)]:
            targets[f"{s}: throughput ratio (>= 0.8)"] = ratio(rows, s, "series_per_s")
        else:
            targets[f"{s}: step time ratio (0.9-1.1)"] = ratio(rows, s, "step_ms")
    ok = {}
    for k, v in targets.items():
        if v is None:
            continue
        ok[k] = v <= 1.25 if "RSS" in k else (v >= 0.8 if "throughput" in k else 0.9 <= v <= 1.1)
    big = max((r for r in rows if r["step"] == "build_mixups"), key=lambda r: r["n_series"])
    scale = 10_000_000 / big["n_series"]
    extrapolated = {"n_series": 10_000_000, "loop_h": round(big["loop_s"] * scale / 3600, 2),
                    "disk_gb": round(big["disk_mb"] * scale / 1024, 1)}  # fmt: skip

    header = ["step", "n_series", "wall_s", "series_per_s", "step_ms", "peak_rss_mb", "disk_mb"]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(r.get(h, "")) for h in header) + " |")
    for k, v in targets.items():
        print(f"{k}: {v} {'PASS' if ok.get(k) else ('FAIL' if k in ok else '')}")
    print(f"10M TSMixup build, extrapolated: {extrapolated}")
    result = {
        "date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "rows": rows, "targets": targets, "pass": ok, "extrapolated_10m": extrapolated,
    }  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
