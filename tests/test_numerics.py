"""numerics.portable: CPU kernels and thread counts pinned before numpy/torch load, identical bytes."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tsfmlab import numerics
from tsfmlab.errors import ParamError

# Floating-point work whose bytes depend on SIMD width and thread count when left native: numpy's
# dispatched exp/sin and reductions, a BLAS product, torch GEMM, softmax, layer norm and reductions.
FINGERPRINT = """
import hashlib, json, sys
import tsfmlab
import numpy as np, torch
from tsfmlab import numerics
rng = np.random.default_rng(0)
x = rng.standard_normal((512, 384)).astype(np.float32)
h = hashlib.sha256()
h.update(np.exp(x).tobytes()); h.update(np.sin(x).tobytes()); h.update(np.tanh(x).tobytes())
h.update(x.sum(axis=0).tobytes()); h.update((x.astype(np.float64) @ x.T.astype(np.float64)).tobytes())
t = torch.from_numpy(x)
w = torch.from_numpy(rng.standard_normal((384, 384)).astype(np.float32))
y = torch.nn.functional.layer_norm(torch.softmax(t @ w, dim=-1) @ w.T, (384,))
h.update(y.numpy().tobytes()); h.update(t.exp().sum(dim=1).numpy().tobytes()); h.update(torch.tanh(t @ w).numpy().tobytes())
print(json.dumps({"hash": h.hexdigest(), **numerics.describe()}))
"""

CAPS = {  # what a smaller CPU looks like to the libraries: no AVX-512 dispatch, one core and thread
    "NPY_DISABLE_CPU_FEATURES": numerics.NUMPY_AVX512,
    "ATEN_CPU_CAPABILITY": "avx2",
    "OPENBLAS_CORETYPE": "Haswell",
    "MKL_CBWR": "AVX2",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def params_dir(tmp_path: Path, portable: str, threads: str = "2") -> Path:
    (tmp_path / "params.yaml").write_text(f"numerics:\n  portable: {portable}\n  threads: {threads}\n")
    return tmp_path


def fingerprint(cwd: Path, caps: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in numerics.portable_env(1)}
    prefix = []
    if caps:
        env.update(CAPS)
        if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
            prefix = ["taskset", "-c", "0"]
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", FINGERPRINT], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def has_avx512() -> bool:
    return "avx512f" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else False


def test_portable_numerics_give_the_same_bytes_on_a_smaller_cpu(tmp_path):
    cwd = params_dir(tmp_path, "true")
    full, capped = fingerprint(cwd, caps=False), fingerprint(cwd, caps=True)
    assert full["portable"] and full["torch_capability"] == "AVX2" and full["numpy_top_simd"] == "AVX2"
    assert full["torch_threads"] == capped["torch_threads"] == 2
    assert full["hash"] == capped["hash"]


@pytest.mark.skipif(not has_avx512(), reason="the CPU has no AVX-512: native and capped kernels coincide")
def test_native_numerics_differ_on_a_smaller_cpu(tmp_path):
    # The control: without the pin, the same computation gives other bytes once AVX-512 and a core are
    # taken away, which is what moving to another machine does.
    cwd = params_dir(tmp_path, "false")
    full, capped = fingerprint(cwd, caps=False), fingerprint(cwd, caps=True)
    assert not full["portable"] and full["torch_capability"] != "AVX2"
    assert full["hash"] != capped["hash"]


def test_settings_are_read_and_validated(tmp_path):
    assert numerics.read_settings(params_dir(tmp_path, "true", "3") / "params.yaml") == (True, 3)
    assert numerics.read_settings(tmp_path / "absent.yaml") is None
    with pytest.raises(ParamError, match="numerics.threads"):
        numerics.read_settings(params_dir(tmp_path, "true", "0") / "params.yaml")
    with pytest.raises(ParamError, match="numerics.portable"):
        numerics.read_settings(params_dir(tmp_path, "yes") / "params.yaml")


def test_check_refuses_a_section_with_other_keys(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("numerics:\n  portable: true\n  threads: 2\n  avx512: false\n")
    with pytest.raises(ParamError, match="numerics"):
        numerics.check(path)


def test_a_stage_refuses_numpy_loaded_before_the_pin(tmp_path):
    params_dir(tmp_path, "true")
    code = "import numpy\nimport tsfmlab\nfrom tsfmlab.cli import run_stage\nrun_stage(lambda: print('ran'))\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "numpy loaded before tsfmlab pinned" in proc.stderr and "ran" not in proc.stdout


def test_a_stage_with_a_bad_numerics_param_fails_fast(tmp_path):
    params_dir(tmp_path, "true", "two")
    code = "from tsfmlab.cli import run_stage\nrun_stage(lambda: print('ran'))\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0 and "numerics.threads" in proc.stderr and "ran" not in proc.stdout


def test_every_stage_script_imports_tsfmlab_first():
    import ast

    from tests.conftest import REPO

    for script in sorted((REPO / "stages").glob("*.py")):
        body = ast.parse(script.read_text()).body
        first = next(n for n in body if isinstance(n, ast.Import | ast.ImportFrom))
        assert isinstance(first, ast.Import) and first.names[0].name == "tsfmlab", f"{script.name}: import tsfmlab first"


# An Intel and an AMD model with AVX2 and FMA, as qemu's user-mode emulator presents them (CPUID vendor,
# family and features): MKL, oneDNN, numpy and CatBoost see another vendor's CPU without AVX-512 or AMX.
EMULATED_CPUS = {"GenuineIntel": "Haswell", "AuthenticAMD": "EPYC-Rome"}


def other_vendors_cpu(info: str | None = None) -> str:
    """The emulated model of the vendor this CPU (``info``: /proc/cpuinfo's text) is not: on an Intel
    machine the AMD one, and the other way round. With the native run, both vendors, and a CPU without
    AVX-512 where this one has it."""
    if info is None:
        info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    vendor = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("vendor_id")), "")
    return EMULATED_CPUS["GenuineIntel" if vendor == "AuthenticAMD" else "AuthenticAMD"]


def qemu_x86_64() -> str:
    """Debian's user-mode qemu, installed when missing (as root, with apt-get); otherwise a skip."""
    if platform.machine() != "x86_64" or sys.platform != "linux":
        pytest.skip("the CPU emulation test runs on x86-64 Linux")
    if shutil.which("qemu-x86_64") is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("qemu-x86_64 is missing and cannot be installed here (needs root and apt-get)")
        apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "qemu-user"]
        if subprocess.run(install, env=apt, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=apt, capture_output=True)
            proc = subprocess.run(install, env=apt, capture_output=True, text=True)
            if proc.returncode != 0:
                pytest.skip(f"apt-get could not install qemu-user: {proc.stderr[-500:]}")
    return shutil.which("qemu-x86_64")


@pytest.mark.stage
@pytest.mark.timeout(1200)
def test_the_same_bytes_on_an_emulated_cpu_of_the_other_vendor():
    """tests/numerics_fingerprint.py (GEMMs, MKL's vector math, softmax and layer norm, AdamW, teacher
    steps, CatBoost, numba) gives the same hashes natively and on an emulated CPU of the other vendor
    (Intel here: AMD there, and the other way round). The native run also compiles the numba paths into
    numba's cache, which the emulated run loads."""
    from tests.conftest import REPO

    qemu = qemu_x86_64()
    script = [sys.executable, str(REPO / "tests" / "numerics_fingerprint.py")]
    native = subprocess.run(script, cwd=REPO, capture_output=True, text=True)
    assert native.returncode == 0, native.stderr[-3000:]
    expected = json.loads(native.stdout.strip().splitlines()[-1])
    assert {"teacher_steps", "catboost", "minirocket", "adamw_fused", "mm_64x256x256"} <= set(expected)
    cpu = other_vendors_cpu()
    proc = subprocess.run([qemu, "-cpu", cpu, *script], cwd=REPO, capture_output=True, text=True, timeout=550)
    assert proc.returncode == 0, f"{cpu}: {proc.stderr[-3000:]}"
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    differing = sorted(k for k in expected if got.get(k) != expected[k])
    assert not differing, f"emulated {cpu} differs from this CPU on {differing}"


def test_the_emulated_cpu_is_the_other_vendors():
    assert other_vendors_cpu("processor\t: 0\nvendor_id\t: GenuineIntel\n") == "EPYC-Rome"
    assert other_vendors_cpu("processor\t: 0\nvendor_id\t: AuthenticAMD\n") == "Haswell"


def test_mkl_service_queries_are_answered_by_the_extension(tmp_path):
    # torch's MKL exports its vendor queries and its vector-math kernel choice; the global symbol scope
    # resolves them to tsfmlab's extension (loaded before torch), which a torch build that hid or renamed
    # them would show here. The kernel choice is MKL's own, made once: the extension answers what MKL's
    # function answers, after the process's first vector-math call (an exp from two threads) went through it.
    params_dir(tmp_path, "true", "2")
    code = """
import ctypes, glob, os
import tsfmlab, torch
from tsfmlab import numerics
shim = ctypes.CDLL(numerics._state["mkl_dispatch"])
libtorch = ctypes.CDLL(glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))[0])
everyone = ctypes.CDLL(None)
for name in ("mkl_serv_intel_cpu_true", "mkl_serv_intel_cpu", "mkl_serv_cpuiszen", "mkl_vml_serv_cpu_detect"):
    address = lambda lib: ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
    assert address(libtorch) != address(shim), name  # torch defines it too
    assert address(everyone) == address(shim), name  # and the lookup finds the extension's first
assert torch.get_num_threads() == 2
torch.randn(2 * 8192, generator=torch.Generator().manual_seed(0)).exp()  # two threads' first vector math
assert shim.mkl_vml_serv_cpu_detect() == libtorch.mkl_vml_serv_cpu_detect() >= 0
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
