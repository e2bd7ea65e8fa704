/*
 * cuda_train.h — the training kernels of the CUDA backend (C entry points, no
 * CUDA types): row-major f32 GEMMs for the LoRA products, the input gradient of
 * a frozen weight (dy·W, f32 or 16-bit weights), the backward element-wise ops
 * (RMSNorm, RoPE, SwiGLU), causal attention forward/backward over packed
 * sequences with the log-sum-exp saved, cross-entropy over LM-head chunks,
 * row gather/scatter, LoRA dropout, and the optimizer (gradient scaling with the
 * squared norm in fixed-order partial sums, AdamW over one flat buffer).
 * Every pointer is device memory of the backend `be` (a CUDA backend); every
 * call is asynchronous on its stream; errors are recorded for be->check.
 * Semantics match the CPU `ref` train ops (src/model/train_ops.h).
 */
#ifndef WK_CUDA_TRAIN_H
#define WK_CUDA_TRAIN_H
#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* C[M,N] = alpha·op(A)·op(B) + beta·C, row-major f32. ta: A is stored [K,M] (else [M,K]);
 * tb: B is stored [N,K] (else [K,N]); ld* are the stored row lengths. tf32: TF32 tensor cores. */
void wkt_gemm(wk_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc, int tf32);
/* dx[n,in] (=|+=) dy[n,out]·W for W [out,in] (f32, bf16 or f16). 16-bit W: dy16 holds dy already
 * rounded to W's type, or is NULL and dy is rounded into tmp16 (n*out 16-bit values). */
void wkt_matmul_dx(wk_backend *be, float *dx, const float *dy, const void *dy16, const wk_mat *W, int n, int acc,
                   void *tmp16);
/* dx[n,dim] (=|+=) gradient of y = x/rms(x)*w given dy; w may be NULL. */
void wkt_rmsnorm_bwd(wk_backend *be, float *dx, const float *dy, const float *x, const float *w, int n, int dim, float eps,
                     int acc);
/* The same, also writing dx rounded to dt16 (WICK_DT_BF16 or WICK_DT_F16; else none) into dx16
 * (n*dim values): the next frozen product's 16-bit input, rounded in the same pass. */
void wkt_rmsnorm_bwd16(wk_backend *be, float *dx, void *dx16, int dt16, const float *dy, const float *x, const float *w,
                       int n, int dim, float eps, int acc);
/* In place: d[n,nh,D] <- R(pos)ᵀ·d (rotate_half layout). */
void wkt_rope_bwd(wk_backend *be, float *d, const int32_t *pos, int n, int nh, int D, const float *inv_freq);
/* The same, also writing the result rounded to dt16 into d16 (as wkt_rmsnorm_bwd16). */
void wkt_rope_bwd16(wk_backend *be, float *d, void *d16, int dt16, const int32_t *pos, int n, int nh, int D,
                    const float *inv_freq);
/* Causal attention over packed rows (rs[i] = first row of row i's sequence): out[n,H,D],
 * lse[n,H] = log Σ exp(scale·q·k). D <= 256, a multiple of 4; tensors 16-byte aligned. */
void wkt_attn_fwd(wk_backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                  const int32_t *rs, int n, int H, int Hk, int D, float scale);
/* Its gradients dq[n,H,D], dk/dv[n,Hk,D] (overwritten); re[i] = one past the last row of row i's
 * sequence; dsum is scratch of n*H floats, dkp/dvp of n*H*D floats each (per-head dk/dv before
 * the sum over a GQA group; unused when H == Hk). D a multiple of 4, tensors 16-byte aligned. */
void wkt_attn_bwd(wk_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                  const float *q, const float *k, const float *v, const int32_t *rs, const int32_t *re, int n, int H,
                  int Hk, int D, float scale, float *dsum, float *dkp, float *dvp);
/* Tensor-core versions of wkt_attn_fwd / wkt_attn_bwd (cuda_flash.cu): TF32 products with fp32
 * accumulation, flash tiling; same arguments and results up to TF32 rounding (relative L2 ~1e-3).
 * They take head_dim 64 or 128 with H a multiple of Hk and 16-byte aligned tensors; for any other
 * shape they do nothing and return 0 (the caller then uses the exact kernels), else 1. */
int wkt_attn_fwd_tc(wk_backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                    const int32_t *rs, int n, int H, int Hk, int D, float scale);
int wkt_attn_bwd_tc(wk_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *out,
                    const float *lse, const float *q, const float *k, const float *v, const int32_t *rs,
                    const int32_t *re, int n, int H, int Hk, int D, float scale, float *dsum, float *dkp,
                    float *dvp);
/* bf16 tensor-core versions (cuda_flash16.cu): mma.sync on bf16 operands (q, k, v, dout, the
 * probabilities and dS rounded to bf16) with fp32 accumulation and fp32 softmax statistics, as
 * FlashAttention-2; same arguments, results and shape rules as the TF32 kernels, up to bf16
 * rounding (relative L2 ~5e-3). After a multi-row GEMM with bf16 weights the forward also leaves
 * out's bf16 copy for the next GEMM that reads out (as the backend's prefill ops do). */
int wkt_attn_fwd_bf16(wk_backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                      const int32_t *rs, int n, int H, int Hk, int D, float scale);
int wkt_attn_bwd_bf16(wk_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *out,
                      const float *lse, const float *q, const float *k, const float *v, const int32_t *rs,
                      const int32_t *re, int n, int H, int Hk, int D, float scale, float *dsum, float *dkp,
                      float *dvp);
/* act = silu(g)*u backward over n elements. */
void wkt_swiglu_bwd(wk_backend *be, float *dg, float *du, const float *dact, const float *g, const float *u, size_t n);
/* The same, also writing dg and du rounded to dt16 (WICK_DT_BF16 or WICK_DT_F16) into dg16, du16
 * (n values each): the inputs of the frozen products' dx GEMMs, rounded in the same pass. */
void wkt_swiglu_bwd16(wk_backend *be, float *dg, float *du, void *dg16, void *du16, int dt16, const float *dact,
                      const float *g, const float *u, size_t n);
/* One LoRA expand folded into an element-wise kernel: at (row i, column j) it adds
 * s · Σ_k xa[i,k] · B(j,k) with xa (n, r) row-major and B(j,k) = B[j*sj + k*sk] (a B matrix
 * (F, r): sj r, sk 1; an A matrix (r, F) read as its transpose: sj 1, sk F). r 0: nothing. */
typedef struct {
    const float *xa, *B;
    size_t sj, sk;
    float s;
    int r;
} wkt_expand;
enum { WKT_GLU_RMAX = 32 }; /* the largest rank the folded SwiGLU kernels take */
/* act[n,F] = silu(g')·u' with g' = g + eg's expand, u' = u + eu's expand (g, u: the frozen
 * products, unchanged; ranks <= WKT_GLU_RMAX), the same values as the LoRA GEMMs then swiglu
 * up to fp32 summation order. act16 NULL: after a multi-row GEMM with 16-bit weights it also
 * leaves act's 16-bit copy for the next GEMM that reads act (as the backend's swiglu does).
 * act16 not NULL: act rounded to dt16 goes there instead, and act (fp32) only when not NULL.
 * fast: silu's exp and division as __expf / __fdividef (for 16-bit weights: a few ulp). */
void wkt_swiglu_lora(wk_backend *be, float *act, void *act16, int dt16, const float *g, const float *u, int n, int F,
                     const wkt_expand *eg, const wkt_expand *eu, int fast);
/* Its backward with down's LoRA input gradient folded in: dact' = dact + ed's expand (ed.xa =
 * dy·B_down (n, r), ed.B = A_down read transposed), g' and u' recomputed exactly as the forward
 * did, then wkt_swiglu_bwd's formulas (fast: the sigmoid as in the forward). dg, du (fp32) are
 * written when not NULL; dg16, du16 (the same values rounded to dt16, WICK_DT_BF16 or
 * WICK_DT_F16) when not NULL. */
void wkt_swiglu_lora_bwd(wk_backend *be, float *dg, float *du, void *dg16, void *du16, int dt16, const float *dact,
                         const float *g, const float *u, int n, int F, const wkt_expand *eg, const wkt_expand *eu,
                         const wkt_expand *ed, int fast);
/* wkt_gemm over 16-bit inputs (dt16: WICK_DT_BF16 or WICK_DT_F16; A and B that type) with an
 * fp32 C, fp32 accumulation on tensor cores. */
void wkt_gemm16(wk_backend *be, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda, const void *B,
                int ldb, float beta, float *C, int ldc, int dt16);
/* y[n,out] (=|+=) x16·Wᵀ for a 16-bit W [out,in] and x16 [n,in] already rounded to W's type
 * (fp32 accumulation; no bias). */
void wkt_matmul16(wk_backend *be, float *y, const void *x16, const wk_mat *W, int n, int acc);
/* d[n] = s rounded to dt16 (WICK_DT_BF16 or WICK_DT_F16). */
void wkt_to16(wk_backend *be, void *d, const float *s, size_t n, int dt16);
/* Cross-entropy with label smoothing of rows of logits[rows,V] against tgt[rows]: loss[r] = the row's
 * loss; the gradient d loss/d logits overwrites logits, or with g16 != NULL goes there rounded to
 * dt16 (WICK_DT_BF16 or WICK_DT_F16) and logits are left as they are. */
void wkt_xent(wk_backend *be, float *logits, const int32_t *tgt, int rows, int V, float smoothing, float *loss, void *g16,
              int dt16);
/* dst[r,:] = src[rows[r],:] (gather) / dst[rows[r],:] = src[r,:] (scatter), C columns, nr rows. */
void wkt_gather_rows(wk_backend *be, float *dst, const float *src, const int32_t *rows, int nr, int C);
void wkt_scatter_rows(wk_backend *be, float *dst, const float *src, const int32_t *rows, int nr, int C);
/* dst = src * mask / (1-p), mask[i] from (key, i) exactly as the CPU trainer; dst may equal src. */
void wkt_dropout(wk_backend *be, float *dst, const float *src, size_t cnt, uint64_t key, float p);

enum { WKT_NORM_BLOCKS = 256 };
/* g *= inv over n elements; part[WKT_NORM_BLOCKS] (device doubles) gets per-block Σ g² (fixed order). */
void wkt_scale_sumsq(wk_backend *be, float *g, size_t n, float inv, double *part);
/* torch AdamW over n elements after g *= clip; then g = 0. Constants as in wk_adamw. */
void wkt_adamw(wk_backend *be, float *w, float *g, float *m, float *v, size_t n, float clip, float decay, float w1,
               float b2, float w2, float step_size, float bc2s, float eps);
/* A run of n floats copied with a scale: dst[dst_at + e] = s · src[src_at + e], e < n. */
typedef struct {
    size_t src_at, dst_at, n;
    float s;
    int pad_;
} wkt_seg;
/* Every segment of segs (a device array of nseg; max_n the largest n) in one launch. */
void wkt_seg_scale(wk_backend *be, float *dst, const float *src, const wkt_seg *segs, int nseg, size_t max_n);
/* Asynchronous device memset / device-to-device copy on the backend's stream. */
void wkt_zero(wk_backend *be, void *p, size_t bytes);
void wkt_copy(wk_backend *be, void *dst, const void *src, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
