/*
 * ref_enc.c — reference encoder ops: naive, single-threaded, double accumulators,
 * libm erf. The oracle that tests/test_ops_enc.c compares the fast ops with.
 */
#include "backend/cpu/enc_ops.h"

#include <math.h>
#include <stdlib.h>

void wk_ref_layernorm(wk_backend *be, float *y, const float *x, const float *xb, const float *r, const float *w,
                      const float *b, int n, int dim, float eps) {
    double *t = malloc(sizeof(double) * (size_t)dim);
    for (int i = 0; i < n; i++) {
        size_t o = (size_t)i * dim;
        double mean = 0, var = 0;
        for (int j = 0; j < dim; j++) mean += t[j] = (double)x[o + j] + (xb ? xb[j] : 0.0) + (r ? r[o + j] : 0.0);
        mean /= dim;
        for (int j = 0; j < dim; j++) var += (t[j] - mean) * (t[j] - mean);
        double inv = 1.0 / sqrt(var / dim + eps);
        for (int j = 0; j < dim; j++) y[o + j] = (float)((t[j] - mean) * inv * w[j] + b[j]);
    }
    free(t);
}

void wk_ref_gelu(wk_backend *be, float *y, const float *x, const float *xb, size_t n, int dim) {
    for (size_t i = 0; i < n; i++) {
        double u = (double)x[i] + (xb ? xb[i % (size_t)dim] : 0.0);
        y[i] = (float)(0.5 * u * (1.0 + erf(u / sqrt(2.0))));
    }
}

/* Element d of head h of row r of q (part 0), k (1) or v (2), with the fused product's bias. */
static double qkv_at(const float *p, const float *bias, int part, size_t r, int h, int d, int D, int ld, int HD) {
    return (double)p[r * ld + (size_t)h * D + d] + (bias ? bias[part * HD + h * D + d] : 0.0);
}

void wk_ref_attention_bidir(wk_backend *be, float *out, const float *q, const float *k, const float *v,
                            const float *bias, const int32_t *mask, int B, int T, int H, int D, int ld, int ldo,
                            float scale) {
    double *p = malloc(sizeof(double) * (size_t)T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    if (mask && !mask[b * T + j]) continue;
                    double s = 0;
                    for (int d = 0; d < D; d++)
                        s += qkv_at(q, bias, 0, (size_t)b * T + i, h, d, D, ld, H * D) *
                             qkv_at(k, bias, 1, (size_t)b * T + j, h, d, D, ld, H * D);
                    p[j] = s * scale;
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j < T; j++)
                    if (!mask || mask[b * T + j]) sum += p[j] = exp(p[j] - mx);
                float *o = out + ((size_t)b * T + i) * ldo + (size_t)h * D;
                for (int d = 0; d < D; d++) {
                    double acc = 0;
                    for (int j = 0; j < T; j++)
                        if (!mask || mask[b * T + j])
                            acc += p[j] * qkv_at(v, bias, 2, (size_t)b * T + j, h, d, D, ld, H * D);
                    o[d] = (float)(acc / sum);
                }
            }
    free(p);
}
