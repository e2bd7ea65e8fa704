/* test_forward.c — golden logits of the tiny models (HF transformers, float32) within 1e-4,
 * with f32 and bf16 weights; KV-cache decoding equals full-sequence logits; bad ids rejected. */
#include "t.h"
#include <stdlib.h>

typedef struct {
    const char *dir;
    int keep_bf16;
} gcase;

static int64_t *golden_i64(wick_st *g, const char *name, int64_t *n) {
    wick_tensor_view v;
    if (wick_st_find(g, name, &v) != WICK_OK || v.dtype != WICK_DT_I64) return NULL;
    *n = 1;
    for (int i = 0; i < v.ndim; i++) *n *= v.shape[i];
    int64_t *p = malloc(sizeof(int64_t) * (size_t)*n);
    memcpy(p, v.data, sizeof(int64_t) * (size_t)*n);
    return p;
}

static void check_case(const char *name, int keep_bf16) {
    char mdir[512], gpath[512];
    snprintf(mdir, sizeof mdir, "%s/golden/%s/model", WICK_TEST_DIR, name);
    snprintf(gpath, sizeof gpath, "%s/golden/%s/golden.safetensors", WICK_TEST_DIR, name);
    wick_model_opts o = wick_model_opts_default();
    o.keep_bf16 = keep_bf16;
    wick_model *m = NULL;
    wick_st *g = NULL;
    CHECK_OK(wick_model_load(mdir, &o, &m));
    CHECK_OK(wick_st_open(gpath, &g));
    if (!m || !g) return;
    wick_model_info info;
    wick_model_get_info(m, &info);
    int64_t n = 0;
    int64_t *ids64 = golden_i64(g, "input_ids", &n);
    wick_tensor_view lv;
    CHECK_OK(wick_st_find(g, "logits", &lv));
    int B = (int)lv.shape[0], T = (int)lv.shape[1], V = (int)lv.shape[2];
    CHECK(V == info.vocab_size && n == (int64_t)B * T, "%s: shapes", name);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)ids64[i];
    float *out = malloc(sizeof(float) * (size_t)B * T * V);
    CHECK_OK(wick_model_logits(m, NULL, 1.f, ids, B, T, out));
    float d = t_max_abs_diff(out, lv.data, (size_t)B * T * V);
    CHECK(d <= 1e-4f, "%s (keep_bf16=%d): max |logits - golden| = %g", name, keep_bf16, d);

    /* incremental decoding through the KV cache: one id at a time, then 3+rest */
    wick_session *s;
    CHECK_OK(wick_session_new(m, NULL, &s));
    float *row = malloc(sizeof(float) * V);
    float worst = 0;
    for (int t = 0; t < T; t++) {
        CHECK_OK(wick_session_eval(s, ids + t, 1, row, 0));
        float e = t_max_abs_diff(row, out + (size_t)t * V, V);
        worst = e > worst ? e : worst;
    }
    CHECK(worst <= 1e-5f, "%s: KV-cache decode vs full sequence differs by %g", name, worst);
    wick_session_reset(s);
    CHECK_OK(wick_session_eval(s, ids, 3, NULL, 0));
    CHECK_OK(wick_session_eval(s, ids + 3, T - 3, row, 0));
    CHECK(t_max_abs_diff(row, out + (size_t)(T - 1) * V, V) <= 1e-5f, "%s: chunked prefill", name);
    int32_t bad = V;
    CHECK_FAILS(wick_session_eval(s, &bad, 1, row, 0), "outside the vocabulary");
    wick_session_free(s);
    free(row), free(out), free(ids), free(ids64);
    wick_st_close(g);
    wick_model_free(m);
}

int main(void) {
    wick_set_threads(2);
    check_case("qwen2_tiny", 1);
    check_case("llama_tiny", 1);
    check_case("qwen3_tiny", 1);
    check_case("qwen2_tiny_bf16", 1);
    check_case("qwen2_tiny_bf16", 0);
    return t_summary();
}
