/*
 * cuda_enc.cu — the encoder ops (BERT, src/model/bert*.c) on CUDA: LayerNorm with an
 * optional residual (one block per row, the row staged in shared memory, two-pass
 * mean/variance in fp32), erf GELU, fused bidirectional masked attention and pooling.
 *
 * Attention: one kernel for all sequences and heads, flash-style. A block takes one
 * (sequence, head) and 16 query rows (4 warps x 4 rows); it walks the keys in tiles of
 * 64 staged in shared memory (K padded against bank conflicts), each lane scoring two
 * keys of the tile for a row, and keeps an online softmax (running max m, sum l) with
 * the output row spread over the lanes (lane owns dims lane, lane+32, ...). Masked keys
 * score -inf; everything accumulates in fp32. D <= 128.
 */
#include "backend/cuda/cuda_internal.cuh"

#include <math.h>
#include <stdio.h>

#define AB_KT 64   /* keys per shared-memory tile */
#define AB_WARPS 4 /* warps per block */
#define AB_RPW 4   /* query rows per warp */
#define AB_DMAX 128


/* Block-wide sum; every thread gets it (red: 32 floats of shared memory). */
__device__ float enc_block_add(float v, float *red) {
    int wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = wkc_warp_sum(v);
    __syncthreads(); /* red may still be read from a previous call */
    if ((threadIdx.x & 31) == 0) red[wid] = v;
    __syncthreads();
    float r = 0.f;
    for (int i = 0; i < nw; i++) r += red[i];
    return r;
}

/* ------------------------------------------------------------- LayerNorm */
/* One block per row: y = (t - mean) / sqrt(var + eps) * w + b with t = (x + xb) + r. */
__global__ void k_layernorm(float *y, const float *x, const float *xb, const float *r, const float *w, const float *b,
                            int dim, float eps) {
    extern __shared__ float row[]; /* dim */
    __shared__ float red[32];
    size_t o = (size_t)blockIdx.x * dim;
    float s = 0.f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) {
        float t = x[o + j];
        if (xb) t += xb[j];
        if (r) t += r[o + j];
        row[j] = t;
        s += t;
    }
    float mean = enc_block_add(s, red) / (float)dim, v = 0.f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) v += (row[j] - mean) * (row[j] - mean);
    float inv = rsqrtf(enc_block_add(v, red) / (float)dim + eps);
    for (int j = threadIdx.x; j < dim; j += blockDim.x) y[o + j] = (row[j] - mean) * inv * w[j] + b[j];
}

void wkc_layernorm(wk_backend *be, float *y, const float *x, const float *xb, const float *r, const float *w,
                   const float *b, int n, int dim, float eps) {
    wkc_backend *c = wkc(be);
    wkc_use(c);
    int threads = dim >= 1024 ? 256 : dim >= 256 ? 128 : 64;
    k_layernorm<<<n, threads, sizeof(float) * dim, c->st>>>(y, x, xb, r, w, b, dim, eps);
    wkc_launched(c, "layernorm");
}

/* ------------------------------------------------------------------ GELU */
__global__ void k_gelu(float *y, const float *x, const float *xb, size_t n, int dim) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = x[i] + (xb ? xb[i % (size_t)dim] : 0.f);
        y[i] = 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
    }
}

void wkc_gelu(wk_backend *be, float *y, const float *x, const float *xb, size_t n, int dim) {
    wkc_backend *c = wkc(be);
    wkc_use(c);
    k_gelu<<<wkc_blocks(n), 256, 0, c->st>>>(y, x, xb, n, dim);
    wkc_launched(c, "gelu");
}

/* ---------------------------------------------------- bidirectional attention */
/* Grid (row tiles, H, B); see the purpose block. */
__global__ void __launch_bounds__(AB_WARPS * 32)
    k_attn_bidir(float *out, const float *q, const float *k, const float *v, const float *bias, const int32_t *mask, int T,
                 int D, int ld, int ldo, float scale) {
    extern __shared__ float sm[];
    int Dp = D + 1, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, b = blockIdx.z;
    float *Ks = sm, *Vs = Ks + AB_KT * Dp, *qs = Vs + AB_KT * D, *ps = qs + AB_WARPS * AB_RPW * D;
    float *mk = ps + AB_WARPS * AB_KT;
    int row0 = (blockIdx.x * AB_WARPS + warp) * AB_RPW;
    int HD = gridDim.y * D;
    size_t base = (size_t)b * T * ld + (size_t)blockIdx.y * D;
    const float *bq = bias ? bias + blockIdx.y * D : NULL, *bk = bias ? bq + HD : NULL, *bv = bias ? bq + 2 * HD : NULL;
    float *qw = qs + (size_t)warp * AB_RPW * D, *pw = ps + warp * AB_KT;
#pragma unroll
    for (int r = 0; r < AB_RPW; r++)
        for (int d = lane; d < D; d += 32)
            qw[r * D + d] = row0 + r < T ? (q[base + (size_t)(row0 + r) * ld + d] + (bq ? bq[d] : 0.f)) * scale : 0.f;
    float m[AB_RPW], l[AB_RPW], o[AB_RPW][AB_DMAX / 32];
#pragma unroll
    for (int r = 0; r < AB_RPW; r++) {
        m[r] = -INFINITY, l[r] = 0.f;
#pragma unroll
        for (int u = 0; u < AB_DMAX / 32; u++) o[r][u] = 0.f;
    }
    for (int j0 = 0; j0 < T; j0 += AB_KT) {
        int nk = min(AB_KT, T - j0);
        __syncthreads(); /* the previous tile is consumed */
        for (int i = threadIdx.x; i < nk * D; i += blockDim.x) {
            int j = i / D, d = i - j * D;
            size_t g = base + (size_t)(j0 + j) * ld + d;
            Ks[j * Dp + d] = k[g] + (bk ? bk[d] : 0.f);
            Vs[j * D + d] = v[g] + (bv ? bv[d] : 0.f);
        }
        for (int j = threadIdx.x; j < AB_KT; j += blockDim.x) mk[j] = j < nk && (!mask || mask[(size_t)b * T + j0 + j]);
        __syncthreads();
#pragma unroll
        for (int r = 0; r < AB_RPW; r++) {
            if (row0 + r >= T) continue; /* warp-uniform */
            const float *qr = qw + r * D;
            float s0 = -INFINITY, s1 = -INFINITY;
            if (mk[lane] != 0.f) {
                float s = 0.f;
                for (int d = 0; d < D; d++) s += qr[d] * Ks[lane * Dp + d];
                s0 = s;
            }
            if (mk[lane + 32] != 0.f) {
                float s = 0.f;
                for (int d = 0; d < D; d++) s += qr[d] * Ks[(lane + 32) * Dp + d];
                s1 = s;
            }
            float tmax = wkc_warp_max(fmaxf(s0, s1));
            if (tmax == -INFINITY) continue; /* the whole tile is masked (warp-uniform) */
            float mn = fmaxf(m[r], tmax), alpha = expf(m[r] - mn);
            float p0 = s0 == -INFINITY ? 0.f : expf(s0 - mn), p1 = s1 == -INFINITY ? 0.f : expf(s1 - mn);
            l[r] = l[r] * alpha + wkc_warp_sum(p0 + p1);
            pw[lane] = p0, pw[lane + 32] = p1;
            __syncwarp();
#pragma unroll
            for (int u = 0; u < AB_DMAX / 32; u++) {
                int d = lane + 32 * u;
                if (d >= D) break;
                float acc = o[r][u] * alpha;
                for (int j = 0; j < nk; j++) acc += pw[j] * Vs[j * D + d];
                o[r][u] = acc;
            }
            __syncwarp();
            m[r] = mn;
        }
    }
#pragma unroll
    for (int r = 0; r < AB_RPW; r++) {
        if (row0 + r >= T) continue;
        float inv = 1.f / l[r];
#pragma unroll
        for (int u = 0; u < AB_DMAX / 32; u++) {
            int d = lane + 32 * u;
            if (d < D) out[(size_t)b * T * ldo + (size_t)blockIdx.y * D + (size_t)(row0 + r) * ldo + d] = o[r][u] * inv;
        }
    }
}

void wkc_attention_bidir(wk_backend *be, float *out, const float *q, const float *k, const float *v, const float *bias,
                         const int32_t *mask, int B, int T, int H, int D, int ld, int ldo, float scale) {
    wkc_backend *c = wkc(be);
    wkc_use(c);
    if (D > AB_DMAX) {
        if (!c->err) {
            c->err = WICK_EUNSUPPORTED;
            snprintf(c->errmsg, sizeof c->errmsg, "cuda:%d: attention_bidir: head_dim %d > %d is not supported", c->device,
                     D, AB_DMAX);
        }
        return;
    }
    size_t smem = sizeof(float) * ((size_t)AB_KT * (2 * D + 1) + (size_t)AB_WARPS * AB_RPW * D + AB_WARPS * AB_KT + AB_KT);
    static int attr_set; /* above 48 KiB dynamic shared memory needs the opt-in (once per process) */
    if (!attr_set) {
        cudaFuncSetAttribute(k_attn_bidir, cudaFuncAttributeMaxDynamicSharedMemorySize, 96 << 10);
        attr_set = 1;
    }
    dim3 grid((unsigned)((T + AB_WARPS * AB_RPW - 1) / (AB_WARPS * AB_RPW)), (unsigned)H, (unsigned)B);
    k_attn_bidir<<<grid, AB_WARPS * 32, smem, c->st>>>(out, q, k, v, bias, mask, T, D, ld, ldo, scale);
    wkc_launched(c, "attention_bidir");
}

/* --------------------------------------------------------------- pooling */
/* One block per sequence b: out[rows[b]] = mean / first / max of h[b] over real tokens (+ L2). */
__global__ void k_pool(float *out, const float *h, const int32_t *mask, const int32_t *rows, int T, int C, int mode,
                       int normalize) {
    extern __shared__ float pv[]; /* C */
    __shared__ float red[32];
    int b = blockIdx.x;
    const float *hb = h + (size_t)b * T * C;
    const int32_t *mb = mask + (size_t)b * T;
    int n = 0;
    for (int t = 0; t < T; t++) n += mb[t] != 0;
    float ss = 0.f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float a = mode == 3 ? -INFINITY : 0.f;
        if (mode == 2) a = hb[c];
        else
            for (int t = 0; t < T; t++) {
                if (!mb[t]) continue;
                float x = hb[(size_t)t * C + c];
                a = mode == 3 ? fmaxf(a, x) : a + x;
            }
        if (mode == 1) a /= (float)n;
        pv[c] = a;
        ss += a * a;
    }
    float inv = 1.f;
    if (normalize) inv = 1.f / fmaxf(sqrtf(enc_block_add(ss, red)), 1e-12f);
    float *o = out + (size_t)rows[b] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] = pv[c] * inv;
}

void wkc_pool(wk_backend *be, float *out, const float *h, const int32_t *mask, const int32_t *rows, int B, int T, int C,
              int mode, int normalize) {
    wkc_backend *c = wkc(be);
    wkc_use(c);
    k_pool<<<B, C >= 256 ? 128 : 64, sizeof(float) * C, c->st>>>(out, h, mask, rows, T, C, mode, normalize);
    wkc_launched(c, "pool");
}
