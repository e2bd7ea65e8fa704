/*
 * train_ops.c — the fast backward ops: OpenMP across rows (or rows × heads),
 * SIMD inner loops. Attention recomputes probabilities from the saved
 * log-sum-exp (no [T,T] matrix is kept): dq in one pass over query rows, dk/dv
 * in a second pass over key rows, so no two threads write the same row.
 */
#include "model/train_ops.h"

#include "vexp.h"

#include <math.h>
#include "backend/cpu/cpu_common.h"
#include <omp.h>
#include <stdlib.h>

static inline float dotf(const float *a, const float *b, int n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static inline void axpy(float *y, float a, const float *x, int n) {
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static void fast_rmsnorm_bwd(float *dx, const float *dy, const float *x, const float *w, int n, int dim, float eps, int acc) {
#pragma omp parallel for schedule(static) if (n > 4)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim, *dyi = dy + (size_t)i * dim;
        float *dxi = dx + (size_t)i * dim;
        float ss = 0, dot = 0;
#pragma omp simd reduction(+ : ss, dot)
        for (int j = 0; j < dim; j++) {
            ss += xi[j] * xi[j];
            dot += dyi[j] * (w ? w[j] : 1.f) * xi[j];
        }
        float r = 1.f / sqrtf(ss / (float)dim + eps);
        float c = r * r * r * dot / (float)dim;
        for (int j = 0; j < dim; j++) {
            float g = r * dyi[j] * (w ? w[j] : 1.f) - xi[j] * c;
            dxi[j] = acc ? dxi[j] + g : g;
        }
    }
}

static void fast_rope_bwd(float *d, const int32_t *pos, int n, int nh, int D, const float *inv_freq) {
    wk_cpu_rope_rotate(d, pos, n, nh, D, inv_freq, 1);
}

static void fast_attn_fwd(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *rs, int n,
                          int H, int Hk, int D, float scale) {
    int grp = H / Hk;
#pragma omp parallel
    {
        float *p = malloc(sizeof(float) * (size_t)n);
#pragma omp for collapse(2) schedule(dynamic, 8)
        for (int i = 0; i < n; i++)
            for (int h = 0; h < H; h++) {
                const float *qi = q + ((size_t)i * H + h) * D;
                float *o = out + ((size_t)i * H + h) * D;
                int kh = h / grp, j0 = rs[i];
                float mx = -INFINITY, sum = 0;
                for (int j = j0; j <= i; j++) {
                    float s = dotf(qi, k + ((size_t)j * Hk + kh) * D, D) * scale;
                    p[j - j0] = s;
                    mx = s > mx ? s : mx;
                }
#pragma omp simd reduction(+ : sum)
                for (int j = 0; j <= i - j0; j++) sum += (p[j] = wk_vexp_neg(p[j] - mx));
                float inv = 1.f / sum;
                for (int d = 0; d < D; d++) o[d] = 0;
                for (int j = j0; j <= i; j++) axpy(o, p[j - j0] * inv, v + ((size_t)j * Hk + kh) * D, D);
                lse[(size_t)i * H + h] = mx + logf(sum);
            }
        free(p);
    }
}

/* dq rows: parallel over (row, head). */
static void attn_bwd_q(float *dq, const float *Di, const float *dout, const float *lse, const float *q, const float *k,
                       const float *v, const int32_t *rs, int n, int H, int Hk, int D, float scale) {
    int grp = H / Hk;
#pragma omp parallel for collapse(2) schedule(dynamic, 8)
    for (int i = 0; i < n; i++)
        for (int h = 0; h < H; h++) {
            size_t qo = ((size_t)i * H + h) * D;
            int kh = h / grp;
            float l = lse[(size_t)i * H + h], di = Di[(size_t)i * H + h];
            float *g = dq + qo;
            for (int d = 0; d < D; d++) g[d] = 0;
            for (int j = rs[i]; j <= i; j++) {
                const float *kj = k + ((size_t)j * Hk + kh) * D, *vj = v + ((size_t)j * Hk + kh) * D;
                float p = wk_vexp_neg(dotf(q + qo, kj, D) * scale - l);
                float ds = p * (dotf(dout + qo, vj, D) - di);
                axpy(g, scale * ds, kj, D);
            }
        }
}

/* dk, dv rows: parallel over (key row, kv head); each sums over the later query rows of its sequence. */
static void attn_bwd_kv(float *dk, float *dv, const float *Di, const float *dout, const float *lse, const float *q,
                        const float *k, const float *v, const int32_t *rs, int n, int H, int Hk, int D, float scale) {
    int grp = H / Hk;
#pragma omp parallel for collapse(2) schedule(dynamic, 8)
    for (int j = 0; j < n; j++)
        for (int kh = 0; kh < Hk; kh++) {
            size_t ko = ((size_t)j * Hk + kh) * D;
            float *gk = dk + ko, *gv = dv + ko;
            for (int d = 0; d < D; d++) gk[d] = gv[d] = 0;
            for (int i = j; i < n && rs[i] == rs[j]; i++)
                for (int h = kh * grp; h < (kh + 1) * grp; h++) {
                    size_t qo = ((size_t)i * H + h) * D;
                    float p = wk_vexp_neg(dotf(q + qo, k + ko, D) * scale - lse[(size_t)i * H + h]);
                    float ds = p * (dotf(dout + qo, v + ko, D) - Di[(size_t)i * H + h]);
                    axpy(gk, scale * ds, q + qo, D);
                    axpy(gv, p, dout + qo, D);
                }
        }
}

static void fast_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                          const float *q, const float *k, const float *v, const int32_t *rs, int n, int H, int Hk, int D,
                          float scale) {
    float *Di = malloc(sizeof(float) * (size_t)n * H);
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < (size_t)n * H; r++) Di[r] = dotf(dout + r * D, out + r * D, D);
    attn_bwd_q(dq, Di, dout, lse, q, k, v, rs, n, H, Hk, D, scale);
    attn_bwd_kv(dk, dv, Di, dout, lse, q, k, v, rs, n, H, Hk, D, scale);
    free(Di);
}

static void fast_swiglu_bwd(float *dg, float *du, const float *dact, const float *g, const float *u, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) {
        float e = wk_vexp_neg(-fabsf(g[i])), sg = g[i] >= 0 ? 1.f / (1.f + e) : e / (1.f + e);
        float gi = g[i], a = dact[i];
        dg[i] = a * u[i] * sg * (1.f + gi * (1.f - sg));
        du[i] = a * gi * sg;
    }
}

/* One row: returns its loss and leaves d loss / d z in z. Sums in double (V up to 152k).
 * exp(z - max) is computed once and kept in z, then scaled by 1/sum. */
static double xent_row(float *z, int tgt, int V, float eps) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < V; j++) mx = z[j] > mx ? z[j] : mx;
    double sum = 0, zs = 0, zt = z[tgt];
#pragma omp simd reduction(+ : sum, zs)
    for (int j = 0; j < V; j++) {
        zs += z[j];
        float e = wk_vexp_neg(z[j] - mx);
        z[j] = e;
        sum += e;
    }
    double lse = mx + log(sum);
    double loss = (1.0 - eps) * (lse - zt) + eps * (lse - zs / V);
    float inv = (float)(1.0 / sum), off = eps / (float)V;
#pragma omp simd
    for (int j = 0; j < V; j++) z[j] = z[j] * inv - off;
    z[tgt] -= 1.f - eps;
    return loss;
}

/* Row losses are summed in row order afterwards, so the total does not depend on the thread count. */
static double fast_xent(float *logits, const int32_t *tgt, int rows, int V, float smoothing) {
    double total = 0, *loss = malloc(sizeof(double) * (size_t)rows);
    if (!loss) return NAN;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) loss[r] = xent_row(logits + (size_t)r * V, tgt[r], V, smoothing);
    for (int r = 0; r < rows; r++) total += loss[r];
    free(loss);
    return total;
}

const wk_train_ops *wk_train_ops_fast(void) {
    static const wk_train_ops ops = {
        .rmsnorm_bwd = fast_rmsnorm_bwd,
        .rope_bwd = fast_rope_bwd,
        .attn_fwd = fast_attn_fwd,
        .attn_bwd = fast_attn_bwd,
        .swiglu_bwd = fast_swiglu_bwd,
        .xent = fast_xent,
    };
    return &ops;
}
