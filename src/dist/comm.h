/*
 * comm.h — collective communication between the ranks of a data-parallel group
 * (src/train/dp.c). A rank is one replica of the model with its own trainer; the
 * group all-reduces the flat LoRA gradient buffer once per optimizer step.
 *
 * Two implementations:
 *   host  ranks whose buffers are host memory (CPU replicas): summed in fixed rank
 *         order, so every rank gets the same bits on every run;
 *   nccl  ranks on CUDA devices (one device per rank, one process): NCCL's
 *         ncclAllReduce, loaded at run time from libnccl.so.2 (CUDA builds only).
 */
#ifndef WK_DIST_COMM_H
#define WK_DIST_COMM_H
#include "wk.h"

typedef struct wk_comm wk_comm;
struct wk_comm {
    const char *name;
    int world;
    /* Sums bufs[0..world)[0..n) element-wise into every bufs[r] (in place). */
    wick_status (*allreduce)(wk_comm *c, float *const *bufs, size_t n);
    void (*free)(wk_comm *c);
};

/* A group of `world` ranks whose buffers are host memory. */
wick_status wk_comm_host(int world, wk_comm **out);
/* A group over CUDA devices devs[0..world) (an error without CUDA, NCCL or the devices). */
wick_status wk_comm_nccl(int world, const int *devs, wk_comm **out);

/* The sequences [*lo, *hi) of a micro-batch of nseq that rank `rank` of `world` trains on:
 * contiguous, sizes differ by at most one, earlier ranks take the extra ones. */
void wk_shard(int nseq, int world, int rank, int *lo, int *hi);
#endif
