/*
 * train_ops_ref.c — reference backward ops: naive loops with double
 * accumulation, single-threaded, never optimised. tests/test_backward.c checks
 * them against central finite differences and the fast ops against them.
 */
#include "model/train_ops.h"

#include <math.h>
#include <stdlib.h>

static void ref_rmsnorm_bwd(float *dx, const float *dy, const float *x, const float *w, int n, int dim, float eps, int acc) {
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim, *dyi = dy + (size_t)i * dim;
        double ss = 0, dot = 0;
        for (int j = 0; j < dim; j++) ss += (double)xi[j] * xi[j];
        double r = 1.0 / sqrt(ss / dim + eps);
        for (int j = 0; j < dim; j++) dot += (double)dyi[j] * (w ? w[j] : 1.0) * xi[j];
        for (int j = 0; j < dim; j++) {
            double g = r * dyi[j] * (w ? w[j] : 1.0) - xi[j] * r * r * r * dot / dim;
            float *d = &dx[(size_t)i * dim + j];
            *d = acc ? *d + (float)g : (float)g;
        }
    }
}

static void ref_rope_bwd(float *d, const int32_t *pos, int n, int nh, int D, const float *inv_freq) {
    int half = D / 2;
    for (int i = 0; i < n; i++)
        for (int h = 0; h < nh; h++) {
            float *v = d + ((size_t)i * nh + h) * D;
            for (int j = 0; j < half; j++) {
                float ang = (float)pos[i] * inv_freq[j];
                float c = cosf(ang), s = sinf(ang);
                float a = v[j], b = v[j + half];
                v[j] = a * c + b * s;
                v[j + half] = b * c - a * s;
            }
        }
}

static double dotd(const float *a, const float *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static void ref_attn_fwd(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *rs, int n,
                         int H, int Hk, int D, float scale) {
    int grp = H / Hk;
    double *p = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++)
        for (int h = 0; h < H; h++) {
            const float *qi = q + ((size_t)i * H + h) * D;
            int kh = h / grp;
            double mx = -INFINITY, sum = 0;
            for (int j = rs[i]; j <= i; j++) {
                p[j] = dotd(qi, k + ((size_t)j * Hk + kh) * D, D) * scale;
                mx = p[j] > mx ? p[j] : mx;
            }
            for (int j = rs[i]; j <= i; j++) sum += (p[j] = exp(p[j] - mx));
            for (int d = 0; d < D; d++) {
                double o = 0;
                for (int j = rs[i]; j <= i; j++) o += p[j] / sum * v[((size_t)j * Hk + kh) * D + d];
                out[((size_t)i * H + h) * D + d] = (float)o;
            }
            lse[(size_t)i * H + h] = (float)(mx + log(sum));
        }
    free(p);
}

static void ref_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                         const float *q, const float *k, const float *v, const int32_t *rs, int n, int H, int Hk, int D,
                         float scale) {
    int grp = H / Hk;
    double *gk = calloc((size_t)n * Hk * D, sizeof(double)), *gv = calloc((size_t)n * Hk * D, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int h = 0; h < H; h++) {
            size_t qo = ((size_t)i * H + h) * D;
            int kh = h / grp;
            double Di = dotd(dout + qo, out + qo, D);
            for (int d = 0; d < D; d++) dq[qo + d] = 0;
            for (int j = rs[i]; j <= i; j++) {
                size_t ko = ((size_t)j * Hk + kh) * D;
                double pij = exp(dotd(q + qo, k + ko, D) * scale - lse[(size_t)i * H + h]);
                double ds = pij * (dotd(dout + qo, v + ko, D) - Di);
                for (int d = 0; d < D; d++) {
                    dq[qo + d] += (float)(scale * ds * k[ko + d]);
                    gk[ko + d] += scale * ds * q[qo + d];
                    gv[ko + d] += pij * dout[qo + d];
                }
            }
        }
    for (size_t i = 0; i < (size_t)n * Hk * D; i++) dk[i] = (float)gk[i], dv[i] = (float)gv[i];
    free(gk), free(gv);
}

static void ref_swiglu_bwd(float *dg, float *du, const float *dact, const float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double sg = 1.0 / (1.0 + exp(-(double)g[i]));
        double silu = g[i] * sg;
        double dsilu = sg * (1.0 + g[i] * (1.0 - sg));
        dg[i] = (float)(dact[i] * u[i] * dsilu);
        du[i] = (float)(dact[i] * silu);
    }
}

static double ref_xent(float *logits, const int32_t *tgt, int rows, int V, float smoothing) {
    double total = 0;
    for (int r = 0; r < rows; r++) {
        float *z = logits + (size_t)r * V;
        double mx = -INFINITY, sum = 0, zs = 0;
        for (int j = 0; j < V; j++) mx = z[j] > mx ? z[j] : mx, zs += z[j];
        for (int j = 0; j < V; j++) sum += exp(z[j] - mx);
        double lse = mx + log(sum);
        total += (1.0 - smoothing) * (lse - z[tgt[r]]) + smoothing * (lse - zs / V);
        for (int j = 0; j < V; j++) {
            double g = exp(z[j] - lse) - smoothing / V - (j == tgt[r] ? 1.0 - smoothing : 0.0);
            z[j] = (float)g;
        }
    }
    return total;
}

const wk_train_ops *wk_train_ops_ref(void) {
    static const wk_train_ops ops = {
        .rmsnorm_bwd = ref_rmsnorm_bwd,
        .rope_bwd = ref_rope_bwd,
        .attn_fwd = ref_attn_fwd,
        .attn_bwd = ref_attn_bwd,
        .swiglu_bwd = ref_swiglu_bwd,
        .xent = ref_xent,
    };
    return &ops;
}
