/* batch_util.h — shared by the batched-decode tests (test_batch.c on the CPU, test_cuda_batch.c
 * on a GPU): one batched step of some sessions checked against the same sessions run alone. */
#ifndef WICK_TEST_BATCH_UTIL_H
#define WICK_TEST_BATCH_UTIL_H
#include "t.h"
#include <stdlib.h>

static inline int tb_argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) b = x[i] > x[b] ? i : b;
    return b;
}

/* Steps sessions pick[0..k) of bs in one wick_session_eval_batch (with logits, or without when
 * logits == 0) and the same sessions of rs one by one, each on its next id; checks their
 * positions agree and sets next[] to the greedy pick of the lone run. Returns the max |diff| of
 * the logits (0 without). V: the vocabulary. */
static inline float tb_step(int V, wick_session **bs, wick_session **rs, const int *pick, int k, int32_t *next,
                            int logits) {
    wick_session *sel[64];
    int32_t ids[64];
    float *lb = malloc(sizeof(float) * (size_t)k * V), *lr = malloc(sizeof(float) * (size_t)V), worst = 0;
    for (int j = 0; j < k && j < 64; j++) sel[j] = bs[pick[j]], ids[j] = next[pick[j]];
    CHECK_OK(wick_session_eval_batch(sel, ids, k, logits ? lb : NULL));
    for (int j = 0; j < k; j++) {
        int i = pick[j];
        CHECK_OK(wick_session_eval(rs[i], &next[i], 1, lr, 0));
        if (logits) {
            float d = t_max_abs_diff(lb + (size_t)j * V, lr, (size_t)V);
            worst = d > worst ? d : worst;
        }
        CHECK(wick_session_pos(bs[i]) == wick_session_pos(rs[i]), "session %d at %d, alone at %d", i,
              wick_session_pos(bs[i]), wick_session_pos(rs[i]));
        next[i] = (int32_t)tb_argmax(lr, V);
    }
    free(lb), free(lr);
    return worst;
}
#endif
