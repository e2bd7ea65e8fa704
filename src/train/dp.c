/*
 * dp.c — data-parallel training over replicas (dp.h). Replicas on a device
 * backend run their shard in their own host thread (each thread drives its own
 * GPU); CPU replicas run one after the other, since each already uses every core.
 */
#include "train/dp.h"
#include "lora/adapter.h"

#include <pthread.h>
#include <stdio.h>

/* Replica r draws its dropout masks from its own stream (rank 0: the single-replica one). */
#define DROP_STREAM(r) ((uint64_t)(r) << 40)

wick_status wk_dp_open(wk_dp *dp, int world, const char *model_dir, const char *device, wick_model *m0,
                       wick_adapter *a0, wick_trainer *t0, const wick_train_opts *o) {
    memset(dp, 0, sizeof *dp);
    if (world < 1 || world > WK_DP_MAX) return wk_err(WICK_EINVAL, "data parallel: %d replicas (1..%d)", world, WK_DP_MAX);
    int gpu = device && strcmp(device, "cpu") != 0;
    dp->world = world, dp->threaded = gpu;
    dp->m[0] = m0, dp->a[0] = a0, dp->t[0] = t0;
    int devs[WK_DP_MAX], first = 0;
    for (int r = 0; r < world; r++) devs[r] = r;
    if (gpu && strcmp(device, "cuda") != 0) {
        if (world > 1)
            return wk_err(WICK_EINVAL, "data parallel: replicas take GPUs 0..%d; give --device cuda, not '%s'",
                          world - 1, device);
        if (sscanf(device, "cuda:%d", &first) != 1 || first < 0)
            return wk_err(WICK_EINVAL, "data parallel: device '%s': expected cuda or cuda:N", device);
        devs[0] = first; /* a group of one on the model's own GPU */
    }
    wick_status cs = gpu ? wk_comm_nccl(world, devs, &dp->comm) : wk_comm_host(world, &dp->comm);
    if (cs) return cs;
    for (int r = 1; r < world; r++) {
        char dev[32];
        snprintf(dev, sizeof dev, "cuda:%d", r);
        wick_model_opts mo = wick_model_opts_default();
        mo.device = gpu ? dev : NULL;
        wick_status st = wick_model_load(model_dir, &mo, &dp->m[r]);
        if (!st) st = wk_adapter_clone(a0, dp->m[r], &dp->a[r]);
        if (!st) st = wick_trainer_new(dp->m[r], dp->a[r], o, &dp->t[r]);
        if (st) return wk_err_prefix(st, "data-parallel replica %d", r);
        wk_trainer_set_micro(dp->t[r], wk_trainer_micro(t0) + DROP_STREAM(r));
    }
    return WICK_OK;
}

void wk_dp_close(wk_dp *dp) {
    for (int r = 1; r < dp->world; r++) {
        wick_trainer_free(dp->t[r]);
        wick_adapter_free(dp->a[r]);
        wick_model_free(dp->m[r]);
    }
    if (dp->comm) dp->comm->free(dp->comm);
    memset(dp, 0, sizeof *dp);
}

typedef struct {
    wk_dp *dp;
    int rank;
    const int32_t *ids, *labels;
    const int *lens;
    int nseq;
    int64_t nt;        /* step: the global target count */
    const char *grads; /* step: gradients file (rank 0) */
    double loss;       /* accumulate: this shard's loss sum / target count */
    int64_t n_targets;
    wick_step_info info;
    wick_status st;
    char err[512];
} dp_job;

static void keep_error(dp_job *j) {
    if (j->st) snprintf(j->err, sizeof j->err, "%s", wick_last_error());
}

static void *accumulate_one(void *arg) {
    dp_job *j = arg;
    int lo, hi;
    wk_shard(j->nseq, j->dp->world, j->rank, &lo, &hi);
    if (hi <= lo) return NULL;
    size_t off = 0;
    for (int s = 0; s < lo; s++) off += (size_t)j->lens[s];
    j->st = wick_trainer_accumulate(j->dp->t[j->rank], j->ids + off, j->labels + off, j->lens + lo, hi - lo, &j->loss,
                                    &j->n_targets);
    keep_error(j);
    return NULL;
}

static void *step_one(void *arg) {
    dp_job *j = arg;
    j->st = wick_trainer_step(j->dp->t[j->rank], j->nt, j->rank == 0 ? j->grads : NULL, &j->info);
    keep_error(j);
    return NULL;
}

/* Runs fn for every rank (threads when the replicas are on devices); the first failure wins. */
static wick_status run_all(wk_dp *dp, dp_job *jobs, void *(*fn)(void *)) {
    pthread_t th[WK_DP_MAX];
    int started[WK_DP_MAX] = {0};
    for (int r = 0; r < dp->world; r++) {
        if (dp->threaded && r > 0 && pthread_create(&th[r], NULL, fn, &jobs[r]) == 0) started[r] = 1;
        else fn(&jobs[r]);
    }
    for (int r = 1; r < dp->world; r++)
        if (started[r]) pthread_join(th[r], NULL);
    for (int r = 0; r < dp->world; r++)
        if (jobs[r].st) return wk_err(jobs[r].st, "replica %d: %s", r, jobs[r].err);
    return WICK_OK;
}

wick_status wk_dp_accumulate(wk_dp *dp, const int32_t *ids, const int32_t *labels, const int *lens, int nseq,
                             double *loss_sum, int64_t *n_targets) {
    dp_job jobs[WK_DP_MAX];
    for (int r = 0; r < dp->world; r++)
        jobs[r] = (dp_job){.dp = dp, .rank = r, .ids = ids, .labels = labels, .lens = lens, .nseq = nseq};
    wick_status st = run_all(dp, jobs, accumulate_one);
    for (int r = 0; r < dp->world && !st; r++) { /* rank order: the same sum on every run */
        if (loss_sum) *loss_sum += jobs[r].loss;
        if (n_targets) *n_targets += jobs[r].n_targets;
    }
    return st;
}

wick_status wk_dp_step(wk_dp *dp, int64_t n_targets, const char *grads_path, wick_step_info *info) {
    float *bufs[WK_DP_MAX];
    size_t n = 0;
    for (int r = 0; r < dp->world; r++) {
        size_t k;
        wk_trainer_grad_span(dp->t[r], &bufs[r], &k);
        if (r > 0 && k != n) return wk_err(WICK_ESTATE, "data parallel: replica %d has %zu gradients, replica 0 %zu", r, k, n);
        n = k;
    }
    wick_status st = dp->comm->allreduce(dp->comm, bufs, n);
    if (st) return st;
    dp_job jobs[WK_DP_MAX];
    for (int r = 0; r < dp->world; r++) jobs[r] = (dp_job){.dp = dp, .rank = r, .nt = n_targets, .grads = grads_path};
    st = run_all(dp, jobs, step_one);
    if (info) *info = jobs[0].info;
    return st;
}

wick_status wk_dp_load_state(wk_dp *dp, const char *path) {
    for (int r = 1; r < dp->world; r++) {
        wick_status st = wick_trainer_load_state(dp->t[r], path);
        if (st) return wk_err_prefix(st, "replica %d", r);
        wk_trainer_set_micro(dp->t[r], wk_trainer_micro(dp->t[r]) + DROP_STREAM(r));
    }
    return WICK_OK;
}
