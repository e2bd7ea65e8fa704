/*
 * suite_calib.c — benchmark group calibration, run with every suite: the same
 * fixed work on every commit, so a change in it between two runs measures the
 * machine (CPU clock, contention, memory), not the code. `wick bench compare`
 * reports it apart and warns when it moved.
 *   calibration/cpu_scalar    a dependent chain of 2^20 float multiply-adds, one thread
 *   calibration/memory_copy   memcpy of 16 MiB, one thread
 */
#include "bench.h"

enum { CHAIN = 1 << 20, COPY_BYTES = 16 << 20 };

static void it_scalar(void *p) {
    volatile float *io = p; /* io[0], io[1]: coefficients read at run time; io[2]: the result */
    float x = 1.0f, a = io[0], c = io[1];
    for (int i = 0; i < CHAIN; i++) x = x * a + c; /* each step waits for the last: latency-bound */
    io[2] = x;
}

typedef struct {
    char *src, *dst;
} copy_state;

static void it_copy(void *p) {
    copy_state *s = p;
    memcpy(s->dst, s->src, COPY_BYTES);
    wk_bench_sink(s->dst);
}

wick_status wk_bench_calibration(wk_bench *b) {
    wick_status rc = WICK_OK;
    if (wk_bench_selected(b, "calibration/cpu_scalar")) {
        float io[3] = {0.999999f, 1e-6f, 0};
        wk_bench_case c = {.name = "calibration/cpu_scalar", .work = CHAIN, .unit = "fma/s"};
        rc = wk_bench_measure(b, &c, it_scalar, io);
    }
    if (rc == WICK_OK && wk_bench_selected(b, "calibration/memory_copy")) {
        copy_state s = {.src = wk_malloc(2 * (size_t)COPY_BYTES, "calibration buffers")};
        if (!s.src) return WICK_ENOMEM;
        s.dst = s.src + COPY_BYTES;
        memset(s.src, 1, 2 * (size_t)COPY_BYTES);
        wk_bench_case c = {.name = "calibration/memory_copy", .work = COPY_BYTES, .unit = "B/s"};
        rc = wk_bench_measure(b, &c, it_copy, &s);
        wk_free(s.src);
    }
    return rc;
}
