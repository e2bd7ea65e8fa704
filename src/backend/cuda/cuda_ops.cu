/*
 * cuda_ops.cu — the CUDA ops other than attention: matrix products (a warp-per-
 * row GEMV that reads the weights once for decode, n <= 8 rows; cuBLAS for more:
 * sgemm for f32 weights, bf16/f16 weights fed to cublasGemmEx with activations
 * rounded to the weight type and fp32 accumulation), RMSNorm, RoPE, SwiGLU,
 * residual add, embedding gather and KV-cache stores, the greedy pick, and the
 * decode step's fused product (k_mv: norm or SwiGLU input, LoRA shrink and expand,
 * gated or RoPE + KV-store output, in one launch). Activations are f32.
 */
#include "backend/cuda/cuda_internal.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <type_traits>

#define GEMV_MAX_ROWS 8
#define GEMV_UNROLL 4
#define GEMV_LONG_ROW 2048     /* rows at least this long, ... */
#define GEMV_LONG_MAX_OUT 8192 /* ... when there are at most this many: a block per row */

/* ------------------------------------------------------------ weight loads */
__device__ __forceinline__ float ld1(const float *w, size_t i) { return w[i]; }
__device__ __forceinline__ float ld1(const __nv_bfloat16 *w, size_t i) { return __bfloat162float(w[i]); }
__device__ __forceinline__ float ld1(const __half *w, size_t i) { return __half2float(w[i]); }

/* Eight consecutive weights from a 16-byte-aligned address (f32: 32 bytes). */
__device__ __forceinline__ void ld8(const float *p, float f[8]) {
    float4 a = __ldg((const float4 *)p), b = __ldg((const float4 *)p + 1);
    f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}
__device__ __forceinline__ void ld8(const __nv_bfloat16 *p, float f[8]) {
    uint4 u = __ldg((const uint4 *)p);
    unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        f[2 * i] = __uint_as_float(w[i] << 16);
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}
__device__ __forceinline__ void ld8(const __half *p, float f[8]) {
    uint4 u = __ldg((const uint4 *)p);
    const __half2 *h = (const __half2 *)&u;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 v = __half22float2(h[i]);
        f[2 * i] = v.x, f[2 * i + 1] = v.y;
    }
}


/* y[r, o] (=|+=) x[r, :] · W[o, :] + bias[o] for r < n <= NR: one warp per output row o.
 * vec: rows are 16-byte aligned and `in` a multiple of 8 (vector loads). */
template <typename T, int NR>
__global__ void k_gemv(float *y, const float *x, const T *W, const float *bias, int n, int in, int out, int acc, int vec) {
    int o = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (o >= out) return;
    const T *w = W + (size_t)o * in;
    float s[NR];
#pragma unroll
    for (int r = 0; r < NR; r++) s[r] = 0.f;
    if (vec) {
        /* GEMV_UNROLL independent 16-byte weight loads in flight per lane before any use */
        for (int k0 = lane * 8; k0 < in; k0 += 256 * GEMV_UNROLL) {
            float wf[GEMV_UNROLL][8];
#pragma unroll
            for (int u = 0; u < GEMV_UNROLL; u++)
                if (k0 + u * 256 < in) ld8(w + k0 + u * 256, wf[u]);
#pragma unroll
            for (int u = 0; u < GEMV_UNROLL; u++) {
                int k = k0 + u * 256;
                if (k >= in) break;
#pragma unroll
                for (int r = 0; r < NR; r++) {
                    if (r >= n) break;
                    const float4 *xp = (const float4 *)(x + (size_t)r * in + k);
                    float4 a = xp[0], b = xp[1];
                    s[r] += wf[u][0] * a.x + wf[u][1] * a.y + wf[u][2] * a.z + wf[u][3] * a.w + wf[u][4] * b.x +
                            wf[u][5] * b.y + wf[u][6] * b.z + wf[u][7] * b.w;
                }
            }
        }
    } else {
        for (int k = lane; k < in; k += 32) {
            float wv = ld1(w, (size_t)k);
#pragma unroll
            for (int r = 0; r < NR; r++)
                if (r < n) s[r] += wv * x[(size_t)r * in + k];
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++) {
        float v = wkc_warp_sum(s[r]);
        if (lane == 0 && r < n) {
            v += bias ? bias[o] : 0.f;
            float *d = y + (size_t)r * out + o;
            *d = acc ? *d + v : v;
        }
    }
}

/* Long rows (in >= GEMV_LONG_ROW, few outputs, e.g. down_proj): one block of 256 threads
 * per output row splits the row, so 8× more warps stream the weights; vector path only. */
template <typename T, int NR>
__global__ void k_gemv_long(float *y, const float *x, const T *W, const float *bias, int n, int in, int out, int acc) {
    __shared__ float red[8][NR];
    int o = blockIdx.x, lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const T *w = W + (size_t)o * in;
    float s[NR];
#pragma unroll
    for (int r = 0; r < NR; r++) s[r] = 0.f;
    for (int k0 = threadIdx.x * 8; k0 < in; k0 += 2048 * 2) {
        float wf[2][8];
#pragma unroll
        for (int u = 0; u < 2; u++)
            if (k0 + u * 2048 < in) ld8(w + k0 + u * 2048, wf[u]);
#pragma unroll
        for (int u = 0; u < 2; u++) {
            int k = k0 + u * 2048;
            if (k >= in) break;
#pragma unroll
            for (int r = 0; r < NR; r++) {
                if (r >= n) break;
                const float4 *xp = (const float4 *)(x + (size_t)r * in + k);
                float4 a = xp[0], b = xp[1];
                s[r] += wf[u][0] * a.x + wf[u][1] * a.y + wf[u][2] * a.z + wf[u][3] * a.w + wf[u][4] * b.x +
                        wf[u][5] * b.y + wf[u][6] * b.z + wf[u][7] * b.w;
            }
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++) {
        float v = wkc_warp_sum(s[r]);
        if (lane == 0) red[wid][r] = v;
    }
    __syncthreads();
    if (threadIdx.x < NR && (int)threadIdx.x < n) {
        int r = threadIdx.x;
        float v = 0.f;
        for (int i = 0; i < 8; i++) v += red[i][r];
        v += bias ? bias[o] : 0.f;
        float *d = y + (size_t)r * out + o;
        *d = acc ? *d + v : v;
    }
}

template <typename T>
static void launch_gemv(wkc_backend *b, float *y, const float *x, const T *W, const float *bias, int n, int in, int out,
                        int acc) {
    int vec = (in % 8) == 0 && ((uintptr_t)W % 16) == 0 && ((uintptr_t)x % 16) == 0;
    int threads = 256, blocks = (int)(((size_t)out * 32 + threads - 1) / threads);
    if (vec && in >= GEMV_LONG_ROW && out <= GEMV_LONG_MAX_OUT) {
        if (n <= 1) k_gemv_long<T, 1><<<out, 256, 0, b->st>>>(y, x, W, bias, n, in, out, acc);
        else if (n <= 2) k_gemv_long<T, 2><<<out, 256, 0, b->st>>>(y, x, W, bias, n, in, out, acc);
        else if (n <= 4) k_gemv_long<T, 4><<<out, 256, 0, b->st>>>(y, x, W, bias, n, in, out, acc);
        else k_gemv_long<T, 8><<<out, 256, 0, b->st>>>(y, x, W, bias, n, in, out, acc);
        wkc_launched(b, "gemv (long rows)");
        return;
    }
    if (n <= 1) k_gemv<T, 1><<<blocks, threads, 0, b->st>>>(y, x, W, bias, n, in, out, acc, vec);
    else if (n <= 2) k_gemv<T, 2><<<blocks, threads, 0, b->st>>>(y, x, W, bias, n, in, out, acc, vec);
    else if (n <= 4) k_gemv<T, 4><<<blocks, threads, 0, b->st>>>(y, x, W, bias, n, in, out, acc, vec);
    else k_gemv<T, 8><<<blocks, threads, 0, b->st>>>(y, x, W, bias, n, in, out, acc, vec);
    wkc_launched(b, "gemv");
}

/* --------------------------------------------------------- small kernels */
__global__ void k_to_bf16(__nv_bfloat16 *d, const float *s, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        d[i] = __float2bfloat16_rn(s[i]);
}
__global__ void k_to_f16(__half *d, const float *s, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        d[i] = __float2half_rn(s[i]);
}
__global__ void k_add_bias(float *y, const float *bias, size_t n, int out) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] += bias[i % (size_t)out];
}

/* y[n,out] (=|+=) x[n,in]·Wᵀ through cuBLAS (column-major: yᵀ = W·xᵀ); returns 1 when it also
 * added bias (a cuBLASLt epilogue: 16-bit weights on the fast instance), else the caller does. */
static int gemm(wkc_backend *b, float *y, const float *x, const wk_mat *W, const float *bias, int n, int acc) {
    int out = W->rows, in = W->cols;
    float one = 1.f, beta = acc ? 1.f : 0.f;
    if (W->dt == WICK_DT_F32) {
        wkc_blas_fail(b, cublasSgemm(b->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, (const float *)W->w, in, x, in,
                                     &beta, y, out), "sgemm");
        b->optag = out;
        b->act16 = 0;
        wkc_launched(b, "sgemm");
        return 0;
    }
    size_t cnt = (size_t)n * in;
    cudaDataType_t t = W->dt == WICK_DT_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    void *xh;
    if (b->cast_x == x && b->cast_n == cnt && b->cast_dt == (int)W->dt) {
        xh = b->scr[WKC_SCR_ACT16]; /* q/k/v and gate/up read the same activations: round them once */
    } else {
        if (!(xh = wkc_scratch(b, WKC_SCR_ACT16, cnt * 2))) return 1;
        if (W->dt == WICK_DT_BF16) k_to_bf16<<<wkc_blocks(cnt), 256, 0, b->st>>>((__nv_bfloat16 *)xh, x, cnt);
        else k_to_f16<<<wkc_blocks(cnt), 256, 0, b->st>>>((__half *)xh, x, cnt);
        wkc_launched(b, "activation cast");
        b->cast_x = x, b->cast_n = cnt, b->cast_dt = (int)W->dt;
    }
    b->act16 = (int)W->dt; /* ops producing the next products' inputs now write 16-bit copies (cuda_prefill.cu) */
    if (bias && wkc_gemm_bias(b, y, xh, W, bias, n, acc)) return 1;
    wkc_blas_fail(b, cublasGemmEx(b->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, W->w, t, in, xh, t, in, &beta, y,
                                  CUDA_R_32F, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                  "gemm (16-bit weights)");
    b->optag = out;
    wkc_launched(b, "gemm16");
    return 0;
}

void wkc_matmul(wk_backend *be, float *y, const float *x, const wk_mat *W, const float *bias, int n, int acc) {
    wkc_backend *b = wkc(be);
    if (W->qtype || (W->dt != WICK_DT_F32 && W->dt != WICK_DT_BF16 && W->dt != WICK_DT_F16)) {
        if (!b->err) {
            b->err = WICK_EUNSUPPORTED;
            snprintf(b->errmsg, sizeof b->errmsg, "cuda:%d: matmul: weight type %s (quant %d) is not supported", b->device,
                     wick_dtype_name(W->dt), W->qtype);
        }
        return;
    }
    const float *cx = b->cast_x; /* matmuls keep the 16-bit activation cache (see gemm) */
    wkc_use(b);
    b->cast_x = cx;
    int out = W->rows, in = W->cols;
    if (b->cast_x && y < b->cast_x + b->cast_n && b->cast_x < y + (size_t)n * out) b->cast_x = NULL; /* about to be overwritten */
    if (n <= GEMV_MAX_ROWS) {
        if (W->dt == WICK_DT_F32) launch_gemv(b, y, x, (const float *)W->w, bias, n, in, out, acc);
        else if (W->dt == WICK_DT_BF16) launch_gemv(b, y, x, (const __nv_bfloat16 *)W->w, bias, n, in, out, acc);
        else launch_gemv(b, y, x, (const __half *)W->w, bias, n, in, out, acc);
        return;
    }
    if (!gemm(b, y, x, W, bias, n, acc) && bias) {
        size_t cnt = (size_t)n * out;
        k_add_bias<<<wkc_blocks(cnt), 256, 0, b->st>>>(y, bias, cnt, out);
        wkc_launched(b, "bias");
    }
}

void wkc_matmul_f32(wk_backend *be, float *y, const float *x, const float *B, int n, int m, int k, float s, int acc) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    float beta = acc ? 1.f : 0.f;
    wkc_blas_fail(b, cublasSgemm(b->blas, CUBLAS_OP_T, CUBLAS_OP_N, k, n, m, &s, B, m, x, m, &beta, y, k), "matmul_f32");
    b->optag = k;
    wkc_launched(b, "matmul_f32");
}

/* ------------------------------------------------------------- RMSNorm */
/* One block per row: y = x / sqrt(mean(x²) + eps) * w. In place (y == x) is fine. */
__global__ void k_rmsnorm(float *y, const float *x, const float *w, int dim, float eps) {
    __shared__ float red[32];
    const float *xi = x + (size_t)blockIdx.x * dim;
    float *yi = y + (size_t)blockIdx.x * dim;
    float ss = 0.f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) ss += xi[j] * xi[j];
    ss = wkc_warp_sum(ss);
    int wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    if ((threadIdx.x & 31) == 0) red[wid] = ss;
    __syncthreads();
    if (wid == 0) {
        float v = (int)threadIdx.x < nw ? red[threadIdx.x] : 0.f;
        v = wkc_warp_sum(v);
        if (threadIdx.x == 0) red[0] = v;
    }
    __syncthreads();
    float r = 1.f / sqrtf(red[0] / (float)dim + eps);
    for (int j = threadIdx.x; j < dim; j += blockDim.x) yi[j] = xi[j] * r * (w ? w[j] : 1.f);
}

/* The same with the row held in registers: V float4 per thread, one read of x. */
template <int V>
__global__ void k_rmsnorm4(float *y, const float *x, const float *w, int dim, float eps) {
    __shared__ float red[32];
    int nv = dim / 4;
    const float4 *xi = (const float4 *)(x + (size_t)blockIdx.x * dim);
    float4 *yi = (float4 *)(y + (size_t)blockIdx.x * dim);
    float4 r[V];
    float rs = wkc_rms_regs<V>(xi, nv, dim, eps, r, red);
#pragma unroll
    for (int u = 0; u < V; u++) {
        int j = threadIdx.x + u * blockDim.x;
        if (j < nv) {
            float4 g = w ? ((const float4 *)w)[j] : make_float4(1.f, 1.f, 1.f, 1.f);
            yi[j] = make_float4(r[u].x * rs * g.x, r[u].y * rs * g.y, r[u].z * rs * g.z, r[u].w * rs * g.w);
        }
    }
}

void wkc_rmsnorm(wk_backend *be, float *y, const float *x, const float *w, int n, int dim, float eps) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (wkc_rmsnorm16(b, y, x, w, n, dim, eps)) return;
    int nv = dim / 4;
    if (dim % 4 == 0 && nv <= 4 * 256 && ((uintptr_t)x | (uintptr_t)y | (uintptr_t)w) % 16 == 0) {
        int threads = nv >= 256 ? 256 : 32 * ((nv + 31) / 32), per = (nv + threads - 1) / threads;
        if (per == 1) k_rmsnorm4<1><<<n, threads, 0, b->st>>>(y, x, w, dim, eps);
        else if (per == 2) k_rmsnorm4<2><<<n, threads, 0, b->st>>>(y, x, w, dim, eps);
        else k_rmsnorm4<4><<<n, threads, 0, b->st>>>(y, x, w, dim, eps);
        wkc_launched(b, "rmsnorm");
        return;
    }
    int threads = dim >= 1024 ? 256 : dim >= 256 ? 128 : 32 * ((dim + 31) / 32 < 4 ? (dim + 31) / 32 : 4);
    k_rmsnorm<<<n, threads, 0, b->st>>>(y, x, w, dim, eps);
    wkc_launched(b, "rmsnorm");
}

/* ---------------------------------------------------------------- RoPE */
/* One block per token; rotate_half layout: (a, b) = (x[j], x[j+half]). The token's sines and
 * cosines are computed once into shared memory (sc: [half] sin, [half] cos), not once per head. */
__global__ void k_rope(float *x, const int32_t *pos, int nh, int D, const float *inv_freq) {
    extern __shared__ float sc[];
    int i = blockIdx.x, half = D / 2;
    float p = (float)pos[i];
    for (int j = threadIdx.x; j < half; j += blockDim.x) sincosf(p * inv_freq[j], &sc[j], &sc[half + j]);
    __syncthreads();
    for (int t = threadIdx.x; t < nh * half; t += blockDim.x) {
        int h = t / half, j = t % half;
        float sn = sc[j], cs = sc[half + j];
        float *v = x + ((size_t)i * nh + h) * D;
        float a = v[j], c = v[j + half];
        v[j] = a * cs - c * sn;
        v[j + half] = c * cs + a * sn;
    }
}

void wkc_rope(wk_backend *be, float *x, const int32_t *pos, int n, int nh, int D, const float *inv_freq) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    k_rope<<<n, 128, sizeof(float) * (size_t)(D / 2 * 2), b->st>>>(x, pos, nh, D, inv_freq);
    wkc_launched(b, "rope");
}

/* ------------------------------------------------------- element-wise */
__global__ void k_swiglu(float *out, const float *g, const float *u, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = g[i] / (1.f + expf(-g[i])) * u[i];
}
__global__ void k_add(float *y, const float *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) y[i] += x[i];
}

void wkc_swiglu(wk_backend *be, float *out, const float *gate, const float *up, size_t n) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (wkc_swiglu16(b, out, gate, up, n)) return;
    k_swiglu<<<wkc_blocks(n), 256, 0, b->st>>>(out, gate, up, n);
    wkc_launched(b, "swiglu");
}

void wkc_add(wk_backend *be, float *y, const float *x, size_t n) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    k_add<<<wkc_blocks(n), 256, 0, b->st>>>(y, x, n);
    wkc_launched(b, "add");
}

/* ------------------------------------------------------ embed, KV store */
template <typename T>
__global__ void k_embed(float *out, const T *E, const int32_t *ids, int C) {
    size_t row = (size_t)ids[blockIdx.x] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) out[(size_t)blockIdx.x * C + c] = ld1(E, row + c);
}

void wkc_embed(wk_backend *be, float *out, const wk_mat *E, const int32_t *ids, int n) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (n <= GEMV_MAX_ROWS) b->act16 = 0; /* a decode step: no 16-bit copies (nothing reads them; graphs) */
    if (E->dt == WICK_DT_F32) k_embed<<<n, 256, 0, b->st>>>(out, (const float *)E->w, ids, E->cols);
    else if (E->dt == WICK_DT_BF16) k_embed<<<n, 256, 0, b->st>>>(out, (const __nv_bfloat16 *)E->w, ids, E->cols);
    else k_embed<<<n, 256, 0, b->st>>>(out, (const __half *)E->w, ids, E->cols);
    wkc_launched(b, "embed");
}

/* k_new,v_new [n,Hk,D] -> caches [Hk,cap,D] at positions pos0.. (pos[0] when pos is given) */
__global__ void k_kv_store(float *kc, float *vc, const float *kn, const float *vn, int n, int pos0, const int32_t *pos,
                           int Hk, int D, int cap) {
    if (pos) pos0 = pos[0];
    size_t total = (size_t)n * Hk * D;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        int d = (int)(t % D);
        size_t ih = t / D;
        int h = (int)(ih % Hk), i = (int)(ih / Hk);
        size_t dst = ((size_t)h * cap + (size_t)(pos0 + i)) * D + d;
        kc[dst] = kn[t];
        vc[dst] = vn[t];
    }
}

void wkc_kv_store(wk_backend *be, float *kc, float *vc, const float *k_new, const float *v_new, int n, int pos0,
                  const int32_t *pos, int Hk, int D, int cap) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    size_t total = (size_t)n * Hk * D;
    k_kv_store<<<wkc_blocks(total), 256, 0, b->st>>>(kc, vc, k_new, v_new, n, pos0, pos, Hk, D, cap);
    wkc_launched(b, "kv_store");
}

/* ------------------------------------------------------------ greedy pick */
/* (max, Σ exp(x - max), first index of max) of two parts; idx INT_MAX: none. */
__device__ __forceinline__ void pick_merge(float &m, float &s, int &i, float m2, float s2, int i2) {
    float mx = fmaxf(m, m2);
    if (mx == -INFINITY) return; /* both empty */
    s = (m == -INFINITY ? 0.f : s * expf(m - mx)) + (m2 == -INFINITY ? 0.f : s2 * expf(m2 - mx));
    i = m2 > m ? i2 : m > m2 ? i : min(i, i2);
    m = mx;
}

__device__ __forceinline__ void pick_block(float &m, float &s, int &i, float *sm) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        pick_merge(m, s, i, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o),
                   __shfl_xor_sync(0xffffffffu, i, o));
    int w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sm[3 * w] = m, sm[3 * w + 1] = s, sm[3 * w + 2] = __int_as_float(i);
    __syncthreads();
    m = sm[0], s = sm[1], i = __float_as_int(sm[2]);
    for (int k = 1; k < nw; k++) pick_merge(m, s, i, sm[3 * k], sm[3 * k + 1], __float_as_int(sm[3 * k + 2]));
}

/* Each block folds its stride of x in one pass (online rescaled sum); the last block to
 * finish (counted in cnt, reset for the next launch) folds the blocks' parts into out. */
__global__ void __launch_bounds__(256) k_pick(float *out, unsigned *cnt, float *part, const float *x, int n) {
    __shared__ float sm[3 * 8];
    __shared__ int last;
    float m = -INFINITY, s = 0.f;
    int i = INT_MAX;
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < n; k += gridDim.x * blockDim.x) {
        float v = x[k];
        if (v > m) s = (m == -INFINITY ? 0.f : s * expf(m - v)) + 1.f, m = v, i = k;
        else if (v > -INFINITY) s += expf(v - m); /* NaN and -inf add nothing */
    }
    pick_block(m, s, i, sm);
    if (threadIdx.x == 0) {
        part[3 * blockIdx.x] = m, part[3 * blockIdx.x + 1] = s, part[3 * blockIdx.x + 2] = __int_as_float(i);
        __threadfence();
        last = atomicAdd(cnt, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    m = -INFINITY, s = 0.f, i = INT_MAX;
    for (int b = threadIdx.x; b < (int)gridDim.x; b += blockDim.x)
        pick_merge(m, s, i, __ldcg(part + 3 * b), __ldcg(part + 3 * b + 1), __float_as_int(__ldcg(part + 3 * b + 2)));
    pick_block(m, s, i, sm);
    if (threadIdx.x == 0) {
        out[0] = m, out[1] = s, out[2] = __int_as_float(m == -INFINITY || i == INT_MAX ? -1 : i);
        *cnt = 0;
    }
}

static_assert(WKC_PICK_PART + 3 * WKC_PICK_BLOCKS <= WKC_MV_SLOT && WKC_MV_SLOT + 2 * WKC_MV_TMAX <= WKC_TICKET_WORDS,
              "the ticket words' uses overlap");

void wkc_mv_empty_slots(wkc_backend *b) {
    wkc_cuda_fail(b, cudaMemsetAsync(b->ticket + WKC_MV_SLOT, 0xff, 2 * WKC_MV_TMAX * sizeof(unsigned), b->st),
                  "matvec (emptying the shrink slots)");
}

void wkc_pick(wk_backend *be, float *out, const float *x, int n) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    int blocks = (n + 1023) / 1024;
    blocks = blocks < 1 ? 1 : blocks > WKC_PICK_BLOCKS ? WKC_PICK_BLOCKS : blocks;
    k_pick<<<blocks, 256, 0, b->st>>>(out, b->ticket + WKC_PICK_CNT, (float *)(b->ticket + WKC_PICK_PART), x, n);
    wkc_launched(b, "pick");
}

/* ------------------------------------------------ decode-step fusions */
/* Above this many rows a normed matvec runs the RMSNorm as its own kernel first (the LM
 * head: each block stages the normed row, which costs more than one extra launch there). */
#define MV_NORM_MAX_ROWS 65536
/* The matvec input row (backend.h: wk_rowin) as a kernel parameter. */
struct rowin_d {
    const float *x, *nw, *up;
    float eps, scale;
    const float *A;
    int ra;
    float *t;
    const float *pB;
    float ps;
    int pnblk, pbrows[3], pbcols[3];
    wk_rope_out ro; /* k_mv's PAIR 2 (rope) only */
    float *ts, *tinv; /* with an expand: this launch's shrink slot, and the other slot (emptied by this launch) */
};

/* Stages the block's copy of x' in shared memory (STAGE: MODE 0 x, 1 x·nw, 2 silu(x)·up) and
 * returns the norm's 1/rms (MODE 1), a scalar of the row applied to every dot product at
 * the end; 1 otherwise. */
template <int MODE, int STAGE>
__device__ __forceinline__ float stage_row(const rowin_d &r, int in, float *xs, float *red) {
    float ss = 0.f;
    for (int k = threadIdx.x * 4; STAGE && k < in; k += blockDim.x * 4) {
        float4 v = *(const float4 *)(r.x + k);
        if (MODE == 1) {
            float4 w = __ldg((const float4 *)(r.nw + k));
            ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
            v.x *= w.x, v.y *= w.y, v.z *= w.z, v.w *= w.w;
        } else if (MODE == 2) {
            float4 u = *(const float4 *)(r.up + k);
            v.x = v.x / (1.f + expf(-v.x)) * u.x, v.y = v.y / (1.f + expf(-v.y)) * u.y;
            v.z = v.z / (1.f + expf(-v.z)) * u.z, v.w = v.w / (1.f + expf(-v.w)) * u.w;
        }
        *(float4 *)(xs + k) = v;
    }
    float inv = 1.f;
    if (MODE == 1) {
        ss = wkc_warp_sum(ss);
        if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;
        __syncthreads();
        float t = 0.f;
        for (int i = 0; i < (int)(blockDim.x >> 5); i++) t += red[i];
        inv = 1.f / sqrtf(t / (float)in + r.eps);
    }
    __syncthreads();
    return inv;
}

/* Columns [*c0, *c0 + *nc) of row o of the launch's expand matrix (its block's rank when
 * block-diagonal). */
__device__ __forceinline__ void pspan(const rowin_d &r, int o, int *c0, int *nc) {
    *c0 = 0, *nc = r.ra;
    if (!r.pnblk) return;
    int i = 0, r0 = 0;
    while (i + 1 < r.pnblk && o >= r0 + r.pbrows[i]) r0 += r.pbrows[i], *c0 += r.pbcols[i], i++;
    *nc = r.pbcols[i];
}

/* ---- the streaming product (k_mv): every thread issues all its weight loads for a batch
 * of columns (NCH chunks of 8 weights of each of its rows) before anything else (staging
 * x', the norm, the shrink), so the weights stream from the first cycle; the grid's units
 * are WPR warps over RPW rows, or RPW pairs of rows (PAIR 1: rows o and out/2 + o, written
 * as silu(gate)·up; PAIR 2: rows j and j + D/2 of a q, k or v head, rotated and stored). */
template <typename T> struct wchunk {
    static constexpr int N = sizeof(T) == 4 ? 2 : 1;
    uint4 v[N];
};
template <typename T> __device__ __forceinline__ void wload(wchunk<T> &c, const T *p) {
#pragma unroll
    for (int i = 0; i < wchunk<T>::N; i++) {
        /* read-only, no L1 allocation, 256-byte L2 prefetch: 7B down 54 -> 41 us, head 304 -> 285
         * (bench_cuda_mv against __ldg) */
        asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
                     : "=r"(c.v[i].x), "=r"(c.v[i].y), "=r"(c.v[i].z), "=r"(c.v[i].w)
                     : "l"((const uint4 *)p + i));
    }
}
__device__ __forceinline__ float wdot(const wchunk<float> &c, const float *x) {
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        float4 w = make_float4(__uint_as_float(c.v[i].x), __uint_as_float(c.v[i].y), __uint_as_float(c.v[i].z),
                               __uint_as_float(c.v[i].w));
        s += w.x * x[4 * i] + w.y * x[4 * i + 1] + w.z * x[4 * i + 2] + w.w * x[4 * i + 3];
    }
    return s;
}
__device__ __forceinline__ float wdot(const wchunk<__nv_bfloat16> &c, const float *x) {
    unsigned u[4] = {c.v[0].x, c.v[0].y, c.v[0].z, c.v[0].w};
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < 4; i++) s += __uint_as_float(u[i] << 16) * x[2 * i] + __uint_as_float(u[i] & 0xffff0000u) * x[2 * i + 1];
    return s;
}
__device__ __forceinline__ float wdot(const wchunk<__half> &c, const float *x) {
    const __half2 *h = (const __half2 *)&c.v[0];
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 v = __half22float2(h[i]);
        s += v.x * x[2 * i] + v.y * x[2 * i + 1];
    }
    return s;
}

/* Blocks of the shrink ahead of the W blocks: long rows (sA) a block per A row, else a warp per row. */
__host__ __device__ __forceinline__ int mv_ablocks(int ra, int sA) { return ra <= 0 ? 0 : sA ? ra : (ra + 7) / 8; }

/* This lane's part of row o's expand over t (the warp's sum is the expand): eb the lane's first
 * expand weight, tj its t index (-1: none), t0/t1 the lane's t[lane] and t[32 + lane] (the first
 * 64 entries of t come from the warp's registers by shuffle, the rest from the slot); wide: some
 * row of the warp spans over 32 columns (then read past the first 32 from memory). Whole warp. */
__device__ __forceinline__ float mv_expand_lane(const rowin_d &r, int o, float eb, int tj, float t0, float t1,
                                                int wide) {
    float v0 = __shfl_sync(0xffffffffu, t0, tj & 31), v1 = r.ra > 32 ? __shfl_sync(0xffffffffu, t1, tj & 31) : 0.f;
    float e = tj < 0 ? 0.f : eb * (tj < 32 ? v0 : tj < 64 ? v1 : __ldcg(r.ts + tj));
    if (wide) {
        int c0, nc;
        pspan(r, o, &c0, &nc);
        for (int k = (threadIdx.x & 31) + 32; k < nc; k += 32)
            e += __ldg(r.pB + (size_t)o * r.ra + c0 + k) * __ldcg(r.ts + c0 + k);
    }
    return e;
}

/* k_mv's first row of logical row (pair) p: p itself, or with PAIR 2 (rope) row j of head
 * h for p = h·(D/2) + j (its partner is D/2 further; with PAIR 1 (glu) nlog further). */
__device__ __forceinline__ int mv_pair_row(int p, int hd, int pair) { return pair == 2 ? (p / hd) * 2 * hd + p % hd : p; }

/* Shrink value j: into t, and into the launch's slot, where the W blocks wait for it (a plain
 * word: it is its own flag; a NaN result is canonical, never WKC_MV_EMPTY's bits). */
__device__ __forceinline__ void mv_put(const rowin_d &r, int j, float v) {
    r.t[j] = v;
    if (r.ts) asm volatile("st.relaxed.gpu.global.f32 [%0], %1;" ::"l"(r.ts + j), "f"(v) : "memory");
}

/* Word j of the launch's shrink slot, read from L2 every time (it is being written by other blocks). */
__device__ __forceinline__ unsigned mv_slot_word(const rowin_d &r, int j) {
    unsigned u;
    asm volatile("ld.relaxed.gpu.global.u32 %0, [%1];" : "=r"(u) : "l"(r.ts + j) : "memory");
    return u;
}

/* The lane's words lane and 32 + lane of the launch's shrink slot (0 past ra): issued, not waited for. */
__device__ __forceinline__ void mv_peek(const rowin_d &r, unsigned &u0, unsigned &u1) {
    int lane = threadIdx.x & 31;
    u0 = lane < r.ra ? mv_slot_word(r, lane) : 0u;
    u1 = lane + 32 < r.ra ? mv_slot_word(r, lane + 32) : 0u;
}

/* The shrink's block of k_mv: A rows (f32) of this block (long rows sA: one row over the
 * block's 8 warps; else a warp per row, 8 rows), their loads issued before x' is staged so
 * they travel with the W blocks' first loads; t[j] = inv · x'·A[j]. */
template <int MODE, int STAGE>
__device__ __forceinline__ void mv_shrink(const rowin_d &r, int in, int sA, float *xs, float *red, float (*part)[2]) {
    constexpr int NA = 4;
    int gw = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int row = sA ? (int)blockIdx.x : (int)blockIdx.x * 8 + gw, live = row < r.ra;
    int col0 = sA ? (int)threadIdx.x * 8 : lane * 8, step = sA ? 2048 : 256;
    const float *a = r.A + (size_t)(live ? row : 0) * in;
    wchunk<float> c[NA];
    if (live)
#pragma unroll
        for (int j = 0; j < NA; j++)
            if (col0 + j * step < in) wload(c[j], a + col0 + j * step);
    float inv = stage_row<MODE, STAGE>(r, in, xs, red), acc = 0.f;
    for (int kb = 0; live;) {
#pragma unroll
        for (int j = 0; j < NA; j++) {
            int k = kb + col0 + j * step;
            if (k >= in) break;
            float4 x0 = *(const float4 *)(xs + k), x1 = *(const float4 *)(xs + k + 4);
            float xf[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
            acc += wdot(c[j], xf);
        }
        kb += NA * step;
        if (kb >= in) break;
#pragma unroll
        for (int j = 0; j < NA; j++)
            if (kb + col0 + j * step < in) wload(c[j], a + kb + col0 + j * step);
    }
    acc = wkc_warp_sum(acc);
    if (sA) {
        if (lane == 0) part[gw][0] = acc;
        __syncthreads();
        acc = 0.f;
        for (int i = 0; i < 8; i++) acc += part[i][0];
        if (threadIdx.x == 0 && live) mv_put(r, row, acc * inv);
    } else if (lane == 0 && live) mv_put(r, row, acc * inv);
}

template <typename T, int MODE, int STAGE, int RPW, int WPR, int NCH, int PAIR>
__global__ void __launch_bounds__(256) k_mv(float *y, rowin_d r, const T *W, const float *bias, int in, int out, int acc,
                                            int sA) {
    static_assert(MODE == 0 || STAGE, "the norm and SwiGLU inputs are staged");
    constexpr int GLU = PAIR != 0, R2 = RPW * (1 + GLU), PER = 8 / WPR, STEP = WPR * 256, KB = NCH * STEP;
    extern __shared__ float4 smv[];
    __shared__ float red[8];
    __shared__ float part[8][R2 > 2 ? R2 : 2];
    float *xs = STAGE ? (float *)smv : (float *)r.x;
    int ablocks = mv_ablocks(r.A ? r.ra : 0, sA);
    if ((int)blockIdx.x < ablocks) { /* the shrink; with an expand, its values also go to the slot the W blocks poll */
        mv_shrink<MODE, STAGE>(r, in, sA, xs, red, (float(*)[2])part);
        if (r.ts) /* empty the other slot for the next such launch (the last one used it and is done) */
            for (int i = (int)(blockIdx.x * blockDim.x + threadIdx.x); i < WKC_MV_TMAX; i += ablocks * (int)blockDim.x)
                r.tinv[i] = __uint_as_float(WKC_MV_EMPTY);
    } else {
        int gw = threadIdx.x >> 5, lane = threadIdx.x & 31, sub = gw % WPR;
        int nlog = GLU ? out / 2 : out;
        int row0 = (((int)blockIdx.x - ablocks) * PER + gw / WPR) * RPW, live = row0 < nlog;
        const T *w[R2];
        int hd = PAIR == 2 ? r.ro.D / 2 : 0;
#pragma unroll
        for (int rr = 0; rr < RPW; rr++) {
            int o = mv_pair_row(min(row0 + rr, nlog - 1), hd, PAIR);
            w[rr] = W + (size_t)o * in;
            if (GLU) w[RPW + rr] = W + (size_t)(o + (PAIR == 2 ? hd : nlog)) * in;
        }
        int col0 = (sub * 32 + lane) * 8;
        /* row rr of the warp (pairs: first rows, then partners) */
        auto orow = [&](int rr) {
            return mv_pair_row(min(row0 + rr % RPW, nlog - 1), hd, PAIR) + (rr >= RPW ? (PAIR == 2 ? hd : nlog) : 0);
        };
        /* this lane's first expand weight of each row and the t index it multiplies, loaded first:
         * ahead of the weights they arrive early, where loaded after the weights (or after the
         * staging) they came last and the expand waited for them (0.5B r16, op times of one
         * decode step on the H200: 1,416 us against 1,458 / 1,425; 7B decode 206.8 tok/s against
         * 205.5 / 202.7) */
        float eb[R2];
        int tj[R2], wide = 0;
#pragma unroll
        for (int rr = 0; rr < R2; rr++) {
            int c0, nc;
            eb[rr] = 0.f, tj[rr] = -1;
            if (!r.pB || !live || row0 + rr % RPW >= nlog) continue;
            pspan(r, orow(rr), &c0, &nc);
            if (lane < nc) eb[rr] = __ldg(r.pB + (size_t)orow(rr) * r.ra + c0 + lane), tj[rr] = c0 + lane;
            wide |= nc > 32;
        }
        wchunk<T> c[NCH][R2];
        if (live)
#pragma unroll
            for (int j = 0; j < NCH; j++)
                if (col0 + j * STEP < in)
#pragma unroll
                    for (int rr = 0; rr < R2; rr++) wload(c[j][rr], w[rr] + col0 + j * STEP);
        float inv = stage_row<MODE, STAGE>(r, in, xs, red);
        float a[R2];
#pragma unroll
        for (int rr = 0; rr < R2; rr++) a[rr] = 0.f;
        unsigned u0 = 0, u1 = 0; /* the slot's first words, read early when there is a last batch of weights */
        int peeked = 0;          /* to wait for: the round trip then overlaps it */
        for (int kb = 0; live;) {
#pragma unroll
            for (int j = 0; j < NCH; j++) {
                int k = kb + col0 + j * STEP;
                if (k >= in) break;
                float4 x0 = *(const float4 *)(xs + k), x1 = *(const float4 *)(xs + k + 4);
                float xf[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
                for (int rr = 0; rr < R2; rr++) a[rr] += wdot(c[j][rr], xf);
            }
            kb += KB;
            if (kb >= in) break;
#pragma unroll
            for (int j = 0; j < NCH; j++)
                if (kb + col0 + j * STEP < in)
#pragma unroll
                    for (int rr = 0; rr < R2; rr++) wload(c[j][rr], w[rr] + kb + col0 + j * STEP);
            if (r.pB && sub == 0 && kb + KB >= in) mv_peek(r, u0, u1), peeked = 1;
        }
        float t0 = 0.f, t1 = 0.f; /* t in registers: one round trip for all the warp's rows */
        if (r.pB && live && sub == 0) /* each warp polls the slot until its shrink values are all there */
            for (;;) {
                unsigned rest = 1;
                if (!peeked) mv_peek(r, u0, u1);
                peeked = 0;
                for (int k = lane + 64; k < r.ra; k += 32) /* ranks over 64: mv_expand_lane reads these again */
                    rest &= mv_slot_word(r, k) != WKC_MV_EMPTY;
                if (__all_sync(0xffffffffu, u0 != WKC_MV_EMPTY && u1 != WKC_MV_EMPTY && rest)) {
                    t0 = __uint_as_float(u0), t1 = __uint_as_float(u1);
                    break;
                }
                __nanosleep(32);
            }
        /* each lane's expand part goes into its part of the scaled product: one reduction a row */
        float f = r.scale * inv;
#pragma unroll
        for (int rr = 0; rr < R2; rr++) {
            a[rr] *= f;
            if (r.pB && live && sub == 0) a[rr] += r.ps * mv_expand_lane(r, orow(rr), eb[rr], tj[rr], t0, t1, wide);
            a[rr] = wkc_warp_sum(a[rr]);
        }
        if (WPR > 1) {
            if (lane == 0)
#pragma unroll
                for (int rr = 0; rr < R2; rr++) part[gw][rr] = a[rr];
            __syncthreads();
#pragma unroll
            for (int rr = 0; rr < R2; rr++) {
                a[rr] = 0.f;
                for (int i = 0; i < WPR; i++) a[rr] += part[gw - sub + i][rr];
            }
        }
        if (live && sub == 0)
#pragma unroll
            for (int rr = 0; rr < RPW; rr++) {
                int p = row0 + rr;
                if (p >= nlog) break;
                int o = orow(rr), o2 = orow((RPW + rr) % R2); /* o2: its partner (pairs) */
                float v = a[rr] + (bias ? bias[o] : 0.f);
                if (PAIR == 2) { /* rows j and j + D/2 of head h: rotate (q, k), store (k, v) */
                    float u = a[RPW + rr] + (bias ? bias[o2] : 0.f);
                    int h = p / hd, j = p % hd, ps = r.ro.pos[0];
                    if (h < r.ro.H + r.ro.Hk) {
                        float sn, cs;
                        sincosf((float)ps * r.ro.inv_freq[j], &sn, &cs);
                        float v2 = v * cs - u * sn;
                        u = u * cs + v * sn, v = v2;
                    }
                    if (lane == 0) {
                        y[o] = v, y[o2] = u;
                        if (h >= r.ro.H) {
                            int kv = h - r.ro.H, isv = kv >= r.ro.Hk;
                            float *c = (isv ? r.ro.vc : r.ro.kc) + ((size_t)(kv - isv * r.ro.Hk) * r.ro.cap + ps) * r.ro.D;
                            c[j] = v, c[j + hd] = u;
                        }
                    }
                    continue;
                }
                if (GLU) {
                    float u = a[RPW + rr] + (bias ? bias[o2] : 0.f);
                    v = v / (1.f + expf(-v)) * u;
                }
                if (lane == 0) y[o] = acc ? y[o] + v : v;
            }
    }
}

/* k_mv's unit shapes, indexed by mv_pick: (RPW, WPR, NCH) = 0 (2,1,4), 1 (1,2,4), 2 (1,4,4),
 * 3 (2,4,2), 4 (1,8,4), 5 (4,1,2), 6 (2,2,4), 7 (1,1,8), 8 (1,1,4). */
#define MV_CFGS 9

template <typename T, int MODE, int STAGE, int PAIR, int RPW, int WPR, int NCH>
static void launch_k_mv(wkc_backend *b, float *y, const rowin_d &r, const T *W, const float *bias, int in, int out,
                        int acc) {
    int nlog = PAIR ? out / 2 : out, sA = in >= 2048, per = 8 / WPR;
    int wblocks = ((nlog + RPW - 1) / RPW + per - 1) / per, ablocks = mv_ablocks(r.A ? r.ra : 0, sA);
    size_t smem = sizeof(float) * (STAGE ? (size_t)in : 0);
    if (smem > 48 * 1024 &&
        wkc_cuda_fail(b, cudaFuncSetAttribute(k_mv<T, MODE, STAGE, RPW, WPR, NCH, PAIR>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), "matvec (shared memory)"))
        return;
    rowin_d rs = r;
    if (r.pB && ablocks) { /* consecutive launches alternate slots; a capture empties them first (and last) */
        if (b->capturing && !b->mv_cap) wkc_mv_empty_slots(b), b->mv_cap = 1;
        rs.ts = (float *)(b->ticket + WKC_MV_SLOT + b->mv_slot * WKC_MV_TMAX);
        rs.tinv = (float *)(b->ticket + WKC_MV_SLOT + (1 - b->mv_slot) * WKC_MV_TMAX);
        b->mv_slot ^= 1;
    }
    k_mv<T, MODE, STAGE, RPW, WPR, NCH, PAIR><<<ablocks + wblocks, 256, smem, b->st>>>(y, rs, W, bias, in, out, acc,
                                                                                      sA);
}

/* The unit shape (mv_cfg index) for a product of `in` columns and `out` rows, from
 * bench_cuda_mv's sweep on the H200 at the 0.5B and 7B shapes: a warp per unit, 4 rows of
 * 2 chunks per lane for the gated and head products, 1 row of 4 for long rows, 2 rows of 4
 * otherwise. WICK_MV_CFG=i (0..MV_CFGS-1) forces entry i (bf16
 * weights; for sweeps). */
static int mv_pick(int in, int out, int pair, int bf16) {
    const char *e = bf16 ? getenv("WICK_MV_CFG") : NULL;
    if (e && *e >= '0' && *e <= '9' && atoi(e) < MV_CFGS) return atoi(e);
    if (pair == 2) return 8;
    if (pair || out >= 65536) return 5;
    if (in > 4096) return 8;
    return 0;
}

template <typename T, int MODE, int STAGE, int PAIR>
static void launch_mv2(wkc_backend *b, float *y, const rowin_d &r, const T *W, const float *bias, int in, int out,
                       int acc) {
    int cfg = mv_pick(in, out, PAIR, std::is_same<T, __nv_bfloat16>::value);
    b->optag = out + (r.A ? r.ra : 0);
    if constexpr (std::is_same<T, __nv_bfloat16>::value) {
        switch (cfg) {
        case 0: launch_k_mv<T, MODE, STAGE, PAIR, 2, 1, 4>(b, y, r, W, bias, in, out, acc); return;
        case 1: launch_k_mv<T, MODE, STAGE, PAIR, 1, 2, 4>(b, y, r, W, bias, in, out, acc); return;
        case 2: launch_k_mv<T, MODE, STAGE, PAIR, 1, 4, 4>(b, y, r, W, bias, in, out, acc); return;
        case 3: launch_k_mv<T, MODE, STAGE, PAIR, 2, 4, 2>(b, y, r, W, bias, in, out, acc); return;
        case 4: launch_k_mv<T, MODE, STAGE, PAIR, 1, 8, 4>(b, y, r, W, bias, in, out, acc); return;
        case 5: launch_k_mv<T, MODE, STAGE, PAIR, 4, 1, 2>(b, y, r, W, bias, in, out, acc); return;
        case 6: launch_k_mv<T, MODE, STAGE, PAIR, 2, 2, 4>(b, y, r, W, bias, in, out, acc); return;
        case 7: launch_k_mv<T, MODE, STAGE, PAIR, 1, 1, 8>(b, y, r, W, bias, in, out, acc); return;
        default: launch_k_mv<T, MODE, STAGE, PAIR, 1, 1, 4>(b, y, r, W, bias, in, out, acc); return;
        }
    } else {
        if (cfg == 5) launch_k_mv<T, MODE, STAGE, PAIR, 4, 1, 2>(b, y, r, W, bias, in, out, acc);
        else if (cfg == 6) launch_k_mv<T, MODE, STAGE, PAIR, 2, 2, 4>(b, y, r, W, bias, in, out, acc);
        else if (cfg == 8) launch_k_mv<T, MODE, STAGE, PAIR, 1, 1, 4>(b, y, r, W, bias, in, out, acc);
        else launch_k_mv<T, MODE, STAGE, PAIR, 2, 1, 4>(b, y, r, W, bias, in, out, acc);
    }
}

/* Staged x' for the norm and SwiGLU modes, and for plain rows that fit MV_STAGE_MAX floats. */
#define MV_STAGE_MAX 8192
template <typename T>
static void launch_mv2_t(wkc_backend *b, int mode, int pair, float *y, const rowin_d &r, const T *W, const float *bias,
                         int in, int out, int acc) {
    if (mode == 1 && pair == 2) launch_mv2<T, 1, 1, 2>(b, y, r, W, bias, in, out, acc);
    else if (mode == 1 && pair) launch_mv2<T, 1, 1, 1>(b, y, r, W, bias, in, out, acc);
    else if (mode == 1) launch_mv2<T, 1, 1, 0>(b, y, r, W, bias, in, out, acc);
    else if (mode == 2) launch_mv2<T, 2, 1, 0>(b, y, r, W, bias, in, out, acc);
    else if (in <= MV_STAGE_MAX) launch_mv2<T, 0, 1, 0>(b, y, r, W, bias, in, out, acc);
    else launch_mv2<T, 0, 0, 0>(b, y, r, W, bias, in, out, acc);
}

static int al16(const void *p) { return ((uintptr_t)p % 16) == 0; }

/* Without vector loads: x' into scratch by the plain ops, then the plain products. */
static void matvec_unfused(wkc_backend *b, float *y, const wk_rowin *in, const wk_mat *W, const float *bias, int acc) {
    const float *xs = in->x;
    if (in->nw || in->up) {
        float *t = (float *)wkc_scratch(b, WKC_SCR_ROW, sizeof(float) * (size_t)in->in);
        if (!t) return;
        if (in->nw) wkc_rmsnorm(&b->be, t, in->x, in->nw, 1, in->in, in->eps);
        else wkc_swiglu(&b->be, t, in->x, in->up, (size_t)in->in);
        xs = t;
    }
    if (in->A) wkc_matmul_f32(&b->be, in->t, xs, in->A, 1, in->in, in->ra, 1.f, 0);
    if (in->scale == 1.f) wkc_matmul(&b->be, y, xs, W, bias, 1, acc);
    else if (W->dt == WICK_DT_F32 && !W->qtype && !bias) wkc_matmul_f32(&b->be, y, xs, (const float *)W->w, 1, in->in, W->rows, in->scale, acc);
    else if (!b->err) {
        b->err = WICK_EUNSUPPORTED;
        snprintf(b->errmsg, sizeof b->errmsg, "cuda:%d: matvec: a scaled product needs f32 weights and no bias", b->device);
    }
    if (in->pB && in->A) wkc_matmul_f32(&b->be, y, in->t, in->pB, 1, in->ra, W->rows, in->ps, 1); /* pB holds its zeros */
}

void wkc_matvec(wk_backend *be, float *y, const wk_rowin *in, const wk_mat *W, const float *bias, int acc) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    const wk_rope_out *ro = in->rope;
    int pair = ro ? 2 : in->glu ? 1 : 0;
    const char *bad = in->glu && (W->rows % 2 || acc) ? "a gated product needs an even row count and no accumulation"
                      : ro && (in->glu || acc || ro->D % 2 || ro->D > 512 || W->rows != (ro->H + 2 * ro->Hk) * ro->D)
                          ? "a product with RoPE needs (H + 2·Hk)·D rows, an even D of at most 512, no gate and no accumulation"
                      : in->pB && !in->A ? "an expand of the launch's shrink needs A"
                                         : NULL;
    if (bad) {
        if (!b->err) {
            b->err = WICK_EINVAL;
            snprintf(b->errmsg, sizeof b->errmsg, "cuda:%d: matvec: %s", b->device, bad);
        }
        return;
    }
    int ok = in->in == W->cols && in->in % 8 == 0 && !W->qtype && (!in->pB || in->ra <= WKC_MV_TMAX) && al16(W->w) &&
             al16(in->x) && al16(in->nw) && al16(in->up) && al16(in->A) &&
             (W->dt == WICK_DT_F32 || W->dt == WICK_DT_BF16 || W->dt == WICK_DT_F16);
    int mode = in->nw ? 1 : in->up ? 2 : 0;
    if (pair && (!ok || W->rows > MV_NORM_MAX_ROWS || (pair == 2 && mode != 1))) { /* the product, then the plain op */
        wk_rowin i2 = *in;
        i2.glu = 0, i2.rope = NULL;
        if (pair == 2) {
            wkc_matvec(be, y, &i2, W, bias, 0);
            int H = ro->H, Hk = ro->Hk, D = ro->D;
            wkc_rope_kv(be, y, y + (size_t)H * D, y + (size_t)(H + Hk) * D, ro->kc, ro->vc, ro->pos, H, Hk, D, ro->cap,
                        ro->inv_freq, NULL, NULL, 0.f, NULL);
            return;
        }
        float *t = (float *)wkc_scratch(b, WKC_SCR_GLU, sizeof(float) * (size_t)W->rows);
        if (!t) return;
        wkc_matvec(be, t, &i2, W, bias, 0);
        wkc_swiglu(be, y, t, t + W->rows / 2, (size_t)(W->rows / 2));
        return;
    }
    if (!ok) {
        matvec_unfused(b, y, in, W, bias, acc);
        return;
    }
    rowin_d r = {in->x, in->nw, in->up, in->eps, in->scale, in->A, in->A ? in->ra : 0, in->t, in->pB, in->ps,
                 in->pB ? in->pnblk : 0, {in->pbrows[0], in->pbrows[1], in->pbrows[2]},
                 {in->pbcols[0], in->pbcols[1], in->pbcols[2]}, ro ? *ro : wk_rope_out{}, NULL, NULL};
    if (mode == 1 && W->rows > MV_NORM_MAX_ROWS) { /* many rows: normalise once (every block would stage it) */
        float *t = (float *)wkc_scratch(b, WKC_SCR_ROW, sizeof(float) * (size_t)in->in);
        if (!t) return;
        wkc_rmsnorm(be, t, in->x, in->nw, 1, in->in, in->eps);
        r.x = t, r.nw = NULL, mode = 0;
    }
    if (W->dt == WICK_DT_F32) launch_mv2_t(b, mode, pair, y, r, (const float *)W->w, bias, in->in, W->rows, acc);
    else if (W->dt == WICK_DT_BF16) launch_mv2_t(b, mode, pair, y, r, (const __nv_bfloat16 *)W->w, bias, in->in, W->rows, acc);
    else launch_mv2_t(b, mode, pair, y, r, (const __half *)W->w, bias, in->in, W->rows, acc);
    wkc_launched(b, "matvec");
}

/* The LoRA expand as a kernel parameter (backend.h: wk_expand). */
struct expand_d {
    const float *B, *t;
    int ra;
    float s;
};

__device__ __forceinline__ float expand_row(const expand_d &e, int row) {
    const float *b = e.B + (size_t)row * e.ra;
    float v = 0.f;
    if ((e.ra & 3) == 0) /* rows 16-byte aligned (the grouped layout pads them): vector loads */
        for (int j = 0; j < e.ra; j += 4) {
            float4 w = __ldg((const float4 *)(b + j)), t = *(const float4 *)(e.t + j);
            v += w.x * t.x + w.y * t.y + w.z * t.z + w.w * t.w;
        }
    else
        for (int j = 0; j < e.ra; j++) v += b[j] * e.t[j];
    return e.s * v;
}

/* One block per q head (h < H) or k head (with its v head); thread d of D (blockDim: D rounded up to 32). */
__global__ void k_rope_kv(float *q, float *k, float *v, float *kc, float *vc, const int32_t *pos, int H, int Hk, int D,
                          int cap, const float *inv_freq, const float *qn, const float *kn, float eps, expand_d e) {
    __shared__ float sh[512];
    __shared__ float red[32];
    int h = blockIdx.x, d = threadIdx.x, isq = h < H, hk = h - H, p = pos[0], half = D / 2;
    int active = d < D;
    float *src = isq ? q + (size_t)h * D : k + (size_t)hk * D;
    float val = active ? src[d] : 0.f;
    if (active && e.B) val += expand_row(e, isq ? h * D + d : H * D + hk * D + d);
    if (!isq && active) {
        float vv = v[(size_t)hk * D + d];
        if (e.B) vv += expand_row(e, H * D + Hk * D + hk * D + d);
        vc[((size_t)hk * cap + p) * D + d] = vv;
    }
    const float *nw = isq ? qn : kn;
    if (nw) { /* per-head RMSNorm (Qwen3 q_norm / k_norm) */
        float ss = wkc_warp_sum(val * val);
        if ((d & 31) == 0) red[d >> 5] = ss;
        __syncthreads();
        float t = 0.f;
        for (int i = 0; i < (int)(blockDim.x >> 5); i++) t += red[i];
        if (active) val = val * (1.f / sqrtf(t / (float)D + eps)) * nw[d];
    }
    if (active) sh[d] = val;
    __syncthreads();
    if (!active) return;
    int j = d < half ? d : d - half;
    float sn, cs;
    sincosf((float)p * inv_freq[j], &sn, &cs);
    float a = sh[j], c = sh[j + half];
    float r = d < half ? a * cs - c * sn : c * cs + a * sn;
    if (isq) {
        q[(size_t)h * D + d] = r;
    } else {
        k[(size_t)hk * D + d] = r;
        kc[((size_t)hk * cap + p) * D + d] = r;
    }
}

void wkc_rope_kv(wk_backend *be, float *q, float *k, float *v, float *kc, float *vc, const int32_t *pos, int H, int Hk,
                 int D, int cap, const float *inv_freq, const float *qn, const float *kn, float eps, const wk_expand *e) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (D > 512 || D % 2) {
        if (!b->err) {
            b->err = WICK_EUNSUPPORTED;
            snprintf(b->errmsg, sizeof b->errmsg, "cuda:%d: rope_kv: head_dim %d (even, at most 512)", b->device, D);
        }
        return;
    }
    expand_d ed = {e ? e->B : NULL, e ? e->t : NULL, e ? e->ra : 0, e ? e->s : 0.f};
    k_rope_kv<<<H + Hk, 32 * ((D + 31) / 32), 0, b->st>>>(q, k, v, kc, vc, pos, H, Hk, D, cap, inv_freq, qn, kn, eps, ed);
    wkc_launched(b, "rope_kv");
}
