/* MKL's code path by instruction set only, never by CPU vendor, and chosen once per process (loaded by
 * tsfmlab.numerics).
 *
 * torch's x86 wheels link MKL statically but export its service functions and call them through the
 * PLT. Loaded with RTLD_GLOBAL before torch, the definitions here come first in the symbol lookup:
 *
 * - Vendor. MKL asks three functions which kernels to run: on an AMD CPU it otherwise leaves the AVX2
 *   path that MKL_CBWR=AVX2,STRICT pins on Intel for other GEMM and vector-math kernels, whose bits
 *   differ. Answered here, every x86-64 CPU runs the same AVX2 kernels. On an Intel CPU they return what
 *   MKL's own would.
 * - Once. MKL's vector math (exp, log, tanh, erf... which ATen calls from every thread of a parallel
 *   region) caches its kernel choice in mkl_vml_serv_cpu_detect with two unlocked writes: the detected
 *   CPU type, then the kernel index it maps to. A thread making its first call between the two reads the
 *   unmapped value and runs another kernel (SSE4.2's exp where AVX2's was pinned) on its share of the
 *   elements: now and then, a process's first vector-math call differed in the last bit of half its
 *   elements. Here MKL's own function runs exactly once, under pthread_once, and every caller waits for
 *   its answer.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int mkl_serv_intel_cpu_true(void) { return 1; }
int mkl_serv_intel_cpu(void) { return 1; }
int mkl_serv_cpuiszen(void) { return 0; }

#define VML_DETECT "mkl_vml_serv_cpu_detect"

typedef int (*detect_fn)(void);
int mkl_vml_serv_cpu_detect(void);

static pthread_once_t vml_once = PTHREAD_ONCE_INIT;
static int vml_cpu_type = -1;

struct objects {
    int n, capacity;
    char **names;
};

/* The loaded objects' names, copied: dlopen may not run inside dl_iterate_phdr's callback. */
static int collect(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct objects *objs = data;
    if (!info->dlpi_name || !info->dlpi_name[0]) return 0;
    if (objs->n == objs->capacity) {
        int capacity = objs->capacity ? 2 * objs->capacity : 256;
        char **names = realloc(objs->names, capacity * sizeof *names);
        if (!names) return 1; /* out of memory: search what was collected */
        objs->names = names;
        objs->capacity = capacity;
    }
    char *name = strdup(info->dlpi_name);
    if (name) objs->names[objs->n++] = name;
    return 0;
}

/* MKL's own definition: the first loaded object other than this one that defines it (the library that
 * calls it, libtorch_cpu, is loaded with local scope, out of reach of RTLD_NEXT). */
static detect_fn find_mkl_detect(void) {
    struct objects objs = {0};
    detect_fn found = NULL;
    dl_iterate_phdr(collect, &objs);
    for (int i = 0; i < objs.n; i++) {
        if (!found) {
            void *handle = dlopen(objs.names[i], RTLD_LAZY | RTLD_NOLOAD);
            if (handle) {
                detect_fn fn = (detect_fn)dlsym(handle, VML_DETECT);
                if (fn && fn != mkl_vml_serv_cpu_detect) found = fn;
                dlclose(handle);
            }
        }
        free(objs.names[i]);
    }
    free(objs.names);
    return found;
}

static void vml_detect_once(void) {
    detect_fn mkl_detect = find_mkl_detect();
    vml_cpu_type = mkl_detect ? mkl_detect() : -1;
}

int mkl_vml_serv_cpu_detect(void) {
    pthread_once(&vml_once, vml_detect_once);
    return vml_cpu_type;
}

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_mkl_dispatch",
                                    "MKL kernels chosen by instruction set, not CPU vendor, once per process.",
                                    -1, NULL};

PyMODINIT_FUNC PyInit__mkl_dispatch(void) { return PyModule_Create(&module); }
