/*
 * bench_sampling.c — sampling strategies (greedy, temperature, top-k, top-p, min-p,
 * combined) at vocab 1k / 32k / 152k, one generator token cycle without a model, and
 * streaming vs non-streaming generation on a model (default: a random "tiny" qwen2
 * written by wick_init_model to a temp dir). Single-threaded sampling. Prints JSON.
 *
 * usage: bench_sampling [--model DIR] [--tokens N] [--reps R] [--quick]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "infer/bench_infer.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median microseconds per call of fn(state) over `samples` samples of ~target_ms each. */
static double time_us(void (*fn)(void *), void *state, int samples, double target_ms) {
    int iters = 1;
    for (;;) {
        double t0 = wk_now();
        for (int i = 0; i < iters; i++) fn(state);
        double ms = (wk_now() - t0) * 1e3;
        if (ms >= target_ms / 4 || iters > (1 << 24)) break;
        iters *= 2;
    }
    iters = iters * 4 > 0 ? iters * 4 : iters;
    double t[32];
    samples = samples > 32 ? 32 : samples;
    for (int s = 0; s < samples; s++) {
        double t0 = wk_now();
        for (int i = 0; i < iters; i++) fn(state);
        t[s] = (wk_now() - t0) * 1e6 / iters;
    }
    qsort(t, (size_t)samples, sizeof *t, cmp_d);
    return t[samples / 2];
}

int main(int argc, char **argv) {
    const char *model = NULL;
    int tokens = 64, reps = 21, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else {
            fprintf(stderr, "usage: bench_sampling [--model DIR] [--tokens N] [--reps R] [--quick]\n");
            return 2;
        }
    }
    int samples = quick ? 3 : 9;
    double target = quick ? 10 : 50;
    static const int vocabs[3] = {1000, 32000, 152064};
    printf("{\"benchmark\":\"sampling\",\"threads\":1,\"results\":[\n");
    int first = 1;
    for (int v = 0; v < 3; v++)
        for (int s = 0; s < WK_BENCH_N_STRATEGIES; s++) {
            wk_bench_sampling *c;
            if (wk_bench_sampling_new((wk_bench_strategy)s, vocabs[v], 1, &c)) return fprintf(stderr, "%s\n", wick_last_error()), 1;
            double us = time_us(wk_bench_sampling_iter, c, samples, target);
            printf("%s {\"name\":\"sampling/%s/%d\",\"strategy\":\"%s\",\"vocab\":%d,\"us_per_call\":%.3f}", first ? "" : ",\n",
                   wk_bench_strategy_name((wk_bench_strategy)s), vocabs[v], wk_bench_strategy_name((wk_bench_strategy)s),
                   vocabs[v], us);
            first = 0;
            wk_bench_sampling_free(c);
        }
    for (int v = 0; v < 3; v++) {
        wk_bench_cycle *c;
        if (wk_bench_cycle_new(vocabs[v], &c)) return fprintf(stderr, "%s\n", wick_last_error()), 1;
        double us = time_us(wk_bench_cycle_iter, c, samples, target);
        printf(",\n {\"name\":\"token_cycle/%d\",\"vocab\":%d,\"us_per_token\":%.3f,"
               "\"what\":\"fake model copy + top-p 0.9 sample + logprob + top-5 + stop-string check + detok\"}",
               vocabs[v], vocabs[v], us);
        wk_bench_cycle_free(c);
    }
    char tmp[] = "/tmp/wick_bench_sampling_XXXXXX";
    if (!model) {
        if (!mkdtemp(tmp) || wick_init_model(NULL, "tiny", NULL, WICK_DT_F32, 1, tmp))
            return fprintf(stderr, "bench_sampling: init tiny model: %s\n", wick_last_error()), 1;
        model = tmp;
    }
    wk_bench_stream_result r;
    if (wk_bench_stream_overhead(model, tokens, quick ? 3 : reps, &r))
        return fprintf(stderr, "bench_sampling: %s\n", wick_last_error()), 1;
    printf(",\n {\"name\":\"stream_vs_plain\",\"model\":\"%s\",\"tokens\":%d,\"reps\":%d,\"stream_ms\":%.3f,"
           "\"plain_ms\":%.3f,\"overhead_pct\":%.2f,\"stream_min_ms\":%.3f,\"plain_min_ms\":%.3f,"
           "\"overhead_min_pct\":%.2f,\"raw_decode_ms\":%.3f,\"raw_decode_min_ms\":%.3f}\n]}\n",
           model == tmp ? "init-model tiny (qwen2, V=512)" : model, r.n_tokens, r.reps, r.stream_ms, r.plain_ms,
           r.overhead_pct, r.stream_min_ms, r.plain_min_ms, r.overhead_min_pct, r.raw_ms, r.raw_min_ms);
    if (model == tmp) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd)) fprintf(stderr, "bench_sampling: could not remove %s\n", tmp);
    }
    return 0;
}
