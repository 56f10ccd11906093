/* MKL's code path by instruction set only, never by CPU vendor (loaded by tsfmlab.numerics).
 *
 * torch's x86 wheels link MKL statically but export its service functions and call them through the
 * PLT. MKL asks these three which kernels to run: on an AMD CPU it otherwise leaves the AVX2 path that
 * MKL_CBWR=AVX2,STRICT pins on Intel for other GEMM and vector-math kernels, whose bits differ. Loaded
 * with RTLD_GLOBAL before torch, these definitions come first in the symbol lookup, so every x86-64 CPU
 * runs the same AVX2 kernels. On an Intel CPU they return what MKL's own would.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

int mkl_serv_intel_cpu_true(void) { return 1; }
int mkl_serv_intel_cpu(void) { return 1; }
int mkl_serv_cpuiszen(void) { return 0; }

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_mkl_dispatch",
                                    "MKL kernels chosen by instruction set, not CPU vendor.", -1, NULL};

PyMODINIT_FUNC PyInit__mkl_dispatch(void) { return PyModule_Create(&module); }
