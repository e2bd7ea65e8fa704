/* test_ops_enc.c — the fast CPU encoder ops (LayerNorm, GELU, masked bidirectional
 * attention) against the reference ops, over odd sizes, padded masks and in-place use. */
#include "t.h"
#include "backend/backend.h"
#include <stdlib.h>

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static float rnd(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (float)((rs >> 11) * (1.0 / 9007199254740992.0)) * 2.f - 1.f;
}
static float *rvec(size_t n, float scale) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = rnd() * scale;
    return p;
}

static void test_layernorm(wk_backend *f, wk_backend *r) {
    int dims[] = {1, 7, 64, 384, 1031};
    for (size_t di = 0; di < WK_ARRAY_LEN(dims); di++) {
        int n = 9, dim = dims[di];
        size_t sz = (size_t)n * dim;
        float *x = rvec(sz, 3.f), *res = rvec(sz, 1.f), *w = rvec(dim, 1.f), *b = rvec(dim, 1.f);
        for (size_t i = 0; i < sz; i++) x[i] += 2.f; /* a non-zero mean */
        float *y1 = malloc(sz * sizeof(float)), *y2 = malloc(sz * sizeof(float));
        f->layernorm(f, y1, x, NULL, NULL, w, b, n, dim, 1e-12f);
        r->layernorm(r, y2, x, NULL, NULL, w, b, n, dim, 1e-12f);
        CHECK(t_max_abs_diff(y1, y2, sz) < 2e-5f, "layernorm dim=%d: %g", dim, t_max_abs_diff(y1, y2, sz));
        for (int withb = 0; withb < 2; withb++) { /* a residual, and a residual + the product's bias */
            const float *xb = withb ? b : NULL;
            r->layernorm(r, y2, x, xb, res, w, b, n, dim, 1e-5f);
            memcpy(y1, res, sz * sizeof(float));
            f->layernorm(f, y1, x, xb, y1, w, b, n, dim, 1e-5f); /* in place on the residual, as the encoder calls it */
            CHECK(t_max_abs_diff(y1, y2, sz) < 2e-5f, "layernorm+residual dim=%d bias %d: %g", dim, withb,
                  t_max_abs_diff(y1, y2, sz));
        }
        f->layernorm(f, y1, x, b, NULL, w, b, n, dim, 1e-5f);
        r->layernorm(r, y2, x, b, NULL, w, b, n, dim, 1e-5f);
        CHECK(t_max_abs_diff(y1, y2, sz) < 2e-5f, "layernorm+bias dim=%d: %g", dim, t_max_abs_diff(y1, y2, sz));
        free(x), free(res), free(w), free(b), free(y1), free(y2);
    }
}

static void test_gelu(wk_backend *f, wk_backend *r) {
    size_t n = 100003;
    float *x = malloc(n * sizeof(float)), *y1 = malloc(n * sizeof(float)), *y2 = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = -12.f + 24.f * (float)i / (float)(n - 1);
    x[0] = -100.f, x[1] = 100.f, x[2] = 0.f, x[3] = -0.f;
    f->gelu(f, y1, x, NULL, n, 0);
    r->gelu(r, y2, x, NULL, n, 0);
    float worst = 0;
    for (size_t i = 0; i < n; i++) {
        float e = fabsf(y1[i] - y2[i]) / fmaxf(1.f, fabsf(y2[i]));
        worst = e > worst || e != e ? e : worst;
    }
    CHECK(worst < 1e-6f, "gelu max error %g", worst);
    CHECK(y1[0] == 0.f && y1[1] == 100.f && y1[2] == 0.f, "gelu extremes %g %g %g", y1[0], y1[1], y1[2]);
    memcpy(y1, x, n * sizeof(float));
    f->gelu(f, y1, y1, NULL, n, 0);
    CHECK(t_max_abs_diff(y1, y2, n) < 1e-5f, "gelu in place");
    float xb[37];
    for (int i = 0; i < 37; i++) xb[i] = rnd();
    f->gelu(f, y1, x, xb, n - 3, 37); /* a bias per column of rows of 37 */
    r->gelu(r, y2, x, xb, n - 3, 37);
    CHECK(t_max_abs_diff(y1, y2, n - 3) < 1e-5f, "gelu with bias: %g", t_max_abs_diff(y1, y2, n - 3));
    free(x), free(y1), free(y2);
}

static void test_attention(wk_backend *f, wk_backend *r) {
    int cases[][4] = {{1, 1, 1, 8}, {3, 10, 4, 16}, {2, 33, 3, 32}, {4, 64, 2, 24}}; /* B, T, H, D */
    for (size_t ci = 0; ci < WK_ARRAY_LEN(cases); ci++) {
        int B = cases[ci][0], T = cases[ci][1], H = cases[ci][2], D = cases[ci][3], ld = H * D + 5;
        size_t sz = (size_t)B * T * ld;
        float *q = rvec(sz, 2.f), *k = rvec(sz, 2.f), *v = rvec(sz, 1.f);
        float *o1 = calloc(sz, sizeof(float)), *o2 = calloc(sz, sizeof(float));
        int32_t *mask = malloc(sizeof(int32_t) * (size_t)B * T);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) mask[b * T + t] = t < T - b * (T / 4 + 1) || t == 0; /* right padding */
        float *bias = rvec((size_t)3 * H * D, 1.f);
        for (int use_mask = 0; use_mask < 8; use_mask++) { /* bit 1: compact output (ldo = H*D); bit 2: q|k|v biases */
            int ldo = use_mask & 2 ? H * D : ld;
            const int32_t *m = use_mask & 1 ? mask : NULL;
            const float *bs = use_mask & 4 ? bias : NULL;
            f->attention_bidir(f, o1, q, k, v, bs, m, B, T, H, D, ld, ldo, 1.f / sqrtf((float)D));
            r->attention_bidir(r, o2, q, k, v, bs, m, B, T, H, D, ld, ldo, 1.f / sqrtf((float)D));
            CHECK(t_max_abs_diff(o1, o2, sz) < 2e-6f, "attention B=%d T=%d H=%d D=%d mask=%d ldo=%d bias=%d: %g", B, T, H,
                  D, use_mask & 1, ldo, use_mask >> 2, t_max_abs_diff(o1, o2, sz));
        }
        free(bias);
        free(q), free(k), free(v), free(o1), free(o2), free(mask);
    }
}

int main(void) {
    wk_backend *f = wk_backend_cpu(), *r = wk_backend_cpu_ref();
    test_layernorm(f, r);
    test_gelu(f, r);
    test_attention(f, r);
    return t_summary();
}
