/*
 * comm_host.c — the host communicator (comm.h) and the batch sharding rule.
 * The sum runs in rank order 0, 1, …, world-1 for every element, so the result
 * does not depend on threads or timing.
 */
#include "dist/comm.h"

#include <stdlib.h>

static wick_status host_allreduce(wk_comm *c, float *const *bufs, size_t n) {
    if (c->world <= 1) return WICK_OK;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float s = bufs[0][i];
        for (int r = 1; r < c->world; r++) s += bufs[r][i];
        for (int r = 0; r < c->world; r++) bufs[r][i] = s;
    }
    return WICK_OK;
}

static void host_free(wk_comm *c) { wk_free(c); }

wick_status wk_comm_host(int world, wk_comm **out) {
    *out = NULL;
    if (world < 1) return wk_err(WICK_EINVAL, "data parallel: world size %d must be >= 1", world);
    wk_comm *c = wk_calloc(sizeof *c, "host communicator");
    if (!c) return WICK_ENOMEM;
    *c = (wk_comm){.name = "host", .world = world, .allreduce = host_allreduce, .free = host_free};
    *out = c;
    return WICK_OK;
}

void wk_shard(int nseq, int world, int rank, int *lo, int *hi) {
    int base = nseq / world, extra = nseq % world;
    *lo = rank * base + WK_MIN(rank, extra);
    *hi = *lo + base + (rank < extra);
}

#ifndef WICK_HAVE_CUDA
wick_status wk_comm_nccl(int world, const int *devs, wk_comm **out) {
    (void)world, (void)devs;
    *out = NULL;
    return wk_err(WICK_EUNSUPPORTED, "multi-GPU: this build has no CUDA backend (rebuild where nvcc is found)");
}
#endif
