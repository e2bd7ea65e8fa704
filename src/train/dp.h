/*
 * dp.h — data-parallel training (src/train/dp.c): `world` replicas of the model,
 * each with its own adapter copy and trainer. Every micro-batch is split by
 * sequences (wk_shard); each replica accumulates the gradient of its shard; at
 * the step the flat gradient buffers are all-reduced (comm.h) and every replica
 * applies the same AdamW update, so the adapters stay identical. Losses are
 * normalised by the global target count, so the result equals one replica
 * training the whole batch (up to the order of the fp32 sums).
 */
#ifndef WK_TRAIN_DP_H
#define WK_TRAIN_DP_H
#include "dist/comm.h"
#include "train/train.h"

enum { WK_DP_MAX = 64 };

typedef struct {
    int world;
    int threaded;                 /* replicas on devices run concurrently, one host thread each */
    wick_model *m[WK_DP_MAX];     /* [0] is the caller's; the others are owned */
    wick_adapter *a[WK_DP_MAX];
    wick_trainer *t[WK_DP_MAX];
    wk_comm *comm;
} wk_dp;

/* Adds replicas 1..world-1 next to the caller's rank 0 (m0, a0, t0): models loaded from
 * model_dir on device "cuda:r" (device given and not "cpu") or on the CPU, adapters copied
 * from a0, trainers with opts o. */
wick_status wk_dp_open(wk_dp *dp, int world, const char *model_dir, const char *device, wick_model *m0,
                       wick_adapter *a0, wick_trainer *t0, const wick_train_opts *o);
void wk_dp_close(wk_dp *dp);
/* Accumulates one micro-batch (nseq sequences, lens, packed ids/labels), sharded over the replicas. */
wick_status wk_dp_accumulate(wk_dp *dp, const int32_t *ids, const int32_t *labels, const int *lens, int nseq,
                             double *loss_sum, int64_t *n_targets);
/* All-reduces the gradients and steps every replica; info is rank 0's. */
wick_status wk_dp_step(wk_dp *dp, int64_t n_targets, const char *grads_path, wick_step_info *info);
/* Restores optimizer state (a checkpoint's optimizer.safetensors) into replicas 1.. */
wick_status wk_dp_load_state(wk_dp *dp, const char *path);
#endif
