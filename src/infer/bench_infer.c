/*
 * bench_infer.c — benchmark bodies of the inference area (see bench_infer.h):
 * sampling strategies on fixed logits, one generator token cycle on a fake model,
 * and streaming vs non-streaming generation on a real model directory.
 */
#include "bench_infer.h"
#include "infer.h"

#include <math.h>
#include <stdlib.h>

static const char *const strategy_names[WK_BENCH_N_STRATEGIES] = {"greedy", "temperature", "top_k",
                                                                 "top_p",  "min_p",       "combined"};

const char *wk_bench_strategy_name(wk_bench_strategy s) {
    return s >= 0 && s < WK_BENCH_N_STRATEGIES ? strategy_names[s] : "?";
}

/* Normal background (sd 2) plus 20 strong ids: a peaked but long-tailed distribution. */
static void lm_like_logits(float *l, int V, uint64_t seed) {
    wk_rng g;
    wk_rng_seed(&g, seed);
    for (int i = 0; i < V; i++) {
        double u1 = wk_rng_uniform(&g) + 1e-12, u2 = wk_rng_uniform(&g);
        l[i] = (float)(2.0 * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
    }
    for (int i = 0; i < 20 && i < V; i++) l[(int)(wk_rng_next(&g) % (uint64_t)V)] += 10.0f - 0.3f * i;
}

struct wk_bench_sampling {
    wick_sampler *s;
    float *logits;      /* [V] fixed */
    float *work;        /* [V] copy when the sampler modifies logits */
    int V, copy;
    int32_t sink;
};

wick_status wk_bench_sampling_new(wk_bench_strategy strategy, int vocab, uint64_t seed, wk_bench_sampling **out) {
    wick_sampler_opts o = wick_sampler_opts_default();
    o.seed = seed;
    o.temperature = strategy == WK_BENCH_GREEDY ? 0.0f : 0.8f;
    if (strategy == WK_BENCH_TOP_K || strategy == WK_BENCH_COMBINED) o.top_k = 40;
    if (strategy == WK_BENCH_TOP_P) o.top_p = 0.9f;
    if (strategy == WK_BENCH_COMBINED) o.top_p = 0.95f, o.repetition_penalty = 1.1f;
    if (strategy == WK_BENCH_MIN_P || strategy == WK_BENCH_COMBINED) o.min_p = 0.05f;
    wk_bench_sampling *c = wk_calloc(sizeof *c, "bench sampling");
    if (!c) return WICK_ENOMEM;
    c->V = vocab;
    c->copy = strategy == WK_BENCH_COMBINED;
    c->logits = wk_malloc((size_t)vocab * sizeof(float), "bench logits");
    c->work = wk_malloc((size_t)vocab * sizeof(float), "bench logits");
    wick_status st = c->logits && c->work ? wick_sampler_new(&o, vocab, &c->s) : WICK_ENOMEM;
    if (st) {
        wk_bench_sampling_free(c);
        return st;
    }
    lm_like_logits(c->logits, vocab, seed);
    for (int i = 0; c->copy && i < 64; i++) {
        int32_t id = (int32_t)((i * 2654435761u) % (unsigned)vocab);
        wick_sampler_add_prompt(c->s, &id, 1);
    }
    *out = c;
    return WICK_OK;
}

void wk_bench_sampling_iter(void *state) {
    wk_bench_sampling *c = state;
    float *l = c->logits;
    if (c->copy) memcpy(c->work, c->logits, (size_t)c->V * sizeof(float)), l = c->work;
    wick_sampler_sample(c->s, l, &c->sink, NULL);
}

void wk_bench_sampling_free(wk_bench_sampling *c) {
    if (!c) return;
    wick_sampler_free(c->s);
    wk_free(c->logits);
    wk_free(c->work);
    wk_free(c);
}

/* ---------------------------------------------------- a full token cycle */

struct wk_bench_cycle {
    float *logits; /* [V] what the fake model returns */
    int V;
    wick_gen *g;
    char text[8];
};

static wick_status cycle_eval(void *ctx, const int32_t *ids, int n, float *logits) {
    wk_bench_cycle *c = ctx;
    memcpy(logits, c->logits, (size_t)c->V * sizeof(float));
    return WICK_OK;
}

static wick_status cycle_push(void *ctx, int32_t id, const char **piece, size_t *len) {
    wk_bench_cycle *c = ctx;
    c->text[0] = (char)('a' + id % 26), c->text[1] = 0;
    *piece = c->text, *len = 1;
    return WICK_OK;
}

static wick_status cycle_flush(void *ctx, const char **piece, size_t *len) {
    *piece = "", *len = 0;
    return WICK_OK;
}

static wick_status cycle_restart(wk_bench_cycle *c) {
    static const char *const stops[1] = {"<|stop|>"};
    wk_lm lm = {cycle_eval, c, c->V, 0, 1 << 30, 0, {0}, NULL};
    wk_detok_if dt = {cycle_push, cycle_flush, NULL, c};
    wick_gen_opts o = wick_gen_opts_default();
    o.sampling.temperature = 0.8f, o.sampling.top_p = 0.9f, o.top_logprobs = 5;
    o.max_tokens = 1 << 30, o.stop = stops, o.n_stop = 1;
    int32_t prompt = 1;
    wick_gen_free(c->g);
    c->g = NULL;
    return wk_gen_start_src(&lm, &dt, &prompt, 1, &o, &c->g);
}

wick_status wk_bench_cycle_new(int vocab, wk_bench_cycle **out) {
    wk_bench_cycle *c = wk_calloc(sizeof *c, "bench cycle");
    if (!c) return WICK_ENOMEM;
    c->V = vocab;
    c->logits = wk_malloc((size_t)vocab * sizeof(float), "bench logits");
    wick_status st = c->logits ? WICK_OK : WICK_ENOMEM;
    if (!st) lm_like_logits(c->logits, vocab, 11), st = cycle_restart(c);
    if (st) {
        wk_bench_cycle_free(c);
        return st;
    }
    *out = c;
    return WICK_OK;
}

void wk_bench_cycle_iter(void *state) {
    wk_bench_cycle *c = state;
    wick_token t;
    int done = 0;
    if (wick_gen_next(c->g, &t, &done) || done) cycle_restart(c);
}

void wk_bench_cycle_free(wk_bench_cycle *c) {
    if (!c) return;
    wick_gen_free(c->g);
    wk_free(c->logits);
    wk_free(c);
}

/* ------------------------------------------------ streaming vs plain */

static int count_token(const wick_token *t, void *user) {
    size_t *bytes = user;
    *bytes += t->piece_len + 1;
    return 0;
}

struct wk_bench_gen {
    wick_model *m;
    wick_session *s;
    wick_gen_opts o;
    int streaming;
    size_t bytes;
};

static const int32_t bench_prompt[8] = {1, 2, 3, 4, 5, 6, 7, 8};

wick_status wk_bench_gen_new(wick_model *m, int streaming, int n_tokens, wk_bench_gen **out) {
    wk_bench_gen *c = wk_calloc(sizeof *c, "bench generation");
    if (!c) return WICK_ENOMEM;
    wick_session_opts so = {.max_seq = n_tokens + 16};
    wick_status st = wick_session_new(m, &so, &c->s);
    if (st) {
        wk_free(c);
        return st;
    }
    c->m = m, c->streaming = streaming;
    c->o = wick_gen_opts_default();
    c->o.sampling.temperature = 0, c->o.max_tokens = n_tokens, c->o.ignore_eos = 1, c->o.max_context = n_tokens + 16;
    *out = c;
    return WICK_OK;
}

void wk_bench_gen_iter(void *state) {
    wk_bench_gen *c = state;
    int32_t *ids = NULL;
    int n = 0;
    wick_session_reset(c->s);
    if (c->streaming) wick_generate_stream(c->m, c->s, bench_prompt, 8, &c->o, count_token, &c->bytes, NULL);
    else wick_generate(c->m, c->s, bench_prompt, 8, &c->o, &ids, &n, NULL, NULL);
    wick_free(ids);
}

void wk_bench_gen_free(wk_bench_gen *c) {
    if (!c) return;
    wick_session_free(c->s);
    wk_free(c);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The floor: prefill + n greedy steps straight on the session (no generator). */
static wick_status raw_decode(wick_model *m, wick_session *s, const int32_t *prompt, int np, int n, float *logits,
                              int V) {
    wick_status st = wick_session_eval(s, prompt, np, logits, 0);
    for (int i = 1; !st && i < n; i++) {
        int32_t id = wk_argmax(logits, V);
        st = wick_session_eval(s, &id, 1, logits, 0);
    }
    return st;
}

/* One timed generation each way (streaming, collecting, raw); ms receives the times. */
static wick_status stream_pair(wick_model *m, wick_session *s, const int32_t *prompt, int np,
                               const wick_gen_opts *o, int stream_first, float *logits, int V, double ms[3]) {
    for (int k = 0; k < 3; k++) {
        int mode = k == 2 ? 2 : stream_first ? k : 1 - k; /* 0 streaming, 1 collecting, 2 raw */
        size_t bytes = 0;
        int32_t *ids = NULL;
        int n = 0;
        wick_session_reset(s);
        double t0 = wk_now();
        wick_status st = mode == 0   ? wick_generate_stream(m, s, prompt, np, o, count_token, &bytes, NULL)
                         : mode == 1 ? wick_generate(m, s, prompt, np, o, &ids, &n, NULL, NULL)
                                     : raw_decode(m, s, prompt, np, o->max_tokens, logits, V);
        ms[mode] = (wk_now() - t0) * 1e3;
        wick_free(ids);
        if (st) return st;
    }
    return WICK_OK;
}

wick_status wk_bench_stream_overhead(const char *model_dir, int n_tokens, int reps, wk_bench_stream_result *r) {
    wick_model *m = NULL;
    wick_session *s = NULL;
    wick_model_info info = {0};
    reps = reps > 0 ? reps : 1;
    wick_status st = wick_model_load(model_dir, NULL, &m);
    if (!st) st = wick_model_get_info(m, &info);
    if (!st) st = wick_session_new(m, NULL, &s);
    double *t = wk_malloc(sizeof(double) * 3 * (size_t)reps, "bench times");
    float *logits = wk_malloc(sizeof(float) * (size_t)(info.vocab_size > 0 ? info.vocab_size : 1), "bench logits");
    if (!st && (!t || !logits)) st = WICK_ENOMEM;
    wick_gen_opts o = wick_gen_opts_default();
    o.sampling.temperature = 0, o.max_tokens = n_tokens, o.ignore_eos = 1;
    int32_t prompt[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    double ms[3];
    if (!st) st = stream_pair(m, s, prompt, 8, &o, 1, logits, info.vocab_size, ms); /* warm-up */
    for (int i = 0; !st && i < reps; i++) {
        st = stream_pair(m, s, prompt, 8, &o, i & 1, logits, info.vocab_size, ms);
        t[i] = ms[0], t[reps + i] = ms[1], t[2 * reps + i] = ms[2];
    }
    if (!st) {
        for (int k = 0; k < 3; k++) qsort(t + k * reps, (size_t)reps, sizeof *t, cmp_double);
        r->stream_ms = t[reps / 2], r->plain_ms = t[reps + reps / 2], r->raw_ms = t[2 * reps + reps / 2];
        r->overhead_pct = 100.0 * (r->stream_ms - r->plain_ms) / r->plain_ms;
        r->stream_min_ms = t[0], r->plain_min_ms = t[reps], r->raw_min_ms = t[2 * reps];
        r->overhead_min_pct = 100.0 * (r->stream_min_ms - r->plain_min_ms) / r->plain_min_ms;
        r->n_tokens = n_tokens, r->reps = reps;
    }
    wk_free(t);
    wk_free(logits);
    wick_session_free(s);
    wick_model_free(m);
    return st;
}
