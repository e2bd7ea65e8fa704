/*
 * gemm_bf16.h — y = x·Wᵀ with bf16 W and x rounded to bf16 (opt-in fast prefill,
 * wick_model_opts.fast_bf16). gemm_bf16.c holds the run-time CPU detection, the
 * AVX512-BF16 kernel and the naive reference; gemm_amx.c the AMX tile kernel with
 * its pre-packed weight layout.
 */
#ifndef WK_GEMM_BF16_H
#define WK_GEMM_BF16_H
#include <stddef.h>
#include <stdint.h>

/* The bf16 kernel this CPU runs, detected once at run time (cpuid, XCR0, and for AMX the Linux
 * permission arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)) and logged once: WK_BF16_AMX (tiles),
 * WK_BF16_AVX512 (vdpbf16ps, CPUs without AMX), WK_BF16_NONE (exact fp32 paths stay; also when
 * Linux refuses AMX, as that CPU's vdpbf16ps loses to fp32). WICK_CPU_AMX=0 in the environment
 * picks WK_BF16_AVX512 on an AMX CPU (for comparisons). */
enum { WK_BF16_NONE = 0, WK_BF16_AVX512 = 1, WK_BF16_AMX = 2 };
int wk_gemm_bf16_level(void);
/* 1 when wk_gemm_bf16 runs a bf16 kernel (level above WK_BF16_NONE). */
int wk_gemm_bf16_native(void);

/* y[n,out] = bf16(x)[n,in] · W[out,in]ᵀ, float accumulation, OpenMP threads, on the best kernel
 * of wk_gemm_bf16_level (AMX: W packed per column panel on the fly). Returns 2 (AMX), 1
 * (AVX512-BF16), 0 (portable slow loop), or -1 when scratch memory ran out (y then incomplete). */
int wk_gemm_bf16(float *y, const float *x, const uint16_t *W, int n, int in, int out);
/* The oracle: double-accumulated dot products of the bf16-rounded x with W. */
void wk_gemm_bf16_ref(float *y, const float *x, const uint16_t *W, int n, int in, int out);

/* AVX512-BF16 kernel alone (wk_gemm_bf16 dispatches here below AMX); same contract, returns 1 or -1. */
int wk_gemm_bf16_avx512(float *y, const float *x, const uint16_t *W, int n, int in, int out);

/* AMX weight layout: W [out,in] zero-padded to [out32, in32] (multiples of 32) and cut into
 * 16-column x 32-k tiles of 16 rows (k pairs) x 16 columns x 2 bf16 (the VNNI pairs TDPBF16PS
 * reads), tile (j, kb) at element ((j * in32/32) + kb) * 512; element (p, c, e) of a tile is
 * W[16j + c][32kb + 2p + e]. Elements of the packed copy: */
size_t wk_gemm_amx_packed_elems(int in, int out);
/* Packs W into dst (wk_gemm_amx_packed_elems elements); plain C, runs on any CPU. */
void wk_gemm_amx_pack(uint16_t *dst, const uint16_t *W, int in, int out);
/* y[n,out] = bf16(x)[n,in] · Wᵀ (+ bias[out] when bias) with Wp packed by wk_gemm_amx_pack,
 * on AMX tiles (OpenMP threads over 32-row x 32-column blocks). Returns 2, 0 when this CPU has
 * no usable AMX (nothing written), -1 when scratch memory ran out. */
int wk_gemm_amx(float *y, const float *x, const uint16_t *Wp, const float *bias, int n, int in, int out);
/* Same product from unpacked W: each thread packs the 32-column panels it computes. */
int wk_gemm_amx_unpacked(float *y, const float *x, const uint16_t *W, int n, int in, int out);
/* Detection helpers for gemm_bf16.c: 1 when cpuid reports AMX-TILE and AMX-BF16; 1 when
 * Linux grants this process the tile data state (asked once). */
int wk_amx_cpuid(void);
int wk_amx_request(void);
#endif
