/*
 * bench_infer.h — benchmark bodies of the inference area, as plain functions that
 * any runner can time (bench/bench_sampling.c, `wick bench`): set a case up, call
 * its iteration function many times, free it. Each iteration does one unit of work.
 */
#ifndef WK_BENCH_INFER_H
#define WK_BENCH_INFER_H
#include "wk.h"

/* Sampling strategies timed per call of wick_sampler_sample on fixed logits. */
typedef enum {
    WK_BENCH_GREEDY,      /* temperature 0 */
    WK_BENCH_TEMPERATURE, /* temperature 0.8, full vocabulary */
    WK_BENCH_TOP_K,       /* temperature 0.8, top-k 40 */
    WK_BENCH_TOP_P,       /* temperature 0.8, top-p 0.9 */
    WK_BENCH_MIN_P,       /* temperature 0.8, min-p 0.05 */
    WK_BENCH_COMBINED,    /* repetition 1.1 over 64 ids, top-k 40, top-p 0.95, min-p 0.05 */
    WK_BENCH_N_STRATEGIES
} wk_bench_strategy;

const char *wk_bench_strategy_name(wk_bench_strategy s); /* "greedy", "top_p", ... */

typedef struct wk_bench_sampling wk_bench_sampling;

/* Logits shaped like a language model's (a few strong ids over a normal background). */
wick_status wk_bench_sampling_new(wk_bench_strategy strategy, int vocab, uint64_t seed, wk_bench_sampling **out);
void wk_bench_sampling_iter(void *state); /* one wick_sampler_sample on the case's logits */
void wk_bench_sampling_free(wk_bench_sampling *c);

/* A full token cycle of the generator without a model: a fake logits source (copy of
 * fixed logits), sampling (top-p 0.9), logprob + top-5 alternatives, history update,
 * detokenizer and stop-string check, callback. One iteration = one wick_gen_next. */
typedef struct wk_bench_cycle wk_bench_cycle;
wick_status wk_bench_cycle_new(int vocab, wk_bench_cycle **out);
void wk_bench_cycle_iter(void *state);
void wk_bench_cycle_free(wk_bench_cycle *c);

/* One greedy generation of n_tokens from a fixed 8-id prompt on m (EOS ignored), streamed
 * to a callback (streaming = 1) or collected by wick_generate (0). One iteration = one
 * whole generation, session reset first. */
typedef struct wk_bench_gen wk_bench_gen;
wick_status wk_bench_gen_new(wick_model *m, int streaming, int n_tokens, wk_bench_gen **out);
void wk_bench_gen_iter(void *state);
void wk_bench_gen_free(wk_bench_gen *c);

/* Streaming vs non-streaming generation on a model directory: n_tokens greedy ids from
 * a fixed prompt, repeated reps times each way (interleaved, alternating which goes
 * first). Writes the median and the minimum time per generation of each (ms) and the
 * overhead of streaming in percent by both (the minimum is robust on a loaded machine),
 * and the same greedy decode straight on the session as the floor of the generator. */
typedef struct {
    double stream_ms, plain_ms, overhead_pct;             /* medians */
    double stream_min_ms, plain_min_ms, overhead_min_pct; /* minimums */
    double raw_ms, raw_min_ms; /* the floor: session_eval + argmax, no generator (median, min) */
    int n_tokens, reps;
} wk_bench_stream_result;
wick_status wk_bench_stream_overhead(const char *model_dir, int n_tokens, int reps, wk_bench_stream_result *r);
#endif
