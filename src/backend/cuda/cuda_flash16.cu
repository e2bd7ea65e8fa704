/*
 * cuda_flash16.cu — bf16 tensor-core causal attention for training (wkt_attn_fwd_bf16 /
 * wkt_attn_bwd_bf16 in cuda_train.h): the packed-sequence semantics of the exact kernels
 * (cuda_train.cu) and of the TF32 ones (cuda_flash.cu), with every product an
 * mma.sync m16n8k16 on bf16 operands and fp32 accumulation, as FlashAttention-2 does.
 * q, k, v (and dout) are f32 in the trainer; each call first rounds them to bf16 copies in the
 * backend's score scratch (one pass), so the tiles staged in shared memory are read in
 * 16-byte bf16 chunks, once each. Softmax statistics, the saved lse, dsum and every accumulator
 * are fp32.
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16, lane = 4·g + t):
 *   A 16×16 row-major: a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..)
 *   B 16×8 "col":      b0 (k 2t..2t+1, n g), b1 (k 2t+8..2t+9, n g)
 *   C 16×8 f32:        c0,c1 (g, 2t..2t+1), c2,c3 (g+8, 2t..2t+1)
 * so a C tile pair (n 0..15) is, once rounded, the A fragment of the next product (P·V).
 * B operands are kept in shared memory as [n][k] rows (k contiguous): K for Q·Kᵀ, and
 * transposed copies (Vᵀ, Kᵀ, Qᵀ, dOᵀ) for the products that contract over rows.
 *
 * Forward: a block of 64 query rows of one head (4 warps × 16 rows) sweeps 64-key tiles
 * from its first row's sequence start to its last row, online softmax in registers. After a
 * bf16 GEMM (the trainer's v projection) it also writes out rounded to bf16 into the backend's
 * 16-bit activation slot, which the o projection's GEMM then reads instead of casting out.
 * Backward (no atomics, one writer per output, same results run to run):
 *   dq  — a block of 64 query rows, 32-key tiles: S, dP recomputed, dS = P∘(dP − dsum), dQ += dS·K;
 *   dkv — a block of 64 key rows and one query head, 32-query tiles: Sᵀ, dPᵀ, dV += Pᵀ·dO,
 *         dK += dSᵀ·Q, written per query head and summed over the GQA group in fixed order
 *         (cuda_flash.cu's kt_fa_group_sum).
 */
#include "backend/cuda/cuda_internal.cuh"
extern "C" {
#include "backend/cuda/cuda_train.h"
}

#include <cuda_bf16.h>
#include <limits.h>
#include <math.h>

#define F16_THREADS 128 /* 4 warps */
#define F16_LOG2E 1.4426950408889634f
#define F16_LN2 0.6931471805599453f

typedef __nv_bfloat16 bf16;

/* The group sum of per-head dk/dv partials (cuda_flash.cu). */
__global__ void kt_fa_group_sum(float *dk, float *dv, const float *dkp, const float *dvp, int n, int H, int Hk, int D,
                                float scale);
__global__ void kt_fa_dsum(float *dsum, const float *dout, const float *out, size_t nh, int D);

__device__ __forceinline__ uint32_t f16_pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi); /* .x (low half) = lo */
    return *reinterpret_cast<uint32_t *>(&v);
}

__device__ __forceinline__ uint32_t f16_ld32(const bf16 *p) { return *reinterpret_cast<const uint32_t *>(p); }

/* A fragment of the 16×16 block at (row0, k0) of a row-major bf16 tile with row length ld. */
__device__ __forceinline__ void f16_frag_a(uint32_t (&a)[4], const bf16 *s, int ld, int row0, int k0) {
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const bf16 *p = s + (row0 + g) * ld + k0 + 2 * t;
    a[0] = f16_ld32(p), a[1] = f16_ld32(p + 8 * ld), a[2] = f16_ld32(p + 8), a[3] = f16_ld32(p + 8 * ld + 8);
}

/* B fragment (k0..k0+15, n0..n0+7) of a tile stored as [n][k] rows of length ld. */
__device__ __forceinline__ void f16_frag_b(uint32_t (&b)[2], const bf16 *s, int ld, int n0, int k0) {
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const bf16 *p = s + (n0 + g) * ld + k0 + 2 * t;
    b[0] = f16_ld32(p), b[1] = f16_ld32(p + 8);
}

/* The A fragment of k-step kk from a row of C tiles: tiles 2kk and 2kk+1, rounded to bf16. */
__device__ __forceinline__ void f16_c_to_a(uint32_t (&a)[4], const float (*c)[4], int kk) {
    a[0] = f16_pack(c[2 * kk][0], c[2 * kk][1]), a[1] = f16_pack(c[2 * kk][2], c[2 * kk][3]);
    a[2] = f16_pack(c[2 * kk + 1][0], c[2 * kk + 1][1]), a[3] = f16_pack(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

__device__ __forceinline__ void f16_mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* ROWS rows (row0 + r) of D bf16 values at src + row·rstride into dst[r][ld]; rows at or past
 * `end` are zero. 16-byte copies, consecutive threads along a row. */
template <int D, int ROWS>
__device__ void f16_load(bf16 *dst, int ld, const bf16 *src, int row0, int end, size_t rstride) {
    for (int e = threadIdx.x; e < ROWS * (D / 8); e += F16_THREADS) {
        int r = e / (D / 8), c8 = e - r * (D / 8), j = row0 + r;
        uint4 x = make_uint4(0u, 0u, 0u, 0u);
        if (j < end) x = *reinterpret_cast<const uint4 *>(src + (size_t)j * rstride + 8 * c8);
        *reinterpret_cast<uint4 *>(dst + r * ld + 8 * c8) = x;
    }
}

/* The same rows transposed into dT[d][r] (row length ldt), and also row-major into dst[r][ld]
 * when dst is not NULL: one read of the tile for both. Consecutive threads take consecutive
 * rows of one 8-value column group, so a warp's 2-byte transposed stores hit distinct words. */
template <int D, int ROWS>
__device__ void f16_load_t(bf16 *dT, int ldt, bf16 *dst, int ld, const bf16 *src, int row0, int end,
                           size_t rstride) {
    for (int e = threadIdx.x; e < ROWS * (D / 8); e += F16_THREADS) {
        int r = e % ROWS, c8 = e / ROWS, j = row0 + r;
        uint4 x = make_uint4(0u, 0u, 0u, 0u);
        if (j < end) x = *reinterpret_cast<const uint4 *>(src + (size_t)j * rstride + 8 * c8);
        if (dst) *reinterpret_cast<uint4 *>(dst + r * ld + 8 * c8) = x;
        const bf16 *v = reinterpret_cast<const bf16 *>(&x);
        bf16 *p = dT + 8 * c8 * ldt + r;
#pragma unroll
        for (int i = 0; i < 8; i++) p[i * ldt] = v[i];
    }
}

/* dst[i] = src[i] rounded to bf16 over n elements (n % 4 == 0, src 16-byte aligned). */
__global__ void kt_f16_cast(bf16 *dst, const float *src, size_t n4) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4; i += (size_t)gridDim.x * blockDim.x) {
        float4 x = reinterpret_cast<const float4 *>(src)[i];
        *reinterpret_cast<uint2 *>(dst + 4 * i) = make_uint2(f16_pack(x.x, x.y), f16_pack(x.z, x.w));
    }
}

/* Sum over the 4 lanes of a quad (the lanes holding one C row). */
__device__ __forceinline__ float f16_quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
__device__ __forceinline__ float f16_quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

/* ------------------------------------------------------------ forward */

/* Shared: Qs, Ks [64][D+8], Vt [D][72] (bf16). Thread: rows i0 + 16w + g (half 0) and + 8 (half 1). */
template <int D>
__global__ void __launch_bounds__(F16_THREADS) kt_f16_fwd(float *out, bf16 *out16, float *lse, const bf16 *q,
                                                          const bf16 *k, const bf16 *v, const int32_t *rs, int n,
                                                          int H, int Hk, float scale) {
    extern __shared__ __align__(16) unsigned char f16_sm[];
    const int LD = D + 8, LT = 64 + 8;
    bf16 *Qs = reinterpret_cast<bf16 *>(f16_sm), *Ks = Qs + 64 * LD, *Vt = Ks + 64 * LD;
    int h = blockIdx.y, kh = h / (H / Hk), i0 = blockIdx.x * 64, last = min(i0 + 64, n) - 1;
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    int row[2] = {i0 + 16 * w + g, i0 + 16 * w + g + 8}, rsr[2];
    for (int x = 0; x < 2; x++) rsr[x] = row[x] < n ? rs[row[x]] : INT_MAX; /* past n: no key is valid */
    f16_load<D, 64>(Qs, LD, q + (size_t)h * D, i0, n, (size_t)H * D);
    float o[D / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    const float sl = scale * F16_LOG2E; /* scores in log2 units */
#pragma unroll
    for (int d = 0; d < D / 8; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
    for (int j0 = rs[i0]; j0 <= last; j0 += 64) {
        __syncthreads(); /* the previous tile is consumed */
        f16_load<D, 64>(Ks, LD, k + (size_t)kh * D, j0, last + 1, (size_t)Hk * D);
        f16_load_t<D, 64>(Vt, LT, NULL, 0, v + (size_t)kh * D, j0, last + 1, (size_t)Hk * D);
        __syncthreads();
        if (j0 > i0 + 16 * w + 15) continue; /* every key of the tile is after this warp's rows */
        float s[8][4];
#pragma unroll
        for (int nt = 0; nt < 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t a[4];
            f16_frag_a(a, Qs, LD, 16 * w, 16 * kk);
#pragma unroll
            for (int nt = 0; nt < 8; nt++) {
                uint32_t b[2];
                f16_frag_b(b, Ks, LD, 8 * nt, 16 * kk);
                f16_mma(s[nt], a, b);
            }
        }
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int x = e >> 1, j = j0 + 8 * nt + 2 * t + (e & 1);
                float sv = j >= rsr[x] && j <= row[x] ? s[nt][e] * sl : -INFINITY;
                s[nt][e] = sv;
                mx[x] = fmaxf(mx[x], sv);
            }
        float corr[2], ps[2] = {0.f, 0.f};
#pragma unroll
        for (int x = 0; x < 2; x++) {
            float mn = fmaxf(m[x], f16_quad_max(mx[x]));
            corr[x] = mn == -INFINITY ? 1.f : exp2f(m[x] - mn);
            m[x] = mn;
        }
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int x = e >> 1;
                float p = s[nt][e] == -INFINITY ? 0.f : exp2f(s[nt][e] - m[x]);
                s[nt][e] = p;
                ps[x] += p;
            }
        l[0] = l[0] * corr[0] + ps[0], l[1] = l[1] * corr[1] + ps[1]; /* per-lane partial sums */
#pragma unroll
        for (int d = 0; d < D / 8; d++) o[d][0] *= corr[0], o[d][1] *= corr[0], o[d][2] *= corr[1], o[d][3] *= corr[1];
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            uint32_t a[4];
            f16_c_to_a(a, s, kk);
#pragma unroll
            for (int d = 0; d < D / 8; d++) {
                uint32_t b[2];
                f16_frag_b(b, Vt, LT, 8 * d, 16 * kk);
                f16_mma(o[d], a, b);
            }
        }
    }
#pragma unroll
    for (int x = 0; x < 2; x++) {
        float lt = f16_quad_sum(l[x]);
        if (row[x] >= n) continue;
        float inv = 1.f / lt;
        size_t off = ((size_t)row[x] * H + h) * D + 2 * t;
#pragma unroll
        for (int d = 0; d < D / 8; d++) {
            float o0 = o[d][2 * x] * inv, o1 = o[d][2 * x + 1] * inv;
            *reinterpret_cast<float2 *>(out + off + 8 * d) = make_float2(o0, o1);
            if (out16) *reinterpret_cast<uint32_t *>(out16 + off + 8 * d) = f16_pack(o0, o1);
        }
        if (t == 0) lse[(size_t)row[x] * H + h] = m[x] * F16_LN2 + logf(lt);
    }
}

/* ------------------------------------------------------------ backward: dq */

/* Shared: Qs, Gs (dO) [64][D+8], Ks, Vs [32][D+8], Kt [D][40]. Rows as in the forward. */
template <int D>
__global__ void __launch_bounds__(F16_THREADS) kt_f16_dq(float *dq, const bf16 *dout, const float *lse,
                                                         const float *dsum, const bf16 *q, const bf16 *k,
                                                         const bf16 *v, const int32_t *rs, int n, int H, int Hk,
                                                         float scale) {
    extern __shared__ __align__(16) unsigned char f16_sm[];
    const int LD = D + 8, LT = 32 + 8;
    bf16 *Qs = reinterpret_cast<bf16 *>(f16_sm), *Gs = Qs + 64 * LD, *Ks = Gs + 64 * LD, *Vs = Ks + 32 * LD;
    bf16 *Kt = Vs + 32 * LD;
    int h = blockIdx.y, kh = h / (H / Hk), i0 = blockIdx.x * 64, last = min(i0 + 64, n) - 1;
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    int row[2] = {i0 + 16 * w + g, i0 + 16 * w + g + 8}, rsr[2];
    float L[2], Dr[2];
    for (int x = 0; x < 2; x++) {
        bool in = row[x] < n;
        rsr[x] = in ? rs[row[x]] : INT_MAX;
        L[x] = in ? lse[(size_t)row[x] * H + h] * F16_LOG2E : 0.f;
        Dr[x] = in ? dsum[(size_t)row[x] * H + h] : 0.f;
    }
    f16_load<D, 64>(Qs, LD, q + (size_t)h * D, i0, n, (size_t)H * D);
    f16_load<D, 64>(Gs, LD, dout + (size_t)h * D, i0, n, (size_t)H * D);
    const float sl = scale * F16_LOG2E;
    float acc[D / 8][4];
#pragma unroll
    for (int d = 0; d < D / 8; d++) acc[d][0] = acc[d][1] = acc[d][2] = acc[d][3] = 0.f;
    for (int j0 = rs[i0]; j0 <= last; j0 += 32) {
        __syncthreads();
        f16_load_t<D, 32>(Kt, LT, Ks, LD, k + (size_t)kh * D, j0, last + 1, (size_t)Hk * D);
        f16_load<D, 32>(Vs, LD, v + (size_t)kh * D, j0, last + 1, (size_t)Hk * D);
        __syncthreads();
        if (j0 > i0 + 16 * w + 15) continue;
        float s[4][4], dp[4][4];
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) s[nt][e] = dp[nt][e] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t a[4], ag[4];
            f16_frag_a(a, Qs, LD, 16 * w, 16 * kk);
            f16_frag_a(ag, Gs, LD, 16 * w, 16 * kk);
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                uint32_t b[2], bv[2];
                f16_frag_b(b, Ks, LD, 8 * nt, 16 * kk);
                f16_frag_b(bv, Vs, LD, 8 * nt, 16 * kk);
                f16_mma(s[nt], a, b);
                f16_mma(dp[nt], ag, bv);
            }
        }
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int x = e >> 1, j = j0 + 8 * nt + 2 * t + (e & 1);
                float ds = 0.f;
                if (j >= rsr[x] && j <= row[x]) ds = exp2f(s[nt][e] * sl - L[x]) * (dp[nt][e] - Dr[x]);
                s[nt][e] = ds;
            }
#pragma unroll
        for (int kk = 0; kk < 2; kk++) {
            uint32_t a[4];
            f16_c_to_a(a, s, kk);
#pragma unroll
            for (int d = 0; d < D / 8; d++) {
                uint32_t b[2];
                f16_frag_b(b, Kt, LT, 8 * d, 16 * kk);
                f16_mma(acc[d], a, b);
            }
        }
    }
#pragma unroll
    for (int x = 0; x < 2; x++) {
        if (row[x] >= n) continue;
        float *dst = dq + ((size_t)row[x] * H + h) * D + 2 * t;
#pragma unroll
        for (int d = 0; d < D / 8; d++)
            *reinterpret_cast<float2 *>(dst + 8 * d) = make_float2(acc[d][2 * x] * scale, acc[d][2 * x + 1] * scale);
    }
}

/* ------------------------------------------------------------ backward: dk, dv */

/* Block: 64 key rows (first + 16w + g, + 8) and query head h. Shared: Ks, Vs [64][D+8],
 * Qs, Gs [32][D+8], Qt, Gt [D][40], Ls, Ds [32] (f32). Writes unscaled dk and dv of head h. */
template <int D>
__global__ void __launch_bounds__(F16_THREADS) kt_f16_dkv(float *dkp, float *dvp, const bf16 *dout, const float *lse,
                                                          const float *dsum, const bf16 *q, const bf16 *k,
                                                          const bf16 *v, const int32_t *re, int n, int H, int Hk,
                                                          float scale) {
    extern __shared__ __align__(16) unsigned char f16_sm[];
    const int LD = D + 8, LT = 32 + 8;
    bf16 *Ks = reinterpret_cast<bf16 *>(f16_sm), *Vs = Ks + 64 * LD, *Qs = Vs + 64 * LD, *Gs = Qs + 32 * LD;
    bf16 *Qt = Gs + 32 * LD, *Gt = Qt + D * LT;
    float *Ls = reinterpret_cast<float *>(Gt + D * LT), *Ds = Ls + 32;
    int h = blockIdx.y, kh = h / (H / Hk), first = blockIdx.x * 64, lastk = min(first + 64, n) - 1;
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    int key[2] = {first + 16 * w + g, first + 16 * w + g + 8}, rek[2];
    for (int x = 0; x < 2; x++) rek[x] = key[x] < n ? re[key[x]] : -1; /* past n: no query is valid */
    int hi = re[lastk];
    f16_load<D, 64>(Ks, LD, k + (size_t)kh * D, first, n, (size_t)Hk * D);
    f16_load<D, 64>(Vs, LD, v + (size_t)kh * D, first, n, (size_t)Hk * D);
    const float sl = scale * F16_LOG2E;
    float ak[D / 8][4], av[D / 8][4];
#pragma unroll
    for (int d = 0; d < D / 8; d++)
#pragma unroll
        for (int e = 0; e < 4; e++) ak[d][e] = av[d][e] = 0.f;
    for (int i0 = first; i0 < hi; i0 += 32) {
        __syncthreads();
        f16_load_t<D, 32>(Qt, LT, Qs, LD, q + (size_t)h * D, i0, hi, (size_t)H * D);
        f16_load_t<D, 32>(Gt, LT, Gs, LD, dout + (size_t)h * D, i0, hi, (size_t)H * D);
        if (threadIdx.x < 32) {
            int ii = i0 + threadIdx.x;
            Ls[threadIdx.x] = ii < hi ? lse[(size_t)ii * H + h] * F16_LOG2E : 0.f;
            Ds[threadIdx.x] = ii < hi ? dsum[(size_t)ii * H + h] : 0.f;
        }
        __syncthreads();
        if (i0 + 31 < first + 16 * w) continue; /* every query of the tile is before this warp's keys */
        float st[4][4], dpt[4][4];
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) st[nt][e] = dpt[nt][e] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t a[4], avf[4];
            f16_frag_a(a, Ks, LD, 16 * w, 16 * kk);
            f16_frag_a(avf, Vs, LD, 16 * w, 16 * kk);
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                uint32_t b[2], bg[2];
                f16_frag_b(b, Qs, LD, 8 * nt, 16 * kk);
                f16_frag_b(bg, Gs, LD, 8 * nt, 16 * kk);
                f16_mma(st[nt], a, b);     /* Sᵀ = K·Qᵀ */
                f16_mma(dpt[nt], avf, bg); /* dPᵀ = V·dOᵀ */
            }
        }
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int x = e >> 1, c = 8 * nt + 2 * t + (e & 1), i = i0 + c;
                float p = 0.f, ds = 0.f;
                if (i >= key[x] && i < rek[x]) {
                    p = exp2f(st[nt][e] * sl - Ls[c]);
                    ds = p * (dpt[nt][e] - Ds[c]);
                }
                st[nt][e] = p, dpt[nt][e] = ds;
            }
#pragma unroll
        for (int kk = 0; kk < 2; kk++) {
            uint32_t ap[4], ad[4];
            f16_c_to_a(ap, st, kk);
            f16_c_to_a(ad, dpt, kk);
#pragma unroll
            for (int d = 0; d < D / 8; d++) {
                uint32_t b[2];
                f16_frag_b(b, Gt, LT, 8 * d, 16 * kk);
                f16_mma(av[d], ap, b); /* dV += Pᵀ·dO */
                f16_frag_b(b, Qt, LT, 8 * d, 16 * kk);
                f16_mma(ak[d], ad, b); /* dK += dSᵀ·Q */
            }
        }
    }
#pragma unroll
    for (int x = 0; x < 2; x++) {
        if (key[x] >= n) continue;
        size_t o = ((size_t)key[x] * H + h) * D + 2 * t;
#pragma unroll
        for (int d = 0; d < D / 8; d++) {
            *reinterpret_cast<float2 *>(dkp + o + 8 * d) = make_float2(ak[d][2 * x], ak[d][2 * x + 1]);
            *reinterpret_cast<float2 *>(dvp + o + 8 * d) = make_float2(av[d][2 * x], av[d][2 * x + 1]);
        }
    }
}

/* ------------------------------------------------------------ launches */

static size_t f16_smem_fwd(int D) { return 2 * (2 * 64 * (size_t)(D + 8) + (size_t)D * 72); }
static size_t f16_smem_dq(int D) { return 2 * (2 * 64 * (size_t)(D + 8) + 2 * 32 * (size_t)(D + 8) + (size_t)D * 40); }
static size_t f16_smem_dkv(int D) {
    return 2 * (2 * 64 * (size_t)(D + 8) + 2 * 32 * (size_t)(D + 8) + 2 * (size_t)D * 40) + 2 * 32 * sizeof(float);
}

static int f16_smem(wkc_backend *b, const void *f, size_t bytes) {
    return !wkc_cuda_fail(b, cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes),
                          "bf16 attention shared memory");
}

/* 1 when the bf16 kernels take this shape and these pointers (as the TF32 ones). */
static int f16_takes(int D, int H, int Hk, const void *const *ptrs, int np) {
    uintptr_t a = 0;
    for (int i = 0; i < np; i++) a |= (uintptr_t)ptrs[i];
    return (D == 64 || D == 128) && Hk > 0 && H > 0 && H % Hk == 0 && a % 16 == 0;
}

/* bf16 copies of the nb inputs src[i] (cnt[i] floats each, cnt[i] % 4 == 0, 16-byte aligned) in
 * the backend's score scratch, one pass each; dst[i] gets each copy. 0 when the scratch cannot
 * grow (error recorded). */
static int f16_inputs(wkc_backend *b, const float *const *src, const size_t *cnt, int nb, const bf16 **dst) {
    size_t tot = 0;
    for (int i = 0; i < nb; i++) tot += (cnt[i] + 7) & ~(size_t)7; /* segments stay 16-byte aligned */
    bf16 *s = (bf16 *)wkc_scratch(b, WKC_SCR_SCORES, tot * 2);
    if (!s) return 0;
    for (int i = 0; i < nb; i++) {
        kt_f16_cast<<<wkc_blocks(cnt[i] / 4), 256, 0, b->st>>>(s, src[i], cnt[i] / 4);
        dst[i] = s;
        s += (cnt[i] + 7) & ~(size_t)7;
    }
    wkc_launched(b, "bf16 attention input cast");
    return 1;
}

template <int D>
static void f16_fwd(wkc_backend *b, float *out, bf16 *out16, float *lse, const bf16 *q, const bf16 *k,
                    const bf16 *v, const int32_t *rs, int n, int H, int Hk, float scale) {
    size_t sb = f16_smem_fwd(D);
    if (!f16_smem(b, (const void *)kt_f16_fwd<D>, sb)) return;
    dim3 grid((n + 63) / 64, H);
    kt_f16_fwd<D><<<grid, F16_THREADS, sb, b->st>>>(out, out16, lse, q, k, v, rs, n, H, Hk, scale);
    wkc_launched(b, "bf16 attention forward (training)");
}

/* The backend's 16-bit activation slot when the last multi-row GEMM had bf16 weights (the next
 * one, the o projection, then reads the forward's bf16 copy of out instead of casting it:
 * cuda_ops.cu gemm); NULL otherwise. */
static bf16 *f16_out16(wkc_backend *b, size_t cnt, int n) {
    if (b->act16 != WICK_DT_BF16 || n <= 8) return NULL;
    return (bf16 *)wkc_scratch(b, WKC_SCR_ACT16, cnt * 2);
}

int wkt_attn_fwd_bf16(wk_backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                      const int32_t *rs, int n, int H, int Hk, int D, float scale) {
    const void *ptrs[] = {out, q, k, v};
    if (!f16_takes(D, H, Hk, ptrs, 4)) return 0;
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (n <= 0) return 1;
    size_t cnt = (size_t)n * H * D, kc = (size_t)n * Hk * D;
    const float *src[3] = {q, k, v};
    size_t cn[3] = {cnt, kc, kc};
    const bf16 *h[3];
    if (!f16_inputs(b, src, cn, 3, h)) return 1;
    bf16 *o16 = f16_out16(b, cnt, n);
    if (D == 64) f16_fwd<64>(b, out, o16, lse, h[0], h[1], h[2], rs, n, H, Hk, scale);
    else f16_fwd<128>(b, out, o16, lse, h[0], h[1], h[2], rs, n, H, Hk, scale);
    if (o16) b->cast_x = out, b->cast_n = cnt, b->cast_dt = WICK_DT_BF16; /* as cuda_prefill.cu's act16_mark */
    return 1;
}

template <int D>
static void f16_bwd(wkc_backend *b, float *dq, float *dkp, float *dvp, const bf16 *dout, const float *lse,
                    const float *dsum, const bf16 *q, const bf16 *k, const bf16 *v, const int32_t *rs,
                    const int32_t *re, int n, int H, int Hk, float scale) {
    size_t sq = f16_smem_dq(D), skv = f16_smem_dkv(D);
    if (!f16_smem(b, (const void *)kt_f16_dq<D>, sq) || !f16_smem(b, (const void *)kt_f16_dkv<D>, skv)) return;
    dim3 grid((n + 63) / 64, H);
    kt_f16_dq<D><<<grid, F16_THREADS, sq, b->st>>>(dq, dout, lse, dsum, q, k, v, rs, n, H, Hk, scale);
    wkc_launched(b, "bf16 attention backward (dq)");
    kt_f16_dkv<D><<<grid, F16_THREADS, skv, b->st>>>(dkp, dvp, dout, lse, dsum, q, k, v, re, n, H, Hk, scale);
    wkc_launched(b, "bf16 attention backward (dk, dv)");
}

int wkt_attn_bwd_bf16(wk_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *out,
                      const float *lse, const float *q, const float *k, const float *v, const int32_t *rs,
                      const int32_t *re, int n, int H, int Hk, int D, float scale, float *dsum, float *dkp,
                      float *dvp) {
    const void *ptrs[] = {dq, dk, dv, dout, out, q, k, v, dkp, dvp};
    if (!f16_takes(D, H, Hk, ptrs, H == Hk ? 8 : 10)) return 0;
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (n <= 0) return 1;
    size_t nh = (size_t)n * H;
    kt_fa_dsum<<<(unsigned)((nh * 32 + 255) / 256), 256, 0, b->st>>>(dsum, dout, out, nh, D);
    wkc_launched(b, "bf16 attention backward (dsum)");
    float *pk = H == Hk ? dk : dkp, *pv = H == Hk ? dv : dvp; /* no GQA: the partials are the result */
    size_t kc = (size_t)n * Hk * D;
    const float *src[4] = {q, k, v, dout};
    size_t cn[4] = {nh * D, kc, kc, nh * D};
    const bf16 *hb[4];
    if (!f16_inputs(b, src, cn, 4, hb)) return 1;
    if (D == 64) f16_bwd<64>(b, dq, pk, pv, hb[3], lse, dsum, hb[0], hb[1], hb[2], rs, re, n, H, Hk, scale);
    else f16_bwd<128>(b, dq, pk, pv, hb[3], lse, dsum, hb[0], hb[1], hb[2], rs, re, n, H, Hk, scale);
    size_t total = (size_t)n * Hk * D;
    kt_fa_group_sum<<<wkc_blocks(total), 256, 0, b->st>>>(dk, dv, pk, pv, n, H, Hk, D, scale);
    wkc_launched(b, "bf16 attention backward (group sum)");
    return 1;
}
