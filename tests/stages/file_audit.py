"""Which files each DVC stage really opened, from an ``strace`` log of ``dvc repro``.

``strace -f`` follows every process DVC starts. A stage is the shell or Python process whose command line
is the stage's ``cmd``, and every process it forks or clones after that; DVC's own process (which hashes
deps and fills the cache) belongs to no stage. Each successful ``openat``/``open``/``creat`` is a read or a
write by its flags; ``rename``/``mkdir`` count as writes of their target.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

TRACED = "execve,open,openat,creat,rename,renameat,renameat2,mkdir,mkdirat,clone,clone3,fork,vfork"
LINE = re.compile(r"^(\d+)\s+(.*)$")
CALL = re.compile(r"^(\w+)\((.*)$")
RESULT = re.compile(r"\)\s+=\s+(-?\d+|\?)")
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")


def strace_prefix(log: Path) -> list[str] | None:
    """The command prefix that traces a run into ``log`` (None where strace is missing or cannot trace)."""
    exe = shutil.which("strace")
    if exe is None:
        return None
    prefix = [exe, "-f", "-qq", "--seccomp-bpf", "-s", "8192", "-e", f"trace={TRACED}", "-o"]
    probe = subprocess.run([*prefix, os.devnull, "true"], capture_output=True)  # ptrace may be forbidden
    return [*prefix, str(log)] if probe.returncode == 0 else None


@dataclass
class StageFiles:
    reads: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)


def _strings(args: str) -> list[str]:
    """The C string arguments of a traced call, unescaped."""
    return [bytes(s, "utf-8").decode("unicode_escape") for s in re.findall(r'"((?:[^"\\]|\\.)*)"', args)]


def _dirfd_relative(call: str, args: str) -> bool:
    """Whether the path of an ``*at`` call is relative to a directory descriptor, not the cwd."""
    if call in ("openat", "mkdirat"):
        fd, _, rest = args.partition(",")
        return fd.strip() != "AT_FDCWD" and not rest.lstrip().startswith('"/')
    if call in ("renameat", "renameat2"):
        m = re.match(r'\s*\S+, "(?:[^"\\]|\\.)*", (\S+), "((?:[^"\\]|\\.)*)"', args)
        return bool(m) and m.group(1) != "AT_FDCWD" and not m.group(2).startswith("/")
    return False


def parse(log: Path, commands: dict[str, str], root: Path) -> dict[str, StageFiles]:
    """Files under ``root`` that each stage opened; ``commands`` maps a stage's cmd to its name."""
    root_dir = str(root.resolve())
    under_root = root_dir.rstrip("/") + "/"  # string prefixes: a trace holds hundreds of thousands of calls
    owner: dict[int, str] = {}  # pid -> stage
    pending: dict[int, tuple[str, str]] = {}  # pid -> (call, args) of an unfinished call
    files = {name: StageFiles() for name in commands.values()}

    def record(pid: int, call: str, args: str, result: str) -> None:
        stage = owner.get(pid)
        if call in ("clone", "clone3", "fork", "vfork"):
            if stage is not None and result.isdigit():
                owner[int(result)] = stage
            return
        if call == "execve":
            argv = re.search(r"\[(.*?)\]", args)
            words = _strings(argv.group(1)) if argv else []
            line = " ".join(words)
            for cmd, name in commands.items():
                if line.endswith(cmd) or (len(words) >= 3 and words[-1] == cmd):
                    owner[pid] = name
            return
        if stage is None or not result.lstrip("-").isdigit() or int(result) < 0:
            return
        if _dirfd_relative(call, args):
            return  # relative to a directory descriptor (fd-based tree walks): not resolvable here
        strings = _strings(args)
        if not strings:
            return
        if call in ("rename", "renameat", "renameat2"):
            paths, write = strings[-1:], True
        elif call in ("mkdir", "mkdirat"):
            paths, write = strings[:1], True
        else:
            paths, write = strings[:1], call == "creat" or any(f in args for f in WRITE_FLAGS)
        for path in paths:
            full = os.path.normpath(os.path.join(root_dir, path))  # relative paths: stages run in the root
            if not full.startswith(under_root):
                continue
            rel = full[len(under_root) :]
            (files[stage].writes if write else files[stage].reads).add(rel)

    for raw in log.read_text(errors="replace").splitlines():
        m = LINE.match(raw)
        if not m:
            continue
        pid, rest = int(m.group(1)), m.group(2)
        resumed = RESUMED.match(rest)
        if resumed:
            call, args = pending.pop(pid, (resumed.group(1), ""))
            args = args + resumed.group(2)
        elif rest.endswith("<unfinished ...>"):
            c = CALL.match(rest)
            if c:
                pending[pid] = (c.group(1), c.group(2)[: -len("<unfinished ...>")])
            continue
        else:
            c = CALL.match(rest)
            if not c:
                continue
            call, args = c.group(1), c.group(2)
        r = RESULT.search(args)
        record(pid, call, args, r.group(1) if r else "?")
    return files


def covered(path: str, roots: list[str]) -> bool:
    """Whether ``path`` is one of ``roots`` or lies under one."""
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def temp_sibling(path: str, outs: list[str]) -> bool:
    """Whether ``path`` is (or is inside) an atomic-write temporary next to one of ``outs``:
    ``<dir>/.<name>.<random>`` for the out ``<dir>/<name>``."""
    for out in outs:
        parent, name = os.path.split(out.rstrip("/"))
        prefix = os.path.join(parent, f".{name}.")
        if path.startswith(prefix):
            return True
    return False
