/*
 * test_quant.c — ggml block formats: reference dequantization against values
 * computed here element by element from the format definitions (hand-built blocks
 * whose scales are exact binary fractions, so results compare bit for bit),
 * quantizer round trips and ggml rounding rules, and the fast quantized matmul
 * against dequantize + naive dot.
 *
 * Kernel tolerance: Q8_0/Q4_0/Q4_1/Q4_K/Q6_K quantize x to 8 bits per 32-block
 * (d_x = absmax/127, |x − x̂| ≤ d_x/2), so |y − y_ref| ≤ Σ_k |w_k|·d_x(k)/2, plus fp32
 * accumulation slack 1e-5·Σ|w_k x_k|. Other types: 1e-5·Σ|w_k x_k|.
 */
#include "t.h"
#include "backend/cpu/quant.h"
#include <stdint.h>

static uint64_t g_rng = 0x1234567;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}
static float frand(void) { return (float)((rnd() & 0xffffff) / 16777216.0 * 2 - 1); }

/* f16 bit patterns of exact values */
#define H_0_5 0x3800
#define H_0_25 0x3400
#define H_M1 0xBC00
#define H_0_125 0x3000
static void put16(uint8_t *p, uint16_t h) { p[0] = (uint8_t)h; p[1] = (uint8_t)(h >> 8); }

/* Expected values, one element at a time, straight from the layout definitions. */
static float exp_q4_0(const uint8_t *b, int i) {
    int q = i < 16 ? (b[2 + i] & 15) : (b[2 + i - 16] >> 4);
    return 0.25f * (q - 8);
}
static float exp_q4_1(const uint8_t *b, int i) {
    int q = i < 16 ? (b[4 + i] & 15) : (b[4 + i - 16] >> 4);
    return 0.5f * q - 1.0f;
}
static int q5_quant(const uint8_t *qh, const uint8_t *qs, int i) {
    uint32_t h = (uint32_t)qh[0] | qh[1] << 8 | qh[2] << 16 | (uint32_t)qh[3] << 24;
    int lo = i < 16 ? (qs[i] & 15) : (qs[i - 16] >> 4);
    return lo | (int)((h >> i) & 1) << 4;
}
/* K-quant 6-bit (scale, min) of sub-block j from the 12 scale bytes. */
static void k_sm(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) { *sc = s[j] & 63; *m = s[j + 4] & 63; }
    else { *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4; *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4; }
}
static float exp_q4_k(const uint8_t *b, int i) {
    int j = i / 32, c = i / 64, sc, m;
    k_sm(b + 4, j, &sc, &m);
    uint8_t byte = b[16 + 32 * c + i % 32];
    int q = (j % 2 == 0) ? (byte & 15) : (byte >> 4);
    return 0.5f * sc * q - 0.25f * m;
}
static float exp_q5_k(const uint8_t *b, int i) {
    int j = i / 32, c = i / 64, sc, m;
    k_sm(b + 4, j, &sc, &m);
    uint8_t byte = b[48 + 32 * c + i % 32];
    int q = ((j % 2 == 0) ? (byte & 15) : (byte >> 4)) | ((b[16 + i % 32] >> j) & 1) << 4;
    return 0.5f * sc * q - 0.25f * m;
}
/* Q6_K: half h = i/128; within it l = i%128, group g = l/32 (0..3), lane k = l%32.
 * low 4 bits: ql[64h + k + 32*(g&1)] (low nibble for g<2, high for g>=2);
 * high 2 bits: qh[32h + k] >> 2g; scale sc[8h + k/16 + 2g]. */
static float exp_q6_k(const uint8_t *b, int i) {
    int h = i / 128, l = i % 128, g = l / 32, k = l % 32;
    uint8_t lb = b[64 * h + k + 32 * (g & 1)];
    int lo = g < 2 ? (lb & 15) : (lb >> 4), hi = (b[128 + 32 * h + k] >> (2 * g)) & 3;
    int8_t sc = (int8_t)b[192 + 8 * h + k / 16 + 2 * g];
    return 0.125f * sc * ((lo | hi << 4) - 32);
}

static void fill_rand(uint8_t *p, int n) { for (int i = 0; i < n; i++) p[i] = (uint8_t)rnd(); }

static void check_block(int t, const uint8_t *b, float (*expf_)(const uint8_t *, int), const char *what) {
    int n = wk_qtype_block(t);
    float got[256], want[256];
    CHECK_OK(wk_dequant_row(t, b, got, n));
    for (int i = 0; i < n; i++) want[i] = expf_(b, i);
    int bad = -1;
    for (int i = 0; i < n && bad < 0; i++) if (memcmp(&got[i], &want[i], 4)) bad = i;
    CHECK(bad < 0, "%s element %d: got %g want %g", what, bad, bad >= 0 ? got[bad] : 0, bad >= 0 ? want[bad] : 0);
}

static float exp_q8_0(const uint8_t *b, int i) { return 0.5f * (int8_t)b[2 + i]; }
static float exp_q5_0(const uint8_t *b, int i) { return 0.25f * (q5_quant(b + 2, b + 6, i) - 16); }
static float exp_q5_1(const uint8_t *b, int i) { return 0.5f * q5_quant(b + 4, b + 8, i) - 1.0f; }

static void test_dequant_blocks(void) {
    uint8_t b[256];
    for (int rep = 0; rep < 20; rep++) {
        fill_rand(b, 34); put16(b, H_0_5); check_block(WK_Q_Q8_0, b, exp_q8_0, "Q8_0");
        fill_rand(b, 18); put16(b, H_0_25); check_block(WK_Q_Q4_0, b, exp_q4_0, "Q4_0");
        fill_rand(b, 20); put16(b, H_0_5); put16(b + 2, H_M1); check_block(WK_Q_Q4_1, b, exp_q4_1, "Q4_1");
        fill_rand(b, 22); put16(b, H_0_25); check_block(WK_Q_Q5_0, b, exp_q5_0, "Q5_0");
        fill_rand(b, 24); put16(b, H_0_5); put16(b + 2, H_M1); check_block(WK_Q_Q5_1, b, exp_q5_1, "Q5_1");
        fill_rand(b, 144); put16(b, H_0_5); put16(b + 2, H_0_25); check_block(WK_Q_Q4_K, b, exp_q4_k, "Q4_K");
        fill_rand(b, 176); put16(b, H_0_5); put16(b + 2, H_0_25); check_block(WK_Q_Q5_K, b, exp_q5_k, "Q5_K");
        fill_rand(b, 210); put16(b + 208, H_0_125); check_block(WK_Q_Q6_K, b, exp_q6_k, "Q6_K");
    }
    /* a fully specified Q4_K block: sub-block j has scale 10+j, min 60-j (j>=4 uses the split encoding) */
    uint8_t k[144] = {0};
    put16(k, H_0_5); put16(k + 2, H_0_25);
    for (int j = 0; j < 8; j++) {
        int sc = 10 + j * 7, m = 60 - j;
        if (j < 4) { k[4 + j] = (uint8_t)sc; k[8 + j] = (uint8_t)m; }
        else {
            k[4 + j + 4] = (uint8_t)((sc & 15) | (m & 15) << 4);
            k[4 + j - 4] |= (uint8_t)((sc >> 4) << 6);
            k[4 + j] |= (uint8_t)((m >> 4) << 6);
        }
    }
    for (int i = 0; i < 128; i++) k[16 + i] = (uint8_t)(i * 37);
    float y[256];
    CHECK_OK(wk_dequant_row(WK_Q_Q4_K, k, y, 256));
    /* element 200: chunk 3, sub-block 6 (low nibble of qs[96+8]=(104*37)&255=8 -> 8) */
    CHECK(y[200] == 0.5f * (10 + 6 * 7) * 8 - 0.25f * (60 - 6), "Q4_K element 200 = %g", y[200]);
    /* element 40: sub-block 1 (high nibble of qs[8] = 296&255=40 -> 2) */
    CHECK(y[40] == 0.5f * 17 * 2 - 0.25f * 59, "Q4_K element 40 = %g", y[40]);
    /* f16 / bf16 / f32 */
    uint16_t h[4] = {0x3C00, 0xC000, 0x7BFF, 0x0001};
    float f[4];
    CHECK_OK(wk_dequant_row(WK_Q_F16, h, f, 4));
    CHECK(f[0] == 1.f && f[1] == -2.f && f[2] == 65504.f && f[3] == 5.9604644775390625e-8f, "f16 %g %g %g %g", f[0], f[1], f[2], f[3]);
    uint16_t bf[2] = {0x3F80, 0xC0A0};
    CHECK_OK(wk_dequant_row(WK_Q_BF16, bf, f, 2));
    CHECK(f[0] == 1.f && f[1] == -5.f, "bf16 %g %g", f[0], f[1]);
    CHECK(wk_dequant_row(WK_Q_Q4_0, b, f, 33) == WICK_EINVAL, "partial block rejected");
    CHECK(wk_dequant_row(WK_Q_IQ2_XXS, b, f, 256) == WICK_EUNSUPPORTED, "IQ2 unsupported");
}

/* ggml rounding rules on hand-checked inputs. */
static void test_quantize_rules(void) {
    CHECK(wk_nearest_int(2.5f) == 2 && wk_nearest_int(3.5f) == 4 && wk_nearest_int(-2.5f) == -2, "nearest_int ties to even");
    float x[32];
    for (int i = 0; i < 32; i++) x[i] = (i - 16) * 0.25f; /* min -4, max 3.75 */
    uint8_t b[34];
    /* Q8_0: d = 4/127, q = roundf(x*127/4) (ties away from zero) */
    CHECK_OK(wk_quantize_row(WK_Q_Q8_0, x, b, 32));
    float d = wk_f16_to_f32((uint16_t)(b[0] | b[1] << 8));
    CHECK(d == wk_f16_to_f32(wk_f32_to_f16(4.f / 127)), "Q8_0 d %g", d);
    int okq = 1;
    for (int i = 0; i < 32; i++) okq &= (int8_t)b[2 + i] == (int)roundf(x[i] * (1.0f / (4.f / 127)));
    CHECK(okq && (int8_t)b[2] == -127, "Q8_0 quants, q[0]=%d", (int8_t)b[2]);
    /* Q4_0: max-magnitude element is -4 -> d = -4/-8 = 0.5, q = min(15, (int8)(x/0.5 + 8.5)) */
    CHECK_OK(wk_quantize_row(WK_Q_Q4_0, x, b, 32));
    CHECK(wk_f16_to_f32((uint16_t)(b[0] | b[1] << 8)) == 0.5f, "Q4_0 d");
    okq = 1;
    for (int i = 0; i < 16; i++) {
        int q0 = WK_MIN(15, (int8_t)(x[i] * 2 + 8.5f)), q1 = WK_MIN(15, (int8_t)(x[i + 16] * 2 + 8.5f));
        okq &= b[2 + i] == (q0 | q1 << 4);
    }
    CHECK(okq, "Q4_0 quants");
    /* Q4_1: d = 7.75/15, m = -4 */
    CHECK_OK(wk_quantize_row(WK_Q_Q4_1, x, b, 32));
    CHECK(wk_f16_to_f32((uint16_t)(b[2] | b[3] << 8)) == -4.f, "Q4_1 min");
    CHECK((b[4] & 15) == 0 && (b[4 + 15] >> 4) == 15, "Q4_1 extreme quants %d %d", b[4] & 15, b[19] >> 4);
}

/* Round trips: max error per element within the format's step. */
static void test_roundtrip(void) {
    enum { N = 1024 };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    for (int i = 0; i < N; i++) x[i] = frand() * (1 + (i % 97) * 0.05f);
    const int types[] = {WK_Q_F32, WK_Q_F16, WK_Q_BF16, WK_Q_Q8_0, WK_Q_Q4_0, WK_Q_Q4_1, WK_Q_Q5_0, WK_Q_Q5_1, WK_Q_Q4_K};
    /* bound on |x - y| / (block range): 8-bit 1/254, 4-bit ~1/15, 5-bit ~1/31, K 4-bit ~1/8 */
    const double rel[] = {0, 1e-3, 4e-3, 0.0045, 0.13, 0.07, 0.07, 0.035, 0.2};
    for (size_t k = 0; k < WK_ARRAY_LEN(types); k++) {
        int t = types[k], bs = wk_qtype_block(t);
        CHECK_OK(wk_quantize_row(t, x, q, N));
        CHECK_OK(wk_dequant_row(t, q, y, N));
        double worst = 0;
        for (int b0 = 0; b0 < N; b0 += bs) {
            float lo = INFINITY, hi = -INFINITY;
            for (int i = b0; i < b0 + bs; i++) { lo = fminf(lo, x[i]); hi = fmaxf(hi, x[i]); }
            float range = WK_MAX(fabsf(lo), fabsf(hi));
            for (int i = b0; i < b0 + bs; i++) worst = fmax(worst, fabs(x[i] - y[i]) / (bs == 1 ? fabsf(x[i]) + 1e-3 : range));
        }
        CHECK(worst <= rel[k], "%s round trip: worst relative error %g > %g", wk_qtype_name(t), worst, rel[k]);
    }
    CHECK(wk_quantize_row(WK_Q_Q6_K, x, q, 256) == WICK_EUNSUPPORTED, "no Q6_K quantizer");
}

/* Random weights of type t for out rows of in: quantized from floats, or random valid blocks. */
static uint8_t *make_weights(int t, int64_t out, int64_t in) {
    size_t rb = wk_qtype_row_bytes(t, in);
    uint8_t *w = malloc(rb * (size_t)out);
    float *row = malloc((size_t)in * sizeof(float));
    for (int64_t r = 0; r < out; r++) {
        if (wk_qtype_can_quantize(t)) {
            for (int64_t k = 0; k < in; k++) row[k] = frand() * 0.1f + (k % 7 == 0 ? 0.05f : 0);
            wk_quantize_row(t, row, w + r * rb, in);
        } else {
            fill_rand(w + r * rb, (int)rb);
            for (int64_t b = 0; b < in / 256; b++) {
                uint8_t *blk = w + r * rb + b * (size_t)wk_qtype_bytes(t);
                if (t == WK_Q_Q6_K) put16(blk + 208, wk_f32_to_f16(0.001f + 0.001f * (rnd() % 8)));
                else { put16(blk, wk_f32_to_f16(0.002f)); put16(blk + 2, wk_f32_to_f16(0.001f)); }
            }
        }
    }
    free(row);
    return w;
}

static void test_kernels(void) {
    const int types[] = {WK_Q_Q8_0, WK_Q_Q4_0, WK_Q_Q4_1, WK_Q_Q4_K, WK_Q_Q5_0, WK_Q_Q5_1,
                         WK_Q_Q5_K, WK_Q_Q6_K, WK_Q_F16, WK_Q_BF16, WK_Q_F32};
    const int64_t in = 768, out = 45, n = 7, nbig = WK_QMM_GEMM_MIN_N + 3;
    float *x = malloc(sizeof(float) * nbig * in), *y = malloc(sizeof(float) * nbig * out), *y1 = malloc(sizeof(float) * n * out);
    float *yr = malloc(sizeof(float) * nbig * out), *yg = malloc(sizeof(float) * nbig * out), *row = malloc(sizeof(float) * in);
    for (int64_t i = 0; i < nbig * in; i++) x[i] = frand() * (i % 5 == 0 ? 3.f : 1.f);
    for (size_t k = 0; k < WK_ARRAY_LEN(types); k++) {
        int t = types[k];
        bool xq = t == WK_Q_Q8_0 || t == WK_Q_Q4_0 || t == WK_Q_Q4_1 || t == WK_Q_Q4_K || t == WK_Q_Q6_K;
        uint8_t *w = make_weights(t, out, in);
        size_t rb = wk_qtype_row_bytes(t, in);
        CHECK_OK(wk_qmatmul_ref(yr, x, n, in, w, t, out));
        wick_set_threads(2);
        CHECK_OK(wk_qmatmul(y, x, n, in, w, t, out));
        wick_set_threads(1);
        CHECK_OK(wk_qmatmul(y1, x, 1, in, w, t, out)); /* matvec path, one thread */
        int bad = 0;
        for (int64_t r = 0; r < out; r++) {
            wk_dequant_row(t, w + r * rb, row, in);
            for (int64_t i = 0; i < n; i++) {
                double bound = 0, mag = 0;
                for (int64_t b = 0; b < in; b += 32) {
                    float amax = 0;
                    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[i * in + b + j]));
                    for (int j = 0; j < 32; j++) {
                        if (xq) bound += fabs(row[b + j]) * amax / 127 / 2;
                        mag += fabs(row[b + j] * x[i * in + b + j]);
                    }
                }
                bound += 1e-5 * mag + 1e-30;
                if (fabs(y[i * out + r] - yr[i * out + r]) > bound && bad++ < 3)
                    fprintf(stderr, "%s row %lld seq %lld: %g vs ref %g (bound %g)\n", wk_qtype_name(t), (long long)r,
                            (long long)i, y[i * out + r], yr[i * out + r], bound);
            }
            if (y1[r] != y[r] && bad++ < 3) fprintf(stderr, "%s row %lld: 1-thread matvec %g != 2-thread matmul %g\n",
                                                    wk_qtype_name(t), (long long)r, y1[r], y[r]);
        }
        CHECK(bad == 0, "%s kernel: %d outputs outside tolerance", wk_qtype_name(t), bad);
        /* x tiles of 4+3 rows above; 2 rows here must give the same bits (per-row accumulation order) */
        CHECK_OK(wk_qmatmul(y1, x, 2, in, w, t, out));
        CHECK(!memcmp(y1, y, sizeof(float) * 2 * out), "%s kernel: 2-row tile differs from the 4-row tile", wk_qtype_name(t));
        /* the dequantize + sgemm path (n >= WK_QMM_GEMM_MIN_N): x is not quantized, fp32 accumulation only */
        CHECK_OK(wk_qmatmul_ref(yr, x, nbig, in, w, t, out));
        CHECK_OK(wk_qmatmul(yg, x, nbig, in, w, t, out));
        double worst = 0;
        for (int64_t r = 0; r < out; r++) {
            wk_dequant_row(t, w + r * rb, row, in);
            for (int64_t i = 0; i < nbig; i++) {
                double mag = 0;
                for (int64_t k2 = 0; k2 < in; k2++) mag += fabs(row[k2] * x[i * in + k2]);
                worst = fmax(worst, fabs(yg[i * out + r] - yr[i * out + r]) / (mag + 1e-30));
            }
        }
        CHECK(worst < 1e-5, "%s sgemm path: worst error %g of sum |w x|", wk_qtype_name(t), worst);
        free(w);
    }
    float dummy[32] = {0};
    CHECK(wk_qmatmul(y, x, 1, 100, dummy, WK_Q_Q4_0, 1) == WICK_EINVAL, "in not a multiple of 32 rejected");
    free(x); free(y); free(y1); free(yr); free(yg); free(row);
}

/* wk_qmatmul_t (dx = dy·W) against its reference, overwrite and accumulate. */
static void test_transposed(void) {
    const int types[] = {WK_Q_Q8_0, WK_Q_Q4_1, WK_Q_Q4_K, WK_Q_Q6_K, WK_Q_BF16, WK_Q_F32};
    const int64_t in = 512, out = 70, n = 5;
    float *x = malloc(sizeof(float) * n * out), *y = malloc(sizeof(float) * n * in), *yr = malloc(sizeof(float) * n * in);
    for (int64_t i = 0; i < n * out; i++) x[i] = frand();
    for (size_t k = 0; k < WK_ARRAY_LEN(types); k++) {
        int t = types[k];
        uint8_t *w = make_weights(t, out, in);
        for (int acc = 0; acc < 2; acc++) {
            for (int64_t i = 0; i < n * in; i++) y[i] = yr[i] = acc ? 0.5f : 1e30f;
            CHECK_OK(wk_qmatmul_t(y, x, n, out, w, t, in, acc));
            CHECK_OK(wk_qmatmul_t_ref(yr, x, n, out, w, t, in, acc));
            double worst = 0, mag = 0;
            for (int64_t i = 0; i < n * in; i++) { worst = fmax(worst, fabs(y[i] - yr[i])); mag = fmax(mag, fabs(yr[i])); }
            CHECK(worst <= 1e-5 * mag * 10, "%s transposed (accumulate %d): worst error %g, |y| %g", wk_qtype_name(t), acc, worst, mag);
        }
        free(w);
    }
    free(x); free(y); free(yr);
}

int main(void) {
    CHECK(wk_qtype_block(WK_Q_Q4_K) == 256 && wk_qtype_bytes(WK_Q_Q4_K) == 144, "Q4_K traits");
    CHECK(wk_qtype_bytes(WK_Q_Q6_K) == 210 && wk_qtype_bytes(WK_Q_Q5_K) == 176 && wk_qtype_bytes(WK_Q_Q4_1) == 20, "traits");
    CHECK(wk_qtype_name(4) == NULL && wk_qtype_name(99) == NULL, "removed/unknown types have no name");
    wk_qtype t;
    CHECK(wk_qtype_parse("q4_k", &t) && t == WK_Q_Q4_K && !wk_qtype_parse("q9", &t), "parse");
    test_dequant_blocks();
    test_quantize_rules();
    test_roundtrip();
    test_kernels();
    test_transposed();
    return t_summary();
}
