/*
 * cpu_enc.c — fast encoder ops for the CPU backend: LayerNorm, GELU and
 * bidirectional masked attention. Loops are written so the compiler vectorises
 * them (omp simd; AVX2 intrinsics for exp and GELU); exp and erf use branch-free polynomial forms (Cephes expf,
 * Abramowitz-Stegun 7.1.26 erf: the form PyTorch's vectorised CPU GELU uses,
 * max error 1.5e-7). Rows / (sequence, head) pairs are spread over OpenMP threads.
 */
#include "backend/cpu/enc_ops.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>

/* e^x for x <= 0 (clamped at -87, where the result is below FLT_MIN anyway). */
static inline float exp_nonpos(float x) {
    x = x < -87.f ? -87.f : x;
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.f;
    union { int32_t i; float f; } scale = {.i = ((int32_t)n + 127) << 23};
    return p * scale.f;
}

static inline float gelu1(float x) {
    float z = x * 0.70710678118654752f, a = fabsf(z);
    float t = 1.f / (1.f + 0.3275911f * a);
    float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
    float e = 1.f - poly * exp_nonpos(-a * a);
    e = z < 0 ? -e : e;
    return 0.5f * x * (1.f + e);
}

#ifdef __AVX2__
/* 8 lanes of exp_nonpos. */
static inline __m256 exp8_nonpos(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.f));
    __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline __m256 gelu8(__m256 x) {
    __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f));
    __m256 sign = _mm256_and_ps(z, _mm256_set1_ps(-0.f)), a = _mm256_andnot_ps(_mm256_set1_ps(-0.f), z);
    __m256 t = _mm256_div_ps(_mm256_set1_ps(1.f), _mm256_fmadd_ps(a, _mm256_set1_ps(0.3275911f), _mm256_set1_ps(1.f)));
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(1.061405429f), t, _mm256_set1_ps(-1.453152027f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
    p = _mm256_mul_ps(p, t);
    __m256 e = _mm256_fnmadd_ps(p, exp8_nonpos(_mm256_mul_ps(_mm256_xor_ps(a, _mm256_set1_ps(-0.f)), a)), _mm256_set1_ps(1.f));
    e = _mm256_or_ps(e, sign);
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.f), e));
}
#endif

static void gelu_chunk(float *y, const float *x, int n) {
    int i = 0;
#ifdef __AVX2__
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, gelu8(_mm256_loadu_ps(x + i)));
#endif
    for (; i < n; i++) y[i] = gelu1(x[i]);
}

void wk_cpu_gelu(wk_backend *be, float *y, const float *x, const float *xb, size_t n, int dim) {
    enum { CHUNK = 4096 };
    if (xb) { /* the bias first (rare: the CPU encoder adds biases in its products) */
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) y[i] = x[i] + xb[i % (size_t)dim];
        x = y;
    }
    size_t nc = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (nc > 4)
    for (size_t c = 0; c < nc; c++) {
        size_t i0 = c * CHUNK;
        int len = (int)(n - i0 < CHUNK ? n - i0 : CHUNK);
        gelu_chunk(y + i0, x + i0, len);
    }
}

static void layernorm_row(float *y, const float *x, const float *xb, const float *r, const float *w, const float *b,
                          int dim, float eps) {
    float mean = 0, var = 0;
    if (xb && r) {
#pragma omp simd
        for (int j = 0; j < dim; j++) y[j] = (x[j] + xb[j]) + r[j];
        x = y;
    } else if (xb || r) {
        const float *a = xb ? xb : r;
#pragma omp simd
        for (int j = 0; j < dim; j++) y[j] = x[j] + a[j];
        x = y;
    }
#pragma omp simd reduction(+ : mean)
    for (int j = 0; j < dim; j++) mean += x[j];
    mean /= (float)dim;
#pragma omp simd reduction(+ : var)
    for (int j = 0; j < dim; j++) var += (x[j] - mean) * (x[j] - mean);
    float inv = 1.f / sqrtf(var / (float)dim + eps);
#pragma omp simd
    for (int j = 0; j < dim; j++) y[j] = (x[j] - mean) * inv * w[j] + b[j];
}

void wk_cpu_layernorm(wk_backend *be, float *y, const float *x, const float *xb, const float *r, const float *w,
                      const float *b, int n, int dim, float eps) {
#pragma omp parallel for schedule(static) if (n > 4)
    for (int i = 0; i < n; i++) {
        size_t o = (size_t)i * dim;
        layernorm_row(y + o, x + o, xb, r ? r + o : NULL, w, b, dim, eps);
    }
}

/* A per-thread buffer that only grows; freed when its thread exits (OpenMP teams of
 * short-lived application threads), as the scratch of cpu.c. */
typedef struct {
    float *buf;
    size_t cap;
} enc_scratch_t;
static _Thread_local enc_scratch_t tls_enc;
static pthread_key_t enc_key;
static pthread_once_t enc_once = PTHREAD_ONCE_INIT;

static void enc_release(void *p) {
    enc_scratch_t *s = p;
    free(s->buf), s->buf = NULL, s->cap = 0;
}
static void enc_key_init(void) { pthread_key_create(&enc_key, enc_release); }

static float *enc_scratch(size_t n) {
    enc_scratch_t *s = &tls_enc;
    if (n > s->cap) {
        pthread_once(&enc_once, enc_key_init);
        pthread_setspecific(enc_key, s);
        free(s->buf);
        s->cap = n + n / 2;
        if (posix_memalign((void **)&s->buf, 64, s->cap * sizeof(float)) != 0) s->buf = NULL, s->cap = 0;
    }
    return s->buf;
}

/* p[0..n) = exp(p - mx), returns the sum. */
static float softmax_exp(float *p, int n, float mx) {
    float sum = 0;
    int j = 0;
#ifdef __AVX2__
    __m256 acc = _mm256_setzero_ps(), m = _mm256_set1_ps(mx);
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp8_nonpos(_mm256_sub_ps(_mm256_loadu_ps(p + j), m));
        _mm256_storeu_ps(p + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    float t[8];
    _mm256_storeu_ps(t, acc);
    for (int k = 0; k < 8; k++) sum += t[k];
#endif
    for (; j < n; j++) sum += p[j] = exp_nonpos(p[j] - mx);
    return sum;
}

/* dst[D] = src[D] (+ b[D]). */
static inline void copy_row(float *dst, const float *src, const float *b, int D) {
    if (!b) {
        memcpy(dst, src, sizeof(float) * D);
        return;
    }
#pragma omp simd
    for (int d = 0; d < D; d++) dst[d] = src[d] + b[d];
}

/* One (sequence, head): gathers the real keys and values into K, V [nk,D] (adding the head's
 * biases b[0..2] = q, k, v when given; q then goes through Q [T,D] too); then S = Q·Kᵀ·scale
 * [T,nk] and O = softmax(S)·V with single-threaded sgemm (OpenBLAS runs serially inside an
 * OpenMP region; the threads are spread over sequences x heads). buf: 3*T*D + T*T floats. */
static void attend_head(float *out, const float *q, const float *k, const float *v, const float *const b[3],
                        const int32_t *mask, int T, int D, int ld, int ldo, float scale, float *buf) {
    float *K = buf, *V = buf + (size_t)T * D, *S = buf + (size_t)2 * T * D, *Q = S + (size_t)T * T;
    int nk = 0;
    for (int j = 0; j < T; j++) {
        if (mask && !mask[j]) continue;
        copy_row(K + (size_t)nk * D, k + (size_t)j * ld, b[1], D);
        copy_row(V + (size_t)nk * D, v + (size_t)j * ld, b[2], D);
        nk++;
    }
    int ldq = ld;
    if (b[0]) {
        for (int i = 0; i < T; i++) copy_row(Q + (size_t)i * D, q + (size_t)i * ld, b[0], D);
        q = Q, ldq = D;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, nk, D, scale, q, ldq, K, D, 0.f, S, nk);
    for (int i = 0; i < T; i++) {
        float *p = S + (size_t)i * nk, mx = -INFINITY;
        for (int j = 0; j < nk; j++) mx = p[j] > mx ? p[j] : mx;
        float inv = 1.f / softmax_exp(p, nk, mx);
#pragma omp simd
        for (int j = 0; j < nk; j++) p[j] *= inv;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, nk, 1.f, S, nk, V, D, 0.f, out, ldo);
}

void wk_cpu_attention_bidir(wk_backend *be, float *out, const float *q, const float *k, const float *v,
                            const float *bias, const int32_t *mask, int B, int T, int H, int D, int ld, int ldo,
                            float scale) {
#pragma omp parallel
    {
        float *buf = enc_scratch((size_t)3 * T * D + (size_t)T * T);
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                size_t off = (size_t)b * T * ld + (size_t)h * D, oo = (size_t)b * T * ldo + (size_t)h * D;
                const float *hb[3] = {NULL, NULL, NULL};
                for (int p = 0; p < 3 && bias; p++) hb[p] = bias + (size_t)(p * H + h) * D;
                attend_head(out + oo, q + off, k + off, v + off, hb, mask ? mask + (size_t)b * T : NULL, T, D, ld, ldo,
                            scale, buf);
            }
    }
}
