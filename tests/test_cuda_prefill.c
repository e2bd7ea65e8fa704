/* test_cuda_prefill.c — the prefill kernels of cuda_prefill.cu:
 *  - TF32 flash attention (the fast instance, n > 8 rows over the KV cache) against the CPU
 *    `ref` attention for GQA group sizes 1, 2 and 7, head_dim 64 and 128, chunks at pos0 = 0
 *    and pos0 > 0 (a cached prefix, as the decoder's 512-row chunks), row counts that are
 *    not a multiple of the 128-row block and shorter than one block: relative L2 <= 2e-3 (the
 *    TF32 tolerance: inputs rounded to TF32 inside the products, fp32 accumulation; expected
 *    ~5e-4), and against the exact instance's fp32 path (which must stay within 2e-6 of ref);
 *  - multi-row 16-bit products with a bias on the fast instance (cuBLASLt bias epilogue) against
 *    the CPU reference, plain and accumulating (rel L2 <= 1e-2 bf16, 2e-3 f16, as test_cuda);
 *  - the 16-bit activation copies written by RMSNorm, SwiGLU and that attention after a
 *    16-bit GEMM: the next bf16 / f16 GEMM reading them gives bit-identical results to the
 *    same GEMM after a separate cast (the copy is the same rounding of the same values).
 * Without the CUDA backend or without a GPU it reports a skip and passes. */
#include "t.h"
#include "backend/backend.h"
#ifdef WICK_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef WICK_HAVE_CUDA
#define CT_SEED 0xD1B54A32D192ED03ull
#include "cuda_t.h"

#define FA_TOL 2e-3 /* relative L2 of the TF32 flash attention against fp32/double references */

static wk_backend *R, *F; /* the cpu reference; the fast (TF32) cuda instance (G: the exact one) */

/* Fills a [Hk][cap][D] cache pair with T random positions (the rest stays zero) on host and device. */
static void fill_cache(float **kc, float **vc, float **dkc, float **dvc, int Hk, int cap, int D, int T) {
    size_t csz = (size_t)Hk * cap * D;
    *kc = calloc(csz, sizeof(float)), *vc = calloc(csz, sizeof(float));
    for (int h = 0; h < Hk; h++)
        for (size_t i = (size_t)h * cap * D; i < ((size_t)h * cap + T) * D; i++) (*kc)[i] = 2.f * rnd(), (*vc)[i] = rnd();
    *dkc = dev(*kc, sizeof(float) * csz), *dvc = dev(*vc, sizeof(float) * csz);
}

static void flash_case(int n, int pos0, int H, int Hk, int D) {
    int T = pos0 + n, cap = T + 70; /* spare cache rows past T: never read */
    size_t qsz = (size_t)n * H * D;
    float *kc, *vc, *dkc, *dvc, *q = rvec(qsz, 2.f), *want = malloc(sizeof(float) * qsz);
    fill_cache(&kc, &vc, &dkc, &dvc, Hk, cap, D, T);
    float *dq = dev(q, sizeof(float) * qsz), *dfo = G->alloc(G, sizeof(float) * qsz), *dxo = G->alloc(G, sizeof(float) * qsz);
    float scale = 1.f / sqrtf((float)D);
    R->attention(R, want, q, kc, vc, n, pos0, NULL, H, Hk, D, cap, scale);
    G->attention(G, dxo, dq, dkc, dvc, n, pos0, NULL, H, Hk, D, cap, scale);
    G->sync(G); /* F runs on its own stream */
    F->attention(F, dfo, dq, dkc, dvc, n, pos0, NULL, H, Hk, D, cap, scale);
    F->sync(F);
    CHECK(F->check(F) == WICK_OK, "flash attention n=%d pos0=%d H=%d Hk=%d D=%d: %s", n, pos0, H, Hk, D,
          wick_last_error());
    float *fo = host(dfo, qsz), *xo = host(dxo, qsz);
    no_error("exact attention");
    double ef = t_rel_l2(fo, want, qsz), ex = t_rel_l2(xo, want, qsz), efx = t_rel_l2(fo, xo, qsz);
    CHECK(ef <= FA_TOL, "flash attention n=%d pos0=%d H=%d Hk=%d D=%d vs CPU ref: rel L2 %g > %g", n, pos0, H, Hk, D,
          ef, FA_TOL);
    CHECK(efx <= FA_TOL, "flash attention n=%d pos0=%d H=%d Hk=%d D=%d vs exact cuda: rel L2 %g", n, pos0, H, Hk, D, efx);
    CHECK(ex <= 2e-6, "exact prefill attention n=%d pos0=%d H=%d Hk=%d D=%d: rel L2 %g", n, pos0, H, Hk, D, ex);
    int finite = 1;
    for (size_t i = 0; i < qsz; i++) finite &= isfinite(fo[i]) != 0;
    CHECK(finite, "flash attention n=%d pos0=%d: non-finite output", n, pos0);
    G->free(G, dkc), G->free(G, dvc), G->free(G, dq);
    free(kc), free(vc), free(q), free(want), free(fo), free(xo);
}

static void test_flash(void) {
    flash_case(9, 0, 4, 4, 64);      /* fewest rows it takes, GQA 1 */
    flash_case(37, 20, 4, 4, 64);    /* partial tile after a prefix */
    flash_case(64, 0, 4, 2, 128);    /* exactly one tile, GQA 2 */
    flash_case(150, 300, 4, 2, 128); /* a later chunk: prefix longer than the chunk */
    flash_case(100, 0, 14, 2, 64);   /* GQA 7 (qwen2.5-0.5b heads) */
    flash_case(77, 131, 14, 2, 128); /* GQA 7, prefix not a multiple of the key tile */
    flash_case(513, 0, 7, 1, 128);   /* GQA 7 over one kv head, many tiles */
}

/* Multi-row products with a bias on F (16-bit weights: the bias in a cuBLASLt epilogue), plain
 * and accumulating, against the CPU reference: within test_cuda's bf16/f16 product bounds. */
static void test_bias_gemm(void) {
    int shapes[][3] = {{40, 256, 96}, {130, 512, 64}, {9, 96, 130}};
    wick_dtype dts[] = {WICK_DT_BF16, WICK_DT_F16};
    for (int si = 0; si < 3; si++)
        for (int di = 0; di < 2; di++)
            for (int acc = 0; acc < 2; acc++) {
                int n = shapes[si][0], in = shapes[si][1], out = shapes[si][2];
                size_t ny = (size_t)n * out, nw = (size_t)out * in;
                float *x = rvec((size_t)n * in, 1.f), *wf = rvec(nw, 1.f), *b = rvec(out, 1.f), *y = rvec(ny, 1.f);
                uint16_t *h = malloc(2 * nw);
                for (size_t i = 0; i < nw; i++) h[i] = dts[di] == WICK_DT_BF16 ? wk_f32_to_bf16(wf[i]) : wk_f32_to_f16(wf[i]);
                wk_mat W = {.w = h, .dt = dts[di], .rows = out, .cols = in}, Wd = W;
                Wd.w = dev(h, 2 * nw);
                float *dx = dev(x, sizeof(float) * n * in), *db = dev(b, sizeof(float) * out), *dy = dev(y, sizeof(float) * ny);
                G->sync(G);
                R->matmul(R, y, x, &W, b, n, acc);
                F->matmul(F, dy, dx, &Wd, db, n, acc);
                F->sync(F);
                CHECK(F->check(F) == WICK_OK, "bias product: %s", wick_last_error());
                float *got = malloc(sizeof(float) * ny);
                F->download(F, got, dy, sizeof(float) * ny);
                double e = t_rel_l2(got, y, ny), tol = dts[di] == WICK_DT_BF16 ? 1e-2 : 2e-3;
                CHECK(e <= tol, "fast matmul + bias n=%d in=%d out=%d %s acc=%d: rel L2 %g > %g", n, in, out,
                      wick_dtype_name(dts[di]), acc, e, tol);
                G->free(G, (void *)Wd.w), G->free(G, dx), G->free(G, db), G->free(G, dy);
                free(x), free(wf), free(b), free(y), free(h), free(got);
            }
}

/* Device buffers of the copy checks: a 16-bit weight matrix (OUT × up to 1024) and outputs. */
#define OUT 24
typedef struct {
    wk_mat W;
    float *y1, *y2, *zero;
} prod_bufs;

/* y = x·Wᵀ on F twice: once reading the 16-bit copy the producing op left (cached), once after
 * an op that drops it (a fresh cast); the two must be identical. Nothing may allocate between
 * the producer and the first product (an allocation forgets the cached copy too). */
static void same_as_cast(const char *what, prod_bufs *p, float *dx, int n, int in) {
    p->W.cols = in;
    F->matmul(F, p->y1, dx, &p->W, NULL, n, 0);
    F->add(F, p->zero, p->zero, 0); /* any op but a product forgets the cached copy */
    F->matmul(F, p->y2, dx, &p->W, NULL, n, 0);
    F->sync(F);
    CHECK(F->check(F) == WICK_OK, "%s: %s", what, wick_last_error());
    float *a = malloc(sizeof(float) * n * OUT), *b = malloc(sizeof(float) * n * OUT);
    F->download(F, a, p->y1, sizeof(float) * n * OUT);
    F->download(F, b, p->y2, sizeof(float) * n * OUT);
    CHECK(memcmp(a, b, sizeof(float) * n * OUT) == 0, "%s (%s): product of the op's 16-bit copy differs from a cast",
          what, wick_dtype_name(p->W.dt));
    free(a), free(b);
}

/* A 16-bit product on F first (so the ops write copies), then each producer and its consumer. */
static void test_copies(wick_dtype dt) {
    int n = 40, C = 512, Fi = 1024, H = 4, Hk = 2, D = 128;
    float *x = rvec((size_t)n * Fi, 2.f), *w = rvec(Fi, 1.f), *x2 = rvec((size_t)n * Fi, 2.f), *wf = rvec(OUT * Fi, 1.f);
    uint16_t *h = malloc(2 * (size_t)OUT * Fi);
    for (int i = 0; i < OUT * Fi; i++) h[i] = dt == WICK_DT_BF16 ? wk_f32_to_bf16(wf[i]) : wk_f32_to_f16(wf[i]);
    prod_bufs p = {.W = {.dt = dt, .rows = OUT}};
    p.W.w = dev(h, 2 * (size_t)OUT * Fi); /* OUT × in weights for every in <= Fi used below */
    float *dx = dev(x, sizeof(float) * n * Fi), *dw = dev(w, sizeof(float) * Fi), *dx2 = dev(x2, sizeof(float) * n * Fi);
    float *kc, *vc, *dkc, *dvc;
    fill_cache(&kc, &vc, &dkc, &dvc, Hk, n, D, n);
    float *dy = F->alloc(F, sizeof(float) * n * Fi);
    p.y1 = F->alloc(F, sizeof(float) * n * OUT), p.y2 = F->alloc(F, sizeof(float) * n * OUT);
    p.zero = F->alloc(F, sizeof(float));
    G->sync(G); /* uploads on the exact instance's stream */
    same_as_cast("warm-up product", &p, dx, n, C);
    F->rmsnorm(F, dy, dx, dw, n, C, 1e-6f);
    same_as_cast("rmsnorm", &p, dy, n, C);
    F->swiglu(F, dy, dx, dx2, (size_t)n * Fi);
    same_as_cast("swiglu", &p, dy, n, Fi);
    F->attention(F, dy, dx, dkc, dvc, n, 0, NULL, H, Hk, D, n, 1.f / sqrtf((float)D));
    same_as_cast("flash attention", &p, dy, n, H * D);
    F->free(F, dy), F->free(F, p.y1), F->free(F, p.y2), F->free(F, p.zero);
    G->free(G, (void *)p.W.w), G->free(G, dx), G->free(G, dw), G->free(G, dx2), G->free(G, dkc), G->free(G, dvc);
    free(x), free(w), free(x2), free(wf), free(h), free(kc), free(vc);
}
#endif

int main(void) {
    if (ct_no_device("test_cuda_prefill")) return t_summary();
#ifdef WICK_HAVE_CUDA
    G = wk_backend_cuda(0);
    F = wk_backend_cuda_fast(0);
    R = wk_backend_cpu_ref();
    CHECK(G != NULL && F != NULL, "cuda backend: %s", wick_last_error());
    if (!G || !F) return t_summary();
    test_flash();
    test_bias_gemm();
    test_copies(WICK_DT_BF16);
    test_copies(WICK_DT_F16);
#endif
    return t_summary();
}
