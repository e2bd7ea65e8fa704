/*
 * suite_sampling.c — benchmark groups on the bodies of src/infer/bench_infer.c:
 *   sampling/<strategy>/vocab_<V>           one wick_sampler_sample (greedy, temperature,
 *                                           top_k, top_p, min_p, combined), V = 1k, 32k, 152k
 *   token_generation_cycle/vocab_<V>        one generator step on a fake model: sample (top-p),
 *                                           logprob + top-5, detokenizer, stop-string check
 *   streaming_overhead/{streaming,non_streaming}/tokens_64
 *                                           one greedy 64-token generation on the run's first
 *                                           model, streamed to a callback or collected
 */
#include "bench.h"
#include "infer/bench_infer.h"

#include <stdio.h>

static const int k_vocabs[] = {1000, 32000, 152064};

static wick_status sampling_cases(wk_bench *b, int V) {
    char name[128];
    wick_status rc = WICK_OK;
    for (int s = 0; s < WK_BENCH_N_STRATEGIES && rc == WICK_OK; s++) {
        snprintf(name, sizeof name, "sampling/%s/vocab_%d", wk_bench_strategy_name((wk_bench_strategy)s), V);
        if (!wk_bench_selected(b, name)) continue;
        wk_bench_sampling *c = NULL;
        if ((rc = wk_bench_sampling_new((wk_bench_strategy)s, V, 1, &c))) break;
        wk_bench_case bc = {.name = name, .work = 1, .unit = "tok/s"};
        rc = wk_bench_measure(b, &bc, wk_bench_sampling_iter, c);
        wk_bench_sampling_free(c);
    }
    snprintf(name, sizeof name, "token_generation_cycle/vocab_%d", V);
    if (rc == WICK_OK && wk_bench_selected(b, name)) {
        wk_bench_cycle *c = NULL;
        if ((rc = wk_bench_cycle_new(V, &c))) return rc;
        wk_bench_case bc = {.name = name, .work = 1, .unit = "tok/s"};
        rc = wk_bench_measure(b, &bc, wk_bench_cycle_iter, c);
        wk_bench_cycle_free(c);
    }
    return rc;
}

wick_status wk_bench_group_sampling(wk_bench *b) {
    wick_status rc = WICK_OK;
    for (size_t i = 0; i < WK_ARRAY_LEN(k_vocabs) && rc == WICK_OK; i++) rc = sampling_cases(b, k_vocabs[i]);
    return rc;
}

wick_status wk_bench_group_streaming(wk_bench *b) {
    static const char *names[2] = {"streaming_overhead/non_streaming/tokens_64", "streaming_overhead/streaming/tokens_64"};
    if (!wk_bench_selected(b, names[0]) & !wk_bench_selected(b, names[1])) return WICK_OK;
    char labels[8][128], dir[1024];
    wick_model *m = NULL;
    if (wk_bench_model_labels(b, labels, 8) < 1) return WICK_OK;
    wick_status rc = wk_bench_model_dir(b, labels[0], dir, sizeof dir);
    if (rc == WICK_OK) rc = wk_bench_model_load(b, dir, &m);
    for (int k = 0; k < 2 && rc == WICK_OK; k++) {
        if (!wk_bench_selected(b, names[k])) continue;
        wk_bench_gen *c = NULL;
        if ((rc = wk_bench_gen_new(m, k, 64, &c))) break;
        wk_bench_case bc = {.name = names[k], .work = 64, .unit = "tok/s"};
        rc = wk_bench_measure(b, &bc, wk_bench_gen_iter, c);
        wk_bench_gen_free(c);
    }
    wick_model_free(m);
    return rc;
}
