/*
 * lora_seg.c — the segmented LoRA op (backend.h: lora_seg) written once over
 * matmul_f32: each segment of rows is one shrink and one expand. Backends with
 * a fused multi-adapter kernel (CUDA) provide their own.
 */
#include "backend/backend.h"

void wk_lora_seg_generic(wk_backend *be, float *y, const float *x, int n, int in, int out, int nseg, const int *seg,
                         const float *const *A, const float *const *B, const int *r, const float *scale, float *tmp) {
    (void)n;
    for (int g = 0; g < nseg; g++) {
        int rows = seg[g + 1] - seg[g];
        if (rows <= 0 || !A[g] || r[g] <= 0 || scale[g] == 0.f) continue;
        const float *xs = x + (size_t)seg[g] * in;
        be->matmul_f32(be, tmp, xs, A[g], rows, in, r[g], 1.f, 0);
        be->matmul_f32(be, y + (size_t)seg[g] * out, tmp, B[g], rows, r[g], out, scale[g], 1);
    }
}

void wk_lora_tiles16(uint16_t *dst, const float *B, int out, int r) {
    for (int ob = 0; ob < out; ob += 16) {
        int w = out - ob < 16 ? out - ob : 16;
        uint16_t *tile = dst + (size_t)ob * r;
        for (int j = 0; j < r; j++)
            for (int l = 0; l < w; l++) tile[(size_t)j * w + l] = wk_f32_to_bf16(B[(size_t)(ob + l) * r + j]);
    }
}
