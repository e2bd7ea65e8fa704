/*
 * blas_threads.c — keeps OpenBLAS's thread count in step with wick's.
 */
#include "wk.h"
#include <cblas.h>

void wk_blas_set_threads(int n) { openblas_set_num_threads(n > 0 ? n : 1); }
