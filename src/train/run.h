/*
 * run.h — internal state of one training run (run.c) and its checkpoints
 * (checkpoint.c).
 */
#ifndef WK_TRAIN_RUN_H
#define WK_TRAIN_RUN_H
#include "train/data.h"
#include "train/dp.h"
#include "train/train.h"

#include <stdio.h>

typedef struct {
    const wick_train_config *c;
    wick_model *m;
    wick_adapter *a;
    wick_trainer *t;
    wk_dp dp;              /* data-parallel replicas (dp.world > 1); replica 0 is m/a/t */
    wk_dataset data, eval;
    int32_t *ids, *labels; /* (batch_size * longest example) one packed micro-batch */
    int *lens;             /* (batch_size) */
    int total, first_step;
    FILE *metrics;
    double t_start;
    wick_train_summary sum;
} wk_run;

/* Writes out_dir/checkpoint-<step> atomically (temp dir, fsync, rename) and keeps the last K. */
wick_status wk_ckpt_save(wk_run *r);
/* Resolves a --resume argument (a checkpoint dir, or an out dir: its latest complete checkpoint)
 * into path (cap bytes). */
wick_status wk_ckpt_find(const char *resume, char *path, size_t cap);
/* Restores optimizer state and step from checkpoint dir (the adapter is loaded by the caller). */
wick_status wk_ckpt_load_state(wk_run *r, const char *dir);
#endif
