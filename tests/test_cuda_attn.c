/* test_cuda_attn.c — the tensor-core training attention, TF32 (wkt_attn_fwd_tc / wkt_attn_bwd_tc)
 * and bf16 (wkt_attn_fwd_bf16 / wkt_attn_bwd_bf16), products with fp32 accumulation, on packed
 * causal sequences of lengths 1, 17, 64, 200, 513 (795 rows: partial tiles, tiles straddling
 * sequences), for GQA 14/2 and 4/4 heads at head_dim 64 and 128:
 *  - out, lse, dq, dk, dv against the CPU `ref` train op (double accumulation) and against the
 *    exact fp32 CUDA kernels (wkt_attn_fwd/bwd): relative L2 <= 2e-3 each for TF32 (inputs
 *    rounded to TF32 only inside the products; expected ~5e-4) and <= 1.5e-2 for bf16 (q, k, v,
 *    dout, probabilities and dS rounded to bf16; expected ~4e-3). Each backward is fed its own
 *    forward's out and lse, as in the trainer;
 *  - two runs give bit-identical results (fixed-order reductions, no atomics);
 *  - shapes it does not take (head_dim 40, 256; misaligned tensors) return 0 and record no error.
 * Without the CUDA backend or without a GPU it reports a skip and passes. */
#include "t.h"
#ifdef WICK_HAVE_CUDA
#include "model/train_ops.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_train.h"
#endif
#include <stdlib.h>
#include <string.h>

#ifdef WICK_HAVE_CUDA
#define TC_TOL 2e-3  /* relative L2, TF32 products (10-bit mantissa inputs), fp32 accumulation */
#define BF_TOL 1.5e-2 /* relative L2, bf16 products (8-bit mantissa inputs), fp32 accumulation */
enum { EXACT, TF32, BF16 };
static const char *const KIND[3] = {"exact", "tf32", "bf16"};

#define CT_SEED 0x2545F4914F6CDD1Dull
#include "cuda_t.h"
static float *down(const void *d, size_t n) {
    float *h = malloc(n * sizeof(float));
    G->download(G, h, d, n * sizeof(float));
    return h;
}

enum { N_OUT = 5 };
static const char *const NAMES[N_OUT] = {"out", "lse", "dq", "dk", "dv"};

/* One shape's device buffers: inputs, then the five results (out, lse, dq, dk, dv) and scratch. */
typedef struct {
    int n, H, Hk, D;
    float *q, *k, *v, *dout, *res[N_OUT], *dsum, *dkp, *dvp;
    int32_t *rs, *re;
} att_dev;

/* Runs the kernels of one kind on a; host copies of the results into got. */
static int run_kernels(att_dev *a, int kind, float **got, const size_t *cnt) {
    float sc = 1.f / sqrtf((float)a->D), **r = a->res;
    int ok = 1;
    if (kind == TF32) {
        ok = wkt_attn_fwd_tc(G, r[0], r[1], a->q, a->k, a->v, a->rs, a->n, a->H, a->Hk, a->D, sc);
        ok = ok && wkt_attn_bwd_tc(G, r[2], r[3], r[4], a->dout, r[0], r[1], a->q, a->k, a->v, a->rs, a->re, a->n,
                                   a->H, a->Hk, a->D, sc, a->dsum, a->dkp, a->dvp);
    } else if (kind == BF16) {
        ok = wkt_attn_fwd_bf16(G, r[0], r[1], a->q, a->k, a->v, a->rs, a->n, a->H, a->Hk, a->D, sc);
        ok = ok && wkt_attn_bwd_bf16(G, r[2], r[3], r[4], a->dout, r[0], r[1], a->q, a->k, a->v, a->rs, a->re, a->n,
                                     a->H, a->Hk, a->D, sc, a->dsum, a->dkp, a->dvp);
    } else {
        wkt_attn_fwd(G, r[0], r[1], a->q, a->k, a->v, a->rs, a->n, a->H, a->Hk, a->D, sc);
        wkt_attn_bwd(G, r[2], r[3], r[4], a->dout, r[0], r[1], a->q, a->k, a->v, a->rs, a->re, a->n, a->H, a->Hk,
                     a->D, sc, a->dsum, a->dkp, a->dvp);
    }
    wick_status st = G->check(G);
    CHECK(st == WICK_OK, "H=%d Hk=%d D=%d %s kernels: %s", a->H, a->Hk, a->D, KIND[kind], wick_last_error());
    CHECK(ok, "H=%d Hk=%d D=%d: the %s kernels refused a shape they must take", a->H, a->Hk, a->D, KIND[kind]);
    for (int i = 0; i < N_OUT; i++) got[i] = down(r[i], cnt[i]);
    return ok && st == WICK_OK;
}

static void compare_all(int kind, const char *against, att_dev *a, float **got, float **want, const size_t *cnt) {
    double tol = kind == BF16 ? BF_TOL : TC_TOL;
    for (int i = 0; i < N_OUT; i++) {
        double e = t_rel_l2(got[i], want[i], cnt[i]);
        CHECK(e <= tol, "%s attention H=%d Hk=%d D=%d n=%d: %s vs %s: rel L2 %g > %g", KIND[kind], a->H, a->Hk, a->D,
              a->n, NAMES[i], against, e, tol);
        if (getenv("WICK_TEST_VERBOSE"))
            printf("%s H=%d Hk=%d D=%d %s vs %s: rel L2 %.3g\n", KIND[kind], a->H, a->Hk, a->D, NAMES[i], against, e);
    }
}

static void test_shape(const wk_train_ops *ref, int H, int Hk, int D, const int *lens, int ns) {
    att_dev a = {0};
    a.H = H, a.Hk = Hk, a.D = D;
    for (int s = 0; s < ns; s++) a.n += lens[s];
    int n = a.n;
    int32_t *rs = malloc(sizeof(int32_t) * n), *re = malloc(sizeof(int32_t) * n);
    for (int s = 0, k = 0; s < ns; s++)
        for (int i = 0; i < lens[s]; i++, k++) rs[k] = k - i, re[k] = k - i + lens[s];
    size_t nq = (size_t)n * H * D, nk = (size_t)n * Hk * D, cnt[N_OUT] = {nq, (size_t)n * H, nq, nk, nk};
    float sc = 1.f / sqrtf((float)D);
    float *q = rvec(nq, 2), *k = rvec(nk, 2), *v = rvec(nk, 1), *dout = rvec(nq, 1);
    float *want[N_OUT], *tc[N_OUT], *tc2[N_OUT], *ex[N_OUT], *bf[N_OUT], *bf2[N_OUT];
    for (int i = 0; i < N_OUT; i++) want[i] = malloc(sizeof(float) * cnt[i]);
    ref->attn_fwd(want[0], want[1], q, k, v, rs, n, H, Hk, D, sc);
    ref->attn_bwd(want[2], want[3], want[4], dout, want[0], want[1], q, k, v, rs, n, H, Hk, D, sc);
    a.q = dev(q, 4 * nq), a.k = dev(k, 4 * nk), a.v = dev(v, 4 * nk), a.dout = dev(dout, 4 * nq);
    for (int i = 0; i < N_OUT; i++) a.res[i] = G->alloc(G, 4 * cnt[i]);
    a.dsum = G->alloc(G, 4 * (size_t)n * H), a.dkp = G->alloc(G, 4 * nq), a.dvp = G->alloc(G, 4 * nq);
    a.rs = dev(rs, sizeof(int32_t) * n), a.re = dev(re, sizeof(int32_t) * n);
    int ok = run_kernels(&a, TF32, tc, cnt);
    ok = run_kernels(&a, TF32, tc2, cnt) && ok;
    ok = run_kernels(&a, BF16, bf, cnt) && ok;
    ok = run_kernels(&a, BF16, bf2, cnt) && ok;
    ok = run_kernels(&a, EXACT, ex, cnt) && ok;
    if (ok) {
        compare_all(TF32, "CPU ref", &a, tc, want, cnt);
        compare_all(TF32, "exact fp32 CUDA kernel", &a, tc, ex, cnt);
        compare_all(BF16, "CPU ref", &a, bf, want, cnt);
        compare_all(BF16, "exact fp32 CUDA kernel", &a, bf, ex, cnt);
        for (int i = 0; i < N_OUT; i++) {
            CHECK(memcmp(tc[i], tc2[i], sizeof(float) * cnt[i]) == 0,
                  "tf32 attention H=%d Hk=%d D=%d: %s differs between two identical runs", H, Hk, D, NAMES[i]);
            CHECK(memcmp(bf[i], bf2[i], sizeof(float) * cnt[i]) == 0,
                  "bf16 attention H=%d Hk=%d D=%d: %s differs between two identical runs", H, Hk, D, NAMES[i]);
        }
    }
    for (int i = 0; i < N_OUT; i++) {
        free(want[i]), free(tc[i]), free(tc2[i]), free(ex[i]), free(bf[i]), free(bf2[i]);
        G->free(G, a.res[i]);
    }
    G->free(G, a.q), G->free(G, a.k), G->free(G, a.v), G->free(G, a.dout), G->free(G, a.dsum);
    G->free(G, a.dkp), G->free(G, a.dvp), G->free(G, a.rs), G->free(G, a.re);
    free(q), free(k), free(v), free(dout), free(rs), free(re);
}

/* After a bf16 GEMM the bf16 forward leaves out's bf16 copy for the next GEMM (the o projection):
 * that GEMM's result is bit for bit the one from a fresh cast of out. */
static void test_out16(void) {
    int n = 200, H = 4, D = 64, in = 32, HD = H * D, O = 16;
    size_t nq = (size_t)n * HD;
    float *q = rvec(nq, 2), *k = rvec(nq, 2), *v = rvec(nq, 1), *x = rvec((size_t)n * in, 1);
    float *wg = rvec((size_t)O * in, 1), *wo = rvec((size_t)O * HD, 1);
    uint16_t *hg = malloc(2 * (size_t)O * in), *ho = malloc(2 * (size_t)O * HD);
    for (int i = 0; i < O * in; i++) hg[i] = wk_f32_to_bf16(wg[i]);
    for (int i = 0; i < O * HD; i++) ho[i] = wk_f32_to_bf16(wo[i]);
    int32_t *rs = calloc(n, sizeof(int32_t));
    wk_mat Wg = {.w = dev(hg, 2 * (size_t)O * in), .dt = WICK_DT_BF16, .rows = O, .cols = in};
    wk_mat Wo = {.w = dev(ho, 2 * (size_t)O * HD), .dt = WICK_DT_BF16, .rows = O, .cols = HD};
    float *dq = dev(q, 4 * nq), *dk = dev(k, 4 * nq), *dv = dev(v, 4 * nq), *dx = dev(x, 4 * (size_t)n * in);
    float *out = G->alloc(G, 4 * nq), *lse = G->alloc(G, 4 * (size_t)n * H), *y = G->alloc(G, 4 * (size_t)n * O);
    int32_t *drs = dev(rs, sizeof(int32_t) * n);
    G->matmul(G, y, dx, &Wg, NULL, n, 0); /* a bf16 GEMM: the forward then writes the copy */
    CHECK(wkt_attn_fwd_bf16(G, out, lse, dq, dk, dv, drs, n, H, H, D, 0.125f), "bf16 forward refused D=64");
    G->matmul(G, y, out, &Wo, NULL, n, 0);
    float *y1 = down(y, (size_t)n * O);
    wkt_zero(G, lse, 4); /* any other op drops the copy: the next GEMM casts out itself */
    G->matmul(G, y, out, &Wo, NULL, n, 0);
    float *y2 = down(y, (size_t)n * O);
    CHECK(G->check(G) == WICK_OK, "bf16 forward + GEMM: %s", wick_last_error());
    CHECK(memcmp(y1, y2, sizeof(float) * (size_t)n * O) == 0,
          "the GEMM after the bf16 forward differs from one over a fresh bf16 cast of its output");
    G->free(G, (void *)Wg.w), G->free(G, (void *)Wo.w), G->free(G, dq), G->free(G, dk), G->free(G, dv);
    G->free(G, dx), G->free(G, out), G->free(G, lse), G->free(G, y), G->free(G, drs);
    free(q), free(k), free(v), free(x), free(wg), free(wo), free(hg), free(ho), free(rs), free(y1), free(y2);
}

/* Shapes outside the tensor-core kernels: they return 0, launch nothing and record no error. */
static void test_refused(void) {
    int n = 8, H = 2;
    float *x = G->alloc(G, 4 * (size_t)n * H * 260), *l = G->alloc(G, 4 * (size_t)n * H);
    int32_t rs[8] = {0}, re[8] = {8, 8, 8, 8, 8, 8, 8, 8}, *xr = dev(rs, sizeof rs), *xe = dev(re, sizeof re);
    int dims[3] = {40, 256, 32};
    for (int c = 0; c < 3; c++) {
        int D = dims[c];
        CHECK(wkt_attn_fwd_tc(G, x, l, x, x, x, xr, n, H, H, D, 1.f) == 0, "forward took head_dim %d", D);
        CHECK(wkt_attn_bwd_tc(G, x, x, x, x, x, l, x, x, x, xr, xe, n, H, H, D, 1.f, l, x, x) == 0,
              "backward took head_dim %d", D);
        CHECK(wkt_attn_fwd_bf16(G, x, l, x, x, x, xr, n, H, H, D, 1.f) == 0, "bf16 forward took head_dim %d", D);
        CHECK(wkt_attn_bwd_bf16(G, x, x, x, x, x, l, x, x, x, xr, xe, n, H, H, D, 1.f, l, x, x) == 0,
              "bf16 backward took head_dim %d", D);
    }
    CHECK(wkt_attn_fwd_tc(G, x + 1, l, x, x, x, xr, n, H, H, 64, 1.f) == 0, "forward took a misaligned output");
    CHECK(wkt_attn_fwd_tc(G, x, l, x, x, x, xr, n, 3, 2, 64, 1.f) == 0, "forward took 3 heads over 2 kv heads");
    CHECK(wkt_attn_fwd_bf16(G, x + 1, l, x, x, x, xr, n, H, H, 64, 1.f) == 0, "bf16 forward took a misaligned output");
    CHECK(wkt_attn_fwd_bf16(G, x, l, x, x, x, xr, n, 3, 2, 64, 1.f) == 0, "bf16 forward took 3 heads over 2 kv heads");
    wick_status st = G->check(G);
    CHECK(st == WICK_OK, "a refused shape recorded an error: %s", wick_last_error());
    G->free(G, x), G->free(G, l), G->free(G, xr), G->free(G, xe);
}
#endif

int main(void) {
    if (ct_no_device("test_cuda_attn")) return t_summary();
#ifdef WICK_HAVE_CUDA
    G = wk_backend_cuda(0);
    CHECK(G != NULL, "cuda backend: %s", wick_last_error());
    if (!G) return t_summary();
    const wk_train_ops *ref = wk_train_ops_ref();
    int lens[] = {1, 17, 64, 200, 513}, one[] = {130};
    int cfg[][3] = {{14, 2, 64}, {4, 4, 64}, {14, 2, 128}, {4, 4, 128}};
    for (int c = 0; c < 4; c++) test_shape(ref, cfg[c][0], cfg[c][1], cfg[c][2], lens, 5);
    test_shape(ref, 2, 1, 128, one, 1);
    test_refused();
    test_out16();
#endif
    return t_summary();
}
