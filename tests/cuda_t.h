/*
 * cuda_t.h — helpers shared by the CUDA tests: G, the backend under test; a seeded
 * xorshift stream of uniform values in [-1, 1) (CT_SEED, defined before the include,
 * picks the stream); device copies of host buffers and back; the backend's first
 * asynchronous error as a check (the skip when no GPU is there: t.h ct_no_device).
 */
#ifndef WICK_CUDA_T_H
#define WICK_CUDA_T_H
#include "t.h"
#include "backend/backend.h"
#include "wick.h"
#include <stdio.h>
#include <stdlib.h>

#ifndef CT_SEED
#define CT_SEED 0x9E3779B97F4A7C15ull
#endif

static wk_backend *G;
static uint64_t ct_rs = CT_SEED;

static inline float rnd(void) {
    ct_rs ^= ct_rs << 13, ct_rs ^= ct_rs >> 7, ct_rs ^= ct_rs << 17;
    return (float)((ct_rs >> 11) * (1.0 / 9007199254740992.0)) * 2.f - 1.f;
}
/* n values s * U[-1, 1) in a new host buffer. */
static inline float *rvec(size_t n, float s) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = s * rnd();
    return p;
}
/* A device copy of host memory. */
static inline void *dev(const void *h, size_t bytes) {
    void *d = G->alloc(G, bytes);
    if (d) G->upload(G, d, h, bytes);
    return d;
}
/* Downloads n floats into a new host buffer and frees the device copy. */
static inline float *host(void *d, size_t n) {
    float *h = malloc(n * sizeof(float));
    G->download(G, h, d, n * sizeof(float));
    G->free(G, d);
    return h;
}
static inline void no_error(const char *op) {
    wick_status st = G->check(G);
    CHECK(st == WICK_OK, "%s: %s", op, wick_last_error());
}
#endif
