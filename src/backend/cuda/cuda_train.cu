/*
 * cuda_train.cu — training kernels of the CUDA backend (see cuda_train.h).
 * Attention: blocks of ATT_ROWS warps, one query (or key) row per warp, sweep
 * tiles of ATT_KT keys (or queries) staged in shared memory; inside a tile lane
 * j scores key j (a full dot product, rows padded to D+1 floats so the lanes hit
 * distinct banks), the warp folds the tile into an online softmax, and the value
 * (or gradient) rows are accumulated with each lane owning D/32 output columns.
 * The backward recomputes probabilities from the saved lse: one kernel for dq
 * (per query row), one for dk/dv (per key row, summing the heads of its GQA
 * group), so every output has one writer and no atomics are needed.
 * Reductions run in a fixed order, so results are the same run to run.
 */
#include "backend/cuda/cuda_internal.cuh"
extern "C" {
#include "backend/cuda/cuda_train.h"
}

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdio.h>

#define ATT_ROWS 8 /* warps (rows) per attention block */
#define ATT_KT 32  /* keys (queries) per shared-memory tile */
#define FULL 0xffffffffu


/* Sum of v over the block (blockDim.x a multiple of 32, <= 1024); every thread gets it. */
__device__ float kt_block_sum(float v, float *red) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = wkc_warp_sum(v);
    __syncthreads();
    if (lane == 0) red[wid] = v;
    __syncthreads();
    float t = 0.f;
    for (int i = 0; i < nw; i++) t += red[i];
    return t;
}

/* ------------------------------------------------------------ GEMMs */

void wkt_gemm(wk_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc, int tf32) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    /* row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ over the same buffers */
    cublasStatus_t s = cublasGemmEx(b->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                    &alpha, B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta, C, CUDA_R_32F, ldc,
                                    tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    wkc_blas_fail(b, s, "training gemm");
    /* op timing tag: the dimension that is neither the batch rows nor the rank, negative when it is K */
    b->optag = ta ? (M > N ? M : -N) : (N > K ? N : -K);
    wkc_launched(b, ta ? "lora gemm T" : tb ? "lora gemm NT" : "lora gemm NN");
}

__global__ void kt_to16(void *d, const float *s, size_t n, int bf) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        if (bf) ((__nv_bfloat16 *)d)[i] = __float2bfloat16_rn(s[i]);
        else ((__half *)d)[i] = __float2half_rn(s[i]);
    }
}

/* kt_to16 four values a thread (n4 = n / 4; s 16-byte and d 8-byte aligned). */
__global__ void kt_to16x4(void *d, const float *s, size_t n4, int bf) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4; i += (size_t)gridDim.x * blockDim.x) {
        float4 x = ((const float4 *)s)[i];
        uint2 o;
        if (bf) {
            __nv_bfloat162 a = __floats2bfloat162_rn(x.x, x.y), c = __floats2bfloat162_rn(x.z, x.w);
            o.x = *(uint32_t *)&a, o.y = *(uint32_t *)&c;
        } else {
            __half2 a = __floats2half2_rn(x.x, x.y), c = __floats2half2_rn(x.z, x.w);
            o.x = *(uint32_t *)&a, o.y = *(uint32_t *)&c;
        }
        ((uint2 *)d)[i] = o;
    }
}

/* d[n] = s rounded to bf16 (bf) or f16, vectorised when n and the pointers allow. */
static void to16(wkc_backend *b, void *d, const float *s, size_t n, int bf) {
    if (n % 4 == 0 && (uintptr_t)s % 16 == 0 && (uintptr_t)d % 8 == 0)
        kt_to16x4<<<wkc_blocks(n / 4), 256, 0, b->st>>>(d, s, n / 4, bf);
    else kt_to16<<<wkc_blocks(n), 256, 0, b->st>>>(d, s, n, bf);
}

void wkt_matmul_dx(wk_backend *be, float *dx, const float *dy, const void *dy16, const wk_mat *W, int n, int acc,
                   void *tmp16) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    int out = W->rows, in = W->cols;
    float one = 1.f, beta = acc ? 1.f : 0.f;
    if (W->dt == WICK_DT_F32) { /* column-major dxᵀ[in,n] = W_cm[in,out] · dyᵀ[out,n] */
        wkc_blas_fail(b, cublasSgemm(b->blas, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, (const float *)W->w, in, dy,
                                     out, &beta, dx, in), "matmul dx (f32)");
        return;
    }
    int bf = W->dt == WICK_DT_BF16;
    if (!dy16) {
        size_t cnt = (size_t)n * out;
        to16(b, tmp16, dy, cnt, bf);
        wkc_launched(b, "gradient cast");
        dy16 = tmp16;
    }
    cudaDataType_t t = bf ? CUDA_R_16BF : CUDA_R_16F;
    wkc_blas_fail(b, cublasGemmEx(b->blas, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, W->w, t, in, dy16, t, out, &beta,
                                  dx, CUDA_R_32F, in, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                  "matmul dx (16-bit weights)");
    b->optag = in;
    wkc_launched(b, "gemm16 dx");
}

void wkt_gemm16(wk_backend *be, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda, const void *B,
                int ldb, float beta, float *C, int ldc, int dt16) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    cudaDataType_t t = dt16 == WICK_DT_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    cublasStatus_t s = cublasGemmEx(b->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                    &alpha, B, t, ldb, A, t, lda, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT);
    wkc_blas_fail(b, s, "training gemm (16-bit inputs)");
    b->optag = ta ? (M > N ? M : -N) : (N > K ? N : -K); /* as wkt_gemm */
    wkc_launched(b, ta ? "lora gemm16 T" : tb ? "lora gemm16 NT" : "lora gemm16 NN");
}

void wkt_matmul16(wk_backend *be, float *y, const void *x16, const wk_mat *W, int n, int acc) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    int out = W->rows, in = W->cols;
    float one = 1.f, beta = acc ? 1.f : 0.f;
    cudaDataType_t t = W->dt == WICK_DT_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    cublasStatus_t s = cublasGemmEx(b->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, W->w, t, in, x16, t, in, &beta,
                                    y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    wkc_blas_fail(b, s, "gemm (16-bit weights and input)");
    b->optag = out;
    wkc_launched(b, "gemm16 (16-bit input)");
}

void wkt_to16(wk_backend *be, void *d, const float *s, size_t n, int dt16) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (!n) return;
    to16(b, d, s, n, dt16 == WICK_DT_BF16);
    wkc_launched(b, "lora cast");
}

/* ------------------------------------------------------------ RMSNorm, RoPE, SwiGLU */

/* v rounded to bf16 (bf) or f16 at p[i]. */
__device__ __forceinline__ void kt_put16(void *p, size_t i, float v, int bf) {
    if (bf) ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    else ((__half *)p)[i] = __float2half_rn(v);
}

/* One block per row: dx = r·dy·w - x·r³·Σ(dy·w·x)/dim with r = 1/sqrt(mean(x²)+eps); dx16 (when
 * not NULL) gets the written dx rounded to bf16 (bf) or f16. */
__global__ void kt_rmsnorm_bwd(float *dx, void *dx16, int bf, const float *dy, const float *x, const float *w, int dim,
                               float eps, int acc) {
    __shared__ float red[32];
    size_t o = (size_t)blockIdx.x * dim;
    float ss = 0.f, dot = 0.f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) {
        float xv = x[o + j];
        ss += xv * xv;
        dot += dy[o + j] * (w ? w[j] : 1.f) * xv;
    }
    ss = kt_block_sum(ss, red);
    dot = kt_block_sum(dot, red);
    float r = 1.f / sqrtf(ss / (float)dim + eps), c = r * r * r * dot / (float)dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) {
        float g = r * dy[o + j] * (w ? w[j] : 1.f) - x[o + j] * c;
        float v = acc ? dx[o + j] + g : g;
        dx[o + j] = v;
        if (dx16) kt_put16(dx16, o + j, v, bf);
    }
}

void wkt_rmsnorm_bwd16(wk_backend *be, float *dx, void *dx16, int dt16, const float *dy, const float *x, const float *w,
                       int n, int dim, float eps, int acc) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (dt16 != WICK_DT_BF16 && dt16 != WICK_DT_F16) dx16 = NULL;
    int threads = dim >= 1024 ? 256 : dim >= 256 ? 128 : 32;
    kt_rmsnorm_bwd<<<n, threads, 0, b->st>>>(dx, dx16, dt16 == WICK_DT_BF16, dy, x, w, dim, eps, acc);
    wkc_launched(b, dx16 ? "rmsnorm backward (+16-bit copy)" : "rmsnorm backward");
}

void wkt_rmsnorm_bwd(wk_backend *be, float *dx, const float *dy, const float *x, const float *w, int n, int dim,
                     float eps, int acc) {
    wkt_rmsnorm_bwd16(be, dx, NULL, 0, dy, x, w, n, dim, eps, acc);
}

/* One block per token: the rotation by -angle (the transpose of the forward's); x16 as kt_rmsnorm_bwd's dx16. */
__global__ void kt_rope_bwd(float *x, void *x16, int bf, const int32_t *pos, int nh, int D, const float *inv_freq) {
    int i = blockIdx.x, half = D / 2;
    float p = (float)pos[i];
    for (int t = threadIdx.x; t < nh * half; t += blockDim.x) {
        int h = t / half, j = t % half;
        float sn, cs;
        sincosf(p * inv_freq[j], &sn, &cs);
        float *v = x + ((size_t)i * nh + h) * D;
        float a = v[j], c = v[j + half], ra = a * cs + c * sn, rc = c * cs - a * sn;
        v[j] = ra;
        v[j + half] = rc;
        if (x16) {
            size_t o = ((size_t)i * nh + h) * D + j;
            kt_put16(x16, o, ra, bf), kt_put16(x16, o + half, rc, bf);
        }
    }
}

void wkt_rope_bwd16(wk_backend *be, float *d, void *d16, int dt16, const int32_t *pos, int n, int nh, int D,
                    const float *inv_freq) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (dt16 != WICK_DT_BF16 && dt16 != WICK_DT_F16) d16 = NULL;
    kt_rope_bwd<<<n, 128, 0, b->st>>>(d, d16, dt16 == WICK_DT_BF16, pos, nh, D, inv_freq);
    wkc_launched(b, d16 ? "rope backward (+16-bit copy)" : "rope backward");
}

void wkt_rope_bwd(wk_backend *be, float *d, const int32_t *pos, int n, int nh, int D, const float *inv_freq) {
    wkt_rope_bwd16(be, d, NULL, 0, pos, n, nh, D, inv_freq);
}

__global__ void kt_swiglu_bwd(float *dg, float *du, const float *dact, const float *g, const float *u, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float gv = g[i], sg = 1.f / (1.f + expf(-gv)), a = dact[i];
        dg[i] = a * u[i] * (sg * (1.f + gv * (1.f - sg)));
        du[i] = a * gv * sg;
    }
}

void wkt_swiglu_bwd(wk_backend *be, float *dg, float *du, const float *dact, const float *g, const float *u, size_t n) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    kt_swiglu_bwd<<<wkc_blocks(n), 256, 0, b->st>>>(dg, du, dact, g, u, n);
    wkc_launched(b, "swiglu backward");
}

__device__ __forceinline__ void kt_st16(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void kt_st16(__half *p, float v) { *p = __float2half_rn(v); }

/* kt_swiglu_bwd's formulas, four elements a thread, with dg and du also written rounded to T. */
template <typename T>
__global__ void kt_swiglu_bwd16(float *dg, float *du, T *dg16, T *du16, const float *dact, const float *g,
                                const float *u, size_t n4) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4; i += (size_t)gridDim.x * blockDim.x) {
        float4 gv = ((const float4 *)g)[i], uv = ((const float4 *)u)[i], av = ((const float4 *)dact)[i];
        float G[4] = {gv.x, gv.y, gv.z, gv.w}, U[4] = {uv.x, uv.y, uv.z, uv.w}, A[4] = {av.x, av.y, av.z, av.w};
        float rg[4], ru[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float sg = 1.f / (1.f + expf(-G[e]));
            rg[e] = A[e] * U[e] * (sg * (1.f + G[e] * (1.f - sg)));
            ru[e] = A[e] * G[e] * sg;
        }
        ((float4 *)dg)[i] = make_float4(rg[0], rg[1], rg[2], rg[3]);
        ((float4 *)du)[i] = make_float4(ru[0], ru[1], ru[2], ru[3]);
#pragma unroll
        for (int e = 0; e < 4; e++) kt_st16(dg16 + 4 * i + e, rg[e]), kt_st16(du16 + 4 * i + e, ru[e]);
    }
}

void wkt_swiglu_bwd16(wk_backend *be, float *dg, float *du, void *dg16, void *du16, int dt16, const float *dact,
                      const float *g, const float *u, size_t n) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    uintptr_t al = (uintptr_t)dg | (uintptr_t)du | (uintptr_t)dact | (uintptr_t)g | (uintptr_t)u;
    if (n % 4 || al % 16 || (dt16 != WICK_DT_BF16 && dt16 != WICK_DT_F16)) { /* the plain kernel, then casts */
        wkt_swiglu_bwd(be, dg, du, dact, g, u, n);
        if (dt16 == WICK_DT_BF16 || dt16 == WICK_DT_F16) {
            to16(b, dg16, dg, n, dt16 == WICK_DT_BF16);
            to16(b, du16, du, n, dt16 == WICK_DT_BF16);
            wkc_launched(b, "gradient cast");
        }
        return;
    }
    size_t n4 = n / 4;
    if (dt16 == WICK_DT_BF16)
        kt_swiglu_bwd16<<<wkc_blocks(n4), 256, 0, b->st>>>(dg, du, (__nv_bfloat16 *)dg16, (__nv_bfloat16 *)du16, dact,
                                                          g, u, n4);
    else kt_swiglu_bwd16<<<wkc_blocks(n4), 256, 0, b->st>>>(dg, du, (__half *)dg16, (__half *)du16, dact, g, u, n4);
    wkc_launched(b, "swiglu backward (+16-bit copies)");
}

/* ------------------------------------------------------------ SwiGLU with LoRA expands */
/* Blocks of 256 columns × GLU_ROWS rows: a thread keeps its column's B values (zero past r) in
 * registers for all the block's rows; the rows' xa values sit in shared memory (zero past r),
 * read by every lane at once, 16 bytes at a time. Rows go GLU_U at a time, the next GLU_U rows'
 * loads issued before the current ones are computed (the first before the block stages its
 * shared memory), so a thread keeps loads in flight while it computes. The expand is one
 * fixed-order fmaf chain (kt_exp_dot), so the backward's recomputed g', u' are the forward's bit
 * for bit. FAST (16-bit weights, where act and the gradients are rounded to 16 bits anyway):
 * silu's exp and division as __expf / __fdividef. */
#define GLU_ROWS 64
#define GLU_THREADS 256
#define GLU_U 8

/* xs[rr][k] = e.xa[(i0 + rr), k] for k < e.r and rows < n, else 0. Whole block. */
template <int RK>
__device__ __forceinline__ void kt_exp_stage(float (*xs)[RK], const wkt_expand &e, int i0, int n) {
    for (int q = threadIdx.x; q < GLU_ROWS * RK; q += blockDim.x) {
        int rr = q / RK, k = q - rr * RK, i = i0 + rr;
        xs[rr][k] = k < e.r && i < n ? e.xa[(size_t)i * e.r + k] : 0.f;
    }
}

template <int RK>
__device__ __forceinline__ void kt_exp_load(float *w, const wkt_expand &e, int j) {
#pragma unroll
    for (int k = 0; k < RK; k++) w[k] = k < e.r ? e.B[(size_t)j * e.sj + (size_t)k * e.sk] : 0.f;
}

/* base + s · Σ_k x[k]·w[k], one fmaf chain in k order (x: a shared-memory row, 16-byte aligned). */
template <int RK>
__device__ __forceinline__ float kt_exp_dot(float base, float s, const float *x, const float *w) {
    const float4 *x4 = (const float4 *)x;
    float d = 0.f;
#pragma unroll
    for (int k = 0; k < RK / 4; k++) {
        float4 v = x4[k];
        d = fmaf(v.x, w[4 * k], d), d = fmaf(v.y, w[4 * k + 1], d);
        d = fmaf(v.z, w[4 * k + 2], d), d = fmaf(v.w, w[4 * k + 3], d);
    }
    return fmaf(s, d, base);
}

/* v[q] = p[o + q·F] for q < avail, else 0. */
__device__ __forceinline__ void kt_glu_rows(float *v, const float *__restrict__ p, size_t o, int F, int avail) {
#pragma unroll
    for (int q = 0; q < GLU_U; q++) v[q] = q < avail ? p[o + (size_t)q * F] : 0.f;
}

template <bool FAST>
__device__ __forceinline__ float kt_sigmoid(float x) {
    return FAST ? __fdividef(1.f, 1.f + __expf(-x)) : 1.f / (1.f + expf(-x));
}

template <int RK, typename T, bool FAST>
__global__ void __launch_bounds__(GLU_THREADS)
    kt_swiglu_lora(float *__restrict__ act, T *__restrict__ act16, const float *__restrict__ g,
                   const float *__restrict__ u, int n, int F, wkt_expand eg, wkt_expand eu) {
    __shared__ __align__(16) float xs[2][GLU_ROWS][RK];
    int j = blockIdx.x * blockDim.x + threadIdx.x, i0 = blockIdx.y * GLU_ROWS, rows = min(GLU_ROWS, n - i0);
    bool col = j < F;
    float gv[GLU_U], uv[GLU_U];
    size_t o0 = (size_t)i0 * F + j;
    kt_glu_rows(gv, g, o0, F, col ? rows : 0);
    kt_glu_rows(uv, u, o0, F, col ? rows : 0);
    kt_exp_stage<RK>(xs[0], eg, i0, n);
    kt_exp_stage<RK>(xs[1], eu, i0, n);
    __syncthreads();
    if (!col) return;
    float wg[RK], wu[RK];
    kt_exp_load<RK>(wg, eg, j);
    kt_exp_load<RK>(wu, eu, j);
    for (int r0 = 0; r0 < rows; r0 += GLU_U) {
        float gn[GLU_U], un[GLU_U]; /* the next rows, in flight during this batch */
        kt_glu_rows(gn, g, o0 + (size_t)(r0 + GLU_U) * F, F, rows - r0 - GLU_U);
        kt_glu_rows(un, u, o0 + (size_t)(r0 + GLU_U) * F, F, rows - r0 - GLU_U);
#pragma unroll
        for (int q = 0; q < GLU_U; q++) {
            if (r0 + q >= rows) break;
            size_t o = o0 + (size_t)(r0 + q) * F;
            float gp = kt_exp_dot<RK>(gv[q], eg.s, xs[0][r0 + q], wg);
            float up = kt_exp_dot<RK>(uv[q], eu.s, xs[1][r0 + q], wu);
            float a = FAST ? gp * kt_sigmoid<true>(gp) * up : gp / (1.f + expf(-gp)) * up; /* k_swiglu's formula */
            if (act) act[o] = a;
            if (act16) kt_st16(act16 + o, a);
        }
#pragma unroll
        for (int q = 0; q < GLU_U; q++) gv[q] = gn[q], uv[q] = un[q];
    }
}

template <int RK, typename T, bool FAST>
__global__ void __launch_bounds__(GLU_THREADS)
    kt_swiglu_lora_bwd(float *__restrict__ dg, float *__restrict__ du, T *__restrict__ dg16, T *__restrict__ du16,
                       const float *__restrict__ dact, const float *__restrict__ g, const float *__restrict__ u, int n,
                       int F, wkt_expand eg, wkt_expand eu, wkt_expand ed) {
    __shared__ __align__(16) float xs[3][GLU_ROWS][RK];
    int j = blockIdx.x * blockDim.x + threadIdx.x, i0 = blockIdx.y * GLU_ROWS, rows = min(GLU_ROWS, n - i0);
    bool col = j < F;
    float gv[GLU_U], uv[GLU_U], av[GLU_U];
    size_t o0 = (size_t)i0 * F + j;
    kt_glu_rows(gv, g, o0, F, col ? rows : 0);
    kt_glu_rows(uv, u, o0, F, col ? rows : 0);
    kt_glu_rows(av, dact, o0, F, col ? rows : 0);
    kt_exp_stage<RK>(xs[0], eg, i0, n);
    kt_exp_stage<RK>(xs[1], eu, i0, n);
    kt_exp_stage<RK>(xs[2], ed, i0, n);
    __syncthreads();
    if (!col) return;
    float wg[RK], wu[RK], wd[RK];
    kt_exp_load<RK>(wg, eg, j);
    kt_exp_load<RK>(wu, eu, j);
    kt_exp_load<RK>(wd, ed, j);
    for (int r0 = 0; r0 < rows; r0 += GLU_U) {
        float gn[GLU_U], un[GLU_U], an[GLU_U];
        size_t on = o0 + (size_t)(r0 + GLU_U) * F;
        kt_glu_rows(gn, g, on, F, rows - r0 - GLU_U);
        kt_glu_rows(un, u, on, F, rows - r0 - GLU_U);
        kt_glu_rows(an, dact, on, F, rows - r0 - GLU_U);
#pragma unroll
        for (int q = 0; q < GLU_U; q++) {
            if (r0 + q >= rows) break;
            size_t o = o0 + (size_t)(r0 + q) * F;
            float gp = kt_exp_dot<RK>(gv[q], eg.s, xs[0][r0 + q], wg);
            float up = kt_exp_dot<RK>(uv[q], eu.s, xs[1][r0 + q], wu);
            float a = kt_exp_dot<RK>(av[q], ed.s, xs[2][r0 + q], wd);
            float sg = kt_sigmoid<FAST>(gp); /* kt_swiglu_bwd's formulas */
            float rg = a * up * (sg * (1.f + gp * (1.f - sg))), ru = a * gp * sg;
            if (dg) dg[o] = rg, du[o] = ru;
            if (dg16) kt_st16(dg16 + o, rg), kt_st16(du16 + o, ru);
        }
#pragma unroll
        for (int q = 0; q < GLU_U; q++) gv[q] = gn[q], uv[q] = un[q], av[q] = an[q];
    }
}

static int glu_rank(const wkt_expand *const *e, int cnt) {
    int r = 0;
    for (int i = 0; i < cnt; i++) r = e[i]->r > r ? e[i]->r : r;
    return r;
}

static int glu_refused(wkc_backend *b, int r, const char *what) {
    if (r <= WKT_GLU_RMAX) return 0;
    if (!b->err) {
        b->err = WICK_EUNSUPPORTED;
        snprintf(b->errmsg, sizeof b->errmsg, "cuda:%d: %s takes LoRA ranks up to %d, not %d", b->device, what,
                 WKT_GLU_RMAX, r);
    }
    return 1;
}

template <int RK, typename T, bool FAST>
static void glu_fwd(wkc_backend *b, dim3 grid, float *act, void *act16, const float *g, const float *u, int n, int F,
                    const wkt_expand *eg, const wkt_expand *eu) {
    kt_swiglu_lora<RK, T, FAST><<<grid, GLU_THREADS, 0, b->st>>>(act, (T *)act16, g, u, n, F, *eg, *eu);
}

template <typename T, bool FAST>
static void glu_fwd_r(wkc_backend *b, int r, dim3 grid, float *act, void *act16, const float *g, const float *u, int n,
                      int F, const wkt_expand *eg, const wkt_expand *eu) {
    if (r <= 16) glu_fwd<16, T, FAST>(b, grid, act, act16, g, u, n, F, eg, eu);
    else glu_fwd<32, T, FAST>(b, grid, act, act16, g, u, n, F, eg, eu);
}

void wkt_swiglu_lora(wk_backend *be, float *act, void *act16, int dt16, const float *g, const float *u, int n, int F,
                     const wkt_expand *eg, const wkt_expand *eu, int fast) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    const wkt_expand *es[] = {eg, eu};
    int r = glu_rank(es, 2);
    if (glu_refused(b, r, "swiglu with LoRA") || n <= 0 || F <= 0) return;
    size_t cnt = (size_t)n * F;
    void *o16 = act16 ? act16 : b->act16 ? wkc_scratch(b, WKC_SCR_ACT16, cnt * 2) : NULL; /* as wkc_swiglu16 */
    dim3 grid((unsigned)((F + GLU_THREADS - 1) / GLU_THREADS), (unsigned)((n + GLU_ROWS - 1) / GLU_ROWS));
    int bf = (act16 ? dt16 : b->act16) != WICK_DT_F16;
    if (bf && fast) glu_fwd_r<__nv_bfloat16, true>(b, r, grid, act, o16, g, u, n, F, eg, eu);
    else if (bf) glu_fwd_r<__nv_bfloat16, false>(b, r, grid, act, o16, g, u, n, F, eg, eu);
    else if (fast) glu_fwd_r<__half, true>(b, r, grid, act, o16, g, u, n, F, eg, eu);
    else glu_fwd_r<__half, false>(b, r, grid, act, o16, g, u, n, F, eg, eu);
    wkc_launched(b, o16 ? "swiglu + lora expands (+16-bit copy)" : "swiglu + lora expands");
    if (o16 && !act16) b->cast_x = act, b->cast_n = cnt, b->cast_dt = b->act16;
}

template <typename T, bool FAST>
static void glu_bwd_r(wkc_backend *b, int r, dim3 grid, float *dg, float *du, void *dg16, void *du16, const float *dact,
                      const float *g, const float *u, int n, int F, const wkt_expand *eg, const wkt_expand *eu,
                      const wkt_expand *ed) {
    if (r <= 16)
        kt_swiglu_lora_bwd<16, T, FAST><<<grid, GLU_THREADS, 0, b->st>>>(dg, du, (T *)dg16, (T *)du16, dact, g, u, n, F,
                                                                         *eg, *eu, *ed);
    else
        kt_swiglu_lora_bwd<32, T, FAST><<<grid, GLU_THREADS, 0, b->st>>>(dg, du, (T *)dg16, (T *)du16, dact, g, u, n, F,
                                                                         *eg, *eu, *ed);
}

void wkt_swiglu_lora_bwd(wk_backend *be, float *dg, float *du, void *dg16, void *du16, int dt16, const float *dact,
                         const float *g, const float *u, int n, int F, const wkt_expand *eg, const wkt_expand *eu,
                         const wkt_expand *ed, int fast) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    const wkt_expand *es[] = {eg, eu, ed};
    int r = glu_rank(es, 3);
    if (glu_refused(b, r, "swiglu backward with LoRA") || n <= 0 || F <= 0) return;
    if (!dg16 || !du16) dg16 = du16 = NULL;
    dim3 grid((unsigned)((F + GLU_THREADS - 1) / GLU_THREADS), (unsigned)((n + GLU_ROWS - 1) / GLU_ROWS));
    int bf = dt16 != WICK_DT_F16;
    if (bf && fast) glu_bwd_r<__nv_bfloat16, true>(b, r, grid, dg, du, dg16, du16, dact, g, u, n, F, eg, eu, ed);
    else if (bf) glu_bwd_r<__nv_bfloat16, false>(b, r, grid, dg, du, dg16, du16, dact, g, u, n, F, eg, eu, ed);
    else if (fast) glu_bwd_r<__half, true>(b, r, grid, dg, du, dg16, du16, dact, g, u, n, F, eg, eu, ed);
    else glu_bwd_r<__half, false>(b, r, grid, dg, du, dg16, du16, dact, g, u, n, F, eg, eu, ed);
    wkc_launched(b, "swiglu backward + lora (+16-bit copies)");
}

/* ------------------------------------------------------------ attention */

/* Rows jj = w, w+ATT_ROWS, .. < ATT_KT of a tile: dst[jj*ld + d] = src row (row0 + jj) (head
 * column offset `col`, row stride `rstride` floats), zeros past `end`; float4 per lane. */
__device__ __forceinline__ void kt_tile(float *dst, int ld, const float *src, int row0, int end, size_t rstride,
                                        size_t col, int D, int w, int lane) {
    for (int jj = w; jj < ATT_KT; jj += ATT_ROWS) {
        int j = row0 + jj;
        const float *s = src + (size_t)j * rstride + col;
        for (int d = lane * 4; d < D; d += 128)
            *(float4 *)(dst + jj * ld + d) = j < end ? *(const float4 *)(s + d) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
}

/* One row of D floats (global, 16-byte aligned) into shared memory by one warp. */
__device__ __forceinline__ void kt_row(float *dst, const float *src, int D, int lane) {
    for (int d = lane * 4; d < D; d += 128) *(float4 *)(dst + d) = *(const float4 *)(src + d);
}

/* a·b over D floats of shared memory (16-byte aligned rows). */
__device__ __forceinline__ float kt_dot(const float *a, const float *b, int D) {
    const float4 *x = (const float4 *)a, *y = (const float4 *)b;
    float s = 0.f;
    for (int d = 0; d < D / 4; d++) {
        float4 u = x[d], v = y[d];
        s += u.x * v.x + u.y * v.y + u.z * v.z + u.w * v.w;
    }
    return s;
}

/* Forward: block (ATT_ROWS query rows, head h); lane j scores key j0+j of each tile; lane owns
 * output columns d = lane + 32t, t < NT. Shared: Ks [KT][D+4], Vs [KT][D], Qs [ROWS][D]. */
template <int NT>
__global__ void kt_attn_fwd(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *rs,
                            int n, int H, int Hk, int D, float scale) {
    extern __shared__ float4 sm4[];
    float *sm = (float *)sm4;
    int ld = D + 4, w = threadIdx.x >> 5, lane = threadIdx.x & 31, h = blockIdx.y, kh = h / (H / Hk);
    float *Ks = sm, *Vs = Ks + ATT_KT * ld, *Qs = Vs + ATT_KT * D + w * D;
    int i0 = blockIdx.x * ATT_ROWS, i = i0 + w, last = min(i0 + ATT_ROWS, n) - 1;
    bool row = i < n;
    int rsi = row ? rs[i] : 0;
    if (row) kt_row(Qs, q + ((size_t)i * H + h) * D, D, lane);
    float m = -INFINITY, l = 0.f, acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.f;
    for (int j0 = rs[i0]; j0 <= last; j0 += ATT_KT) {
        __syncthreads();
        kt_tile(Ks, ld, k, j0, last + 1, (size_t)Hk * D, (size_t)kh * D, D, w, lane);
        kt_tile(Vs, D, v, j0, last + 1, (size_t)Hk * D, (size_t)kh * D, D, w, lane);
        __syncthreads();
        if (!row || j0 > i) continue;
        int j = j0 + lane;
        bool ok = j >= rsi && j <= i;
        float s = ok ? kt_dot(Qs, Ks + lane * ld, D) * scale : -INFINITY;
        float tm = wkc_warp_max(s);
        if (tm == -INFINITY) continue;
        float mn = fmaxf(m, tm), corr = expf(m - mn), p = ok ? expf(s - mn) : 0.f;
        l = l * corr + wkc_warp_sum(p);
#pragma unroll
        for (int t = 0; t < NT; t++) acc[t] *= corr;
        int jn = min(ATT_KT, i - j0 + 1);
        for (int jj = 0; jj < jn; jj++) {
            float pj = __shfl_sync(FULL, p, jj);
#pragma unroll
            for (int t = 0; t < NT; t++) {
                int d = lane + 32 * t;
                if (d < D) acc[t] += pj * Vs[jj * D + d];
            }
        }
        m = mn;
    }
    if (!row) return;
#pragma unroll
    for (int t = 0; t < NT; t++) {
        int d = lane + 32 * t;
        if (d < D) out[((size_t)i * H + h) * D + d] = acc[t] / l;
    }
    if (lane == 0) lse[(size_t)i * H + h] = m + logf(l);
}

/* dsum[i,h] = Σ_d dout·out (one warp per (row, head)). */
__global__ void kt_attn_dsum(float *dsum, const float *dout, const float *out, int nh, int D) {
    size_t wi = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (wi >= (size_t)nh) return;
    float s = 0.f;
    for (int d = lane; d < D; d += 32) s += dout[wi * D + d] * out[wi * D + d];
    s = wkc_warp_sum(s);
    if (lane == 0) dsum[wi] = s;
}

/* dq: block (ATT_ROWS query rows, head), key tiles as in the forward.
 * Shared: Ks, Vs [KT][D+4], Qs, Os [ROWS][D]. */
template <int NT>
__global__ void kt_attn_dq(float *dq, const float *dout, const float *lse, const float *dsum, const float *q,
                           const float *k, const float *v, const int32_t *rs, int n, int H, int Hk, int D, float scale) {
    extern __shared__ float4 sm4[];
    float *sm = (float *)sm4;
    int ld = D + 4, w = threadIdx.x >> 5, lane = threadIdx.x & 31, h = blockIdx.y, kh = h / (H / Hk);
    float *Ks = sm, *Vs = Ks + ATT_KT * ld, *Qs = Vs + ATT_KT * ld + w * D, *Os = sm + 2 * ATT_KT * ld + ATT_ROWS * D + w * D;
    int i0 = blockIdx.x * ATT_ROWS, i = i0 + w, last = min(i0 + ATT_ROWS, n) - 1;
    bool row = i < n;
    int rsi = row ? rs[i] : 0;
    float Li = row ? lse[(size_t)i * H + h] : 0.f, Di = row ? dsum[(size_t)i * H + h] : 0.f;
    if (row) {
        kt_row(Qs, q + ((size_t)i * H + h) * D, D, lane);
        kt_row(Os, dout + ((size_t)i * H + h) * D, D, lane);
    }
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.f;
    for (int j0 = rs[i0]; j0 <= last; j0 += ATT_KT) {
        __syncthreads();
        kt_tile(Ks, ld, k, j0, last + 1, (size_t)Hk * D, (size_t)kh * D, D, w, lane);
        kt_tile(Vs, ld, v, j0, last + 1, (size_t)Hk * D, (size_t)kh * D, D, w, lane);
        __syncthreads();
        if (!row || j0 > i) continue;
        int j = j0 + lane;
        float ds = 0.f;
        if (j >= rsi && j <= i) {
            float p = expf(kt_dot(Qs, Ks + lane * ld, D) * scale - Li);
            ds = p * (kt_dot(Os, Vs + lane * ld, D) - Di);
        }
        int jn = min(ATT_KT, i - j0 + 1);
        for (int jj = 0; jj < jn; jj++) {
            float dj = __shfl_sync(FULL, ds, jj);
#pragma unroll
            for (int t = 0; t < NT; t++) {
                int d = lane + 32 * t;
                if (d < D) acc[t] += dj * Ks[jj * ld + d];
            }
        }
    }
    if (!row) return;
#pragma unroll
    for (int t = 0; t < NT; t++) {
        int d = lane + 32 * t;
        if (d < D) dq[((size_t)i * H + h) * D + d] = acc[t] * scale;
    }
}

/* dk, dv contributions of query head h: block (ATT_ROWS key rows, h); query tiles from the block's
 * first key row to the end of its last key row's sequence. Writes dkp/dvp [n, H, D] (dk unscaled).
 * Shared: Qs, Os [KT][D+4], Ks, Vs [ROWS][D], Ls, Ds [KT]. */
template <int NT>
__global__ void kt_attn_dkv(float *dkp, float *dvp, const float *dout, const float *lse, const float *dsum,
                            const float *q, const float *k, const float *v, const int32_t *re, int n, int H, int Hk,
                            int D, float scale) {
    extern __shared__ float4 sm4[];
    float *sm = (float *)sm4;
    int ld = D + 4, w = threadIdx.x >> 5, lane = threadIdx.x & 31, h = blockIdx.y, kh = h / (H / Hk);
    float *Qs = sm, *Os = Qs + ATT_KT * ld, *Ks = Os + ATT_KT * ld + w * D;
    float *Vs = sm + 2 * ATT_KT * ld + ATT_ROWS * D + w * D, *Ls = sm + 2 * ATT_KT * ld + 2 * ATT_ROWS * D;
    float *Ds = Ls + ATT_KT;
    int first = blockIdx.x * ATT_ROWS, j = first + w, lastk = min(first + ATT_ROWS, n) - 1;
    bool row = j < n;
    int rej = row ? re[j] : 0, hi = re[lastk];
    if (row) {
        kt_row(Ks, k + ((size_t)j * Hk + kh) * D, D, lane);
        kt_row(Vs, v + ((size_t)j * Hk + kh) * D, D, lane);
    }
    float ak[NT], av[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) ak[t] = av[t] = 0.f;
    for (int i0 = first; i0 < hi; i0 += ATT_KT) {
        __syncthreads();
        kt_tile(Qs, ld, q, i0, hi, (size_t)H * D, (size_t)h * D, D, w, lane);
        kt_tile(Os, ld, dout, i0, hi, (size_t)H * D, (size_t)h * D, D, w, lane);
        if (threadIdx.x < ATT_KT) {
            int i = i0 + threadIdx.x;
            Ls[threadIdx.x] = i < hi ? lse[(size_t)i * H + h] : 0.f;
            Ds[threadIdx.x] = i < hi ? dsum[(size_t)i * H + h] : 0.f;
        }
        __syncthreads();
        if (!row || i0 + ATT_KT - 1 < j || i0 >= rej) continue;
        int i = i0 + lane;
        float p = 0.f, ds = 0.f;
        if (i >= j && i < rej) {
            p = expf(kt_dot(Ks, Qs + lane * ld, D) * scale - Ls[lane]);
            ds = p * (kt_dot(Vs, Os + lane * ld, D) - Ds[lane]);
        }
        int ia = max(j - i0, 0), ib = min(rej - i0, ATT_KT);
        for (int ii = ia; ii < ib; ii++) {
            float pi = __shfl_sync(FULL, p, ii), di = __shfl_sync(FULL, ds, ii);
#pragma unroll
            for (int t = 0; t < NT; t++) {
                int d = lane + 32 * t;
                if (d < D) {
                    av[t] += pi * Os[ii * ld + d];
                    ak[t] += di * Qs[ii * ld + d];
                }
            }
        }
    }
    if (!row) return;
#pragma unroll
    for (int t = 0; t < NT; t++) {
        int d = lane + 32 * t;
        if (d < D) {
            dkp[((size_t)j * H + h) * D + d] = ak[t];
            dvp[((size_t)j * H + h) * D + d] = av[t];
        }
    }
}

/* dk[j,kh,:] = scale · Σ over the group's heads of dkp[j,h,:]; dv likewise (fixed order). */
__global__ void kt_attn_group_sum(float *dk, float *dv, const float *dkp, const float *dvp, int n, int H, int Hk, int D,
                                  float scale) {
    int grp = H / Hk;
    size_t total = (size_t)n * Hk * D;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        size_t j = e / ((size_t)Hk * D);
        int r = (int)(e - j * Hk * D), kh = r / D, d = r - kh * D;
        float sk = 0.f, sv = 0.f;
        for (int hh = 0; hh < grp; hh++) {
            size_t o = (j * H + (size_t)kh * grp + hh) * D + d;
            sk += dkp[o], sv += dvp[o];
        }
        dk[e] = sk * scale, dv[e] = sv;
    }
}

/* Sets the dynamic shared memory limit of kernel f for `bytes` (needed above 48 KB). */
static int smem_ok(wkc_backend *b, const void *f, size_t bytes) {
    if (bytes <= 48 * 1024) return 1;
    return !wkc_cuda_fail(b, cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes),
                          "attention shared memory");
}

static int att_check(wkc_backend *b, int D, int H, int Hk, const void *const *ptrs, int np) {
    uintptr_t a = 0;
    for (int i = 0; i < np; i++) a |= (uintptr_t)ptrs[i];
    if (D >= 4 && D <= 256 && D % 4 == 0 && Hk > 0 && H % Hk == 0 && a % 16 == 0) return 1;
    if (!b->err) {
        b->err = WICK_EUNSUPPORTED;
        snprintf(b->errmsg, sizeof b->errmsg,
                 "cuda:%d: training attention needs head_dim %d in 4..256, a multiple of 4, heads %d a multiple of "
                 "kv heads %d, and 16-byte aligned tensors",
                 b->device, D, H, Hk);
    }
    return 0;
}

template <int NT>
static void attn_fwd_nt(wkc_backend *b, float *out, float *lse, const float *q, const float *k, const float *v,
                        const int32_t *rs, int n, int H, int Hk, int D, float scale) {
    size_t sb = sizeof(float) * ((size_t)ATT_KT * (D + 4) + (size_t)ATT_KT * D + (size_t)ATT_ROWS * D);
    if (!smem_ok(b, (const void *)kt_attn_fwd<NT>, sb)) return;
    dim3 grid((n + ATT_ROWS - 1) / ATT_ROWS, H);
    kt_attn_fwd<NT><<<grid, 32 * ATT_ROWS, sb, b->st>>>(out, lse, q, k, v, rs, n, H, Hk, D, scale);
    wkc_launched(b, "attention forward (training)");
}

void wkt_attn_fwd(wk_backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                  const int32_t *rs, int n, int H, int Hk, int D, float scale) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    const void *ptrs[] = {out, q, k, v};
    if (!att_check(b, D, H, Hk, ptrs, 4) || n <= 0) return;
    if (D <= 32) attn_fwd_nt<1>(b, out, lse, q, k, v, rs, n, H, Hk, D, scale);
    else if (D <= 64) attn_fwd_nt<2>(b, out, lse, q, k, v, rs, n, H, Hk, D, scale);
    else if (D <= 128) attn_fwd_nt<4>(b, out, lse, q, k, v, rs, n, H, Hk, D, scale);
    else attn_fwd_nt<8>(b, out, lse, q, k, v, rs, n, H, Hk, D, scale);
}

template <int NT>
static void attn_bwd_nt(wkc_backend *b, float *dq, float *dkp, float *dvp, const float *dout, const float *lse,
                        const float *dsum, const float *q, const float *k, const float *v, const int32_t *rs,
                        const int32_t *re, int n, int H, int Hk, int D, float scale) {
    size_t sq = sizeof(float) * (2 * (size_t)ATT_KT * (D + 4) + 2 * (size_t)ATT_ROWS * D);
    size_t skv = sq + sizeof(float) * 2 * ATT_KT;
    if (!smem_ok(b, (const void *)kt_attn_dq<NT>, sq) || !smem_ok(b, (const void *)kt_attn_dkv<NT>, skv)) return;
    dim3 grid((n + ATT_ROWS - 1) / ATT_ROWS, H);
    kt_attn_dq<NT><<<grid, 32 * ATT_ROWS, sq, b->st>>>(dq, dout, lse, dsum, q, k, v, rs, n, H, Hk, D, scale);
    wkc_launched(b, "attention backward (dq)");
    kt_attn_dkv<NT><<<grid, 32 * ATT_ROWS, skv, b->st>>>(dkp, dvp, dout, lse, dsum, q, k, v, re, n, H, Hk, D, scale);
    wkc_launched(b, "attention backward (dk, dv)");
}

void wkt_attn_bwd(wk_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                  const float *q, const float *k, const float *v, const int32_t *rs, const int32_t *re, int n, int H,
                  int Hk, int D, float scale, float *dsum, float *dkp, float *dvp) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    const void *ptrs[] = {dq, dk, dv, dout, out, q, k, v, dkp, dvp};
    if (!att_check(b, D, H, Hk, ptrs, H == Hk ? 8 : 10) || n <= 0) return;
    size_t nh = (size_t)n * H;
    kt_attn_dsum<<<(unsigned)((nh * 32 + 255) / 256), 256, 0, b->st>>>(dsum, dout, out, (int)nh, D);
    wkc_launched(b, "attention backward (dsum)");
    float *pk = H == Hk ? dk : dkp, *pv = H == Hk ? dv : dvp; /* no GQA: the partials are the result */
    if (D <= 32) attn_bwd_nt<1>(b, dq, pk, pv, dout, lse, dsum, q, k, v, rs, re, n, H, Hk, D, scale);
    else if (D <= 64) attn_bwd_nt<2>(b, dq, pk, pv, dout, lse, dsum, q, k, v, rs, re, n, H, Hk, D, scale);
    else if (D <= 128) attn_bwd_nt<4>(b, dq, pk, pv, dout, lse, dsum, q, k, v, rs, re, n, H, Hk, D, scale);
    else attn_bwd_nt<8>(b, dq, pk, pv, dout, lse, dsum, q, k, v, rs, re, n, H, Hk, D, scale);
    size_t total = (size_t)n * Hk * D;
    kt_attn_group_sum<<<wkc_blocks(total), 256, 0, b->st>>>(dk, dv, pk, pv, n, H, Hk, D, scale);
    wkc_launched(b, "attention backward (group sum)");
}

/* ------------------------------------------------------------ cross-entropy */

/* One block per row: online max/sum of exp, then the loss and the gradient. */
__global__ void kt_xent(float *logits, const int32_t *tgt, int V, float eps, float *loss, void *g16, int bf) {
    __shared__ float rm[32], rsum[32], rz[32], zt;
    float *z = logits + (size_t)blockIdx.x * V;
    float m = -INFINITY, s = 0.f, zs = 0.f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float x = z[j];
        zs += x;
        if (x > m) s = s * expf(m - x) + 1.f, m = x;
        else s += expf(x - m);
    }
    /* combine (m, s) pairs: warp, then block */
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(FULL, m, o), s2 = __shfl_xor_sync(FULL, s, o), mm = fmaxf(m, m2);
        s = (m == -INFINITY ? 0.f : s * expf(m - mm)) + (m2 == -INFINITY ? 0.f : s2 * expf(m2 - mm));
        m = mm;
    }
    zs = wkc_warp_sum(zs);
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) rm[wid] = m, rsum[wid] = s, rz[wid] = zs;
    int t = tgt[blockIdx.x];
    if (threadIdx.x == 0) zt = z[t];
    __syncthreads();
    float M = -INFINITY, S = 0.f, Z = 0.f;
    for (int i = 0; i < nw; i++) M = fmaxf(M, rm[i]);
    for (int i = 0; i < nw; i++) S += rm[i] == -INFINITY ? 0.f : rsum[i] * expf(rm[i] - M), Z += rz[i];
    float lse = M + logf(S);
    if (threadIdx.x == 0) loss[blockIdx.x] = (1.f - eps) * (lse - zt) + eps * (lse - Z / (float)V);
    float off = eps / (float)V;
    size_t base = (size_t)blockIdx.x * V;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float g = expf(z[j] - lse) - off - (j == t ? 1.f - eps : 0.f);
        if (!g16) z[j] = g;
        else if (bf) ((__nv_bfloat16 *)g16)[base + j] = __float2bfloat16_rn(g);
        else ((__half *)g16)[base + j] = __float2half_rn(g);
    }
}

void wkt_xent(wk_backend *be, float *logits, const int32_t *tgt, int rows, int V, float smoothing, float *loss, void *g16,
              int dt16) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (rows <= 0) return;
    kt_xent<<<rows, 512, 0, b->st>>>(logits, tgt, V, smoothing, loss, g16, dt16 == WICK_DT_BF16);
    wkc_launched(b, "cross-entropy");
}

/* ------------------------------------------------------------ rows, dropout */

__global__ void kt_rows(float *dst, const float *src, const int32_t *rows, int C, int scatter) {
    size_t r = blockIdx.x, o = (size_t)rows[r] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        if (scatter) dst[o + c] = src[r * C + c];
        else dst[r * C + c] = src[o + c];
    }
}

void wkt_gather_rows(wk_backend *be, float *dst, const float *src, const int32_t *rows, int nr, int C) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (nr <= 0) return;
    kt_rows<<<nr, 256, 0, b->st>>>(dst, src, rows, C, 0);
    wkc_launched(b, "gather rows");
}

void wkt_scatter_rows(wk_backend *be, float *dst, const float *src, const int32_t *rows, int nr, int C) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (nr <= 0) return;
    kt_rows<<<nr, 256, 0, b->st>>>(dst, src, rows, C, 1);
    wkc_launched(b, "scatter rows");
}

__device__ __forceinline__ uint64_t kt_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

__global__ void kt_dropout(float *dst, const float *src, size_t n, uint64_t key, uint32_t thr, float inv) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = (uint32_t)(kt_mix64(key + i * 0x9e3779b97f4a7c15ull) >> 32) < thr ? 0.f : src[i] * inv;
}

void wkt_dropout(wk_backend *be, float *dst, const float *src, size_t cnt, uint64_t key, float p) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    float keep = 1.f - p, inv = 1.f / keep;
    uint32_t thr = (uint32_t)((double)p * 4294967296.0);
    kt_dropout<<<wkc_blocks(cnt), 256, 0, b->st>>>(dst, src, cnt, key, thr, inv);
    wkc_launched(b, "lora dropout");
}

/* ------------------------------------------------------------ optimizer */

__global__ void kt_scale_sumsq(float *g, size_t n, float inv, double *part) {
    __shared__ double red[256];
    double s = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float x = g[i] * inv;
        g[i] = x;
        s += (double)x * x;
    }
    red[threadIdx.x] = s;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) red[threadIdx.x] += red[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = red[0];
}

void wkt_scale_sumsq(wk_backend *be, float *g, size_t n, float inv, double *part) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    kt_scale_sumsq<<<WKT_NORM_BLOCKS, 256, 0, b->st>>>(g, n, inv, part);
    wkc_launched(b, "gradient norm");
}

__global__ void kt_adamw(float *w, float *g, float *m, float *v, size_t n, float clip, float decay, float w1, float b2,
                         float w2, float step_size, float bc2s, float eps) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float gi = clip < 1.f ? g[i] * clip : g[i];
        float p = w[i] * decay;
        float mi = m[i] + w1 * (gi - m[i]);
        float vi = v[i] * b2 + w2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = p + (-step_size) * (mi / (sqrtf(vi) / bc2s + eps));
        g[i] = 0.f;
    }
}

void wkt_adamw(wk_backend *be, float *w, float *g, float *m, float *v, size_t n, float clip, float decay, float w1,
               float b2, float w2, float step_size, float bc2s, float eps) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    kt_adamw<<<wkc_blocks(n), 256, 0, b->st>>>(w, g, m, v, n, clip, decay, w1, b2, w2, step_size, bc2s, eps);
    wkc_launched(b, "adamw");
}

/* Block (x, segment y) grid-strides over segment y. */
__global__ void kt_seg_scale(float *dst, const float *src, const wkt_seg *segs) {
    wkt_seg g = segs[blockIdx.y];
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < g.n; e += (size_t)gridDim.x * blockDim.x)
        dst[g.dst_at + e] = g.s * src[g.src_at + e];
}

void wkt_seg_scale(wk_backend *be, float *dst, const float *src, const wkt_seg *segs, int nseg, size_t max_n) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (nseg <= 0 || !max_n) return;
    int bx = wkc_blocks(max_n);
    kt_seg_scale<<<dim3((unsigned)(bx < 64 ? bx : 64), (unsigned)nseg), 256, 0, b->st>>>(dst, src, segs);
    wkc_launched(b, "scaled segment copy");
}

void wkt_zero(wk_backend *be, void *p, size_t bytes) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    wkc_cuda_fail(b, cudaMemsetAsync(p, 0, bytes, b->st), "memset");
    wkc_launched(b, "memset");
}

void wkt_copy(wk_backend *be, void *dst, const void *src, size_t bytes) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    wkc_cuda_fail(b, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, b->st), "device copy");
    wkc_launched(b, "device copy");
}
