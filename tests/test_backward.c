/* test_backward.c — every backward op of training (src/model/train_ops*.c): the reference op
 * against central finite differences of a double-precision forward (relative L2 <= 1e-4), and
 * the fast op against the reference (relative L2 <= 1e-5). Sizes are small (fast under ASan). */
#include "t.h"
#include "model/train_ops.h"

static uint64_t rng = 88172645463325252ull;
static double urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 * 2 - 1;
}
static void fill(float *x, size_t n, double s) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(urand() * s);
}

/* Scalar loss L = Σ w ⊙ f(x) in double; f selected by the op under test. */
typedef double (*fwd_fn)(const double *x, void *ctx);

/* Central differences of f at x (n floats) into g. */
static void fd_grad(fwd_fn f, void *ctx, const float *x, size_t n, double *g) {
    double *xd = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) xd[i] = x[i];
    for (size_t i = 0; i < n; i++) {
        double h = 1e-5 * (1 + fabs(xd[i])), o = xd[i];
        xd[i] = o + h;
        double a = f(xd, ctx);
        xd[i] = o - h;
        double b = f(xd, ctx);
        xd[i] = o;
        g[i] = (a - b) / (2 * h);
    }
    free(xd);
}

static double rel_err(const float *a, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += (a[i] - ref[i]) * (a[i] - ref[i]), den += ref[i] * ref[i];
    return sqrt(num / (den > 0 ? den : 1));
}

/* ---------------- rmsnorm */
typedef struct { int n, dim; const float *w, *dy; float eps; } rms_ctx;
static double rms_f(const double *x, void *c_) {
    rms_ctx *c = c_;
    double L = 0;
    for (int i = 0; i < c->n; i++) {
        double ss = 0;
        for (int j = 0; j < c->dim; j++) ss += x[i * c->dim + j] * x[i * c->dim + j];
        double r = 1 / sqrt(ss / c->dim + c->eps);
        for (int j = 0; j < c->dim; j++) L += c->dy[i * c->dim + j] * x[i * c->dim + j] * r * c->w[j];
    }
    return L;
}
static void test_rmsnorm(void) {
    int n = 5, dim = 24;
    float x[120], w[24], dy[120], g1[120], g2[120];
    double fd[120];
    fill(x, 120, 1), fill(w, 24, 1), fill(dy, 120, 1);
    rms_ctx c = {n, dim, w, dy, 1e-6f};
    fd_grad(rms_f, &c, x, 120, fd);
    wk_train_ops_ref()->rmsnorm_bwd(g1, dy, x, w, n, dim, 1e-6f, 0);
    wk_train_ops_fast()->rmsnorm_bwd(g2, dy, x, w, n, dim, 1e-6f, 0);
    CHECK(rel_err(g1, fd, 120) <= 1e-4, "rmsnorm ref vs FD %g", rel_err(g1, fd, 120));
    CHECK(t_rel_l2(g2, g1, 120) <= 1e-5, "rmsnorm fast vs ref %g", t_rel_l2(g2, g1, 120));
    for (int i = 0; i < 120; i++) g2[i] = 1.f;
    wk_train_ops_fast()->rmsnorm_bwd(g2, dy, x, w, n, dim, 1e-6f, 1);
    for (int i = 0; i < 120; i++) g2[i] -= 1.f;
    CHECK(t_rel_l2(g2, g1, 120) <= 1e-5, "rmsnorm accumulate");
}

/* ---------------- rope */
typedef struct { int n, nh, D; const int32_t *pos; const float *inv, *dy; } rope_ctx;
static double rope_f(const double *x, void *c_) {
    rope_ctx *c = c_;
    double L = 0;
    int half = c->D / 2;
    for (int i = 0; i < c->n; i++)
        for (int h = 0; h < c->nh; h++)
            for (int j = 0; j < half; j++) {
                size_t o = ((size_t)i * c->nh + h) * c->D;
                double ang = (double)((float)c->pos[i] * c->inv[j]), a = x[o + j], b = x[o + j + half];
                L += c->dy[o + j] * (a * cos(ang) - b * sin(ang)) + c->dy[o + j + half] * (b * cos(ang) + a * sin(ang));
            }
    return L;
}
static void test_rope(void) {
    int n = 4, nh = 3, D = 8, N = 96;
    int32_t pos[4] = {0, 1, 5, 17};
    float inv[4] = {1.f, 0.1f, 0.01f, 0.001f}, x[96], dy[96], g1[96], g2[96];
    double fd[96];
    fill(x, N, 1), fill(dy, N, 1);
    rope_ctx c = {n, nh, D, pos, inv, dy};
    fd_grad(rope_f, &c, x, N, fd);
    memcpy(g1, dy, sizeof dy), memcpy(g2, dy, sizeof dy);
    wk_train_ops_ref()->rope_bwd(g1, pos, n, nh, D, inv);
    wk_train_ops_fast()->rope_bwd(g2, pos, n, nh, D, inv);
    CHECK(rel_err(g1, fd, N) <= 1e-4, "rope ref vs FD %g", rel_err(g1, fd, N));
    CHECK(t_rel_l2(g2, g1, N) <= 1e-5, "rope fast vs ref");
}

/* ---------------- attention: packed sequences of lengths 3 and 4, GQA 4:2 */
enum { AN = 7, AH = 4, AHK = 2, AD = 8 };
typedef struct { const float *q, *k, *v, *dout; const int32_t *rs; int which; } att_ctx;
static double att_f(const double *x, void *c_) {
    att_ctx *c = c_;
    double q[AN * AH * AD], k[AN * AHK * AD], v[AN * AHK * AD], L = 0, sc = 1 / sqrt((double)AD);
    for (int i = 0; i < AN * AH * AD; i++) q[i] = c->which == 0 ? x[i] : c->q[i];
    for (int i = 0; i < AN * AHK * AD; i++) k[i] = c->which == 1 ? x[i] : c->k[i], v[i] = c->which == 2 ? x[i] : c->v[i];
    for (int i = 0; i < AN; i++)
        for (int h = 0; h < AH; h++) {
            double s[AN], mx = -1e300, sum = 0;
            int kh = h / (AH / AHK);
            for (int j = c->rs[i]; j <= i; j++) {
                s[j] = 0;
                for (int d = 0; d < AD; d++) s[j] += q[(i * AH + h) * AD + d] * k[(j * AHK + kh) * AD + d] * sc;
                mx = s[j] > mx ? s[j] : mx;
            }
            for (int j = c->rs[i]; j <= i; j++) sum += exp(s[j] - mx);
            for (int j = c->rs[i]; j <= i; j++)
                for (int d = 0; d < AD; d++)
                    L += c->dout[(i * AH + h) * AD + d] * exp(s[j] - mx) / sum * v[(j * AHK + kh) * AD + d];
        }
    return L;
}
static void test_attention(void) {
    int32_t rs[AN] = {0, 0, 0, 3, 3, 3, 3};
    static float q[AN * AH * AD], k[AN * AHK * AD], v[AN * AHK * AD], dout[AN * AH * AD], out[AN * AH * AD],
        out2[AN * AH * AD], lse[AN * AH], lse2[AN * AH];
    static float g[2][3][AN * AH * AD];
    static double fd[AN * AH * AD];
    fill(q, sizeof q / 4, 1), fill(k, sizeof k / 4, 1), fill(v, sizeof v / 4, 1), fill(dout, sizeof dout / 4, 1);
    float sc = 1.f / sqrtf((float)AD);
    wk_train_ops_ref()->attn_fwd(out, lse, q, k, v, rs, AN, AH, AHK, AD, sc);
    wk_train_ops_fast()->attn_fwd(out2, lse2, q, k, v, rs, AN, AH, AHK, AD, sc);
    CHECK(t_rel_l2(out2, out, AN * AH * AD) <= 1e-5 && t_rel_l2(lse2, lse, AN * AH) <= 1e-5, "attention fwd fast vs ref");
    const wk_train_ops *ops[2] = {wk_train_ops_ref(), wk_train_ops_fast()};
    for (int o = 0; o < 2; o++)
        ops[o]->attn_bwd(g[o][0], g[o][1], g[o][2], dout, out, lse, q, k, v, rs, AN, AH, AHK, AD, sc);
    const float *xs[3] = {q, k, v};
    size_t ns[3] = {AN * AH * AD, AN * AHK * AD, AN * AHK * AD};
    for (int w = 0; w < 3; w++) {
        att_ctx c = {q, k, v, dout, rs, w};
        fd_grad(att_f, &c, xs[w], ns[w], fd);
        CHECK(rel_err(g[0][w], fd, ns[w]) <= 1e-4, "attention d%c ref vs FD %g", "qkv"[w], rel_err(g[0][w], fd, ns[w]));
        CHECK(t_rel_l2(g[1][w], g[0][w], ns[w]) <= 1e-5, "attention d%c fast vs ref", "qkv"[w]);
    }
}

/* ---------------- swiglu */
typedef struct { const float *g, *u, *dy; int which; } sw_ctx;
static double sw_f(const double *x, void *c_) {
    sw_ctx *c = c_;
    double L = 0;
    for (int i = 0; i < 64; i++) {
        double g = c->which == 0 ? x[i] : c->g[i], u = c->which == 1 ? x[i] : c->u[i];
        L += c->dy[i] * g / (1 + exp(-g)) * u;
    }
    return L;
}
static void test_swiglu(void) {
    float g[64], u[64], dy[64], r[2][2][64];
    double fd[64];
    fill(g, 64, 4), fill(u, 64, 2), fill(dy, 64, 1);
    wk_train_ops_ref()->swiglu_bwd(r[0][0], r[0][1], dy, g, u, 64);
    wk_train_ops_fast()->swiglu_bwd(r[1][0], r[1][1], dy, g, u, 64);
    for (int w = 0; w < 2; w++) {
        sw_ctx c = {g, u, dy, w};
        fd_grad(sw_f, &c, w ? u : g, 64, fd);
        CHECK(rel_err(r[0][w], fd, 64) <= 1e-4, "swiglu d%c ref vs FD", "gu"[w]);
        CHECK(t_rel_l2(r[1][w], r[0][w], 64) <= 1e-5, "swiglu d%c fast vs ref", "gu"[w]);
    }
}

/* ---------------- cross-entropy with label smoothing */
typedef struct { const int32_t *tgt; int rows, V; float eps; } xe_ctx;
static double xe_f(const double *z, void *c_) {
    xe_ctx *c = c_;
    double L = 0;
    for (int r = 0; r < c->rows; r++) {
        const double *zr = z + (size_t)r * c->V;
        double mx = -1e300, s = 0, zs = 0;
        for (int j = 0; j < c->V; j++) mx = zr[j] > mx ? zr[j] : mx, zs += zr[j];
        for (int j = 0; j < c->V; j++) s += exp(zr[j] - mx);
        double lse = mx + log(s);
        L += (1 - c->eps) * (lse - zr[c->tgt[r]]) + c->eps * (lse - zs / c->V);
    }
    return L;
}
static void test_xent(float eps) {
    enum { R = 3, V = 50 };
    int32_t tgt[R] = {0, 17, 49};
    float z[R * V], a[R * V], b[R * V];
    double fd[R * V];
    fill(z, R * V, 3);
    memcpy(a, z, sizeof z), memcpy(b, z, sizeof z);
    xe_ctx c = {tgt, R, V, eps};
    double la = wk_train_ops_ref()->xent(a, tgt, R, V, eps), lb = wk_train_ops_fast()->xent(b, tgt, R, V, eps);
    double *zd = malloc(sizeof(double) * R * V);
    for (int i = 0; i < R * V; i++) zd[i] = z[i];
    double lt = xe_f(zd, &c);
    free(zd);
    fd_grad(xe_f, &c, z, R * V, fd);
    CHECK(fabs(la - lt) <= 1e-5 && fabs(lb - lt) <= 1e-4, "xent(eps=%g) loss %g %g vs %g", eps, la, lb, lt);
    CHECK(rel_err(a, fd, R * V) <= 1e-4, "xent(eps=%g) ref vs FD %g", eps, rel_err(a, fd, R * V));
    CHECK(t_rel_l2(b, a, R * V) <= 1e-5, "xent(eps=%g) fast vs ref", eps);
}

int main(void) {
    wick_set_threads(1);
    test_rmsnorm();
    test_rope();
    test_attention();
    test_swiglu();
    test_xent(0.f);
    test_xent(0.1f);
    return t_summary();
}
