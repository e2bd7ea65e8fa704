/*
 * quant_matmul.c — y[n,out] = x[n,in]·Wᵀ with W kept in a ggml block format.
 *
 * For Q8_0, Q4_0, Q4_1 and Q4_K the activations are first quantized to 8 bits per
 * 32-element block (xq: float scale d, int sum of the quants s, int8 q[32]) — the
 * scheme of ggml's vec_dot_q4_1_q8_1 — and each weight block then costs one int8 dot
 * product (AVX512-VNNI vpdpbusd on 256-bit lanes, AVX2 maddubs otherwise, scalar
 * without AVX2) plus one float multiply-add:
 *   Q8_0:  d_w·d_x·Σ q_w q_x
 *   Q4_0:  d_w·d_x·(Σ q_w q_x − 8·s_x)                    (q_w in 0..15, unsigned)
 *   Q4_1:  d_w·d_x·Σ q_w q_x + m_w·d_x·s_x
 *   Q4_K:  Σ_j d·sc_j·d_xj·Σ q_w q_x − dmin·m_j·d_xj·s_xj   (j = 32-element sub-block)
 * The error against the float reference is that of quantizing x to 8 bits (relative
 * ~1/254 per element, averaging out over a row); tests/test_quant.c bounds it.
 * BF16 widens the weights and does fp32 FMAs; the other types dequantize one row
 * into a per-thread buffer and take an fp32 dot. OpenMP splits output rows.
 */
#include "quant.h"
#include <math.h>
#include <omp.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

typedef struct {
    float d;   /* scale: x ≈ d·q */
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
        out[b].s = s;
    }
}

static inline float h2f(const uint8_t *p) { return wk_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

#if defined(__AVX2__)
/* Σ over 4-byte groups of u·s (u unsigned 8-bit, s signed 8-bit) into 8 int32 lanes. */
static inline __m256i dot_u8s8(__m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
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
#endif

/* Integer Σ q_w·q_x over 32 elements: w unsigned (0..15 nibbles) or signed (Q8_0). */
static inline int32_t idot_u(const uint8_t *w, const int8_t *x) {
    int32_t s = 0;
    for (int j = 0; j < 32; j++) s += w[j] * x[j];
    return s;
}

static float dot_q8_0(const uint8_t *w, const xq_blk *x, int64_t nb) {
#if defined(__AVX2__)
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, w += 34) {
        __m256i qw = _mm256_loadu_si256((const __m256i *)(w + 2)), qx = _mm256_loadu_si256((const __m256i *)x[b].q);
        __m256i p = dot_u8s8(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qx, qw));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(h2f(w) * x[b].d), acc);
    }
    return hsum8(acc);
#else
    float acc = 0;
    for (int64_t b = 0; b < nb; b++, w += 34) {
        int32_t s = 0;
        for (int j = 0; j < 32; j++) s += (int8_t)w[2 + j] * x[b].q[j];
        acc += h2f(w) * x[b].d * (float)s;
    }
    return acc;
#endif
}

/* Σ_j q_w·q_x for one 32-block of 16 packed nibble bytes. */
static inline int32_t nib_dot(const uint8_t *qs, const int8_t *x) {
#if defined(__AVX2__)
    __m256i p = dot_u8s8(nibbles32(qs), _mm256_loadu_si256((const __m256i *)x));
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    r = _mm_hadd_epi32(r, r);
    return _mm_cvtsi128_si32(_mm_hadd_epi32(r, r));
#else
    uint8_t u[32];
    for (int j = 0; j < 16; j++) { u[j] = qs[j] & 0xF; u[j + 16] = qs[j] >> 4; }
    return idot_u(u, x);
#endif
}

static float dot_q4_0(const uint8_t *w, const xq_blk *x, int64_t nb) {
#if defined(__AVX2__)
    __m256 acc = _mm256_setzero_ps();
    float corr = 0;
    for (int64_t b = 0; b < nb; b++, w += 18) {
        float dd = h2f(w) * x[b].d;
        __m256i p = dot_u8s8(nibbles32(w + 2), _mm256_loadu_si256((const __m256i *)x[b].q));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dd), acc);
        corr += dd * (float)(8 * x[b].s);
    }
    return hsum8(acc) - corr;
#else
    float acc = 0;
    for (int64_t b = 0; b < nb; b++, w += 18) acc += h2f(w) * x[b].d * (float)(nib_dot(w + 2, x[b].q) - 8 * x[b].s);
    return acc;
#endif
}

static float dot_q4_1(const uint8_t *w, const xq_blk *x, int64_t nb) {
#if defined(__AVX2__)
    __m256 acc = _mm256_setzero_ps();
    float macc = 0;
    for (int64_t b = 0; b < nb; b++, w += 20) {
        __m256i p = dot_u8s8(nibbles32(w + 4), _mm256_loadu_si256((const __m256i *)x[b].q));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(h2f(w) * x[b].d), acc);
        macc += h2f(w + 2) * x[b].d * (float)x[b].s;
    }
    return hsum8(acc) + macc;
#else
    float acc = 0;
    for (int64_t b = 0; b < nb; b++, w += 20)
        acc += h2f(w) * x[b].d * (float)nib_dot(w + 4, x[b].q) + h2f(w + 2) * x[b].d * (float)x[b].s;
    return acc;
#endif
}

static void k4_scale_min(int j, const uint8_t *q, int *d, int *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K: 8 sub-blocks of 32 per 256-superblock; x blocks align with sub-blocks. */
static float dot_q4_k(const uint8_t *w, const xq_blk *x, int64_t nsb) {
    float acc = 0;
    for (int64_t b = 0; b < nsb; b++, w += 144, x += 8) {
        float d = h2f(w), dmin = h2f(w + 2), sacc = 0, macc = 0;
        const uint8_t *qs = w + 16;
#if defined(__AVX2__)
        __m256 vacc = _mm256_setzero_ps();
        const __m256i m4 = _mm256_set1_epi8(0x0F);
#endif
        for (int c = 0; c < 4; c++, qs += 32) {
            int sc0, m0, sc1, m1;
            k4_scale_min(2 * c, w + 4, &sc0, &m0);
            k4_scale_min(2 * c + 1, w + 4, &sc1, &m1);
            const xq_blk *x0 = &x[2 * c], *x1 = &x[2 * c + 1];
            macc += m0 * x0->d * (float)x0->s + m1 * x1->d * (float)x1->s;
#if defined(__AVX2__)
            __m256i q = _mm256_loadu_si256((const __m256i *)qs);
            __m256i p0 = dot_u8s8(_mm256_and_si256(q, m4), _mm256_loadu_si256((const __m256i *)x0->q));
            __m256i p1 = dot_u8s8(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), _mm256_loadu_si256((const __m256i *)x1->q));
            vacc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(sc0 * x0->d), vacc);
            vacc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(sc1 * x1->d), vacc);
#else
            uint8_t lo[32], hi[32];
            for (int l = 0; l < 32; l++) { lo[l] = qs[l] & 0xF; hi[l] = qs[l] >> 4; }
            sacc += sc0 * x0->d * (float)idot_u(lo, x0->q) + sc1 * x1->d * (float)idot_u(hi, x1->q);
#endif
        }
#if defined(__AVX2__)
        sacc = hsum8(vacc);
#endif
        acc += d * sacc - dmin * macc;
    }
    return acc;
}

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

static bool uses_xq(int t) { return t == WK_Q_Q8_0 || t == WK_Q_Q4_0 || t == WK_Q_Q4_1 || t == WK_Q_Q4_K; }

static float row_dot_xq(int t, const uint8_t *w, const xq_blk *x, int64_t in) {
    switch (t) {
    case WK_Q_Q8_0: return dot_q8_0(w, x, in / 32);
    case WK_Q_Q4_0: return dot_q4_0(w, x, in / 32);
    case WK_Q_Q4_1: return dot_q4_1(w, x, in / 32);
    default: return dot_q4_k(w, x, in / WK_QK_K);
    }
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

wick_status wk_qmatmul(float *y, const float *x, int64_t n, int64_t in, const void *w, int t, int64_t out) {
    size_t rb = 0;
    wick_status st = check_args(n, in, t, out, &rb);
    if (st) return st;
    const uint8_t *W = w;
    int nt = wick_get_threads();
    if (uses_xq(t) && in % 32 == 0) {
        xq_blk *xq = wk_malloc((size_t)(n * (in / 32)) * sizeof(xq_blk), "quantized activations");
        if (!xq) return WICK_ENOMEM;
#pragma omp parallel for num_threads(nt) schedule(static) if (n > 1)
        for (int64_t i = 0; i < n; i++) quantize_x(x + i * in, in, xq + i * (in / 32));
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t r = 0; r < out; r++)
            for (int64_t i = 0; i < n; i++) y[i * out + r] = row_dot_xq(t, W + r * rb, xq + i * (in / 32), in);
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
