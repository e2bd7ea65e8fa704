/*
 * gemm_bf16.h — y = x·Wᵀ with bf16 W and x rounded to bf16 (opt-in fast prefill,
 * wick_model_opts.fast_bf16). gemm_bf16.c holds the kernel and its naive reference.
 */
#ifndef WK_GEMM_BF16_H
#define WK_GEMM_BF16_H
#include <stdint.h>

/* y[n,out] = bf16(x)[n,in] · W[out,in]ᵀ, float accumulation, OpenMP threads: 1 (AVX512-BF16
 * kernel), 0 (portable slow loop), or -1 when scratch memory ran out (y then incomplete). */
int wk_gemm_bf16(float *y, const float *x, const uint16_t *W, int n, int in, int out);
/* The oracle: double-accumulated dot products of the bf16-rounded x with W. */
void wk_gemm_bf16_ref(float *y, const float *x, const uint16_t *W, int n, int in, int out);
/* 1 when wk_gemm_bf16 runs the vdpbf16ps kernel (built with AVX512-BF16). */
int wk_gemm_bf16_native(void);
#endif
