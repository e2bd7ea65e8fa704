/*
 * cpu_common.h — memory and cache helpers shared by the CPU backends.
 */
#ifndef WK_CPU_COMMON_H
#define WK_CPU_COMMON_H
#include "backend/backend.h"

void *wk_cpu_alloc(wk_backend *be, size_t bytes);
void wk_cpu_free(wk_backend *be, void *p);
void wk_cpu_copy(wk_backend *be, void *dst, const void *src, size_t bytes);
void wk_cpu_sync(wk_backend *be);
void wk_cpu_kv_store(wk_backend *be, float *kc, float *vc, const float *k_new, const float *v_new, int n, int pos0,
                     const int32_t *pos, int Hk, int D, int cap);
/* Rotates pairs (j, j+D/2) of x[n, nh, D] by the angle pos[i]*inv_freq[j] (HF rotate_half layout);
 * inverse = 1 rotates by the negative angle, which is RoPE's backward (the transpose). */
void wk_cpu_rope_rotate(float *x, const int32_t *pos, int n, int nh, int D, const float *inv_freq, int inverse);
/* lora_seg of the fast CPU backend (lora_seg_cpu.c): small segments fused, large ones via sgemm. */
void wk_cpu_lora_seg(wk_backend *be, float *y, const float *x, int n, int in, int out, int nseg, const int *seg,
                     const float *const *A, const float *const *B, const int *r, const float *scale, float *tmp);
/* lora_seg16 of the fast CPU backend: the small segments read the bf16 copies where given. */
void wk_cpu_lora_seg16(wk_backend *be, float *y, const float *x, int n, int in, int out, int nseg, const int *seg,
                       const float *const *A, const float *const *B, const uint16_t *const *A16,
                       const uint16_t *const *B16, const int *r, const float *scale, float *tmp);
#endif
