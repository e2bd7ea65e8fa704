/*
 * kernels.c — reference-quality layer ops, a LoRA layer's forward/backward with
 * cblas, softmax cross-entropy and torch-semantics AdamW, for the benchmarks.
 */
#include "kernels.h"

#include <cblas.h>
#include <math.h>

void wk_bk_softmax(float *y, const float *x, int rows, int n) {
    for (int i = 0; i < rows; i++) {
        const float *xr = x + (size_t)i * n;
        float *yr = y + (size_t)i * n, mx = xr[0], sum = 0;
        for (int j = 1; j < n; j++) mx = xr[j] > mx ? xr[j] : mx;
        for (int j = 0; j < n; j++) sum += (yr[j] = expf(xr[j] - mx));
        float inv = 1.0f / sum;
        for (int j = 0; j < n; j++) yr[j] *= inv;
    }
}

void wk_bk_layer_norm(float *y, const float *x, int rows, int n, float eps) {
    for (int i = 0; i < rows; i++) {
        const float *xr = x + (size_t)i * n;
        float *yr = y + (size_t)i * n, mean = 0, var = 0;
        for (int j = 0; j < n; j++) mean += xr[j];
        mean /= (float)n;
        for (int j = 0; j < n; j++) var += (xr[j] - mean) * (xr[j] - mean);
        float inv = 1.0f / sqrtf(var / (float)n + eps);
        for (int j = 0; j < n; j++) yr[j] = (xr[j] - mean) * inv;
    }
}

void wk_bk_rms_norm(float *y, const float *x, int rows, int n, float eps) {
    for (int i = 0; i < rows; i++) {
        const float *xr = x + (size_t)i * n;
        float *yr = y + (size_t)i * n, ss = 0;
        for (int j = 0; j < n; j++) ss += xr[j] * xr[j];
        float inv = 1.0f / sqrtf(ss / (float)n + eps);
        for (int j = 0; j < n; j++) yr[j] = xr[j] * inv;
    }
}

void wk_bk_lora_forward(const wk_bk_lora *l, const float *x, float *t, float *y) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l->M, l->out, l->in, 1.0f, x, l->in, l->W, l->in, 0.0f,
                y, l->out);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l->M, l->r, l->in, 1.0f, x, l->in, l->A, l->in, 0.0f, t,
                l->r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l->M, l->out, l->r, l->s, t, l->r, l->B, l->r, 1.0f, y,
                l->out);
}

void wk_bk_lora_forward_unfused(const wk_bk_lora *l, const float *x, float *t, float *d, float *y) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l->M, l->out, l->in, 1.0f, x, l->in, l->W, l->in, 0.0f,
                y, l->out);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l->M, l->r, l->in, 1.0f, x, l->in, l->A, l->in, 0.0f, t,
                l->r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l->M, l->out, l->r, 1.0f, t, l->r, l->B, l->r, 0.0f, d,
                l->out);
    size_t n = (size_t)l->M * l->out;
    for (size_t i = 0; i < n; i++) y[i] += l->s * d[i];
}

void wk_bk_lora_backward(const wk_bk_lora *l, const float *x, const float *t, const float *dy, float *dt,
                         float *dA, float *dB) {
    /* dB (out, r) = s · dyᵀ (out, M) · t (M, r) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l->out, l->r, l->M, l->s, dy, l->out, t, l->r, 0.0f, dB,
                l->r);
    /* dt (M, r) = s · dy (M, out) · B (out, r) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, l->M, l->r, l->out, l->s, dy, l->out, l->B, l->r, 0.0f,
                dt, l->r);
    /* dA (r, in) = dtᵀ (r, M) · x (M, in) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l->r, l->in, l->M, 1.0f, dt, l->r, x, l->in, 0.0f, dA,
                l->in);
}

float wk_bk_xent(const float *logits, const int32_t *labels, int M, int V, float *dlogits) {
    double loss = 0;
    float invM = 1.0f / (float)M;
    for (int i = 0; i < M; i++) {
        const float *z = logits + (size_t)i * V;
        float *g = dlogits + (size_t)i * V, mx = z[0], sum = 0;
        for (int j = 1; j < V; j++) mx = z[j] > mx ? z[j] : mx;
        for (int j = 0; j < V; j++) sum += (g[j] = expf(z[j] - mx));
        loss += log(sum) + mx - z[labels[i]];
        float inv = invM / sum;
        for (int j = 0; j < V; j++) g[j] *= inv;
        g[labels[i]] -= invM;
    }
    return (float)(loss / M);
}

void wk_bk_adamw(float *p, const float *g, float *m, float *v, size_t n, int t, const wk_bk_adamw_cfg *c) {
    float bc1 = 1.0f - powf(c->beta1, (float)t), bc2 = 1.0f - powf(c->beta2, (float)t);
    float step = c->lr / bc1, bc2s = sqrtf(bc2), decay = 1.0f - c->lr * c->weight_decay;
    for (size_t i = 0; i < n; i++) {
        p[i] *= decay;
        m[i] = c->beta1 * m[i] + (1.0f - c->beta1) * g[i];
        v[i] = c->beta2 * v[i] + (1.0f - c->beta2) * g[i] * g[i];
        p[i] -= step * m[i] / (sqrtf(v[i]) / bc2s + c->eps);
    }
}
