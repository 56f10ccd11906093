#!/usr/bin/env python3
"""Prepare the wheels tsfmlab needs on a lent GPU machine that reaches no package index.

The lent H100/H200 machines (see docs/gpu_run.md) run Python 3.12 with torch, transformers, lightning,
numpy, pandas, scikit-learn, ... already installed, and cannot reach PyPI. This script

1. collects what tsfmlab needs at run time: the ``dependencies`` of pyproject.toml (plus ``--extra``
   groups) and their requirements, transitively, as installed in ``.venv`` (markers evaluated for
   CPython 3.12 on x86-64 Linux), each pinned to the version installed there -- what was tested here;
2. leaves out what the device image already has (:data:`KEEP_ON_DEVICE`: its versions stay, e.g. its
   CUDA torch), unless named with ``--carry``, and what ``--skip`` names;
3. downloads one wheel per package into ``.whl/`` (``pip download --no-deps --only-binary=:all:`` for
   cp312 manylinux x86-64; pure-Python wheels come too), building a wheel only for a pure-Python package
   that publishes none, and deletes every other file there (one version per package);
4. checks the size against ``--budget-mib`` (the working tree and the wheels travel together, at most
   64 MiB a call) and prints the install line to start each device command with.

Standard library only; pip runs as a subprocess of the venv's interpreter, which also evaluates the
requirements (with its ``packaging``).

    python scripts/gpu_wheels.py                    # resolve, download, check the budget
    python scripts/gpu_wheels.py --skip catboost    # what stays behind cannot run on the device
    python scripts/gpu_wheels.py --dry-run          # resolve and list only
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib  # the standard library's from Python 3.11 (ruff targets 3.10, so files it apart)

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
TRAVEL_LIMIT_MIB = 64  # the working tree plus carried folders, per device call

# --- The device image ----------------------------------------------------------------------------------
# Packages of the device image 'cuda' (/work/.library/device/KINDS.md, "Python packages already there",
# read 2026-11-17). They are NOT carried: the device keeps its own version. That matters most for torch
# (CUDA 13 build there, CPU build here), triton, the nvidia-*/cuda-* runtime libraries, numpy (every
# compiled package of the image is built against its numpy) and the jax/cupy stack. A carried copy
# would shadow the image's (PYTHONPATH comes first) and could break the packages built against it.
# transformers is kept too: the image has 5.17.0 (.venv: 5.23.0); every requirement on it allows 5.17
# (pyproject >=4.45, chronos-forecasting <6,>=4.41, peft unpinned) and tsfmlab uses no 5.18+ API, so
# the device's is used; `--carry transformers` takes .venv's (11 MiB; it needs huggingface-hub>=1.31 and
# tokenizers<0.24,>=0.23.1, which the image's 1.33.0 and 0.23.2 satisfy).
KEEP_ON_DEVICE = frozenset(
    """
    absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
    certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings
    cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils
    execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet
    httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax
    jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning
    lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib
    mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind
    narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti
    nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand
    nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink
    nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax
    opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip
    pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
    pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
    pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
    safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
    sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy
    tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers
    toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
    triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray
    xxhash yarl zipp
    """.split()
)
# Whatever else of these families a requirement names is the device's business too.
KEEP_PREFIXES = ("nvidia-", "cuda-", "jax-cuda")
# Versions seen there (KINDS.md, the nvidia-h200 'pip list' row); the others are unknown here
# (`python3 -m pip show NAME` on the device gives them): a carried package's requirement on one of these
# is checked against it.
DEVICE_VERSIONS = {
    "accelerate": "1.15.0",
    "botorch": "0.18.1",
    "cupy-cuda13x": "14.2.0",
    "gpytorch": "1.15.2",
    "huggingface-hub": "1.33.0",
    "jax": "0.11.2",
    "numpy": "2.5.2",
    "onnx": "1.23.1",
    "onnxruntime": "1.30.0",
    "pytorch-lightning": "2.6.6",
    "safetensors": "0.8.0",
    "sentence-transformers": "6.0.1",
    "sentencepiece": "0.2.2",
    "tokenizers": "0.23.2",
    "torch": "2.11.0",
    "torchmetrics": "1.9.0",
    "torchvision": "0.26.0",
    "transformers": "5.17.0",
    "triton": "3.6.0",
}
DEVICE_ENV = {  # PEP 508 marker environment of the device's python3
    "implementation_name": "cpython",
    "implementation_version": "3.12.3",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": "3.12.3",
    "python_version": "3.12",
    "sys_platform": "linux",
}
PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
]
PLATFORMS += ["manylinux1_x86_64"]
# pip matches manylinux_2_N exactly: the retry adds the others the device's glibc (2.39) can load,
# the usual ones first.
RETRY_PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (24, 31, 34, 35)]
RETRY_PLATFORMS += [f"manylinux_2_{n}_x86_64" for n in range(5, 40) if n not in (17, 24, 27, 28, 31, 34, 35)]

# What cannot run on the device when a package stays behind (--skip).
SKIP_CONSEQUENCES = {
    "catboost": "the CatBoost heads (classify@*-catboost; drop them with "
    "-S 'classification.heads=[mlp_frozen,mlp_finetune]'), evaluate_energy (its CatBoost lag baselines) "
    "and report, which reads metrics/energy.json",
    "aeon": "build_mixups (real series), prepare_ucr, baseline (MiniRocket) and everything downstream",
    "dysts": "generate_dysts and everything downstream",
    "gluonts": "the Chronos training stages (teacher, distill, finetune_dysts, chronos2) and dysts",
    "chronos-forecasting": "every model stage",
    "dvc": "dvc repro: run the stage scripts by hand (python stages/NAME.py, in dvc.yaml's order)",
    "dvclive": "every training stage (its curves)",
}

# Files a wheel ships that nothing imports or reads at run time, dropped from the carried copy (and from
# its RECORD) to fit the budget: dysts' README figures are 24.8 of its 25.2 MiB (its code reads only the
# .json/.txt files of dysts/data/).
TRIM = {"dysts": ("dysts/data/*.png", "dysts/data/*.jpg")}

WALK = r"""
import importlib.metadata as md, json, re, sys
try:
    from packaging.requirements import Requirement
    from packaging.version import Version
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.version import Version

spec = json.load(sys.stdin)
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
dists = {}
for d in md.distributions():
    dists.setdefault(norm(d.metadata["Name"]), d)
keep, prefixes, skip = set(spec["keep"]), tuple(spec["prefixes"]), set(spec["skip"])
carry = set(spec["carry"])
env = spec["env"]

def kept(n):
    return n not in carry and (n in keep or n.startswith(prefixes))

def applies(req, extras):
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**env, "extra": e}) for e in ("", *extras))

nodes, kept_used, skipped, missing, edges = {}, {}, {}, {}, []
todo = [(norm(n), tuple(sorted(e)), "pyproject.toml") for n, e in spec["roots"]]
seen = set()
while todo:
    name, extras, by = todo.pop(0)
    if name == spec["self"]:
        continue
    d = dists.get(name)
    if name in skip:
        skipped.setdefault(name, []).append(by)
        continue
    if d is None:
        missing.setdefault(name, []).append(by)
        continue
    is_kept = kept(name)
    entry = (kept_used if is_kept else nodes).setdefault(
        name, {"name": d.metadata["Name"], "version": d.version, "required_by": [], "extras": []}
    )
    if by not in entry["required_by"]:
        entry["required_by"].append(by)
    for e in extras:
        if e not in entry["extras"]:
            entry["extras"].append(e)
    if (name, extras) in seen:
        continue
    seen.add((name, extras))
    for text in d.requires or []:
        req = Requirement(text)
        if not applies(req, extras):
            continue
        # a package of the image brings its own requirements there: follow only the extras asked of it
        if is_kept and applies(req, ()):
            continue
        child = norm(req.name)
        edges.append([name, child, str(req.specifier)])
        todo.append((child, tuple(sorted(req.extras)), name))

versions = {n: v["version"] for n, v in {**kept_used, **nodes}.items()}
conflicts = []
for parent, child, specifier in edges:
    if not specifier:
        continue
    if child in nodes:
        have, where = nodes[child]["version"], "carried"
    elif child in spec["device_versions"]:
        have, where = spec["device_versions"][child], "device"
    else:
        continue
    if not Requirement(f"x{specifier}").specifier.contains(Version(have), prereleases=True):
        conflicts.append(f"{parent} requires {child}{specifier}, {where} has {have}")
json.dump({"nodes": nodes, "kept": kept_used, "skipped": skipped, "missing": missing,
           "conflicts": sorted(set(conflicts))}, sys.stdout)
"""


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def venv_python(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.exists():
        sys.exit(f"gpu_wheels: no interpreter at {py} (make env builds .venv)")
    return py


def resolve(py: Path, extras: list[str], skip: set[str], carry: set[str]) -> dict:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    roots = list(project["dependencies"])
    for group in extras:
        if group not in project.get("optional-dependencies", {}):
            sys.exit(f"gpu_wheels: pyproject.toml has no optional-dependencies group {group!r}")
        roots += project["optional-dependencies"][group]
    spec = {
        "roots": [_split_requirement(r) for r in roots],
        "self": norm(project["name"]),
        "keep": sorted(KEEP_ON_DEVICE),
        "prefixes": list(KEEP_PREFIXES),
        "skip": sorted(skip),
        "carry": sorted(carry),
        "env": DEVICE_ENV,
        "device_versions": DEVICE_VERSIONS,
    }
    out = subprocess.run(
        [str(py), "-c", WALK], input=json.dumps(spec), capture_output=True, text=True, check=False
    )
    if out.returncode:
        sys.exit(f"gpu_wheels: resolving in {py} failed:\n{out.stderr}")
    return json.loads(out.stdout)


def _split_requirement(text: str) -> tuple[str, list[str]]:
    """Name and extras of a PEP 508 requirement (markers on pyproject's own lines are not used here)."""
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", text)
    if not m:
        sys.exit(f"gpu_wheels: cannot read the requirement {text!r}")
    return m.group(1), [e.strip() for e in (m.group(2) or "").split(",") if e.strip()]


def wheel_key(path: Path) -> tuple[str, str] | None:
    """(normalized name, version) of a wheel file name; None for anything else."""
    parts = path.name[: -len(".whl")].split("-") if path.name.endswith(".whl") else []
    return (norm(parts[0]), parts[1].lower()) if len(parts) >= 5 else None


def tidy(dest: Path, wanted: dict[str, str]) -> dict[str, Path]:
    """Delete from ``dest`` every file that is not the one wheel of a wanted (name, version); returns the
    wheels that stay, by name."""
    keep: dict[str, Path] = {}
    for path in sorted(dest.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        key = wheel_key(path) if path.is_file() else None
        if key and wanted.get(key[0], "").lower() == key[1] and key[0] not in keep:
            keep[key[0]] = path
            continue
        print(f"  removing stale {path.name}")
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return keep


def trim(path: Path, patterns: tuple[str, ...]) -> int:
    """Rewrite the wheel at ``path`` without the members matching ``patterns``; returns bytes saved."""
    with zipfile.ZipFile(path) as z:
        drop = {i.filename for i in z.infolist() if any(fnmatch.fnmatch(i.filename, p) for p in patterns)}
        if not drop:
            return 0
        before = path.stat().st_size
        tmp = path.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
            for info in z.infolist():
                if info.filename in drop:
                    continue
                data = z.read(info)
                if info.filename.endswith(".dist-info/RECORD"):
                    lines = data.decode().splitlines(keepends=True)
                    data = "".join(ln for ln in lines if ln.split(",")[0] not in drop).encode()
                out.writestr(info, data)
    tmp.replace(path)
    return before - path.stat().st_size


def pip_download(py: Path, dest: Path, pins: list[str], platforms: list[str]) -> bool:
    cmd = [str(py), "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
    cmd += ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "--dest", str(dest)]
    for p in platforms:
        cmd += ["--platform", p]
    return subprocess.run(cmd + pins, capture_output=True, text=True, check=False).returncode == 0


def build_pure_wheel(py: Path, dest: Path, pin: str) -> str | None:
    """Build a wheel from the sdist; keep it only if it is pure Python (py3-none-any). Returns an error."""
    tmp = dest / ".build"
    cmd = [str(py), "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps"]
    cmd += ["--no-binary=:all:", "--wheel-dir", str(tmp), pin]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    built = sorted(tmp.glob("*.whl")) if tmp.exists() else []
    try:
        if out.returncode or not built:
            return "no wheel on the index and its sdist did not build: " + out.stderr.strip()[-300:]
        if not built[0].name.endswith("-none-any.whl"):
            return f"no wheel for CPython 3.12 x86-64 on the index (the sdist builds {built[0].name})"
        built[0].rename(dest / built[0].name)
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch(py: Path, dest: Path, wanted: dict[str, str], names: dict[str, str]) -> dict[str, str]:
    """Download the missing wheels; returns {name: note} of what was built or could not be had."""
    have = tidy(dest, wanted)
    todo = [n for n in wanted if n not in have]
    notes: dict[str, str] = {}
    if not todo:
        return notes
    print(f"downloading {len(todo)} wheels into {dest.relative_to(ROOT)}/ ...", flush=True)
    pins = [f"{names[n]}=={wanted[n]}" for n in todo]
    if pip_download(py, dest, pins, PLATFORMS):
        return notes
    for n, pin in zip(todo, pins):  # one at a time, to find which one has no match
        if n in tidy(dest, wanted):
            continue
        if pip_download(py, dest, [pin], PLATFORMS) or pip_download(
            py, dest, [pin], PLATFORMS + RETRY_PLATFORMS
        ):
            continue
        error = build_pure_wheel(py, dest, pin)
        notes[n] = error or "no wheel on the index: built here from the sdist (pure Python)"
        print(f"  {pin}: {notes[n]}", flush=True)
    return notes


def travelling_bytes() -> int:
    """Bytes of the working tree that every device call sends: tracked and untracked-not-ignored files
    (and shared/ where there is one)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    files = {ROOT / f for f in out.decode().split("\0") if f}
    shared = ROOT / "shared"
    if shared.is_dir():
        files |= {p for p in shared.rglob("*") if p.is_file()}
    return sum(p.stat().st_size for p in files if p.is_file() and not p.is_symlink())


def ignored(path: Path) -> bool:
    rel = path.relative_to(ROOT).as_posix() + "/"
    return subprocess.run(["git", "check-ignore", "-q", rel], cwd=ROOT, check=False).returncode == 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--venv", type=Path, default=ROOT / ".venv", help="where the tested versions are installed"
    )
    ap.add_argument("--dest", type=Path, default=ROOT / ".whl", help="the carried wheel folder (git-ignored)")
    ap.add_argument("--budget-mib", type=float, default=48.0, help="most MiB of wheels (default 48)")
    ap.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="NAME",
        help="leave NAME (and what only it needs) behind",
    )
    ap.add_argument(
        "--carry",
        action="append",
        default=[],
        metavar="NAME",
        help="carry .venv's NAME although the device has one",
    )
    ap.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="GROUP",
        help="add pyproject's optional-dependencies GROUP",
    )
    ap.add_argument("--dry-run", action="store_true", help="resolve and list; download nothing")
    args = ap.parse_args(argv)

    py = venv_python(args.venv)
    skip, carry = {norm(n) for n in args.skip}, {norm(n) for n in args.carry}
    res = resolve(py, args.extra, skip, carry)
    nodes = res["nodes"]
    wanted = {n: v["version"] for n, v in nodes.items()}
    names = {n: v["name"] for n, v in nodes.items()}

    print(
        f"tsfmlab needs {len(nodes) + len(res['kept'])} packages on the device (python 3.12, x86-64 Linux):"
    )
    print(
        f"  {len(res['kept'])} the device image has (its versions are used): "
        + ", ".join(sorted(res["kept"]))
    )
    differ = [
        f"{n} {DEVICE_VERSIONS[n]} there, {v['version']} here"
        for n, v in sorted(res["kept"].items())
        if n in DEVICE_VERSIONS and DEVICE_VERSIONS[n] != v["version"].split("+")[0]
    ]
    if differ:
        print("  versions known to differ from .venv's: " + "; ".join(differ))
    print(f"  {len(nodes)} to carry as wheels, at .venv's versions")
    for n, by in sorted(res["skipped"].items()):
        print(
            f"  SKIPPED {n} (required by {', '.join(sorted(set(by)))}): cannot run there: "
            + SKIP_CONSEQUENCES.get(n, "whatever imports it")
        )
    for n, by in sorted(res["missing"].items()):
        print(
            f"  MISSING {n} (required by {', '.join(sorted(set(by)))}): not installed in {args.venv}; "
            "install it there (or --skip it) to pin a tested version"
        )
    for c in res["conflicts"]:
        print(f"  WARNING: {c}")

    if args.dry_run:
        for n in sorted(nodes):
            print(f"    {names[n]}=={wanted[n]}  <- {', '.join(nodes[n]['required_by'])}")
        return 0
    if res["missing"]:
        return 1

    if not ignored(args.dest):
        print(
            f"gpu_wheels: {args.dest} is not git-ignored: add '/{args.dest.name}/' to .gitignore",
            file=sys.stderr,
        )
        return 1
    args.dest.mkdir(parents=True, exist_ok=True)
    notes = fetch(py, args.dest, wanted, names)
    have = tidy(args.dest, wanted)
    for n, patterns in TRIM.items():
        if n in have and (saved := trim(have[n], patterns)):
            notes[n] = f"trimmed {saved / MIB:.1f} MiB: {', '.join(patterns)}"
        elif n in have:
            notes.setdefault(n, f"trimmed: {', '.join(patterns)}")
    unavailable = sorted(n for n in wanted if n not in have)

    rows = sorted(((p.stat().st_size, n, p) for n, p in have.items()), reverse=True)
    total = sum(r[0] for r in rows)
    repo = travelling_bytes()
    print(f"\n{'MiB':>7}  {'wheel':<72} required by")
    for size, n, p in rows:
        note = f"  [{notes[n]}]" if n in notes else ""
        print(f"{size / MIB:7.2f}  {p.name:<72} {', '.join(nodes[n]['required_by'])}{note}")
    print(f"{total / MIB:7.2f}  wheels in all ({len(rows)}), budget {args.budget_mib:g} MiB")
    print(f"{repo / MIB:7.2f}  working tree that travels (git ls-files -co --exclude-standard)")
    print(f"{(total + repo) / MIB:7.2f}  together, of the {TRAVEL_LIMIT_MIB} MiB a device call may send")

    status = 0
    for n in unavailable:
        print(
            f"NO WHEEL: {names[n]}=={wanted[n]}: {notes.get(n, 'not downloaded')}; "
            f"--skip {n} leaves it behind (it cannot travel as it is)"
        )
        status = 1
    if total > args.budget_mib * MIB:
        size, n, _ = rows[0]
        print(
            f"OVER BUDGET by {(total - args.budget_mib * MIB) / MIB:.1f} MiB; the largest is "
            f"{names[n]} ({size / MIB:.1f} MiB): --skip {n} leaves it behind, and then cannot run there: "
            + SKIP_CONSEQUENCES.get(n, "whatever imports it")
        )
        status = 1
    elif total + repo > TRAVEL_LIMIT_MIB * MIB:
        print(f"OVER THE {TRAVEL_LIMIT_MIB} MiB a call may send: lower the working tree or --skip a package")
        status = 1
    if status == 0:
        print("\nOK. Carry '.whl' (run's carry: [\".whl\"]) and start every device command with:")
        print(
            "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade "
            "--target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD/src || exit;"
        )
    return status


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
