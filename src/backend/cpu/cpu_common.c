/*
 * cpu_common.c — host memory and KV-cache stores for the CPU backends.
 */
#include "backend/cpu/cpu_common.h"

#include <math.h>

void *wk_cpu_alloc(wk_backend *be, size_t bytes) { return wk_malloc(bytes, "cpu buffer"); }
void wk_cpu_free(wk_backend *be, void *p) { wk_free(p); }
void wk_cpu_copy(wk_backend *be, void *dst, const void *src, size_t bytes) {
    if (dst != src) memcpy(dst, src, bytes);
}
void wk_cpu_sync(wk_backend *be) {}

void wk_cpu_kv_store(wk_backend *be, float *kc, float *vc, const float *k_new, const float *v_new, int n, int pos0,
                     const int32_t *pos, int Hk, int D, int cap) {
    for (int i = 0; i < n; i++)
        for (int h = 0; h < Hk; h++) {
            size_t dst = ((size_t)h * cap + (size_t)(pos0 + i)) * D, src = ((size_t)i * Hk + h) * D;
            memcpy(kc + dst, k_new + src, sizeof(float) * D);
            memcpy(vc + dst, v_new + src, sizeof(float) * D);
        }
}

void wk_cpu_rope_rotate(float *x, const int32_t *pos, int n, int nh, int D, const float *inv_freq, int inverse) {
    int half = D / 2;
    float sgn = inverse ? -1.f : 1.f;
#pragma omp parallel for schedule(static) if (n > 4)
    for (int i = 0; i < n; i++) {
        float cs[512], sn[512];
        for (int j = 0; j < half; j++) {
            float ang = (float)pos[i] * inv_freq[j];
            cs[j] = cosf(ang);
            sn[j] = sgn * sinf(ang);
        }
        for (int h = 0; h < nh; h++) {
            float *v = x + ((size_t)i * nh + h) * D;
            for (int j = 0; j < half; j++) {
                float a = v[j], b = v[j + half];
                v[j] = a * cs[j] - b * sn[j];
                v[j + half] = b * cs[j] + a * sn[j];
            }
        }
    }
}
