/*
 * quant_matmul.c — y[n,out] = x[n,in]·Wᵀ with W kept in a ggml block format.
 *
 * For Q8_0, Q4_0, Q4_1, Q4_K and Q6_K the activations are first quantized to 8 bits per
 * 32-element block (xq: float scale d, int sum of the quants s, int8 q[32]) — the
 * scheme of ggml's vec_dot_q4_1_q8_1 — and each weight block then costs one int8 dot
 * product (AVX512-VNNI vpdpbusd on 256-bit lanes, AVX2 maddubs otherwise, scalar
 * without AVX2) plus one float multiply-add:
 *   Q8_0:  d_w·d_x·Σ q_w q_x
 *   Q4_0:  d_w·d_x·(Σ q_w q_x − 8·s_x)                    (q_w in 0..15, unsigned)
 *   Q4_1:  d_w·d_x·Σ q_w q_x + m_w·d_x·s_x
 *   Q4_K:  Σ_j d·sc_j·d_xj·Σ q_w q_x − dmin·m_j·d_xj·s_xj   (j = 32-element sub-block)
 *   Q6_K:  Σ_j d·sc_j·d_x·(Σ q_w q_x − 32·Σ q_x)             (j = 16-element sub-block)
 * The error against the float reference is that of quantizing x to 8 bits (relative
 * ~1/254 per element, averaging out over a row); tests/test_quant.c bounds it.
 * BF16 widens the weights and does fp32 FMAs; the other types dequantize one row
 * into a per-thread buffer and take an fp32 dot. OpenMP splits output rows.
 * From n = WK_QMM_GEMM_MIN_N rows of x on (prefill), the weights are instead
 * dequantized tile by tile into fp32 and multiplied with BLAS sgemm: the decode
 * cost is then shared by all n rows and x is not quantized.
 */
#include "quant.h"
#include <math.h>
#include <cblas.h>
#include <omp.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

typedef struct {
    float d;   /* scale: x ≈ d·q */
    float ds;  /* d·Σ q */
    int32_t s; /* Σ q */
    int8_t q[32];
} xq_blk;

/* Quantizes n floats (n % 32 == 0) to xq blocks: d = absmax/127, q = round-half-even(x/d). */
static void quantize_x(const float *x, int64_t n, xq_blk *out) {
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.f, id = d ? 1.f / d : 0.f;
        int s = 0;
        for (int j = 0; j < 32; j++) {
            int q = wk_nearest_int(x[j] * id);
            out[b].q[j] = (int8_t)q;
            s += q;
        }
        out[b].d = d;
        out[b].ds = d * (float)s;
        out[b].s = s;
    }
}

static inline float h2f(const uint8_t *p) {
#if defined(__F16C__)
    return _cvtsh_ss((unsigned short)(p[0] | p[1] << 8));
#else
    return wk_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
#endif
}

/* Up to XT rows of x share each decoded weight block. */
#define XT 4

static void k4_scale_min(int j, const uint8_t *q, int *d, int *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

#if defined(__AVX2__)
/* Σ over 4-byte groups of u·s (u unsigned 8-bit, s signed 8-bit) into 8 int32 lanes, added to acc. */
static inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}
static inline float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}
/* 16 packed bytes -> 32 nibbles: low nibbles in bytes 0..15, high in 16..31. */
static inline __m256i nibbles32(const uint8_t *p) {
    __m128i q = _mm_loadu_si128((const __m128i *)p), m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
}
static inline __m256i ldx(const xq_blk *x) { return _mm256_loadu_si256((const __m256i *)x->q); }

/* Q8_0 / Q4_0 / Q4_1 rows (type t, nb 32-blocks) against nx <= XT rows of x (xs blocks apart).
 * Always inlined with constant t and nx (see dots_b32) so the accumulators live in registers. */
static inline __attribute__((always_inline)) void dots_b32_k(int t, const uint8_t *w, const xq_blk *x, int64_t xs, int nx,
                                                            int64_t nb, float *out) {
    __m256 acc[XT];
    float corr[XT] = {0};
    for (int i = 0; i < XT; i++) acc[i] = _mm256_setzero_ps();
    const int bsz = t == WK_Q_Q8_0 ? 34 : t == WK_Q_Q4_0 ? 18 : 20;
    for (int64_t b = 0; b < nb; b++, w += bsz) {
        float dw = h2f(w), mw = t == WK_Q_Q4_1 ? h2f(w + 2) : 0;
        __m256i u, sgn = _mm256_setzero_si256();
        if (t == WK_Q_Q8_0) {
            sgn = _mm256_loadu_si256((const __m256i *)(w + 2));
            u = _mm256_sign_epi8(sgn, sgn);
        } else {
            u = nibbles32(w + (t == WK_Q_Q4_0 ? 2 : 4));
        }
        for (int i = 0; i < XT; i++) {
            if (i >= nx) break;
            const xq_blk *xb = x + i * xs + b;
            __m256i sx = t == WK_Q_Q8_0 ? _mm256_sign_epi8(ldx(xb), sgn) : ldx(xb);
            __m256i p = dot_u8s8(_mm256_setzero_si256(), u, sx);
            if (t == WK_Q_Q4_0) p = _mm256_sub_epi32(p, _mm256_castsi128_si256(_mm_cvtsi32_si128(8 * xb->s)));
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * xb->d), acc[i]);
            if (t == WK_Q_Q4_1) corr[i] += mw * xb->ds;
        }
    }
    for (int i = 0; i < nx; i++) out[i] = hsum8(acc[i]) + corr[i];
}

/* Copies of dots_b32_k specialised for each type and x-tile height. */
static void dots_q8_0(const uint8_t *w, const xq_blk *x, int64_t xs, int nx, int64_t nb, float *out) {
    switch (nx) {
    case 1: dots_b32_k(WK_Q_Q8_0, w, x, xs, 1, nb, out); break;
    case 2: dots_b32_k(WK_Q_Q8_0, w, x, xs, 2, nb, out); break;
    case 3: dots_b32_k(WK_Q_Q8_0, w, x, xs, 3, nb, out); break;
    default: dots_b32_k(WK_Q_Q8_0, w, x, xs, 4, nb, out); break;
    }
}
static void dots_q4_0(const uint8_t *w, const xq_blk *x, int64_t xs, int nx, int64_t nb, float *out) {
    switch (nx) {
    case 1: dots_b32_k(WK_Q_Q4_0, w, x, xs, 1, nb, out); break;
    case 2: dots_b32_k(WK_Q_Q4_0, w, x, xs, 2, nb, out); break;
    case 3: dots_b32_k(WK_Q_Q4_0, w, x, xs, 3, nb, out); break;
    default: dots_b32_k(WK_Q_Q4_0, w, x, xs, 4, nb, out); break;
    }
}
static void dots_q4_1(const uint8_t *w, const xq_blk *x, int64_t xs, int nx, int64_t nb, float *out) {
    switch (nx) {
    case 1: dots_b32_k(WK_Q_Q4_1, w, x, xs, 1, nb, out); break;
    case 2: dots_b32_k(WK_Q_Q4_1, w, x, xs, 2, nb, out); break;
    case 3: dots_b32_k(WK_Q_Q4_1, w, x, xs, 3, nb, out); break;
    default: dots_b32_k(WK_Q_Q4_1, w, x, xs, 4, nb, out); break;
    }
}
static void dots_b32(int t, const uint8_t *w, const xq_blk *x, int64_t xs, int nx, int64_t nb, float *out) {
    if (t == WK_Q_Q8_0) dots_q8_0(w, x, xs, nx, nb, out);
    else if (t == WK_Q_Q4_0) dots_q4_0(w, x, xs, nx, nb, out);
    else dots_q4_1(w, x, xs, nx, nb, out);
}

/* Q4_K rows (nsb 256-superblocks) against nx <= XT rows of x; inlined with constant nx. */
static inline __attribute__((always_inline)) void dots_q4_k_k(const uint8_t *w, const xq_blk *x, int64_t xs, int nx,
                                                             int64_t nsb, float *out) {
    __m256 acc[XT];
    float macc[XT] = {0};
    for (int i = 0; i < XT; i++) acc[i] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t b = 0; b < nsb; b++, w += 144) {
        float d = h2f(w), dmin = h2f(w + 2);
        int sc[8], mn[8];
        for (int j = 0; j < 8; j++) k4_scale_min(j, w + 4, &sc[j], &mn[j]);
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * c));
            __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            for (int i = 0; i < XT; i++) {
                if (i >= nx) break;
                const xq_blk *x0 = x + i * xs + 8 * b + 2 * c, *x1 = x0 + 1;
                __m256 p0 = _mm256_cvtepi32_ps(dot_u8s8(_mm256_setzero_si256(), lo, ldx(x0)));
                __m256 p1 = _mm256_cvtepi32_ps(dot_u8s8(_mm256_setzero_si256(), hi, ldx(x1)));
                acc[i] = _mm256_fmadd_ps(p0, _mm256_set1_ps(d * sc[2 * c] * x0->d), acc[i]);
                acc[i] = _mm256_fmadd_ps(p1, _mm256_set1_ps(d * sc[2 * c + 1] * x1->d), acc[i]);
                macc[i] += dmin * (mn[2 * c] * x0->ds + mn[2 * c + 1] * x1->ds);
            }
        }
    }
    for (int i = 0; i < nx; i++) out[i] = hsum8(acc[i]) - macc[i];
}
static void dots_q4_k(const uint8_t *w, const xq_blk *x, int64_t xs, int nx, int64_t nsb, float *out) {
    switch (nx) {
    case 1: dots_q4_k_k(w, x, xs, 1, nsb, out); break;
    case 2: dots_q4_k_k(w, x, xs, 2, nsb, out); break;
    case 3: dots_q4_k_k(w, x, xs, 3, nsb, out); break;
    default: dots_q4_k_k(w, x, xs, 4, nsb, out); break;
    }
}

/* Q6_K rows against nx <= XT rows of x. 32-element group g of each 128-half: low 4 bits
 * from ql[32·(g&1) + l] (low nibble for g < 2), high 2 bits from qh[l] >> 2g; q in 0..63
 * stands for q − 32 (subtracted as 32·Σx per 4-byte lane); lanes 0-3 and 4-7 of the int
 * dot are the two 16-element halves with their own int8 scales. */
static inline __attribute__((always_inline)) void dots_q6_k_k(const uint8_t *w, const xq_blk *x, int64_t xs, int nx,
                                                             int64_t nsb, float *out) {
    __m256 acc[XT];
    for (int i = 0; i < XT; i++) acc[i] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3), ones = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < nsb; b++, w += 210) {
        const int8_t *sc = (const int8_t *)(w + 192);
        float d = h2f(w + 208);
        for (int h = 0; h < 2; h++) {
            __m256i ql0 = _mm256_loadu_si256((const __m256i *)(w + 64 * h)), ql1 = _mm256_loadu_si256((const __m256i *)(w + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(w + 128 + 32 * h));
            for (int g = 0; g < 4; g++) {
                __m256i lo = g == 0 ? _mm256_and_si256(ql0, m4) : g == 1 ? _mm256_and_si256(ql1, m4)
                           : g == 2 ? _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4) : _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), m2);
                __m256i q = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
                const int8_t *s = sc + 8 * h + 2 * g;
                __m256 sv = _mm256_set_m128(_mm_set1_ps(d * s[1]), _mm_set1_ps(d * s[0]));
                for (int i = 0; i < XT; i++) {
                    if (i >= nx) break;
                    const xq_blk *xb = x + i * xs + 8 * b + 4 * h + g;
                    __m256i xv = ldx(xb);
                    __m256i p = _mm256_sub_epi32(dot_u8s8(_mm256_setzero_si256(), q, xv),
                                                 _mm256_slli_epi32(dot_u8s8(_mm256_setzero_si256(), ones, xv), 5));
                    acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(sv, _mm256_set1_ps(xb->d)), acc[i]);
                }
            }
        }
    }
    for (int i = 0; i < nx; i++) out[i] = hsum8(acc[i]);
}
static void dots_q6_k(const uint8_t *w, const xq_blk *x, int64_t xs, int nx, int64_t nsb, float *out) {
    switch (nx) {
    case 1: dots_q6_k_k(w, x, xs, 1, nsb, out); break;
    case 2: dots_q6_k_k(w, x, xs, 2, nsb, out); break;
    case 3: dots_q6_k_k(w, x, xs, 3, nsb, out); break;
    default: dots_q6_k_k(w, x, xs, 4, nsb, out); break;
    }
}
#else
/* Scalar versions: the quants of block b of w as integers (0..15 or -128..127). */
static void unpack_b32(int t, const uint8_t *blk, int *q) {
    if (t == WK_Q_Q8_0) { for (int j = 0; j < 32; j++) q[j] = (int8_t)blk[2 + j]; return; }
    const uint8_t *qs = blk + (t == WK_Q_Q4_0 ? 2 : 4);
    for (int j = 0; j < 16; j++) { q[j] = qs[j] & 0xF; q[j + 16] = qs[j] >> 4; }
}
static int32_t idot(const int *q, const int8_t *x) {
    int32_t s = 0;
    for (int j = 0; j < 32; j++) s += q[j] * x[j];
    return s;
}
static void dots_b32(int t, const uint8_t *w, const xq_blk *x, int64_t xs, int nx, int64_t nb, float *out) {
    const int bsz = t == WK_Q_Q8_0 ? 34 : t == WK_Q_Q4_0 ? 18 : 20;
    for (int i = 0; i < nx; i++) out[i] = 0;
    int q[32];
    for (int64_t b = 0; b < nb; b++, w += bsz) {
        unpack_b32(t, w, q);
        float dw = h2f(w);
        for (int i = 0; i < nx; i++) {
            const xq_blk *xb = x + i * xs + b;
            int32_t p = idot(q, xb->q) - (t == WK_Q_Q4_0 ? 8 * xb->s : 0);
            out[i] += dw * xb->d * (float)p + (t == WK_Q_Q4_1 ? h2f(w + 2) * xb->ds : 0.f);
        }
    }
}
static void dots_q4_k(const uint8_t *w, const xq_blk *x, int64_t xs, int nx, int64_t nsb, float *out) {
    for (int i = 0; i < nx; i++) out[i] = 0;
    int lo[32], hi[32];
    for (int64_t b = 0; b < nsb; b++, w += 144) {
        float d = h2f(w), dmin = h2f(w + 2);
        for (int c = 0; c < 4; c++) {
            int sc0, m0, sc1, m1;
            k4_scale_min(2 * c, w + 4, &sc0, &m0);
            k4_scale_min(2 * c + 1, w + 4, &sc1, &m1);
            for (int l = 0; l < 32; l++) { lo[l] = w[16 + 32 * c + l] & 0xF; hi[l] = w[16 + 32 * c + l] >> 4; }
            for (int i = 0; i < nx; i++) {
                const xq_blk *x0 = x + i * xs + 8 * b + 2 * c, *x1 = x0 + 1;
                out[i] += d * (sc0 * x0->d * (float)idot(lo, x0->q) + sc1 * x1->d * (float)idot(hi, x1->q)) -
                          dmin * (m0 * x0->ds + m1 * x1->ds);
            }
        }
    }
}
static void dots_q6_k(const uint8_t *w, const xq_blk *x, int64_t xs, int nx, int64_t nsb, float *out) {
    for (int i = 0; i < nx; i++) out[i] = 0;
    int q[32];
    for (int64_t b = 0; b < nsb; b++, w += 210) {
        const int8_t *sc = (const int8_t *)(w + 192);
        float d = h2f(w + 208);
        for (int h = 0; h < 2; h++)
            for (int g = 0; g < 4; g++) {
                for (int l = 0; l < 32; l++) {
                    uint8_t lb = w[64 * h + 32 * (g & 1) + l];
                    q[l] = ((g < 2 ? lb & 0xF : lb >> 4) | ((w[128 + 32 * h + l] >> (2 * g)) & 3) << 4) - 32;
                }
                for (int i = 0; i < nx; i++) {
                    const xq_blk *xb = x + i * xs + 8 * b + 4 * h + g;
                    int32_t s0 = 0, s1 = 0;
                    for (int l = 0; l < 16; l++) { s0 += q[l] * xb->q[l]; s1 += q[l + 16] * xb->q[l + 16]; }
                    out[i] += d * xb->d * ((float)sc[8 * h + 2 * g] * (float)s0 + (float)sc[8 * h + 2 * g + 1] * (float)s1);
                }
            }
    }
}
#endif

/* fp32 dot of n floats; weights given as f32 or bf16. */
static float dot_f32(const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    float s = 0;
#if defined(__AVX512F__)
    __m512 acc = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
    s = _mm512_reduce_add_ps(acc);
#endif
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}
static float dot_bf16(const uint16_t *w, const float *x, int64_t n) {
    int64_t i = 0;
    float s = 0;
#if defined(__AVX512F__)
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        __m512i a = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + i)));
        __m512i b = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + i + 16)));
        acc0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(a, 16)), _mm512_loadu_ps(x + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(b, 16)), _mm512_loadu_ps(x + i + 16), acc1);
    }
    s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
#endif
    for (; i < n; i++) s += wk_bf16_to_f32(w[i]) * x[i];
    return s;
}

static bool uses_xq(int t) { return t == WK_Q_Q8_0 || t == WK_Q_Q4_0 || t == WK_Q_Q4_1 || t == WK_Q_Q4_K || t == WK_Q_Q6_K; }

/* One weight row against nx <= XT rows of quantized x. */
static void row_dots_xq(int t, const uint8_t *w, const xq_blk *x, int64_t xs, int nx, int64_t in, float *out) {
    if (t == WK_Q_Q4_K) dots_q4_k(w, x, xs, nx, in / WK_QK_K, out);
    else if (t == WK_Q_Q6_K) dots_q6_k(w, x, xs, nx, in / WK_QK_K, out);
    else dots_b32(t, w, x, xs, nx, in / 32, out);
}

static wick_status check_args(int64_t n, int64_t in, int t, int64_t out, size_t *row_bytes) {
    if (!wk_qtype_can_dequant(t))
        return wk_err(WICK_EUNSUPPORTED, "quantized matmul: weight type %s not supported", wk_qtype_name(t) ? wk_qtype_name(t) : "?");
    *row_bytes = wk_qtype_row_bytes(t, in);
    if (n < 0 || out < 0 || *row_bytes == 0)
        return wk_err(WICK_EINVAL, "quantized matmul: in=%lld must be a positive multiple of %s's block %d",
                      (long long)in, wk_qtype_name(t), wk_qtype_block(t));
    return WICK_OK;
}

/* wk_dequant_row with AVX2 for Q8_0/Q4_0/Q4_1 (same products and sums as the reference,
 * no FMA) and BF16/F16 (exact widening): bit-identical. */
static void dequant_row_fast(int t, const uint8_t *src, float *dst, int64_t n) {
#if defined(__AVX2__)
    if (t == WK_Q_Q8_0 || t == WK_Q_Q4_0 || t == WK_Q_Q4_1) {
        const int bsz = t == WK_Q_Q8_0 ? 34 : t == WK_Q_Q4_0 ? 18 : 20;
        for (int64_t b = 0; b < n / 32; b++, src += bsz, dst += 32) {
            __m256 d = _mm256_set1_ps(h2f(src)), m = _mm256_set1_ps(t == WK_Q_Q4_1 ? h2f(src + 2) : 0.f);
            __m256i q = t == WK_Q_Q8_0 ? _mm256_loadu_si256((const __m256i *)(src + 2)) : nibbles32(src + (t == WK_Q_Q4_0 ? 2 : 4));
            if (t == WK_Q_Q4_0) q = _mm256_sub_epi8(q, _mm256_set1_epi8(8));
            for (int k = 0; k < 4; k++) {
                __m128i q8 = _mm_loadl_epi64((const __m128i *)((const uint8_t *)&q + 8 * k));
                __m256 f = _mm256_cvtepi32_ps(t == WK_Q_Q4_1 ? _mm256_cvtepu8_epi32(q8) : _mm256_cvtepi8_epi32(q8));
                f = _mm256_mul_ps(f, d);
                _mm256_storeu_ps(dst + 8 * k, t == WK_Q_Q4_1 ? _mm256_add_ps(f, m) : f);
            }
        }
        return;
    }
    if ((t == WK_Q_BF16 || t == WK_Q_F16) && n % 8 == 0) {
        for (int64_t i = 0; i < n; i += 8) {
            __m128i h = _mm_loadu_si128((const __m128i *)(src + 2 * i));
            __m256 f = t == WK_Q_BF16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)) : _mm256_cvtph_ps(h);
            _mm256_storeu_ps(dst + i, f);
        }
        return;
    }
#endif
    wk_dequant_row(t, src, dst, n);
}

/* n >= WK_QMM_GEMM_MIN_N: tiles of rows dequantized to f32 (in parallel), then BLAS sgemm. */
static wick_status qmatmul_gemm(float *y, const float *x, int64_t n, int64_t in, const uint8_t *W, int t, int64_t out,
                                size_t rb, int nt) {
    int64_t tile = WK_MAX(64, WK_MIN(out, ((int64_t)4 << 20) / in));
    float *buf = wk_malloc((size_t)tile * (size_t)in * sizeof(float), "dequantized weight tile");
    if (!buf) return WICK_ENOMEM;
    for (int64_t o0 = 0; o0 < out; o0 += tile) {
        int64_t rows = WK_MIN(tile, out - o0);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t r = 0; r < rows; r++) dequant_row_fast(t, W + (size_t)(o0 + r) * rb, buf + (size_t)r * in, in);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)rows, (int)in, 1.f, x, (int)in, buf, (int)in, 0.f,
                    y + o0, (int)out);
    }
    wk_free(buf);
    return WICK_OK;
}

wick_status wk_qmatmul(float *y, const float *x, int64_t n, int64_t in, const void *w, int t, int64_t out) {
    size_t rb = 0;
    wick_status st = check_args(n, in, t, out, &rb);
    if (st) return st;
    const uint8_t *W = w;
    int nt = wick_get_threads();
    if (n >= WK_QMM_GEMM_MIN_N && t != WK_Q_F32 && n <= INT32_MAX && in <= INT32_MAX && out <= INT32_MAX)
        return qmatmul_gemm(y, x, n, in, W, t, out, rb, nt);
    if (uses_xq(t) && in % 32 == 0) {
        xq_blk *xq = wk_malloc((size_t)(n * (in / 32)) * sizeof(xq_blk), "quantized activations");
        if (!xq) return WICK_ENOMEM;
#pragma omp parallel for num_threads(nt) schedule(static) if (n > 1)
        for (int64_t i = 0; i < n; i++) quantize_x(x + i * in, in, xq + i * (in / 32));
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t r = 0; r < out; r++)
            for (int64_t i = 0; i < n; i += XT) {
                float o[XT];
                int nx = (int)WK_MIN(XT, n - i);
                row_dots_xq(t, W + r * rb, xq + i * (in / 32), in / 32, nx, in, o);
                for (int k = 0; k < nx; k++) y[(i + k) * out + r] = o[k];
            }
        wk_free(xq);
        return WICK_OK;
    }
    if (t == WK_Q_F32 || t == WK_Q_BF16) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t r = 0; r < out; r++)
            for (int64_t i = 0; i < n; i++)
                y[i * out + r] = t == WK_Q_F32 ? dot_f32((const float *)(W + r * rb), x + i * in, in)
                                               : dot_bf16((const uint16_t *)(W + r * rb), x + i * in, in);
        return WICK_OK;
    }
    float *buf = wk_malloc((size_t)nt * (size_t)in * sizeof(float), "dequantized rows");
    if (!buf) return WICK_ENOMEM;
#pragma omp parallel num_threads(nt)
    {
        float *row = buf + (size_t)omp_get_thread_num() * (size_t)in;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < out; r++) {
            wk_dequant_row(t, W + r * rb, row, in);
            for (int64_t i = 0; i < n; i++) y[i * out + r] = dot_f32(row, x + i * in, in);
        }
    }
    wk_free(buf);
    return WICK_OK;
}

wick_status wk_qmatmul_ref(float *y, const float *x, int64_t n, int64_t in, const void *w, int t, int64_t out) {
    size_t rb = 0;
    wick_status st = check_args(n, in, t, out, &rb);
    if (st) return st;
    float *row = wk_malloc((size_t)in * sizeof(float), "dequantized row");
    if (!row) return WICK_ENOMEM;
    for (int64_t r = 0; r < out; r++) {
        wk_dequant_row(t, (const uint8_t *)w + r * rb, row, in);
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int64_t k = 0; k < in; k++) s += (double)row[k] * x[i * in + k];
            y[i * out + r] = (float)s;
        }
    }
    wk_free(row);
    return WICK_OK;
}

wick_status wk_qmatmul_t(float *y, const float *x, int64_t n, int64_t out, const void *w, int t, int64_t in, int accumulate) {
    size_t rb = 0;
    wick_status st = check_args(n, in, t, out, &rb);
    if (st) return st;
    if (n > INT32_MAX || in > INT32_MAX || out > INT32_MAX)
        return wk_err(WICK_EINVAL, "quantized matmul_t: dimensions beyond 2^31");
    if (n == 0 || in == 0) return WICK_OK;
    const uint8_t *W = w;
    int nt = wick_get_threads();
    int64_t tile = WK_MAX(64, WK_MIN(out, ((int64_t)4 << 20) / in));
    float *buf = t == WK_Q_F32 ? NULL : wk_malloc((size_t)tile * (size_t)in * sizeof(float), "dequantized weight tile");
    if (t != WK_Q_F32 && !buf) return WICK_ENOMEM;
    if (out == 0 && !accumulate) memset(y, 0, sizeof(float) * (size_t)(n * in));
    for (int64_t o0 = 0; o0 < out; o0 += tile) {
        int64_t rows = WK_MIN(tile, out - o0);
        const float *B = (const float *)(W + (size_t)o0 * rb);
        if (buf) {
#pragma omp parallel for num_threads(nt) schedule(static)
            for (int64_t r = 0; r < rows; r++) dequant_row_fast(t, W + (size_t)(o0 + r) * rb, buf + (size_t)r * in, in);
            B = buf;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)in, (int)rows, 1.f, x + o0, (int)out, B, (int)in,
                    (o0 == 0 && !accumulate) ? 0.f : 1.f, y, (int)in);
    }
    wk_free(buf);
    return WICK_OK;
}

wick_status wk_qmatmul_t_ref(float *y, const float *x, int64_t n, int64_t out, const void *w, int t, int64_t in,
                             int accumulate) {
    size_t rb = 0;
    wick_status st = check_args(n, in, t, out, &rb);
    if (st) return st;
    float *Wf = wk_malloc((size_t)(out * in + 1) * sizeof(float), "dequantized weights");
    if (!Wf) return WICK_ENOMEM;
    for (int64_t r = 0; r < out; r++) wk_dequant_row(t, (const uint8_t *)w + r * rb, Wf + r * in, in);
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < in; k++) {
            double s = 0;
            for (int64_t r = 0; r < out; r++) s += (double)x[i * out + r] * Wf[r * in + k];
            y[i * in + k] = (float)(accumulate ? y[i * in + k] + s : s);
        }
    wk_free(Wf);
    return WICK_OK;
}
