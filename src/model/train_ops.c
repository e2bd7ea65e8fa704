/*
 * train_ops.c — the fast backward ops: OpenMP across rows (or rows × heads),
 * SIMD inner loops. Attention runs as matrix products per (sequence, head) over
 * blocks of query rows (scores of one block at a time, never [T,T]); its backward
 * recomputes probabilities from the saved log-sum-exp, writes dq per head and the
 * key/value gradients per query head, then sums those over each kv head's group.
 */
#include "model/train_ops.h"

#include "vexp.h"

#include <math.h>
#include "backend/cpu/cpu_common.h"
#include <cblas.h>
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

/* ---- attention as matrix products: per (sequence, head), query blocks of QB rows against
 * the keys up to the block's last row (causal), scores in a per-thread (QB, L) buffer. The
 * sgemm calls run inside the parallel region, so each is single-threaded. */
enum { QB = 64 };

typedef struct {
    int n_seq, max_len;
    int *start; /* (n_seq + 1) first row of each sequence, then n */
} seq_list;

/* Sequences of a packed batch from rs (row i's sequence starts at rs[i]). */
static int seq_list_make(seq_list *sl, const int32_t *rs, int n) {
    sl->start = malloc(sizeof(int) * (size_t)(n + 1));
    if (!sl->start) return -1;
    sl->n_seq = 0, sl->max_len = 0;
    for (int i = 0; i < n; i++)
        if (rs[i] == i) sl->start[sl->n_seq++] = i;
    sl->start[sl->n_seq] = n;
    for (int s = 0; s < sl->n_seq; s++) sl->max_len = WK_MAX(sl->max_len, sl->start[s + 1] - sl->start[s]);
    return 0;
}

/* Softmax of the causal rows of S[m, kl] (row r may see keys 0..i0+r-j0): probabilities in
 * place, zeros past the diagonal, each row's log-sum-exp (after `scale` was applied) to lse[r*H]. */
static void causal_softmax(float *S, int m, int kl, int i0, int j0, float *lse, int H) {
    for (int r = 0; r < m; r++) {
        float *row = S + (size_t)r * kl, mx = -INFINITY, sum = 0;
        int last = i0 + r - j0;
        for (int j = 0; j <= last; j++) mx = row[j] > mx ? row[j] : mx;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j <= last; j++) sum += (row[j] = wk_vexp_neg(row[j] - mx));
        float inv = 1.f / sum;
        for (int j = 0; j <= last; j++) row[j] *= inv;
        for (int j = last + 1; j < kl; j++) row[j] = 0;
        lse[(size_t)r * H] = mx + logf(sum);
    }
}

static void fast_attn_fwd(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *rs, int n,
                          int H, int Hk, int D, float scale) {
    seq_list sl;
    if (seq_list_make(&sl, rs, n)) return;
    int grp = H / Hk, nb = (sl.max_len + QB - 1) / QB, items = sl.n_seq * H * nb;
#pragma omp parallel
    {
        float *S = malloc(sizeof(float) * (size_t)QB * sl.max_len);
#pragma omp for schedule(dynamic, 1)
        for (int it = 0; it < items; it++) {
            int s = it / (H * nb), h = (it / nb) % H, b = nb - 1 - it % nb; /* long blocks first */
            int j0 = sl.start[s], i0 = j0 + b * QB, i1 = WK_MIN(i0 + QB, sl.start[s + 1]), m = i1 - i0, kl = i1 - j0;
            if (m <= 0 || !S) continue;
            const float *kh = k + ((size_t)j0 * Hk + h / grp) * D, *vh = v + ((size_t)j0 * Hk + h / grp) * D;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, kl, D, scale, q + ((size_t)i0 * H + h) * D, H * D, kh,
                        Hk * D, 0.f, S, kl);
            causal_softmax(S, m, kl, i0, j0, lse + (size_t)i0 * H + h, H);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, D, kl, 1.f, S, kl, vh, Hk * D, 0.f,
                        out + ((size_t)i0 * H + h) * D, H * D);
        }
        free(S);
    }
    free(sl.start);
}

/* One (sequence, head) of the attention backward, query block by query block:
 * P = exp(scale·Q·Kᵀ − lse) (causal), dV_h += Pᵀ·dO, dS = P∘(dO·Vᵀ − Di), dQ = scale·dS·K,
 * dK_h += scale·dSᵀ·Q. dK_h/dV_h go to per-head rows pk/pv ((n, H, D)), summed over the
 * query heads of each kv head afterwards. S and dP: (QB, L) scratch. */
static void attn_bwd_head(float *dq, float *pk, float *pv, const float *Di, const float *dout, const float *lse,
                          const float *q, const float *k, const float *v, int j0, int j1, int h, int H, int Hk, int D,
                          float scale, float *S, float *dP) {
    int kh = h / (H / Hk);
    size_t HD = (size_t)H * D;
    const float *K = k + ((size_t)j0 * Hk + kh) * D, *V = v + ((size_t)j0 * Hk + kh) * D;
    float *PK = pk + (size_t)j0 * HD + (size_t)h * D, *PV = pv + (size_t)j0 * HD + (size_t)h * D;
    for (int j = j0; j < j1; j++)
        for (int d = 0; d < D; d++) PK[(size_t)(j - j0) * HD + d] = PV[(size_t)(j - j0) * HD + d] = 0;
    for (int i0 = j0; i0 < j1; i0 += QB) {
        int i1 = WK_MIN(i0 + QB, j1), m = i1 - i0, kl = i1 - j0;
        const float *Q = q + (size_t)i0 * HD + (size_t)h * D, *dO = dout + (size_t)i0 * HD + (size_t)h * D;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, kl, D, scale, Q, (int)HD, K, Hk * D, 0.f, S, kl);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, kl, D, 1.f, dO, (int)HD, V, Hk * D, 0.f, dP, kl);
        for (int r = 0; r < m; r++) {
            float *sr = S + (size_t)r * kl, *dr = dP + (size_t)r * kl;
            float l = lse[(size_t)(i0 + r) * H + h], di = Di[(size_t)(i0 + r) * H + h];
            int last = i0 + r - j0;
            for (int j = 0; j <= last; j++) {
                float p = wk_vexp_neg(sr[j] - l);
                sr[j] = p;
                dr[j] = p * (dr[j] - di);
            }
            for (int j = last + 1; j < kl; j++) sr[j] = dr[j] = 0;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kl, D, m, 1.f, S, kl, dO, (int)HD, 1.f, PV, (int)HD);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, D, kl, scale, dP, kl, K, Hk * D, 0.f,
                    dq + (size_t)i0 * HD + (size_t)h * D, (int)HD);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kl, D, m, scale, dP, kl, Q, (int)HD, 1.f, PK, (int)HD);
    }
}

static void fast_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                          const float *q, const float *k, const float *v, const int32_t *rs, int n, int H, int Hk, int D,
                          float scale) {
    seq_list sl;
    size_t nHD = (size_t)n * H * D;
    float *Di = malloc(sizeof(float) * (size_t)n * H), *pk = malloc(sizeof(float) * nHD * 2);
    if (!Di || !pk || seq_list_make(&sl, rs, n)) {
        free(Di), free(pk);
        return;
    }
    float *pv = pk + nHD;
    int grp = H / Hk;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (size_t r = 0; r < (size_t)n * H; r++) Di[r] = dotf(dout + r * D, out + r * D, D);
        float *S = malloc(sizeof(float) * (size_t)QB * sl.max_len * 2);
#pragma omp for schedule(dynamic, 1)
        for (int it = 0; it < sl.n_seq * H; it++)
            if (S)
                attn_bwd_head(dq, pk, pv, Di, dout, lse, q, k, v, sl.start[it / H], sl.start[it / H + 1], it % H, H, Hk,
                              D, scale, S, S + (size_t)QB * sl.max_len);
        free(S);
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++)
            for (int kh = 0; kh < Hk; kh++) {
                float *gk = dk + ((size_t)i * Hk + kh) * D, *gv = dv + ((size_t)i * Hk + kh) * D;
                const float *sk = pk + ((size_t)i * H + (size_t)kh * grp) * D, *sv = pv + ((size_t)i * H + (size_t)kh * grp) * D;
                for (int d = 0; d < D; d++) gk[d] = sk[d], gv[d] = sv[d];
                for (int g = 1; g < grp; g++)
                    for (int d = 0; d < D; d++) gk[d] += sk[(size_t)g * D + d], gv[d] += sv[(size_t)g * D + d];
            }
    }
    free(sl.start), free(Di), free(pk);
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
