/*
 * vecmath.c — the vocabulary-sized loops of sampling, written so the compiler
 * vectorizes them (fixed 8-lane inner loops, no calls, no early exits): max, argmax,
 * exp with per-block sums, masked sums. exp uses Cephes' expf polynomial after a
 * round-to-nearest range reduction (relative error < 2e-7 on x <= 0), exactly 0
 * below -87 so banned (-inf) ids get zero probability.
 */
#include "infer.h"
#include "vexp.h"

#include <math.h>

#define LANES 8

static inline float exp_neg(float x) { return wk_vexp_neg(x); }

float wk_exp_neg(float x) { return exp_neg(x); }

float wk_maxf(const float *x, int n) {
    float m[LANES];
    for (int k = 0; k < LANES; k++) m[k] = -INFINITY;
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) m[k] = x[i + k] > m[k] ? x[i + k] : m[k];
    for (; i < n; i++) m[0] = x[i] > m[0] ? x[i] : m[0];
    float r = m[0];
    for (int k = 1; k < LANES; k++) r = m[k] > r ? m[k] : r;
    return r;
}

/* The maximum, then its first index: blocks of 64 are tested for it with a vectorised
 * compare (no early exit inside a block), and only the block that holds it is scanned. */
int wk_argmax(const float *x, int n) {
    float m = wk_maxf(x, n);
    if (!(m > -INFINITY)) return -1;
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        int hit = 0;
        for (int k = 0; k < 64; k++) hit |= x[i + k] == m;
        if (hit) break;
    }
    for (; i < n; i++)
        if (x[i] == m) return i;
    return -1;
}

/* exp((x[i] / T) - mx) for one block, into w (may be NULL); returns the block's sum. */
static float exp_block(const float *x, int n, float T, float mx, float *w) {
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            float e = exp_neg(x[i + k] / T - mx);
            if (w) w[i + k] = e;
            acc[k] += e;
        }
    for (; i < n; i++) {
        float e = exp_neg(x[i] / T - mx);
        if (w) w[i] = e;
        acc[0] += e;
    }
    float s = 0;
    for (int k = 0; k < LANES; k++) s += acc[k];
    return s;
}

double wk_exp_blocks(const float *x, int n, float T, float mx, float *w, double *bsum) {
    double z = 0;
    for (int b = 0; b * WK_EXP_BLOCK < n; b++) {
        int off = b * WK_EXP_BLOCK, len = n - off < WK_EXP_BLOCK ? n - off : WK_EXP_BLOCK;
        double s = exp_block(x + off, len, T, mx, w ? w + off : NULL);
        if (bsum) bsum[b] = s;
        z += s;
    }
    return z;
}

double wk_logsumexp(const float *x, int n, float max) {
    return (double)max + log(wk_exp_blocks(x, n, 1.0f, max, NULL, NULL));
}

void wk_mass_at_least4(const float *w, int n, const float tau[4], double mass[4]) {
    for (int t = 0; t < 4; t++) mass[t] = 0;
    for (int off = 0; off < n; off += WK_EXP_BLOCK) {
        int len = n - off < WK_EXP_BLOCK ? n - off : WK_EXP_BLOCK;
        float acc[4][LANES] = {{0}};
        int i = 0;
        for (; i + LANES <= len; i += LANES)
            for (int t = 0; t < 4; t++)
                for (int k = 0; k < LANES; k++) acc[t][k] += w[off + i + k] >= tau[t] ? w[off + i + k] : 0.0f;
        for (; i < len; i++)
            for (int t = 0; t < 4; t++) acc[t][0] += w[off + i] >= tau[t] ? w[off + i] : 0.0f;
        for (int t = 0; t < 4; t++)
            for (int k = 0; k < LANES; k++) mass[t] += acc[t][k];
    }
}
