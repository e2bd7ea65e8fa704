/*
 * vexp.h — exp(x) for x <= 0 written so loops that call it vectorize (no calls, no
 * branches): Cephes' expf polynomial after a round-to-nearest range reduction.
 * Relative error < 2e-7 on x <= 0; exactly 0 below -87; NaN stays NaN.
 */
#ifndef WK_VEXP_H
#define WK_VEXP_H
#include <stdint.h>
#include <string.h>

static inline float wk_vexp_neg(float x) {
    float xc = x > -87.0f ? x : -87.0f; /* NaN too: keeps the int conversion defined */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = x < -87.0f ? 0.0f : p * scale;
    return x == x ? y : x;
}
#endif
