/*
 * replica.h — data parallelism inside one training step on the CPU: N replicas
 * of the forward and backward, each on its own shard of a micro-batch with its
 * own activation workspace and its own share of the threads.
 *
 *   run(fn, arg, n)  runs fn(arg, rank, threads) for rank 0..n-1 concurrently and
 *                    returns when all have finished.
 * The CPU implementation (wk_replicas_cpu_new) runs rank 0 on the calling thread
 * and ranks 1.. on persistent pthreads; each rank runs its OpenMP regions on its
 * own share of the threads (an OpenMP thread count is per thread). The ranks'
 * gradients are then summed with the data-parallel communicator (dist/comm.h:
 * the host one sums in rank order, so a fixed replica count gives the same bits;
 * the NCCL one serves ranks on GPUs). A device implementation of this table would
 * run each rank against its own device and stream; the trainer calls only these
 * entry points and the communicator.
 */
#ifndef WK_REPLICA_H
#define WK_REPLICA_H
#include "wk.h"

typedef struct wk_replicas wk_replicas;
typedef void (*wk_replica_fn)(void *arg, int rank, int threads);

typedef struct {
    const char *name;
    void (*run)(wk_replicas *r, wk_replica_fn fn, void *arg, int n);
    void (*destroy)(wk_replicas *r);
} wk_replicas_ops;

struct wk_replicas {
    const wk_replicas_ops *ops;
    int size;     /* replicas available */
    int threads;  /* threads shared among the ranks of one run */
    void *impl;
};

/* CPU replicas: `size` ranks sharing `threads` OpenMP threads (a run of n ranks gives each threads/n). */
wick_status wk_replicas_cpu_new(int size, int threads, wk_replicas **out);
/* Runs fn on ranks 0..n-1 (n ≤ size) and waits for all of them. */
void wk_replicas_run(wk_replicas *r, wk_replica_fn fn, void *arg, int n);
void wk_replicas_free(wk_replicas *r); /* NULL is fine */
#endif
