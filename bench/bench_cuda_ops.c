/*
 * bench_cuda_ops.c — the decode step's kernels one at a time on a CUDA device, at
 * qwen2.5-0.5b shapes (bf16 weights, one row): each case is captured as a graph of
 * REPS back-to-back launches and replayed, so the figure is the kernel's time plus
 * the graph's launch gap, as inside the decode graph. Fused ops beside the plain
 * sequences they replace, and the LoRA r16 extras. Prints one JSON object: µs per
 * launch and GB/s of weights streamed. Without a CUDA device it prints {"skipped"}.
 *
 * usage: bench_cuda_ops [--pos 2100]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend/backend.h"
#include "graph_time.h"
#ifdef WICK_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

#define REPS 200

#ifdef WICK_HAVE_CUDA
static wk_backend *G;
enum { C = 896, HD = 896, KD = 128, F = 4864, V = 151936, H = 14, HK = 2, D = 64, CAP = 2306 };

typedef struct {
    int kind;
    float *y, *x, *x2, *nw, *t, *kc, *vc, *inv, *A, *B;
    int32_t *pos;
    wk_mat W;
    int ra, pos0;
} op_case;

static void run_case(void *arg) {
    op_case *c = arg;
    for (int i = 0; i < REPS; i++) {
        wk_rowin in = {.x = c->x, .scale = 1.f, .in = c->W.cols, .A = c->A, .ra = c->ra, .t = c->t};
        wk_expand e = {.B = c->B, .t = c->t, .ra = c->ra, .s = 1.f};
        switch (c->kind) {
        case 0: G->matvec(G, c->y, &in, &c->W, NULL, 0); break;                                  /* plain */
        case 1: in.nw = c->nw, in.eps = 1e-6f, G->matvec(G, c->y, &in, &c->W, NULL, 0); break;     /* norm */
        case 2: in.up = c->x2, G->matvec(G, c->y, &in, &c->W, NULL, 1); break;                    /* swiglu */
        case 3: G->rmsnorm(G, c->x2, c->x, c->nw, 1, C, 1e-6f); G->matmul(G, c->y, c->x2, &c->W, NULL, 1, 0); break;
        case 4: G->swiglu(G, c->x2, c->x, c->x2, F); G->matmul(G, c->y, c->x2, &c->W, NULL, 1, 1); break;
        case 5: G->matmul(G, c->y, c->x, &c->W, NULL, 1, 0); break;
        case 6: G->rope_kv(G, c->y, c->y + HD, c->y + HD + KD, c->kc, c->vc, c->pos, H, HK, D, CAP, c->inv, NULL, NULL,
                           1e-6f, c->ra ? &e : NULL); break;
        case 7: G->rope(G, c->y, c->pos, 1, H + HK, D, c->inv);
                G->kv_store(G, c->kc, c->vc, c->y + HD, c->y + HD + KD, 1, c->pos0, c->pos, HK, D, CAP); break;
        case 9: G->swiglu(G, c->x2, c->x, c->x2, F), in.x = c->x2, G->matvec(G, c->y, &in, &c->W, NULL, 1); break;
        case 8: G->attention(G, c->x2, c->y, c->kc, c->vc, 1, c->pos0, c->pos, H, HK, D, CAP, 0.125f); break;
        }
    }
}

/* µs per launch of case c (graph of REPS, best of 5 replays). */
static double time_case(op_case *c) {
    run_case(c); /* sizes scratch */
    G->sync(G);
    void *g = G->graph_capture(G, run_case, c);
    if (!g) {
        fprintf(stderr, "bench_cuda_ops: graph capture failed: %s\n", wick_last_error());
        return -1;
    }
    double best = gt_best_us(G, g, REPS);
    G->graph_free(G, g);
    if (G->check(G)) {
        fprintf(stderr, "bench_cuda_ops: %s\n", wick_last_error());
        return -1;
    }
    return best;
}

static void *zalloc(size_t bytes) {
    void *d = G->alloc(G, bytes);
    void *h = calloc(1, bytes);
    G->upload(G, d, h, bytes);
    free(h);
    return d;
}

static void report(const char *name, op_case *c, double wbytes, int *first) {
    double us = time_case(c);
    printf("%s\"%s\":{\"us\":%.2f,\"gb_s\":%.0f}", *first ? "" : ",", name, us, us > 0 ? wbytes / us / 1e3 : 0);
    *first = 0;
}
#endif

int main(int argc, char **argv) {
#ifdef WICK_HAVE_CUDA
    int pos0 = 2100;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--pos")) pos0 = atoi(argv[i + 1]);
    if (wk_cuda_device_count() == 0 || !(G = wk_backend_cuda_fast(0))) {
        printf("{\"bench\":\"cuda_ops\",\"skipped\":\"no CUDA device\"}\n");
        return 0;
    }
    op_case c = {0};
    c.y = zalloc(4 * (size_t)2 * F), c.x = zalloc(4 * (size_t)F), c.x2 = zalloc(4 * (size_t)2 * F);
    c.nw = zalloc(4 * (size_t)F), c.t = zalloc(4 * 256), c.kc = zalloc(4 * (size_t)HK * CAP * D);
    c.vc = zalloc(4 * (size_t)HK * CAP * D), c.inv = zalloc(4 * D), c.pos = zalloc(4), c.pos0 = pos0;
    G->upload(G, c.pos, &pos0, 4);
    float *A = zalloc(4 * (size_t)64 * F), *B = zalloc(4 * (size_t)2 * F * 64);
    void *w = zalloc(2 * (size_t)V * C);
    int first = 1;
    printf("{\"bench\":\"cuda_ops\",\"pos\":%d,\"reps\":%d,", pos0, REPS);
    wk_mat qkv = {.w = w, .dt = WICK_DT_BF16, .rows = HD + 2 * KD, .cols = C};
    wk_mat o = {.w = w, .dt = WICK_DT_BF16, .rows = C, .cols = HD};
    wk_mat gu = {.w = w, .dt = WICK_DT_BF16, .rows = 2 * F, .cols = C};
    wk_mat dn = {.w = w, .dt = WICK_DT_BF16, .rows = C, .cols = F};
    wk_mat head = {.w = w, .dt = WICK_DT_BF16, .rows = V, .cols = C};
    struct { const char *name; int kind; wk_mat W; int ra; } cs[] = {
        {"qkv_norm_matvec", 1, qkv, 0}, {"qkv_rmsnorm_then_gemv", 3, qkv, 0}, {"qkv_norm_matvec_r16", 1, qkv, 48},
        {"o_matvec", 0, o, 0}, {"o_gemv", 5, o, 0}, {"o_matvec_r16", 0, o, 16},
        {"gate_up_norm_matvec", 1, gu, 0}, {"gate_up_rmsnorm_then_gemv", 3, gu, 0}, {"gate_up_norm_matvec_r16", 1, gu, 32},
        {"down_swiglu_matvec", 2, dn, 0}, {"down_swiglu_then_gemv", 4, dn, 0}, {"down_swiglu_matvec_r16", 2, dn, 16},
        {"down_swiglu_then_matvec", 9, dn, 0}, {"down_swiglu_then_matvec_r16", 9, dn, 16},
        {"head_norm_matvec", 1, head, 0}, {"head_rmsnorm_then_gemv", 3, head, 0},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        c.kind = cs[i].kind, c.W = cs[i].W, c.ra = cs[i].ra, c.A = cs[i].ra ? A : NULL;
        report(cs[i].name, &c, (double)c.W.rows * c.W.cols * 2, &first);
    }
    wk_mat eB = {.w = B, .dt = WICK_DT_F32, .rows = 2 * F, .cols = 32};
    c.kind = 0, c.W = eB, c.ra = 0, c.A = NULL, c.x = c.t;
    report("expand_gate_up_r16", &c, (double)eB.rows * eB.cols * 4, &first);
    eB.rows = C, eB.cols = 16, c.W = eB;
    report("expand_o_r16", &c, (double)eB.rows * eB.cols * 4, &first);
    c.x = zalloc(4 * (size_t)F);
    c.kind = 6, c.ra = 0, c.B = NULL;
    report("rope_kv", &c, 0, &first);
    c.ra = 48, c.B = B;
    report("rope_kv_expand_r16", &c, 0, &first);
    c.kind = 7, c.ra = 0;
    report("rope_then_kv_store", &c, 0, &first);
    c.kind = 8;
    report("attention", &c, 2.0 * HK * (pos0 + 1) * D * 4, &first);
    printf("}\n");
#else
    (void)argc, (void)argv;
    printf("{\"bench\":\"cuda_ops\",\"skipped\":\"built without the CUDA backend\"}\n");
#endif
    return 0;
}
