/*
 * logits.c — load a Hugging Face checkpoint and print the top-5 next tokens for a
 * list of ids, using only the public API (wick.h).
 *
 * usage: example_logits MODEL_DIR id1 id2 ...
 */
#include <stdio.h>
#include <stdlib.h>
#include "wick.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR id1 [id2 ...]\n", argv[0]);
        return 2;
    }
    wick_model *m;
    if (wick_model_load(argv[1], NULL, &m) != WICK_OK) {
        fprintf(stderr, "error: %s\n", wick_last_error());
        return 1;
    }
    wick_model_info info;
    wick_model_get_info(m, &info);
    int n = argc - 2;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) ids[i] = atoi(argv[i + 2]);
    wick_session *s;
    float *logits = malloc(sizeof(float) * (size_t)info.vocab_size);
    int rc = 1;
    if (wick_session_new(m, NULL, &s) == WICK_OK) {
        if (wick_session_eval(s, ids, n, logits, 0) == WICK_OK) {
            for (int k = 0; k < 5 && k < info.vocab_size; k++) { /* selection of the top 5 */
                int best = -1;
                for (int v = 0; v < info.vocab_size; v++)
                    if (logits[v] > -1e30f && (best < 0 || logits[v] > logits[best])) best = v;
                printf("%d\t%.4f\n", best, logits[best]);
                logits[best] = -1e38f;
            }
            rc = 0;
        }
        wick_session_free(s);
    }
    if (rc) fprintf(stderr, "error: %s\n", wick_last_error());
    free(logits);
    free(ids);
    wick_model_free(m);
    return rc;
}
