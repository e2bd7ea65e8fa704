/* test_ops.c — every fast CPU op against the reference op (src/backend/cpu/ref.c),
 * over odd and even sizes, f32/bf16/f16 weights, and gemv and gemm row counts. */
#include "t.h"
#include "backend/backend.h"
#include <stdlib.h>

static uint64_t rs = 88172645463325252ull;
static float rnd(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (float)((rs >> 11) * (1.0 / 9007199254740992.0)) * 2.f - 1.f;
}
static float *rvec(size_t n) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = rnd();
    return p;
}

/* max |a-b| relative to max |b| */
static float rel(const float *a, const float *b, size_t n) {
    float m = 0, d = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmaxf(m, fabsf(b[i]));
        float e = fabsf(a[i] - b[i]);
        d = (e > d || e != e) ? e : d;
    }
    return m > 0 ? d / m : d;
}

static void test_matmul(wk_backend *f, wk_backend *r) {
    int shapes[][3] = {{1, 37, 19}, {3, 64, 64}, {8, 100, 33}, {9, 96, 130}, {40, 129, 70}, {2, 300, 512},
                       {21, 70, 37}, {64, 33, 20}, {65, 64, 40}};
    wick_dtype dts[] = {WICK_DT_F32, WICK_DT_BF16, WICK_DT_F16};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int di = 0; di < 3; di++) {
            int n = shapes[si][0], in = shapes[si][1], out = shapes[si][2];
            float *x = rvec((size_t)n * in), *wf = rvec((size_t)out * in), *b = rvec(out);
            uint16_t *wh = malloc(sizeof(uint16_t) * (size_t)out * in);
            for (int i = 0; i < out * in; i++) wh[i] = dts[di] == WICK_DT_BF16 ? wk_f32_to_bf16(wf[i]) : wk_f32_to_f16(wf[i]);
            wk_mat W = {.w = dts[di] == WICK_DT_F32 ? (void *)wf : (void *)wh, .dt = dts[di], .rows = out, .cols = in};
            float *y1 = rvec((size_t)n * out), *y2 = malloc(sizeof(float) * (size_t)n * out);
            memcpy(y2, y1, sizeof(float) * (size_t)n * out);
            for (int acc = 0; acc < 2; acc++) {
                f->matmul(f, y1, x, &W, acc ? NULL : b, n, acc);
                r->matmul(r, y2, x, &W, acc ? NULL : b, n, acc);
                float e = rel(y1, y2, (size_t)n * out);
                CHECK(e < 1e-5f, "matmul n=%d in=%d out=%d %s acc=%d rel err %g", n, in, out, wick_dtype_name(dts[di]), acc, e);
            }
            for (int acc = 0; acc < 2; acc++) { /* few rows (LoRA decode kernel, threaded when large) and sgemm */
                f->matmul_f32(f, y1, x, wf, n, in, out, 0.5f, acc);
                r->matmul_f32(r, y2, x, wf, n, in, out, 0.5f, acc);
                CHECK(rel(y1, y2, (size_t)n * out) < 1e-5f, "matmul_f32 n=%d in=%d out=%d acc=%d", n, in, out, acc);
            }
            free(x), free(wf), free(b), free(wh), free(y1), free(y2);
        }
}

/* A row of a bf16 product over several rows (the gemv kernel's widen-once path, up to its row
 * limit) is bit for bit the product of that row alone: a batched session gets the same logits
 * as alone. */
static void test_matmul_rows_exact(wk_backend *f) {
    int ns[] = {2, 5, 8, 13, 40}, in = 203, out = 37;
    float *x = rvec((size_t)40 * in), *wf = rvec((size_t)out * in), *y = malloc(sizeof(float) * 40 * out), y1[37];
    uint16_t *wh = malloc(sizeof(uint16_t) * (size_t)out * in);
    for (int i = 0; i < out * in; i++) wh[i] = wk_f32_to_bf16(wf[i]);
    wk_mat W = {.w = wh, .dt = WICK_DT_BF16, .rows = out, .cols = in};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        int n = ns[k], same = 1;
        f->matmul(f, y, x, &W, NULL, n, 0);
        for (int r = 0; r < n; r++) {
            f->matmul(f, y1, x + (size_t)r * in, &W, NULL, 1, 0);
            same &= !memcmp(y1, y + (size_t)r * out, sizeof y1);
        }
        CHECK(same, "bf16 matmul of %d rows: a row differs from the same row alone", n);
    }
    free(x), free(wf), free(y), free(wh);
}

static void test_elementwise(wk_backend *f, wk_backend *r) {
    int n = 7, dim = 133;
    float *x = rvec((size_t)n * dim), *w = rvec(dim), *y1 = malloc(sizeof(float) * n * dim), *y2 = malloc(sizeof(float) * n * dim);
    f->rmsnorm(f, y1, x, w, n, dim, 1e-6f);
    r->rmsnorm(r, y2, x, w, n, dim, 1e-6f);
    CHECK(rel(y1, y2, (size_t)n * dim) < 1e-5f, "rmsnorm");
    f->rmsnorm(f, y1, x, NULL, n, dim, 1e-6f);
    r->rmsnorm(r, y2, x, NULL, n, dim, 1e-6f);
    CHECK(rel(y1, y2, (size_t)n * dim) < 1e-5f, "rmsnorm without weight");
    f->swiglu(f, y1, x, w, (size_t)dim);
    r->swiglu(r, y2, x, w, (size_t)dim);
    CHECK(rel(y1, y2, dim) < 1e-6f, "swiglu");
    memcpy(y1, x, sizeof(float) * dim), memcpy(y2, x, sizeof(float) * dim);
    f->add(f, y1, w, dim), r->add(r, y2, w, dim);
    CHECK(rel(y1, y2, dim) == 0, "add");
    /* rope on [n, 3 heads, 16] at scattered positions */
    int D = 16, H = 3;
    float inv[8];
    for (int i = 0; i < 8; i++) inv[i] = powf(10000.f, -2.f * i / D);
    int32_t pos[7] = {0, 1, 5, 17, 100, 1000, 4095};
    float *a = rvec((size_t)n * H * D), *b = malloc(sizeof(float) * n * H * D);
    memcpy(b, a, sizeof(float) * n * H * D);
    f->rope(f, a, pos, n, H, D, inv);
    r->rope(r, b, pos, n, H, D, inv);
    CHECK(rel(a, b, (size_t)n * H * D) < 1e-6f, "rope");
    /* embed */
    uint16_t tab[5 * 6];
    float tf[5 * 6];
    for (int i = 0; i < 30; i++) tf[i] = rnd(), tab[i] = wk_f32_to_bf16(tf[i]);
    int32_t ids[3] = {4, 0, 2};
    wk_mat E = {.w = tab, .dt = WICK_DT_BF16, .rows = 5, .cols = 6};
    f->embed(f, y1, &E, ids, 3), r->embed(r, y2, &E, ids, 3);
    CHECK(rel(y1, y2, 18) == 0 && y1[0] == wk_bf16_to_f32(tab[24]), "embed bf16");
    free(x), free(w), free(y1), free(y2), free(a), free(b);
}

static void test_attention(wk_backend *f, wk_backend *r) {
    int H = 6, Hk = 2, D = 16, cap = 40;
    int cases[][2] = {{1, 0}, {1, 12}, {9, 0}, {7, 20}};
    for (int c = 0; c < 4; c++) {
        int n = cases[c][0], pos0 = cases[c][1];
        float *q = rvec((size_t)n * H * D), *k = rvec((size_t)Hk * cap * D), *v = rvec((size_t)Hk * cap * D);
        float *o1 = malloc(sizeof(float) * n * H * D), *o2 = malloc(sizeof(float) * n * H * D);
        f->attention(f, o1, q, k, v, n, pos0, NULL, H, Hk, D, cap, 0.25f);
        r->attention(r, o2, q, k, v, n, pos0, NULL, H, Hk, D, cap, 0.25f);
        CHECK(rel(o1, o2, (size_t)n * H * D) < 1e-5f, "attention n=%d pos0=%d", n, pos0);
        free(q), free(k), free(v), free(o1), free(o2);
    }
}

int main(void) {
    wick_set_threads(2);
    wk_backend *f = wk_backend_cpu(), *r = wk_backend_cpu_ref();
    test_matmul(f, r);
    test_matmul_rows_exact(f);
    test_elementwise(f, r);
    test_attention(f, r);
    return t_summary();
}
