/*
 * lora_seg_cpu.c — the fast CPU backend's segmented LoRA (backend.h: lora_seg).
 *
 * Batched decode with several adapters gives many small segments (a few rows each);
 * two sgemm calls per segment and projection then cost more in call and thread start-up
 * than in arithmetic. Here every small segment is done in one threaded pass:
 *   shrink  tmp[i, j] = x[i]·A_g[j]       tasks (segment, rank j): long dot products, A_g[j] read once
 *                                          (four rows a pass)
 *   expand  y[i, o] += s_g Σ_j tmp[i, j] B_g[o, j]
 *                                          tasks (segment, 64 outputs): 16x16 blocks of B_g
 *                                          transposed in registers, then 16-wide FMAs per row (no
 *                                          reductions; without AVX-512 one row takes a dot product
 *                                          per output)
 * tmp rows are at their absolute row index with stride max(r). Segments of more than
 * LS_ROWS_MAX rows go to the generic op (two sgemm calls), which wins once a segment is a
 * real matrix. lora_seg16: the small segments read bf16 copies of A and B where given (half
 * the bytes; widened to f32 in registers, fp32 arithmetic as above); its B copy comes in tiles of
 * 16 outputs stored rank by rank, so the expand reads 16 outputs of one rank as one vector from
 * one contiguous tile: no transposes in registers.
 */
#include "backend/cpu/cpu_common.h"

#include <omp.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define LS_ROWS_MAX 24 /* larger segments: two sgemm calls */
#define LS_OB 64       /* outputs per expand task */
#define LS_JT 64       /* ranks per transposed tile (portable path) */
#define LS_SERIAL 32768 /* multiply-adds below which one thread does it all */

#ifdef __AVX512F__
/* 16 values of b from k on, as floats: f32 (bf) or (h) bf16 (bh) widened (dot_any, dot4_any). */
#define LS_LD(k)                                                                                                      \
    (h ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(bh + (k)))), 16)) \
       : _mm512_loadu_ps(bf + (k)))
#endif

/* Σ a[i]·b[i] over n, b f32 or (h) bf16 widened: the two callers below pass h as a constant. */
static inline __attribute__((always_inline)) float dot_any(const float *a, const void *b, int n, int h) {
    const float *bf = b;
    const uint16_t *bh = b;
    int i = 0;
    float s = 0;
#ifdef __AVX512F__
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), LS_LD(i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), LS_LD(i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), LS_LD(i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), LS_LD(i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), LS_LD(i), a0);
    s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
#endif
    for (; i < n; i++) s += a[i] * (h ? wk_bf16_to_f32(bh[i]) : bf[i]);
    return s;
}
static float dot_long(const float *a, const float *b, int n) { return dot_any(a, b, n, 0); }
static float dot_long_h(const float *a, const uint16_t *b, int n) { return dot_any(a, b, n, 1); }

/* o[k] = Σ x[k·in + i]·b[i] over n for the 4 rows k of x (stride in), b f32 or (h) bf16 widened:
 * each load of b serves four rows. */
static inline __attribute__((always_inline)) void dot4_any(const float *x, int in, const void *b, int n, int h, float o[4]) {
    const float *bf = b;
    const uint16_t *bh = b;
    int i = 0;
    float s[4] = {0, 0, 0, 0};
#ifdef __AVX512F__
    __m512 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm512_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        __m512 b0 = LS_LD(i), b1 = LS_LD(i + 16);
        for (int k = 0; k < 4; k++) {
            a[k] = _mm512_fmadd_ps(_mm512_loadu_ps(x + (size_t)k * in + i), b0, a[k]);
            a[4 + k] = _mm512_fmadd_ps(_mm512_loadu_ps(x + (size_t)k * in + i + 16), b1, a[4 + k]);
        }
    }
    for (; i + 16 <= n; i += 16) {
        __m512 b0 = LS_LD(i);
        for (int k = 0; k < 4; k++) a[k] = _mm512_fmadd_ps(_mm512_loadu_ps(x + (size_t)k * in + i), b0, a[k]);
    }
    for (int k = 0; k < 4; k++) s[k] = _mm512_reduce_add_ps(_mm512_add_ps(a[k], a[4 + k]));
#endif
    for (; i < n; i++) {
        float v = h ? wk_bf16_to_f32(bh[i]) : bf[i];
        for (int k = 0; k < 4; k++) s[k] += x[(size_t)k * in + i] * v;
    }
    for (int k = 0; k < 4; k++) o[k] = s[k];
}

#ifdef __AVX512F__
/* Transposes the 16x16 block in c[0..16) (row l -> column l) in registers. */
static inline void transpose16(__m512 *c) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) t[i] = _mm512_unpacklo_ps(c[i], c[i + 1]), t[i + 1] = _mm512_unpackhi_ps(c[i], c[i + 1]);
    for (int i = 0; i < 16; i += 4) { /* c[i + k]: per 128-bit lane q, column 4q + k of rows i..i+3 */
        c[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44), c[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        c[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44), c[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int k = 0; k < 4; k++) { /* pair row groups (0-3, 4-7) and (8-11, 12-15) */
        t[k] = _mm512_shuffle_f32x4(c[k], c[4 + k], 0x88), t[4 + k] = _mm512_shuffle_f32x4(c[k], c[4 + k], 0xdd);
        t[8 + k] = _mm512_shuffle_f32x4(c[8 + k], c[12 + k], 0x88);
        t[12 + k] = _mm512_shuffle_f32x4(c[8 + k], c[12 + k], 0xdd);
    }
    for (int k = 0; k < 8; k++) c[k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0x88), c[8 + k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0xdd);
}

/* Rows: 16 outputs x 16 ranks of B transposed in registers, then one 16-wide FMA per rank and row. */
static void expand_tiles(float *y, int out, const float *tmp, int R, const float *B, int r, float s, int i0, int i1,
                         int o0, int o1) {
    for (int ob = o0; ob < o1; ob += 16) {
        int w = WK_MIN(16, o1 - ob);
        __mmask16 mw = (__mmask16)((1u << w) - 1);
        for (int j0 = 0; j0 < r; j0 += 16) {
            int jn = WK_MIN(16, r - j0);
            __mmask16 mj = (__mmask16)((1u << jn) - 1);
            __m512 c[16];
            for (int l = 0; l < 16; l++) c[l] = l < w ? _mm512_maskz_loadu_ps(mj, B + (size_t)(ob + l) * r + j0) : _mm512_setzero_ps();
            transpose16(c); /* c[j] = B[ob..ob+16, j0 + j] */
            for (int i = i0; i < i1; i++) {
                const float *t = tmp + (size_t)i * R + j0;
                __m512 acc = _mm512_setzero_ps();
                for (int j = 0; j < jn; j++) acc = _mm512_fmadd_ps(_mm512_set1_ps(t[j]), c[j], acc);
                float *yr = y + (size_t)i * out + ob;
                _mm512_mask_storeu_ps(yr, mw, _mm512_fmadd_ps(_mm512_set1_ps(s), acc, _mm512_maskz_loadu_ps(mw, yr)));
            }
        }
    }
}
#else
/* Several rows: 16 outputs of B transposed into a tile, then 16-wide multiply-adds per row. */
static void expand_tiles(float *y, int out, const float *tmp, int R, const float *B, int r, float s, int i0, int i1,
                         int o0, int o1) {
    float bt[LS_JT][16];
    for (int ob = o0; ob < o1; ob += 16) {
        int w = WK_MIN(16, o1 - ob);
        for (int j0 = 0; j0 < r; j0 += LS_JT) {
            int jn = WK_MIN(LS_JT, r - j0);
            for (int j = 0; j < jn; j++)
                for (int l = 0; l < 16; l++) {
                    size_t at = (size_t)(ob + l) * r + j0 + j;
                    bt[j][l] = l >= w ? 0.f : B[at];
                }
            for (int i = i0; i < i1; i++) {
                float acc[16] = {0};
                const float *t = tmp + (size_t)i * R + j0;
                for (int j = 0; j < jn; j++)
                    for (int l = 0; l < 16; l++) acc[l] += t[j] * bt[j][l];
                float *yr = y + (size_t)i * out + ob;
                for (int l = 0; l < w; l++) yr[l] += s * acc[l];
            }
        }
    }
}
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
/* NI rows (a constant at each call: the accumulators stay in registers) of one 16-output tile
 * (w wide, mw its mask) of Bt: y[ia.., ob..] += s · tmp[ia.., :r] · the tile. */
static inline __attribute__((always_inline)) void t16_rows(float *y, int out, const float *tmp, int R,
                                                           const uint16_t *tile, int w, __mmask16 mw, int r, float s,
                                                           int ia, int ob, const int NI) {
    __m512 acc[8];
    for (int k = 0; k < NI; k++) acc[k] = _mm512_setzero_ps();
    for (int j = 0; j < r; j++) {
        __m512 b = _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mw, tile + (size_t)j * w)), 16));
        for (int k = 0; k < NI; k++) acc[k] = _mm512_fmadd_ps(_mm512_set1_ps(tmp[(size_t)(ia + k) * R + j]), b, acc[k]);
    }
    for (int k = 0; k < NI; k++) {
        float *yr = y + (size_t)(ia + k) * out + ob;
        _mm512_mask_storeu_ps(yr, mw, _mm512_fmadd_ps(_mm512_set1_ps(s), acc[k], _mm512_maskz_loadu_ps(mw, yr)));
    }
}
#endif

/* y[rows, o0..o1) += s * tmp[rows, :r] · B[o0..o1, :r]ᵀ from Bt, B in bf16 tiles of 16 outputs
 * (backend.h: lora_seg16; o0 a multiple of 16): per tile, one widened load of each rank's 16
 * values and one FMA per row and rank (rows in groups of up to 8 accumulators), no transposes. */
static void expand_t16(float *y, int out, const float *tmp, int R, const uint16_t *Bt, int r, float s, int i0, int i1,
                       int o0, int o1) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    for (int ob = o0; ob < o1; ob += 16) {
        int w = WK_MIN(16, out - ob);
        const uint16_t *tile = Bt + (size_t)ob * r;
        __mmask16 mw = (__mmask16)((1u << WK_MIN(16, o1 - ob)) - 1);
        int ia = i0;
        for (; ia + 8 <= i1; ia += 8) t16_rows(y, out, tmp, R, tile, w, mw, r, s, ia, ob, 8);
        switch (i1 - ia) {
        case 7: t16_rows(y, out, tmp, R, tile, w, mw, r, s, ia, ob, 7); break;
        case 6: t16_rows(y, out, tmp, R, tile, w, mw, r, s, ia, ob, 6); break;
        case 5: t16_rows(y, out, tmp, R, tile, w, mw, r, s, ia, ob, 5); break;
        case 4: t16_rows(y, out, tmp, R, tile, w, mw, r, s, ia, ob, 4); break;
        case 3: t16_rows(y, out, tmp, R, tile, w, mw, r, s, ia, ob, 3); break;
        case 2: t16_rows(y, out, tmp, R, tile, w, mw, r, s, ia, ob, 2); break;
        case 1: t16_rows(y, out, tmp, R, tile, w, mw, r, s, ia, ob, 1); break;
        default: break;
        }
    }
#else
    for (int i = i0; i < i1; i++) {
        const float *t = tmp + (size_t)i * R;
        for (int ob = o0; ob < o1; ob += 16) {
            int w = WK_MIN(16, out - ob), n = WK_MIN(16, o1 - ob);
            const uint16_t *tile = Bt + (size_t)ob * r;
            float acc[16] = {0};
            for (int j = 0; j < r; j++)
                for (int l = 0; l < n; l++) acc[l] += t[j] * wk_bf16_to_f32(tile[(size_t)j * w + l]);
            for (int l = 0; l < n; l++) y[(size_t)i * out + ob + l] += s * acc[l];
        }
    }
#endif
}

/* y[rows, o0..o1) += s * tmp[rows, :r] · B[o0..o1, :r]ᵀ: tiles, or without AVX-512 for one
 * row a dot product per output. */
static void expand_block(float *y, int out, const float *tmp, int R, const float *B, int r, float s, int i0, int i1,
                         int o0, int o1) {
#ifdef __AVX512F__
    if (i1 - i0 >= 1) { /* one row too: 16 outputs a tile, no reduction per output (3x at 896 -> 4864) */
#else
    if (i1 - i0 > 1) {
#endif
        expand_tiles(y, out, tmp, R, B, r, s, i0, i1, o0, o1);
        return;
    }
    const float *t = tmp + (size_t)i0 * R;
    float *yr = y + (size_t)i0 * out;
    for (int o = o0; o < o1; o++)
        yr[o] += s * dot_long(t, B + (size_t)o * r, r);
}

static int small_seg(const int *seg, const float *const *A, const int *r, const float *scale, int g) {
    int rows = seg[g + 1] - seg[g];
    return rows > 0 && rows <= LS_ROWS_MAX && A[g] && r[g] > 0 && scale[g] != 0.f;
}

/* All small segments: shrink for every (segment, rank), then expand for every (segment, output
 * block); A16/B16 (NULL, or per segment NULL): bf16 copies read instead (B16 in tiles). */
static void fused_small(float *y, const float *x, int in, int out, int nseg, const int *seg, const float *const *A,
                        const float *const *B, const uint16_t *const *A16, const uint16_t *const *B16, const int *r,
                        const float *scale, float *tmp, int R, size_t work) {
    int nob = (out + LS_OB - 1) / LS_OB;
#pragma omp parallel if (work > LS_SERIAL)
    {
#pragma omp for collapse(2) schedule(guided)
        for (int g = 0; g < nseg; g++)
            for (int j = 0; j < R; j++) {
                if (j >= r[g] || !small_seg(seg, A, r, scale, g)) continue;
                const float *a = A[g] + (size_t)j * in;
                const uint16_t *ah = A16 && A16[g] ? A16[g] + (size_t)j * in : NULL;
                int i = seg[g];
                for (float o[4]; i + 4 <= seg[g + 1]; i += 4) { /* four rows a pass over A's row */
                    if (ah) dot4_any(x + (size_t)i * in, in, ah, in, 1, o);
                    else dot4_any(x + (size_t)i * in, in, a, in, 0, o);
                    for (int k = 0; k < 4; k++) tmp[(size_t)(i + k) * R + j] = o[k];
                }
                for (; i < seg[g + 1]; i++)
                    tmp[(size_t)i * R + j] = ah ? dot_long_h(x + (size_t)i * in, ah, in) : dot_long(x + (size_t)i * in, a, in);
            }
#pragma omp for collapse(2) schedule(guided)
        for (int g = 0; g < nseg; g++)
            for (int b = 0; b < nob; b++) {
                if (!small_seg(seg, A, r, scale, g)) continue;
                if (B16 && B16[g])
                    expand_t16(y, out, tmp, R, B16[g], r[g], scale[g], seg[g], seg[g + 1], b * LS_OB,
                               WK_MIN(out, (b + 1) * LS_OB));
                else
                    expand_block(y, out, tmp, R, B[g], r[g], scale[g], seg[g], seg[g + 1], b * LS_OB,
                                 WK_MIN(out, (b + 1) * LS_OB));
            }
    }
}

void wk_cpu_lora_seg16(wk_backend *be, float *y, const float *x, int n, int in, int out, int nseg, const int *seg,
                       const float *const *A, const float *const *B, const uint16_t *const *A16,
                       const uint16_t *const *B16, const int *r, const float *scale, float *tmp) {
    int R = 0, nsmall = 0;
    size_t work = 0;
    for (int g = 0; g < nseg; g++) {
        R = WK_MAX(R, r[g]);
        if (small_seg(seg, A, r, scale, g)) nsmall++, work += (size_t)(seg[g + 1] - seg[g]) * r[g] * (in + out);
    }
    if (nsmall) fused_small(y, x, in, out, nseg, seg, A, B, A16, B16, r, scale, tmp, R, work);
    for (int g = 0; g < nseg; g++) /* large segments: the generic op (two sgemm calls; tmp is free again) */
        if (seg[g + 1] - seg[g] > LS_ROWS_MAX)
            wk_lora_seg_generic(be, y, x, n, in, out, 1, seg + g, A + g, B + g, r + g, scale + g, tmp);
}

void wk_cpu_lora_seg(wk_backend *be, float *y, const float *x, int n, int in, int out, int nseg, const int *seg,
                     const float *const *A, const float *const *B, const int *r, const float *scale, float *tmp) {
    wk_cpu_lora_seg16(be, y, x, n, in, out, nseg, seg, A, B, NULL, NULL, r, scale, tmp);
}
