/*
 * blas_threads.c — keeps OpenBLAS's thread count in step with wick's.
 */
#include "wk.h"
#include <cblas.h>
#include <strings.h>

void wk_blas_set_threads(int n) { openblas_set_num_threads(n > 0 ? n : 1); }

const char *wick_blas_core(void) { return openblas_get_corename(); }

const char *wick_blas_suggested_core(void) {
    const char *core = openblas_get_corename();
    if (!core || strcasecmp(core, "Prescott") != 0) return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "SkylakeX";
    if (__builtin_cpu_supports("avx2")) return "Haswell";
    return NULL;
}
