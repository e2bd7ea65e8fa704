/*
 * pgemm.c — wk_sgemm_split: C = alpha·op(A)·op(B) + beta·C cut into a pm × pn grid
 * of tiles (edges multiples of 16, the SIMD width), one single-threaded sgemm per
 * tile. The grid minimises each thread's work plus what it packs (its rows of A
 * and its columns of B); thin products (LoRA: N or M = r) split along the long side
 * only, and tiny ones run on fewer threads so a thread gets at least ~1 MFLOP.
 * wk_sgemm_split_k cuts the inner dimension instead, for a long K and a small C.
 */
#include "train/pgemm.h"
#include "wk.h"

#include <omp.h>

enum { EDGE = 16, MIN_WORK = 1 << 19 /* multiply-adds per thread */ };

static int ceil_to(long v, int q) { return (int)((v + q - 1) / q * q); }

/* Picks the grid; returns the number of tiles (pm·pn ≤ nth). */
static int pick_grid(int nth, int M, int N, int K, int *pm_out, int *pn_out) {
    long work = (long)M * N * K;
    int cap = (int)WK_MAX(1, WK_MIN((long)nth, work / MIN_WORK));
    double best = 0;
    *pm_out = *pn_out = 1;
    for (int pm = 1; pm <= cap; pm++)
        for (int pn = 1; pm * pn <= cap; pn++) {
            if ((pm > 1 && M < EDGE * pm) || (pn > 1 && N < EDGE * pn)) continue;
            double tm = ceil_to((M + pm - 1) / pm, pm > 1 ? EDGE : 1), tn = ceil_to((N + pn - 1) / pn, pn > 1 ? EDGE : 1);
            double cost = tm * tn * K + 4.0 * K * (tm + tn); /* multiply-adds + packing (a copy ~ 4 FMAs) */
            if (best == 0 || cost < best) best = cost, *pm_out = pm, *pn_out = pn;
        }
    return *pm_out * *pn_out;
}

/* One sgemm outside any parallel region, kept on this thread (OpenBLAS follows this thread's OpenMP count). */
static void sgemm_1(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc) {
    int prev = omp_get_max_threads(), outside = !omp_in_parallel();
    if (outside && prev > 1) omp_set_num_threads(1);
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (outside && prev > 1) omp_set_num_threads(prev);
}

void wk_sgemm_split(int nth, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    int pm, pn, nt = nth > 1 ? pick_grid(nth, M, N, K, &pm, &pn) : 1;
    if (nt <= 1) {
        sgemm_1(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int bm = pm > 1 ? ceil_to((M + pm - 1) / pm, EDGE) : M, bn = pn > 1 ? ceil_to((N + pn - 1) / pn, EDGE) : N;
#pragma omp parallel num_threads(nt)
    {
        int team = omp_get_num_threads();
        for (int tile = omp_get_thread_num(); tile < nt; tile += team) {
            int i0 = (tile / pn) * bm, j0 = (tile % pn) * bn;
            int mi = WK_MIN(bm, M - i0), nj = WK_MIN(bn, N - j0);
            if (mi <= 0 || nj <= 0) continue;
            const float *a = ta == CblasNoTrans ? A + (size_t)i0 * lda : A + i0;
            const float *b = tb == CblasNoTrans ? B + j0 : B + (size_t)j0 * ldb;
            cblas_sgemm(CblasRowMajor, ta, tb, mi, nj, K, alpha, a, lda, b, ldb, beta, C + (size_t)i0 * ldc + j0, ldc);
        }
    }
}

wick_status wk_sgemm_split_k(int nth, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                             int ldc) {
    int ns = WK_MAX(1, WK_MIN(nth, K / 64)), slice = (K + ns - 1) / ns;
    size_t mn = (size_t)M * N;
    float *part = ns > 1 ? wk_malloc(sizeof(float) * mn * (size_t)(ns - 1), "LM-head gradient slices") : NULL;
    if (ns > 1 && !part) return WICK_ENOMEM;
#pragma omp parallel num_threads(ns)
    {
        int team = omp_get_num_threads();
        for (int k = omp_get_thread_num(); k < ns; k += team) {
            int k0 = k * slice, kk = WK_MIN(slice, K - k0);
            float *dst = k ? part + mn * (size_t)(k - 1) : C;
            int ld = k ? N : ldc;
            if (kk > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, kk, 1.f, A + k0, lda, B + (size_t)k0 * ldb,
                            ldb, 0.f, dst, ld);
            else
                for (int i = 0; i < M; i++) memset(dst + (size_t)i * ld, 0, sizeof(float) * N);
        }
#pragma omp barrier
#pragma omp for schedule(static)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                float s = C[(size_t)i * ldc + j];
                for (int k = 1; k < ns; k++) s += part[mn * (size_t)(k - 1) + (size_t)i * N + j];
                C[(size_t)i * ldc + j] = s;
            }
    }
    wk_free(part);
    return WICK_OK;
}
