/*
 * train_ops.h — the backward ops of the decoder (and the forward ops whose
 * training form saves extra state), as a small table with two implementations:
 * `ref` (naive, double accumulation, the oracle of tests/test_backward.c) and
 * `fast` (OpenMP + SIMD loops; the matmuls of training go through cblas in
 * src/train/). All tensors are float32 row-major on the host.
 *
 * Packed batches: n rows are the tokens of several sequences laid end to end;
 * rs[i] is the first row of row i's sequence, so row i sits at position
 * i - rs[i] and attends to rows rs[i]..i only.
 */
#ifndef WK_TRAIN_OPS_H
#define WK_TRAIN_OPS_H
#include "wk.h"

typedef struct {
    /* dx[n,dim] (=|+=) gradient of y = x/rms(x)*w given dy; w may be NULL. */
    void (*rmsnorm_bwd)(float *dx, const float *dy, const float *x, const float *w, int n, int dim, float eps, int acc);
    /* In place: d[n,nh,D] ← Rᵀ(pos)·d, the gradient through rope (rotate_half layout). */
    void (*rope_bwd)(float *d, const int32_t *pos, int n, int nh, int D, const float *inv_freq);
    /* Causal attention over packed rows: out[n,H,D], lse[n,H] = log Σ exp(scores). */
    void (*attn_fwd)(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *rs, int n,
                     int H, int Hk, int D, float scale);
    /* Gradients of attn_fwd: dq[n,H,D], dk/dv[n,Hk,D] (all overwritten). */
    void (*attn_bwd)(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                     const float *q, const float *k, const float *v, const int32_t *rs, int n, int H, int Hk, int D,
                     float scale);
    /* act = silu(g)*u backward: dg, du from dact (n elements). */
    void (*swiglu_bwd)(float *dg, float *du, const float *dact, const float *g, const float *u, size_t n);
    /* Cross-entropy of rows of logits[rows,V] against tgt[rows] with label smoothing eps:
     * returns Σ loss and overwrites logits with d(Σ loss)/d logits. */
    double (*xent)(float *logits, const int32_t *tgt, int rows, int V, float smoothing);
} wk_train_ops;

const wk_train_ops *wk_train_ops_ref(void);
const wk_train_ops *wk_train_ops_fast(void);
#endif
