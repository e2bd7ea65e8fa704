/*
 * test_gen_golden.c — generation on the golden models (qwen2_tiny, llama_tiny,
 * qwen3_tiny) against Hugging Face generate: gen_greedy and gen_greedy_rep1.5 (24 new
 * ids, EOS ignored) exactly. On the same models: streaming == non-streaming == pull
 * iterator for a sampled run, batch == one by one, the context limit.
 */
#include "t.h"

static int64_t *golden_ids(const wick_st *f, const char *name, int *n) {
    wick_tensor_view v;
    if (wick_st_find(f, name, &v) || v.dtype != WICK_DT_I64) return NULL;
    *n = (int)(v.shape[0] * v.shape[1]);
    return (int64_t *)v.data;
}

static int same_ids(const int32_t *a, int na, const int64_t *b, int nb) {
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

typedef struct {
    int32_t ids[64];
    float logprob[64];
    int n;
} rec;

static int record(const wick_token *t, void *user) {
    rec *r = user;
    r->ids[r->n] = t->id, r->logprob[r->n++] = t->logprob;
    return 0;
}

static void sampled_paths(wick_model *m, wick_session *s, const int32_t *prompt, int np) {
    wick_gen_opts o = wick_gen_opts_default();
    o.sampling.temperature = 0.9f, o.sampling.top_p = 0.9f, o.sampling.top_k = 50, o.sampling.seed = 3;
    o.sampling.presence_penalty = 0.3f, o.max_tokens = 20, o.ignore_eos = 1, o.top_logprobs = 5;
    rec a = {0};
    wick_session_reset(s);
    CHECK_OK(wick_generate_stream(m, s, prompt, np, &o, record, &a, NULL));
    int32_t *ids = NULL;
    int n = 0;
    wick_session_reset(s);
    CHECK_OK(wick_generate(m, s, prompt, np, &o, &ids, &n, NULL, NULL));
    CHECK(n == 20 && a.n == 20 && ids && !memcmp(ids, a.ids, sizeof(int32_t) * 20), "stream != non-stream");
    wick_free(ids);
    wick_session_reset(s);
    wick_gen *g = NULL;
    CHECK_OK(wick_gen_start(m, s, prompt, np, &o, &g));
    wick_token t;
    int done = 0, k = 0, same = 1;
    while (g && !wick_gen_next(g, &t, &done) && !done) same &= t.id == a.ids[k] && t.logprob == a.logprob[k], k++;
    CHECK(same && k == 20, "iterator differs");
    wick_gen_free(g);
    /* batch of two prompts of different lengths == one by one (seed + i) */
    const int32_t *ps[2] = {prompt, prompt + 2};
    int ns[2] = {np, np - 2}, nb[2];
    int32_t *bids[2];
    CHECK_OK(wick_generate_batch(m, s, ps, ns, 2, &o, bids, nb, NULL));
    wick_session_reset(s);
    o.sampling.seed = 4;
    CHECK_OK(wick_generate(m, s, prompt + 2, np - 2, &o, &ids, &n, NULL, NULL));
    CHECK(nb[0] == 20 && !memcmp(bids[0], a.ids, sizeof(int32_t) * 20) && nb[1] == n &&
              !memcmp(bids[1], ids, sizeof(int32_t) * n),
          "batch differs from one by one");
    wick_free(ids), wick_free(bids[0]), wick_free(bids[1]);
    /* the context limit: documented truncation */
    wick_session_reset(s);
    o.max_context = np + 4;
    wick_gen_stats st;
    CHECK_OK(wick_generate(m, s, prompt, np, &o, &ids, &n, NULL, &st));
    CHECK(n == 4 && st.stop == WICK_STOP_CONTEXT, "context: %d ids, stop %s", n, wick_stop_reason_str(st.stop));
    wick_free(ids);
}

static void one_model(const char *name) {
    char dir[512], gpath[512];
    snprintf(dir, sizeof dir, "%s/golden/%s/model", WICK_TEST_DIR, name);
    snprintf(gpath, sizeof gpath, "%s/golden/%s/golden.safetensors", WICK_TEST_DIR, name);
    wick_model *m = NULL;
    wick_session *s = NULL;
    wick_st *f = NULL;
    CHECK_OK(wick_model_load(dir, NULL, &m));
    CHECK_OK(wick_st_open(gpath, &f));
    if (!m || !f) goto done;
    CHECK_OK(wick_session_new(m, NULL, &s));
    int np = 0, ng = 0, nr = 0;
    int64_t *p64 = golden_ids(f, "gen_prompt", &np), *greedy = golden_ids(f, "gen_greedy", &ng),
            *rep = golden_ids(f, "gen_greedy_rep1.5", &nr);
    CHECK(p64 && greedy && rep && np == 5 && ng == 24, "%s: golden ids missing", name);
    if (!p64 || !greedy || !rep || !s) goto done;
    int32_t prompt[16];
    for (int i = 0; i < np; i++) prompt[i] = (int32_t)p64[i];
    for (int r = 0; r < 2; r++) {
        wick_gen_opts o = wick_gen_opts_default();
        o.sampling.temperature = 0, o.max_tokens = 24, o.ignore_eos = 1;
        o.sampling.repetition_penalty = r ? 1.5f : 1.0f;
        int32_t *ids = NULL;
        int n = 0;
        wick_gen_stats st;
        wick_session_reset(s);
        CHECK_OK(wick_generate(m, s, prompt, np, &o, &ids, &n, NULL, &st));
        CHECK(ids && same_ids(ids, n, r ? rep : greedy, 24), "%s: %s differs from HF", name,
              r ? "gen_greedy_rep1.5" : "gen_greedy");
        CHECK(st.n_generated == 24 && st.stop == WICK_STOP_MAX_TOKENS && wick_session_pos(s) == np + 23,
              "%s: stats", name);
        wick_free(ids);
    }
    sampled_paths(m, s, prompt, np);
done:
    wick_session_free(s);
    wick_st_close(f);
    wick_model_free(m);
}

int main(void) {
    wick_set_threads(1); /* tiny models: threads only add spin-wait time on small CI machines */
    one_model("qwen2_tiny");
    one_model("llama_tiny");
    one_model("qwen3_tiny");
    return t_summary();
}
