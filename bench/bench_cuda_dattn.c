/*
 * bench_cuda_dattn.c — the decode attention op (one query row, positions read from device
 * memory as in the decode graph) at qwen2.5-0.5b (14/2 heads, D 64) and qwen2.5-7b (28/4,
 * D 128) head shapes, for caches of 4096 and 32768 positions and several positions. Each
 * case is a graph of REPS launches cycling through the layers' own caches (so the K/V
 * bytes come from HBM, not L2, as in a real step), replayed; the figure is µs per launch
 * (kernel time plus the graph's launch gap) and the K/V bytes read per µs. Prints JSON;
 * without a CUDA device it prints {"skipped": ...}.
 *
 * usage: bench_cuda_dattn
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "backend/backend.h"
#include "graph_time.h"
#ifdef WICK_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

#define REPS 240

#ifdef WICK_HAVE_CUDA
static wk_backend *G;

typedef struct {
    int H, Hk, D, cap, layers;
    float *q, *out, *kc, *vc;
    int32_t *pos;
} dcase;

static void run(void *arg) {
    dcase *c = arg;
    size_t lsz = (size_t)c->Hk * c->cap * c->D;
    for (int i = 0; i < REPS; i++) {
        size_t lo = (size_t)(i % c->layers) * lsz;
        G->attention(G, c->out, c->q, c->kc + lo, c->vc + lo, 1, 0, c->pos, c->H, c->Hk, c->D, c->cap,
                     1.f / sqrtf((float)c->D));
    }
}

/* µs per launch at position pos0 (best of 5 replays of one captured graph). */
static double time_at(dcase *c, void *g, int pos0) {
    G->upload(G, c->pos, &pos0, sizeof pos0);
    return gt_best_us(G, g, REPS);
}

static void bench(const char *name, int H, int Hk, int D, int cap, int layers, int *first) {
    dcase c = {H, Hk, D, cap, layers, NULL, NULL, NULL, NULL, NULL};
    size_t csz = (size_t)layers * Hk * cap * D * sizeof(float);
    c.q = G->alloc(G, sizeof(float) * H * D), c.out = G->alloc(G, sizeof(float) * H * D);
    c.kc = G->alloc(G, csz), c.vc = G->alloc(G, csz), c.pos = G->alloc(G, sizeof(int32_t));
    if (!c.q || !c.out || !c.kc || !c.vc || !c.pos) {
        fprintf(stderr, "bench_cuda_dattn: %s\n", wick_last_error());
        exit(1);
    }
    float *h = calloc((size_t)H * D, sizeof(float));
    G->upload(G, c.q, h, sizeof(float) * H * D);
    free(h);
    int p0 = 100;
    G->upload(G, c.pos, &p0, sizeof p0);
    run(&c); /* sizes the scratch */
    G->sync(G);
    void *g = G->graph_capture(G, run, &c);
    if (!g) {
        fprintf(stderr, "bench_cuda_dattn: graph capture failed: %s\n", wick_last_error());
        exit(1);
    }
    int pos[] = {1, 512, 2049, 4000, 8192, 16384, 32000};
    for (int i = 0; i < 7; i++) {
        if (pos[i] + 1 > cap) continue;
        double us = time_at(&c, g, pos[i]);
        double bytes = 2.0 * Hk * (pos[i] + 1) * D * sizeof(float);
        printf("%s{\"shape\":\"%s\",\"cap\":%d,\"pos\":%d,\"us\":%.2f,\"gb_s\":%.0f}", *first ? "" : ",\n", name, cap,
               pos[i], us, bytes / us / 1e3);
        *first = 0;
    }
    G->graph_free(G, g);
    if (G->check(G)) {
        fprintf(stderr, "bench_cuda_dattn: %s\n", wick_last_error());
        exit(1);
    }
    G->free(G, c.q), G->free(G, c.out), G->free(G, c.kc), G->free(G, c.vc), G->free(G, c.pos);
}
#endif

int main(void) {
#ifdef WICK_HAVE_CUDA
    if (wk_cuda_device_count() == 0 || !(G = wk_backend_cuda(0))) {
        printf("{\"bench\":\"cuda_dattn\",\"skipped\":\"no CUDA device\"}\n");
        return 0;
    }
    int first = 1;
    printf("{\"bench\":\"cuda_dattn\",\"reps\":%d,\"cases\":[\n", REPS);
    bench("qwen2.5-0.5b", 14, 2, 64, 4096, 24, &first);
    bench("qwen2.5-0.5b", 14, 2, 64, 32768, 24, &first);
    bench("qwen2.5-7b", 28, 4, 128, 4096, 28, &first);
    bench("qwen2.5-7b", 28, 4, 128, 32768, 8, &first);
    printf("]}\n");
#else
    printf("{\"bench\":\"cuda_dattn\",\"skipped\":\"built without the CUDA backend\"}\n");
#endif
    return 0;
}
