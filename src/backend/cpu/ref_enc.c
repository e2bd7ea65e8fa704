/*
 * ref_enc.c — reference encoder ops: naive, single-threaded, double accumulators,
 * libm erf. The oracle that tests/test_ops_enc.c compares the fast ops with.
 */
#include "backend/cpu/enc_ops.h"

#include <math.h>
#include <stdlib.h>

void wk_ref_layernorm(wk_backend *be, float *y, const float *x, const float *r, const float *w, const float *b, int n,
                      int dim, float eps) {
    double *t = malloc(sizeof(double) * (size_t)dim);
    for (int i = 0; i < n; i++) {
        size_t o = (size_t)i * dim;
        double mean = 0, var = 0;
        for (int j = 0; j < dim; j++) mean += t[j] = (double)x[o + j] + (r ? r[o + j] : 0.0);
        mean /= dim;
        for (int j = 0; j < dim; j++) var += (t[j] - mean) * (t[j] - mean);
        double inv = 1.0 / sqrt(var / dim + eps);
        for (int j = 0; j < dim; j++) y[o + j] = (float)((t[j] - mean) * inv * w[j] + b[j]);
    }
    free(t);
}

void wk_ref_gelu(wk_backend *be, float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0))));
}

void wk_ref_attention_bidir(wk_backend *be, float *out, const float *q, const float *k, const float *v,
                            const int32_t *mask, int B, int T, int H, int D, int ld, int ldo, float scale) {
    double *p = malloc(sizeof(double) * (size_t)T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                const float *qi = q + ((size_t)b * T + i) * ld + (size_t)h * D;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    if (mask && !mask[b * T + j]) continue;
                    const float *kj = k + ((size_t)b * T + j) * ld + (size_t)h * D;
                    double s = 0;
                    for (int d = 0; d < D; d++) s += (double)qi[d] * kj[d];
                    p[j] = s * scale;
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j < T; j++)
                    if (!mask || mask[b * T + j]) sum += p[j] = exp(p[j] - mx);
                float *o = out + ((size_t)b * T + i) * ldo + (size_t)h * D;
                for (int d = 0; d < D; d++) {
                    double acc = 0;
                    for (int j = 0; j < T; j++)
                        if (!mask || mask[b * T + j]) acc += p[j] * v[((size_t)b * T + j) * ld + (size_t)h * D + d];
                    o[d] = (float)(acc / sum);
                }
            }
    free(p);
}
