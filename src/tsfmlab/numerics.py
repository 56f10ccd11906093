"""Portable CPU numerics: the same params give the same bytes on any x86-64 CPU with AVX2.

Floating-point results on a CPU depend on more than the code: numpy, OpenBLAS, MKL, oneDNN, PyTorch and
numba each pick SIMD kernels for the CPU they find at run time (AVX2 or AVX-512, Intel or AMD code
paths), and reductions split work by thread count. Rerunning on one machine is bit-identical; moving to
another CPU is not. The ``numerics`` section of ``params.yaml`` pins all of it through the libraries' own
documented switches:

=========================  ==========================================  ================================
library                    switch                                      pinned to
=========================  ==========================================  ================================
numpy (SIMD dispatch)      ``NPY_DISABLE_CPU_FEATURES``                no AVX-512 kernels (AVX2 is the top)
OpenBLAS (numpy, scipy)    ``OPENBLAS_CORETYPE``, ``OPENBLAS_NUM_THREADS``  Haswell kernels, 1 thread
MKL (torch's BLAS)         ``MKL_CBWR``, ``MKL_ENABLE_INSTRUCTIONS``,  AVX2 code path in strict
                           ``MKL_NUM_THREADS``, ``MKL_DYNAMIC``        reproducible mode, fixed threads
MKL (vendor dispatch)      ``tsfmlab._mkl_dispatch`` (C extension)     Intel's AVX2 kernels on AMD too
oneDNN (torch)             ``ONEDNN_MAX_CPU_ISA``                      AVX2
PyTorch (ATen kernels)     ``ATEN_CPU_CAPABILITY``, ``OMP_NUM_THREADS``  AVX2, ``numerics.threads``
numba (dysts, aeon)        ``NUMBA_CPU_NAME``, ``NUMBA_CPU_FEATURES``,  LLVM code for Haswell,
                           ``NUMBA_NUM_THREADS``                       ``numerics.threads``
=========================  ==========================================  ================================

MKL also chooses kernels by CPU vendor, which no variable controls: under ``MKL_CBWR=AVX2,STRICT`` an
AMD CPU runs other GEMM kernels for matrices with a short side and other vector math (``exp``, ``log``,
``sqrt``, ``erf``) than an Intel CPU, so every training step differs in its last bits. torch exports
MKL's vendor queries and calls them through the PLT; :func:`load_mkl_dispatch` loads an extension that
answers them first, so every x86-64 CPU runs the same AVX2 kernels, and that makes MKL's vector-math
kernel choice once per process (torch's copy caches it unlocked: a thread racing the first call could run
another kernel) (``tests/numerics_fingerprint.py`` checks it natively and on emulated Intel and AMD CPUs).

The thread count is a param, not the machine's core count, so a 2-core and a 64-core machine split
reductions the same way. Every variable is read when its library loads, so :func:`pin` runs when the
``tsfmlab`` package is first imported — before numpy or torch in every stage script — and
:func:`check` (called by :func:`tsfmlab.cli.run_stage`) refuses to run a stage whose libraries were
loaded before the pin took effect. ``numerics.portable: false`` leaves every library at its native
choice (fastest on GPUs and many-core machines; outputs then hold per machine only).

This module and what it imports (the params reader) load no numeric library: numpy must not load before
its switches are set.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .params import Params, PositiveInt

SECTION = "numerics"

# numpy's x86 dispatch targets above AVX2 (disabling one the CPU lacks is a no-op).
NUMPY_AVX512 = (
    "AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"
)
# LLVM features of a Haswell core (x86-64-v3): what numba compiles for instead of the host's features.
NUMBA_FEATURES = (
    "+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+cx8,+f16c,+fma,+fxsr,+lzcnt,+mmx,+movbe,+pclmul,+popcnt,"
    "+sahf,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+x87,+xsave"
)
# The C extension that makes MKL choose its kernels by instruction set only (_mkl_dispatch.c).
MKL_DISPATCH = "tsfmlab._mkl_dispatch"
# Libraries whose switches are read when they load: pinning after any of them is too late.
PINNED_LIBRARIES = ("numpy", "scipy", "torch", "numba")


class NumericsParams(Params):
    """The ``numerics`` section: CPU kernels and threads of every stage."""

    portable: bool  # AVX2 kernels and fixed threads: the same bytes on any x86-64 CPU (false: native)
    threads: PositiveInt  # torch/MKL/OpenMP/numba threads whatever the core count


def portable_env(threads: int) -> dict[str, str]:
    """The environment that makes CPU numerics identical across x86-64 CPUs with AVX2 and FMA."""
    n = str(int(threads))
    return {
        "NPY_DISABLE_CPU_FEATURES": NUMPY_AVX512,
        "OPENBLAS_CORETYPE": "Haswell",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_CBWR": "AVX2,STRICT",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "MKL_NUM_THREADS": n,
        "MKL_DYNAMIC": "FALSE",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "DNNL_MAX_CPU_ISA": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
        "OMP_NUM_THREADS": n,
        "OMP_DYNAMIC": "FALSE",
        "NUMBA_CPU_NAME": "haswell",
        "NUMBA_CPU_FEATURES": NUMBA_FEATURES,
        "NUMBA_NUM_THREADS": n,
    }


def read_settings(params_path: str | Path = "params.yaml") -> tuple[bool, int] | None:
    """``(portable, threads)`` from the ``numerics`` section, or None where there is no params file or
    no such section. Raises :class:`~tsfmlab.errors.ParamError` for other keys or wrong values."""
    from .params import load_params, parse_section, trace  # YAML and pydantic: no numeric library loads here

    path = Path(params_path)
    if not path.is_file():
        return None
    section = load_params(path).get(SECTION)
    if section is None:
        return None
    p = parse_section(NumericsParams, section, SECTION)
    trace(SECTION)
    return p.portable, p.threads


_state: dict[str, object] = {"applied": None, "late": (), "error": None, "mkl_dispatch": None}


def load_mkl_dispatch() -> str | None:
    """Load ``tsfmlab._mkl_dispatch`` into the global symbol scope; its path, or None where it is not built.

    MKL (linked into torch) picks GEMM and vector-math kernels by CPU vendor as well as instruction set:
    under ``MKL_CBWR=AVX2,STRICT`` an AMD CPU runs other kernels than an Intel one and gets other bits
    (matmuls with a short side, ``exp``, ``log``, ``sqrt``, ``erf``, and every optimizer step through
    them). The extension defines the service functions MKL asks for the vendor, so that loaded with
    ``RTLD_GLOBAL`` before torch it makes every x86-64 CPU run the AVX2 path Intel CPUs run."""
    import ctypes
    from importlib.util import find_spec

    spec = find_spec(MKL_DISPATCH)
    if spec is None or not spec.origin:
        return None
    ctypes.CDLL(spec.origin, mode=ctypes.RTLD_GLOBAL)
    return spec.origin


def pin(params_path: str | Path = "params.yaml") -> None:
    """Set the switches of the ``numerics`` section (a no-op without one, or with ``portable: false``).

    Records which pinned libraries were already loaded, so :func:`check` can refuse a too-late pin."""
    from .errors import TsfmlabError

    try:
        settings = read_settings(params_path)
    except TsfmlabError as err:  # reported by check(), as a stage's one-line error
        _state["applied"], _state["error"] = None, str(err)
        return
    if settings is None or not settings[0]:
        _state["applied"] = None
        return
    env = portable_env(settings[1])
    os.environ.update(env)
    _state["applied"] = env
    _state["late"] = tuple(m for m in PINNED_LIBRARIES if m in sys.modules)
    _state["mkl_dispatch"] = load_mkl_dispatch()


def check(params_path: str | Path = "params.yaml") -> None:
    """Fail unless the libraries run with the pinned settings of ``params_path`` (stages call this)."""
    from .errors import ParamError

    if _state["error"]:
        raise ParamError(str(_state["error"]))
    settings = read_settings(params_path)
    if settings is None:
        raise ParamError(f"{params_path}: no numerics section (numerics.portable, numerics.threads)")
    portable, threads = settings
    if not portable:
        return
    expected = portable_env(threads)
    if _state["applied"] != expected or any(os.environ.get(k) != v for k, v in expected.items()):
        raise ParamError("numerics: settings changed after tsfmlab was imported; run the stage in a new process")
    if _state["mkl_dispatch"] is None:
        raise ParamError(
            "numerics.portable needs tsfmlab's MKL dispatch extension, which is not built: reinstall "
            "tsfmlab with a C compiler (pip install -e .), or set numerics.portable: false"
        )
    if _state["late"]:
        raise ParamError(
            f"numerics.portable: {', '.join(_state['late'])} loaded before tsfmlab pinned its CPU kernels; "
            "import tsfmlab first"
        )
    missing = missing_cpu_features()
    if missing:
        raise ParamError(
            f"numerics.portable needs a CPU with AVX2 and FMA (x86-64-v3); this one lacks {', '.join(missing)}. "
            "Set numerics.portable: false to run with this CPU's native kernels."
        )


def missing_cpu_features() -> list[str]:
    """The features the pinned kernels need that this CPU lacks (Linux; elsewhere none are reported).

    Read from ``/proc/cpuinfo`` rather than from torch, which a stage may never import."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return []
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("flags")), None)  # fmt: skip
    if flags is None:
        return []
    return [f for f in ("avx2", "fma") if f not in flags]


def describe() -> dict[str, object]:
    """What the current process runs with (for benchmarks and reports)."""
    import numpy as np
    import torch

    features = np._core._multiarray_umath.__cpu_features__
    return {
        "portable": _state["applied"] is not None,
        "numpy_top_simd": max(
            (f for f in ("AVX2", "AVX512F", "AVX512_SKX", "AVX512_ICL") if features.get(f)), default="none"
        ),
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
    }
