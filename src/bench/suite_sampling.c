/*
 * suite_sampling.c — benchmark groups of generation, on the inference area's benchmark
 * bodies (src/infer/bench_infer.h) and the public generation API:
 *   sampling_strategies/S                one wick_sampler_sample on LM-shaped logits, vocab 32000;
 *                                        S: greedy, temperature_0.8, top_k_40, top_p_0.9, min_p_0.05,
 *                                        combined (repetition 1.1, top-k 40, top-p 0.95, min-p 0.05)
 *   sampling_vocab_scaling/S/vocab_V     greedy and top_p_0.9 at V = 1000, 32000, 151936
 *   generation_simulation/token_generation_cycle   one wick_gen_next on a fake model (vocab 32000):
 *                                        sampling, logprobs + top-5, detokenizer, stop check, callback
 *   streaming_overhead/MODEL/{streaming,non_streaming,raw_session}_32
 *                                        32 greedy tokens after an 8-token prompt: wick_generate_stream
 *                                        with a callback, wick_generate collecting ids (samples of the
 *                                        two interleaved), and session_eval + argmax (the floor)
 */
#include "bench.h"
#include "infer/bench_infer.h"

#include <stdio.h>

static const struct {
    wk_bench_strategy s;
    const char *label;
} k_strategies[] = {{WK_BENCH_GREEDY, "greedy"},    {WK_BENCH_TEMPERATURE, "temperature_0.8"},
                    {WK_BENCH_TOP_K, "top_k_40"},   {WK_BENCH_TOP_P, "top_p_0.9"},
                    {WK_BENCH_MIN_P, "min_p_0.05"}, {WK_BENCH_COMBINED, "combined"}};

static wick_status sampling_case(wk_bench *b, const char *name, wk_bench_strategy s, int vocab) {
    if (!wk_bench_selected(b, name)) return WICK_OK;
    wk_bench_sampling *c = NULL;
    wick_status rc = wk_bench_sampling_new(s, vocab, 7, &c);
    wk_bench_case bc = {.name = name, .work = 1, .unit = "tok/s"};
    if (rc == WICK_OK) rc = wk_bench_measure(b, &bc, wk_bench_sampling_iter, c);
    wk_bench_sampling_free(c);
    return rc;
}

wick_status wk_bench_sampling_strategies(wk_bench *b) {
    char name[128];
    wick_status rc = WICK_OK;
    for (size_t i = 0; i < WK_ARRAY_LEN(k_strategies) && rc == WICK_OK; i++) {
        snprintf(name, sizeof name, "sampling_strategies/%s", k_strategies[i].label);
        rc = sampling_case(b, name, k_strategies[i].s, 32000);
    }
    return rc;
}

wick_status wk_bench_sampling_vocab(wk_bench *b) {
    static const int vocabs[] = {1000, 32000, 151936};
    static const int strategies[] = {0, 3}; /* greedy, top_p_0.9 */
    char name[128];
    wick_status rc = WICK_OK;
    for (size_t k = 0; k < WK_ARRAY_LEN(strategies); k++)
        for (size_t i = 0; i < WK_ARRAY_LEN(vocabs) && rc == WICK_OK; i++) {
            snprintf(name, sizeof name, "sampling_vocab_scaling/%s/vocab_%d", k_strategies[strategies[k]].label,
                     vocabs[i]);
            rc = sampling_case(b, name, k_strategies[strategies[k]].s, vocabs[i]);
        }
    return rc;
}

wick_status wk_bench_generation_cycle(wk_bench *b) {
    const char *name = "generation_simulation/token_generation_cycle";
    if (!wk_bench_selected(b, name)) return WICK_OK;
    wk_bench_cycle *c = NULL;
    wick_status rc = wk_bench_cycle_new(32000, &c);
    wk_bench_case bc = {.name = name, .work = 1, .unit = "tok/s"};
    if (rc == WICK_OK) rc = wk_bench_measure(b, &bc, wk_bench_cycle_iter, c);
    wk_bench_cycle_free(c);
    return rc;
}

/* ---- streaming vs non-streaming */
enum { STREAM_TOKENS = 32, STREAM_PROMPT = 8 };

typedef struct {
    wick_model *m;
    wick_session *s;
    wick_gen_opts o;
    int32_t prompt[STREAM_PROMPT];
    float *logits;
    int vocab;
    size_t bytes;
} stream_state;

static int on_token(const wick_token *t, void *user) {
    stream_state *st = user;
    st->bytes += t->piece_len + 1; /* a callback that looks at every token, as a consumer would */
    return 0;
}

static void it_streaming(void *p) {
    stream_state *st = p;
    wick_session_reset(st->s);
    wick_generate_stream(st->m, st->s, st->prompt, STREAM_PROMPT, &st->o, on_token, st, NULL);
}

static void it_collecting(void *p) {
    stream_state *st = p;
    int32_t *ids = NULL;
    int n = 0;
    wick_session_reset(st->s);
    wick_generate(st->m, st->s, st->prompt, STREAM_PROMPT, &st->o, &ids, &n, NULL, NULL);
    wick_free(ids);
}

static void it_raw(void *p) {
    stream_state *st = p;
    wick_session_reset(st->s);
    wick_session_eval(st->s, st->prompt, STREAM_PROMPT, st->logits, 0);
    for (int i = 0; i < STREAM_TOKENS; i++) {
        int32_t best = 0;
        for (int v = 1; v < st->vocab; v++) best = st->logits[v] > st->logits[best] ? v : best;
        if (i + 1 < STREAM_TOKENS) wick_session_eval(st->s, &best, 1, st->logits, 0);
    }
}

static wick_status stream_cases(wk_bench *b, const char *label, const char *dir) {
    char n_s[1200], n_p[1200], n_r[1200];
    snprintf(n_s, sizeof n_s, "streaming_overhead/%s/streaming_%d", label, STREAM_TOKENS);
    snprintf(n_p, sizeof n_p, "streaming_overhead/%s/non_streaming_%d", label, STREAM_TOKENS);
    snprintf(n_r, sizeof n_r, "streaming_overhead/%s/raw_session_%d", label, STREAM_TOKENS);
    int ws = wk_bench_selected(b, n_s), wp = wk_bench_selected(b, n_p), wr = wk_bench_selected(b, n_r);
    if (!ws && !wp && !wr) return WICK_OK;
    stream_state st = {.o = wick_gen_opts_default()};
    wick_model_info info;
    wick_session_opts so = {.max_seq = STREAM_PROMPT + STREAM_TOKENS + 1};
    wick_status rc = wk_bench_model_load(b, dir, &st.m);
    if (rc == WICK_OK) rc = wick_model_get_info(st.m, &info);
    if (rc == WICK_OK) rc = wick_session_new(st.m, &so, &st.s);
    if (rc == WICK_OK) {
        st.vocab = info.vocab_size;
        st.logits = wk_malloc(sizeof(float) * (size_t)st.vocab, "streaming benchmark logits");
        rc = st.logits ? WICK_OK : WICK_ENOMEM;
    }
    st.o.sampling.temperature = 0, st.o.max_tokens = STREAM_TOKENS, st.o.ignore_eos = 1;
    for (int i = 0; i < STREAM_PROMPT; i++) st.prompt[i] = (int32_t)((i * 7919u + 13) % (unsigned)(st.vocab ? st.vocab : 1));
    wk_bench_case cs = {.name = n_s, .work = STREAM_TOKENS, .unit = "tok/s"};
    wk_bench_case cp = {.name = n_p, .work = STREAM_TOKENS, .unit = "tok/s"};
    wk_bench_case cr = {.name = n_r, .work = STREAM_TOKENS, .unit = "tok/s"};
    if (rc == WICK_OK && (ws || wp)) rc = wk_bench_measure_pair(b, &cs, it_streaming, &cp, it_collecting, &st);
    if (rc == WICK_OK && wr) rc = wk_bench_measure(b, &cr, it_raw, &st);
    wk_free(st.logits);
    wick_session_free(st.s);
    wick_model_free(st.m);
    return rc;
}

wick_status wk_bench_streaming(wk_bench *b) {
    char labels[8][128], dir[1024];
    int n = wk_bench_model_labels(b, labels, 8);
    wick_status rc = WICK_OK;
    for (int i = 0; i < n && rc == WICK_OK; i++) {
        char n_s[1200], n_p[1200], n_r[1200];
        snprintf(n_s, sizeof n_s, "streaming_overhead/%s/streaming_%d", labels[i], STREAM_TOKENS);
        snprintf(n_p, sizeof n_p, "streaming_overhead/%s/non_streaming_%d", labels[i], STREAM_TOKENS);
        snprintf(n_r, sizeof n_r, "streaming_overhead/%s/raw_session_%d", labels[i], STREAM_TOKENS);
        int any = wk_bench_selected(b, n_s) | wk_bench_selected(b, n_p) | wk_bench_selected(b, n_r);
        if (!any) continue; /* also what keeps listing from writing presets */
        rc = wk_bench_model_dir(b, labels[i], dir, sizeof dir);
        if (rc == WICK_OK) rc = stream_cases(b, labels[i], dir);
    }
    return rc;
}
