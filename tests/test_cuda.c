/* test_cuda.c — the CUDA backend: every op against the CPU reference op (relative L2
 * error, i.e. sqrt of the normalised MSE, with a threshold per op and weight type), the
 * golden logits of the tiny models on "cuda" in fp32 within 1e-4, bf16 weights within
 * documented bounds, KV-cache decode = full sequence, greedy ids = HF's, and device
 * string errors. Without the CUDA backend or without a GPU it checks that "cuda" is
 * refused with a clear message and skips the rest. */
#include "t.h"
#include "backend/backend.h"
#ifdef WICK_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include <stdlib.h>

static void check_unavailable(void) {
    wick_model_opts o = wick_model_opts_default();
    o.device = "cuda";
    wick_model *m = NULL;
    CHECK_FAILS(wick_model_load(T_PATH("golden/qwen2_tiny/model"), &o, &m), "cuda");
    CHECK(m == NULL, "no model on failure");
    o.device = "gpu0";
    CHECK_FAILS(wick_model_load(T_PATH("golden/qwen2_tiny/model"), &o, &m), "expected cpu, cuda or cuda:N");
}

#ifdef WICK_HAVE_CUDA
#define CT_SEED 0x9E3779B97F4A7C15ull
#include "cuda_t.h"

static wk_backend *R; /* the cpu reference (G, the cuda backend: cuda_t.h) */


static void test_matmul(void) {
    int shapes[][3] = {{1, 37, 19}, {3, 64, 64}, {8, 896, 136}, {9, 96, 130}, {40, 129, 70}, {64, 256, 192},
                       {1, 4864, 96}, {5, 2048, 40}, {2, 6000, 33}, {1, 2050, 17}};
    wick_dtype dts[] = {WICK_DT_F32, WICK_DT_BF16, WICK_DT_F16};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int di = 0; di < 3; di++)
            for (int mode = 0; mode < 2; mode++) { /* 0: plain, 1: bias + accumulate */
                int n = shapes[si][0], in = shapes[si][1], out = shapes[si][2];
                size_t ny = (size_t)n * out, nw = (size_t)out * in;
                float *x = rvec((size_t)n * in, 1.f), *wf = rvec(nw, 1.f), *b = rvec(out, 1.f), *y = rvec(ny, 1.f);
                uint16_t *wh = malloc(sizeof(uint16_t) * nw);
                for (size_t i = 0; i < nw; i++) wh[i] = dts[di] == WICK_DT_BF16 ? wk_f32_to_bf16(wf[i]) : wk_f32_to_f16(wf[i]);
                const void *wp = dts[di] == WICK_DT_F32 ? (void *)wf : (void *)wh;
                wk_mat W = {.w = wp, .dt = dts[di], .rows = out, .cols = in};
                wk_mat Wd = W;
                Wd.w = dev(wp, nw * wick_dtype_size(dts[di]));
                float *dx = dev(x, sizeof(float) * n * in), *dy = dev(y, sizeof(float) * ny);
                float *db = dev(b, sizeof(float) * out);
                R->matmul(R, y, x, &W, mode ? b : NULL, n, mode);
                G->matmul(G, dy, dx, &Wd, mode ? db : NULL, n, mode);
                float *got = host(dy, ny);
                no_error("matmul");
                /* n > 8 with 16-bit weights rounds the activations to the weight type (cuBLAS) */
                double tol = (n <= 8 || dts[di] == WICK_DT_F32) ? 1e-5 : dts[di] == WICK_DT_BF16 ? 1e-2 : 2e-3;
                double e = t_rel_l2(got, y, ny);
                CHECK(e <= tol, "matmul n=%d in=%d out=%d %s mode %d: rel L2 %g > %g", n, in, out,
                      wick_dtype_name(dts[di]), mode, e, tol);
                G->free(G, (void *)Wd.w), G->free(G, dx), G->free(G, db);
                free(x), free(wf), free(b), free(y), free(wh), free(got);
            }
}

/* Consecutive products of the same activations round them to bf16 once; any other op
 * (here add, and an upload) must invalidate that. */
static void test_cast_cache(void) {
    int n = 16, in = 64, out = 48;
    float *x = rvec((size_t)n * in, 1.f), *d = rvec((size_t)n * in, 1.f), *y = malloc(sizeof(float) * n * out);
    float *w1 = rvec((size_t)out * in, 1.f), *w2 = rvec((size_t)out * in, 1.f);
    uint16_t *h1 = malloc(2 * (size_t)out * in), *h2 = malloc(2 * (size_t)out * in);
    for (int i = 0; i < out * in; i++) h1[i] = wk_f32_to_bf16(w1[i]), h2[i] = wk_f32_to_bf16(w2[i]);
    wk_mat W1 = {.w = h1, .dt = WICK_DT_BF16, .rows = out, .cols = in}, W2 = W1, D1 = W1, D2 = W1;
    W2.w = h2;
    D1.w = dev(h1, 2 * (size_t)out * in), D2.w = dev(h2, 2 * (size_t)out * in);
    float *dx = dev(x, sizeof(float) * n * in), *dd = dev(d, sizeof(float) * n * in);
    float *dy = G->alloc(G, sizeof(float) * n * out);
    for (int step = 0; step < 4; step++) {
        const wk_mat *W = step % 2 ? &W2 : &W1, *Wd = step % 2 ? &D2 : &D1;
        if (step == 2) R->add(R, x, d, (size_t)n * in), G->add(G, dx, dd, (size_t)n * in);
        if (step == 3) {
            for (int i = 0; i < n * in; i++) x[i] = -x[i];
            G->upload(G, dx, x, sizeof(float) * n * in);
        }
        R->matmul(R, y, x, W, NULL, n, 0);
        G->matmul(G, dy, dx, Wd, NULL, n, 0);
        float *got = malloc(sizeof(float) * n * out);
        G->download(G, got, dy, sizeof(float) * n * out);
        double e = t_rel_l2(got, y, (size_t)n * out);
        CHECK(e <= 1e-2, "cast cache step %d: rel L2 %g", step, e);
        free(got);
    }
    no_error("cast cache");
    G->free(G, (void *)D1.w), G->free(G, (void *)D2.w), G->free(G, dx), G->free(G, dd), G->free(G, dy);
    free(x), free(d), free(y), free(w1), free(w2), free(h1), free(h2);
}

static void test_matmul_f32(void) {
    int n = 13, m = 40, k = 24;
    for (int acc = 0; acc < 2; acc++) {
        float *x = rvec((size_t)n * m, 1.f), *B = rvec((size_t)k * m, 1.f), *y = rvec((size_t)n * k, 1.f);
        float *dx = dev(x, sizeof(float) * n * m), *dB = dev(B, sizeof(float) * k * m), *dy = dev(y, sizeof(float) * n * k);
        R->matmul_f32(R, y, x, B, n, m, k, 0.5f, acc);
        G->matmul_f32(G, dy, dx, dB, n, m, k, 0.5f, acc);
        float *got = host(dy, (size_t)n * k);
        no_error("matmul_f32");
        CHECK(t_rel_l2(got, y, (size_t)n * k) <= 1e-6, "matmul_f32 acc=%d: %g", acc, t_rel_l2(got, y, (size_t)n * k));
        G->free(G, dx), G->free(G, dB);
        free(x), free(B), free(y), free(got);
    }
}

static void test_norm_rope(void) {
    /* register path (dim % 4 == 0, dim <= 4096) and the generic one */
    int cases[][2] = {{7, 896}, {12, 64}, {3, 2500}, {5, 1001}, {2, 4100}, {4, 3584}};
    for (int c = 0; c < 6; c++) {
        int n = cases[c][0], dim = cases[c][1];
        size_t sz = (size_t)n * dim;
        float *x = rvec(sz, 1.f), *w = rvec(dim, 1.f), *y = malloc(sizeof(float) * sz);
        float *dx = dev(x, sizeof(float) * sz), *dw = dev(w, sizeof(float) * dim);
        R->rmsnorm(R, y, x, c == 1 ? NULL : w, n, dim, 1e-6f);
        G->rmsnorm(G, dx, dx, c == 1 ? NULL : dw, n, dim, 1e-6f); /* in place */
        float *got = host(dx, sz);
        no_error("rmsnorm");
        CHECK(t_rel_l2(got, y, sz) <= 1e-6, "rmsnorm n=%d dim=%d: %g", n, dim, t_rel_l2(got, y, sz));
        G->free(G, dw);
        free(x), free(w), free(y), free(got);
    }
    int n = 9, nh = 3, D = 64;
    size_t sz = (size_t)n * nh * D;
    float *x = rvec(sz, 1.f), inv[32];
    int32_t pos[9];
    for (int j = 0; j < D / 2; j++) inv[j] = powf(10000.f, -2.f * j / D);
    for (int i = 0; i < n; i++) pos[i] = 100 + 37 * i;
    float *dx = dev(x, sizeof(float) * sz), *dinv = dev(inv, sizeof inv);
    int32_t *dpos = dev(pos, sizeof pos);
    R->rope(R, x, pos, n, nh, D, inv);
    G->rope(G, dx, dpos, n, nh, D, dinv);
    float *got = host(dx, sz);
    no_error("rope");
    CHECK(t_rel_l2(got, x, sz) <= 1e-6, "rope: %g", t_rel_l2(got, x, sz));
    G->free(G, dinv), G->free(G, dpos);
    free(x), free(got);
}

static void test_elementwise(void) {
    size_t n = 10007;
    float *g = rvec(n, 1.f), *u = rvec(n, 1.f), *o = malloc(sizeof(float) * n);
    float *dg = dev(g, sizeof(float) * n), *du = dev(u, sizeof(float) * n), *dout = G->alloc(G, sizeof(float) * n);
    R->swiglu(R, o, g, u, n);
    G->swiglu(G, dout, dg, du, n);
    float *got = host(dout, n);
    CHECK(t_rel_l2(got, o, n) <= 1e-6, "swiglu: %g", t_rel_l2(got, o, n));
    R->add(R, g, u, n);
    G->add(G, dg, du, n);
    free(got);
    got = host(dg, n);
    no_error("swiglu/add");
    CHECK(t_rel_l2(got, g, n) <= 1e-7, "add: %g", t_rel_l2(got, g, n));
    G->free(G, du);
    free(g), free(u), free(o), free(got);

    int V = 50, C = 72, ids[5] = {3, 0, 49, 17, 3};
    float *E = rvec((size_t)V * C, 1.f), *e1 = malloc(sizeof(float) * 5 * C);
    uint16_t *Eb = malloc(sizeof(uint16_t) * V * C);
    for (int i = 0; i < V * C; i++) Eb[i] = wk_f32_to_bf16(E[i]);
    for (int bf = 0; bf < 2; bf++) {
        wk_mat M = {.w = bf ? (void *)Eb : (void *)E, .dt = bf ? WICK_DT_BF16 : WICK_DT_F32, .rows = V, .cols = C};
        wk_mat Md = M;
        Md.w = dev(M.w, (size_t)V * C * wick_dtype_size(M.dt));
        int32_t *dids = dev(ids, sizeof ids);
        float *dout2 = G->alloc(G, sizeof(float) * 5 * C);
        R->embed(R, e1, &M, ids, 5);
        G->embed(G, dout2, &Md, dids, 5);
        float *got2 = host(dout2, (size_t)5 * C);
        no_error("embed");
        CHECK(t_max_abs_diff(got2, e1, (size_t)5 * C) == 0.f, "embed (bf16=%d) differs", bf);
        G->free(G, (void *)Md.w), G->free(G, dids);
        free(got2);
    }
    free(E), free(Eb), free(e1);
}

/* attention over a cache filled by kv_store (both backends), n rows at pos0; positions
 * given as the pos0 argument or (dpos) read from device memory, as captured graphs do */
static void attention_case(int n, int pos0, int H, int Hk, int D, int dpos) {
    int cap = pos0 + n + 5, T = pos0 + n;
    size_t csz = (size_t)Hk * cap * D, qsz = (size_t)n * H * D;
    float *kc = calloc(csz, sizeof(float)), *vc = calloc(csz, sizeof(float));
    float *kn = rvec((size_t)T * Hk * D, 1.f), *vn = rvec((size_t)T * Hk * D, 1.f), *q = rvec(qsz, 1.f), *o = malloc(sizeof(float) * qsz);
    float *dkc = dev(kc, sizeof(float) * csz), *dvc = dev(vc, sizeof(float) * csz);
    float *dkn = dev(kn, sizeof(float) * T * Hk * D), *dvn = dev(vn, sizeof(float) * T * Hk * D);
    float *dq = dev(q, sizeof(float) * qsz), *dout = G->alloc(G, sizeof(float) * qsz);
    int32_t *pos = malloc(sizeof(int32_t) * n), *dp = NULL;
    for (int i = 0; i < n; i++) pos[i] = pos0 + i;
    if (dpos) dp = dev(pos, sizeof(int32_t) * n);
    R->kv_store(R, kc, vc, kn, vn, T, 0, NULL, Hk, D, cap);
    if (pos0) G->kv_store(G, dkc, dvc, dkn, dvn, pos0, 0, NULL, Hk, D, cap); /* two stores: 0..pos0, then the rest */
    /* the pos0 argument is wrong on purpose when device positions are given: they must win */
    G->kv_store(G, dkc, dvc, dkn + (size_t)pos0 * Hk * D, dvn + (size_t)pos0 * Hk * D, n, dpos ? 0 : pos0, dp, Hk, D,
                cap);
    float scale = 1.f / sqrtf((float)D);
    R->attention(R, o, q, kc, vc, n, pos0, NULL, H, Hk, D, cap, scale);
    G->attention(G, dout, dq, dkc, dvc, n, (dpos && n <= 8) ? 0 : pos0, dp, H, Hk, D, cap, scale);
    float *fo = NULL;
    if (n > 8) { /* prefill on the TF32 instance (same memory: one device) */
        wk_backend *F = wk_backend_cuda_fast(0);
        float *dfo = G->alloc(G, sizeof(float) * qsz);
        G->sync(G); /* inputs written on the other instance's stream */
        F->attention(F, dfo, dq, dkc, dvc, n, pos0, dp, H, Hk, D, cap, scale);
        F->sync(F);
        CHECK(F->check(F) == WICK_OK, "fast attention: %s", wick_last_error());
        fo = host(dfo, qsz);
        double ef = t_rel_l2(fo, o, qsz);
        CHECK(ef <= 3e-3, "attention (tf32) n=%d pos0=%d: rel L2 %g", n, pos0, ef);
    }
    free(fo);
    float *kgot = malloc(sizeof(float) * csz);
    G->download(G, kgot, dkc, sizeof(float) * csz);
    float *got = host(dout, qsz);
    no_error("attention");
    double e = t_rel_l2(got, o, qsz);
    CHECK(e <= 2e-6, "attention n=%d pos0=%d H=%d Hk=%d D=%d dpos=%d: rel L2 %g", n, pos0, H, Hk, D, dpos, e);
    int bad = 0; /* positions past T were never written on either side */
    for (int h = 0; h < Hk; h++)
        for (size_t i = (size_t)h * cap * D; i < ((size_t)h * cap + T) * D; i++) bad += kgot[i] != kc[i];
    CHECK(bad == 0, "kv_store: %d cache entries differ", bad);
    G->free(G, dkc), G->free(G, dvc), G->free(G, dkn), G->free(G, dvn), G->free(G, dq), G->free(G, dp);
    free(pos), free(kc), free(vc), free(kn), free(vn), free(q), free(o), free(kgot), free(got);
}

static void test_attention(void) {
    for (int dpos = 0; dpos < 2; dpos++) {
        attention_case(1, 0, 4, 4, 64, dpos);    /* first token */
        attention_case(1, 300, 6, 2, 64, dpos);  /* decode across a split boundary, GQA */
        attention_case(3, 600, 6, 2, 128, dpos); /* a few rows at once */
        attention_case(8, 257, 4, 1, 18, dpos);  /* D not a multiple of 4 */
        attention_case(37, 20, 6, 2, 64, dpos);  /* prefill chunk after a cached prefix */
        attention_case(40, 0, 14, 2, 64, dpos);  /* prefill from empty, qwen2.5-0.5b head layout */
        attention_case(9, 511, 3, 3, 32, dpos);
        attention_case(12, 2100, 2, 1, 32, dpos);  /* long rows: 16 softmax values per thread */
        attention_case(10, 4200, 1, 1, 16, dpos);  /* longer than the register softmax */
    }
}

static int64_t *golden_i64(wick_st *g, const char *name, int64_t *n) {
    wick_tensor_view v;
    if (wick_st_find(g, name, &v) != WICK_OK || v.dtype != WICK_DT_I64) return NULL;
    *n = 1;
    for (int i = 0; i < v.ndim; i++) *n *= v.shape[i];
    int64_t *p = malloc(sizeof(int64_t) * (size_t)*n);
    memcpy(p, v.data, sizeof(int64_t) * (size_t)*n);
    return p;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) b = x[i] > x[b] ? i : b;
    return b;
}

/* 24 greedy ids from gen_prompt through the KV cache equal HF generate's */
static void check_greedy(wick_model *m, wick_st *g, int V, const char *name) {
    int64_t np = 0, ng = 0;
    int64_t *p64 = golden_i64(g, "gen_prompt", &np), *g64 = golden_i64(g, "gen_greedy", &ng);
    if (!p64 || !g64) return;
    wick_session *s;
    CHECK_OK(wick_session_new(m, NULL, &s));
    float *row = malloc(sizeof(float) * V);
    int32_t ids[64];
    for (int i = 0; i < np; i++) ids[i] = (int32_t)p64[i];
    int same = 1;
    double lp[64] = {0};
    CHECK_OK(wick_session_eval(s, ids, (int)np, row, 0));
    for (int t = 0; t < ng && same; t++) {
        int32_t next = argmax(row, V);
        double z = 0;
        for (int v = 0; v < V; v++) z += exp((double)row[v] - row[next]);
        if (t < 64) lp[t] = -log(z);
        same = next == (int32_t)g64[t];
        CHECK_OK(wick_session_eval(s, &next, 1, row, 0));
    }
    CHECK(same, "%s: greedy ids on cuda differ from HF generate", name);
    /* the generation API: greedy steps picked on the device (no logits downloaded) */
    wick_session_reset(s);
    wick_gen_opts go = wick_gen_opts_default();
    go.sampling.temperature = 0, go.max_tokens = (int)ng, go.ignore_eos = 1;
    wick_gen *gen = NULL;
    CHECK_OK(wick_gen_start(m, s, ids, (int)np, &go, &gen));
    wick_token tok;
    int done = 0, t = 0, same_gen = 1;
    double worst = 0;
    while (gen && !wick_gen_next(gen, &tok, &done) && !done && t < ng) {
        same_gen &= tok.id == (int32_t)g64[t];
        if (t < 64 && fabs(tok.logprob - lp[t]) > worst) worst = fabs(tok.logprob - lp[t]);
        t++;
    }
    CHECK(same_gen && t == ng && worst < 1e-4, "%s: wick_gen greedy on cuda: %d of %d ids, same %d, logprob off by %g",
          name, t, (int)ng, same_gen, worst);
    wick_gen_free(gen);
    wick_session_free(s);
    free(row), free(p64), free(g64);
}

/* Golden logits on cuda. exact: fp32 path (tol 1e-4); else bf16 activations in prefill GEMMs. */
static void check_golden(const char *name, int keep_bf16, int exact) {
    char mdir[512], gpath[512];
    snprintf(mdir, sizeof mdir, "%s/golden/%s/model", WICK_TEST_DIR, name);
    snprintf(gpath, sizeof gpath, "%s/golden/%s/golden.safetensors", WICK_TEST_DIR, name);
    wick_model_opts o = wick_model_opts_default();
    o.keep_bf16 = keep_bf16;
    o.device = "cuda:0";
    wick_model *m = NULL;
    wick_st *g = NULL;
    CHECK_OK(wick_model_load(mdir, &o, &m));
    CHECK_OK(wick_st_open(gpath, &g));
    if (!m || !g) return;
    int64_t n = 0;
    int64_t *ids64 = golden_i64(g, "input_ids", &n);
    wick_tensor_view lv;
    CHECK_OK(wick_st_find(g, "logits", &lv));
    int B = (int)lv.shape[0], T = (int)lv.shape[1], V = (int)lv.shape[2];
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)ids64[i];
    size_t total = (size_t)B * T * V;
    float *out = malloc(sizeof(float) * total);
    CHECK_OK(wick_model_logits(m, NULL, 1.f, ids, B, T, out));
    float d = t_max_abs_diff(out, lv.data, total);
    double e = t_rel_l2(out, lv.data, total);
    if (exact) CHECK(d <= 1e-4f, "%s on cuda (keep_bf16=%d): max |logits - golden| = %g", name, keep_bf16, d);
    else CHECK(e <= 1e-2, "%s on cuda, bf16 activations in GEMMs: rel L2 %g (max diff %g)", name, e, d);
    printf("%s keep_bf16=%d: max |diff| %.3g, rel L2 %.3g\n", name, keep_bf16, d, e);

    /* one id at a time through the KV cache (GEMV path, fp32 activations: exact for any weights) */
    wick_session *s;
    CHECK_OK(wick_session_new(m, NULL, &s));
    float *row = malloc(sizeof(float) * V);
    float worst = 0;
    for (int t = 0; t < T; t++) {
        CHECK_OK(wick_session_eval(s, ids + t, 1, row, 0));
        float x = t_max_abs_diff(row, (const float *)lv.data + (size_t)t * V, V);
        worst = x > worst ? x : worst;
    }
    CHECK(worst <= 1e-4f, "%s: KV-cache decode on cuda vs golden differs by %g", name, worst);
    if (exact) {
        float *full = malloc(sizeof(float) * (size_t)T * V);
        wick_session_reset(s);
        CHECK_OK(wick_session_eval(s, ids, T, full, 1));
        CHECK(t_max_abs_diff(full, out, (size_t)T * V) <= 1e-5f, "%s: session vs model_logits", name);
        wick_session_reset(s);
        CHECK_OK(wick_session_eval(s, ids, 3, NULL, 0));
        CHECK_OK(wick_session_eval(s, ids + 3, T - 3, row, 0));
        float x = t_max_abs_diff(row, full + (size_t)(T - 1) * V, V);
        CHECK(x <= 1e-5f, "%s: chunked prefill on cuda differs by %g", name, x);
        free(full);
        check_greedy(m, g, V, name);
    }
    wick_session_free(s);
    free(row), free(out), free(ids), free(ids64);
    wick_st_close(g);
    wick_model_free(m);
}

static void test_devices(int count) {
    wick_model_opts o = wick_model_opts_default();
    wick_model *m = NULL;
    char bad[32];
    snprintf(bad, sizeof bad, "cuda:%d", count);
    o.device = bad;
    CHECK_FAILS(wick_model_load(T_PATH("golden/qwen2_tiny/model"), &o, &m), "no such device");
    o.device = "cuda:x";
    CHECK_FAILS(wick_model_load(T_PATH("golden/qwen2_tiny/model"), &o, &m), "expected cpu, cuda or cuda:N");
    CHECK(wk_backend_cuda(count) == NULL, "backend for a missing device");
}
#endif

int main(void) {
    int count = wick_cuda_device_count();
#ifdef WICK_HAVE_CUDA
    CHECK(count == wk_cuda_device_count(), "device counts agree");
#endif
    if (count == 0) {
        printf("test_cuda: skipped: %s\n",
#ifdef WICK_HAVE_CUDA
               "built with CUDA, but no CUDA device is available"
#else
               "built without the CUDA backend"
#endif
        );
        check_unavailable();
        return t_summary();
    }
#ifdef WICK_HAVE_CUDA
    G = wk_backend_cuda(0);
    R = wk_backend_cpu_ref();
    CHECK(G != NULL, "cuda backend: %s", wick_last_error());
    if (!G) return t_summary();
    test_matmul();
    test_matmul_f32();
    test_cast_cache();
    test_norm_rope();
    test_elementwise();
    test_attention();
    test_devices(count);
    check_golden("qwen2_tiny", 1, 1);
    check_golden("llama_tiny", 1, 1);
    check_golden("qwen3_tiny", 1, 1);
    check_golden("qwen2_tiny_bf16", 0, 1);
    check_golden("qwen2_tiny_bf16", 1, 0);
    size_t used, cached;
    wk_cuda_mem_stats(G, &used, &cached);
    printf("cuda allocator: %zu bytes in use, %zu cached\n", used, cached);
#endif
    return t_summary();
}
