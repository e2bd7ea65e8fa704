/*
 * gemm_bf16.c — x·Wᵀ for bf16 weights with the activations rounded to bf16
 * (round-to-nearest-even, once per call) and AVX512-BF16 dot products
 * (vdpbf16ps: two bf16 products per f32 lane, twice the f32 FMA rate).
 *
 * Layout: x becomes xb [n_pad, 2*kp] bf16 (k pairs; zero padding for odd `in` and
 * for rows up to a multiple of MR). Each thread owns blocks of NB = 64 output columns;
 * per k-block of KC pairs it packs W into a panel [KC][64] of 32-bit (bf16, bf16)
 * pairs, so one 512-bit load holds 16 output columns of one k pair and the MR x 4
 * accumulators hold outputs directly (no horizontal sums). The micro-kernel
 * broadcasts one x pair per row and issues MR*4 vdpbf16ps per k pair.
 * Without AVX512-BF16 a portable float loop computes the same quantity.
 */
#include "backend/cpu/gemm_bf16.h"
#include "wk.h"

#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { MR = 4, NB = 64, KC = 384 };

void wk_gemm_bf16_ref(float *y, const float *x, const uint16_t *W, int n, int in, int out) {
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int k = 0; k < in; k++)
                s += (double)wk_bf16_to_f32(wk_f32_to_bf16(x[(size_t)i * in + k])) *
                     wk_bf16_to_f32(W[(size_t)o * in + k]);
            y[(size_t)i * out + o] = (float)s;
        }
}

#ifdef __AVX512BF16__
int wk_gemm_bf16_native(void) { return 1; }

/* x [n,in] f32 -> xb [rows, 2*kp] bf16 pairs (zero padded). */
static void pack_x(uint32_t *xb, const float *x, int n, int rows, int in, int kp) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++) {
        uint16_t *d = (uint16_t *)(xb + (size_t)i * kp);
        for (int k = 0; k < 2 * kp; k++) d[k] = (i < n && k < in) ? wk_f32_to_bf16(x[(size_t)i * in + k]) : 0;
    }
}

/* Panel [kc][NB] of (W[o][2p], W[o][2p+1]) for columns o0.., pairs p0..p0+kc-1; zeros past out/in. */
static void pack_w(uint32_t *pan, const uint16_t *W, int in, int out, int o0, int p0, int kc) {
    for (int j = 0; j < NB; j++) {
        int o = o0 + j;
        const uint16_t *r = W + (size_t)o * in;
        if (o < out && 2 * (p0 + kc) <= in) { /* whole pairs: straight 32-bit copies */
            const uint16_t *s = r + 2 * (size_t)p0;
            for (int p = 0; p < kc; p++) {
                uint32_t v;
                memcpy(&v, s + 2 * p, 4);
                pan[(size_t)p * NB + j] = v;
            }
            continue;
        }
        for (int p = 0; p < kc; p++) {
            int k = 2 * (p0 + p);
            uint32_t lo = o < out && k < in ? r[k] : 0, hi = o < out && k + 1 < in ? r[k + 1] : 0;
            pan[(size_t)p * NB + j] = lo | hi << 16;
        }
    }
}

/* MR rows of xb (stride kp pairs) times the panel over kc pairs; adds into / stores y. */
static inline void micro(float *y, int ldy, const uint32_t *xb, int kp, const uint32_t *pan, int kc, int nrow,
                         __mmask16 *cm, int add) {
    __m512 acc[MR][4];
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
    for (int p = 0; p < kc; p++) {
        __m512bh w[4];
        for (int c = 0; c < 4; c++) w[c] = (__m512bh)_mm512_load_si512(pan + (size_t)p * NB + 16 * c);
        for (int r = 0; r < MR; r++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)xb[(size_t)r * kp + p]);
            for (int c = 0; c < 4; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], a, w[c]);
        }
    }
    for (int r = 0; r < nrow; r++)
        for (int c = 0; c < 4; c++) {
            float *d = y + (size_t)r * ldy + 16 * c;
            __m512 v = acc[r][c];
            if (add) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(cm[c], d));
            _mm512_mask_storeu_ps(d, cm[c], v);
        }
}

/* One block of NB output columns over all rows. */
static void col_block(float *y, const uint32_t *xb, const uint16_t *W, int n, int in, int out, int kp, int o0,
                      uint32_t *pan) {
    __mmask16 cm[4];
    for (int c = 0; c < 4; c++) {
        int left = out - o0 - 16 * c;
        cm[c] = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
    }
    for (int p0 = 0; p0 < kp; p0 += KC) {
        int kc = WK_MIN(KC, kp - p0);
        pack_w(pan, W, in, out, o0, p0, kc);
        for (int i0 = 0; i0 < n; i0 += MR)
            micro(y + (size_t)i0 * out + o0, out, xb + (size_t)i0 * kp + p0, kp, pan, kc, WK_MIN(MR, n - i0), cm,
                  p0 > 0);
    }
}

int wk_gemm_bf16(float *y, const float *x, const uint16_t *W, int n, int in, int out) {
    int kp = (in + 1) / 2, rows = (n + MR - 1) / MR * MR, nblk = (out + NB - 1) / NB;
    uint32_t *xb = NULL;
    if (posix_memalign((void **)&xb, 64, (size_t)rows * kp * 4) != 0) return -1;
    pack_x(xb, x, n, rows, in, kp);
    int fail = 0;
#pragma omp parallel
    {
        uint32_t *pan = NULL;
        if (posix_memalign((void **)&pan, 64, (size_t)KC * NB * 4) != 0) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < nblk; b++)
            if (pan) col_block(y, xb, W, n, in, out, kp, b * NB, pan);
        free(pan);
    }
    free(xb);
    return fail ? -1 : 1;
}
#else
int wk_gemm_bf16_native(void) { return 0; }

int wk_gemm_bf16(float *y, const float *x, const uint16_t *W, int n, int in, int out) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            float s = 0;
            for (int k = 0; k < in; k++)
                s += wk_bf16_to_f32(wk_f32_to_bf16(x[(size_t)i * in + k])) * wk_bf16_to_f32(W[(size_t)o * in + k]);
            y[(size_t)i * out + o] = s;
        }
    return 0;
}
#endif
