/*
 * cuda_attention.cu — causal attention of q[n,H,D] over the KV cache [Hk,cap,D].
 *
 * Decode (n <= 8 query rows): split-K. Each block takes one (row, head) and one
 * span of SPLIT keys, computes scores, their max m and sum l and the unnormalised
 * output o = Σ exp(s - m)·v; a second kernel merges the spans (flash-decoding).
 * With device positions (pos) the grid covers the whole cache and spans past the
 * current length exit at once, so a captured graph replays at any position.
 * Prefill: S = scale·Q·Kᵀ and O = P·V for all heads as two pointer-array batched
 * fp32 cuBLAS GEMMs (GQA: each query head points at its KV head), with a causal
 * softmax kernel between them. Everything accumulates in fp32.
 */
#include "backend/cuda/cuda_internal.cuh"

#include <math.h>

#define SPLIT 64         /* keys per split-K block: many short blocks keep every SM busy */
#define DECODE_MAX_ROWS 8
#define ATT_THREADS 64

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float warp_add(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Block-wide max (op 0) or sum (op 1); every thread gets the result. */
__device__ float block_reduce(float v, int op, float *red) {
    int wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = op ? warp_add(v) : warp_max(v);
    __syncthreads(); /* red may still be read from a previous call */
    if ((threadIdx.x & 31) == 0) red[wid] = v;
    __syncthreads();
    float r = red[0];
    for (int i = 1; i < nw; i++) r = op ? r + red[i] : fmaxf(r, red[i]);
    return r;
}

/* part[(row*nsplit + sp)*(D+2) + ...] = o[D], m, l for query row `row` = i*H + h over keys of split sp. */
__global__ void k_attn_split(float *part, const float *q, const float *k, const float *v, int pos0, const int32_t *pos,
                             int H, int grp, int D, int cap, float scale, int nsplit) {
    extern __shared__ float sm[]; /* q[D], scores[SPLIT], reduction[32] */
    if (pos) pos0 = pos[0];
    float *qs = sm, *sc = sm + D, *red = sc + SPLIT;
    int row = blockIdx.x, sp = blockIdx.y, i = row / H, h = row % H, kh = h / grp;
    int j0 = sp * SPLIT, j1 = min(j0 + SPLIT, pos0 + i + 1);
    float *pp = part + ((size_t)row * nsplit + sp) * (D + 2);
    if (j0 >= j1) return; /* no keys for this row in this span: the merge stops before it */
    for (int d = threadIdx.x; d < D; d += blockDim.x) qs[d] = q[(size_t)row * D + d];
    __syncthreads();
    const float *kb = k + (size_t)kh * cap * D, *vb = v + (size_t)kh * cap * D;
    float mx = -INFINITY;
    for (int j = j0 + threadIdx.x; j < j1; j += blockDim.x) {
        const float *kj = kb + (size_t)j * D;
        float s = 0.f;
        if ((D & 3) == 0)
#pragma unroll 8
            for (int d = 0; d < D; d += 4) {
                float4 kk = *(const float4 *)(kj + d);
                s += qs[d] * kk.x + qs[d + 1] * kk.y + qs[d + 2] * kk.z + qs[d + 3] * kk.w;
            }
        else
            for (int d = 0; d < D; d++) s += qs[d] * kj[d];
        s *= scale;
        sc[j - j0] = s;
        mx = fmaxf(mx, s);
    }
    mx = block_reduce(mx, 0, red);
    float sum = 0.f;
    for (int j = j0 + threadIdx.x; j < j1; j += blockDim.x) {
        float e = expf(sc[j - j0] - mx);
        sc[j - j0] = e;
        sum += e;
    }
    sum = block_reduce(sum, 1, red);
    __syncthreads();
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float o = 0.f;
#pragma unroll 8
        for (int j = j0; j < j1; j++) o += sc[j - j0] * vb[(size_t)j * D + d];
        pp[d] = o;
    }
    if (threadIdx.x == 0) pp[D] = mx, pp[D + 1] = sum;
}

/* out[row, :] = Σ_sp o_sp·exp(m_sp - M) / Σ_sp l_sp·exp(m_sp - M), over the spans that hold
 * keys of query row i = row / H (the grid may cover the whole cache: see k_attn_split). */
__global__ void k_attn_merge(float *out, const float *part, int D, int nsplit, int pos0, const int32_t *pos, int H) {
    int row = blockIdx.x;
    const float *pr = part + (size_t)row * nsplit * (D + 2);
    if (pos) pos0 = pos[0];
    nsplit = min(nsplit, (pos0 + row / H + SPLIT) / SPLIT);
    float M = -INFINITY, L = 0.f;
    for (int s = 0; s < nsplit; s++) M = fmaxf(M, pr[(size_t)s * (D + 2) + D]);
    for (int s = 0; s < nsplit; s++) L += pr[(size_t)s * (D + 2) + D + 1] * expf(pr[(size_t)s * (D + 2) + D] - M);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float o = 0.f;
        for (int s = 0; s < nsplit; s++) o += pr[(size_t)s * (D + 2) + d] * expf(pr[(size_t)s * (D + 2) + D] - M);
        out[(size_t)row * D + d] = o / L;
    }
}

static void attention_decode(wkc_backend *b, float *out, const float *q, const float *k, const float *v, int n, int pos0,
                             const int32_t *pos, int H, int Hk, int D, int cap, float scale) {
    int nsplit = ((pos ? cap : pos0 + n) + SPLIT - 1) / SPLIT;
    size_t rows = (size_t)n * H;
    float *part = (float *)wkc_scratch(b, WKC_SCR_ATTN, sizeof(float) * rows * nsplit * (D + 2));
    if (!part) return;
    size_t smem = sizeof(float) * (D + SPLIT + 32);
    k_attn_split<<<dim3((unsigned)rows, nsplit), ATT_THREADS, smem, b->st>>>(part, q, k, v, pos0, pos, H, H / Hk, D,
                                                                            cap, scale, nsplit);
    wkc_launched(b, "attention (split)");
    k_attn_merge<<<(unsigned)rows, D < 128 ? D : 128, 0, b->st>>>(out, part, D, nsplit, pos0, pos, H);
    wkc_launched(b, "attention (merge)");
}

/* In place over S[H, n, T]: causal softmax of each row (keys past pos0+i get 0). */
__global__ void k_causal_softmax(float *S, int n, int T, int pos0) {
    __shared__ float red[32];
    int row = blockIdx.x, i = row % n, last = pos0 + i;
    float *s = S + (size_t)row * T;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j <= last; j += blockDim.x) mx = fmaxf(mx, s[j]);
    mx = block_reduce(mx, 0, red);
    float sum = 0.f;
    for (int j = threadIdx.x; j <= last; j += blockDim.x) {
        float e = expf(s[j] - mx);
        s[j] = e;
        sum += e;
    }
    sum = block_reduce(sum, 1, red);
    float inv = 1.f / sum;
    for (int j = threadIdx.x; j < T; j += blockDim.x) s[j] = j <= last ? s[j] * inv : 0.f;
}

/* The same with the row in registers (V values per thread, T <= 256·V): one read, one write. */
template <int V>
__global__ void k_causal_softmax_reg(float *S, int n, int T, int pos0) {
    __shared__ float red[32];
    int row = blockIdx.x, last = pos0 + row % n;
    float *s = S + (size_t)row * T;
    float r[V], mx = -INFINITY, sum = 0.f;
#pragma unroll
    for (int u = 0; u < V; u++) {
        int j = threadIdx.x + u * blockDim.x;
        r[u] = j <= last ? s[j] : -INFINITY;
        mx = fmaxf(mx, r[u]);
    }
    mx = block_reduce(mx, 0, red);
#pragma unroll
    for (int u = 0; u < V; u++) {
        r[u] = threadIdx.x + u * blockDim.x <= last ? expf(r[u] - mx) : 0.f;
        sum += r[u];
    }
    float inv = 1.f / block_reduce(sum, 1, red);
#pragma unroll
    for (int u = 0; u < V; u++) {
        int j = threadIdx.x + u * blockDim.x;
        if (j < T) s[j] = r[u] * inv;
    }
}

static void causal_softmax(wkc_backend *b, float *S, int rows, int n, int T, int pos0) {
    int v = (T + 255) / 256;
    if (v <= 1) k_causal_softmax_reg<1><<<rows, 256, 0, b->st>>>(S, n, T, pos0);
    else if (v <= 2) k_causal_softmax_reg<2><<<rows, 256, 0, b->st>>>(S, n, T, pos0);
    else if (v <= 4) k_causal_softmax_reg<4><<<rows, 256, 0, b->st>>>(S, n, T, pos0);
    else if (v <= 8) k_causal_softmax_reg<8><<<rows, 256, 0, b->st>>>(S, n, T, pos0);
    else if (v <= 16) k_causal_softmax_reg<16><<<rows, 256, 0, b->st>>>(S, n, T, pos0);
    else k_causal_softmax<<<rows, 256, 0, b->st>>>(S, n, T, pos0);
    wkc_launched(b, "causal softmax");
}

/* Pointer arrays for the two batched GEMMs: [K_kh, Q_h, S_h] and [V_kh, P_h, O_h] per head h. */
__global__ void k_attn_ptrs(float **p, const float *q, const float *k, const float *v, float *S, float *out, int H,
                            int grp, int D, int cap, size_t nT) {
    for (int h = threadIdx.x; h < H; h += blockDim.x) {
        size_t kv = (size_t)(h / grp) * cap * D;
        p[h] = (float *)k + kv;
        p[H + h] = (float *)q + (size_t)h * D;
        p[2 * H + h] = S + (size_t)h * nT;
        p[3 * H + h] = (float *)v + kv;
        p[4 * H + h] = S + (size_t)h * nT;
        p[5 * H + h] = out + (size_t)h * D;
    }
}

/* C[i] = alpha · op(A[i]) · B[i] for `batch` pointer triples, fp32 (TF32 tensor cores on the fast instance). */
static int batched(wkc_backend *b, cublasOperation_t opa, int m, int n, int k, float alpha, float **A, int lda, float **B,
                   int ldb, float **C, int ldc, int batch, const char *what) {
    float zero = 0.f;
    cublasComputeType_t ct = b->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    int bad = wkc_blas_fail(b, cublasGemmBatchedEx(b->blas, opa, CUBLAS_OP_N, m, n, k, &alpha, (const void *const *)A,
                                                CUDA_R_32F, lda, (const void *const *)B, CUDA_R_32F, ldb, &zero,
                                                (void *const *)C, CUDA_R_32F, ldc, batch, ct, CUBLAS_GEMM_DEFAULT),
                         what);
    wkc_launched(b, what);
    return bad;
}

static void attention_prefill(wkc_backend *b, float *out, const float *q, const float *k, const float *v, int n,
                              int pos0, int H, int Hk, int D, int cap, float scale) {
    int T = pos0 + n, grp = H / Hk;
    size_t nT = (size_t)n * T;
    float *S = (float *)wkc_scratch(b, WKC_SCR_SCORES, sizeof(float) * (size_t)H * nT);
    if (!S) return;
    float **p = (float **)wkc_scratch(b, WKC_SCR_PTRS, sizeof(float *) * 6 * (size_t)H);
    if (!p) return;
    k_attn_ptrs<<<1, 256, 0, b->st>>>(p, q, k, v, S, out, H, grp, D, cap, nT);
    wkc_launched(b, "attention pointers");
    float one = 1.f;
    /* S_h (col-major T×n) = scale · K_kh (T×D) · Q_hᵀ */
    if (batched(b, CUBLAS_OP_T, T, n, D, scale, p, D, p + H, H * D, p + 2 * H, T, H, "attention scores")) return;
    causal_softmax(b, S, H * n, n, T, pos0);
    /* O_h (col-major D×n, ld H*D) = V_kh (D×T col-major) · P_h (T×n) */
    batched(b, CUBLAS_OP_N, D, n, T, one, p + 3 * H, D, p + 4 * H, T, p + 5 * H, H * D, H, "attention output");
}

void wkc_attention(wk_backend *be, float *out, const float *q, const float *k, const float *v, int n, int pos0,
                   const int32_t *pos, int H, int Hk, int D, int cap, float scale) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (n <= DECODE_MAX_ROWS) attention_decode(b, out, q, k, v, n, pos0, pos, H, Hk, D, cap, scale);
    else attention_prefill(b, out, q, k, v, n, pos0, H, Hk, D, cap, scale);
}
