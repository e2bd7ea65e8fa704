/*
 * bench_cuda_mv.c — the decode step's products (the backend's matvec: one row, bf16
 * weights) at the shapes of qwen2.5-0.5b and qwen2.5-7b, with the weights coming from
 * HBM as in a real step: each case cycles over enough copies of its matrix (at least
 * 256 MB in all) that none is still in the 50 MB L2 when it comes round again. Each case
 * is a graph of back-to-back launches, replayed (best of 5), so a figure is the kernel's
 * time plus the graph's launch gap. --cfgs i,j,... times the streaming kernel's unit
 * shapes (WICK_MV_CFG, cuda_ops.cu; -1 = the built-in choice) side by side; --rank R
 * adds an unmerged rank-R adapter's shrink and expand to every product. Prints one JSON
 * object (µs per launch and TB/s of weights) and a table on stderr. Without a CUDA
 * device it prints {"skipped"}.
 *
 * usage: bench_cuda_mv [--cfgs -1] [--rank 0] [--model 0.5b|7b|all]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend/backend.h"
#include "graph_time.h"
#ifdef WICK_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

#ifdef WICK_HAVE_CUDA
static wk_backend *G;

typedef struct {
    const char *name;
    int in, out, norm, glu, acc;
} mv_shape;

static const mv_shape SHAPES[] = {
    {"0.5b_qkv", 896, 1152, 1, 0, 0},     {"0.5b_o", 896, 896, 0, 0, 1},      {"0.5b_gate_up", 896, 9728, 1, 1, 0},
    {"0.5b_down", 4864, 896, 0, 0, 1},    {"0.5b_head", 896, 151936, 0, 0, 0}, {"7b_qkv", 3584, 4608, 1, 0, 0},
    {"7b_o", 3584, 3584, 0, 0, 1},        {"7b_gate_up", 3584, 37888, 1, 1, 0}, {"7b_down", 18944, 3584, 0, 0, 1},
    {"7b_head", 3584, 152064, 0, 0, 0},
};

typedef struct {
    const mv_shape *s;
    void **w;
    int nw, reps, ra;
    float *x, *nw_, *y, *A, *B, *t;
} mv_case;

static void run_case(void *arg) {
    mv_case *c = arg;
    for (int i = 0; i < c->reps; i++) {
        wk_mat W = {.w = c->w[i % c->nw], .dt = WICK_DT_BF16, .rows = c->s->out, .cols = c->s->in};
        wk_rowin in = {.x = c->x, .nw = c->s->norm ? c->nw_ : NULL, .eps = 1e-6f, .scale = 1.f, .in = c->s->in,
                       .glu = c->s->glu};
        if (c->ra) in.A = c->A, in.ra = c->ra, in.t = c->t, in.pB = c->B, in.ps = 1.f;
        G->matvec(G, c->y, &in, &W, NULL, c->s->acc);
    }
}

static void *zalloc(size_t bytes) {
    void *d = G->alloc(G, bytes), *h = calloc(1, bytes);
    if (!d || !h) {
        fprintf(stderr, "bench_cuda_mv: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    for (size_t i = 0; i < bytes / 2; i++) ((unsigned short *)h)[i] = 0x3c00 + (unsigned short)(i % 97); /* small values */
    G->upload(G, d, h, bytes);
    free(h);
    return d;
}

/* µs per launch (best of 5 replays of a graph of c->reps launches); -1 on failure. */
static double time_case(mv_case *c) {
    run_case(c);
    G->sync(G);
    void *g = G->graph_capture(G, run_case, c);
    if (!g || G->check(G)) {
        fprintf(stderr, "bench_cuda_mv: %s: %s\n", c->s->name, wick_last_error());
        return -1;
    }
    double best = gt_best_us(G, g, c->reps);
    G->graph_free(G, g);
    return G->check(G) ? -1 : best;
}
#endif

int main(int argc, char **argv) {
#ifdef WICK_HAVE_CUDA
    const char *cfgs = "-1", *model = "all";
    int rank = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--cfgs")) cfgs = argv[i + 1];
        else if (!strcmp(argv[i], "--rank")) rank = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else {
            fprintf(stderr, "usage: bench_cuda_mv [--cfgs -1,0,1] [--rank R] [--model 0.5b|7b|all]\n");
            return 2;
        }
    }
    if (wk_cuda_device_count() == 0 || !(G = wk_backend_cuda_fast(0))) {
        printf("{\"bench\":\"cuda_mv\",\"skipped\":\"no CUDA device\"}\n");
        return 0;
    }
    int cl[16], ncl = 0;
    for (const char *p = cfgs; *p && ncl < 16;) {
        cl[ncl++] = atoi(p);
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    printf("{\"bench\":\"cuda_mv\",\"rank\":%d,\"results\":[", rank);
    int first = 1;
    for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0]; si++) {
        const mv_shape *s = &SHAPES[si];
        if (strcmp(model, "all") && strncmp(s->name, model, strlen(model))) continue;
        size_t wb = (size_t)s->in * s->out * 2;
        mv_case c = {.s = s, .ra = rank};
        c.nw = (int)((((size_t)256 << 20) + wb - 1) / wb);
        c.nw = c.nw < 2 ? 2 : c.nw;
        c.reps = c.nw < 24 ? 24 : c.nw;
        c.w = calloc((size_t)c.nw, sizeof *c.w);
        for (int i = 0; i < c.nw; i++) c.w[i] = zalloc(wb);
        c.x = zalloc(4 * (size_t)s->in), c.nw_ = zalloc(4 * (size_t)s->in), c.y = zalloc(4 * (size_t)s->out);
        if (rank) c.A = zalloc(4 * (size_t)rank * s->in), c.B = zalloc(4 * (size_t)s->out * rank), c.t = zalloc(4 * (size_t)rank);
        fprintf(stderr, "%-14s %6d x %-6d %7.1f MB:", s->name, s->out, s->in, wb / 1e6);
        for (int k = 0; k < ncl; k++) {
            char v[16];
            if (cl[k] < 0) unsetenv("WICK_MV_CFG");
            else snprintf(v, sizeof v, "%d", cl[k]), setenv("WICK_MV_CFG", v, 1);
            double us = time_case(&c);
            double tbs = us > 0 ? wb / us / 1e6 : 0;
            fprintf(stderr, "  [%d] %7.2f us %4.2f TB/s", cl[k], us, tbs);
            printf("%s{\"shape\":\"%s\",\"rows\":%d,\"cols\":%d,\"cfg\":%d,\"us\":%.2f,\"tb_s\":%.3f}", first ? "" : ",",
                   s->name, s->out, s->in, cl[k], us, tbs);
            first = 0;
        }
        fprintf(stderr, "\n");
        for (int i = 0; i < c.nw; i++) G->free(G, c.w[i]);
        free(c.w);
        G->free(G, c.x), G->free(G, c.nw_), G->free(G, c.y);
        if (rank) G->free(G, c.A), G->free(G, c.B), G->free(G, c.t);
    }
    unsetenv("WICK_MV_CFG");
    printf("]}\n");
#else
    (void)argc, (void)argv;
    printf("{\"bench\":\"cuda_mv\",\"skipped\":\"built without the CUDA backend\"}\n");
#endif
    return 0;
}
