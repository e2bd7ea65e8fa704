/*
 * cuda_prefill.cu — prefill kernels of the CUDA backend (n > 8 query rows):
 *
 * Flash attention over the KV cache on TF32 tensor cores (the fast instance only; the
 * exact instance keeps the fp32 cuBLAS path of cuda_attention.cu). q [n][H][D] holds rows
 * at positions pos0..pos0+n-1, K/V the cache [Hk][cap][D] (GQA: query head h reads KV
 * head h / (H/Hk)); row i sees keys 0..pos0+i. A block takes FP_BM = 128 query rows of
 * one head, four warps of 32 rows (two 16-row MMA tiles, so each K/V fragment read from
 * shared memory feeds two products); it sweeps FP_BN-key tiles, double-buffered in shared
 * memory by cp.async (keys past the end are zero-filled). Q sits in shared memory, scaled
 * and rounded to TF32 once; scores and the output accumulator stay in registers
 * (mma.sync m16n8k8 TF32, fp32 accumulation, FlashAttention-2 style online softmax in
 * base 2). The score accumulator of a key tile is the A operand of P·V with the key order
 * permuted inside each group of 8 (lane t holds keys 2t, 2t+1 of S, so it takes V rows 2t,
 * 2t+1 as its k = t, t+4).
 * No score matrix is materialised.
 *
 * 16-bit activation copies: a multi-row GEMM with bf16/f16 weights rounds its input to
 * 16 bits (gemm() in cuda_ops.cu keeps one rounded copy per input pointer). The ops that
 * produce a GEMM input in prefill (RMSNorm, SwiGLU, this attention) write that copy
 * themselves, beside their fp32 output, once a 16-bit GEMM has run (b->act16), so no
 * separate cast kernel reads the activations again. The copy is the same rounding of the
 * same values, so results do not change.
 */
#include "backend/cuda/cuda_internal.cuh"

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <string.h>

#define FP_BM 128     /* query rows per block (4 warps × 32) */
#define FP_BN 32      /* keys per tile */
#define FP_THREADS 128
#define FP_MIN_ROWS 9 /* the decode path takes fewer rows */

/* ------------------------------------------------------------ helpers */
__device__ __forceinline__ unsigned to_tf32(float x) {
    unsigned u;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(u) : "f"(x));
    return u;
}

/* c += a·b: one m16n8k8 TF32 product (row-major A fragment, column-major B). */
__device__ __forceinline__ void mma_tf32(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* 16 bytes global -> shared, asynchronously; zero-filled when !valid (src is not read then). */
__device__ __forceinline__ void cp16(float *dst, const float *src, bool valid) {
    unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    int sz = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(sz));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* Two floats to 16 bits at d (bf16 or f16 by the type of d). */
__device__ __forceinline__ void st2(__nv_bfloat16 *d, float a, float b) { *(__nv_bfloat162 *)d = __floats2bfloat162_rn(a, b); }
__device__ __forceinline__ void st2(__half *d, float a, float b) { *(__half2 *)d = __floats2half2_rn(a, b); }
__device__ __forceinline__ void st1(__nv_bfloat16 *d, float a) { *d = __float2bfloat16_rn(a); }
__device__ __forceinline__ void st1(__half *d, float a) { *d = __float2half_rn(a); }

/* ---------------------------------------------------- flash attention */
/* Shared-memory row lengths (floats): Q and K rows are read 16 bytes at a time at column
 * 16s + 4t by lanes (g, t), so a row stride of 16 mod 32 words keeps the 8 lanes of a
 * quarter-warp on distinct banks; V is read one float at a time at rows 2t, columns g
 * (stride 4 mod 32 does that). */
template <int D>
struct fp_ld {
    static const int q = D + 16, k = D + 16, v = D + 4;
};

/* Key rows j0..j0+FP_BN-1 of K and V (row j at base + j*D) into Ks [FP_BN][ldk], Vs [FP_BN][ldv];
 * rows at or past `end` are zero. */
template <int D>
__device__ __forceinline__ void fp_load_tile(float *Ks, float *Vs, const float *kb, const float *vb, int j0, int end) {
    const int per = D / 4;
    for (int e = threadIdx.x; e < FP_BN * per; e += FP_THREADS) {
        int r = e / per, c = (e - r * per) * 4, j = j0 + r;
        bool ok = j < end;
        size_t off = ok ? (size_t)j * D + c : 0;
        cp16(Ks + r * fp_ld<D>::k + c, kb + off, ok);
        cp16(Vs + r * fp_ld<D>::v + c, vb + off, ok);
    }
}

/* The block's FP_BM query rows of head h into Qs [FP_BM][ldq], pre-scaled by sl2 and rounded
 * to TF32 once (zero past n). */
template <int D>
__device__ __forceinline__ void fp_load_q(float *Qs, const float *q, int i0, int n, int H, int h, float sl2) {
    const int per = D / 4;
    for (int e = threadIdx.x; e < FP_BM * per; e += FP_THREADS) {
        int r = e / per, c = (e - r * per) * 4, i = i0 + r;
        float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
        if (i < n) x = *(const float4 *)(q + ((size_t)i * H + h) * D + c);
        float4 y = make_float4(__uint_as_float(to_tf32(x.x * sl2)), __uint_as_float(to_tf32(x.y * sl2)),
                               __uint_as_float(to_tf32(x.z * sl2)), __uint_as_float(to_tf32(x.w * sl2)));
        *(float4 *)(Qs + r * fp_ld<D>::q + c) = y;
    }
}

/* s[mt][nt] = Q·Kᵀ (base-2 scores) for the warp's two 16-row tiles and the tile's 32 keys. The head
 * dimension is taken 16 at a time (sp) and permuted inside: lane (g, t) reads columns 16sp + 4t ..
 * + 3 of its Q rows and of key row g with one 16-byte load each, and feeds them as k = t, t + 4 of
 * two consecutive k-steps; Q and K use the same order, so the products are unchanged. */
template <int D>
__device__ __forceinline__ void fp_scores(float (&s)[2][FP_BN / 8][4], const float *Qw, const float *Ks) {
    int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < FP_BN / 8; nt++) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.f;
#pragma unroll 2
    for (int sp = 0; sp < D / 16; sp++) {
        float4 qa[2][2];
#pragma unroll
        for (int mt = 0; mt < 2; mt++) {
            qa[mt][0] = *(const float4 *)(Qw + (mt * 16 + g) * fp_ld<D>::q + sp * 16 + 4 * t);
            qa[mt][1] = *(const float4 *)(Qw + (mt * 16 + g + 8) * fp_ld<D>::q + sp * 16 + 4 * t);
        }
#pragma unroll
        for (int nt = 0; nt < FP_BN / 8; nt++) {
            float4 kb = *(const float4 *)(Ks + (nt * 8 + g) * fp_ld<D>::k + sp * 16 + 4 * t);
            unsigned b0 = to_tf32(kb.x), b1 = to_tf32(kb.y), b2 = to_tf32(kb.z), b3 = to_tf32(kb.w);
#pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                unsigned a0[4] = {__float_as_uint(qa[mt][0].x), __float_as_uint(qa[mt][1].x),
                                  __float_as_uint(qa[mt][0].y), __float_as_uint(qa[mt][1].y)};
                unsigned a1[4] = {__float_as_uint(qa[mt][0].z), __float_as_uint(qa[mt][1].z),
                                  __float_as_uint(qa[mt][0].w), __float_as_uint(qa[mt][1].w)};
                mma_tf32(s[mt][nt], a0, b0, b1);
                mma_tf32(s[mt][nt], a1, b2, b3);
            }
        }
    }
}

/* Online softmax of one 16-row tile's scores s (keys j0..; this lane's rows at absolute
 * positions pa, pa + 8): updates the running max m and partial sums l, rescales o, and
 * leaves the probabilities in s. */
template <int D>
__device__ __forceinline__ void fp_softmax(float (&s)[FP_BN / 8][4], float (&o)[D / 8][4], float (&m)[2], float (&l)[2],
                                           int j0, int pa, bool mask) {
    int t = threadIdx.x & 3;
    if (mask)
#pragma unroll
        for (int nt = 0; nt < FP_BN / 8; nt++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                int j = j0 + nt * 8 + 2 * t + e;
                if (j > pa) s[nt][e] = -INFINITY;
                if (j > pa + 8) s[nt][2 + e] = -INFINITY;
            }
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int nt = 0; nt < FP_BN / 8; nt++)
        mx[0] = fmaxf(mx[0], fmaxf(s[nt][0], s[nt][1])), mx[1] = fmaxf(mx[1], fmaxf(s[nt][2], s[nt][3]));
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    }
    /* key 0 is in every row's first tile, so mx is finite from there on */
    float c0 = exp2f(m[0] - mx[0]), c1 = exp2f(m[1] - mx[1]);
    m[0] = mx[0], m[1] = mx[1];
    float ps0 = 0.f, ps1 = 0.f;
#pragma unroll
    for (int nt = 0; nt < FP_BN / 8; nt++) {
        s[nt][0] = exp2f(s[nt][0] - mx[0]), s[nt][1] = exp2f(s[nt][1] - mx[0]);
        s[nt][2] = exp2f(s[nt][2] - mx[1]), s[nt][3] = exp2f(s[nt][3] - mx[1]);
        ps0 += s[nt][0] + s[nt][1], ps1 += s[nt][2] + s[nt][3];
    }
    l[0] = l[0] * c0 + ps0, l[1] = l[1] * c1 + ps1;
#pragma unroll
    for (int dn = 0; dn < D / 8; dn++) o[dn][0] *= c0, o[dn][1] *= c0, o[dn][2] *= c1, o[dn][3] *= c1;
}

/* o[mt] += P[mt]·V: the score accumulator of key group kt is the A operand with keys 2t, 2t+1 as
 * k = t, t + 4, so lane (g, t) takes V rows 2t and 2t + 1 of the group, column g of each 8. */
template <int D>
__device__ __forceinline__ void fp_pv(float (&o)[2][D / 8][4], const float (&s)[2][FP_BN / 8][4], const float *Vs) {
    int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
#pragma unroll
    for (int kt = 0; kt < FP_BN / 8; kt++) {
        unsigned a[2][4];
#pragma unroll
        for (int mt = 0; mt < 2; mt++) {
            a[mt][0] = to_tf32(s[mt][kt][0]), a[mt][1] = to_tf32(s[mt][kt][2]);
            a[mt][2] = to_tf32(s[mt][kt][1]), a[mt][3] = to_tf32(s[mt][kt][3]);
        }
        const float *vp = Vs + (kt * 8 + 2 * t) * fp_ld<D>::v + g;
#pragma unroll
        for (int dn = 0; dn < D / 8; dn++) {
            unsigned b0 = to_tf32(vp[dn * 8]), b1 = to_tf32(vp[fp_ld<D>::v + dn * 8]);
            mma_tf32(o[0][dn], a[0], b0, b1);
            mma_tf32(o[1][dn], a[1], b0, b1);
        }
    }
}

/* out[i][h][:] = softmax over keys 0..pos0+i of (q_i·k_j·scale) · v_j; block (FP_BM query rows,
 * head h), warp w owns rows 32w..32w+31 as two 16-row tiles; the heaviest blocks (last rows)
 * start first. out16: the 16-bit copy (T) or NULL. */
template <int D, typename T>
__global__ void __launch_bounds__(FP_THREADS) k_prefill_fa(float *out, T *out16, const float *q, const float *kc,
                                                           const float *vc, int n, int pos0, int H, int grp, int cap,
                                                           float sl2) {
    extern __shared__ __align__(16) float fp_sm[];
    const int tk = FP_BN * fp_ld<D>::k, tv = FP_BN * fp_ld<D>::v;
    float *Qs = fp_sm, *Ks = Qs + FP_BM * fp_ld<D>::q, *Vs = Ks + 2 * tk;
    int h = blockIdx.y, kh = h / grp, i0 = (gridDim.x - 1 - blockIdx.x) * FP_BM;
    int w = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    int row0 = i0 + w * 32, wfirst = pos0 + row0, wlast = wfirst + 31;
    int end = pos0 + min(i0 + FP_BM, n); /* keys the block needs */
    int ntiles = (end + FP_BN - 1) / FP_BN;
    const float *kb = kc + (size_t)kh * cap * D, *vb = vc + (size_t)kh * cap * D;
    fp_load_tile<D>(Ks, Vs, kb, vb, 0, end);
    cp_commit();
    fp_load_q<D>(Qs, q, i0, n, H, h, sl2);
    float o[2][D / 8][4], m[2][2], l[2][2];
#pragma unroll
    for (int mt = 0; mt < 2; mt++) {
        m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.f;
#pragma unroll
        for (int dn = 0; dn < D / 8; dn++) o[mt][dn][0] = o[mt][dn][1] = o[mt][dn][2] = o[mt][dn][3] = 0.f;
    }
    for (int it = 0; it < ntiles; it++) {
        int buf = it & 1, j0 = it * FP_BN;
        if (it + 1 < ntiles) {
            fp_load_tile<D>(Ks + (buf ^ 1) * tk, Vs + (buf ^ 1) * tv, kb, vb, j0 + FP_BN, end);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads(); /* the tile (and, the first time, Qs) is in shared memory */
        if (j0 <= wlast) { /* else every key of the tile is past this warp's rows */
            float s[2][FP_BN / 8][4];
            fp_scores<D>(s, Qs + w * 32 * fp_ld<D>::q, Ks + buf * tk);
            bool mask = j0 + FP_BN - 1 > wfirst;
            fp_softmax<D>(s[0], o[0], m[0], l[0], j0, wfirst + g, mask);
            fp_softmax<D>(s[1], o[1], m[1], l[1], j0, wfirst + 16 + g, mask);
            fp_pv<D>(o, s, Vs + buf * tv);
        }
        __syncthreads(); /* the buffer is refilled next iteration */
    }
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float lr = l[mt][r];
            lr += __shfl_xor_sync(0xffffffffu, lr, 1);
            lr += __shfl_xor_sync(0xffffffffu, lr, 2);
            int i = row0 + mt * 16 + g + 8 * r;
            if (i >= n) continue;
            float inv = 1.f / lr;
            size_t base = ((size_t)i * H + h) * D + 2 * t;
#pragma unroll
            for (int dn = 0; dn < D / 8; dn++) {
                float x = o[mt][dn][2 * r] * inv, y = o[mt][dn][2 * r + 1] * inv;
                *(float2 *)(out + base + dn * 8) = make_float2(x, y);
                if (out16) st2(out16 + base + dn * 8, x, y);
            }
        }
}

template <int D>
static size_t fp_smem() {
    return sizeof(float) * ((size_t)FP_BM * fp_ld<D>::q + 2 * FP_BN * (size_t)(fp_ld<D>::k + fp_ld<D>::v));
}

template <int D, typename T>
static void fp_launch(wkc_backend *b, float *out, T *out16, const float *q, const float *k, const float *v, int n,
                      int pos0, int H, int Hk, int cap, float scale) {
    size_t sb = fp_smem<D>();
    const void *f = (const void *)k_prefill_fa<D, T>;
    if (wkc_cuda_fail(b, cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sb),
                      "prefill attention shared memory"))
        return;
    dim3 grid((n + FP_BM - 1) / FP_BM, H);
    k_prefill_fa<D, T><<<grid, FP_THREADS, sb, b->st>>>(out, out16, q, k, v, n, pos0, H, H / Hk, cap,
                                                        scale * 1.4426950408889634f);
    wkc_launched(b, "prefill attention (flash, tf32)");
}

/* A 16-bit copy slot for n activations at x when a 16-bit GEMM is expected to read them
 * (b->act16 set, multi-row); NULL otherwise. The caller marks the copy once written. */
static void *act16_slot(wkc_backend *b, size_t cnt, int rows) {
    if (!b->act16 || rows < FP_MIN_ROWS) return NULL;
    return wkc_scratch(b, WKC_SCR_ACT16, cnt * 2);
}
static void act16_mark(wkc_backend *b, const float *x, size_t cnt) {
    b->cast_x = x, b->cast_n = cnt, b->cast_dt = b->act16;
}

int wkc_prefill_attention(wkc_backend *b, float *out, const float *q, const float *k, const float *v, int n, int pos0,
                          int H, int Hk, int D, int cap, float scale) {
    uintptr_t al = (uintptr_t)out | (uintptr_t)q | (uintptr_t)k | (uintptr_t)v;
    if (!b->tf32 || n < FP_MIN_ROWS || (D != 64 && D != 128) || Hk <= 0 || H % Hk || al % 16) return 0;
    size_t cnt = (size_t)n * H * D;
    void *o16 = act16_slot(b, cnt, n);
    int bf = b->act16 == WICK_DT_BF16;
    if (D == 64 && bf) fp_launch<64>(b, out, (__nv_bfloat16 *)o16, q, k, v, n, pos0, H, Hk, cap, scale);
    else if (D == 64) fp_launch<64>(b, out, (__half *)o16, q, k, v, n, pos0, H, Hk, cap, scale);
    else if (bf) fp_launch<128>(b, out, (__nv_bfloat16 *)o16, q, k, v, n, pos0, H, Hk, cap, scale);
    else fp_launch<128>(b, out, (__half *)o16, q, k, v, n, pos0, H, Hk, cap, scale);
    if (o16) act16_mark(b, out, cnt);
    return 1;
}

/* ------------------------------------------- RMSNorm + 16-bit copy */
/* k_rmsnorm4 of cuda_ops.cu that also writes y16 (the same values rounded to T). */
template <int V, typename T>
__global__ void k_rmsnorm4_16(float *y, T *y16, const float *x, const float *w, int dim, float eps) {
    __shared__ float red[32];
    int nv = dim / 4;
    const float4 *xi = (const float4 *)(x + (size_t)blockIdx.x * dim);
    float4 *yi = (float4 *)(y + (size_t)blockIdx.x * dim);
    T *hi = y16 + (size_t)blockIdx.x * dim;
    float4 r[V];
    float rs = wkc_rms_regs<V>(xi, nv, dim, eps, r, red);
#pragma unroll
    for (int u = 0; u < V; u++) {
        int j = threadIdx.x + u * blockDim.x;
        if (j < nv) {
            float4 g = w ? ((const float4 *)w)[j] : make_float4(1.f, 1.f, 1.f, 1.f);
            float4 v = make_float4(r[u].x * rs * g.x, r[u].y * rs * g.y, r[u].z * rs * g.z, r[u].w * rs * g.w);
            yi[j] = v;
            st2(hi + 4 * j, v.x, v.y);
            st2(hi + 4 * j + 2, v.z, v.w);
        }
    }
}

template <typename T>
static void rms16_launch(wkc_backend *b, float *y, T *y16, const float *x, const float *w, int n, int dim, float eps) {
    int nv = dim / 4, threads = nv >= 256 ? 256 : 32 * ((nv + 31) / 32), per = (nv + threads - 1) / threads;
    if (per == 1) k_rmsnorm4_16<1, T><<<n, threads, 0, b->st>>>(y, y16, x, w, dim, eps);
    else if (per == 2) k_rmsnorm4_16<2, T><<<n, threads, 0, b->st>>>(y, y16, x, w, dim, eps);
    else k_rmsnorm4_16<4, T><<<n, threads, 0, b->st>>>(y, y16, x, w, dim, eps);
    wkc_launched(b, "rmsnorm (+16-bit copy)");
}

int wkc_rmsnorm16(wkc_backend *b, float *y, const float *x, const float *w, int n, int dim, float eps) {
    /* dim > 256: a hidden state (GEMM input), not a per-head q/k norm */
    if (!b->act16 || n < FP_MIN_ROWS || dim <= 256 || dim % 4 || dim / 4 > 4 * 256 ||
        ((uintptr_t)x | (uintptr_t)y | (uintptr_t)w) % 16)
        return 0;
    size_t cnt = (size_t)n * dim;
    void *y16 = act16_slot(b, cnt, n);
    if (!y16) return 0;
    if (b->act16 == WICK_DT_BF16) rms16_launch(b, y, (__nv_bfloat16 *)y16, x, w, n, dim, eps);
    else rms16_launch(b, y, (__half *)y16, x, w, n, dim, eps);
    act16_mark(b, y, cnt);
    return 1;
}

/* -------------------------------------------- SwiGLU + 16-bit copy */
/* out = silu(g)·u (k_swiglu's formula), four at a time, with out16 beside it. */
template <typename T>
__global__ void k_swiglu4_16(float *out, T *out16, const float *g, const float *u, size_t n4) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4; i += (size_t)gridDim.x * blockDim.x) {
        float4 a = ((const float4 *)g)[i], c = ((const float4 *)u)[i];
        float4 r = make_float4(a.x / (1.f + expf(-a.x)) * c.x, a.y / (1.f + expf(-a.y)) * c.y,
                               a.z / (1.f + expf(-a.z)) * c.z, a.w / (1.f + expf(-a.w)) * c.w);
        ((float4 *)out)[i] = r;
        st2(out16 + 4 * i, r.x, r.y);
        st2(out16 + 4 * i + 2, r.z, r.w);
    }
}

int wkc_swiglu16(wkc_backend *b, float *out, const float *gate, const float *up, size_t n) {
    if (!b->act16 || n % 4 || ((uintptr_t)out | (uintptr_t)gate | (uintptr_t)up) % 16) return 0;
    void *o16 = wkc_scratch(b, WKC_SCR_ACT16, n * 2);
    if (!o16) return 0;
    size_t n4 = n / 4;
    int blocks = (int)((n4 + 255) / 256 < 4096 ? (n4 + 255) / 256 : 4096);
    if (b->act16 == WICK_DT_BF16) k_swiglu4_16<<<blocks, 256, 0, b->st>>>(out, (__nv_bfloat16 *)o16, gate, up, n4);
    else k_swiglu4_16<<<blocks, 256, 0, b->st>>>(out, (__half *)o16, gate, up, n4);
    wkc_launched(b, "swiglu (+16-bit copy)");
    act16_mark(b, out, n);
    return 1;
}

/* ------------------------------------------- GEMM with a bias epilogue */
/* Multi-row products with a bias (q/k/v in Qwen2) on the fast instance: one cuBLASLt
 * matmul adds the bias in its epilogue instead of a separate pass over y. Plans (layouts,
 * descriptor, the heuristic's algorithm) are kept per shape; any cuBLASLt failure turns
 * the path off and the caller's cublasGemmEx + bias kernel run instead. */
#define LT_PLANS 16
#define LT_WORKSPACE ((size_t)32 << 20)

struct wkc_lt_plan {
    int out, n, in, dt, acc;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
};
struct wkc_lt {
    cublasLtHandle_t h;
    int off; /* a call failed: not used again */
    int np;
    wkc_lt_plan p[LT_PLANS];
};

static void lt_plan_free(wkc_lt_plan *p) {
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->la) cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
    if (p->lc) cublasLtMatrixLayoutDestroy(p->lc);
    memset(p, 0, sizeof *p);
}

/* Fills p for y[n,out] (col-major out×n, f32) = W (stored in×out, 16-bit, transposed) · x (in×n, 16-bit)
 * + bias (+ y when acc); 0 when cuBLASLt has no algorithm for it. */
static int lt_plan_make(wkc_lt *L, wkc_lt_plan *p, int out, int n, int in, int dt, int acc, const float *bias) {
    cudaDataType_t t = dt == WICK_DT_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
    size_t ws = LT_WORKSPACE;
    int ok = cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
             cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) == CUBLAS_STATUS_SUCCESS &&
             cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) == CUBLAS_STATUS_SUCCESS &&
             cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep) == CUBLAS_STATUS_SUCCESS &&
             cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias) ==
                 CUBLAS_STATUS_SUCCESS &&
             cublasLtMatrixLayoutCreate(&p->la, t, in, out, in) == CUBLAS_STATUS_SUCCESS &&
             cublasLtMatrixLayoutCreate(&p->lb, t, in, n, in) == CUBLAS_STATUS_SUCCESS &&
             cublasLtMatrixLayoutCreate(&p->lc, CUDA_R_32F, out, n, out) == CUBLAS_STATUS_SUCCESS;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    ok = ok && cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS &&
         cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) ==
             CUBLAS_STATUS_SUCCESS &&
         cublasLtMatmulAlgoGetHeuristic(L->h, p->op, p->la, p->lb, p->lc, p->lc, pref, 1, &res, &found) ==
             CUBLAS_STATUS_SUCCESS &&
         found > 0;
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (!ok) {
        lt_plan_free(p);
        return 0;
    }
    p->algo = res.algo;
    p->out = out, p->n = n, p->in = in, p->dt = dt, p->acc = acc;
    return 1;
}

static wkc_lt_plan *lt_plan(wkc_lt *L, int out, int n, int in, int dt, int acc, const float *bias) {
    for (int i = 0; i < L->np; i++) {
        wkc_lt_plan *p = &L->p[i];
        if (p->out == out && p->n == n && p->in == in && p->dt == dt && p->acc == acc) return p;
    }
    if (L->np == LT_PLANS || !lt_plan_make(L, &L->p[L->np], out, n, in, dt, acc, bias)) return NULL;
    return &L->p[L->np++];
}

int wkc_gemm_bias(wkc_backend *b, float *y, const void *xh, const wk_mat *W, const float *bias, int n, int acc) {
    if (!b->tf32 || !bias || (uintptr_t)bias % 16 || (b->lt && b->lt->off)) return 0;
    if (!b->lt) {
        wkc_lt *L = (wkc_lt *)wk_calloc(sizeof *L, "cublasLt state");
        if (!L) return 0;
        if (cublasLtCreate(&L->h) != CUBLAS_STATUS_SUCCESS) L->off = 1;
        b->lt = L;
        if (L->off) return 0;
    }
    void *ws = b->scr[WKC_SCR_LT];
    if (b->scr_cap[WKC_SCR_LT] < LT_WORKSPACE) { /* (allocating forgets the cached 16-bit input: keep it) */
        const float *cx = b->cast_x;
        if (!(ws = wkc_scratch(b, WKC_SCR_LT, LT_WORKSPACE))) return 0;
        b->cast_x = cx;
    }
    wkc_lt_plan *p = lt_plan(b->lt, W->rows, n, W->cols, (int)W->dt, acc, bias);
    float one = 1.f, beta = acc ? 1.f : 0.f;
    if (!p || cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias) ||
        cublasLtMatmul(b->lt->h, p->op, &one, W->w, p->la, xh, p->lb, &beta, y, p->lc, y, p->lc, &p->algo, ws,
                       LT_WORKSPACE, b->st)) {
        b->lt->off = 1;
        return 0;
    }
    b->optag = W->rows;
    wkc_launched(b, "gemm16 + bias (cublasLt)");
    return 1;
}
