/*
 * quant_ref.c — reference dequantizers and quantizers for ggml's block formats
 * (layouts in quant.h). Written to follow ggml-quants.c's *_ref functions operation
 * by operation so results are bit-identical; FMA contraction is switched off here
 * because ggml's reference is specified without it.
 */
#pragma GCC optimize("fp-contract=off")
#include "quant.h"
#include <math.h>
#include <strings.h>

typedef struct {
    const char *name;
    int block, bytes;
} qtraits;

static const qtraits g_traits[WK_Q_TYPE_LIMIT] = {
    [WK_Q_F32] = {"F32", 1, 4},         [WK_Q_F16] = {"F16", 1, 2},
    [WK_Q_Q4_0] = {"Q4_0", 32, 18},     [WK_Q_Q4_1] = {"Q4_1", 32, 20},
    [WK_Q_Q5_0] = {"Q5_0", 32, 22},     [WK_Q_Q5_1] = {"Q5_1", 32, 24},
    [WK_Q_Q8_0] = {"Q8_0", 32, 34},     [WK_Q_Q2_K] = {"Q2_K", 256, 84},
    [WK_Q_Q3_K] = {"Q3_K", 256, 110},   [WK_Q_Q4_K] = {"Q4_K", 256, 144},
    [WK_Q_Q5_K] = {"Q5_K", 256, 176},   [WK_Q_Q6_K] = {"Q6_K", 256, 210},
    [WK_Q_Q8_K] = {"Q8_K", 256, 292},   [WK_Q_IQ2_XXS] = {"IQ2_XXS", 256, 66},
    [WK_Q_IQ2_XS] = {"IQ2_XS", 256, 74}, [WK_Q_IQ3_XXS] = {"IQ3_XXS", 256, 98},
    [WK_Q_IQ1_S] = {"IQ1_S", 256, 50},  [WK_Q_IQ4_NL] = {"IQ4_NL", 32, 18},
    [WK_Q_IQ3_S] = {"IQ3_S", 256, 110}, [WK_Q_IQ2_S] = {"IQ2_S", 256, 82},
    [WK_Q_IQ4_XS] = {"IQ4_XS", 256, 136}, [WK_Q_I8] = {"I8", 1, 1},
    [WK_Q_I16] = {"I16", 1, 2},         [WK_Q_I32] = {"I32", 1, 4},
    [WK_Q_I64] = {"I64", 1, 8},         [WK_Q_F64] = {"F64", 1, 8},
    [WK_Q_IQ1_M] = {"IQ1_M", 256, 56},  [WK_Q_BF16] = {"BF16", 1, 2},
    [WK_Q_TQ1_0] = {"TQ1_0", 256, 54},  [WK_Q_TQ2_0] = {"TQ2_0", 256, 66},
    [WK_Q_MXFP4] = {"MXFP4", 32, 17},
};

const char *wk_qtype_name(int t) { return (t >= 0 && t < WK_Q_TYPE_LIMIT) ? g_traits[t].name : NULL; }
int wk_qtype_block(int t) { return wk_qtype_name(t) ? g_traits[t].block : 0; }
int wk_qtype_bytes(int t) { return wk_qtype_name(t) ? g_traits[t].bytes : 0; }

bool wk_qtype_parse(const char *s, wk_qtype *t) {
    for (int i = 0; i < WK_Q_TYPE_LIMIT; i++)
        if (g_traits[i].name && strcasecmp(s, g_traits[i].name) == 0) {
            *t = (wk_qtype)i;
            return true;
        }
    return false;
}

bool wk_qtype_can_dequant(int t) {
    switch (t) {
    case WK_Q_F32: case WK_Q_F16: case WK_Q_BF16: case WK_Q_Q4_0: case WK_Q_Q4_1: case WK_Q_Q5_0:
    case WK_Q_Q5_1: case WK_Q_Q8_0: case WK_Q_Q4_K: case WK_Q_Q5_K: case WK_Q_Q6_K: return true;
    default: return false;
    }
}

bool wk_qtype_can_quantize(int t) {
    return wk_qtype_can_dequant(t) && t != WK_Q_Q5_K && t != WK_Q_Q6_K;
}

size_t wk_qtype_row_bytes(int t, int64_t n) {
    int bs = wk_qtype_block(t);
    if (bs == 0 || n < 0 || n % bs) return 0;
    return (size_t)(n / bs) * (size_t)wk_qtype_bytes(t);
}

static inline float h2f(const uint8_t *p) { return wk_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static inline void f2h(uint8_t *p, float f) {
    uint16_t h = wk_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}
static inline uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

/* ------------------------------------------------------------ 32-blocks */
static void dq_q4_0(const uint8_t *b, float *y) {
    float d = h2f(b);
    for (int j = 0; j < 16; j++) {
        y[j] = ((b[2 + j] & 0x0F) - 8) * d;
        y[j + 16] = ((b[2 + j] >> 4) - 8) * d;
    }
}
static void dq_q4_1(const uint8_t *b, float *y) {
    float d = h2f(b), m = h2f(b + 2);
    for (int j = 0; j < 16; j++) {
        y[j] = (b[4 + j] & 0x0F) * d + m;
        y[j + 16] = (b[4 + j] >> 4) * d + m;
    }
}
static void dq_q5(const uint8_t *b, float *y, bool has_min) {
    float d = h2f(b), m = has_min ? h2f(b + 2) : 0;
    const uint8_t *p = b + (has_min ? 4 : 2);
    uint32_t qh = rd32(p);
    const uint8_t *qs = p + 4;
    for (int j = 0; j < 16; j++) {
        int x0 = (qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10);
        int x1 = (qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
        if (has_min) {
            y[j] = x0 * d + m;
            y[j + 16] = x1 * d + m;
        } else {
            y[j] = (x0 - 16) * d;
            y[j + 16] = (x1 - 16) * d;
        }
    }
}
static void dq_q8_0(const uint8_t *b, float *y) {
    float d = h2f(b);
    for (int j = 0; j < 32; j++) y[j] = (int8_t)b[2 + j] * d;
}

/* ------------------------------------------------------------ K-quants */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}
static void dq_q4_k(const uint8_t *b, float *y) {
    float d = h2f(b), min = h2f(b + 2);
    const uint8_t *sc = b + 4, *q = b + 16;
    for (int j = 0, is = 0; j < WK_QK_K; j += 64, is += 2, q += 32) {
        uint8_t s, m;
        scale_min_k4(is, sc, &s, &m);
        float d1 = d * s, m1 = min * m;
        scale_min_k4(is + 1, sc, &s, &m);
        float d2 = d * s, m2 = min * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
    }
}
static void dq_q5_k(const uint8_t *b, float *y) {
    float d = h2f(b), min = h2f(b + 2);
    const uint8_t *sc = b + 4, *qh = b + 16, *ql = b + 48;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < WK_QK_K; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
        uint8_t s, m;
        scale_min_k4(is, sc, &s, &m);
        float d1 = d * s, m1 = min * m;
        scale_min_k4(is + 1, sc, &s, &m);
        float d2 = d * s, m2 = min * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
}
static void dq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = h2f(b + 208);
    for (int n = 0; n < WK_QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int8_t)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = (int8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * sc[is] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
    }
}

wick_status wk_dequant_row(int t, const void *src, float *dst, int64_t n) {
    if (!wk_qtype_can_dequant(t)) return wk_err(WICK_EUNSUPPORTED, "dequantize: type %s not supported", wk_qtype_name(t) ? wk_qtype_name(t) : "?");
    int bs = wk_qtype_block(t), nb = wk_qtype_bytes(t);
    if (n % bs) return wk_err(WICK_EINVAL, "dequantize %s: %lld elements is not a multiple of %d", wk_qtype_name(t), (long long)n, bs);
    const uint8_t *b = src;
    if (t == WK_Q_F32) { memcpy(dst, src, (size_t)n * 4); return WICK_OK; }
    for (int64_t i = 0; i < n / bs; i++, b += nb) {
        float *y = dst + i * bs;
        switch (t) {
        case WK_Q_F16: *y = h2f(b); break;
        case WK_Q_BF16: *y = wk_bf16_to_f32((uint16_t)(b[0] | b[1] << 8)); break;
        case WK_Q_Q4_0: dq_q4_0(b, y); break;
        case WK_Q_Q4_1: dq_q4_1(b, y); break;
        case WK_Q_Q5_0: dq_q5(b, y, false); break;
        case WK_Q_Q5_1: dq_q5(b, y, true); break;
        case WK_Q_Q8_0: dq_q8_0(b, y); break;
        case WK_Q_Q4_K: dq_q4_k(b, y); break;
        case WK_Q_Q5_K: dq_q5_k(b, y); break;
        default: dq_q6_k(b, y); break;
        }
    }
    return WICK_OK;
}

/* ------------------------------------------------------------ quantizers */
static void q_q8_0(const float *x, uint8_t *b) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / ((1 << 7) - 1), id = d ? 1.0f / d : 0.0f;
    f2h(b, d);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}
/* Q4_0 (qmax 8, 4 bits) and Q5_0 (qmax 16, 5 bits): d = signed absmax / -qmax. */
static void q_sym(const float *x, uint8_t *b, int qmax) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++)
        if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    float d = max / -qmax, id = d ? 1.0f / d : 0.0f;
    f2h(b, d);
    uint32_t qh = 0;
    uint8_t *qs = b + (qmax == 8 ? 2 : 6);
    for (int j = 0; j < 16; j++) {
        float x0 = x[j] * id, x1 = x[16 + j] * id;
        int xi0 = WK_MIN(2 * qmax - 1, (int8_t)(x0 + (qmax + 0.5f)));
        int xi1 = WK_MIN(2 * qmax - 1, (int8_t)(x1 + (qmax + 0.5f)));
        qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
        qh |= ((xi0 & 0x10u) >> 4) << j;
        qh |= ((xi1 & 0x10u) >> 4) << (j + 16);
    }
    if (qmax == 16) memcpy(b + 2, &qh, 4);
}
/* Q4_1 (levels 15) and Q5_1 (levels 31): d = (max-min)/levels, m = min. */
static void q_asym(const float *x, uint8_t *b, int levels) {
    float min = INFINITY, max = -INFINITY;
    for (int j = 0; j < 32; j++) { min = fminf(min, x[j]); max = fmaxf(max, x[j]); }
    float d = (max - min) / levels, id = d ? 1.0f / d : 0.0f;
    f2h(b, d);
    f2h(b + 2, min);
    uint32_t qh = 0;
    uint8_t *qs = b + (levels == 15 ? 4 : 8);
    for (int j = 0; j < 16; j++) {
        float x0 = (x[j] - min) * id, x1 = (x[16 + j] - min) * id;
        int xi0, xi1;
        if (levels == 15) {
            xi0 = WK_MIN(15, (int8_t)(x0 + 0.5f));
            xi1 = WK_MIN(15, (int8_t)(x1 + 0.5f));
        } else {
            xi0 = (uint8_t)(x0 + 0.5f);
            xi1 = (uint8_t)(x1 + 0.5f);
        }
        qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
        qh |= ((xi0 & 0x10u) >> 4) << j;
        qh |= ((xi1 & 0x10u) >> 4) << (j + 16);
    }
    if (levels == 31) memcpy(b + 4, &qh, 4);
}

/* ggml's make_qkx2_quants (n = 32, use_mad = false): weighted least-squares search for
 * scale and min over nstep candidate scales. Returns the scale; *the_min = -min. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0], sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best_error = 0;
    for (int i = 0; i < n; ++i) {
        int l = wk_nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)WK_MAX(0, WK_MIN(nmax, l));
        float diff = scale * L[i] + min - x[i];
        best_error += weights[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = WK_MAX(0, WK_MIN(nmax, wk_nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                cur_error += weights[i] * (diff * diff);
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Packs 6-bit scale ls and min lm of sub-block j into the 12-byte K-quant scales. */
static void pack_scale_min_k4(uint8_t *s, int j, uint8_t ls, uint8_t lm) {
    if (j < 4) {
        s[j] = ls;
        s[j + 4] = lm;
    } else {
        s[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        s[j - 4] |= (uint8_t)((ls >> 4) << 6);
        s[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

/* ggml's quantize_row_q4_K_ref for one 256-block. */
static void q_q4_k(const float *x, uint8_t *b) {
    uint8_t L[WK_QK_K], Laux[32], *sc = b + 4, *q = b + 16;
    float weights[32], mins[8], scales[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f, inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(sc, 0, 12);
    for (int j = 0; j < 8; ++j) {
        uint8_t ls = (uint8_t)wk_nearest_int(inv_scale * scales[j]), lm = (uint8_t)wk_nearest_int(inv_min * mins[j]);
        pack_scale_min_k4(sc, j, WK_MIN(63, ls), WK_MIN(63, lm));
    }
    f2h(b, max_scale / 63.f);
    f2h(b + 2, max_min / 63.f);
    for (int j = 0; j < 8; ++j) {
        uint8_t s, m;
        scale_min_k4(j, sc, &s, &m);
        const float d = h2f(b) * s;
        if (!d) continue;
        const float dm = h2f(b + 2) * m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = wk_nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)WK_MAX(0, WK_MIN(15, l));
        }
    }
    for (int j = 0; j < WK_QK_K; j += 64, q += 32)
        for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
}

wick_status wk_quantize_row(int t, const float *src, void *dst, int64_t n) {
    if (!wk_qtype_can_quantize(t)) return wk_err(WICK_EUNSUPPORTED, "quantize: type %s not supported", wk_qtype_name(t) ? wk_qtype_name(t) : "?");
    int bs = wk_qtype_block(t), nb = wk_qtype_bytes(t);
    if (n % bs) return wk_err(WICK_EINVAL, "quantize %s: %lld elements is not a multiple of %d", wk_qtype_name(t), (long long)n, bs);
    uint8_t *b = dst;
    if (t == WK_Q_F32) { memcpy(dst, src, (size_t)n * 4); return WICK_OK; }
    for (int64_t i = 0; i < n / bs; i++, b += nb) {
        const float *x = src + i * bs;
        switch (t) {
        case WK_Q_F16: f2h(b, *x); break;
        case WK_Q_BF16: { uint16_t h = wk_f32_to_bf16(*x); b[0] = (uint8_t)h; b[1] = (uint8_t)(h >> 8); break; }
        case WK_Q_Q4_0: q_sym(x, b, 8); break;
        case WK_Q_Q5_0: q_sym(x, b, 16); break;
        case WK_Q_Q4_1: q_asym(x, b, 15); break;
        case WK_Q_Q5_1: q_asym(x, b, 31); break;
        case WK_Q_Q8_0: q_q8_0(x, b); break;
        default: q_q4_k(x, b); break;
        }
    }
    return WICK_OK;
}
