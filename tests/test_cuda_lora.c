/* test_cuda_lora.c — adapters and quantized weights on the CUDA backend: the fused
 * segmented-LoRA kernel against the CPU reference (mixed segments, ranks 8/16/64, empty
 * segments, the generic fallback); the adapter goldens of the tiny models on "cuda" in
 * fp32 within 1e-4 (prefill and graph-captured decode); hot-swap back and forth in one
 * session; merge/unmerge on the device (merged = golden, unmerged = the base bit for
 * bit); bf16 weights with an adapter against the CPU (prefill rel L2 <= 1e-2: cuBLAS
 * rounds activations to bf16; decode max |diff| <= 1e-4: fp32 activations); GGUF
 * Q8_0/Q4_1 weights (dequantized to bf16 on upload) against the CPU's quantized
 * kernels. Without a GPU it checks that adapters on "cuda" fail cleanly and skips. */
#include "t.h"
#include "backend/backend.h"
#include "lora/adapter.h"
#ifdef WICK_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include <stdlib.h>

#ifdef WICK_HAVE_CUDA
#define CT_SEED 0x2545F4914F6CDD1Dull
#include "cuda_t.h"

static wk_backend *R; /* the cpu reference */


/* One lora_seg call with segments of rows[g] rows and ranks rk[g] (0: not adapted), on both backends. */
static void seg_case(int nseg, const int *rows, const int *rk, int in, int out) {
    int seg[64], n = 0, maxr = 1;
    seg[0] = 0;
    for (int g = 0; g < nseg; g++) seg[g + 1] = (n += rows[g]), maxr = rk[g] > maxr ? rk[g] : maxr;
    float *x = rvec((size_t)n * in, 1.f), *y = rvec((size_t)n * out, 1.f), *hA[64], *hB[64], sc[64];
    const float *dA[64], *dB[64], *cA[64], *cB[64];
    for (int g = 0; g < nseg; g++) {
        hA[g] = rk[g] ? rvec((size_t)rk[g] * in, 1.f) : NULL;
        hB[g] = rk[g] ? rvec((size_t)out * rk[g], 1.f) : NULL;
        cA[g] = hA[g], cB[g] = hB[g];
        dA[g] = rk[g] ? dev(hA[g], sizeof(float) * rk[g] * in) : NULL;
        dB[g] = rk[g] ? dev(hB[g], sizeof(float) * out * rk[g]) : NULL;
        sc[g] = 0.25f + 0.5f * (float)g;
    }
    float *dx = dev(x, sizeof(float) * n * in), *dy = dev(y, sizeof(float) * n * out);
    float *dt = G->alloc(G, sizeof(float) * (size_t)n * maxr), *ht = malloc(sizeof(float) * (size_t)n * maxr);
    R->lora_seg(R, y, x, n, in, out, nseg, seg, cA, cB, rk, sc, ht);
    G->lora_seg(G, dy, dx, n, in, out, nseg, seg, dA, dB, rk, sc, dt);
    float *got = malloc(sizeof(float) * (size_t)n * out);
    G->download(G, got, dy, sizeof(float) * n * out);
    CHECK(G->check(G) == WICK_OK, "lora_seg: %s", wick_last_error());
    double e = t_rel_l2(got, y, (size_t)n * out);
    CHECK(e <= 1e-5, "lora_seg nseg=%d n=%d in=%d out=%d: rel L2 %g", nseg, n, in, out, e);
    for (int g = 0; g < nseg; g++) {
        G->free(G, (void *)dA[g]), G->free(G, (void *)dB[g]);
        free(hA[g]), free(hB[g]);
    }
    G->free(G, dx), G->free(G, dy), G->free(G, dt);
    free(x), free(y), free(ht), free(got);
}

static void test_lora_seg(void) {
    int r1[] = {3, 0, 1, 9, 12, 2}, k1[] = {8, 16, 64, 16, 0, 8}; /* an empty and an unadapted segment */
    seg_case(6, r1, k1, 96, 136);
    int r2[] = {1}, k2[] = {16}; /* one decode row, qwen2.5-0.5b q_proj shape */
    seg_case(1, r2, k2, 896, 896);
    int r3[] = {17, 23}, k3[] = {64, 8}; /* in not a multiple of 4: scalar loads */
    seg_case(2, r3, k3, 130, 70);
    int r4[] = {1, 1, 1, 1, 1, 1, 1, 1}, k4[] = {16, 8, 64, 16, 16, 8, 64, 8}; /* a batch of 8 sequences */
    seg_case(8, r4, k4, 256, 4864);
    int r5[] = {1100}, k5[] = {16}; /* prefill-sized: generic path */
    seg_case(1, r5, k5, 64, 48);
    int r6[] = {5, 4}, k6[] = {200, 8}; /* rank above the fused kernel's limit: generic path */
    seg_case(2, r6, k6, 64, 40);
}

/* The fused decode ops (matvec with norm / swiglu input and shrink rows; rope_kv) against the reference ops. */
/* post: the expand of the launch's own shrink (pB (out, ra), ps 0.3) added to every row; post 2:
 * pB block-diagonal over 3 row blocks (out/2, out/4, the rest) of ranks ra/2, ra/4 and the rest,
 * post 3: the same over 2 halves (gate|up); acc: accumulate into y (else overwrite). */
static void mv_case_pg(int in, int out, int mode, wick_dtype dt, int ra, float scale, int bias, int post, int acc,
                       int glu) {
    float *pB = rvec((size_t)out * (ra ? ra : 1), 1.f);
    int nb = post == 2 ? 3 : post == 3 ? 2 : 0;
    int rows[3] = {out / 2, out / 4, out - out / 2 - out / 4}, cols[3] = {ra / 2, ra / 4, ra - ra / 2 - ra / 4};
    if (nb == 2) rows[1] = out - out / 2, cols[1] = ra - ra / 2;
    for (int o = 0, k = 0, r0 = 0, c0 = 0; o < out && nb; o++) {
        if (o >= r0 + rows[k]) r0 += rows[k], c0 += cols[k], k++;
        for (int j = 0; j < ra; j++)
            if (j < c0 || j >= c0 + cols[k]) pB[(size_t)o * ra + j] = 0.f;
    }
    float *dpB = dev(pB, 4 * (size_t)out * (ra ? ra : 1));
    float *x = rvec(in, 1.f), *up = rvec(in, 1.f), *nw = rvec(in, 1.f), *w = rvec((size_t)out * in, 1.f), *A = rvec((size_t)(ra ? ra : 1) * in, 1.f);
    float *b = rvec(out, 1.f), *y0 = rvec(out, 1.f), *y = malloc(sizeof(float) * out), *xs = malloc(sizeof(float) * in);
    float *t = malloc(sizeof(float) * (ra ? ra : 1));
    uint16_t *wh = malloc(2 * (size_t)out * in);
    for (size_t i = 0; i < (size_t)out * in; i++) wh[i] = wk_f32_to_bf16(w[i]);
    const void *wp = dt == WICK_DT_F32 ? (const void *)w : (const void *)wh;
    wk_mat W = {.w = wp, .dt = dt, .rows = out, .cols = in}, Wd = W;
    Wd.w = dev(wp, (size_t)out * in * wick_dtype_size(dt));
    if (mode == 1) R->rmsnorm(R, xs, x, nw, 1, in, 1e-6f);
    else if (mode == 2) R->swiglu(R, xs, x, up, (size_t)in);
    else memcpy(xs, x, sizeof(float) * in);
    R->matmul(R, y, xs, &W, NULL, 1, 0);
    for (int o = 0; o < out; o++) y[o] = (acc ? y0[o] : 0.f) + scale * y[o] + (bias ? b[o] : 0.f);
    if (ra) R->matmul_f32(R, t, xs, A, 1, in, ra, 1.f, 0);
    if (ra && post) R->matmul_f32(R, y, t, pB, 1, ra, out, 0.3f, 1);
    int ny = glu ? out / 2 : out; /* glu: y[o] = silu(gate_o)·up_o over the halves */
    for (int o = 0; o < ny && glu; o++) y[o] = y[o] / (1.f + expf(-y[o])) * y[ny + o];
    float *dx = dev(x, 4 * in), *dup = dev(up, 4 * in), *dnw = dev(nw, 4 * in), *dA = dev(A, 4 * (size_t)(ra ? ra : 1) * in);
    float *db = dev(b, 4 * out), *dy = dev(y0, 4 * out), *dtt = G->alloc(G, 4 * (size_t)(ra ? ra : 1));
    wk_rowin ri = {.x = dx, .nw = mode == 1 ? dnw : NULL, .up = mode == 2 ? dup : NULL, .eps = 1e-6f, .scale = scale,
                   .in = in, .A = ra ? dA : NULL, .ra = ra, .t = dtt};
    if (post) ri.pB = dpB, ri.ps = 0.3f, ri.pnblk = nb;
    for (int k = 0; k < nb; k++) ri.pbrows[k] = rows[k], ri.pbcols[k] = cols[k];
    ri.glu = glu;
    G->matvec(G, dy, &ri, &Wd, bias ? db : NULL, acc);
    float *gy = malloc(sizeof(float) * out), *gt = malloc(sizeof(float) * (ra ? ra : 1));
    G->download(G, gy, dy, 4 * ny);
    if (ra) G->download(G, gt, dtt, 4 * (size_t)ra);
    CHECK(G->check(G) == WICK_OK, "matvec: %s", wick_last_error());
    double e = t_rel_l2(gy, y, ny), es = ra ? t_rel_l2(gt, t, ra) : 0;
    const char *cfg = getenv("WICK_MV_CFG");
    CHECK(e <= 1e-5 && es <= 1e-5, "matvec in=%d out=%d mode=%d %s ra=%d post=%d acc=%d glu=%d cfg=%s: rel L2 %g (shrink %g)",
          in, out, mode, wick_dtype_name(dt), ra, post, acc, glu, cfg ? cfg : "-", e, es);
    G->free(G, dpB);
    free(pB);
    G->free(G, (void *)Wd.w), G->free(G, dx), G->free(G, dup), G->free(G, dnw), G->free(G, dA), G->free(G, db);
    G->free(G, dy), G->free(G, dtt);
    free(x), free(up), free(nw), free(w), free(A), free(b), free(y0), free(y), free(xs), free(t), free(wh), free(gy), free(gt);
}

static void mv_case_p(int in, int out, int mode, wick_dtype dt, int ra, float scale, int bias, int post, int acc) {
    mv_case_pg(in, out, mode, dt, ra, scale, bias, post, acc, 0);
}

static void mv_case_x(int in, int out, int mode, wick_dtype dt, int ra, float scale, int bias, int post) {
    mv_case_p(in, out, mode, dt, ra, scale, bias, post, 1);
}

static void mv_case(int in, int out, int mode, wick_dtype dt, int ra, float scale, int bias) {
    mv_case_x(in, out, mode, dt, ra, scale, bias, 0);
}

static void rope_kv_case(int H, int Hk, int D, int norm, int ra) {
    int cap = 40, p = 29, Q = (H + 2 * Hk) * D;
    float *qkv = rvec(Q, 1.f), *qn = rvec(D, 1.f), *kn = rvec(D, 1.f), *inv = malloc(sizeof(float) * D / 2);
    float *B = rvec((size_t)Q * (ra ? ra : 1), 1.f), *t = rvec(ra ? ra : 1, 1.f);
    for (int j = 0; j < D / 2; j++) inv[j] = powf(10000.f, -2.f * j / D);
    size_t kvn = (size_t)Hk * cap * D;
    float *kc = calloc(kvn, 4), *vc = calloc(kvn, 4);
    int32_t pos = p;
    float *dq = dev(qkv, 4 * (size_t)Q), *dqn = dev(qn, 4 * D), *dkn = dev(kn, 4 * D), *dinv = dev(inv, 4 * D / 2);
    float *dB = dev(B, 4 * (size_t)Q * (ra ? ra : 1)), *dt = dev(t, 4 * (ra ? ra : 1));
    float *dkc = dev(kc, 4 * kvn), *dvc = dev(vc, 4 * kvn);
    int32_t *dpos = dev(&pos, 4);
    if (ra) R->matmul_f32(R, qkv, t, B, 1, ra, Q, 0.75f, 1);
    float *q = qkv, *k = qkv + H * D, *v = k + Hk * D;
    if (norm) R->rmsnorm(R, q, q, qn, H, D, 1e-6f), R->rmsnorm(R, k, k, kn, Hk, D, 1e-6f);
    R->rope(R, q, &pos, 1, H, D, inv);
    R->rope(R, k, &pos, 1, Hk, D, inv);
    R->kv_store(R, kc, vc, k, v, 1, p, NULL, Hk, D, cap);
    wk_expand e = {.B = dB, .t = dt, .ra = ra, .s = 0.75f};
    G->rope_kv(G, dq, dq + H * D, dq + (H + Hk) * D, dkc, dvc, dpos, H, Hk, D, cap, dinv, norm ? dqn : NULL,
               norm ? dkn : NULL, 1e-6f, ra ? &e : NULL);
    float *gq = malloc(4 * (size_t)Q), *gk = malloc(4 * kvn), *gv = malloc(4 * kvn);
    G->download(G, gq, dq, 4 * (size_t)H * D);
    G->download(G, gk, dkc, 4 * kvn);
    G->download(G, gv, dvc, 4 * kvn);
    CHECK(G->check(G) == WICK_OK, "rope_kv: %s", wick_last_error());
    double eq = t_rel_l2(gq, q, (size_t)H * D), ek = t_rel_l2(gk, kc, kvn), ev = t_rel_l2(gv, vc, kvn);
    CHECK(eq <= 1e-5 && ek <= 1e-5 && ev <= 1e-5, "rope_kv H=%d Hk=%d D=%d norm=%d ra=%d: q %g k %g v %g", H, Hk, D,
          norm, ra, eq, ek, ev);
    G->free(G, dq), G->free(G, dqn), G->free(G, dkn), G->free(G, dinv), G->free(G, dB), G->free(G, dt);
    G->free(G, dkc), G->free(G, dvc), G->free(G, dpos);
    free(qkv), free(qn), free(kn), free(inv), free(B), free(t), free(kc), free(vc), free(gq), free(gk), free(gv);
}

/* The q|k|v product with RoPE and the KV store in the launch (wk_rowin.rope) against the
 * reference ops: RMSNorm, product (+ bias, + the adapter's block-diagonal expand), rope of
 * q and k at position p, kv_store; y and both caches compared. */
static void mv_rope_case(int H, int Hk, int D, int in, int ra, int bias, wick_dtype dt) {
    int out = (H + 2 * Hk) * D, cap = 37, p = 29;
    float *x = rvec(in, 1.f), *nw = rvec(in, 1.f), *w = rvec((size_t)out * in, 1.f), *A = rvec((size_t)(ra ? ra : 1) * in, 1.f);
    float *pB = rvec((size_t)out * (ra ? ra : 1), 1.f), *b = rvec(out, 1.f), *y = malloc(sizeof(float) * out);
    float *xs = malloc(sizeof(float) * in), *t = malloc(sizeof(float) * (ra ? ra : 1)), *inv = malloc(sizeof(float) * D / 2);
    int rows[3] = {H * D, Hk * D, Hk * D}, cols[3] = {ra / 2, ra / 4, ra - ra / 2 - ra / 4};
    for (int o = 0, k = 0, r0 = 0, c0 = 0; o < out && ra; o++) {
        if (o >= r0 + rows[k]) r0 += rows[k], c0 += cols[k], k++;
        for (int j = 0; j < ra; j++)
            if (j < c0 || j >= c0 + cols[k]) pB[(size_t)o * ra + j] = 0.f;
    }
    for (int j = 0; j < D / 2; j++) inv[j] = powf(10000.f, -2.f * j / D);
    size_t kvn = (size_t)Hk * cap * D;
    float *kc = rvec(kvn, 1.f), *vc = rvec(kvn, 1.f);
    uint16_t *wh = malloc(2 * (size_t)out * in);
    for (size_t i = 0; i < (size_t)out * in; i++) wh[i] = wk_f32_to_bf16(w[i]);
    const void *wp = dt == WICK_DT_F32 ? (const void *)w : (const void *)wh;
    wk_mat W = {.w = wp, .dt = dt, .rows = out, .cols = in}, Wd = W;
    Wd.w = dev(wp, (size_t)out * in * wick_dtype_size(dt));
    float *dkc = dev(kc, 4 * kvn), *dvc = dev(vc, 4 * kvn); /* the caches' other positions must survive */
    R->rmsnorm(R, xs, x, nw, 1, in, 1e-6f);
    R->matmul(R, y, xs, &W, bias ? b : NULL, 1, 0);
    if (ra) R->matmul_f32(R, t, xs, A, 1, in, ra, 1.f, 0), R->matmul_f32(R, y, t, pB, 1, ra, out, 0.3f, 1);
    int32_t pos = p;
    R->rope(R, y, &pos, 1, H, D, inv);
    R->rope(R, y + H * D, &pos, 1, Hk, D, inv);
    R->kv_store(R, kc, vc, y + H * D, y + (H + Hk) * D, 1, p, NULL, Hk, D, cap);
    float *dx = dev(x, 4 * in), *dnw = dev(nw, 4 * in), *dA = dev(A, 4 * (size_t)(ra ? ra : 1) * in);
    float *dpB = dev(pB, 4 * (size_t)out * (ra ? ra : 1)), *db = dev(b, 4 * out), *dinv = dev(inv, 4 * D / 2);
    float *dy = G->alloc(G, 4 * (size_t)out), *dtt = G->alloc(G, 4 * (size_t)(ra ? ra : 1));
    int32_t *dpos = dev(&pos, 4);
    wk_rope_out ro = {dpos, dinv, dkc, dvc, H, Hk, D, cap};
    wk_rowin ri = {.x = dx, .nw = dnw, .eps = 1e-6f, .scale = 1.f, .in = in, .rope = &ro};
    if (ra) {
        ri.A = dA, ri.ra = ra, ri.t = dtt, ri.pB = dpB, ri.ps = 0.3f, ri.pnblk = 3;
        for (int k = 0; k < 3; k++) ri.pbrows[k] = rows[k], ri.pbcols[k] = cols[k];
    }
    G->matvec(G, dy, &ri, &Wd, bias ? db : NULL, 0);
    float *gy = malloc(4 * (size_t)out), *gk = malloc(4 * kvn), *gv = malloc(4 * kvn);
    G->download(G, gy, dy, 4 * (size_t)out);
    G->download(G, gk, dkc, 4 * kvn);
    G->download(G, gv, dvc, 4 * kvn);
    CHECK(G->check(G) == WICK_OK, "matvec rope: %s", wick_last_error());
    double ey = t_rel_l2(gy, y, out), ek = t_rel_l2(gk, kc, kvn), ev = t_rel_l2(gv, vc, kvn);
    const char *cfg = getenv("WICK_MV_CFG");
    CHECK(ey <= 1e-5 && ek <= 1e-5 && ev <= 1e-5, "matvec rope H=%d Hk=%d D=%d in=%d ra=%d %s cfg=%s: y %g k %g v %g", H,
          Hk, D, in, ra, wick_dtype_name(dt), cfg ? cfg : "-", ey, ek, ev);
    G->free(G, (void *)Wd.w), G->free(G, dkc), G->free(G, dvc), G->free(G, dx), G->free(G, dnw), G->free(G, dA);
    G->free(G, dpB), G->free(G, db), G->free(G, dinv), G->free(G, dy), G->free(G, dtt), G->free(G, dpos);
    free(x), free(nw), free(w), free(A), free(pB), free(b), free(y), free(xs), free(t), free(inv), free(kc), free(vc);
    free(wh), free(gy), free(gk), free(gv);
}

/* The greedy pick against the host: max, first index of the max, Σ exp(x - max) (kind 1:
 * planted ties; 2: -inf and NaN entries; 3: all -inf, index -1). Twice per case: the
 * launch's counter resets itself. */
static void pick_case(int n, int kind) {
    float *x = rvec((size_t)n, 3.f);
    if (kind == 1 && n > 10) x[n / 3] = x[n / 2] = x[n - 1] = 9.f;
    for (int i = 0; kind == 2 && i < n; i += 5) x[i] = i % 10 ? -INFINITY : NAN;
    for (int i = 0; kind == 3 && i < n; i++) x[i] = -INFINITY;
    float m = -INFINITY;
    int best = -1;
    for (int i = 0; i < n; i++)
        if (x[i] > m) m = x[i], best = i;
    double z = 0;
    for (int i = 0; i < n && best >= 0; i++)
        if (x[i] > -INFINITY) z += exp((double)x[i] - m);
    float *dx = dev(x, 4 * (size_t)n), *dout = G->alloc(G, 16), out[3];
    for (int rep = 0; rep < 2; rep++) {
        G->pick(G, dout, dx, n);
        G->download(G, out, dout, sizeof out);
        int32_t id;
        memcpy(&id, &out[2], 4);
        CHECK(G->check(G) == WICK_OK, "pick: %s", wick_last_error());
        CHECK(id == best && (best < 0 || (out[0] == m && fabs(out[1] / z - 1) < 1e-5)),
              "pick n=%d kind=%d: id %d (want %d), max %g (%g), sum %g (%g)", n, kind, id, best, (double)out[0],
              (double)m, (double)out[1], z);
    }
    G->free(G, dx), G->free(G, dout);
    free(x);
}

static void test_decode_ops(void) {
    int pn[] = {1, 7, 1000, 151936, 152064, 300000};
    for (int i = 0; i < 6; i++)
        for (int kind = 0; kind < 4; kind++) pick_case(pn[i], kind);
    for (int mode = 0; mode < 3; mode++) {
        mv_case(896, 1152, mode, WICK_DT_BF16, 48, 1.f, 1);
        mv_case(896, 300, mode, WICK_DT_F32, 0, 1.f, 0);
        mv_case(4864, 896, mode, WICK_DT_BF16, 16, 1.f, 0); /* long rows: a block per row */
        mv_case(2048, 64, mode, WICK_DT_F32, 8, 1.f, 1);
        mv_case(60, 40, mode, WICK_DT_F32, 4, 1.f, 1);      /* in % 8 != 0: unfused fallback */
        mv_case(1536, 100, mode, WICK_DT_BF16, 8, 1.f, 1);  /* streaming x, a warp per row */
        mv_case(512, 9000, mode, WICK_DT_BF16, 16, 1.f, 0); /* many rows: two per warp */
        mv_case(200, 4500, mode, WICK_DT_F32, 8, 1.f, 1);
    }
    for (int mode = 0; mode < 3; mode++) {
        mv_case(256, 17000, mode, WICK_DT_BF16, 16, 1.f, 1);     /* four rows per warp */
        mv_case(64, 70000, mode, WICK_DT_BF16, 0, 1.f, 0);       /* LM-head size: the norm as its own kernel */
        mv_case(13000, 40, mode, WICK_DT_BF16, 8, 1.f, 0);       /* staged row over 48 KB */
        mv_case_x(896, 896, mode, WICK_DT_BF16, 16, 1.f, 1, 1);   /* o: expand after the shrink */
        mv_case_x(4864, 896, mode, WICK_DT_BF16, 16, 1.f, 0, 1);  /* down: rows over 4 warps, last block */
        mv_case_x(3584, 3584, mode, WICK_DT_BF16, 16, 1.f, 0, 1);
        mv_case_x(512, 9000, mode, WICK_DT_F32, 12, 1.f, 1, 1);
        mv_case_x(896, 900, mode, WICK_DT_BF16, 20, 1.f, 0, 1);
        mv_case_x(60, 40, mode, WICK_DT_F32, 4, 1.f, 1, 1);       /* the fallback */
    }
    mv_case_p(896, 1152, 1, WICK_DT_BF16, 48, 1.f, 1, 2, 0);  /* q|k|v: block-diagonal, overwrite */
    mv_case_p(896, 9728, 1, WICK_DT_BF16, 32, 1.f, 0, 3, 0);  /* gate|up */
    mv_case_p(512, 20000, 1, WICK_DT_BF16, 32, 1.f, 0, 3, 0);  /* four rows per warp */
    mv_case_p(200, 300, 2, WICK_DT_F32, 10, 1.f, 1, 2, 0);   /* odd ranks */
    mv_case_p(896, 600, 0, WICK_DT_BF16, 80, 1.f, 0, 1, 1);  /* rank 80: lanes loop over columns */
    mv_case_p(896, 3, 0, WICK_DT_BF16, 64, 1.f, 0, 1, 1);    /* more A blocks than W blocks */
    /* gated products (gate|up halves into silu(gate)·up), then every unit shape of the streaming
     * kernel (WICK_MV_CFG) on decode shapes, with and without the adapter's shrink and expand */
    mv_case_pg(896, 9728, 1, WICK_DT_BF16, 32, 1.f, 0, 3, 0, 1);
    mv_case_pg(896, 9728, 1, WICK_DT_BF16, 0, 1.f, 1, 0, 0, 1);
    mv_case_pg(3584, 2000, 1, WICK_DT_BF16, 16, 1.f, 1, 3, 0, 1);
    mv_case_pg(200, 300, 1, WICK_DT_F32, 10, 1.f, 1, 3, 0, 1);
    mv_case_pg(60, 40, 1, WICK_DT_F32, 4, 1.f, 1, 3, 0, 1);     /* the fallback */
    mv_case_pg(64, 140000, 1, WICK_DT_BF16, 0, 1.f, 0, 0, 0, 1); /* over MV_NORM_MAX_ROWS: product, then swiglu */
    for (int cfg = 0; cfg < 10; cfg++) {
        char v[16];
        snprintf(v, sizeof v, "%d", cfg);
        setenv("WICK_MV_CFG", v, 1);
        mv_case_p(896, 1152, 1, WICK_DT_BF16, 48, 1.f, 1, 2, 0);
        mv_case_pg(896, 9728, 1, WICK_DT_BF16, 32, 1.f, 0, 3, 0, 1);
        mv_case_x(4864, 896, 2, WICK_DT_BF16, 16, 1.f, 0, 1);
        mv_case_x(4864, 896, 0, WICK_DT_BF16, 16, 1.f, 0, 1);
        mv_case_x(3584, 3584, 0, WICK_DT_BF16, 16, 1.f, 1, 1);
        mv_case_x(18944, 300, 0, WICK_DT_BF16, 16, 1.f, 0, 1); /* 7B down: x read in place, batches of columns */
        mv_case_pg(3584, 3000, 1, WICK_DT_BF16, 32, 1.f, 0, 3, 0, 1);
        mv_case(1000, 333, 1, WICK_DT_BF16, 0, 1.f, 1);         /* a partial last chunk and block */
    }
    unsetenv("WICK_MV_CFG");
    mv_rope_case(14, 2, 64, 896, 48, 1, WICK_DT_BF16); /* qwen2.5-0.5b */
    mv_rope_case(14, 2, 64, 896, 0, 1, WICK_DT_BF16);
    mv_rope_case(28, 4, 128, 3584, 48, 0, WICK_DT_BF16); /* qwen2.5-7b */
    mv_rope_case(6, 2, 18, 200, 10, 1, WICK_DT_F32);     /* head_dim not a multiple of 8 */
    mv_rope_case(4, 4, 32, 60, 8, 1, WICK_DT_F32);       /* the fallback: product, then rope_kv */
    for (int cfg = 0; cfg < 9; cfg++) {
        char v[16];
        snprintf(v, sizeof v, "%d", cfg);
        setenv("WICK_MV_CFG", v, 1);
        mv_rope_case(14, 2, 64, 896, 48, 1, WICK_DT_BF16);
        mv_rope_case(8, 2, 128, 1024, 16, 0, WICK_DT_BF16);
    }
    unsetenv("WICK_MV_CFG");
    mv_case(16, 896, 0, WICK_DT_F32, 0, 0.5f, 0);           /* a LoRA expand: scaled f32 product */
    mv_case(12, 100, 0, WICK_DT_F32, 0, 0.5f, 0);           /* the same through the fallback */
    for (int rep = 0; rep < 3; rep++) mv_case_x(896, 896, 0, WICK_DT_BF16, 16, 1.f, 0, 1); /* the counters reset */
    rope_kv_case(14, 2, 64, 0, 0);
    rope_kv_case(14, 2, 64, 0, 48);
    rope_kv_case(8, 4, 128, 1, 16); /* Qwen3: per-head q/k norm */
    rope_kv_case(6, 2, 18, 1, 8);   /* head_dim not a multiple of 32 */
    rope_kv_case(6, 2, 18, 1, 10);
}

static size_t numel(const wick_tensor_view *v) {
    size_t n = 1;
    for (int i = 0; i < v->ndim; i++) n *= (size_t)v->shape[i];
    return n;
}

static float *golden_f32(wick_st *g, const char *name, size_t *n) {
    wick_tensor_view v;
    if (wick_st_find(g, name, &v) != WICK_OK) return NULL;
    *n = numel(&v);
    float *p = malloc(sizeof(float) * *n);
    memcpy(p, v.data, sizeof(float) * *n);
    return p;
}

static int32_t *golden_ids(wick_st *g, const char *name, int *n) {
    wick_tensor_view v;
    if (wick_st_find(g, name, &v) != WICK_OK) return NULL;
    *n = (int)numel(&v);
    int32_t *p = malloc(sizeof(int32_t) * (size_t)*n);
    for (int i = 0; i < *n; i++) p[i] = (int32_t)((const int64_t *)v.data)[i];
    return p;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) b = x[i] > x[b] ? i : b;
    return b;
}

/* Sequence b of the golden input one id at a time (decode steps: graph capture and replay);
 * mix: a matvec with its own shrink and expand runs directly between steps (the launches
 * inside the graph and outside it share the backend's shrink slots). */
static float decode_diff_mix(wick_session *s, const int32_t *ids, int T, const float *want, int V, int mix) {
    float *row = malloc(sizeof(float) * V), worst = 0;
    wick_session_reset(s);
    for (int t = 0; t < T; t++) {
        if (mix && t % 2) mv_case_x(896, 896, t % 4 == 1, WICK_DT_BF16, 16 + t % 3, 1.f, 0, 1);
        if (wick_session_eval(s, ids + t, 1, row, 0)) return INFINITY;
        float d = t_max_abs_diff(row, want + (size_t)t * V, V);
        worst = d > worst ? d : worst;
    }
    free(row);
    return worst;
}

static float decode_diff(wick_session *s, const int32_t *ids, int T, const float *want, int V) {
    return decode_diff_mix(s, ids, T, want, V, 0);
}

/* The adapter goldens on cuda (fp32): logits, decode with swaps, greedy ids, merge/unmerge. */
static void check_adapters(const char *name) {
    char dir[512], a1d[512], a2d[512], gp[512];
    snprintf(dir, sizeof dir, "%s/golden/%s/model", WICK_TEST_DIR, name);
    snprintf(a1d, sizeof a1d, "%s/golden/%s/adapter1", WICK_TEST_DIR, name);
    snprintf(a2d, sizeof a2d, "%s/golden/%s/adapter2", WICK_TEST_DIR, name);
    snprintf(gp, sizeof gp, "%s/golden/%s/golden.safetensors", WICK_TEST_DIR, name);
    wick_model_opts o = wick_model_opts_default();
    o.device = "cuda";
    wick_model *m = NULL;
    wick_adapter *a1 = NULL, *a2 = NULL;
    wick_st *g = NULL;
    CHECK_OK(wick_model_load(dir, &o, &m));
    CHECK_OK(wick_st_open(gp, &g));
    if (!m || !g) return;
    CHECK_OK(wick_adapter_load(m, a1d, &a1));
    CHECK_OK(wick_adapter_load(m, a2d, &a2));
    int n = 0, np = 0, ng = 0;
    size_t nl;
    int32_t *ids = golden_ids(g, "input_ids", &n), *prompt = golden_ids(g, "gen_prompt", &np);
    int32_t *greedy = golden_ids(g, "gen_greedy_adapter1", &ng);
    float *base = golden_f32(g, "logits", &nl), *l1 = golden_f32(g, "logits_adapter1", &nl);
    float *l2 = golden_f32(g, "logits_adapter2", &nl);
    int B = 2, T = n / 2, V = (int)(nl / (size_t)n);
    float *out = malloc(sizeof(float) * nl);
    const wick_adapter *ad[] = {a1, a2};
    const float *want[] = {l1, l2};
    for (int i = 0; i < 2; i++) {
        CHECK_OK(wick_model_logits(m, ad[i], 1.f, ids, B, T, out));
        float d = t_max_abs_diff(out, want[i], nl);
        CHECK(d <= 1e-4f, "%s adapter%d on cuda: max |logits - golden| = %g", name, i + 1, d);
    }
    /* one session, decode steps, switching adapters back and forth (graphs re-captured) */
    wick_session *s;
    CHECK_OK(wick_session_new(m, NULL, &s));
    const wick_adapter *order[] = {a1, a2, NULL, a1, a2, a1};
    const float *ow[] = {l1, l2, base, l1, l2, l1};
    for (int k = 0; k < 6; k++) {
        CHECK_OK(wick_session_set_adapter(s, order[k], 1.f));
        float d = decode_diff(s, ids + T, T, ow[k] + (size_t)T * V, V);
        CHECK(d <= 1e-4f, "%s swap step %d: decode differs from golden by %g", name, k, d);
    }
    CHECK_OK(wick_session_set_adapter(s, a2, 1.f));
    float dm = decode_diff_mix(s, ids + T, T, l2 + (size_t)T * V, V, 1);
    CHECK(dm <= 1e-4f, "%s: decode with direct matvecs between the graph's steps differs from golden by %g", name, dm);
    if (prompt && greedy) { /* HF generate with adapter1, greedy */
        CHECK_OK(wick_session_set_adapter(s, a1, 1.f));
        wick_session_reset(s);
        float *row = malloc(sizeof(float) * V);
        CHECK_OK(wick_session_eval(s, prompt, np, row, 0));
        int same = 1;
        for (int t = 0; t < ng && same; t++) {
            int32_t next = argmax(row, V);
            same = next == greedy[t];
            CHECK_OK(wick_session_eval(s, &next, 1, row, 0));
        }
        CHECK(same, "%s: greedy ids with adapter1 on cuda differ from HF generate", name);
        free(row);
    }
    /* merge on the device: the base session now computes adapter1; unmerge restores the base exactly */
    float *before = malloc(sizeof(float) * nl), *after = malloc(sizeof(float) * nl);
    CHECK_OK(wick_model_logits(m, NULL, 1.f, ids, B, T, before));
    CHECK_OK(wick_session_set_adapter(s, NULL, 1.f));
    CHECK_OK(wick_adapter_merge(m, a1, 1.f));
    CHECK_OK(wick_model_logits(m, NULL, 1.f, ids, B, T, out));
    CHECK(t_max_abs_diff(out, l1, nl) <= 1e-4f, "%s merged on cuda: max diff %g", name, t_max_abs_diff(out, l1, nl));
    float d = decode_diff(s, ids + T, T, l1 + (size_t)T * V, V);
    CHECK(d <= 1e-4f, "%s merged: decode in an existing session differs by %g", name, d);
    CHECK_FAILS(wick_adapter_merge(m, a1, 1.f), "already merged");
    CHECK_OK(wick_adapter_merge(m, a2, 1.f));
    CHECK_FAILS(wick_adapter_unmerge(m, a1), "unmerge it first");
    CHECK_OK(wick_adapter_unmerge(m, a2));
    CHECK_OK(wick_adapter_unmerge(m, a1));
    CHECK_OK(wick_model_logits(m, NULL, 1.f, ids, B, T, after));
    CHECK(memcmp(before, after, sizeof(float) * nl) == 0, "%s: logits after unmerge differ from before the merge", name);
    d = decode_diff(s, ids + T, T, base + (size_t)T * V, V);
    CHECK(d <= 1e-4f, "%s unmerged: decode differs by %g", name, d);
    /* a trainer changing the host A/B (wk_adapter_touch): the next evaluation copies them again,
     * under the already captured graph; here every B goes to zero, so the base comes back */
    CHECK_OK(wick_session_set_adapter(s, a1, 1.f));
    d = decode_diff(s, ids + T, T, l1 + (size_t)T * V, V);
    CHECK(d <= 1e-4f, "%s adapter1 again: decode differs by %g", name, d);
    for (int i = 0; i < a1->n_layers * WK_P_COUNT; i++)
        if (a1->slots[i].lp.B) memset(a1->slots[i].lp.B, 0, sizeof(float) * (size_t)a1->slots[i].out * a1->slots[i].lp.r);
    wk_adapter_touch(a1);
    d = decode_diff(s, ids + T, T, base + (size_t)T * V, V);
    CHECK(d <= 1e-4f, "%s adapter1 with B zeroed on the host: decode differs from the base by %g", name, d);
    wick_session_free(s);
    wick_adapter_free(a1), wick_adapter_free(a2);
    free(ids), free(prompt), free(greedy), free(base), free(l1), free(l2), free(out), free(before), free(after);
    wick_st_close(g);
    wick_model_free(m);
}

/* Logits of the golden input on device dev (all rows, prefill) and by decode (rows 0..T-1 of sequence 0). */
static void both_ways(wick_model *m, const wick_adapter *a, const int32_t *ids, int T, int V, float *pre, float *dec) {
    wick_session *s;
    CHECK_OK(wick_session_new(m, NULL, &s));
    if (!s) return;
    CHECK_OK(wick_session_set_adapter(s, a, 0.75f));
    CHECK_OK(wick_session_eval(s, ids, T, pre, 1));
    wick_session_reset(s);
    for (int t = 0; t < T; t++) CHECK_OK(wick_session_eval(s, ids + t, 1, dec + (size_t)t * V, 0));
    wick_session_free(s);
}

/* model (safetensors dir or GGUF) with an optional adapter on cuda against the CPU. */
static void against_cpu(const char *label, const char *path, int keep_bf16, const char *adir, double pre_tol, float dec_tol) {
    wick_model_opts o = wick_model_opts_default();
    o.keep_bf16 = keep_bf16;
    wick_model *mc = NULL, *mg = NULL;
    wick_adapter *ac = NULL, *ag = NULL;
    CHECK_OK(wick_model_load(path, &o, &mc));
    o.device = "cuda";
    CHECK_OK(wick_model_load(path, &o, &mg));
    if (!mc || !mg) return;
    if (adir) CHECK_OK(wick_adapter_load(mc, adir, &ac));
    if (adir) CHECK_OK(wick_adapter_load(mg, adir, &ag));
    int32_t ids[11] = {1, 17, 29, 3, 88, 101, 7, 64, 2, 45, 9};
    int T = 11;
    wick_model_info f;
    wick_model_get_info(mc, &f);
    int V = f.vocab_size;
    float *p1 = malloc(sizeof(float) * T * V), *d1 = malloc(sizeof(float) * T * V);
    float *p2 = malloc(sizeof(float) * T * V), *d2 = malloc(sizeof(float) * T * V);
    both_ways(mc, ac, ids, T, V, p1, d1);
    both_ways(mg, ag, ids, T, V, p2, d2);
    double e = t_rel_l2(p2, p1, (size_t)T * V), ed = t_rel_l2(d2, d1, (size_t)T * V);
    float dd = t_max_abs_diff(d2, d1, (size_t)T * V);
    printf("%s: prefill rel L2 %.3g, decode rel L2 %.3g (max |diff| %.3g)\n", label, e, ed, dd);
    CHECK(e <= pre_tol, "%s: prefill on cuda vs cpu: rel L2 %g > %g", label, e, pre_tol);
    CHECK(dec_tol < 0 ? ed <= pre_tol : dd <= dec_tol, "%s: decode on cuda vs cpu: rel L2 %g, max |diff| %g", label, ed, dd);
    wick_adapter_free(ac), wick_adapter_free(ag);
    wick_model_free(mc), wick_model_free(mg);
    free(p1), free(d1), free(p2), free(d2);
}

/* GGUF files from `wick quantize`, on cuda (weights dequantized to bf16 at upload) against the CPU. */
static void test_gguf(void) {
    char tmp[] = "/tmp/wick-cuda-gguf-XXXXXX", path[512], cmd[1400];
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    const char *types[] = {"q8_0", "q4_1"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/m-%s.gguf", tmp, types[i]);
        snprintf(cmd, sizeof cmd, "%s quantize --model %s/golden/qwen2_tiny/model --type %s --out %s", WICK_BIN,
                 WICK_TEST_DIR, types[i], path);
        CHECK(system(cmd) == 0, "%s", cmd);
        char label[64];
        snprintf(label, sizeof label, "qwen2_tiny %s", types[i]);
        /* the CPU quantizes activations to 8 bits for these types; cuda keeps them f32 (bf16 in prefill GEMMs) */
        against_cpu(label, path, 1, NULL, 0.05, -1);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0, "cleanup");
}
#endif

int main(void) {
    int count = wick_cuda_device_count();
    if (count == 0) {
        printf("test_cuda_lora: skipped: no CUDA device (or no CUDA backend in this build)\n");
        wick_model_opts o = wick_model_opts_default();
        o.device = "cuda";
        wick_model *m = NULL;
        CHECK_FAILS(wick_model_load(T_PATH("golden/qwen2_tiny/model"), &o, &m), "cuda");
        return t_summary();
    }
#ifdef WICK_HAVE_CUDA
    G = wk_backend_cuda(0);
    R = wk_backend_cpu_ref();
    CHECK(G != NULL, "cuda backend: %s", wick_last_error());
    if (!G) return t_summary();
    test_lora_seg();
    test_decode_ops();
    check_adapters("qwen2_tiny");
    check_adapters("llama_tiny");
    check_adapters("qwen3_tiny");
    char bdir[512], adir[512];
    snprintf(bdir, sizeof bdir, "%s/golden/qwen2_tiny_bf16/model", WICK_TEST_DIR);
    snprintf(adir, sizeof adir, "%s/golden/qwen2_tiny/adapter1", WICK_TEST_DIR);
    against_cpu("qwen2_tiny_bf16 + adapter1 (bf16 weights)", bdir, 1, adir, 1e-2, 1e-4f);
    test_gguf();
#endif
    return t_summary();
}
