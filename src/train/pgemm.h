/*
 * pgemm.h — sgemm split into tiles over a given number of OpenMP threads, each
 * tile one single-threaded OpenBLAS call (OpenBLAS's OpenMP build runs single
 * threaded inside a parallel region). Used by the trainer's replicas, which
 * each own a share of the cores and must not start OpenBLAS's own threading.
 */
#ifndef WK_PGEMM_H
#define WK_PGEMM_H
#include <cblas.h>
#include "wk.h"

/* C[M,N] = alpha·op(A)·op(B) + beta·C (row-major, like cblas_sgemm) on up to nth threads.
 * K is never split, so each element of C is the same sum for any nth. */
void wk_sgemm_split(int nth, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* C[M,N] = A[M,K]·B[K,N] (both untransposed) with K cut into nth slices, one per thread, each
 * slice's product in its own buffer, then summed in slice order (the same bits for a given nth).
 * For long K and a small C (the LM head's input gradient: K = vocabulary): every thread packs
 * only its slice of A and B. Returns WICK_ENOMEM (C untouched) when the buffers cannot be had. */
wick_status wk_sgemm_split_k(int nth, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                             int ldc);
#endif
