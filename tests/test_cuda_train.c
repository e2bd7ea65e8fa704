/* test_cuda_train.c — LoRA training on the CUDA backend:
 *  - every training kernel against the CPU reference train op or a naive loop (relative L2:
 *    1e-5 for element-wise ops and fp32 products (also over 16-bit operands), 1e-4 for
 *    attention gradients, 1e-2 for products and gradients rounded to bf16); the SwiGLU kernels
 *    with LoRA expands folded in against the expands in double and the reference SwiGLU;
 *  - fp32 mode (f32 weights) on the golden models: loss 1e-5, every gradient rel L2 1e-4, every
 *    tensor after one AdamW step 1e-4, the loss after it; with recomputation and LM-head chunks;
 *  - the CUDA trainer against the CPU trainer with label smoothing, LoRA dropout (same masks),
 *    packed sequences, two accumulated micro-batches, clipping, warmup + cosine, two steps;
 *  - bf16 weights on tensor cores against the CPU trainer on the same weights: loss within 2%
 *    relative, gradients within 5% relative L2 (bf16 activations in the products);
 *  - `wick train --device cuda` on the llama_tiny multistep golden (10 steps) and a resume.
 * Without the CUDA backend or without a GPU it reports a skip and passes. */
#include "t.h"
#ifdef WICK_HAVE_CUDA
#include "train_util.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_train.h"
#endif
#include <stdlib.h>

#ifdef WICK_HAVE_CUDA
#define CT_SEED 0x9E3779B97F4A7C15ull
#include "cuda_t.h"
static void cmp(const char *what, const float *got, const float *ref, size_t n, double tol) {
    double e = t_rel_l2(got, ref, n);
    CHECK(e <= tol, "%s: rel L2 %g > %g", what, e, tol);
}

/* ------------------------------------------------------------ kernels */

/* wkt_swiglu_bwd16: dg, du as the CPU reference; the 16-bit copies are exactly those values rounded. */
static void test_swiglu_bwd16(const wk_train_ops *ref, size_t m, int dt16) {
    float *da = rvec(m, 1), *g = rvec(m, 4), *u = rvec(m, 2), *dg = malloc(4 * m), *du = malloc(4 * m);
    float *xa = dev(da, 4 * m), *xg = dev(g, 4 * m), *xu = dev(u, 4 * m), *ydg = G->alloc(G, 4 * m), *ydu = G->alloc(G, 4 * m);
    uint16_t *y16g = G->alloc(G, 2 * m), *y16u = G->alloc(G, 2 * m), *h16g = malloc(2 * m), *h16u = malloc(2 * m);
    ref->swiglu_bwd(dg, du, da, g, u, m);
    wkt_swiglu_bwd16(G, ydg, ydu, y16g, y16u, dt16, xa, xg, xu, m);
    float *gg = host(ydg, m), *gu = host(ydu, m);
    G->download(G, h16g, y16g, 2 * m), G->download(G, h16u, y16u, 2 * m);
    char what[64];
    snprintf(what, sizeof what, "swiglu_bwd16 dg (n=%zu, %s)", m, wick_dtype_name(dt16));
    cmp(what, gg, dg, m, 1e-5);
    snprintf(what, sizeof what, "swiglu_bwd16 du (n=%zu, %s)", m, wick_dtype_name(dt16));
    cmp(what, gu, du, m, 1e-5);
    size_t bad = 0;
    for (size_t i = 0; i < m; i++) {
        uint16_t wg = dt16 == WICK_DT_BF16 ? wk_f32_to_bf16(gg[i]) : wk_f32_to_f16(gg[i]);
        uint16_t wu = dt16 == WICK_DT_BF16 ? wk_f32_to_bf16(gu[i]) : wk_f32_to_f16(gu[i]);
        bad += h16g[i] != wg || h16u[i] != wu;
    }
    CHECK(bad == 0, "swiglu_bwd16 (n=%zu, %s): %zu 16-bit copies are not the f32 results rounded", m,
          wick_dtype_name(dt16), bad);
    G->free(G, xa), G->free(G, xg), G->free(G, xu), G->free(G, y16g), G->free(G, y16u); /* ydg, ydu: freed by host() */
    free(da), free(g), free(u), free(dg), free(du), free(gg), free(gu), free(h16g), free(h16u);
}

/* g'[i,j] = g + s·Σ_k xa[i,k]·B(j,k) in double (wkt_expand's indexing); rank 0 leaves g. */
static void ref_expand(float *out, const float *g, const float *xa, const float *B, size_t sj, size_t sk, float s,
                       int r, int n, int F) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < F; j++) {
            double d = 0;
            for (int k = 0; k < r; k++) d += (double)xa[(size_t)i * r + k] * B[(size_t)j * sj + (size_t)k * sk];
            out[(size_t)i * F + j] = (float)(g[(size_t)i * F + j] + s * d);
        }
}

/* wkt_swiglu_lora / wkt_swiglu_lora_bwd against the expands in double then the CPU reference
 * SwiGLU (backward): ranks 0..32 (both register widths), rows and columns past a block's edge,
 * fp32 and/or 16-bit outputs (the 16-bit copies exactly the fp32 results rounded). */
static void test_swiglu_lora(const wk_train_ops *ref) {
    int cases[][6] = {{37, 300, 8, 16, 5, WICK_DT_BF16},
                      {70, 260, 0, 4, 32, WICK_DT_F16},
                      {33, 513, 24, 32, 0, WICK_DT_BF16},
                      {150, 96, 16, 16, 16, WICK_DT_BF16}};
    for (int c = 0; c < 4; c++) {
        int n = cases[c][0], F = cases[c][1], rg = cases[c][2], ru = cases[c][3], rd = cases[c][4], dt = cases[c][5];
        int want32 = c != 2, want16 = c != 1, fast = c != 1; /* fast: __expf / __fdividef (16-bit weights) */
        size_t m = (size_t)n * F;
        float *g = rvec(m, 4), *u = rvec(m, 2), *da = rvec(m, 1), *xg = rvec((size_t)n * rg + 1, 1);
        float *xu = rvec((size_t)n * ru + 1, 1), *xd = rvec((size_t)n * rd + 1, 1);
        float *Bg = rvec((size_t)F * rg + 1, 0.3f), *Bu = rvec((size_t)F * ru + 1, 0.3f);
        float *Ad = rvec((size_t)F * rd + 1, 0.3f);
        float *gp = malloc(4 * m), *up = malloc(4 * m), *dap = malloc(4 * m), *act = malloc(4 * m);
        float *dg = malloc(4 * m), *du = malloc(4 * m);
        ref_expand(gp, g, xg, Bg, rg, 1, 0.5f, rg, n, F);
        ref_expand(up, u, xu, Bu, ru, 1, 2.f, ru, n, F);
        ref_expand(dap, da, xd, Ad, 1, F, 0.25f, rd, n, F); /* Ad (rd, F) read transposed */
        for (size_t i = 0; i < m; i++) act[i] = gp[i] / (1.f + expf(-gp[i])) * up[i];
        ref->swiglu_bwd(dg, du, dap, gp, up, m);
        float *yg = dev(g, 4 * m), *yu = dev(u, 4 * m), *yda = dev(da, 4 * m), *yact = G->alloc(G, 4 * m);
        wkt_expand eg = {dev(xg, 4 * ((size_t)n * rg + 1)), dev(Bg, 4 * ((size_t)F * rg + 1)), (size_t)rg, 1, 0.5f, rg};
        wkt_expand eu = {dev(xu, 4 * ((size_t)n * ru + 1)), dev(Bu, 4 * ((size_t)F * ru + 1)), (size_t)ru, 1, 2.f, ru};
        wkt_expand ed = {dev(xd, 4 * ((size_t)n * rd + 1)), dev(Ad, 4 * ((size_t)F * rd + 1)), 1, (size_t)F, 0.25f, rd};
        float *ydg = want32 ? G->alloc(G, 4 * m) : NULL, *ydu = want32 ? G->alloc(G, 4 * m) : NULL;
        uint16_t *y16g = want16 ? G->alloc(G, 2 * m) : NULL, *y16u = want16 ? G->alloc(G, 2 * m) : NULL;
        wkt_swiglu_lora(G, yact, NULL, 0, yg, yu, n, F, &eg, &eu, fast);
        wkt_swiglu_lora_bwd(G, ydg, ydu, y16g, y16u, dt, yda, yg, yu, n, F, &eg, &eu, &ed, fast);
        char what[96];
        uint16_t *yact16 = G->alloc(G, 2 * m), *hact16 = malloc(2 * m);
        wkt_swiglu_lora(G, NULL, yact16, dt, yg, yu, n, F, &eg, &eu, fast); /* only the 16-bit act */
        G->download(G, hact16, yact16, 2 * m);
        float *ga = host(yact, m);
        snprintf(what, sizeof what, "swiglu_lora act (n=%d F=%d r=%d,%d)", n, F, rg, ru);
        cmp(what, ga, act, m, 1e-5);
        size_t bad16 = 0;
        for (size_t i = 0; i < m; i++)
            bad16 += hact16[i] != (dt == WICK_DT_BF16 ? wk_f32_to_bf16(ga[i]) : wk_f32_to_f16(ga[i]));
        CHECK(bad16 == 0, "swiglu_lora (n=%d F=%d): %zu 16-bit acts are not the f32 ones rounded", n, F, bad16);
        G->free(G, yact16), free(hact16);
        float *gg = want32 ? host(ydg, m) : malloc(4 * m), *gu = want32 ? host(ydu, m) : malloc(4 * m);
        uint16_t *h16g = malloc(2 * m), *h16u = malloc(2 * m);
        if (want16) G->download(G, h16g, y16g, 2 * m), G->download(G, h16u, y16u, 2 * m);
        if (!want32) /* only the 16-bit results: compared as rounded values */
            for (size_t i = 0; i < m; i++) {
                gg[i] = dt == WICK_DT_BF16 ? wk_bf16_to_f32(h16g[i]) : wk_f16_to_f32(h16g[i]);
                gu[i] = dt == WICK_DT_BF16 ? wk_bf16_to_f32(h16u[i]) : wk_f16_to_f32(h16u[i]);
            }
        double tol = want32 ? 1e-5 : 1e-2;
        snprintf(what, sizeof what, "swiglu_lora_bwd dg (n=%d F=%d r=%d,%d,%d)", n, F, rg, ru, rd);
        cmp(what, gg, dg, m, tol);
        snprintf(what, sizeof what, "swiglu_lora_bwd du (n=%d F=%d r=%d,%d,%d)", n, F, rg, ru, rd);
        cmp(what, gu, du, m, tol);
        size_t bad = 0;
        for (size_t i = 0; want16 && want32 && i < m; i++) {
            uint16_t wg = dt == WICK_DT_BF16 ? wk_f32_to_bf16(gg[i]) : wk_f32_to_f16(gg[i]);
            uint16_t wu = dt == WICK_DT_BF16 ? wk_f32_to_bf16(gu[i]) : wk_f32_to_f16(gu[i]);
            bad += h16g[i] != wg || h16u[i] != wu;
        }
        CHECK(bad == 0, "swiglu_lora_bwd (n=%d F=%d): %zu 16-bit copies are not the f32 results rounded", n, F, bad);
        G->free(G, yg), G->free(G, yu), G->free(G, yda), G->free(G, y16g), G->free(G, y16u);
        G->free(G, (void *)eg.xa), G->free(G, (void *)eg.B), G->free(G, (void *)eu.xa), G->free(G, (void *)eu.B);
        G->free(G, (void *)ed.xa), G->free(G, (void *)ed.B);
        free(g), free(u), free(da), free(xg), free(xu), free(xd), free(Bg), free(Bu), free(Ad), free(gp), free(up);
        free(dap), free(act), free(dg), free(du), free(ga), free(gg), free(gu), free(h16g), free(h16u);
    }
    no_error("swiglu with LoRA expands");
}

static void test_elementwise(const wk_train_ops *ref) {
    int cases[][4] = {{5, 896, 0, 1}, {7, 64, 1, 1}, {3, 2500, 0, 0}, {40, 16, 1, 1}};
    for (int c = 0; c < 4; c++) {
        int n = cases[c][0], dim = cases[c][1], acc = cases[c][2];
        size_t cnt = (size_t)n * dim;
        float *x = rvec(cnt, 2), *dy = rvec(cnt, 1), *w = cases[c][3] ? rvec(dim, 1) : NULL, *dx = rvec(cnt, 1);
        float *ddx = dev(dx, 4 * cnt), *dxx = dev(x, 4 * cnt), *ddy = dev(dy, 4 * cnt), *dw = w ? dev(w, 4 * dim) : NULL;
        ref->rmsnorm_bwd(dx, dy, x, w, n, dim, 1e-6f, acc);
        wkt_rmsnorm_bwd(G, ddx, ddy, dxx, dw, n, dim, 1e-6f, acc);
        float *got = host(ddx, cnt);
        char what[64];
        snprintf(what, sizeof what, "rmsnorm_bwd n=%d dim=%d acc=%d", n, dim, acc);
        cmp(what, got, dx, cnt, 1e-5);
        G->free(G, dxx), G->free(G, ddy), G->free(G, dw);
        free(x), free(dy), free(w), free(dx), free(got);
    }
    /* the 16-bit-copy variants: the same fp32 results, the copies exactly those rounded */
    for (int dt = WICK_DT_BF16, k = 0; k < 2; k++, dt = WICK_DT_F16) {
        int n = 6, dim = 896;
        size_t cnt = (size_t)n * dim;
        float *x = rvec(cnt, 2), *dy = rvec(cnt, 1), *w = rvec(dim, 1), *dx = rvec(cnt, 1);
        float *ddx = dev(dx, 4 * cnt), *dxx = dev(x, 4 * cnt), *ddy = dev(dy, 4 * cnt), *dw = dev(w, 4 * dim);
        uint16_t *d16 = G->alloc(G, 2 * cnt), *h16 = malloc(2 * cnt);
        ref->rmsnorm_bwd(dx, dy, x, w, n, dim, 1e-6f, 1);
        wkt_rmsnorm_bwd16(G, ddx, d16, dt, ddy, dxx, dw, n, dim, 1e-6f, 1);
        G->download(G, h16, d16, 2 * cnt);
        float *got = host(ddx, cnt);
        cmp(k ? "rmsnorm_bwd16 (f16)" : "rmsnorm_bwd16 (bf16)", got, dx, cnt, 1e-5);
        size_t bad = 0;
        for (size_t i = 0; i < cnt; i++) bad += h16[i] != (k ? wk_f32_to_f16(got[i]) : wk_f32_to_bf16(got[i]));
        CHECK(bad == 0, "rmsnorm_bwd16: %zu 16-bit copies are not the f32 results rounded", bad);
        int nr = 9, nh = 3, D = 64;
        size_t rc = (size_t)nr * nh * D;
        float *d = rvec(rc, 1), inv[32];
        int32_t pos[9] = {0, 1, 2, 3, 0, 1, 7, 100, 4000};
        for (int j = 0; j < D / 2; j++) inv[j] = powf(10000.f, -2.f * j / D);
        float *dd = dev(d, 4 * rc), *dinv = dev(inv, sizeof inv);
        int32_t *dpos = dev(pos, sizeof pos);
        ref->rope_bwd(d, pos, nr, nh, D, inv);
        wkt_rope_bwd16(G, dd, d16, dt, dpos, nr, nh, D, dinv);
        G->download(G, h16, d16, 2 * rc);
        float *gr = host(dd, rc);
        cmp(k ? "rope_bwd16 (f16)" : "rope_bwd16 (bf16)", gr, d, rc, 1e-5);
        bad = 0;
        for (size_t i = 0; i < rc; i++) bad += h16[i] != (k ? wk_f32_to_f16(gr[i]) : wk_f32_to_bf16(gr[i]));
        CHECK(bad == 0, "rope_bwd16: %zu 16-bit copies are not the f32 results rounded", bad);
        G->free(G, dxx), G->free(G, ddy), G->free(G, dw), G->free(G, d16), G->free(G, dinv), G->free(G, dpos);
        free(x), free(dy), free(w), free(dx), free(got), free(h16), free(d), free(gr);
    }
    int n = 9, nh = 3, D = 64;
    size_t cnt = (size_t)n * nh * D;
    float *d = rvec(cnt, 1), inv[32];
    int32_t pos[9] = {0, 1, 2, 3, 0, 1, 7, 100, 4000};
    for (int j = 0; j < D / 2; j++) inv[j] = powf(10000.f, -2.f * j / D);
    float *dd = dev(d, 4 * cnt), *dinv = dev(inv, sizeof inv);
    int32_t *dpos = dev(pos, sizeof pos);
    ref->rope_bwd(d, pos, n, nh, D, inv);
    wkt_rope_bwd(G, dd, dpos, n, nh, D, dinv);
    float *got = host(dd, cnt);
    cmp("rope_bwd", got, d, cnt, 1e-5);
    G->free(G, dinv), G->free(G, dpos);
    free(d), free(got);
    size_t m = 10007;
    float *da = rvec(m, 1), *g = rvec(m, 4), *u = rvec(m, 2), *dg = malloc(4 * m), *du = malloc(4 * m);
    float *xa = dev(da, 4 * m), *xg = dev(g, 4 * m), *xu = dev(u, 4 * m), *ydg = G->alloc(G, 4 * m), *ydu = G->alloc(G, 4 * m);
    ref->swiglu_bwd(dg, du, da, g, u, m);
    wkt_swiglu_bwd(G, ydg, ydu, xa, xg, xu, m);
    float *gg = host(ydg, m), *gu = host(ydu, m);
    cmp("swiglu_bwd dg", gg, dg, m, 1e-5);
    cmp("swiglu_bwd du", gu, du, m, 1e-5);
    G->free(G, xa), G->free(G, xg), G->free(G, xu); /* ydg, ydu: host() freed them */
    free(da), free(g), free(u), free(dg), free(du), free(gg), free(gu);
    test_swiglu_bwd16(ref, 10008, WICK_DT_BF16); /* the fused kernel (n % 4 == 0) */
    test_swiglu_bwd16(ref, 10008, WICK_DT_F16);
    test_swiglu_bwd16(ref, 10007, WICK_DT_BF16); /* plain kernel + casts */
    no_error("element-wise backward ops");
}

static void test_attention(const wk_train_ops *ref) {
    int cfg[][3] = {{4, 2, 16}, {6, 2, 64}, {2, 1, 128}, {2, 2, 256}, {3, 1, 40}, {14, 2, 64}};
    int lens[] = {37, 1, 70, 9, 33};
    int n = 150, ns = 5;
    int32_t rs[150], re[150];
    for (int s = 0, k = 0; s < ns; s++)
        for (int i = 0; i < lens[s]; i++, k++) rs[k] = k - i, re[k] = k - i + lens[s];
    for (int c = 0; c < 6; c++) {
        int H = cfg[c][0], Hk = cfg[c][1], D = cfg[c][2];
        size_t nq = (size_t)n * H * D, nk = (size_t)n * Hk * D;
        float sc = 1.f / sqrtf((float)D);
        float *q = rvec(nq, 2), *k = rvec(nk, 2), *v = rvec(nk, 1), *dout = rvec(nq, 1);
        float *out = malloc(4 * nq), *lse = malloc(4 * (size_t)n * H);
        float *dq = malloc(4 * nq), *dk = malloc(4 * nk), *dv = malloc(4 * nk);
        ref->attn_fwd(out, lse, q, k, v, rs, n, H, Hk, D, sc);
        ref->attn_bwd(dq, dk, dv, dout, out, lse, q, k, v, rs, n, H, Hk, D, sc);
        float *xq = dev(q, 4 * nq), *xk = dev(k, 4 * nk), *xv = dev(v, 4 * nk), *xo = G->alloc(G, 4 * nq);
        float *xl = G->alloc(G, 4 * (size_t)n * H), *xdo = dev(dout, 4 * nq), *xs = G->alloc(G, 4 * (size_t)n * H);
        float *xdq = G->alloc(G, 4 * nq), *xdk = G->alloc(G, 4 * nk), *xdv = G->alloc(G, 4 * nk);
        int32_t *xrs = dev(rs, sizeof rs), *xre = dev(re, sizeof re);
        float *xkp = G->alloc(G, 4 * nq), *xvp = G->alloc(G, 4 * nq);
        wkt_attn_fwd(G, xo, xl, xq, xk, xv, xrs, n, H, Hk, D, sc);
        wkt_attn_bwd(G, xdq, xdk, xdv, xdo, xo, xl, xq, xk, xv, xrs, xre, n, H, Hk, D, sc, xs, xkp, xvp);
        no_error("attention");
        char what[96];
        float *got;
        const char *names[5] = {"out", "lse", "dq", "dk", "dv"};
        float *gdev[5] = {xo, xl, xdq, xdk, xdv}, *want[5] = {out, lse, dq, dk, dv};
        size_t cnts[5] = {nq, (size_t)n * H, nq, nk, nk};
        for (int i = 0; i < 5; i++) {
            got = host(gdev[i], cnts[i]);
            snprintf(what, sizeof what, "attention H=%d Hk=%d D=%d %s", H, Hk, D, names[i]);
            cmp(what, got, want[i], cnts[i], i < 2 ? 1e-5 : 1e-4);
            free(got);
        }
        G->free(G, xq), G->free(G, xk), G->free(G, xv), G->free(G, xdo), G->free(G, xs), G->free(G, xrs), G->free(G, xre);
        G->free(G, xkp), G->free(G, xvp);
        free(q), free(k), free(v), free(dout), free(out), free(lse), free(dq), free(dk), free(dv);
    }
}

/* A head_dim the kernels do not take is an error naming it, not a wrong result. */
static void test_attention_refused(void) {
    int n = 4, H = 2, D = 18;
    float *x = G->alloc(G, 4 * (size_t)n * H * D), *l = G->alloc(G, 4 * (size_t)n * H);
    int32_t rs[4] = {0, 0, 0, 0}, *xr = dev(rs, sizeof rs);
    wkt_attn_fwd(G, x, l, x, x, x, xr, n, H, H, D, 1.f);
    CHECK_FAILS(G->check(G), "head_dim 18");
    G->free(G, x), G->free(G, l), G->free(G, xr);
}

static void test_xent(const wk_train_ops *ref) {
    int cases[][2] = {{5, 1000}, {3, 33}, {4, 151936}};
    for (int c = 0; c < 3; c++)
        for (int sm = 0; sm < 2; sm++) {
            int rows = cases[c][0], V = cases[c][1];
            float eps = sm ? 0.1f : 0.f;
            size_t cnt = (size_t)rows * V;
            float *z = rvec(cnt, 8), *loss = malloc(4 * rows);
            int32_t tgt[5];
            for (int r = 0; r < rows; r++) tgt[r] = (r * 7919 + 3) % V;
            float *xz = dev(z, 4 * cnt), *xl = G->alloc(G, 4 * rows);
            int32_t *xt = dev(tgt, sizeof tgt);
            uint16_t *g16 = G->alloc(G, 2 * cnt), *h16 = malloc(2 * cnt);
            wkt_xent(G, xz, xt, rows, V, eps, xl, g16, WICK_DT_BF16); /* logits untouched, bf16 gradient */
            G->download(G, h16, g16, 2 * cnt);
            wkt_xent(G, xz, xt, rows, V, eps, xl, NULL, 0);
            double want = ref->xent(z, tgt, rows, V, eps), sum = 0;
            float *got = host(xz, cnt), *gb = malloc(4 * cnt);
            G->download(G, loss, xl, 4 * rows);
            for (int r = 0; r < rows; r++) sum += loss[r];
            for (size_t i = 0; i < cnt; i++) gb[i] = wk_bf16_to_f32(h16[i]);
            no_error("xent");
            CHECK(fabs(sum - want) <= 1e-5 * fabs(want) + 1e-5, "xent V=%d eps=%g: loss %.7f vs %.7f", V, eps, sum, want);
            char what[64];
            snprintf(what, sizeof what, "xent V=%d eps=%g gradient", V, eps);
            cmp(what, got, z, cnt, 1e-5);
            snprintf(what, sizeof what, "xent V=%d eps=%g bf16 gradient", V, eps);
            cmp(what, gb, z, cnt, 1e-2);
            G->free(G, xl), G->free(G, xt), G->free(G, g16);
            free(z), free(loss), free(got), free(gb), free(h16);
        }
}

/* C = alpha op(A) op(B) + beta C (row-major), naive in double. */
static void naive_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, const float *B, float beta,
                       float *C) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)(ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
            C[i * N + j] = (float)(alpha * s + beta * C[i * N + j]);
        }
}

static void test_products(void) {
    int M = 37, N = 19, K = 70;
    for (int t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1;
        float *A = rvec((size_t)M * K, 1), *B = rvec((size_t)K * N, 1), *C = rvec((size_t)M * N, 1);
        float *xa = dev(A, 4 * M * K), *xb = dev(B, 4 * K * N), *xc = dev(C, 4 * M * N);
        naive_gemm(ta, tb, M, N, K, 0.5f, A, B, 1.f, C);
        wkt_gemm(G, ta, tb, M, N, K, 0.5f, xa, ta ? M : K, xb, tb ? K : N, 1.f, xc, N, 0);
        float *got = host(xc, (size_t)M * N);
        char what[64];
        snprintf(what, sizeof what, "gemm ta=%d tb=%d", ta, tb);
        cmp(what, got, C, (size_t)M * N, 1e-6);
        G->free(G, xa), G->free(G, xb);
        free(A), free(B), free(C), free(got);
    }
    /* dx = dy·W for f32 and bf16 W (dy rounded to bf16 in the latter) */
    int n = 33, out = 96, in = 130;
    float *W = rvec((size_t)out * in, 1), *dy = rvec((size_t)n * out, 1), *want = calloc((size_t)n * in, 4);
    uint16_t *Wh = malloc(2 * (size_t)out * in);
    for (int i = 0; i < out * in; i++) Wh[i] = wk_f32_to_bf16(W[i]), W[i] = wk_bf16_to_f32(Wh[i]);
    naive_gemm(0, 0, n, in, out, 1.f, dy, W, 0.f, want);
    for (int bf = 0; bf < 2; bf++) {
        wk_mat Wd = {.w = bf ? dev(Wh, 2 * (size_t)out * in) : dev(W, 4 * (size_t)out * in),
                     .dt = bf ? WICK_DT_BF16 : WICK_DT_F32, .rows = out, .cols = in};
        float *xdy = dev(dy, 4 * (size_t)n * out), *xdx = G->alloc(G, 4 * (size_t)n * in);
        void *tmp = G->alloc(G, 2 * (size_t)n * out);
        wkt_matmul_dx(G, xdx, xdy, NULL, &Wd, n, 0, tmp);
        float *got = host(xdx, (size_t)n * in);
        cmp(bf ? "matmul_dx bf16" : "matmul_dx f32", got, want, (size_t)n * in, bf ? 1e-2 : 1e-5);
        G->free(G, (void *)Wd.w), G->free(G, xdy), G->free(G, tmp);
        free(got);
    }
    free(W), free(Wh), free(dy), free(want);
    /* wkt_gemm16: bf16 / f16 operands, fp32 C, against the naive product of the rounded values */
    for (int t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1, dt = t == 3 ? WICK_DT_F16 : WICK_DT_BF16;
        size_t na = (size_t)M * K, nb = (size_t)K * N;
        float *A = rvec(na, 1), *B = rvec(nb, 1), *C = rvec((size_t)M * N, 1);
        uint16_t *A16 = malloc(2 * na), *B16 = malloc(2 * nb);
        for (size_t i = 0; i < na; i++) {
            A16[i] = dt == WICK_DT_BF16 ? wk_f32_to_bf16(A[i]) : wk_f32_to_f16(A[i]);
            A[i] = dt == WICK_DT_BF16 ? wk_bf16_to_f32(A16[i]) : wk_f16_to_f32(A16[i]);
        }
        for (size_t i = 0; i < nb; i++) {
            B16[i] = dt == WICK_DT_BF16 ? wk_f32_to_bf16(B[i]) : wk_f32_to_f16(B[i]);
            B[i] = dt == WICK_DT_BF16 ? wk_bf16_to_f32(B16[i]) : wk_f16_to_f32(B16[i]);
        }
        void *xa = dev(A16, 2 * na), *xb = dev(B16, 2 * nb);
        float *xc = dev(C, 4 * (size_t)M * N);
        naive_gemm(ta, tb, M, N, K, 0.5f, A, B, 1.f, C);
        wkt_gemm16(G, ta, tb, M, N, K, 0.5f, xa, ta ? M : K, xb, tb ? K : N, 1.f, xc, N, dt);
        float *got = host(xc, (size_t)M * N);
        char what[64];
        snprintf(what, sizeof what, "gemm16 ta=%d tb=%d %s", ta, tb, wick_dtype_name(dt));
        cmp(what, got, C, (size_t)M * N, 1e-5);
        G->free(G, xa), G->free(G, xb);
        free(A), free(B), free(C), free(A16), free(B16), free(got);
    }
    /* wkt_matmul16: y += x16·Wᵀ with bf16 W and x, against the naive product of the rounded values */
    {
        int rn = 40, rin = 72, rout = 56;
        float *Wf = rvec((size_t)rout * rin, 1), *x = rvec((size_t)rn * rin, 1), *y = rvec((size_t)rn * rout, 1);
        uint16_t *W16 = malloc(2 * (size_t)rout * rin), *x16 = malloc(2 * (size_t)rn * rin);
        for (int i = 0; i < rout * rin; i++) W16[i] = wk_f32_to_bf16(Wf[i]), Wf[i] = wk_bf16_to_f32(W16[i]);
        for (int i = 0; i < rn * rin; i++) x16[i] = wk_f32_to_bf16(x[i]), x[i] = wk_bf16_to_f32(x16[i]);
        wk_mat Wd = {.w = dev(W16, 2 * (size_t)rout * rin), .dt = WICK_DT_BF16, .rows = rout, .cols = rin};
        void *dx16 = dev(x16, 2 * (size_t)rn * rin);
        float *dy = dev(y, 4 * (size_t)rn * rout);
        naive_gemm(0, 1, rn, rout, rin, 1.f, x, Wf, 1.f, y);
        wkt_matmul16(G, dy, dx16, &Wd, rn, 1);
        float *got = host(dy, (size_t)rn * rout);
        cmp("matmul16 (bf16, acc)", got, y, (size_t)rn * rout, 1e-5);
        G->free(G, (void *)Wd.w), G->free(G, dx16);
        free(Wf), free(x), free(y), free(W16), free(x16), free(got);
    }
    /* wkt_to16 against the host rounding */
    {
        size_t cnt = 1003;
        float *x = rvec(cnt, 3);
        float *dx = dev(x, 4 * cnt);
        uint16_t *d16 = G->alloc(G, 2 * cnt), *h16 = malloc(2 * cnt);
        wkt_to16(G, d16, dx, cnt, WICK_DT_BF16);
        G->download(G, h16, d16, 2 * cnt);
        size_t bad = 0;
        for (size_t i = 0; i < cnt; i++) bad += h16[i] != wk_f32_to_bf16(x[i]);
        CHECK(bad == 0, "wkt_to16: %zu of %zu values not rounded as the host rounds", bad, cnt);
        G->free(G, dx), G->free(G, d16);
        free(x), free(h16);
    }
    /* wkt_seg_scale: three scaled runs into one buffer, bit for bit as on the host */
    {
        float *src = rvec(1000, 1), want[600] = {0};
        wkt_seg sg[3] = {{0, 500, 100, 2.f, 0}, {300, 0, 250, -0.5f, 0}, {700, 250, 3, 1.f, 0}};
        for (int q = 0; q < 3; q++)
            for (size_t e = 0; e < sg[q].n; e++) want[sg[q].dst_at + e] = sg[q].s * src[sg[q].src_at + e];
        float *xs = dev(src, 4 * 1000), *xd = dev(want, 4 * 600);
        wkt_zero(G, xd, 4 * 600);
        wkt_seg *xg = dev(sg, sizeof sg);
        wkt_seg_scale(G, xd, xs, xg, 3, 250);
        float *got = host(xd, 600);
        CHECK(t_max_abs_diff(got, want, 600) == 0.f, "wkt_seg_scale differs by %g", t_max_abs_diff(got, want, 600));
        G->free(G, xs), G->free(G, xg);
        free(src), free(got);
    }
    /* gradient scaling + norm partials, then AdamW with clipping, against wk_adamw */
    size_t m = 70001;
    float *w = rvec(m, 1), *g = rvec(m, 3), *mo = rvec(m, 0.1f), *v = rvec(m, 0.1f);
    for (size_t i = 0; i < m; i++) v[i] = fabsf(v[i]);
    float *xw = dev(w, 4 * m), *xg = dev(g, 4 * m), *xm = dev(mo, 4 * m), *xv = dev(v, 4 * m);
    double *xp = G->alloc(G, sizeof(double) * WKT_NORM_BLOCKS), part[WKT_NORM_BLOCKS], ss = 0, want_ss = 0;
    wkt_scale_sumsq(G, xg, m, 0.25f, xp);
    G->download(G, part, xp, sizeof part);
    for (int b = 0; b < WKT_NORM_BLOCKS; b++) ss += part[b];
    for (size_t i = 0; i < m; i++) g[i] *= 0.25f, want_ss += (double)g[i] * g[i];
    CHECK(fabs(ss - want_ss) <= 1e-9 * want_ss, "gradient sum of squares %.10g vs %.10g", ss, want_ss);
    float lr = 1e-2f, clip = 0.3f, wd = 0.01f;
    int k = 3;
    double bc1 = 1 - pow(0.9, k), bc2 = 1 - pow(0.999, k);
    wkt_adamw(G, xw, xg, xm, xv, m, clip, (float)(1.0 - (double)lr * wd), (float)(1.0 - 0.9), 0.999f,
              (float)(1.0 - (double)0.999f), (float)(lr / bc1), (float)sqrt(bc2), 1e-8f);
    for (size_t i = 0; i < m; i++) g[i] *= clip;
    wk_adamw(w, g, mo, v, m, k, lr, 0.9f, 0.999f, 1e-8f, wd);
    float *gw = host(xw, m), *gm = host(xm, m), *gv = host(xv, m), *gg = host(xg, m);
    no_error("optimizer kernels");
    CHECK(t_max_abs_diff(gw, w, m) <= 1e-6f, "adamw weights off by %g", t_max_abs_diff(gw, w, m));
    cmp("adamw exp_avg", gm, mo, m, 1e-6);
    cmp("adamw exp_avg_sq", gv, v, m, 1e-6);
    int zero = 1;
    for (size_t i = 0; i < m; i++) zero &= gg[i] == 0.f;
    CHECK(zero, "adamw zeroes the gradient");
    G->free(G, xp);
    free(w), free(g), free(mo), free(v), free(gw), free(gm), free(gv), free(gg);
}

/* ------------------------------------------------------------ trainer */

static wick_model *load_on(const char *dir, const char *device, int keep_bf16) {
    wick_model_opts o = wick_model_opts_default();
    o.device = device, o.keep_bf16 = keep_bf16;
    wick_model *m = NULL;
    CHECK_OK(wick_model_load(dir, &o, &m));
    return m;
}

/* One step on the golden batch against PyTorch + PEFT (fp32 mode), as test_train_golden does on the CPU. */
static void golden_case(const char *name, int recompute) {
    char mdir[512], adir[512], gpath[512];
    snprintf(mdir, sizeof mdir, "%s/golden/%s/model", WICK_TEST_DIR, name);
    snprintf(adir, sizeof adir, "%s/golden/%s/adapter1", WICK_TEST_DIR, name);
    snprintf(gpath, sizeof gpath, "%s/golden/%s/golden.safetensors", WICK_TEST_DIR, name);
    wick_model *m = load_on(mdir, "cuda", 1);
    wick_st *g = NULL;
    tu_adapter ad;
    CHECK_OK(wick_st_open(gpath, &g));
    if (!m || !g || tu_adapter_load(m, adir, &ad)) return;
    size_t n, cnt;
    int32_t *ids = tu_i64(g, "train_input_ids", &n), *lab = tu_i64(g, "train_labels", NULL);
    int B = 2, lens[2] = {(int)n / 2, (int)n / 2};
    wick_train_opts o = wick_train_opts_default();
    o.lr = 1e-2f, o.weight_decay = 0.01f, o.max_grad_norm = 0, o.recompute = recompute;
    wick_trainer *t = NULL;
    CHECK_OK(wk_trainer_new_pairs(m, ad.ptrs, &o, &t));
    if (!t) return;
    if (recompute) wk_trainer_set_head_rows(t, 7);
    double loss = 0;
    int64_t nt = 0;
    CHECK_OK(wick_trainer_accumulate(t, ids, lab, lens, B, &loss, &nt));
    float *gl = tu_copy_f32(g, "train_loss", &cnt);
    CHECK(fabs(loss / nt - gl[0]) <= 1e-5, "cuda %s: loss %.7f vs golden %.7f", name, loss / nt, gl[0]);
    int np;
    wk_tparam *par = wk_trainer_params(t, &np);
    char who[96];
    snprintf(who, sizeof who, "cuda %s", name);
    float **gc = tu_check_grads(g, par, np, nt, 14 * m->c.n_layers, who);
    wick_step_info info;
    CHECK_OK(wick_trainer_step(t, nt, NULL, &info));
    par = wk_trainer_params(t, &np); /* syncs the adapter back */
    tu_check_after_step(g, par, np, gc, o.lr, who);
    double loss2 = tu_check_loss_after(t, g, ids, lab, lens, B, who);
    printf("cuda %s recompute=%d: loss %.6f -> %.6f, grad norm %.6f\n", name, recompute, loss / nt, loss2,
           info.grad_norm);
    free(gl), free(ids), free(lab);
    wick_trainer_free(t);
    tu_adapter_free(&ad);
    wick_st_close(g);
    wick_model_free(m);
}

/* Two micro-batches (packed sequences), label smoothing, dropout, clipping, warmup + cosine, two
 * steps: the CUDA trainer on (mc) against the CPU trainer on (mh), each with its own adapter copy. */
static void trainer_pair(wick_model *mh, wick_model *mc, const char *adir, const wick_train_opts *o, double loss_tol,
                         double grad_tol, const char *what) {
    tu_adapter ah, ac;
    if (!mh || !mc || tu_adapter_load(mh, adir, &ah)) return;
    if (tu_adapter_load(mc, adir, &ac)) return;
    wick_trainer *th = NULL, *tc = NULL;
    CHECK_OK(wk_trainer_new_pairs(mh, ah.ptrs, o, &th));
    CHECK_OK(wk_trainer_new_pairs(mc, ac.ptrs, o, &tc));
    int V = mh->c.vocab, lens0[2] = {16, 9}, lens1[3] = {5, 16, 3};
    int32_t ids[25], lab[25];
    for (int i = 0; i < 25; i++) ids[i] = (i * 7919 + 11) % V, lab[i] = i % 6 == 2 ? -100 : (i * 104729 + 5) % V;
    double worst_loss = 0, worst_grad = 0, worst_norm = 0;
    for (int s = 0; s < 2 && th && tc; s++) {
        double lh = 0, lc = 0;
        int64_t nh = 0, nc = 0;
        CHECK_OK(wick_trainer_accumulate(th, ids, lab, lens0, 2, &lh, &nh));
        CHECK_OK(wick_trainer_accumulate(tc, ids, lab, lens0, 2, &lc, &nc));
        CHECK_OK(wick_trainer_accumulate(th, ids, lab, lens1, 3, &lh, &nh));
        CHECK_OK(wick_trainer_accumulate(tc, ids, lab, lens1, 3, &lc, &nc));
        CHECK(nh == nc && nh > 0, "%s: %lld vs %lld targets", what, (long long)nh, (long long)nc);
        worst_loss = fmax(worst_loss, fabs(lh - lc) / fabs(lh));
        int np1, np2;
        wk_tparam *ph = wk_trainer_params(th, &np1), *pc = wk_trainer_params(tc, &np2);
        for (int i = 0; i < np1 && np1 == np2; i++) worst_grad = fmax(worst_grad, t_rel_l2(pc[i].g, ph[i].g, ph[i].n));
        wick_step_info ih, ic;
        CHECK_OK(wick_trainer_step(th, nh, NULL, &ih));
        CHECK_OK(wick_trainer_step(tc, nc, NULL, &ic));
        worst_norm = fmax(worst_norm, fabs(ih.grad_norm - ic.grad_norm) / ih.grad_norm);
        CHECK(ih.lr == ic.lr && ic.step == s + 1, "%s: step %d lr %g vs %g", what, s + 1, ic.lr, ih.lr);
    }
    CHECK(worst_loss <= loss_tol, "%s: loss relative difference %g > %g", what, worst_loss, loss_tol);
    CHECK(worst_grad <= grad_tol, "%s: gradient rel L2 %g > %g", what, worst_grad, grad_tol);
    CHECK(worst_norm <= grad_tol, "%s: grad norm relative difference %g > %g", what, worst_norm, grad_tol);
    CHECK_OK(wick_trainer_sync_adapter(tc));
    double wd = 0;
    for (int i = 0; i < mh->c.n_layers * WK_P_COUNT; i++)
        if (ah.ptrs[i]) {
            size_t na = (size_t)ah.pairs[i].r * mh->layers[i / WK_P_COUNT].p[i % WK_P_COUNT].cols;
            wd = fmax(wd, t_rel_l2(ac.pairs[i].A, ah.pairs[i].A, na));
        }
    CHECK(wd <= grad_tol, "%s: lora_A after two steps rel L2 %g", what, wd);
    printf("%s: loss rel %.3g, grad rel L2 %.3g, grad norm rel %.3g, A after 2 steps rel L2 %.3g\n", what, worst_loss,
           worst_grad, worst_norm, wd);
    wick_trainer_free(th), wick_trainer_free(tc);
    tu_adapter_free(&ah), tu_adapter_free(&ac);
}

static void parity(void) {
    wick_model *mh = load_on(T_PATH("golden/llama_tiny/model"), "cpu", 1);
    wick_model *mc = load_on(T_PATH("golden/llama_tiny/model"), "cuda", 1);
    wick_train_opts o = wick_train_opts_default();
    o.lr = 5e-3f, o.weight_decay = 0.01f, o.max_grad_norm = 0.5f, o.scheduler = WICK_SCHED_COSINE;
    o.warmup_steps = 1, o.total_steps = 3, o.label_smoothing = 0.1f, o.lora_dropout = 0.2f;
    trainer_pair(mh, mc, T_PATH("golden/llama_tiny/adapter1"), &o, 1e-5, 1e-4, "cuda fp32 vs cpu (smoothing, dropout)");
    wick_model_free(mh), wick_model_free(mc);
    /* bf16 weights: the CUDA products round activations to bf16 (documented tolerance) */
    mh = load_on(T_PATH("golden/qwen2_tiny_bf16/model"), "cpu", 1);
    mc = load_on(T_PATH("golden/qwen2_tiny_bf16/model"), "cuda", 1);
    o = wick_train_opts_default();
    o.lr = 1e-2f;
    trainer_pair(mh, mc, T_PATH("golden/qwen2_tiny/adapter1"), &o, 2e-2, 5e-2, "cuda bf16 vs cpu");
    wick_model_free(mh), wick_model_free(mc);
}

/* The same micro-batch shape four times (run, captured as a graph, replayed twice) and an
 * evaluation of it twice: the same losses and 4x the gradient of the CPU trainer's single batch. */
static void graph_replay(void) {
    wick_model *mh = load_on(T_PATH("golden/qwen3_tiny/model"), "cpu", 1);
    wick_model *mc = load_on(T_PATH("golden/qwen3_tiny/model"), "cuda", 1);
    wick_st *g = NULL;
    tu_adapter ah, ac;
    CHECK_OK(wick_st_open(T_PATH("golden/qwen3_tiny/golden.safetensors"), &g));
    if (!mh || !mc || !g || tu_adapter_load(mh, T_PATH("golden/qwen3_tiny/adapter1"), &ah)) return;
    if (tu_adapter_load(mc, T_PATH("golden/qwen3_tiny/adapter1"), &ac)) return;
    int32_t *ids = tu_i64(g, "train_input_ids", NULL), *lab = tu_i64(g, "train_labels", NULL);
    int lens[3] = {16, 11, 5};
    wick_trainer *th = NULL, *tc = NULL;
    CHECK_OK(wk_trainer_new_pairs(mh, ah.ptrs, NULL, &th));
    CHECK_OK(wk_trainer_new_pairs(mc, ac.ptrs, NULL, &tc));
    double lh = 0, l[6] = {0};
    int64_t nh = 0, nc = 0;
    if (th && tc) {
        CHECK_OK(wick_trainer_accumulate(th, ids, lab, lens, 3, &lh, &nh));
        for (int i = 0; i < 4; i++) CHECK_OK(wick_trainer_accumulate(tc, ids, lab, lens, 3, &l[i], &nc));
        for (int i = 4; i < 6; i++) CHECK_OK(wick_trainer_eval(tc, ids, lab, lens, 3, &l[i], NULL));
        for (int i = 0; i < 6; i++) CHECK(fabs(l[i] - lh) <= 1e-5 * fabs(lh), "replay %d: loss %.7f vs %.7f", i, l[i], lh);
        CHECK(nc == 4 * nh, "replay: %lld targets vs 4 x %lld", (long long)nc, (long long)nh);
        int np1, np2;
        wk_tparam *ph = wk_trainer_params(th, &np1), *pc = wk_trainer_params(tc, &np2);
        double worst = 0;
        for (int i = 0; i < np1 && np1 == np2; i++) {
            float *g4 = malloc(sizeof(float) * ph[i].n);
            for (size_t j = 0; j < ph[i].n; j++) g4[j] = 4 * ph[i].g[j];
            worst = fmax(worst, t_rel_l2(pc[i].g, g4, ph[i].n));
            free(g4);
        }
        CHECK(np1 == np2 && worst <= 1e-5, "replay: gradient rel L2 %g vs 4x the CPU's", worst);
    }
    wick_trainer_free(th), wick_trainer_free(tc);
    tu_adapter_free(&ah), tu_adapter_free(&ac);
    free(ids), free(lab);
    wick_st_close(g);
    wick_model_free(mh), wick_model_free(mc);
}

/* `wick train --device cuda` on the multistep golden, then a resume from checkpoint-6. */
static void cli_multistep(void) {
    char tmp[] = "/tmp/wick_cuda_train_XXXXXX", cmd[4096], path[600];
    if (!mkdtemp(tmp)) return;
    const char *fmt = "%s train --device cuda --model %s --data %s --out %s/%s --init-adapter %s --batch-size 2 "
                      "--grad-accum 2 --max-steps 10 --lr 5e-3 --scheduler cosine --warmup-steps 3 --max-grad-norm 1 "
                      "--weight-decay 0.01 --no-shuffle --save-every 3%s%s >/dev/null 2>%s/stderr.txt";
    char resume[600];
    snprintf(resume, sizeof resume, " --resume %s/ms/checkpoint-6", tmp);
    for (int pass = 0; pass < 2; pass++) {
        snprintf(cmd, sizeof cmd, fmt, WICK_BIN, T_PATH("golden/llama_tiny/model"),
                 T_PATH("golden/llama_tiny/multistep/train.jsonl"), tmp, pass ? "rs" : "ms",
                 T_PATH("golden/llama_tiny/adapter1"), pass ? resume : "", "", tmp);
        CHECK(system(cmd) == 0, "wick train --device cuda pass %d failed (see %s/stderr.txt)", pass, tmp);
    }
    json_t *g = json_load_file(T_PATH("golden/llama_tiny/multistep/golden.json"), 0, NULL);
    json_t *steps = json_object_get(g, "steps");
    snprintf(path, sizeof path, "%s/ms/metrics.jsonl", tmp);
    FILE *f = fopen(path, "r");
    char line[4096];
    size_t k = 0;
    while (f && fgets(line, sizeof line, f) && k < json_array_size(steps)) {
        json_t *m = json_loads(line, 0, NULL), *e = json_array_get(steps, k++);
        double loss = json_real_value(json_object_get(m, "loss")), gl = json_real_value(json_object_get(e, "loss"));
        double gn = json_real_value(json_object_get(m, "grad_norm")), ggn = json_real_value(json_object_get(e, "grad_norm"));
        CHECK(fabs(loss - gl) <= 1e-5, "cuda multistep step %zu loss %.8f vs %.8f", k, loss, gl);
        CHECK(fabs(gn - ggn) <= 1e-4 * ggn, "cuda multistep step %zu grad norm %.8f vs %.8f", k, gn, ggn);
        json_decref(m);
    }
    if (f) fclose(f);
    CHECK(k == 10, "cuda multistep: metrics has %zu of 10 steps", k);
    json_decref(g);
    wick_st *fa = NULL, *fb = NULL, *fr = NULL;
    char pb[700], pr[700];
    snprintf(pb, sizeof pb, "%s/ms/adapter_model.safetensors", tmp);
    snprintf(pr, sizeof pr, "%s/rs/adapter_model.safetensors", tmp);
    CHECK_OK(wick_st_open(T_PATH("golden/llama_tiny/multistep/final_adapter.safetensors"), &fa));
    CHECK_OK(wick_st_open(pb, &fb));
    CHECK_OK(wick_st_open(pr, &fr));
    float worst = 0, worst_r = 0;
    int n = 0;
    for (int i = 0; fa && fb && fr && i < wick_st_count(fa); i++) {
        wick_tensor_view va, vb, vr;
        wick_st_get(fa, i, &va);
        if (wick_st_find(fb, va.name, &vb) || wick_st_find(fr, va.name, &vr)) {
            worst = INFINITY;
            continue;
        }
        size_t cnt = 1;
        for (int d = 0; d < va.ndim; d++) cnt *= (size_t)va.shape[d];
        worst = fmaxf(worst, t_max_abs_diff(vb.data, va.data, cnt));
        worst_r = fmaxf(worst_r, t_max_abs_diff(vr.data, vb.data, cnt));
        n++;
    }
    CHECK(worst <= 1e-4f && n == 42, "cuda multistep final adapter max |diff| %g over %d tensors", worst, n);
    CHECK(worst_r <= 1e-6f, "cuda resumed final adapter differs by %g", worst_r);
    wick_st_close(fa), wick_st_close(fb), wick_st_close(fr);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0, "cleanup");
}
#endif

int main(void) {
    if (ct_no_device("test_cuda_train")) return t_summary();
#ifdef WICK_HAVE_CUDA
    G = wk_backend_cuda(0);
    CHECK(G != NULL, "cuda backend: %s", wick_last_error());
    if (!G) return t_summary();
    const wk_train_ops *ref = wk_train_ops_ref();
    test_elementwise(ref);
    test_swiglu_lora(ref);
    test_attention(ref);
    test_attention_refused();
    test_xent(ref);
    test_products();
    golden_case("qwen2_tiny", 0);
    golden_case("llama_tiny", 0);
    golden_case("qwen3_tiny", 0);
    golden_case("qwen3_tiny", 1);
    parity();
    graph_replay();
    cli_multistep();
#endif
    return t_summary();
}
