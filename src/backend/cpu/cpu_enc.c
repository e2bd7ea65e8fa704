/*
 * cpu_enc.c — fast encoder ops for the CPU backend: LayerNorm, GELU and
 * bidirectional masked attention. Loops are written so the compiler vectorises
 * them (omp simd); exp and erf use branch-free polynomial forms (Cephes expf,
 * Abramowitz-Stegun 7.1.26 erf: the form PyTorch's vectorised CPU GELU uses,
 * max error 1.5e-7). Rows / (sequence, head) pairs are spread over OpenMP threads.
 */
#include "backend/cpu/enc_ops.h"

#include <math.h>
#include <omp.h>
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
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

static inline float gelu1(float x) {
    float z = x * 0.70710678118654752f, a = fabsf(z);
    float t = 1.f / (1.f + 0.3275911f * a);
    float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
    float e = 1.f - poly * exp_nonpos(-a * a);
    e = z < 0 ? -e : e;
    return 0.5f * x * (1.f + e);
}

void wk_cpu_gelu(wk_backend *be, float *y, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) y[i] = gelu1(x[i]);
}

static void layernorm_row(float *y, const float *x, const float *r, const float *w, const float *b, int dim, float eps) {
    float mean = 0, var = 0;
    if (r) {
#pragma omp simd
        for (int j = 0; j < dim; j++) y[j] = x[j] + r[j];
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

void wk_cpu_layernorm(wk_backend *be, float *y, const float *x, const float *r, const float *w, const float *b, int n,
                      int dim, float eps) {
#pragma omp parallel for schedule(static) if (n > 4)
    for (int i = 0; i < n; i++) {
        size_t o = (size_t)i * dim;
        layernorm_row(y + o, x + o, r ? r + o : NULL, w, b, dim, eps);
    }
}

/* A per-thread buffer that only grows. */
static float *enc_scratch(size_t n) {
    static _Thread_local float *buf;
    static _Thread_local size_t cap;
    if (n > cap) {
        free(buf);
        cap = n + n / 2;
        if (posix_memalign((void **)&buf, 64, cap * sizeof(float)) != 0) buf = NULL, cap = 0;
    }
    return buf;
}

/* One (sequence, head): gathers the real keys/values into contiguous K,V [nk,D], then
 * for every query row: scores, softmax, weighted sum of V. */
static void attend_head(float *out, const float *q, const float *k, const float *v, const int32_t *mask, int T, int D,
                        int ld, float scale, float *buf) {
    float *K = buf, *V = buf + (size_t)T * D, *p = buf + (size_t)2 * T * D;
    int nk = 0;
    for (int j = 0; j < T; j++) {
        if (mask && !mask[j]) continue;
        memcpy(K + (size_t)nk * D, k + (size_t)j * ld, sizeof(float) * D);
        memcpy(V + (size_t)nk * D, v + (size_t)j * ld, sizeof(float) * D);
        nk++;
    }
    for (int i = 0; i < T; i++) {
        const float *qi = q + (size_t)i * ld;
        float mx = -INFINITY, sum = 0;
        for (int j = 0; j < nk; j++) {
            const float *kj = K + (size_t)j * D;
            float s = 0;
#pragma omp simd reduction(+ : s)
            for (int d = 0; d < D; d++) s += qi[d] * kj[d];
            p[j] = s * scale;
            mx = p[j] > mx ? p[j] : mx;
        }
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < nk; j++) sum += p[j] = exp_nonpos(p[j] - mx);
        float inv = 1.f / sum, *o = out + (size_t)i * ld;
        for (int d = 0; d < D; d++) o[d] = 0;
        for (int j = 0; j < nk; j++) {
            const float *vj = V + (size_t)j * D;
            float pj = p[j] * inv;
#pragma omp simd
            for (int d = 0; d < D; d++) o[d] += pj * vj[d];
        }
    }
}

void wk_cpu_attention_bidir(wk_backend *be, float *out, const float *q, const float *k, const float *v,
                            const int32_t *mask, int B, int T, int H, int D, int ld, float scale) {
#pragma omp parallel
    {
        float *buf = enc_scratch((size_t)2 * T * D + (size_t)T);
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                size_t off = (size_t)b * T * ld + (size_t)h * D;
                attend_head(out + off, q + off, k + off, v + off, mask ? mask + (size_t)b * T : NULL, T, D, ld, scale,
                            buf);
            }
    }
}
