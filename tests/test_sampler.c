/*
 * test_sampler.c — the sampler against Hugging Face's logits warpers (golden/sampling:
 * every probs.<setting> and logits.rep1.3 within 1e-6), OpenAI penalties and logit
 * bias by hand, seeded reproducibility, a chi-square test of the empirical distribution
 * of draws on a small vocabulary, and top-k/top-p/min-p at a 152k vocabulary against a
 * plain full-sort reference (which exercises the bucketed top-p path).
 */
#include "t.h"
#include "infer/infer.h"

#include <stdint.h>

/* Reads tensor `name` (F32 or I64) of golden/sampling/golden.safetensors as floats. */
static float *golden(const char *name, int *n) {
    wick_st *f = NULL;
    wick_tensor_view v;
    if (wick_st_open(T_PATH("golden/sampling/golden.safetensors"), &f) || wick_st_find(f, name, &v) ||
        (v.dtype != WICK_DT_F32 && v.dtype != WICK_DT_I64)) {
        fprintf(stderr, "golden %s: %s\n", name, wick_last_error());
        wick_st_close(f);
        return NULL;
    }
    int64_t cnt = 1;
    for (int d = 0; d < v.ndim; d++) cnt *= v.shape[d];
    float *out = malloc((size_t)cnt * sizeof *out);
    for (int64_t i = 0; i < cnt; i++)
        out[i] = v.dtype == WICK_DT_I64 ? (float)((const int64_t *)v.data)[i] : ((const float *)v.data)[i];
    *n = (int)cnt;
    wick_st_close(f);
    return out;
}

static wick_sampler *mk(wick_sampler_opts o, int V) {
    wick_sampler *s = NULL;
    CHECK_OK(wick_sampler_new(&o, V, &s));
    return s;
}

static void test_golden(void) {
    int V = 0, np = 0, n = 0;
    float *logits = golden("logits", &V), *prev = golden("prev_ids", &np);
    CHECK(logits && prev && V == 1000, "golden sampling logits missing");
    if (!logits || !prev) return;
    struct {
        const char *name;
        float t, p, minp;
        int k;
    } cases[] = {{"probs.temp0.7", 0.7f, 1, 0, 0},
                 {"probs.topk50", 1, 1, 0, 50},
                 {"probs.topp0.9", 1, 0.9f, 0, 0},
                 {"probs.minp0.05", 1, 1, 0.05f, 0},
                 {"probs.temp0.8_topk40_topp0.95", 0.8f, 0.95f, 0, 40}};
    float *x = malloc(V * sizeof *x), *probs = malloc(V * sizeof *probs);
    for (size_t c = 0; c < WK_ARRAY_LEN(cases); c++) {
        float *want = golden(cases[c].name, &n);
        wick_sampler_opts o = wick_sampler_opts_default();
        o.temperature = cases[c].t, o.top_p = cases[c].p, o.min_p = cases[c].minp, o.top_k = cases[c].k;
        wick_sampler *s = mk(o, V);
        memcpy(x, logits, V * sizeof *x);
        CHECK_OK(wick_sampler_probs(s, x, probs));
        int support_diff = 0;
        for (int i = 0; i < V; i++) support_diff += (probs[i] > 0) != (want[i] > 0);
        CHECK(want && t_max_abs_diff(probs, want, V) <= 1e-6f, "%s: max diff %g", cases[c].name,
              (double)t_max_abs_diff(probs, want, V));
        CHECK(support_diff == 0, "%s: %d ids kept/dropped differently", cases[c].name, support_diff);
        wick_sampler_free(s);
        free(want);
    }
    /* repetition penalty 1.3 over prev_ids (HF rule), applied in place by the sampler */
    float *want = golden("logits.rep1.3", &n);
    wick_sampler_opts o = wick_sampler_opts_default();
    o.temperature = 0, o.repetition_penalty = 1.3f;
    wick_sampler *s = mk(o, V);
    int32_t ids[16];
    for (int i = 0; i < np; i++) ids[i] = (int32_t)prev[i];
    CHECK_OK(wick_sampler_add_prompt(s, ids, np));
    memcpy(x, logits, V * sizeof *x);
    int32_t id;
    CHECK_OK(wick_sampler_sample(s, x, &id, NULL));
    CHECK(want && t_max_abs_diff(x, want, V) <= 1e-6f, "rep1.3: max diff %g", (double)t_max_abs_diff(x, want, V));
    CHECK(id == wk_argmax(want, V), "greedy after penalty picked %d, want %d", (int)id, wk_argmax(want, V));
    wick_sampler_free(s);
    free(want), free(x), free(probs), free(logits), free(prev);
}

/* OpenAI presence/frequency over generated ids only, logit bias, and banning. */
static void test_penalties(void) {
    float l[8] = {1, 2, 3, -1, 0.5f, 2.5f, -2, 0}, want[8];
    memcpy(want, l, sizeof l);
    wick_logit_bias bias[2] = {{7, 3.0f}, {2, -INFINITY}};
    wick_sampler_opts o = wick_sampler_opts_default();
    o.temperature = 0, o.presence_penalty = 0.5f, o.frequency_penalty = 0.25f, o.repetition_penalty = 2.0f;
    o.logit_bias = bias, o.n_logit_bias = 2;
    wick_sampler *s = mk(o, 8);
    int32_t prompt[2] = {3, 4};
    CHECK_OK(wick_sampler_add_prompt(s, prompt, 2));
    CHECK_OK(wick_sampler_accept(s, 5));
    CHECK_OK(wick_sampler_accept(s, 5));
    CHECK_OK(wick_sampler_accept(s, 1));
    want[7] += 3.0f, want[2] = -INFINITY;
    want[3] = -2.0f, want[4] = 0.25f;                /* prompt ids: repetition penalty only */
    want[5] = 1.25f - (2 * 0.25f + 0.5f);            /* generated twice */
    want[1] = 1.0f - (0.25f + 0.5f);                 /* generated once */
    int32_t id;
    CHECK_OK(wick_sampler_sample(s, l, &id, NULL));
    CHECK(t_max_abs_diff(l, want, 8) == 0 || (l[2] == -INFINITY && t_max_abs_diff(l + 3, want + 3, 5) == 0),
          "penalties/bias differ");
    CHECK(l[0] == want[0] && l[1] == want[1] && l[2] == -INFINITY, "penalised logits wrong");
    CHECK(id == 7, "greedy picked %d, want 7 (biased)", (int)id);
    wick_sampler_reset(s, 0);
    float l2[8] = {1, 2, 3, -1, 0.5f, 2.5f, -2, 0};
    CHECK_OK(wick_sampler_sample(s, l2, &id, NULL));
    CHECK(l2[5] == 2.5f && l2[3] == -1.0f, "reset did not clear the history");
    wick_sampler_free(s);
}

static void test_errors(void) {
    wick_sampler *s = NULL;
    wick_sampler_opts o = wick_sampler_opts_default();
    o.top_p = 1.5f;
    CHECK_FAILS(wick_sampler_new(&o, 10, &s), "top_p");
    o = wick_sampler_opts_default();
    wick_logit_bias b = {10, 1};
    o.logit_bias = &b, o.n_logit_bias = 1;
    CHECK_FAILS(wick_sampler_new(&o, 10, &s), "logit_bias[0] id 10");
    o = wick_sampler_opts_default();
    s = mk(o, 4);
    CHECK_FAILS(wick_sampler_accept(s, 4), "outside the vocabulary");
    float l[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int32_t id;
    CHECK_FAILS(wick_sampler_sample(s, l, &id, NULL), "-inf");
    float l2[4] = {1, NAN, 2, 0};
    CHECK_FAILS(wick_sampler_sample(s, l2, &id, NULL), "NaN");
    wick_sampler_free(s);
}

/* Same seed -> same draws; other seed -> other draws; frequencies match the distribution. */
static void test_chi_square(void) {
    enum { V = 6, N = 60000 };
    const float base[V] = {1.0f, 0.2f, -0.5f, 1.5f, -3.0f, 0.7f};
    wick_sampler_opts o = wick_sampler_opts_default();
    o.temperature = 0.8f, o.top_k = 5, o.seed = 42;
    wick_sampler *a = mk(o, V), *b = mk(o, V);
    o.seed = 43;
    wick_sampler *c = mk(o, V);
    float x[V], p[V];
    memcpy(x, base, sizeof x);
    CHECK_OK(wick_sampler_probs(a, x, p));
    long cnt[V] = {0};
    int same = 1, differ = 0;
    for (int i = 0; i < N; i++) {
        int32_t ia, ib, ic;
        float pa;
        memcpy(x, base, sizeof x);
        wick_sampler_sample(a, x, &ia, &pa);
        memcpy(x, base, sizeof x);
        wick_sampler_sample(b, x, &ib, NULL);
        memcpy(x, base, sizeof x);
        wick_sampler_sample(c, x, &ic, NULL);
        same &= ia == ib;
        differ += ia != ic;
        cnt[ia]++;
        if (fabsf(pa - p[ia]) > 1e-6f) same = 0;
    }
    CHECK(same, "same seed gave different draws (or a wrong reported probability)");
    CHECK(differ > N / 4, "seed 42 and 43 agree on %d of %d draws", N - differ, N);
    CHECK(cnt[4] == 0 && p[4] == 0, "top-k 5 kept the smallest logit (%ld draws)", cnt[4]);
    double chi2 = 0;
    for (int i = 0; i < V; i++)
        if (p[i] > 0) chi2 += (cnt[i] - N * (double)p[i]) * (cnt[i] - N * (double)p[i]) / (N * (double)p[i]);
    CHECK(chi2 < 18.47, "chi-square %.2f with 4 degrees of freedom (p < 0.001)", chi2); /* df 4, alpha 0.001 */
    wick_sampler_free(a), wick_sampler_free(b), wick_sampler_free(c);
}

/* --- reference: HF warpers with a full sort, in double */
static const float *g_ref_x;
static int cmp_desc(const void *a, const void *b) {
    float x = g_ref_x[*(const int *)a], y = g_ref_x[*(const int *)b];
    return (x < y) - (x > y);
}

static void ref_probs(const float *l, int V, float T, int k, float top_p, float min_p, float *p) {
    float *x = malloc(V * sizeof *x);
    int *ord = malloc(V * sizeof *ord);
    for (int i = 0; i < V; i++) x[i] = l[i] / T, ord[i] = i;
    g_ref_x = x;
    qsort(ord, V, sizeof *ord, cmp_desc);
    int keep = (k > 0 && k < V) ? k : V;
    while (keep < V && x[ord[keep]] == x[ord[keep - 1]]) keep++;
    double z = 0, m = x[ord[0]];
    for (int j = 0; j < keep; j++) z += exp(x[ord[j]] - m);
    if (top_p < 1) {
        double above = 0;
        int j = 0;
        while (j < keep && (j == 0 || above < top_p * z)) above += exp(x[ord[j]] - m), j++;
        keep = j;
    }
    int j = 1;
    while (j < keep && !(exp(x[ord[j]] - m) < min_p)) j++;
    keep = min_p > 0 ? j : keep;
    z = 0;
    for (j = 0; j < keep; j++) z += exp(x[ord[j]] - m);
    memset(p, 0, V * sizeof *p);
    for (j = 0; j < keep; j++) p[ord[j]] = (float)(exp(x[ord[j]] - m) / z);
    free(x), free(ord);
}

static void test_large_vocab(void) {
    enum { V = 152064 };
    float *l = malloc(V * sizeof *l), *x = malloc(V * sizeof *x), *p = malloc(V * sizeof *p),
          *r = malloc(V * sizeof *r);
    wk_rng g;
    wk_rng_seed(&g, 7);
    for (int i = 0; i < V; i++) { /* Box-Muller normal, scale 2, plus a few peaked ids */
        double u1 = wk_rng_uniform(&g) + 1e-12, u2 = wk_rng_uniform(&g);
        l[i] = (float)(2.0 * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
    }
    for (int i = 0; i < 30; i++) l[(i * 7919) % V] += 9.0f - 0.2f * i;
    struct {
        float t, p, minp;
        int k;
    } cases[] = {{1, 0.9f, 0, 0}, {0.7f, 0.95f, 0, 40}, {1, 1, 0.05f, 0}, {1.3f, 1, 0, 1000},
                 {1, 0.5f, 0.01f, 0}, {2.0f, 0.99f, 0, 0}};
    for (size_t c = 0; c < WK_ARRAY_LEN(cases); c++) {
        wick_sampler_opts o = wick_sampler_opts_default();
        o.temperature = cases[c].t, o.top_p = cases[c].p, o.min_p = cases[c].minp, o.top_k = cases[c].k;
        wick_sampler *s = mk(o, V);
        memcpy(x, l, V * sizeof *x);
        CHECK_OK(wick_sampler_probs(s, x, p));
        ref_probs(l, V, cases[c].t, cases[c].k, cases[c].p, cases[c].minp, r);
        int support_diff = 0;
        for (int i = 0; i < V; i++) support_diff += (p[i] > 0) != (r[i] > 0);
        CHECK(support_diff == 0 && t_max_abs_diff(p, r, V) <= 1e-6f, "case %zu: %d support diffs, max diff %g", c,
              support_diff, (double)t_max_abs_diff(p, r, V));
        wick_sampler_free(s);
    }
    float scratch[2000];
    CHECK(wk_kth_largest(l, 2000, 1500, scratch) == wk_kth_largest(l, 2000, 1500, scratch), "kth");
    free(l), free(x), free(p), free(r);
}

/* wk_argmax: the first index of the maximum, at block edges, with ties, NaN and no finite value. */
static void test_argmax(void) {
    int sizes[] = {1, 63, 64, 65, 200, 151936};
    for (int si = 0; si < 6; si++) {
        int n = sizes[si];
        float *x = malloc(sizeof(float) * (size_t)n);
        int at[] = {0, 62, 63, 64, 127, 128, n / 2, n - 1};
        for (int ai = 0; ai < 8; ai++) {
            int a = at[ai] < n ? at[ai] : n - 1;
            for (int i = 0; i < n; i++) x[i] = (float)((i * 7919) % 1000) / 1000.f;
            x[a] = 5.f;
            CHECK(wk_argmax(x, n) == a, "n=%d: argmax %d, want %d", n, wk_argmax(x, n), a);
            if (a + 1 < n) {
                x[n - 1] = 5.f; /* a tie later: the first one wins */
                if (n - 1 > a) CHECK(wk_argmax(x, n) == a, "n=%d: tie at %d and %d gave %d", n, a, n - 1, wk_argmax(x, n));
            }
            if (n > 1) {
                x[a == 0 ? 1 : 0] = NAN; /* a NaN elsewhere is never the maximum */
                CHECK(wk_argmax(x, n) == a, "n=%d: a NaN changed the argmax to %d, want %d", n, wk_argmax(x, n), a);
            }
        }
        for (int i = 0; i < n; i++) x[i] = -INFINITY;
        CHECK(wk_argmax(x, n) == -1, "n=%d: all -inf gives %d, want -1", n, wk_argmax(x, n));
        free(x);
    }
}

int main(void) {
    test_argmax();
    test_golden();
    test_penalties();
    test_errors();
    test_chi_square();
    test_large_vocab();
    return t_summary();
}
