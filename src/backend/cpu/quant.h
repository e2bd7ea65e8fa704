/*
 * quant.h — ggml's block-quantized weight formats on the CPU: type traits,
 * reference (scalar, readable) dequantizers and quantizers, and the fast
 * quantized matmul that keeps weights quantized and dequantizes inside the kernel.
 *
 * Block layouts (little-endian, exactly ggml's; "f16" = IEEE half; QK_K = 256):
 *   Q4_0  32 el / 18 B: f16 d; u8 qs[16]       w[i] = d*((qs[i]&15)-8), w[i+16] = d*((qs[i]>>4)-8)
 *   Q4_1  32 el / 20 B: f16 d, m; u8 qs[16]    w = d*q + m (q as in Q4_0 without the -8)
 *   Q5_0  32 el / 22 B: f16 d; u32 qh; qs[16]  q |= bit j of qh << 4 (elements 0..15), bit j+16 (16..31); w = d*(q-16)
 *   Q5_1  32 el / 24 B: f16 d, m; u32 qh; qs   w = d*q + m
 *   Q8_0  32 el / 34 B: f16 d; i8 qs[32]       w = d*q
 *   Q4_K 256 el /144 B: f16 d, dmin; u8 scales[12] (8 x 6-bit scale + 6-bit min); qs[128]
 *                       chunk c of 64 = qs[32c..32c+31]: low nibbles sub-block 2c, high nibbles 2c+1;
 *                       w = d*sc_j*q - dmin*m_j
 *   Q5_K 256 el /176 B: f16 d, dmin; scales[12]; qh[32]; qs[128]  (bit 2c / 2c+1 of qh[l] is the 5th bit)
 *   Q6_K 256 el /210 B: ql[128]; qh[64]; i8 scales[16]; f16 d      w = d*sc[16-block]*(q-32)
 */
#ifndef WK_QUANT_H
#define WK_QUANT_H
#include "wk.h"

/* ggml_type numbering (the values stored in GGUF tensor infos). */
typedef enum {
    WK_Q_F32 = 0, WK_Q_F16 = 1, WK_Q_Q4_0 = 2, WK_Q_Q4_1 = 3, WK_Q_Q5_0 = 6, WK_Q_Q5_1 = 7,
    WK_Q_Q8_0 = 8, WK_Q_Q8_1 = 9, WK_Q_Q2_K = 10, WK_Q_Q3_K = 11, WK_Q_Q4_K = 12, WK_Q_Q5_K = 13,
    WK_Q_Q6_K = 14, WK_Q_Q8_K = 15, WK_Q_IQ2_XXS = 16, WK_Q_IQ2_XS = 17, WK_Q_IQ3_XXS = 18,
    WK_Q_IQ1_S = 19, WK_Q_IQ4_NL = 20, WK_Q_IQ3_S = 21, WK_Q_IQ2_S = 22, WK_Q_IQ4_XS = 23,
    WK_Q_I8 = 24, WK_Q_I16 = 25, WK_Q_I32 = 26, WK_Q_I64 = 27, WK_Q_F64 = 28, WK_Q_IQ1_M = 29,
    WK_Q_BF16 = 30, WK_Q_TQ1_0 = 34, WK_Q_TQ2_0 = 35, WK_Q_MXFP4 = 39,
    WK_Q_TYPE_LIMIT = 40
} wk_qtype;

#define WK_QK_K 256

/* Name ("Q4_K"), or NULL for a value that is not a known ggml type. */
const char *wk_qtype_name(int t);
/* Parses "q4_k"/"Q4_K"/"f16"... into *t; returns false when unknown. */
bool wk_qtype_parse(const char *s, wk_qtype *t);
/* Elements per block and bytes per block; 0 for an unknown type. */
int wk_qtype_block(int t);
int wk_qtype_bytes(int t);
/* True when wk_dequant_row handles t (F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K). */
bool wk_qtype_can_dequant(int t);
/* True when wk_quantize_row handles t (F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K). */
bool wk_qtype_can_quantize(int t);
/* Bytes of a row of n elements, or 0 when n is not a multiple of the block size. */
size_t wk_qtype_row_bytes(int t, int64_t n);

/* Reference dequantization of n elements (n a multiple of the block). Scalar, exactly
 * ggml's dequantize_row_* (same operation order, no FMA contraction). */
wick_status wk_dequant_row(int t, const void *src, float *dst, int64_t n);
/* Reference quantization of n floats, ggml's quantize_row_*_ref (round-to-nearest as ggml). */
wick_status wk_quantize_row(int t, const float *src, void *dst, int64_t n);

/* y[n,out] = x[n,in] · Wᵀ with W [out,in] stored as type t (rows of wk_qtype_row_bytes(t,in)).
 * Q8_0, Q4_0, Q4_1, Q4_K, Q6_K: x is quantized to 8 bits per 32-block and int8 dot products
 * (AVX512-VNNI / AVX2, scalar fallback) run on the packed weights. BF16: fp32 FMA on the
 * widened weights. Other dequantizable types: per-row dequantization then an fp32 dot.
 * OpenMP over output rows, wick_get_threads() threads. From n >= WK_QMM_GEMM_MIN_N
 * (prefill) tiles of W are dequantized to fp32 and multiplied with BLAS sgemm. */
#define WK_QMM_GEMM_MIN_N 16
wick_status wk_qmatmul(float *y, const float *x, int64_t n, int64_t in, const void *w, int t, int64_t out);

/* Reference for wk_qmatmul: dequantizes each row with wk_dequant_row, double-accumulated dot. */
wick_status wk_qmatmul_ref(float *y, const float *x, int64_t n, int64_t in, const void *w, int t, int64_t out);

/* The transposed product y[n,in] (=|+=) x[n,out] · W, W [out,in] of type t: the gradient
 * of x·Wᵀ with respect to x (QLoRA backward through a frozen quantized base). Tiles of W
 * are dequantized to fp32 (in parallel) and multiplied with BLAS sgemm. accumulate adds into y. */
wick_status wk_qmatmul_t(float *y, const float *x, int64_t n, int64_t out, const void *w, int t, int64_t in, int accumulate);
/* Reference for wk_qmatmul_t: dequantized weights, double-accumulated sums. */
wick_status wk_qmatmul_t_ref(float *y, const float *x, int64_t n, int64_t out, const void *w, int t, int64_t in,
                             int accumulate);

/* ggml's nearest_int: round half to even via the 1.5*2^23 trick (|v| < 2^22). */
static inline int wk_nearest_int(float v) {
    float val = v + 12582912.f;
    int i;
    memcpy(&i, &val, 4);
    return (i & 0x007fffff) - 0x00400000;
}
#endif
