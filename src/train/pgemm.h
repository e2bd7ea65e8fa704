/*
 * pgemm.h — sgemm split into tiles over a given number of OpenMP threads, each
 * tile one single-threaded OpenBLAS call (OpenBLAS's OpenMP build runs single
 * threaded inside a parallel region). Used by the trainer's replicas, which
 * each own a share of the cores and must not start OpenBLAS's own threading.
 */
#ifndef WK_PGEMM_H
#define WK_PGEMM_H
#include <cblas.h>

/* C[M,N] = alpha·op(A)·op(B) + beta·C (row-major, like cblas_sgemm) on up to nth threads.
 * K is never split, so each element of C is the same sum for any nth. */
void wk_sgemm_split(int nth, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc);
#endif
