/* test_gemm_amx.c — the AMX bf16 kernel (src/backend/cpu/gemm_amx.c): the packed weight layout
 * element by element (any CPU), then, on a CPU with AMX-BF16 that Linux lets use tiles,
 * wk_gemm_amx (packed W, with and without bias) and wk_gemm_amx_unpacked against the
 * double-accumulated reference wk_gemm_bf16_ref over odd shapes (n, in, out not multiples of
 * 16/32), on 1 and 4 threads and as independent products inside a parallel region (the
 * encoder's side-by-side batches). Elsewhere the kernel checks print why they skip; the
 * AVX512-BF16 kernel is checked where it exists.
 * Tolerance: |y - ref| <= 1e-5 * sum_k |x_k w_k| per element — both sides multiply the same
 * bf16 values exactly, only the fp32 accumulation order differs (bound ~ in * 2^-24). */
#include "t.h"
#include "backend/cpu/gemm_bf16.h"
#include "wk.h"
#include <omp.h>
#include <stdlib.h>

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static float rnd(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (float)((rs >> 11) * (1.0 / 9007199254740992.0)) * 2.f - 1.f;
}

static int rup32(int v) { return (v + 31) / 32 * 32; }

/* Every element of the packed copy is W[16j + c][32kb + 2p + e] or a zero of the padding. */
static void check_pack(int in, int out) {
    uint16_t *W = malloc(2 * (size_t)out * in);
    for (size_t i = 0; i < (size_t)out * in; i++) W[i] = (uint16_t)(1 + i % 65521);
    size_t ne = wk_gemm_amx_packed_elems(in, out);
    CHECK(ne == (size_t)rup32(in) * rup32(out), "packed elems %zu for in=%d out=%d", ne, in, out);
    uint16_t *P = malloc(2 * ne);
    wk_gemm_amx_pack(P, W, in, out);
    int Kb = rup32(in) / 32, bad = 0;
    for (int j = 0; j < rup32(out) / 16; j++)
        for (int kb = 0; kb < Kb; kb++)
            for (int p = 0; p < 16; p++)
                for (int c = 0; c < 16; c++)
                    for (int e = 0; e < 2; e++) {
                        int o = 16 * j + c, k = 32 * kb + 2 * p + e;
                        uint16_t want = o < out && k < in ? W[(size_t)o * in + k] : 0;
                        bad += P[((size_t)j * Kb + kb) * 512 + p * 32 + c * 2 + e] != want;
                    }
    CHECK(bad == 0, "pack in=%d out=%d: %d elements misplaced", in, out, bad);
    free(W), free(P);
}

/* Worst |y - ref| / sum|x w| (bias added to ref when given). */
static double rel_err(const float *y, const float *ref, const float *bias, const float *x, const uint16_t *W, int n,
                      int in, int out) {
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double mag = 1e-30;
            for (int k = 0; k < in; k++) mag += fabs(x[(size_t)i * in + k] * wk_bf16_to_f32(W[(size_t)o * in + k]));
            double r = ref[(size_t)i * out + o] + (bias ? bias[o] : 0.f);
            double e = fabs((double)y[(size_t)i * out + o] - r) / mag;
            worst = e > worst || e != e ? e : worst;
        }
    return worst;
}

typedef struct {
    int n, in, out;
    float *x, *b, *ref, *y;
    uint16_t *W, *P;
} gcase;

static void case_new(gcase *g, int n, int in, int out) {
    *g = (gcase){.n = n, .in = in, .out = out};
    g->x = malloc(sizeof(float) * (size_t)n * in), g->b = malloc(sizeof(float) * (size_t)out);
    g->ref = malloc(sizeof(float) * (size_t)n * out), g->y = malloc(sizeof(float) * (size_t)n * out);
    g->W = malloc(2 * (size_t)out * in), g->P = malloc(2 * wk_gemm_amx_packed_elems(in, out));
    for (size_t i = 0; i < (size_t)n * in; i++) g->x[i] = rnd() * 3.f;
    for (size_t i = 0; i < (size_t)out * in; i++) g->W[i] = wk_f32_to_bf16(rnd());
    for (int o = 0; o < out; o++) g->b[o] = rnd();
    wk_gemm_bf16_ref(g->ref, g->x, g->W, n, in, out);
    wk_gemm_amx_pack(g->P, g->W, in, out);
}

static void case_free(gcase *g) { free(g->x), free(g->b), free(g->ref), free(g->y), free(g->W), free(g->P); }

static void check_amx(int n, int in, int out, int threads) {
    gcase g;
    case_new(&g, n, in, out);
    wick_set_threads(threads);
    int rc = wk_gemm_amx(g.y, g.x, g.P, g.b, n, in, out);
    double e = rel_err(g.y, g.ref, g.b, g.x, g.W, n, in, out);
    CHECK(rc == 2 && e <= 1e-5, "amx packed+bias n=%d in=%d out=%d t=%d: rc %d rel err %g", n, in, out, threads, rc, e);
    rc = wk_gemm_amx(g.y, g.x, g.P, NULL, n, in, out);
    e = rel_err(g.y, g.ref, NULL, g.x, g.W, n, in, out);
    CHECK(rc == 2 && e <= 1e-5, "amx packed n=%d in=%d out=%d t=%d: rc %d rel err %g", n, in, out, threads, rc, e);
    rc = wk_gemm_bf16(g.y, g.x, g.W, n, in, out); /* dispatches to wk_gemm_amx_unpacked */
    e = rel_err(g.y, g.ref, NULL, g.x, g.W, n, in, out);
    CHECK(rc == 2 && e <= 1e-5, "amx unpacked n=%d in=%d out=%d t=%d: rc %d rel err %g", n, in, out, threads, rc, e);
    case_free(&g);
}

/* Independent products on 3 threads at once, each single-threaded inside (tile state per thread). */
static void check_amx_nested(void) {
    gcase g[3];
    int shapes[3][3] = {{224, 384, 384}, {45, 129, 77}, {17, 1536, 40}}, rc[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) case_new(&g[i], shapes[i][0], shapes[i][1], shapes[i][2]);
    wick_set_threads(3);
#pragma omp parallel for num_threads(3) schedule(static, 1)
    for (int i = 0; i < 3; i++)
        rc[i] = wk_gemm_amx(g[i].y, g[i].x, g[i].P, g[i].b, g[i].n, g[i].in, g[i].out);
    for (int i = 0; i < 3; i++) {
        double e = rel_err(g[i].y, g[i].ref, g[i].b, g[i].x, g[i].W, g[i].n, g[i].in, g[i].out);
        CHECK(rc[i] == 2 && e <= 1e-5, "amx nested case %d: rc %d rel err %g", i, rc[i], e);
        case_free(&g[i]);
    }
}

/* The AVX512-BF16 kernel split by rows over more threads than column blocks. */
static void check_avx512(int n, int in, int out, int threads) {
    gcase g;
    case_new(&g, n, in, out);
    wick_set_threads(threads);
    int rc = wk_gemm_bf16_avx512(g.y, g.x, g.W, n, in, out);
    double e = rel_err(g.y, g.ref, NULL, g.x, g.W, n, in, out);
    CHECK(rc == 1 && e <= 1e-5, "avx512-bf16 n=%d in=%d out=%d t=%d: rc %d rel err %g", n, in, out, threads, rc, e);
    case_free(&g);
}

int main(void) {
    int packs[][2] = {{7, 5}, {32, 32}, {33, 17}, {100, 70}, {384, 384}};
    for (size_t i = 0; i < sizeof packs / sizeof packs[0]; i++) check_pack(packs[i][0], packs[i][1]);
    int lv = wk_gemm_bf16_level();
    printf("bf16 kernel level %d (%s)\n", lv, lv == WK_BF16_AMX ? "AMX" : lv == WK_BF16_AVX512 ? "AVX512-BF16" : "none");
    if (lv >= WK_BF16_AVX512) {
        check_avx512(200, 100, 70, 4);
        check_avx512(37, 33, 130, 3);
    } else {
        printf("SKIP avx512-bf16 kernel: this CPU has no AVX512-BF16\n");
    }
    if (lv < WK_BF16_AMX) {
        printf("SKIP amx kernel: %s\n", !wk_amx_cpuid() ? "this CPU has no AMX-BF16 (cpuid leaf 7)"
                                        : "AMX tiles not in use (WICK_CPU_AMX=0 or Linux refused the permission)");
        CHECK(wk_gemm_amx(NULL, NULL, NULL, NULL, 1, 1, 1) == 0, "wk_gemm_amx without AMX returns 0");
        return t_summary();
    }
    int sizes[][3] = {{1, 32, 16}, {3, 7, 5}, {16, 32, 32}, {17, 33, 70}, {31, 100, 129}, {33, 769, 64},
                      {50, 1001, 200}, {64, 896, 130}, {100, 384, 1536}, {97, 1536, 384}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int t = 1; t <= 4; t += 3) check_amx(sizes[i][0], sizes[i][1], sizes[i][2], t);
    check_amx_nested();
    return t_summary();
}
