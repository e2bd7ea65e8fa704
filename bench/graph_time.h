/*
 * graph_time.h — timing a captured backend graph for the CUDA micro-benchmarks
 * (bench_cuda_ops, bench_cuda_dattn, bench_cuda_mv): the best of 5 replays after a
 * warm one, per launch the graph holds.
 */
#ifndef WK_BENCH_GRAPH_TIME_H
#define WK_BENCH_GRAPH_TIME_H
#include <time.h>
#include "backend/backend.h"

static inline double gt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* µs per launch of graph g (reps launches): best of 5 replays, after a warm one. */
static inline double gt_best_us(wk_backend *G, void *g, int reps) {
    G->graph_replay(G, g);
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        G->sync(G);
        double t0 = gt_now();
        G->graph_replay(G, g);
        G->sync(G);
        double t = (gt_now() - t0) / reps * 1e6;
        best = t < best ? t : best;
    }
    return best;
}
#endif
