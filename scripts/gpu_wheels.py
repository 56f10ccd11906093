#!/usr/bin/env python3
"""Build an offline wheelhouse of what tsfmlab needs, for a (CUDA) machine that reaches no package index.

Run it on a machine that has a package index and the project's ``.venv`` (``make env``). It

1. collects what tsfmlab needs at run time: the ``dependencies`` of pyproject.toml (plus ``--extra``
   groups) and their requirements, transitively, as installed in ``.venv`` (markers evaluated for the
   target: ``--python-version``, ``--arch``, Linux), each pinned to the version installed there -- the
   tested versions;
2. leaves out what the target already has (``--keep``, ``--keep-file``: e.g. its CUDA build of torch;
   with ``NAME==VERSION`` the wheels' requirements on it are checked) and what ``--skip`` names;
3. downloads one wheel per package into ``--dest`` (``pip download --no-deps --only-binary=:all:`` for
   the target's CPython and manylinux platforms; pure-Python wheels come too), building a wheel only for
   a pure-Python package that publishes none; deletes every other file there (one version per package)
   and writes ``requirements.txt`` there (the pins);
4. reports the size of every wheel and of all (checked against ``--max-mib`` if given) and prints the
   install line for the target (``pip install --no-index --find-links``; docs/gpu_run.md).

Standard library only; pip runs as a subprocess of the venv's interpreter, which also evaluates the
requirements (with its ``packaging``).

    python scripts/gpu_wheels.py --dry-run --keep-file target-freeze.txt   # resolve and list only
    python scripts/gpu_wheels.py --python-version 3.12 --keep-file target-freeze.txt
    python scripts/gpu_wheels.py --keep torch --keep 'nvidia-*' --skip catboost --max-mib 100

``target-freeze.txt`` is ``python -m pip freeze`` run on the target, in the environment tsfmlab will use.
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
REQUIREMENTS = "requirements.txt"  # written into --dest next to the wheels

# The usual manylinux tags, tried first; pip matches manylinux_2_N exactly, so a retry adds every other
# manylinux_2_N the target's glibc (--glibc) can load.
USUAL_GLIBC = (28, 27, 17)
LEGACY_TAGS = {"x86_64": ("manylinux2014", "manylinux1"), "aarch64": ("manylinux2014",)}

# What cannot run on the target when a package stays behind (--skip).
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

# --trim: files a wheel ships that nothing imports or reads at run time, dropped from the wheelhouse's
# copy (and from its RECORD): dysts' README figures are 24.8 of its 25.2 MiB (its code reads only the
# .json/.txt files of dysts/data/).
TRIM = {"dysts": ("dysts/data/*.png", "dysts/data/*.jpg")}

WALK = r"""
import fnmatch, importlib.metadata as md, json, re, sys
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
keep, patterns, skip = set(spec["keep"]), tuple(spec["patterns"]), set(spec["skip"])
env = spec["env"]

def kept(n):
    return n in keep or any(fnmatch.fnmatch(n, p) for p in patterns)

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
    if d is None and not kept(name):
        missing.setdefault(name, []).append(by)
        continue
    is_kept = kept(name)
    entry = (kept_used if is_kept else nodes).setdefault(
        name, {"name": d.metadata["Name"] if d else name, "version": d.version if d else "",
               "required_by": [], "extras": []}
    )
    if by not in entry["required_by"]:
        entry["required_by"].append(by)
    for e in extras:
        if e not in entry["extras"]:
            entry["extras"].append(e)
    if (name, extras) in seen or d is None:
        continue
    seen.add((name, extras))
    for text in d.requires or []:
        req = Requirement(text)
        if not applies(req, extras):
            continue
        # a package the target has brings its own requirements there: follow only the extras asked of it
        if is_kept and applies(req, ()):
            continue
        child = norm(req.name)
        edges.append([name, child, str(req.specifier)])
        todo.append((child, tuple(sorted(req.extras)), name))

conflicts = []
for parent, child, specifier in edges:
    if not specifier or parent not in nodes:
        continue
    if child in nodes:
        have, where = nodes[child]["version"], "the wheelhouse"
    elif child in spec["target_versions"]:
        have, where = spec["target_versions"][child], "the target"
    else:
        continue
    if not Requirement(f"x{specifier}").specifier.contains(Version(have), prereleases=True):
        conflicts.append(f"{parent} requires {child}{specifier}, {where} has {have}")
json.dump({"nodes": nodes, "kept": kept_used, "skipped": skipped, "missing": missing,
           "conflicts": sorted(set(conflicts))}, sys.stdout)
"""


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def shown(path: Path) -> str:
    """``path`` relative to the repository where it lies inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def venv_python(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.exists():
        sys.exit(f"gpu_wheels: no interpreter at {py} (make env builds .venv)")
    return py


def python_version(py: Path) -> str:
    out = subprocess.run([str(py), "-c", "import platform; print(platform.python_version())"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def marker_env(version: str, arch: str) -> dict[str, str]:
    """PEP 508 marker environment of CPython ``version`` (3.12 or 3.12.3) on Linux ``arch``."""
    parts = version.split(".")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        sys.exit(f"gpu_wheels: --python-version {version!r} is not like 3.12 or 3.12.3")
    full = ".".join(parts + ["0"] * (3 - len(parts)))
    return {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": "posix",
        "platform_machine": arch,
        "platform_python_implementation": "CPython",
        "platform_system": "Linux",
        "python_full_version": full,
        "python_version": ".".join(parts[:2]),
        "sys_platform": "linux",
    }


def platforms(arch: str, glibc: str) -> tuple[list[str], list[str]]:
    """The manylinux tags to try first, and those a retry adds, for a target glibc like 2.35."""
    m = re.fullmatch(r"2\.(\d+)", glibc)
    if not m:
        sys.exit(f"gpu_wheels: --glibc {glibc!r} is not like 2.35 (ldd --version on the target)")
    top = int(m.group(1))
    first = [f"manylinux_2_{n}_{arch}" for n in USUAL_GLIBC if n <= top]
    legacy = {"manylinux2014": 17, "manylinux1": 5}
    first += [f"{t}_{arch}" for t in LEGACY_TAGS.get(arch, ()) if legacy[t] <= top]
    retry = [f"manylinux_2_{n}_{arch}" for n in range(top, 4, -1) if n not in USUAL_GLIBC]
    return first, retry


def read_keep(entries: list[str], files: list[Path]) -> tuple[set[str], list[str], dict[str, str]]:
    """Names, glob patterns and known versions of what the target has, from ``--keep`` entries and
    ``--keep-file`` lines (``pip freeze`` output: ``name==version``, ``name @ url``; ``#`` comments and
    ``-e``/option lines are ignored)."""
    lines = list(entries)
    for f in files:
        lines += f.read_text().splitlines()
    names, patterns, versions = set(), [], {}
    for raw in lines:
        text = raw.split("#", 1)[0].strip()
        if not text or text.startswith("-"):
            continue
        m = re.match(r"([A-Za-z0-9*?][A-Za-z0-9._*?-]*)\s*(?:\[[^\]]*\])?\s*(?:===?\s*([^\s;,]+))?", text)
        if not m:
            sys.exit(f"gpu_wheels: cannot read the kept package {raw!r}")
        name = norm(m.group(1))
        if any(c in name for c in "*?"):
            patterns.append(name)
            continue
        names.add(name)
        if m.group(2):
            versions[name] = m.group(2)
    return names, patterns, versions


def resolve(py: Path, extras: list[str], skip: set[str], keep: tuple, env: dict[str, str]) -> dict:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    roots = list(project["dependencies"])
    for group in extras:
        if group not in project.get("optional-dependencies", {}):
            sys.exit(f"gpu_wheels: pyproject.toml has no optional-dependencies group {group!r}")
        roots += project["optional-dependencies"][group]
    names, patterns, versions = keep
    spec = {
        "roots": [_split_requirement(r) for r in roots],
        "self": norm(project["name"]),
        "keep": sorted(names),
        "patterns": patterns,
        "skip": sorted(skip),
        "env": env,
        "target_versions": versions,
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
    """Delete from ``dest`` every file that is not the one wheel of a wanted (name, version) or the pins
    file; returns the wheels that stay, by name."""
    keep: dict[str, Path] = {}
    for path in sorted(dest.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        if path.name == REQUIREMENTS and path.is_file():
            continue
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


class Target:
    """Where the wheels will be installed: CPython ``version`` on Linux with the given manylinux tags."""

    def __init__(self, version: str, first: list[str], retry: list[str]):
        self.version, self.first, self.retry = version, first, retry

    def download(self, py: Path, dest: Path, pins: list[str], retry: bool = False) -> bool:
        cmd = [str(py), "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
        cmd += ["--only-binary=:all:", "--python-version", self.version, "--implementation", "cp"]
        cmd += ["--dest", str(dest)]
        for p in self.first + (self.retry if retry else []):
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
            return f"no wheel for the target on the index (the sdist builds {built[0].name})"
        built[0].rename(dest / built[0].name)
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch(py: Path, dest: Path, target: Target, wanted: dict[str, str], names: dict[str, str]) -> dict:
    """Download the missing wheels; returns {name: note} of what was built or could not be had."""
    have = tidy(dest, wanted)
    todo = [n for n in wanted if n not in have]
    notes: dict[str, str] = {}
    if not todo:
        return notes
    print(f"downloading {len(todo)} wheels into {shown(dest)}/ ...", flush=True)
    pins = [f"{names[n]}=={wanted[n]}" for n in todo]
    if target.download(py, dest, pins):
        return notes
    for n, pin in zip(todo, pins):  # one at a time, to find which one has no match
        if n in tidy(dest, wanted):
            continue
        if target.download(py, dest, [pin]) or target.download(py, dest, [pin], retry=True):
            continue
        error = build_pure_wheel(py, dest, pin)
        notes[n] = error or "no wheel on the index: built here from the sdist (pure Python)"
        print(f"  {pin}: {notes[n]}", flush=True)
    return notes


def ignored(path: Path) -> bool:
    rel = path.resolve().relative_to(ROOT).as_posix() + "/"
    return subprocess.run(["git", "check-ignore", "-q", rel], cwd=ROOT, check=False).returncode == 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + __doc__.split("\n\n")[-2],
    )
    ap.add_argument("--venv", type=Path, default=ROOT / ".venv", help="where the tested versions are installed")
    ap.add_argument("--dest", type=Path, default=ROOT / ".whl", help="the wheelhouse (default .whl, git-ignored)")
    ap.add_argument("--python-version", metavar="X.Y[.Z]", help="the target's Python (default: the venv's)")
    ap.add_argument("--arch", default="x86_64", choices=sorted(LEGACY_TAGS), help="the target's CPU")
    ap.add_argument("--glibc", default="2.28", help="the target's glibc (ldd --version; default 2.28)")
    ap.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="NAME[==VERSION]",
        help="a package the target already has (glob patterns allowed, e.g. 'nvidia-*'): not downloaded",
    )
    ap.add_argument(
        "--keep-file",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="packages the target already has, one a line (the target's `pip freeze`)",
    )
    ap.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="NAME",
        help="leave NAME (and what only it needs) behind",
    )
    ap.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="GROUP",
        help="add pyproject's optional-dependencies GROUP",
    )
    ap.add_argument("--max-mib", type=float, help="fail if the wheels take more MiB than this")
    ap.add_argument("--trim", action="store_true", help="drop files nothing reads at run time (dysts' figures)")
    ap.add_argument("--dry-run", action="store_true", help="resolve and list; download nothing")
    args = ap.parse_args(argv)

    py = venv_python(args.venv)
    version = args.python_version or python_version(py)
    env = marker_env(version, args.arch)
    target = Target(env["python_version"], *platforms(args.arch, args.glibc))
    keep = read_keep(args.keep, args.keep_file)
    skip = {norm(n) for n in args.skip}
    res = resolve(py, args.extra, skip, keep, env)
    nodes = res["nodes"]
    wanted = {n: v["version"] for n, v in nodes.items()}
    names = {n: v["name"] for n, v in nodes.items()}
    target_versions = keep[2]

    print(
        f"tsfmlab needs {len(nodes) + len(res['kept'])} packages on the target "
        f"(CPython {version}, Linux {args.arch}, glibc {args.glibc}):"
    )
    print(f"  {len(res['kept'])} the target has (its versions are used): " + ", ".join(sorted(res["kept"])))
    differ = [
        f"{n} {target_versions[n]} there, {v['version'] or 'none'} here"
        for n, v in sorted(res["kept"].items())
        if n in target_versions and target_versions[n].split("+")[0] != v["version"].split("+")[0]
    ]
    if differ:
        print("  versions that differ from the venv's: " + "; ".join(differ))
    print(f"  {len(nodes)} to download as wheels, at the venv's versions")
    for n, by in sorted(res["skipped"].items()):
        print(
            f"  SKIPPED {n} (required by {', '.join(sorted(set(by)))}): cannot run on the target: "
            + SKIP_CONSEQUENCES.get(n, "whatever imports it")
        )
    for n, by in sorted(res["missing"].items()):
        print(
            f"  MISSING {n} (required by {', '.join(sorted(set(by)))}): not installed in {args.venv}; "
            "install it there (or --skip it) to pin a tested version"
        )
    # A local version label (torch 2.13.0+cpu) is a build from another index, not the target's: the
    # target brings its own (CUDA) build.
    local = sorted(n for n, v in wanted.items() if "+" in v)
    for n in local:
        print(
            f"  LOCAL BUILD {names[n]}=={wanted[n]}: the venv's build, not one for the target: "
            f"--keep {n} and install the target's own build (docs/gpu_run.md)"
        )
    for c in res["conflicts"]:
        print(f"  WARNING: {c}")

    if args.dry_run:
        for n in sorted(nodes):
            print(f"    {names[n]}=={wanted[n]}  <- {', '.join(nodes[n]['required_by'])}")
        return 0
    if res["missing"] or local:
        return 1

    dest = args.dest.resolve()
    if dest.is_relative_to(ROOT) and not ignored(dest):
        print(f"gpu_wheels: {shown(dest)} is not git-ignored: add '/{shown(dest)}/' to .gitignore", file=sys.stderr)
        return 1
    dest.mkdir(parents=True, exist_ok=True)
    notes = fetch(py, dest, target, wanted, names)
    have = tidy(dest, wanted)
    for n, patterns in TRIM.items() if args.trim else ():
        if n in have and (saved := trim(have[n], patterns)):
            notes[n] = f"trimmed {saved / MIB:.1f} MiB: {', '.join(patterns)}"
        elif n in have:
            notes.setdefault(n, f"trimmed: {', '.join(patterns)}")
    unavailable = sorted(n for n in wanted if n not in have)
    (dest / REQUIREMENTS).write_text(
        "# written by scripts/gpu_wheels.py: the wheels of this folder, pinned\n"
        + "".join(f"{names[n]}=={wanted[n]}\n" for n in sorted(have))
    )

    rows = sorted(((p.stat().st_size, n, p) for n, p in have.items()), reverse=True)
    total = sum(r[0] for r in rows)
    print(f"\n{'MiB':>7}  {'wheel':<72} required by")
    for size, n, p in rows:
        note = f"  [{notes[n]}]" if n in notes else ""
        print(f"{size / MIB:7.2f}  {p.name:<72} {', '.join(nodes[n]['required_by'])}{note}")
    limit = f", limit {args.max_mib:g} MiB" if args.max_mib is not None else ""
    print(f"{total / MIB:7.2f}  wheels in all ({len(rows)}){limit}")

    status = 0
    for n in unavailable:
        print(
            f"NO WHEEL: {names[n]}=={wanted[n]}: {notes.get(n, 'not downloaded')}; "
            f"--skip {n} leaves it behind (or --keep it where the target has it)"
        )
        status = 1
    if args.max_mib is not None and total > args.max_mib * MIB:
        size, n, _ = rows[0]
        print(
            f"OVER THE LIMIT by {(total - args.max_mib * MIB) / MIB:.1f} MiB; the largest is "
            f"{names[n]} ({size / MIB:.1f} MiB): --skip {n} leaves it behind, and then cannot run there: "
            + SKIP_CONSEQUENCES.get(n, "whatever imports it")
        )
        status = 1
    if status == 0:
        where = shown(dest)
        print(f"\nOK. Copy {where}/ to the target and, in the checkout there, with the environment active:")
        print(f"python -m pip install --no-index --find-links {where} -r {where}/{REQUIREMENTS}")
        print("python -m pip install --no-index --no-deps --no-build-isolation -e .")
    return status


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
