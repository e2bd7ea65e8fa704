/*
 * cuda_batch.cu — the batched decode ops (backend.h: bmatmul, brope_kv, brmsnorm, bswiglu;
 * battention lives in cuda_attention.cu): n rows, each its own sequence, its KV caches, its
 * position and its adapter read from the wk_brow table in device memory, so a graph captured
 * for n rows replays for any mix of sessions and adapters (BGMV style: every row reads its own
 * adapter's A and B through the table; rows of one adapter share them in L2, and over more than
 * 4 rows the expand's blocks take several rows, reading B once for the rows of one adapter).
 * The LoRA costs no launch of its own on the critical path: the shrink t = x·Aᵀ and the expand
 * e = s·t·Bᵀ run on a side stream beside the base product (forked and joined with events, which
 * a graph capture records as two branches), and the op that consumes the product adds e, one
 * coalesced load beside its own (q|k|v in brope_kv, o and down in the next brmsnorm, gate|up in
 * bswiglu): the adapter table's pointer chains and B's loads stay off the critical path. fp32
 * arithmetic throughout; with several rows A and B are read from the entry's bf16 copies where it
 * has them (a bf16 model's adapters), else f32.
 */
#include "backend/cuda/cuda_internal.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BT_MAX_R WK_BLORA_MAX_R /* most shrink components of a row's group */
#define SHRINK_COMPS 8 /* shrink components per block (half that over long rows: twice the blocks) */

/* The row's entry of lo (NULL: none, rank 0 or scale 0) and its scale. */
__device__ __forceinline__ const wk_bent *b_entry(const wk_blora &lo, int i, float *sc) {
    if (!lo.rows) return NULL;
    const wk_bent *e = lo.rows[i].ent;
    *sc = lo.rows[i].sc;
    if (!e || *sc == 0.f) return NULL;
    e += lo.g;
    return e->ra > 0 && e->ra <= BT_MAX_R ? e : NULL;
}

#define BXR_MAX 32 /* most rows of one k_bexpand_rows block */
#define BXR_SMEM 12000 /* most floats of its staged t (with its static arrays under 48 KB) */
#define BX_REG 4 /* float4s of one output's B row a thread holds: 16 columns (f32: 4 of them, bf16: 2) */

/* Output o's part of B: row o, columns [c0, c0 + nc) (its block's, when block-diagonal), and
 * B's loads in registers (the first 16 columns on the vector path), issued before any use:
 * with t's they all go out at once instead of one round trip per step of a loop. */
struct bregs {
    const void *b;
    int c0, nc, vec, b16;
    float4 w[BX_REG]; /* bf16: the first BX_REG/2 hold 4 bf16 pairs each, as raw bits */
};

__device__ __forceinline__ void b_load(const wk_bent *e, int h16, int o, bregs &r) {
    r.c0 = 0, r.nc = e->ra, r.b16 = h16 && e->B16;
    if (e->nblk) {
        int i = 0, r0 = 0;
        while (i + 1 < e->nblk && o >= r0 + e->brows[i]) r0 += e->brows[i], r.c0 += e->bcols[i], i++;
        r.nc = e->bcols[i];
    }
    size_t off = (size_t)o * e->ra + r.c0;
    r.b = r.b16 ? (const void *)((const __nv_bfloat16 *)e->B16 + off) : (const void *)(e->B + off);
    r.vec = ((e->ra | r.c0 | r.nc) & (r.b16 ? 7 : 3)) == 0; /* rows 16-byte aligned (the grouped layout's B and t are) */
    if (!r.vec) return;
#pragma unroll
    for (int q = 0; q < BX_REG; q++)
        if (r.b16 ? q < BX_REG / 2 && 8 * q < r.nc : 4 * q < r.nc)
            r.w[q] = __ldg((const float4 *)r.b + q);
}

__device__ __forceinline__ float dot4(float4 w, float4 x) { return w.x * x.x + w.y * x.y + w.z * x.z + w.w * x.w; }

/* 8 bf16 (raw bits in w) · x[0..8) */
__device__ __forceinline__ float dot8h(float4 w, float4 x0, float4 x1) {
    unsigned u[4] = {__float_as_uint(w.x), __float_as_uint(w.y), __float_as_uint(w.z), __float_as_uint(w.w)};
    float4 a = make_float4(__uint_as_float(u[0] << 16), __uint_as_float(u[0] & 0xffff0000u), __uint_as_float(u[1] << 16),
                           __uint_as_float(u[1] & 0xffff0000u));
    float4 b = make_float4(__uint_as_float(u[2] << 16), __uint_as_float(u[2] & 0xffff0000u), __uint_as_float(u[3] << 16),
                           __uint_as_float(u[3] & 0xffff0000u));
    return dot4(a, x0) + dot4(b, x1);
}

/* 4 floats of t at p: in place from L2 (every lane of a warp reads the same values: one
 * transaction), or from shared memory (SH). */
template <bool SH> __device__ __forceinline__ float4 t_load4(const float *p) {
    return SH ? *(const float4 *)p : __ldcg((const float4 *)p);
}
template <bool SH> __device__ __forceinline__ float t_load1(const float *p) { return SH ? *p : __ldcg(p); }

/* Σ B[o, c]·t[c] over the span r holds; t is the row's shrink (global: read in place from L2,
 * k_bexpand starts before the shrink ends; SH: staged in shared memory by k_bexpand_rows). */
template <bool SH> __device__ __forceinline__ float b_use(const bregs &r, const float *t) {
    t += r.c0;
    float v = 0.f;
    if (r.vec) {
        float4 x[BX_REG];
#pragma unroll
        for (int q = 0; q < BX_REG; q++)
            if (4 * q < r.nc) x[q] = t_load4<SH>(t + 4 * q);
        if (r.b16) {
            const float4 *b = (const float4 *)r.b;
#pragma unroll
            for (int q = 0; q < BX_REG / 2; q++)
                if (8 * q < r.nc) v += dot8h(r.w[q], x[2 * q], x[2 * q + 1]);
#pragma unroll 2
            for (int c = 4 * BX_REG; c < r.nc; c += 8) v += dot8h(__ldg(b + c / 8), t_load4<SH>(t + c), t_load4<SH>(t + c + 4));
        } else {
            const float *b = (const float *)r.b;
#pragma unroll
            for (int q = 0; q < BX_REG; q++)
                if (4 * q < r.nc) v += dot4(r.w[q], x[q]);
#pragma unroll 4
            for (int c = 4 * BX_REG; c < r.nc; c += 4) v += dot4(__ldg((const float4 *)(b + c)), t_load4<SH>(t + c));
        }
        return v;
    }
#pragma unroll 4
    for (int c = 0; c < r.nc; c++)
        v += (r.b16 ? __bfloat162float(__ldg((const __nv_bfloat16 *)r.b + c)) : __ldg((const float *)r.b + c)) * t_load1<SH>(t + c);
    return v;
}

/* --------------------------------------------------------------- expand */
/* e[i, o] = s_i · Σ B[o, its block's columns]·t[i, ...] for the rows with an entry, else 0.
 * k_bexpand: block (chunk of 256 outputs, row i), up to 4 rows, launched as the shrink's
 * programmatic dependent: its blocks start while the shrink runs, load their B rows, then wait
 * for the shrink's t. */
__global__ void __launch_bounds__(256) k_bexpand(wk_blora lo, int out) {
    int o = blockIdx.x * blockDim.x + threadIdx.x, i = blockIdx.y;
    float sc = 0.f;
    const wk_bent *e = o < out ? b_entry(lo, i, &sc) : NULL; /* the table and B: written before the step */
    bregs r;
    if (e) b_load(e, lo.h16, o, r);
    asm volatile("griddepcontrol.wait;" ::: "memory"); /* the shrink has finished, its t is visible */
    if (o < out) lo.e[(size_t)i * out + o] = e ? sc * b_use<false>(r, lo.t + (size_t)i * lo.R) : 0.f;
}

/* k_bexpand_rows: block (chunk of 256 outputs, rows [y·rb, y·rb + rb)), more than 4 rows. The
 * block first stages its rows' entries, scales and t in shared memory (all their loads in
 * flight at once), then each thread walks the rows for its output: rows run grouped by
 * adapter, so it loads B's row once per adapter segment and the rest is shared memory and one
 * coalesced store a row. Dynamic shared memory: rb * lo.R floats. */
__global__ void __launch_bounds__(256) k_bexpand_rows(wk_blora lo, int out, int n, int rb) {
    extern __shared__ float4 bx_smem[];
    float *ts = (float *)bx_smem;
    __shared__ const wk_bent *es[BXR_MAX];
    __shared__ float ss[BXR_MAX];
    int o = blockIdx.x * blockDim.x + threadIdx.x, i0 = blockIdx.y * rb, nr = min(rb, n - i0);
    if ((int)threadIdx.x < nr) {
        float sc = 0.f;
        es[threadIdx.x] = b_entry(lo, i0 + threadIdx.x, &sc);
        ss[threadIdx.x] = sc;
    }
    __syncthreads();
    const wk_bent *held = o < out ? es[0] : NULL; /* the entry whose B row r holds */
    bregs r;
    if (held) b_load(held, lo.h16, o, r);
    const float *tg = lo.t + (size_t)i0 * lo.R;
    for (int k = threadIdx.x; k < nr * lo.R; k += blockDim.x) ts[k] = __ldcg(tg + k);
    __syncthreads();
    if (o >= out) return;
    for (int j = 0; j < nr; j++) {
        const wk_bent *e = es[j];
        float v = 0.f;
        if (e) {
            if (e != held) b_load(e, lo.h16, o, r), held = e;
            v = ss[j] * b_use<true>(r, ts + (size_t)j * lo.R);
        }
        lo.e[(size_t)(i0 + j) * out + o] = v;
    }
}

/* --------------------------------------------------------------- shrink */
/* 4 values of A (f32, or bf16) at p, as floats. */
__device__ __forceinline__ float4 a_load4(const float *p) { return __ldg((const float4 *)p); }
__device__ __forceinline__ float4 a_load4(const __nv_bfloat16 *p) {
    uint2 u = __ldg((const uint2 *)p);
    return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                       __uint_as_float(u.y & 0xffff0000u));
}
__device__ __forceinline__ float a_load1(const float *p) { return __ldg(p); }
__device__ __forceinline__ float a_load1(const __nv_bfloat16 *p) { return __bfloat162float(__ldg(p)); }

/* The NC components' partial sums of this thread over its slices of x (see k_bshrink). */
template <int NC, typename AT>
__device__ __forceinline__ void bshrink_part(float (&acc)[NC], const AT *a, const float *xr, int in, int nk, int vec) {
    if (vec) {
        for (int c = threadIdx.x * 4; c < in; c += 256 * 4) {
            float4 v = *(const float4 *)(xr + c);
#pragma unroll
            for (int j = 0; j < NC; j++)
                if (j < nk) {
                    float4 q = a_load4(a + (size_t)j * in + c);
                    acc[j] += q.x * v.x + q.y * v.y + q.z * v.z + q.w * v.w;
                }
        }
    } else {
        for (int c = threadIdx.x; c < in; c += 256) {
            float v = xr[c];
#pragma unroll
            for (int j = 0; j < NC; j++)
                if (j < nk) acc[j] += a_load1(a + (size_t)j * in + c) * v;
        }
    }
}

/* t[i, k] = x[i]·A[k] for the row's entry: block (i, kb) takes the NC components
 * k = kb·NC + j, its 256 threads splitting x (each loads a slice of x once and reads
 * the components' A beside it, NC independent loads in flight), then one reduction.
 * vec: in % 4 == 0 and x, A 16-byte aligned. */
template <int NC>
__global__ void __launch_bounds__(256) k_bshrink(wk_blora lo, const float *x, int in, int vec) {
    __shared__ float red[8][NC];
    float sc;
    int i = blockIdx.x, k0 = blockIdx.y * NC, lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    asm volatile("griddepcontrol.launch_dependents;"); /* the expand may start (it waits for t itself) */
    const wk_bent *e = b_entry(lo, i, &sc);
    if (!e || k0 >= e->ra) return;
    int nk = min(NC, e->ra - k0);
    const float *xr = x + (size_t)i * in;
    float acc[NC];
#pragma unroll
    for (int j = 0; j < NC; j++) acc[j] = 0.f;
    if (lo.h16 && e->A16) bshrink_part<NC>(acc, (const __nv_bfloat16 *)e->A16 + (size_t)k0 * in, xr, in, nk, vec);
    else bshrink_part<NC>(acc, e->A + (size_t)k0 * in, xr, in, nk, vec);
#pragma unroll
    for (int j = 0; j < NC; j++) {
        float v = acc[j];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) red[w][j] = v;
    }
    __syncthreads();
    if ((int)threadIdx.x < nk) {
        float v = 0.f;
        for (int q = 0; q < 8; q++) v += red[q][threadIdx.x];
        lo.t[(size_t)i * lo.R + k0 + threadIdx.x] = v;
    }
}

/* The side stream and its two events, made at first use (state -1: none; the shrink then
 * runs on the main stream). */
static int side_ready(wkc_backend *b) {
    if (b->side_state) return b->side_state > 0;
    b->side_state = -1;
    const char *e = getenv("WICK_CUDA_BATCH_SIDE"); /* "0": the shrink on the main stream (for comparisons) */
    if (e && !strcmp(e, "0")) return 0;
    if (cudaStreamCreateWithFlags(&b->side, cudaStreamNonBlocking) != cudaSuccess) return cudaGetLastError(), 0;
    if (cudaEventCreateWithFlags(&b->side_fork, cudaEventDisableTiming) != cudaSuccess ||
        cudaEventCreateWithFlags(&b->side_join, cudaEventDisableTiming) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    b->side_state = 1;
    return 1;
}

void wkc_bmatmul(wk_backend *be, float *y, const float *x, const wk_mat *W, const float *bias, int n, int acc,
                 const wk_blora *lo) {
    wkc_backend *b = wkc(be);
    const float *cx = b->cast_x; /* the 16-bit activation cache survives (matmul's own rule) */
    wkc_use(b);
    b->cast_x = cx;
    int shrink = lo && lo->R > 0 && lo->rows && lo->e;
    if (shrink && lo->R > BT_MAX_R) {
        if (!b->err) {
            b->err = WICK_EUNSUPPORTED;
            snprintf(b->errmsg, sizeof b->errmsg, "cuda:%d: batched LoRA: rank sum %d above %d", b->device, lo->R, BT_MAX_R);
        }
        return;
    }
    int side = shrink && !b->opt && side_ready(b);
    b->optag = W->rows;
    if (shrink) {
        cudaStream_t s = b->st;
        if (side) {
            wkc_cuda_fail(b, cudaEventRecord(b->side_fork, b->st), "batched shrink (fork)");
            wkc_cuda_fail(b, cudaStreamWaitEvent(b->side, b->side_fork, 0), "batched shrink (fork)");
            s = b->side;
        }
        int vec = W->cols % 4 == 0 && (uintptr_t)x % 16 == 0; /* A rows: the grouped layout keeps them aligned */
        int nc = W->cols > 2048 ? SHRINK_COMPS / 2 : SHRINK_COMPS; /* long rows: half a block's, twice the blocks */
        auto shrink_k = nc < SHRINK_COMPS ? k_bshrink<SHRINK_COMPS / 2> : k_bshrink<SHRINK_COMPS>;
        shrink_k<<<dim3((unsigned)n, (unsigned)((lo->R + nc - 1) / nc)), 256, 0, s>>>(*lo, x, W->cols, vec);
        wkc_launched(b, "batched lora shrink");
        int out = (int)W->rows, chunks = (out + 255) / 256;
        if (n <= 4) { /* one row a block, as the shrink's programmatic dependent */
            cudaLaunchConfig_t lc = {};
            cudaLaunchAttribute at[1];
            at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
            /* WICK_CUDA_PDL=0: never; with more rows the waiting blocks hold SMs the product beside
             * them needs (H200, 8 adapters / base: 4 rows 0.93-0.95 -> 0.98, but 16 rows 0.89 ->
             * 0.85-0.86 at 0.5B and 0.91 -> 0.83 at 7B) */
            at[0].val.programmaticStreamSerializationAllowed = b->bpdl;
            lc.gridDim = dim3((unsigned)chunks, (unsigned)n), lc.blockDim = dim3(256);
            lc.stream = s, lc.attrs = at, lc.numAttrs = 1;
            wkc_cuda_fail(b, cudaLaunchKernelEx(&lc, k_bexpand, *lo, out), "batched lora expand");
        } else {
            /* rows a block: the most (up to 16) that still give two blocks a multiprocessor, so a
             * small product keeps its parallelism and a wide one reads each B row once per adapter
             * segment. WICK_BEXP_RB=k forces k (comparisons and tests). H200, 8 adapters / base:
             * 7B at 64 streams 0.86-0.87 with one row a block (and 8 by the former rule: 0.86 /
             * 0.92) -> 0.88-0.91, the expand's kernels of one step 2,027 -> 1,347 us; 0.5B at 16
             * streams 0.86-0.89 -> 0.89-0.93. Forced to 4, or as the shrink's programmatic
             * dependent, 16 streams lost 0.02-0.05. */
            int rb = 16;
            while (rb > 1 && (long)chunks * ((n + rb - 1) / rb) < 2L * b->sms) rb /= 2;
            if (b->bexp_rb) rb = b->bexp_rb < BXR_MAX ? b->bexp_rb : BXR_MAX;
            while (rb > 1 && (size_t)rb * lo->R > BXR_SMEM) rb /= 2;
            size_t smem = sizeof(float) * (size_t)rb * lo->R;
            k_bexpand_rows<<<dim3((unsigned)chunks, (unsigned)((n + rb - 1) / rb)), 256, smem, s>>>(*lo, out, n, rb);
        }
        wkc_launched(b, "batched lora expand");
        if (side) wkc_cuda_fail(b, cudaEventRecord(b->side_join, b->side), "batched shrink (join)");
    }
    wkc_matmul(be, y, x, W, bias, n, acc);
    if (side) wkc_cuda_fail(b, cudaStreamWaitEvent(b->st, b->side_join, 0), "batched shrink (join)");
}

/* ----------------------------------------------------------- rope + kv */
/* Block (head, row): q heads h < H, then k heads (each with its v head); thread d of D. */
__global__ void k_brope_kv(float *q, const float *qkv, const wk_brow *rows, int l, int H, int Hk, int D,
                           const float *inv_freq, const float *qn, const float *kn, float eps, wk_blora lo) {
    __shared__ float sh[512];
    __shared__ float red[32];
    int h = blockIdx.x, i = blockIdx.y, d = threadIdx.x, isq = h < H, hk = h - H, half = D / 2;
    const wk_brow w = rows[i];
    size_t QKV = (size_t)(H + 2 * Hk) * D;
    const float *row = qkv + (size_t)i * QKV, *er = lo.e ? lo.e + (size_t)i * QKV : NULL;
    int active = d < D, oq = isq ? h * D + d : H * D + hk * D + d, ov = H * D + Hk * D + hk * D + d;
    float val = active ? row[oq] + (er ? er[oq] : 0.f) : 0.f;
    size_t base = (size_t)l * Hk * w.cap * D + ((size_t)hk * w.cap + w.pos) * D + d;
    if (!isq && active) w.vc[base] = row[ov] + (er ? er[ov] : 0.f);
    const float *nw = isq ? qn : kn;
    if (nw) { /* per-head RMSNorm (Qwen3 q_norm / k_norm) */
        float ss = val * val;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        if ((d & 31) == 0) red[d >> 5] = ss;
        __syncthreads();
        float t = 0.f;
        for (int k = 0; k < (int)(blockDim.x >> 5); k++) t += red[k];
        if (active) val = val * (1.f / sqrtf(t / (float)D + eps)) * nw[d];
    }
    if (active) sh[d] = val;
    __syncthreads();
    if (!active) return;
    int j = d < half ? d : d - half;
    float sn, cs;
    sincosf((float)w.pos * inv_freq[j], &sn, &cs);
    float a = sh[j], c = sh[j + half];
    float r = d < half ? a * cs - c * sn : c * cs + a * sn;
    if (isq) q[(size_t)i * H * D + (size_t)h * D + d] = r;
    else w.kc[base] = r;
}

/* lo when it has an expand to add, else none (e NULL). */
static wk_blora lo_or_none(const wk_blora *lo) {
    wk_blora z = {NULL, 0, NULL, 0, NULL};
    return lo && lo->rows && lo->R > 0 && lo->e ? *lo : z;
}

void wkc_brope_kv(wk_backend *be, float *q, const float *qkv, int n, const wk_brow *rows, int l, int H, int Hk, int D,
                  const float *inv_freq, const float *qn, const float *kn, float eps, const wk_blora *lo) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    b->optag = n;
    if (D > 512 || D % 2) {
        if (!b->err) {
            b->err = WICK_EUNSUPPORTED;
            snprintf(b->errmsg, sizeof b->errmsg, "cuda:%d: batched rope_kv: head_dim %d (even, at most 512)", b->device, D);
        }
        return;
    }
    k_brope_kv<<<dim3((unsigned)(H + Hk), (unsigned)n), 32 * ((D + 31) / 32), 0, b->st>>>(q, qkv, rows, l, H, Hk, D,
                                                                                           inv_freq, qn, kn, eps,
                                                                                           lo_or_none(lo));
    wkc_launched(b, "batched rope_kv");
}

/* ------------------------------------------------------------- RMSNorm */
/* One block per row: x += the row's expand (written back), y = x / rms(x) · w. */
__global__ void __launch_bounds__(512) k_brmsnorm(float *y, float *x, const float *w, int dim, float eps, wk_blora lo, const wk_brow *perm) {
    __shared__ float red[32];
    int i = blockIdx.x;
    float ss = 0.f;
    const float *er = lo.e ? lo.e + (size_t)i * dim : NULL;
    float *xi = x + (size_t)i * dim, *yi = y + (size_t)(perm ? perm[i].orow : i) * dim;
    for (int c = threadIdx.x; c < dim; c += blockDim.x) {
        float v = xi[c];
        if (er) xi[c] = v = v + er[c];
        ss += v * v;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;
    __syncthreads();
    float t = 0.f;
    for (int k = 0; k < (int)(blockDim.x >> 5); k++) t += red[k];
    float rs = 1.f / sqrtf(t / (float)dim + eps);
    for (int c = threadIdx.x; c < dim; c += blockDim.x) yi[c] = xi[c] * rs * (w ? w[c] : 1.f);
}

void wkc_brmsnorm(wk_backend *be, float *y, float *x, const float *w, int n, int dim, float eps, const wk_blora *lo,
                  const wk_brow *perm) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    b->optag = n;
    int threads = dim >= 512 ? 512 : 32 * ((dim + 31) / 32); /* an output or two per thread: short chains */
    k_brmsnorm<<<n, threads, 0, b->st>>>(y, x, w, dim, eps, lo_or_none(lo), perm);
    wkc_launched(b, "batched rmsnorm");
}

/* -------------------------------------------------------------- SwiGLU */
/* Block (chunk of 256 f, row i): out[i, f] = silu(g)·u with g, u the row's gate/up plus its expand. */
__global__ void k_bswiglu(float *out, const float *gu, int F, wk_blora lo) {
    int f = blockIdx.x * blockDim.x + threadIdx.x, i = blockIdx.y;
    if (f >= F) return;
    const float *r = gu + (size_t)i * 2 * F;
    float g = r[f], u = r[F + f];
    if (lo.e) {
        const float *er = lo.e + (size_t)i * 2 * F;
        g += er[f], u += er[F + f];
    }
    out[(size_t)i * F + f] = g / (1.f + expf(-g)) * u;
}

void wkc_bswiglu(wk_backend *be, float *out, const float *gu, int n, int F, const wk_blora *lo) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    b->optag = n;
    k_bswiglu<<<dim3((unsigned)((F + 255) / 256), (unsigned)n), 256, 0, b->st>>>(out, gu, F, lo_or_none(lo));
    wkc_launched(b, "batched swiglu");
}
