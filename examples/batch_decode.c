/*
 * batch_decode.c — several conversations in one forward: one session per sequence (its
 * own KV cache and adapter: the base for the first, then each adapter given), prompts of
 * different lengths, then greedy decoding where every step advances all sequences at
 * once with wick_session_eval_batch (base weights read once per step for all of them).
 *
 * usage: example_batch_decode MODEL_DIR [ADAPTER_DIR ...]
 */
#include <stdio.h>
#include <stdlib.h>
#include "wick.h"

#define MAX_SEQ 8
#define STEPS 8

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [ADAPTER_DIR ...]\n", argv[0]);
        return 2;
    }
    wick_model *m;
    if (wick_model_load(argv[1], NULL, &m)) return fprintf(stderr, "error: %s\n", wick_last_error()), 1;
    wick_model_info mi;
    wick_model_get_info(m, &mi);
    int n = argc - 1 < MAX_SEQ ? argc - 1 : MAX_SEQ, V = mi.vocab_size;
    wick_session *ss[MAX_SEQ];
    wick_adapter *ad[MAX_SEQ] = {NULL};
    int32_t next[MAX_SEQ];
    float *logits = malloc(sizeof(float) * (size_t)MAX_SEQ * V);
    wick_session_opts so = {.max_seq = 64};
    for (int i = 0; i < n; i++) {
        if (wick_session_new(m, &so, &ss[i]) || (i > 0 && wick_adapter_load(m, argv[i + 1], &ad[i])) ||
            wick_session_set_adapter(ss[i], ad[i], 1.f))
            return fprintf(stderr, "error: %s\n", wick_last_error()), 1;
        int32_t prompt[8];
        for (int k = 0; k <= i; k++) prompt[k] = (int32_t)((5 + 7 * k) % V); /* lengths 1, 2, ... */
        if (wick_session_eval(ss[i], prompt, i + 1, logits, 0)) return fprintf(stderr, "error: %s\n", wick_last_error()), 1;
        next[i] = argmax(logits, V);
    }
    int32_t out[MAX_SEQ][STEPS];
    for (int t = 0; t < STEPS; t++) {
        for (int i = 0; i < n; i++) out[i][t] = next[i];
        if (wick_session_eval_batch(ss, next, n, logits)) return fprintf(stderr, "error: %s\n", wick_last_error()), 1;
        for (int i = 0; i < n; i++) next[i] = argmax(logits + (size_t)i * V, V);
    }
    for (int i = 0; i < n; i++) {
        printf("%-10s", i ? "adapter" : "base");
        for (int t = 0; t < STEPS; t++) printf(" %d", out[i][t]);
        printf("\n");
        wick_session_free(ss[i]);
        wick_adapter_free(ad[i]);
    }
    free(logits);
    wick_model_free(m);
    return 0;
}
