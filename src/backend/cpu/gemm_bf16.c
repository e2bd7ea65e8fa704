/*
 * gemm_bf16.c — x·Wᵀ for bf16 weights with the activations rounded to bf16
 * (round-to-nearest-even, once per call): run-time choice of kernel, the AVX512-BF16
 * kernel (vdpbf16ps: two bf16 products per f32 lane) and the portable reference.
 * The AMX tile kernel lives in gemm_amx.c.
 *
 * Detection (once, logged): cpuid leaf 7 (AVX512F/BW, AVX512-BF16, AMX-TILE/BF16), the OS
 * saving ZMM state (XCR0), and for AMX the Linux permission for tile data
 * (arch_prctl ARCH_REQ_XCOMP_PERM). AMX granted -> AMX; no AMX -> AVX512-BF16; AMX refused
 * or no AVX512-BF16 -> none (callers keep fp32; see level_detect).
 * Kernels carry function-level target attributes, so the file builds for any x86-64 CPU.
 *
 * AVX512-BF16 layout: x becomes xb [n_pad, 2*kp] bf16 (k pairs; zero padding for odd `in`
 * and for rows up to a multiple of MR). Work units are (block of NB = 64 output columns,
 * chunk of rows): few column blocks (an e5-small product has 6) are split by rows so every
 * thread gets work. Per unit and k-block of KC pairs a thread packs W into a panel [KC][64]
 * of 32-bit (bf16, bf16) pairs, so one 512-bit load holds 16 output columns of one k pair
 * and the MR x 4 accumulators hold outputs directly (no horizontal sums). The micro-kernel
 * broadcasts one x pair per row and issues MR*4 vdpbf16ps per k pair.
 */
#include "backend/cpu/gemm_bf16.h"
#include "wk.h"

#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WK_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

enum { MR = 4, NB = 64, KC = 384 };

void wk_gemm_bf16_ref(float *y, const float *x, const uint16_t *W, int n, int in, int out) {
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int k = 0; k < in; k++)
                s += (double)wk_bf16_to_f32(wk_f32_to_bf16(x[(size_t)i * in + k])) *
                     wk_bf16_to_f32(W[(size_t)o * in + k]);
            y[(size_t)i * out + o] = (float)s;
        }
}

static int level_v;
static pthread_once_t level_once = PTHREAD_ONCE_INIT;

/* AVX512F + AVX512BW + AVX512-BF16 reported by cpuid, and ZMM/opmask state enabled by the OS. */
static int avx512_bf16_cpu(void) {
    unsigned a, b, c, d, lo, hi;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c >> 27 & 1)) return 0; /* OSXSAVE */
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xe6) != 0xe6) return 0; /* SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b >> 16 & 1) || !(b >> 30 & 1)) return 0;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 5 & 1);
}

/* AMX refused on an AMX-class CPU leaves fp32: there (Xeon, H200 machine) the AVX512-BF16 kernel
 * ran e5-small at 0.56x the fp32 sgemm path (vdpbf16ps at half the FMA rate), while on CPUs
 * without AMX (Zen 4) it runs 1.7-1.9x fp32. */
static void level_detect(void) {
    if (!avx512_bf16_cpu()) return; /* level_v stays WK_BF16_NONE; callers say they keep fp32 */
    const char *env = getenv("WICK_CPU_AMX");
    if (!wk_amx_cpuid()) {
        level_v = WK_BF16_AVX512;
        wk_log(WICK_LOG_INFO, "cpu: bf16 products on AVX512-BF16 (this CPU has no AMX-BF16)");
    } else if (env && !strcmp(env, "0")) {
        level_v = WK_BF16_AVX512;
        wk_log(WICK_LOG_INFO, "cpu: WICK_CPU_AMX=0: bf16 products on AVX512-BF16, AMX tiles unused");
    } else if (!wk_amx_request()) {
        wk_log(WICK_LOG_WARN, "cpu: AMX-BF16 present but Linux refused the tile data permission "
                              "(arch_prctl ARCH_REQ_XCOMP_PERM, XTILEDATA); fast bf16 products off: exact fp32 "
                              "(this CPU's AVX512-BF16 is slower than fp32)");
    } else {
        level_v = WK_BF16_AMX;
        wk_log(WICK_LOG_INFO, "cpu: bf16 products on AMX tiles");
    }
}

int wk_gemm_bf16_level(void) {
    pthread_once(&level_once, level_detect);
    return level_v;
}

int wk_gemm_bf16_native(void) { return wk_gemm_bf16_level() > WK_BF16_NONE; }

/* x [n,in] f32 -> xb [rows, 2*kp] bf16 pairs (zero padded). */
static void pack_x(uint32_t *xb, const float *x, int n, int rows, int in, int kp) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++) {
        uint16_t *d = (uint16_t *)(xb + (size_t)i * kp);
        for (int k = 0; k < 2 * kp; k++) d[k] = (i < n && k < in) ? wk_f32_to_bf16(x[(size_t)i * in + k]) : 0;
    }
}

/* Panel [kc][NB] of (W[o][2p], W[o][2p+1]) for columns o0.., pairs p0..p0+kc-1; zeros past out/in. */
static void pack_w(uint32_t *pan, const uint16_t *W, int in, int out, int o0, int p0, int kc) {
    for (int j = 0; j < NB; j++) {
        int o = o0 + j;
        const uint16_t *r = W + (size_t)o * in;
        if (o < out && 2 * (p0 + kc) <= in) { /* whole pairs: straight 32-bit copies */
            const uint16_t *s = r + 2 * (size_t)p0;
            for (int p = 0; p < kc; p++) {
                uint32_t v;
                memcpy(&v, s + 2 * p, 4);
                pan[(size_t)p * NB + j] = v;
            }
            continue;
        }
        for (int p = 0; p < kc; p++) {
            int k = 2 * (p0 + p);
            uint32_t lo = o < out && k < in ? r[k] : 0, hi = o < out && k + 1 < in ? r[k + 1] : 0;
            pan[(size_t)p * NB + j] = lo | hi << 16;
        }
    }
}

/* MR rows of xb (stride kp pairs) times the panel over kc pairs; adds into / stores y. */
WK_BF16_TARGET static inline void micro(float *y, int ldy, const uint32_t *xb, int kp, const uint32_t *pan, int kc, int nrow,
                         __mmask16 *cm, int add) {
    __m512 acc[MR][4];
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
    for (int p = 0; p < kc; p++) {
        __m512bh w[4];
        for (int c = 0; c < 4; c++) w[c] = (__m512bh)_mm512_load_si512(pan + (size_t)p * NB + 16 * c);
        for (int r = 0; r < MR; r++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)xb[(size_t)r * kp + p]);
            for (int c = 0; c < 4; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], a, w[c]);
        }
    }
    for (int r = 0; r < nrow; r++)
        for (int c = 0; c < 4; c++) {
            float *d = y + (size_t)r * ldy + 16 * c;
            __m512 v = acc[r][c];
            if (add) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(cm[c], d));
            _mm512_mask_storeu_ps(d, cm[c], v);
        }
}

/* One block of NB output columns over rows [i0, i1) (i0 a multiple of MR). */
WK_BF16_TARGET static void col_block(float *y, const uint32_t *xb, const uint16_t *W, int i0, int i1, int in, int out,
                                     int kp, int o0, uint32_t *pan) {
    __mmask16 cm[4];
    for (int c = 0; c < 4; c++) {
        int left = out - o0 - 16 * c;
        cm[c] = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
    }
    for (int p0 = 0; p0 < kp; p0 += KC) {
        int kc = WK_MIN(KC, kp - p0);
        pack_w(pan, W, in, out, o0, p0, kc);
        for (int i = i0; i < i1; i += MR)
            micro(y + (size_t)i * out + o0, out, xb + (size_t)i * kp + p0, kp, pan, kc, WK_MIN(MR, i1 - i), cm, p0 > 0);
    }
}

/* Row chunks per column block: 1 when the column blocks alone give every thread two or more,
 * else enough to do so, each at least 8*MR rows. */
static int row_chunks(int n, int nblk) {
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nblk >= 2 * nt) return 1;
    int want = (2 * nt + nblk - 1) / nblk, most = WK_MAX(1, n / (8 * MR));
    return WK_MIN(want, most);
}

int wk_gemm_bf16_avx512(float *y, const float *x, const uint16_t *W, int n, int in, int out) {
    int kp = (in + 1) / 2, rows = (n + MR - 1) / MR * MR, nblk = (out + NB - 1) / NB;
    int nrc = row_chunks(n, nblk), per = ((rows / MR + nrc - 1) / nrc) * MR;
    uint32_t *xb = NULL;
    if (posix_memalign((void **)&xb, 64, (size_t)rows * kp * 4) != 0) return -1;
    pack_x(xb, x, n, rows, in, kp);
    int fail = 0;
#pragma omp parallel reduction(| : fail)
    {
        uint32_t *pan = NULL;
        fail = posix_memalign((void **)&pan, 64, (size_t)KC * NB * 4) != 0;
#pragma omp for schedule(dynamic, 1)
        for (int u = 0; u < nblk * nrc; u++) { /* unit: column block u / nrc, row chunk u % nrc */
            int i0 = (u % nrc) * per, i1 = WK_MIN(n, i0 + per);
            if (pan && i0 < i1) col_block(y, xb, W, i0, i1, in, out, kp, (u / nrc) * NB, pan);
        }
        free(pan);
    }
    free(xb);
    return fail ? -1 : 1;
}

int wk_gemm_bf16(float *y, const float *x, const uint16_t *W, int n, int in, int out) {
    int lv = wk_gemm_bf16_level();
    if (lv == WK_BF16_AMX) return wk_gemm_amx_unpacked(y, x, W, n, in, out);
    if (lv == WK_BF16_AVX512) return wk_gemm_bf16_avx512(y, x, W, n, in, out);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            float s = 0;
            for (int k = 0; k < in; k++)
                s += wk_bf16_to_f32(wk_f32_to_bf16(x[(size_t)i * in + k])) * wk_bf16_to_f32(W[(size_t)o * in + k]);
            y[(size_t)i * out + o] = s;
        }
    return 0;
}
