/*
 * kernels.h — the plain C (+ cblas) operations the self-contained benchmarks time:
 * layer ops, one LoRA linear layer forward/backward, softmax cross-entropy and
 * torch-semantics AdamW. They stand in until the library's own ops are on main
 * and are checked against finite differences and hand-computed values in
 * tests/test_bench_kernels.c.
 */
#ifndef WK_BENCH_KERNELS_H
#define WK_BENCH_KERNELS_H

#include "wk.h"

/* Row-wise over rows × n: numerically stable softmax, layer norm (no affine), RMS norm (no weight). */
void wk_bk_softmax(float *y, const float *x, int rows, int n);
void wk_bk_layer_norm(float *y, const float *x, int rows, int n, float eps);
void wk_bk_rms_norm(float *y, const float *x, int rows, int n, float eps);

/* One LoRA linear layer: y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ. */
typedef struct {
    int M, in, out, r;  /* rows of x, features in/out, rank */
    float s;            /* alpha / r */
    const float *W;     /* (out, in) frozen base weight */
    float *A, *B;       /* (r, in), (out, r) trainable */
} wk_bk_lora;

/* t (M, r) receives x·Aᵀ (kept for the backward); y (M, out). Fused: the adapter
 * product accumulates into y inside the GEMM (beta = 1). */
void wk_bk_lora_forward(const wk_bk_lora *l, const float *x, float *t, float *y);
/* Unfused: base and adapter outputs in separate buffers (d: M × out), then added. */
void wk_bk_lora_forward_unfused(const wk_bk_lora *l, const float *x, float *t, float *d, float *y);
/* Gradients of A and B given dy (M, out), the input x and the saved t = x·Aᵀ; dt is (M, r) scratch. */
void wk_bk_lora_backward(const wk_bk_lora *l, const float *x, const float *t, const float *dy, float *dt,
                         float *dA, float *dB);

/* Mean softmax cross-entropy of logits (M, V) against labels; writes dlogits = d(mean loss)/d(logits). */
float wk_bk_xent(const float *logits, const int32_t *labels, int M, int V, float *dlogits);

/* One torch.optim.AdamW step on n parameters; t is the 1-based step count. */
typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} wk_bk_adamw_cfg;
void wk_bk_adamw(float *p, const float *g, float *m, float *v, size_t n, int t, const wk_bk_adamw_cfg *c);

#endif
