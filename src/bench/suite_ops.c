/*
 * suite_ops.c — benchmark group layer_operations: softmax_stable, layer_norm and
 * rms_norm over a (4, 16, 1024) activation, as the seed measured them. rms_norm is
 * the library's (the backend op the decoder calls); softmax and layer_norm are not
 * ops of the decoder's table, so src/bench/kernels.c provides them.
 */
#include "bench.h"
#include "backend/backend.h"
#include "kernels.h"

enum { OPS_ROWS = 4 * 16, OPS_N = 1024 };

typedef struct {
    wk_backend *be;
    float *x, *y;
} ops_state;

static void it_softmax(void *p) {
    ops_state *s = p;
    wk_bk_softmax(s->y, s->x, OPS_ROWS, OPS_N);
    wk_bench_sink(s->y);
}
static void it_layer_norm(void *p) {
    ops_state *s = p;
    wk_bk_layer_norm(s->y, s->x, OPS_ROWS, OPS_N, 1e-5f);
    wk_bench_sink(s->y);
}
static void it_rms_norm(void *p) {
    ops_state *s = p;
    s->be->rmsnorm(s->be, s->y, s->x, NULL, OPS_ROWS, OPS_N, 1e-5f);
    wk_bench_sink(s->y);
}

wick_status wk_bench_layer_ops(wk_bench *b) {
    static const struct {
        const char *name;
        wk_bench_iter_fn fn;
    } cases[] = {
        {"layer_operations/softmax_stable", it_softmax},
        {"layer_operations/layer_norm", it_layer_norm},
        {"layer_operations/rms_norm", it_rms_norm},
    };
    ops_state s = {.be = wk_bench_backend(b)};
    wick_status rc = WICK_OK;
    for (size_t i = 0; i < WK_ARRAY_LEN(cases) && rc == WICK_OK; i++) {
        if (!wk_bench_selected(b, cases[i].name)) continue;
        if (!s.x) {
            s.x = wk_malloc(sizeof(float) * OPS_ROWS * OPS_N * 2, "layer_operations buffers");
            if (!s.x) return WICK_ENOMEM;
            s.y = s.x + OPS_ROWS * OPS_N;
            wk_bench_fill(s.x, OPS_ROWS * OPS_N, 1, 3.0f);
        }
        wk_bench_case c = {.name = cases[i].name, .work = OPS_ROWS * OPS_N, .unit = "elem/s"};
        rc = wk_bench_measure(b, &c, cases[i].fn, &s);
    }
    wk_free(s.x);
    return rc;
}
