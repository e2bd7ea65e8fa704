/*
 * adapters.c — many LoRA adapters over one base: load PEFT adapters into a registry,
 * list them, and run the same prompt through each one (a pointer swap per session,
 * the base weights shared and untouched), then the base alone.
 *
 * usage: example_adapters MODEL_DIR ADAPTER_DIR [ADAPTER_DIR ...]
 */
#include <stdio.h>
#include <stdlib.h>
#include "wick.h"

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* Greedy-decodes 8 tokens after a fixed prompt with adapter a (NULL = base). */
static void run(wick_session *s, const wick_adapter *a, const char *label, int V) {
    int32_t ids[4] = {1, 2, 3, 4};
    float *logits = malloc(sizeof(float) * (size_t)V);
    wick_session_reset(s);
    wick_session_set_adapter(s, a, 1.f);
    printf("%-12s", label);
    if (wick_session_eval(s, ids, 4, logits, 0) == WICK_OK)
        for (int t = 0; t < 8; t++) {
            int32_t next = argmax(logits, V);
            printf(" %d", next);
            if (wick_session_eval(s, &next, 1, logits, 0) != WICK_OK) break;
        }
    printf("\n");
    free(logits);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR ADAPTER_DIR [ADAPTER_DIR ...]\n", argv[0]);
        return 2;
    }
    wick_model *m;
    wick_registry *reg;
    if (wick_model_load(argv[1], NULL, &m) || wick_registry_new(m, &reg)) {
        fprintf(stderr, "error: %s\n", wick_last_error());
        return 1;
    }
    for (int i = 2; i < argc; i++)
        if (wick_registry_load(reg, NULL, argv[i]) != WICK_OK) fprintf(stderr, "skipped: %s\n", wick_last_error());
    wick_adapter_info info[16];
    int n = 0;
    wick_registry_list(reg, info, 16, &n);
    for (int i = 0; i < n && i < 16; i++)
        printf("adapter %-12s r=%-3d alpha=%-5g scale=%-6g %d pairs, %lld bytes\n", info[i].name, info[i].r,
               info[i].alpha, info[i].scale, info[i].n_pairs, (long long)info[i].bytes);
    wick_model_info mi;
    wick_model_get_info(m, &mi);
    wick_session *s;
    if (wick_session_new(m, NULL, &s) == WICK_OK) {
        for (int i = 0; i < n && i < 16; i++) {
            wick_adapter *a = wick_registry_acquire(reg, info[i].name);
            run(s, a, info[i].name, mi.vocab_size);
            wick_registry_release(reg, a);
        }
        run(s, NULL, "(base)", mi.vocab_size);
        wick_session_free(s);
    }
    wick_registry_free(reg);
    wick_model_free(m);
    return 0;
}
