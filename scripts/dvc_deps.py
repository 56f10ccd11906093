"""Keep the code deps of every dvc.yaml stage equal to its import closure.

A stage runs ``python stages/<name>.py`` (training stages through ``python -m tsfmlab.launch``); the
Python files it can execute are that script, the ``-m`` module, and every module of ``src/tsfmlab`` they
import, directly or through other modules (imports inside functions
included, and the ``__init__.py`` of every package on the way). That set is computed from the source
(``ast``), never from a running process, so a lazily imported module counts too. A module loaded by its
name as a string constant (``"tsfmlab._mkl_dispatch"``, a C extension) counts as imported, its C source
as the file.

    python scripts/dvc_deps.py --check   # exit 1 and list the differences if dvc.yaml is out of date
    python scripts/dvc_deps.py --write   # rewrite the code deps of dvc.yaml (data deps are kept)

The code deps of a stage are its ``stages/`` and ``src/tsfmlab/`` entries. ``--write`` writes a stage's
deps as one flow list: its data and model inputs as written first, then its script and the sorted
closure; the comments above ``deps:`` stay.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = "tsfmlab"
CODE_PREFIXES = ("stages/", f"src/{PACKAGE}/")


def module_file(module: str) -> Path | None:
    """The file of a ``tsfmlab`` module, or None for a name that is not a module (a function, a class)."""
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py", base.with_suffix(".c")):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Every ``tsfmlab`` module a file imports (absolute or relative, at any depth of the file)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    here = module_name(path).split(".") if path.is_relative_to(SRC) else []
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = here if is_package else here[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(rf"{PACKAGE}(\.\w+)+", node.value):
                found.add(node.value)
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def closure(script: Path) -> set[Path]:
    """The script and every ``src/tsfmlab`` file it can import, with the packages' ``__init__.py``."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.suffix != ".py":
            continue
        for module in imported_modules(path):
            parts = module.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
                file = module_file(".".join(parts[:i]))
                if file is not None and file not in seen:
                    todo.append(file)
    return seen


def script_of(cmd: str) -> str:
    match = re.search(r"\bstages/[\w/]+\.py\b", cmd)
    if match is None:
        raise SystemExit(f"dvc.yaml: no stages/*.py script in cmd {cmd!r}")
    return match.group(0)


def stage_bodies(stages: dict) -> dict[str, dict]:
    """Each stage's definition (the ``do`` body of a foreach stage)."""
    return {name: (spec["do"] if "do" in spec else spec) for name, spec in stages.items()}


def expected_code_deps(body: dict) -> list[str]:
    cmd = " ".join(body["cmd"]) if isinstance(body["cmd"], list) else body["cmd"]
    script = script_of(cmd)
    files = closure(REPO / script)
    for module in re.findall(rf"-m ({PACKAGE}(?:\.\w+)*)", cmd):  # a launcher run before the script
        files |= closure(module_file(module))
    return [script] + sorted(str(p.relative_to(REPO)) for p in files if p != REPO / script)


def differences(stages: dict) -> dict[str, tuple[list[str], list[str]]]:
    """Per stage: (code files missing from its deps, declared code deps it does not import)."""
    out = {}
    for name, body in stage_bodies(stages).items():
        declared = {str(d) for d in body.get("deps", []) if str(d).startswith(CODE_PREFIXES)}
        expected = set(expected_code_deps(body))
        if declared != expected:
            out[name] = (sorted(expected - declared), sorted(declared - expected))
    return out


def render_deps(indent: int, data: list[str], code: list[str], width: int = 110) -> list[str]:
    """``deps:`` as one flow list, wrapped at ``width``: the data and model inputs as written, then the
    code deps (items holding ``${...}`` quoted, as flow context needs)."""
    items = [f'"{d}"' if "${" in d else d for d in [*data, *code]]
    lines, line = [], " " * indent + "deps: ["
    for k, item in enumerate(items):
        piece = item + ("]" if k == len(items) - 1 else ",")
        if not line.endswith("[") and len(line) + 1 + len(piece) > width:
            lines.append(line)
            line = " " * (indent + 2) + piece
        else:
            line += ("" if line.endswith("[") else " ") + piece
    return [*lines, line]


def replace_deps(text: str, stage: str, data: list[str], code: list[str]) -> str:
    """``text`` (dvc.yaml) with the ``deps:`` of ``stage`` rewritten (:func:`render_deps`); the lines
    around it, comments included, are kept."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line == f"  {stage}:")
    at = next(i for i in range(start + 1, len(lines)) if re.match(r"^\s+deps:", lines[i]))
    indent = len(lines[at]) - len(lines[at].lstrip())
    end = at + 1
    if "[" in lines[at]:  # flow: up to the closing bracket
        end = at
        while "]" not in lines[end].split("#")[0]:
            end += 1
        end += 1
    else:  # block: its items (and comment lines between them)
        while end < len(lines) and lines[end].strip() and (len(lines[end]) - len(lines[end].lstrip()) > indent):
            end += 1
    return "\n".join([*lines[:at], *render_deps(indent, data, code), *lines[end:]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true")
    mode.add_argument("--write", action="store_true")
    ap.add_argument("--dvc-yaml", type=Path, default=REPO / "dvc.yaml")
    args = ap.parse_args()

    doc = YAML(typ="safe").load(args.dvc_yaml.read_text())
    diff = differences(doc["stages"])
    if args.check:
        for name, (missing, extra) in diff.items():
            for path in missing:
                print(f"{name}: imports {path}, not a dep")
            for path in extra:
                print(f"{name}: declares {path}, which it does not import")
        if diff:
            print(f"{args.dvc_yaml}: code deps out of date; run python scripts/dvc_deps.py --write", file=sys.stderr)
        sys.exit(1 if diff else 0)
    text = args.dvc_yaml.read_text()
    for name in doc["stages"]:  # every stage, so that all keep one layout
        body = stage_bodies(doc["stages"])[name]
        data = [str(d) for d in body["deps"] if not str(d).startswith(CODE_PREFIXES)]
        text = replace_deps(text, name, data, expected_code_deps(body))
    args.dvc_yaml.write_text(text)
    print(f"{args.dvc_yaml}: code deps of {len(diff)} stage(s) rewritten")


if __name__ == "__main__":
    main()
