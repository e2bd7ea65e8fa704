/*
 * train_lora.c — memorise one id sequence with a new LoRA adapter through the
 * trainer API (forward + backward, AdamW step), print the loss as it falls, and
 * save the adapter in PEFT format. Only the public API (wick.h).
 *
 * usage: example_train_lora MODEL_DIR OUT_DIR id1 id2 ...
 */
#include <stdio.h>
#include <stdlib.h>
#include "wick.h"

static int fail(const char *what) {
    fprintf(stderr, "error: %s: %s\n", what, wick_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL_DIR OUT_DIR id1 id2 [id3 ...]\n", argv[0]);
        return 2;
    }
    wick_model *m;
    wick_adapter *a;
    wick_trainer *t;
    if (wick_model_load(argv[1], NULL, &m)) return fail("model");
    wick_lora_config lc = wick_lora_config_default(); /* r 8, alpha 16, all linear projections */
    if (wick_adapter_new(m, &lc, 1, &a)) return fail("adapter");
    wick_train_opts o = wick_train_opts_default();
    o.lr = 1e-2f, o.scheduler = WICK_SCHED_LINEAR, o.warmup_steps = 2, o.total_steps = 30;
    if (wick_trainer_new(m, a, &o, &t)) return fail("trainer");
    int n = argc - 3;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) ids[i] = atoi(argv[i + 3]);
    for (int step = 0; step < o.total_steps; step++) {
        double loss = 0;
        int64_t targets = 0;
        wick_step_info info;
        /* labels = ids: every next token is trained (the shift happens inside) */
        if (wick_trainer_accumulate(t, ids, ids, &n, 1, &loss, &targets)) return fail("forward/backward");
        if (wick_trainer_step(t, targets, NULL, &info)) return fail("optimizer step");
        printf("step %2d  loss %.4f  lr %.4g  grad norm %.3f\n", info.step, loss / (double)targets, info.lr,
               info.grad_norm);
    }
    if (wick_adapter_save(a, argv[2])) return fail("save");
    printf("adapter saved to %s\n", argv[2]);
    free(ids);
    wick_trainer_free(t);
    wick_adapter_free(a);
    wick_model_free(m);
    return 0;
}
