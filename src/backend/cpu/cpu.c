/*
 * cpu.c — the fast CPU backend: OpenBLAS sgemm for matrix-matrix products,
 * AVX-512 (scalar fallback) matrix-vector kernels that read bf16/f32 weights
 * once per token for decode (opt-in: the bf16-activation GEMM of gemm_bf16.c for
 * bf16 weights marked fast_bf16), and OpenMP-threaded element-wise ops and causal
 * attention. Every op here has a reference twin in ref.c, and tests/test_ops.c
 * compares them.
 */
#include "backend/backend.h"
#include "backend/cpu/cpu_common.h"
#include "backend/cpu/quant.h"
#include "vexp.h"
#include "backend/cpu/enc_ops.h"
#include "backend/cpu/gemm_bf16.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>

/* Rows at or below this use the gemv kernels (weights streamed once, all rows at once). */
#define GEMV_MAX_ROWS 8
/* bf16 weights: rows at or below this use the gemv kernel (each weight widened once for 8 rows)
 * instead of widening tiles of W to f32 for sgemm (WICK_GEMV_BF16_MAX=k for comparisons). 2-core
 * dev VM, qwen2.5-0.5b bf16, batched decode base tok/s, 2 threads: 16 streams 45.7 -> 98.4, 64
 * streams 99.9 -> 112.8. */
static int gemv_bf16_max(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("WICK_GEMV_BF16_MAX");
        v = e ? atoi(e) : 64;
    }
    return v;
}

/* A per-thread scratch buffer that only grows (no allocation per token). The buffers are
 * freed when their thread exits (OpenMP teams of short-lived application threads). */
enum { SCR_TILE, SCR_ACC, SCR_ATTN, SCR_COUNT };
typedef struct {
    float *buf[SCR_COUNT];
    size_t cap[SCR_COUNT];
} scratch_set;
static _Thread_local scratch_set tls_scratch;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_release(void *p) {
    scratch_set *s = p;
    for (int i = 0; i < SCR_COUNT; i++) free(s->buf[i]), s->buf[i] = NULL, s->cap[i] = 0;
}
static void scratch_key_init(void) { pthread_key_create(&scratch_key, scratch_release); }

static float *scratch(int slot, size_t n) {
    scratch_set *s = &tls_scratch;
    if (n > s->cap[slot]) {
        pthread_once(&scratch_once, scratch_key_init);
        pthread_setspecific(scratch_key, s);
        free(s->buf[slot]);
        s->cap[slot] = n + n / 2;
        if (posix_memalign((void **)&s->buf[slot], 64, s->cap[slot] * sizeof(float)) != 0) {
            s->buf[slot] = NULL;
            s->cap[slot] = 0;
        }
    }
    return s->buf[slot];
}

/* ----------------------------------------------------------- dot products */

#ifdef __AVX512F__
/* 16 bf16 values (a 256-bit half of a load) widened to f32. */
static inline __m512 bf16x16(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
#endif

/* y[r][o] for r < nr rows of x, for a block of weight rows [o0,o1). */
static void gemv_f32_block(float *y, const float *x, const float *W, int nr, int in, int out, int o0, int o1) {
    for (int o = o0; o < o1; o++) {
        const float *w = W + (size_t)o * in;
        for (int r = 0; r < nr; r++) {
            const float *xr = x + (size_t)r * in;
            int k = 0;
            float s = 0;
#ifdef __AVX512F__
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
            for (; k + 32 <= in; k += 32) {
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k), _mm512_loadu_ps(xr + k), a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k + 16), _mm512_loadu_ps(xr + k + 16), a1);
            }
            s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#endif
            for (; k < in; k++) s += w[k] * xr[k];
            y[(size_t)r * out + o] = s;
        }
    }
}

#ifdef __AVX512F__
/* s[j] = w · x[j] for rc <= 8 rows of x (stride ldx): each 32 weights are widened once and used
 * for every row; two accumulators a row over alternate 16s, then the row's tail, which is the
 * one-row product's order, so a row gets the same sum in a batch as alone. Inlined with a
 * constant rc (the accumulators stay in registers). */
static inline __attribute__((always_inline)) void bf16_dot_rows(const uint16_t *w, const float *x, size_t ldx, int in,
                                                                int rc, float *s) {
    __m512 a0[8], a1[8];
    for (int j = 0; j < rc; j++) a0[j] = a1[j] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 32 <= in; k += 32) {
        __m512 w0 = bf16x16(_mm256_loadu_si256((const __m256i *)(w + k)));
        __m512 w1 = bf16x16(_mm256_loadu_si256((const __m256i *)(w + k + 16)));
        for (int j = 0; j < rc; j++) {
            a0[j] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + j * ldx + k), a0[j]);
            a1[j] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + j * ldx + k + 16), a1[j]);
        }
    }
    for (int j = 0; j < rc; j++) {
        float v = _mm512_reduce_add_ps(_mm512_add_ps(a0[j], a1[j]));
        for (int q = k; q < in; q++) v += wk_bf16_to_f32(w[q]) * x[j * ldx + q];
        s[j] = v;
    }
}

#define GEMV_TILE 16 /* weight rows whose products with one chunk of 8 rows run together (x's chunk and
                      * the tile stay in L2 across each other) */
#endif

static void gemv_bf16_block(float *y, const float *x, const uint16_t *W, int nr, int in, int out, int o0, int o1) {
#ifdef __AVX512F__
    if (nr > 1) {
        float s[8];
        for (int t0 = o0; t0 < o1; t0 += GEMV_TILE)
            for (int r0 = 0; r0 < nr; r0 += 8) {
                int rc = WK_MIN(8, nr - r0);
                const float *xr = x + (size_t)r0 * in;
                for (int o = t0; o < WK_MIN(o1, t0 + GEMV_TILE); o++) {
                    const uint16_t *w = W + (size_t)o * in;
                    switch (rc) {
                    case 8: bf16_dot_rows(w, xr, (size_t)in, in, 8, s); break;
                    case 7: bf16_dot_rows(w, xr, (size_t)in, in, 7, s); break;
                    case 6: bf16_dot_rows(w, xr, (size_t)in, in, 6, s); break;
                    case 5: bf16_dot_rows(w, xr, (size_t)in, in, 5, s); break;
                    case 4: bf16_dot_rows(w, xr, (size_t)in, in, 4, s); break;
                    case 3: bf16_dot_rows(w, xr, (size_t)in, in, 3, s); break;
                    case 2: bf16_dot_rows(w, xr, (size_t)in, in, 2, s); break;
                    default: bf16_dot_rows(w, xr, (size_t)in, in, 1, s); break;
                    }
                    for (int j = 0; j < rc; j++) y[(size_t)(r0 + j) * out + o] = s[j];
                }
            }
        return;
    }
#endif
    for (int o = o0; o < o1; o++) {
        const uint16_t *w = W + (size_t)o * in;
        for (int r = 0; r < nr; r++) {
            const float *xr = x + (size_t)r * in;
            int k = 0;
            float s = 0;
#ifdef __AVX512F__
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
            /* one row: 32 weights in one 64-byte load (a decode step, 1 thread, qwen2.5-0.5b on the dev
             * VM: 17.8 -> 23.2 tok/s) */
            for (; k + 32 <= in; k += 32) {
                __m512i wv = _mm512_loadu_si512((const void *)(w + k));
                a0 = _mm512_fmadd_ps(bf16x16(_mm512_castsi512_si256(wv)), _mm512_loadu_ps(xr + k), a0);
                a1 = _mm512_fmadd_ps(bf16x16(_mm512_extracti64x4_epi64(wv, 1)), _mm512_loadu_ps(xr + k + 16), a1);
            }
            s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#endif
            for (; k < in; k++) s += wk_bf16_to_f32(w[k]) * xr[k];
            y[(size_t)r * out + o] = s;
        }
    }
}

static void gemv(float *y, const float *x, const wk_mat *W, int n) {
    int out = W->rows, in = W->cols;
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int per = (out + nt - 1) / nt, o0 = t * per, o1 = WK_MIN(out, o0 + per);
        if (o0 < o1) {
            if (W->dt == WICK_DT_BF16) gemv_bf16_block(y, x, W->w, n, in, out, o0, o1);
            else gemv_f32_block(y, x, W->w, n, in, out, o0, o1);
        }
    }
}

/* x[n,in] · Wᵀ through sgemm; non-f32 weights are widened a tile of rows at a time. Opt-in
 * (fast_bf16) bf16 products on AMX tiles with W packed at load, which add the bias too
 * (returns 1 then, else 0), or on wk_gemm_bf16's best kernel. */
static int gemm(float *y, const float *x, const wk_mat *W, const float *bias, int n) {
    int out = W->rows, in = W->cols;
    if (W->amx && wk_gemm_amx(y, x, W->amx, bias, n, in, out) > 0) return 1;
    if (W->fast_bf16 && W->dt == WICK_DT_BF16 && wk_gemm_bf16_native() &&
        wk_gemm_bf16(y, x, W->w, n, in, out) > 0)
        return 0; /* opt-in: bf16-rounded activations (falls through to the exact path without memory) */
    if (W->dt == WICK_DT_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.f, x, in, W->w, in, 0.f, y, out);
        return 0;
    }
    int tile = (int)WK_MAX(64, WK_MIN((size_t)out, ((size_t)4 << 20) / (size_t)in));
    float *buf = scratch(SCR_TILE, (size_t)tile * in);
    for (int o0 = 0; o0 < out; o0 += tile) {
        int rows = WK_MIN(tile, out - o0);
        const uint16_t *src = (const uint16_t *)W->w + (size_t)o0 * in;
        size_t cnt = (size_t)rows * in;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < cnt; i++)
            buf[i] = W->dt == WICK_DT_BF16 ? wk_bf16_to_f32(src[i]) : wk_f16_to_f32(src[i]);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, rows, in, 1.f, x, in, buf, in, 0.f, y + o0, out);
    }
    return 0;
}

static void cpu_matmul(wk_backend *be, float *y, const float *x, const wk_mat *W, const float *bias, int n, int acc) {
    int out = W->rows;
    float *dst = y;
    if (acc) dst = scratch(SCR_ACC, (size_t)n * out); /* rare path (LoRA backward); keeps kernels simple */
    if (W->qtype) wk_qmatmul(dst, x, n, W->cols, W->w, W->qtype, out); /* shapes were validated at load */
    else if ((W->dt == WICK_DT_F32 || W->dt == WICK_DT_BF16) &&
             (n <= GEMV_MAX_ROWS || (W->dt == WICK_DT_BF16 && !W->amx && !W->fast_bf16 && n <= gemv_bf16_max())))
        gemv(dst, x, W, n); /* opt-in AMX / bf16 products keep gemm's kernels above GEMV_MAX_ROWS */
    else if (gemm(dst, x, W, acc ? NULL : bias, n) && !acc) bias = NULL; /* the bias went in with the product */
    if (acc || bias) {
#pragma omp parallel for schedule(static) if ((size_t)n * out > 65536)
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) {
                float v = dst[(size_t)i * out + o] + (bias ? bias[o] : 0.f);
                y[(size_t)i * out + o] = acc ? y[(size_t)i * out + o] + v : v;
            }
    }
}

static inline float dot_f32(const float *a, const float *b, int m) {
    int i = 0;
    float s = 0;
#ifdef __AVX512F__
    __m512 acc = _mm512_setzero_ps();
    for (; i + 16 <= m; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
    s = _mm512_reduce_add_ps(acc);
#endif
    for (; i < m; i++) s += a[i] * b[i];
    return s;
}

/* Few-row f32 products (the LoRA shrink x·Aᵀ and expand t·Bᵀ while decoding): direct dot
 * products, threaded over output columns only when the work is large; no BLAS call overhead. */
static void small_f32(float *y, const float *x, const float *B, int n, int m, int k, float s, int acc) {
#pragma omp parallel for schedule(static) if ((size_t)k * m >= 131072)
    for (int o = 0; o < k; o++) {
        const float *w = B + (size_t)o * m;
        for (int r = 0; r < n; r++) {
            float v = s * dot_f32(x + (size_t)r * m, w, m);
            float *yo = y + (size_t)r * k + o;
            *yo = acc ? *yo + v : v;
        }
    }
}

static void cpu_matmul_f32(wk_backend *be, float *y, const float *x, const float *B, int n, int m, int k, float s, int acc) {
    if (n <= GEMV_MAX_ROWS) {
        small_f32(y, x, B, n, m, k, s, acc);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, k, m, s, x, m, B, m, acc ? 1.f : 0.f, y, k);
}

static void cpu_rmsnorm(wk_backend *be, float *y, const float *x, const float *w, int n, int dim, float eps) {
#pragma omp parallel for schedule(static) if (n > 4)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim;
        float *yi = y + (size_t)i * dim;
        float ss = 0;
        for (int j = 0; j < dim; j++) ss += xi[j] * xi[j];
        float r = 1.f / sqrtf(ss / (float)dim + eps);
        if (w)
            for (int j = 0; j < dim; j++) yi[j] = xi[j] * r * w[j];
        else
            for (int j = 0; j < dim; j++) yi[j] = xi[j] * r;
    }
}

static void cpu_rope(wk_backend *be, float *x, const int32_t *pos, int n, int nh, int D, const float *inv_freq) {
    wk_cpu_rope_rotate(x, pos, n, nh, D, inv_freq, 0);
}

static inline float dotf(const float *a, const float *b, int n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* One query row of one head: softmax(q·Kᵀ·scale) · V over positions 0..last. */
static void attend_row(float *o, const float *qi, const float *kh, const float *vh, int last, int D, float scale, float *sc) {
    float mx = -INFINITY, sum = 0;
    for (int j = 0; j <= last; j++) {
        sc[j] = dotf(qi, kh + (size_t)j * D, D) * scale;
        mx = sc[j] > mx ? sc[j] : mx;
    }
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j <= last; j++) sum += (sc[j] = wk_vexp_neg(sc[j] - mx));
    float inv = 1.f / sum;
    for (int d = 0; d < D; d++) o[d] = 0;
    for (int j = 0; j <= last; j++) {
        float p = sc[j] * inv;
        const float *vj = vh + (size_t)j * D;
        for (int d = 0; d < D; d++) o[d] += p * vj[d];
    }
}

static void cpu_attention(wk_backend *be, float *out, const float *q, const float *k, const float *v, int n, int pos0,
                          const int32_t *pos, int H, int Hk, int D, int cap, float scale) {
    int grp = H / Hk, T = pos0 + n;
#pragma omp parallel
    {
        float *sc = scratch(SCR_ATTN, (size_t)T);
#pragma omp for collapse(2) schedule(dynamic, 4)
        for (int i = 0; i < n; i++)
            for (int h = 0; h < H; h++) {
                size_t kv = (size_t)(h / grp) * cap * D;
                attend_row(out + ((size_t)i * H + h) * D, q + ((size_t)i * H + h) * D, k + kv, v + kv, pos0 + i, D,
                           scale, sc);
            }
    }
}

static void cpu_swiglu(wk_backend *be, float *out, const float *g, const float *u, size_t n) {
#pragma omp parallel for schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) out[i] = g[i] / (1.f + expf(-g[i])) * u[i];
}

static void cpu_add(wk_backend *be, float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static void cpu_embed(wk_backend *be, float *out, const wk_mat *E, const int32_t *ids, int n) {
    int C = E->cols;
    for (int i = 0; i < n; i++) {
        size_t off = (size_t)ids[i] * C;
        float *o = out + (size_t)i * C;
        if (E->qtype) wk_dequant_row(E->qtype, (const uint8_t *)E->w + (size_t)ids[i] * wk_qtype_row_bytes(E->qtype, C), o, C);
        else if (E->dt == WICK_DT_F32) memcpy(o, (const float *)E->w + off, sizeof(float) * C);
        else wk_to_f32(o, (const uint16_t *)E->w + off, E->dt, (size_t)C);
    }
}

wk_backend *wk_backend_cpu(void) {
    static wk_backend be = {
        .name = "cpu",
        .alloc = wk_cpu_alloc,
        .free = wk_cpu_free,
        .upload = wk_cpu_copy,
        .download = wk_cpu_copy,
        .sync = wk_cpu_sync,
        .matmul = cpu_matmul,
        .matmul_f32 = cpu_matmul_f32,
        .lora_seg = wk_cpu_lora_seg,
        .lora_seg16 = wk_cpu_lora_seg16,
        .rmsnorm = cpu_rmsnorm,
        .rope = cpu_rope,
        .attention = cpu_attention,
        .swiglu = cpu_swiglu,
        .add = cpu_add,
        .embed = cpu_embed,
        .kv_store = wk_cpu_kv_store,
        .layernorm = wk_cpu_layernorm,
        .gelu = wk_cpu_gelu,
        .attention_bidir = wk_cpu_attention_bidir,
    };
    return &be;
}
