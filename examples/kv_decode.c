/*
 * kv_decode.c — greedy decoding with a session's KV cache, timing tokens/s,
 * using only the public API (wick.h).
 *
 * usage: example_kv_decode MODEL_DIR N_TOKENS id1 [id2 ...]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "wick.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL_DIR N_TOKENS id1 [id2 ...]\n", argv[0]);
        return 2;
    }
    wick_model *m;
    wick_session *s;
    if (wick_model_load(argv[1], NULL, &m) || wick_session_new(m, NULL, &s)) {
        fprintf(stderr, "error: %s\n", wick_last_error());
        return 1;
    }
    wick_model_info info;
    wick_model_get_info(m, &info);
    int n = argc - 3, steps = atoi(argv[2]);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    float *logits = malloc(sizeof(float) * (size_t)info.vocab_size);
    for (int i = 0; i < n; i++) ids[i] = atoi(argv[i + 3]);
    wick_status st = wick_session_eval(s, ids, n, logits, 0);
    double t0 = now();
    for (int t = 0; t < steps && st == WICK_OK; t++) {
        int32_t best = 0;
        for (int v = 1; v < info.vocab_size; v++) best = logits[v] > logits[best] ? v : best;
        printf("%d%c", best, t + 1 == steps ? '\n' : ' ');
        st = wick_session_eval(s, &best, 1, logits, 0);
    }
    if (st) fprintf(stderr, "error: %s\n", wick_last_error());
    else fprintf(stderr, "%.1f tok/s\n", steps / (now() - t0));
    free(ids);
    free(logits);
    wick_session_free(s);
    wick_model_free(m);
    return st ? 1 : 0;
}
