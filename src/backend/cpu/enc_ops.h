/*
 * enc_ops.h — the encoder ops (LayerNorm, GELU, bidirectional masked attention) of
 * the CPU backends: ref_enc.c holds the readable reference versions, cpu_enc.c the
 * fast ones (vectorised loops, OpenMP threads). Signatures as in backend.h.
 */
#ifndef WK_ENC_OPS_H
#define WK_ENC_OPS_H
#include "backend/backend.h"

void wk_ref_layernorm(wk_backend *be, float *y, const float *x, const float *xb, const float *r, const float *w,
                      const float *b, int n, int dim, float eps);
void wk_ref_gelu(wk_backend *be, float *y, const float *x, const float *xb, size_t n, int dim);
void wk_ref_attention_bidir(wk_backend *be, float *out, const float *q, const float *k, const float *v,
                            const float *bias, const int32_t *mask, int B, int T, int H, int D, int ld, int ldo,
                            float scale);

void wk_cpu_layernorm(wk_backend *be, float *y, const float *x, const float *xb, const float *r, const float *w,
                      const float *b, int n, int dim, float eps);
void wk_cpu_gelu(wk_backend *be, float *y, const float *x, const float *xb, size_t n, int dim);
void wk_cpu_attention_bidir(wk_backend *be, float *out, const float *q, const float *k, const float *v,
                            const float *bias, const int32_t *mask, int B, int T, int H, int D, int ld, int ldo,
                            float scale);
#endif
