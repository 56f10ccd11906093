"""Records, per torchrun rank, every file-system write under ``$AUDIT_ROOT`` (tests only).

The torchrun tests put this directory on the workers' ``PYTHONPATH``; Python imports ``sitecustomize``
at start-up, so each worker (``RANK`` set) installs an audit hook that appends, for every open for
writing, directory creation, rename, removal or truncation inside ``$AUDIT_ROOT``, the path relative to
it to ``$AUDIT_LOG/rank-<RANK>.txt``. Writes by native code (safetensors' Rust writer) raise no audit
event, but the temporary directories and renames around them (``tsfmlab.io.atomic``) do.
"""

import os
import sys

_ROOT, _LOG, _RANK = os.environ.get("AUDIT_ROOT"), os.environ.get("AUDIT_LOG"), os.environ.get("RANK")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {"os.mkdir": 1, "os.remove": 1, "os.rmdir": 1, "shutil.rmtree": 1, "os.truncate": 1}
_busy = False


def _record(path) -> None:
    if not isinstance(path, (str, os.PathLike)):
        return  # a file descriptor or bytes: not a path we track
    full = os.path.abspath(os.fspath(path))
    root = os.path.abspath(_ROOT)
    if full == root or full.startswith(root + os.sep):
        with open(os.path.join(_LOG, f"rank-{_RANK}.txt"), "a") as f:
            f.write(os.path.relpath(full, root) + "\n")


def _hook(event: str, args: tuple) -> None:
    global _busy
    if _busy:
        return
    paths = []
    if event == "open":
        path, mode, flags = args
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS
        ):
            paths = [path]
    elif event == "os.rename":
        paths = list(args[:2])
    elif event in _PATH_EVENTS:
        paths = [args[0]]
    if not paths:
        return
    _busy = True
    try:
        for path in paths:
            _record(path)
    finally:
        _busy = False


if _ROOT and _LOG and _RANK is not None:
    os.makedirs(_LOG, exist_ok=True)
    sys.addaudithook(_hook)
