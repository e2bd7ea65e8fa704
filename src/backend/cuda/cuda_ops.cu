/*
 * cuda_ops.cu — the CUDA ops other than attention: matrix products (a warp-per-
 * row GEMV that reads the weights once for decode, n <= 8 rows; cuBLAS for more:
 * sgemm for f32 weights, bf16/f16 weights fed to cublasGemmEx with activations
 * rounded to the weight type and fp32 accumulation), RMSNorm, RoPE, SwiGLU,
 * residual add, embedding gather and KV-cache stores. Activations are f32.
 */
#include "backend/cuda/cuda_internal.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdio.h>

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

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
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
        float v = warp_sum(s[r]);
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
        float v = warp_sum(s[r]);
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
    ss = warp_sum(ss);
    int wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    if ((threadIdx.x & 31) == 0) red[wid] = ss;
    __syncthreads();
    if (wid == 0) {
        float v = (int)threadIdx.x < nw ? red[threadIdx.x] : 0.f;
        v = warp_sum(v);
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
    float ss = 0.f;
#pragma unroll
    for (int u = 0; u < V; u++) {
        int j = threadIdx.x + u * blockDim.x;
        if (j < nv) {
            r[u] = xi[j];
            ss += r[u].x * r[u].x + r[u].y * r[u].y + r[u].z * r[u].z + r[u].w * r[u].w;
        }
    }
    ss = warp_sum(ss);
    int wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    if ((threadIdx.x & 31) == 0) red[wid] = ss;
    __syncthreads();
    float t = 0.f;
    for (int i = 0; i < nw; i++) t += red[i];
    float rs = 1.f / sqrtf(t / (float)dim + eps);
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
        ss = warp_sum(ss);
        if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;
        __syncthreads();
        float t = 0.f;
        for (int i = 0; i < (int)(blockDim.x >> 5); i++) t += red[i];
        inv = 1.f / sqrtf(t / (float)in + r.eps);
    }
    __syncthreads();
    return inv;
}

/* acc[rr] += Σ_k W[row0+rr, k]·x'[k] over this thread's share (8 elements per lane per
 * step, U steps of every row in flight); rows past nrows repeat the last row (ignored). */
template <typename T, int RPW, int U, int NORM>
__device__ __forceinline__ void dot_rows(const T *W, int row0, int nrows, int in, const float *xs, const float *nw,
                                         int sub, int nsub, float acc[RPW], float *ss) {
    const T *w[RPW];
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) w[rr] = W + (size_t)min(row0 + rr, nrows - 1) * in;
    int step = nsub * 8;
    for (int k0 = sub * 8; k0 < in; k0 += U * step) {
        float wf[U][RPW][8];
#pragma unroll
        for (int u = 0; u < U; u++)
            if (k0 + u * step < in)
#pragma unroll
                for (int rr = 0; rr < RPW; rr++) ld8(w[rr] + k0 + u * step, wf[u][rr]);
#pragma unroll
        for (int u = 0; u < U; u++) {
            int k = k0 + u * step;
            if (k >= in) break;
            float4 a = *(const float4 *)(xs + k), b = *(const float4 *)(xs + k + 4);
            float xf[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
            if (NORM) { /* x in place: x·nw, and Σ x² for the row's 1/rms */
                float4 c = __ldg((const float4 *)(nw + k)), d = __ldg((const float4 *)(nw + k + 4));
                float g[8] = {c.x, c.y, c.z, c.w, d.x, d.y, d.z, d.w};
#pragma unroll
                for (int i = 0; i < 8; i++) *ss += xf[i] * xf[i], xf[i] *= g[i];
            }
#pragma unroll
            for (int rr = 0; rr < RPW; rr++)
#pragma unroll
                for (int i = 0; i < 8; i++) acc[rr] += wf[u][rr][i] * xf[i];
        }
    }
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

/* The shrink's rows (f32 A, twice the bytes of a 16-bit W row) go to lighter units than the
 * product's, so that an A block finishes with the W blocks that wait for it: half the rows
 * per warp, or a row split over twice the warps (not with the norm in place, which needs
 * each warp to see all of x). */
template <int RPW, int WPR, int NORM> struct a_split {
    static constexpr int rpw = RPW > 1 ? RPW / 2 : 1;
    static constexpr int wpr = RPW > 1 || NORM ? WPR : (2 * WPR > 8 ? 8 : 2 * WPR);
};

/* t[j] = inv · x'·A[j] for the A rows of A block `blk` (a_split's units), written by each unit's first lane. */
template <int RPW, int WPR, int NORM>
__device__ __forceinline__ void shrink_rows(const rowin_d &r, int blk, int in, const float *xs, float inv,
                                            float (*part)[RPW]) {
    constexpr int R = a_split<RPW, WPR, NORM>::rpw, P = a_split<RPW, WPR, NORM>::wpr;
    int gw = threadIdx.x >> 5, lane = threadIdx.x & 31, sub = gw % P;
    int row0 = (blk * (8 / P) + gw / P) * R;
    float a[R], ss = 0.f;
#pragma unroll
    for (int rr = 0; rr < R; rr++) a[rr] = 0.f;
    if (row0 < r.ra) dot_rows<float, R, 4 / R, NORM>(r.A, row0, r.ra, in, xs, r.nw, sub * 32 + lane, P * 32, a, &ss);
    if (NORM) inv = 1.f / sqrtf(warp_sum(ss) / (float)in + r.eps);
#pragma unroll
    for (int rr = 0; rr < R; rr++) a[rr] = warp_sum(a[rr]);
    if (P > 1) {
        if (lane == 0)
#pragma unroll
            for (int rr = 0; rr < R; rr++) part[gw][rr] = a[rr];
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < R; rr++) {
            a[rr] = 0.f;
            for (int i = 0; i < P; i++) a[rr] += part[gw - sub + i][rr];
        }
    }
#pragma unroll
    for (int rr = 0; rr < R; rr++)
        if (row0 + rr < r.ra && sub == 0 && lane == 0) r.t[row0 + rr] = a[rr] * inv;
}

/* y[o] (=|+=) scale · x'·W[o] + bias[o] (+ ps · pB[o]·t) for o < out, and the shrink
 * t[j] = x'·A[j] for j < ra. A block is 8 warps; WPR warps share a group of RPW rows (each
 * takes a slice of k). The first blocks hold the A rows (whole blocks), the rest the W rows.
 * STAGE: x' staged in shared memory (needed for MODE 1/2); else read from x in place (MODE 1:
 * x·nw and Σ x² per warp). With pB, the A blocks count themselves done in ctr[0] and each W
 * block, once its products are in registers, waits for all of them (they were dispatched
 * first and wait on nothing, so they always finish) and adds its rows' expand; the last
 * block to finish resets both counters for the next launch. */
template <typename T, int MODE, int STAGE, int RPW, int WPR>
__global__ void __launch_bounds__(256) k_matvec(float *y, rowin_d r, const T *W, const float *bias, int in, int out,
                                                int acc, unsigned *ctr) {
    extern __shared__ float4 smv[];
    __shared__ float red[8];
    __shared__ float part[8][RPW];
    float *xs = STAGE ? (float *)smv : (float *)r.x;
    float inv = stage_row<MODE, STAGE>(r, in, xs, red), ss = 0.f;
    const int NORM = MODE == 1 && !STAGE; /* the norm in place: each warp sees all of x (WPR 1) */
    int gw = threadIdx.x >> 5, lane = threadIdx.x & 31, sub = gw % WPR, per = 8 / WPR;
    constexpr int RA = a_split<RPW, WPR, NORM>::rpw, PA = 8 / a_split<RPW, WPR, NORM>::wpr;
    int ablocks = r.A ? ((r.ra + RA - 1) / RA + PA - 1) / PA : 0, isA = (int)blockIdx.x < ablocks;
    if (isA) { /* the shrink: its own units, then counted done for the W blocks that wait on it */
        shrink_rows<RPW, WPR, NORM>(r, blockIdx.x, in, xs, inv, part);
        if (r.pB) {
            __syncthreads();
            if (threadIdx.x == 0) {
                __threadfence();
                atomicAdd(&ctr[0], 1u);
            }
        }
    }
    int unit = ((int)blockIdx.x - ablocks) * per + gw / WPR;
    int row0 = unit * RPW, nrows = out;
    float eb[RPW]; /* this lane's expand weight of each row, loaded before the product */
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) {
        int o = row0 + rr, c0, nc;
        eb[rr] = 0.f;
        if (!r.pB || isA || o < 0 || o >= out) continue;
        pspan(r, o, &c0, &nc);
        if (lane < nc) eb[rr] = __ldg(r.pB + (size_t)o * r.ra + c0 + lane);
    }
    float a[RPW];
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) a[rr] = 0.f;
    if (!isA && row0 < nrows) dot_rows<T, RPW, 4 / RPW, NORM>(W, row0, nrows, in, xs, r.nw, sub * 32 + lane, WPR * 32, a, &ss);
    if (NORM && !isA) inv = 1.f / sqrtf(warp_sum(ss) / (float)in + r.eps);
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) a[rr] = warp_sum(a[rr]);
    if (WPR > 1 && !isA) {
        if (lane == 0)
#pragma unroll
            for (int rr = 0; rr < RPW; rr++) part[gw][rr] = a[rr];
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < RPW; rr++) {
            a[rr] = 0.f;
            for (int i = 0; i < WPR; i++) a[rr] += part[gw - sub + i][rr];
        }
    }
    if (!isA) {
        if (r.pB) {
            if (threadIdx.x == 0) { /* plain acquire loads: many waiting blocks must not queue atomics on ctr[0] */
                unsigned v;
                for (;;) {
                    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(ctr) : "memory");
                    if (v >= (unsigned)ablocks) break;
                    __nanosleep(64);
                }
            }
            __syncthreads();
        }
#pragma unroll
        for (int rr = 0; rr < RPW; rr++) {
            int o = row0 + rr;
            if (o >= out || sub != 0) break;
            float e = 0.f;
            if (r.pB) {
                int c0, nc;
                pspan(r, o, &c0, &nc);
                if (lane < nc) e = eb[rr] * __ldcg(r.t + c0 + lane);
                for (int j = lane + 32; j < nc; j += 32) e += __ldg(r.pB + (size_t)o * r.ra + c0 + j) * __ldcg(r.t + c0 + j);
                e = warp_sum(e);
            }
            if (lane == 0) {
                float v = r.scale * a[rr] * inv + (bias ? bias[o] : 0.f) + r.ps * e;
                y[o] = acc ? y[o] + v : v;
            }
        }
    }
    if (r.pB) {
        __syncthreads();
        if (threadIdx.x == 0 && atomicAdd(&ctr[1], 1u) == gridDim.x - 1) {
            atomicExch(&ctr[0], 0u);
            atomicExch(&ctr[1], 0u);
        }
    }
}

template <typename T, int MODE, int STAGE, int RPW, int WPR>
static void launch_mv_cfg(wkc_backend *b, float *y, const rowin_d &r, const T *W, const float *bias, int in, int out,
                          int acc) {
    constexpr int NORM = MODE == 1 && !STAGE, RA = a_split<RPW, WPR, NORM>::rpw, PA = 8 / a_split<RPW, WPR, NORM>::wpr;
    int per = 8 / WPR, wblocks = ((out + RPW - 1) / RPW + per - 1) / per;
    int ablocks = r.A ? ((r.ra + RA - 1) / RA + PA - 1) / PA : 0;
    size_t smem = sizeof(float) * (STAGE ? (size_t)in : 0);
    if (smem > 48 * 1024 &&
        wkc_cuda_fail(b, cudaFuncSetAttribute(k_matvec<T, MODE, STAGE, RPW, WPR>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), "matvec (shared memory)"))
        return;
    k_matvec<T, MODE, STAGE, RPW, WPR><<<ablocks + wblocks, 256, smem, b->st>>>(y, r, W, bias, in, out, acc, b->ticket);
}

/* Shapes: long rows with few of them split each row over 4 warps; many rows give each warp
 * several (the staged row is then shared by more of them); otherwise a warp per row. */
template <typename T, int MODE, int STAGE>
static void launch_mv(wkc_backend *b, float *y, const rowin_d &r, const T *W, const float *bias, int in, int out, int acc) {
    int rows = out + (r.A ? r.ra : 0);
    b->optag = rows;
    if (MODE == 1 && rows < 16384) { /* fewer rows: the norm in place beats staging it per block */
        if (rows >= 2048) launch_mv_cfg<T, 1, 0, 2, 1>(b, y, r, W, bias, in, out, acc);
        else launch_mv_cfg<T, 1, 0, 1, 1>(b, y, r, W, bias, in, out, acc);
        return;
    }
    if (in >= 2048 && rows <= 8192) launch_mv_cfg<T, MODE, STAGE, 1, 4>(b, y, r, W, bias, in, out, acc);
    else if (rows >= 16384) launch_mv_cfg<T, MODE, STAGE, 4, 1>(b, y, r, W, bias, in, out, acc);
    else if (rows >= 2048) launch_mv_cfg<T, MODE, STAGE, 2, 1>(b, y, r, W, bias, in, out, acc);
    else launch_mv_cfg<T, MODE, STAGE, 1, 1>(b, y, r, W, bias, in, out, acc);
}

template <typename T>
static void launch_mv_t(wkc_backend *b, int mode, float *y, const rowin_d &r, const T *W, const float *bias, int in,
                        int out, int acc) {
    if (mode == 1) launch_mv<T, 1, 1>(b, y, r, W, bias, in, out, acc);
    else if (mode == 2) launch_mv<T, 2, 1>(b, y, r, W, bias, in, out, acc);
    else launch_mv<T, 0, 0>(b, y, r, W, bias, in, out, acc);
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
    int ok = in->in == W->cols && in->in % 8 == 0 && !W->qtype && al16(W->w) && al16(in->x) && al16(in->nw) &&
             al16(in->up) && al16(in->A) && (W->dt == WICK_DT_F32 || W->dt == WICK_DT_BF16 || W->dt == WICK_DT_F16);
    if (!ok) {
        matvec_unfused(b, y, in, W, bias, acc);
        return;
    }
    if (in->pB && !in->A) {
        if (!b->err) {
            b->err = WICK_EINVAL;
            snprintf(b->errmsg, sizeof b->errmsg, "cuda:%d: matvec: an expand of the launch's shrink needs A", b->device);
        }
        return;
    }
    rowin_d r = {in->x, in->nw, in->up, in->eps, in->scale, in->A, in->A ? in->ra : 0, in->t, in->pB, in->ps,
                 in->pB ? in->pnblk : 0, {in->pbrows[0], in->pbrows[1], in->pbrows[2]},
                 {in->pbcols[0], in->pbcols[1], in->pbcols[2]}};
    int mode = in->nw ? 1 : in->up ? 2 : 0;
    if (mode == 1 && W->rows > MV_NORM_MAX_ROWS) { /* many rows: normalise once (every block would stage it) */
        float *t = (float *)wkc_scratch(b, WKC_SCR_ROW, sizeof(float) * (size_t)in->in);
        if (!t) return;
        wkc_rmsnorm(be, t, in->x, in->nw, 1, in->in, in->eps);
        r.x = t, r.nw = NULL, mode = 0;
    }
    if (W->dt == WICK_DT_F32) launch_mv_t(b, mode, y, r, (const float *)W->w, bias, in->in, W->rows, acc);
    else if (W->dt == WICK_DT_BF16) launch_mv_t(b, mode, y, r, (const __nv_bfloat16 *)W->w, bias, in->in, W->rows, acc);
    else launch_mv_t(b, mode, y, r, (const __half *)W->w, bias, in->in, W->rows, acc);
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
        float ss = warp_sum(val * val);
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
