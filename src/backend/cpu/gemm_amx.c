/*
 * gemm_amx.c — y = bf16(x)·Wᵀ (+ bias) on Intel AMX tiles (Sapphire Rapids and later):
 * TDPBF16PS multiplies a 16x32 bf16 tile of x by a 32x16 tile of Wᵀ stored as VNNI pairs
 * and adds into 16x16 f32 (products exact, fp32 accumulation).
 *
 * Layout (gemm_bf16.h): W is packed once (at load for the encoder; per 32-column panel on
 * the fly otherwise) into 1 KiB tiles, 16 k pairs x 16 columns x 2; x becomes xb [n16, in32]
 * bf16 (round-to-nearest-even as wk_f32_to_bf16, zero padding to 16 rows and 32 columns).
 * One block is 32 rows x 32 columns: tiles 0-3 accumulate C, 4-5 hold two 16-row A tiles,
 * 6-7 two 16-column B tiles, so per 32-k step 4 tile loads feed 4 TDPBF16PS. A block is
 * stored through a 32x32 f32 buffer (bias added, edges masked). Threads take contiguous
 * runs of (panel, row block) units, so a panel (32 x in bf16, <= 96 KiB at in 1536) stays
 * in L1/L2 while its row blocks stream.
 *
 * The AMX and AVX-512 code carries function-level target attributes: the file builds with
 * any x86-64 compiler flags and runs only after gemm_bf16.c's run-time detection.
 */
#include "backend/cpu/gemm_bf16.h"
#include "wk.h"

#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WK_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl")))

enum { ARCH_GET_XCOMP_PERM_ = 0x1022, ARCH_REQ_XCOMP_PERM_ = 0x1023, XFEATURE_XTILEDATA_ = 18 };

static int rup32(int v) { return (v + 31) / 32 * 32; }

int wk_amx_cpuid(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (d >> 24 & 1) && (d >> 22 & 1); /* AMX-TILE, AMX-BF16 */
}

int wk_amx_request(void) {
    unsigned long bits = 0;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM_, XFEATURE_XTILEDATA_) != 0) return 0;
    if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM_, &bits) != 0) return 0;
    return (int)(bits >> XFEATURE_XTILEDATA_ & 1);
}

/* ------------------------------------------------------------------ packing */

/* Tiles of 16-column groups j0 <= j < j1 (all k blocks), written from dst (group j0 first). */
static void pack_cols(uint16_t *dst, const uint16_t *W, int in, int out, int j0, int j1) {
    int Kb = rup32(in) / 32;
    for (int j = j0; j < j1; j++)
        for (int kb = 0; kb < Kb; kb++) {
            uint16_t *t = dst + ((size_t)(j - j0) * Kb + kb) * 512;
            for (int c = 0; c < 16; c++) {
                int o = 16 * j + c, k0 = 32 * kb;
                const uint16_t *r = W + (size_t)o * in;
                for (int q = 0; q < 32; q++) /* q = 2p + e */
                    t[(q >> 1) * 32 + c * 2 + (q & 1)] = o < out && k0 + q < in ? r[k0 + q] : 0;
            }
        }
}

size_t wk_gemm_amx_packed_elems(int in, int out) { return (size_t)rup32(out) * (size_t)rup32(in); }

void wk_gemm_amx_pack(uint16_t *dst, const uint16_t *W, int in, int out) {
    int J = rup32(out) / 16;
    size_t per = (size_t)rup32(in) * 16;
#pragma omp parallel for schedule(static)
    for (int j = 0; j < J; j++) pack_cols(dst + (size_t)j * per, W, in, out, j, j + 1);
}

/* ------------------------------------------------------- per-thread scratch */

enum { AMX_X, AMX_PANEL, AMX_SLOTS };
typedef struct {
    uint16_t *buf[AMX_SLOTS];
    size_t cap[AMX_SLOTS];
} amx_scratch_t;
static _Thread_local amx_scratch_t tls_amx;
static pthread_key_t amx_key;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_release(void *p) {
    amx_scratch_t *s = p;
    for (int i = 0; i < AMX_SLOTS; i++) free(s->buf[i]), s->buf[i] = NULL, s->cap[i] = 0;
}
static void amx_key_init(void) { pthread_key_create(&amx_key, amx_release); }

/* A 64-byte aligned buffer of n elements that only grows; freed when its thread exits. */
static uint16_t *amx_scratch(int slot, size_t n) {
    amx_scratch_t *s = &tls_amx;
    if (n > s->cap[slot]) {
        pthread_once(&amx_once, amx_key_init);
        pthread_setspecific(amx_key, s);
        free(s->buf[slot]);
        s->cap[slot] = n + n / 4;
        if (posix_memalign((void **)&s->buf[slot], 64, s->cap[slot] * sizeof(uint16_t)) != 0)
            s->buf[slot] = NULL, s->cap[slot] = 0;
    }
    return s->buf[slot];
}

/* ------------------------------------------------------------------ kernels */

/* 16 floats -> 16 bf16, round to nearest even, NaN quieted (as wk_f32_to_bf16). */
WK_AMX_TARGET static inline __m256i cvt16(__m512 v) {
    __m512i u = _mm512_castps_si512(v), one = _mm512_set1_epi32(1);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
    r = _mm512_srli_epi32(r, 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    return _mm512_cvtepi32_epi16(r);
}

/* Rows i0 <= i < i1 of xb [.., ip] from x [n, in] (rows >= n and columns >= in zero). */
WK_AMX_TARGET static void pack_x_rows(uint16_t *xb, const float *x, int n, int in, int ip, int i0, int i1) {
    for (int i = i0; i < i1; i++) {
        uint16_t *d = xb + (size_t)i * ip;
        if (i >= n) {
            memset(d, 0, sizeof(uint16_t) * ip);
            continue;
        }
        const float *s = x + (size_t)i * in;
        for (int k = 0; k < ip; k += 16) {
            int left = in - k;
            __mmask16 m = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
            _mm256_store_si256((__m256i *)(d + k), cvt16(_mm512_maskz_loadu_ps(m, s + k)));
        }
    }
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;

/* Palette 1, tiles 0-7 of 16 rows x 64 bytes, for this thread. */
WK_AMX_TARGET static void amx_config(void) {
    amx_cfg cfg __attribute__((aligned(64)));
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    __asm__ volatile("" ::: "memory"); /* the intrinsic's asm names only 8 bytes of cfg as its input */
    _tile_loadconfig(&cfg);
}

/* c [32,32] f32 = xa [16*mr, in32] · panel (two 16-column groups of Kb tiles each). */
WK_AMX_TARGET static void tile_block(float *c, const uint16_t *xa, int ip, const uint16_t *panel, int Kb, int mr) {
    const uint16_t *b0 = panel, *b1 = panel + (size_t)Kb * 512, *xa1 = xa + (size_t)16 * ip;
    long lda = (long)ip * 2;
    __asm__ volatile("" ::: "memory"); /* the tile asm declares no memory effects: order it by hand */
    _tile_zero(0);
    _tile_zero(1);
    if (mr == 2) {
        _tile_zero(2);
        _tile_zero(3);
        for (int kb = 0; kb < Kb; kb++) {
            _tile_loadd(4, xa + 32 * kb, lda);
            _tile_loadd(6, b0 + (size_t)kb * 512, 64);
            _tile_loadd(7, b1 + (size_t)kb * 512, 64);
            _tile_loadd(5, xa1 + 32 * kb, lda);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
        _tile_stored(2, c + 512, 128);
        _tile_stored(3, c + 528, 128);
    } else {
        for (int kb = 0; kb < Kb; kb++) {
            _tile_loadd(4, xa + 32 * kb, lda);
            _tile_loadd(6, b0 + (size_t)kb * 512, 64);
            _tile_loadd(7, b1 + (size_t)kb * 512, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
        }
    }
    _tile_stored(0, c, 128);
    _tile_stored(1, c + 16, 128);
    __asm__ volatile("" ::: "memory");
}

/* y rows [r0, r0+nr) x columns [c0, c0+32) (clipped to out) = c (+ bias). */
WK_AMX_TARGET static void store_block(float *y, const float *c, const float *bias, int nr, int out, int c0) {
    __mmask16 m[2];
    __m512 bv[2];
    for (int h = 0; h < 2; h++) {
        int left = out - c0 - 16 * h;
        m[h] = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
        bv[h] = bias ? _mm512_maskz_loadu_ps(m[h], bias + c0 + 16 * h) : _mm512_setzero_ps();
    }
    for (int r = 0; r < nr; r++)
        for (int h = 0; h < 2; h++)
            _mm512_mask_storeu_ps(y + (size_t)r * out + c0 + 16 * h, m[h],
                                  _mm512_add_ps(_mm512_load_ps(c + 32 * r + 16 * h), bv[h]));
}

/* Row blocks rb0 <= rb < rb1 (32 rows each) of the 32-column panel p (packed at `panel`). */
WK_AMX_TARGET static void amx_panel(float *y, const uint16_t *xb, int ip, const uint16_t *panel, const float *bias,
                                    int n, int out, int p, int rb0, int rb1) {
    float c[32 * 32] __attribute__((aligned(64)));
    int Kb = ip / 32;
    amx_config();
    for (int rb = rb0; rb < rb1; rb++) {
        int r0 = 32 * rb, nr = WK_MIN(32, n - r0);
        tile_block(c, xb + (size_t)r0 * ip, ip, panel, Kb, nr > 16 ? 2 : 1);
        store_block(y + (size_t)r0 * out, c, bias, nr, out, 32 * p);
    }
    _tile_release();
}

/* ------------------------------------------------------------------ drivers */

/* xb [n16, ip] from x, rows spread over the threads; NULL when memory ran out. */
static uint16_t *pack_x(const float *x, int n, int in, int ip) {
    int n16 = (n + 15) / 16 * 16;
    uint16_t *xb = amx_scratch(AMX_X, (size_t)n16 * ip);
    if (!xb) return NULL;
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num(), per = (n16 + nt - 1) / nt;
        int i0 = WK_MIN(n16, t * per), i1 = WK_MIN(n16, i0 + per);
        if (i0 < i1) pack_x_rows(xb, x, n, in, ip, i0, i1);
    }
    return xb;
}

int wk_gemm_amx(float *y, const float *x, const uint16_t *Wp, const float *bias, int n, int in, int out) {
    if (wk_gemm_bf16_level() < WK_BF16_AMX) return 0;
    int ip = rup32(in), P = rup32(out) / 32, R = (n + 31) / 32;
    const uint16_t *xb = pack_x(x, n, in, ip);
    if (!xb) return -1;
    long units = (long)P * R;
#pragma omp parallel
    {
        long nt = omp_get_num_threads(), t = omp_get_thread_num();
        long u = units * t / nt, u1 = units * (t + 1) / nt;
        while (u < u1) { /* a contiguous run of (panel, row block) units, panel-major */
            int p = (int)(u / R), rb = (int)(u % R), rb1 = (int)WK_MIN((long)R, rb + (u1 - u));
            amx_panel(y, xb, ip, Wp + (size_t)p * 32 * ip, bias, n, out, p, rb, rb1);
            u += rb1 - rb;
        }
    }
    return 2;
}

int wk_gemm_amx_unpacked(float *y, const float *x, const uint16_t *W, int n, int in, int out) {
    if (wk_gemm_bf16_level() < WK_BF16_AMX) return 0;
    int ip = rup32(in), P = rup32(out) / 32, R = (n + 31) / 32, fail = 0;
    const uint16_t *xb = pack_x(x, n, in, ip);
    if (!xb) return -1;
#pragma omp parallel reduction(| : fail)
    {
        uint16_t *pan = amx_scratch(AMX_PANEL, (size_t)32 * ip);
        fail = !pan;
#pragma omp for schedule(dynamic, 1)
        for (int p = 0; p < P; p++)
            if (pan) {
                pack_cols(pan, W, in, out, 2 * p, 2 * p + 2);
                amx_panel(y, xb, ip, pan, NULL, n, out, p, 0, R);
            }
    }
    return fail ? -1 : 2;
}
