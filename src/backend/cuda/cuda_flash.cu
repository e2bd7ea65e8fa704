/*
 * cuda_flash.cu — tensor-core causal attention for training (see wkt_attn_fwd_tc in
 * cuda_train.h): the same packed-sequence semantics as the exact kernels of
 * cuda_train.cu, with every product on TF32 tensor cores (WMMA m16n16k8; inputs stay
 * f32 in memory and are rounded to TF32 in registers; fp32 accumulation).
 * Flash tiling: a block of FA_BM query rows of one head sweeps FA_BN-key tiles from
 * the first row of its first row's sequence to its last row; S = Q·Kᵀ goes to shared
 * memory, FA_BM×4 threads (4 per row) fold it into an online softmax and rescale the
 * output accumulator (kept in shared memory), then O += P·V. The lse is saved.
 * Backward: dsum = rowsum(dO ∘ O); a dq kernel (per query block: recompute P from q,
 * k and lse, dS = P ∘ (dP − dsum), dQ += dS·K with register accumulators) and a dk/dv
 * kernel (per key block and query head: Pᵀ, dSᵀ from Kᵀ·Q and Vᵀ·dO, dV += Pᵀ·dO,
 * dK += dSᵀ·Q) whose per-head partials are summed over the GQA group in fixed order.
 * Every output has one writer; no atomics; results are the same run to run.
 */
#include "backend/cuda/cuda_internal.cuh"
extern "C" {
#include "backend/cuda/cuda_train.h"
}

#include <math.h>
#include <mma.h>
#include <type_traits>

namespace wm = nvcuda::wmma;

#define FA_BM 64      /* query rows per tile */
#define FA_BN 64      /* key rows per tile */
#define FA_WARPS 8    /* warps per block */
#define FA_THREADS 256
#define FA_LS (FA_BN + 4) /* row length of the score tiles in shared memory */

typedef wm::fragment<wm::accumulator, 16, 16, 8, float> fa_acc;

/* C (+)= A·B over 16×16 output tiles of an M×N block, the warps taking tiles in turn.
 * A: M×K row-major (lda); B: K×N, row-major (ldb) or col-major (element (k, n) at B[n*ldb + k]).
 * C: shared memory, row-major (ldc); acc: accumulate into it, else overwrite. */
template <typename BL>
__device__ void fa_mm(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M, int N, int K, bool acc) {
    int w = threadIdx.x >> 5, tn = N / 16, tiles = (M / 16) * tn;
    bool colb = std::is_same<BL, wm::col_major>::value;
    for (int t = w; t < tiles; t += FA_WARPS) {
        int r = (t / tn) * 16, c = (t % tn) * 16;
        fa_acc f;
        if (acc) wm::load_matrix_sync(f, C + r * ldc + c, ldc, wm::mem_row_major);
        else wm::fill_fragment(f, 0.f);
        for (int k = 0; k < K; k += 8) {
            wm::fragment<wm::matrix_a, 16, 16, 8, wm::precision::tf32, wm::row_major> a;
            wm::fragment<wm::matrix_b, 16, 16, 8, wm::precision::tf32, BL> b;
            wm::load_matrix_sync(a, A + r * lda + k, lda);
            wm::load_matrix_sync(b, colb ? B + c * ldb + k : B + k * ldb + c, ldb);
#pragma unroll
            for (int e = 0; e < a.num_elements; e++) a.x[e] = wm::__float_to_tf32(a.x[e]);
#pragma unroll
            for (int e = 0; e < b.num_elements; e++) b.x[e] = wm::__float_to_tf32(b.x[e]);
            wm::mma_sync(f, a, b, f);
        }
        wm::store_matrix_sync(C + r * ldc + c, f, ldc, wm::mem_row_major);
    }
}

/* f[NF] += A·B for the 64×N output tiles this warp owns (tile w + FA_WARPS·t, t < NF):
 * A 64×K row-major (lda), B K×N row-major (ldb). NF·FA_WARPS·256 = 64·N. */
template <int NF>
__device__ void fa_mm_regs(fa_acc (&f)[NF], const float *A, int lda, const float *B, int ldb, int N, int K) {
    int w = threadIdx.x >> 5, tn = N / 16;
#pragma unroll
    for (int t = 0; t < NF; t++) {
        int id = w + FA_WARPS * t, r = (id / tn) * 16, c = (id % tn) * 16;
#pragma unroll 2
        for (int k = 0; k < K; k += 8) {
            wm::fragment<wm::matrix_a, 16, 16, 8, wm::precision::tf32, wm::row_major> a;
            wm::fragment<wm::matrix_b, 16, 16, 8, wm::precision::tf32, wm::row_major> b;
            wm::load_matrix_sync(a, A + r * lda + k, lda);
            wm::load_matrix_sync(b, B + k * ldb + c, ldb);
#pragma unroll
            for (int e = 0; e < a.num_elements; e++) a.x[e] = wm::__float_to_tf32(a.x[e]);
#pragma unroll
            for (int e = 0; e < b.num_elements; e++) b.x[e] = wm::__float_to_tf32(b.x[e]);
            wm::mma_sync(f[t], a, b, f[t]);
        }
    }
}

/* Stores the warp's tiles of fa_mm_regs into C (64×N, row-major, ldc). */
template <int NF>
__device__ void fa_store_regs(float *C, int ldc, fa_acc (&f)[NF], int N) {
    int w = threadIdx.x >> 5, tn = N / 16;
#pragma unroll
    for (int t = 0; t < NF; t++) {
        int id = w + FA_WARPS * t;
        wm::store_matrix_sync(C + (id / tn) * 16 * ldc + (id % tn) * 16, f[t], ldc, wm::mem_row_major);
    }
}

/* 64 rows (row0 + r, r < 64) of D floats into dst (row length ld): global row j at
 * src + j*rstride + col; rows at or past `end` are zero (so no garbage reaches a product). */
template <int D>
__device__ void fa_load(float *dst, int ld, const float *src, int row0, int end, size_t rstride, size_t col) {
    for (int e = threadIdx.x; e < 64 * (D / 4); e += FA_THREADS) {
        int r = e / (D / 4), c4 = e - r * (D / 4), j = row0 + r;
        float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
        if (j < end) x = ((const float4 *)(src + (size_t)j * rstride + col))[c4];
        *(float4 *)(dst + r * ld + 4 * c4) = x;
    }
}

/* Forward: block (FA_BM query rows from blockIdx.x·FA_BM, head blockIdx.y). Thread t works on
 * tile row t/4 and its columns (t%4) + 4c. Shared: Qs, Ks, Vs, Os [64][D+4], Ss [64][FA_LS]. */
template <int D>
__global__ void __launch_bounds__(FA_THREADS) kt_fa_fwd(float *out, float *lse, const float *q, const float *k,
                                                        const float *v, const int32_t *rs, int n, int H, int Hk,
                                                        float scale) {
    extern __shared__ __align__(128) float fa_sm[];
    const int ld = D + 4;
    float *Qs = fa_sm, *Ks = Qs + FA_BM * ld, *Vs = Ks + FA_BN * ld, *Os = Vs + FA_BN * ld, *Ss = Os + FA_BM * ld;
    int h = blockIdx.y, kh = h / (H / Hk), i0 = blockIdx.x * FA_BM, last = min(i0 + FA_BM, n) - 1;
    int r = threadIdx.x >> 2, sub = threadIdx.x & 3, i = i0 + r;
    bool row = i < n;
    int rsi = row ? rs[i] : 0;
    fa_load<D>(Qs, ld, q, i0, n, (size_t)H * D, (size_t)h * D);
    for (int d = sub; d < D; d += 4) Os[r * ld + d] = 0.f;
    float m = -INFINITY, l = 0.f;
    for (int j0 = rs[i0]; j0 <= last; j0 += FA_BN) {
        __syncthreads(); /* the previous tile's Ks, Vs, Ss are consumed */
        fa_load<D>(Ks, ld, k, j0, last + 1, (size_t)Hk * D, (size_t)kh * D);
        fa_load<D>(Vs, ld, v, j0, last + 1, (size_t)Hk * D, (size_t)kh * D);
        __syncthreads();
        fa_mm<wm::col_major>(Ss, FA_LS, Qs, ld, Ks, ld, FA_BM, FA_BN, D, false);
        __syncthreads();
        float tm = -INFINITY;
        for (int c = sub; c < FA_BN; c += 4) {
            int j = j0 + c;
            float s = row && j >= rsi && j <= i ? Ss[r * FA_LS + c] * scale : -INFINITY;
            Ss[r * FA_LS + c] = s;
            tm = fmaxf(tm, s);
        }
        tm = fmaxf(tm, __shfl_xor_sync(0xffffffffu, tm, 1));
        tm = fmaxf(tm, __shfl_xor_sync(0xffffffffu, tm, 2));
        float mn = fmaxf(m, tm), corr = mn == -INFINITY ? 1.f : expf(m - mn), ps = 0.f;
        for (int c = sub; c < FA_BN; c += 4) {
            float s = Ss[r * FA_LS + c], p = s == -INFINITY ? 0.f : expf(s - mn);
            Ss[r * FA_LS + c] = p;
            ps += p;
        }
        ps += __shfl_xor_sync(0xffffffffu, ps, 1);
        ps += __shfl_xor_sync(0xffffffffu, ps, 2);
        l = l * corr + ps, m = mn;
        for (int d = sub; d < D; d += 4) Os[r * ld + d] *= corr;
        __syncthreads();
        fa_mm<wm::row_major>(Os, ld, Ss, FA_LS, Vs, ld, FA_BM, D, FA_BN, true);
    }
    __syncthreads();
    if (!row) return;
    for (int d = sub; d < D; d += 4) out[((size_t)i * H + h) * D + d] = Os[r * ld + d] / l;
    if (sub == 0) lse[(size_t)i * H + h] = m + logf(l);
}

/* dsum[e] = Σ_d dout·out over the rows e < nh of D floats (one warp each). */
__global__ void kt_fa_dsum(float *dsum, const float *dout, const float *out, size_t nh, int D) {
    size_t e = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (e >= nh) return;
    float s = 0.f;
    for (int d = lane; d < D; d += 32) s += dout[e * D + d] * out[e * D + d];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) dsum[e] = s;
}

/* dq: block (FA_BM query rows, head); key tiles as in the forward; dQ in registers.
 * Shared: Qs, Gs (dO), Ks, Vs [64][D+4], Ss, Ps [64][FA_LS]. */
template <int D>
__global__ void __launch_bounds__(FA_THREADS) kt_fa_dq(float *dq, const float *dout, const float *lse,
                                                       const float *dsum, const float *q, const float *k,
                                                       const float *v, const int32_t *rs, int n, int H, int Hk,
                                                       float scale) {
    extern __shared__ __align__(128) float fa_sm[];
    const int ld = D + 4;
    float *Qs = fa_sm, *Gs = Qs + FA_BM * ld, *Ks = Gs + FA_BM * ld, *Vs = Ks + FA_BN * ld, *Ss = Vs + FA_BN * ld;
    float *Ps = Ss + FA_BM * FA_LS;
    int h = blockIdx.y, kh = h / (H / Hk), i0 = blockIdx.x * FA_BM, last = min(i0 + FA_BM, n) - 1;
    int r = threadIdx.x >> 2, sub = threadIdx.x & 3, i = i0 + r;
    bool row = i < n;
    int rsi = row ? rs[i] : 0;
    float Li = row ? lse[(size_t)i * H + h] : 0.f, Di = row ? dsum[(size_t)i * H + h] : 0.f;
    fa_load<D>(Qs, ld, q, i0, n, (size_t)H * D, (size_t)h * D);
    fa_load<D>(Gs, ld, dout, i0, n, (size_t)H * D, (size_t)h * D);
    fa_acc acc[D / 32];
#pragma unroll
    for (int t = 0; t < D / 32; t++) wm::fill_fragment(acc[t], 0.f);
    for (int j0 = rs[i0]; j0 <= last; j0 += FA_BN) {
        __syncthreads();
        fa_load<D>(Ks, ld, k, j0, last + 1, (size_t)Hk * D, (size_t)kh * D);
        fa_load<D>(Vs, ld, v, j0, last + 1, (size_t)Hk * D, (size_t)kh * D);
        __syncthreads();
        fa_mm<wm::col_major>(Ss, FA_LS, Qs, ld, Ks, ld, FA_BM, FA_BN, D, false);
        fa_mm<wm::col_major>(Ps, FA_LS, Gs, ld, Vs, ld, FA_BM, FA_BN, D, false);
        __syncthreads();
        for (int c = sub; c < FA_BN; c += 4) {
            int j = j0 + c;
            float ds = 0.f;
            if (row && j >= rsi && j <= i) ds = expf(Ss[r * FA_LS + c] * scale - Li) * (Ps[r * FA_LS + c] - Di);
            Ss[r * FA_LS + c] = ds;
        }
        __syncthreads();
        fa_mm_regs<D / 32>(acc, Ss, FA_LS, Ks, ld, D, FA_BN);
    }
    __syncthreads(); /* every warp is done reading Qs */
    fa_store_regs<D / 32>(Qs, ld, acc, D);
    __syncthreads();
    if (!row) return;
    for (int d = sub; d < D; d += 4) dq[((size_t)i * H + h) * D + d] = Qs[r * ld + d] * scale;
}

/* dk, dv contributions of query head h: block (FA_BN key rows, h); query tiles from the block's
 * first key row to the end of its last key row's sequence. Thread t works on key row t/4 and
 * query columns (t%4) + 4c. Writes dkp/dvp [n, H, D] (dk unscaled); dK, dV in registers.
 * Shared: Ks, Vs, Qs, Gs [64][D+4], St, Pt [64][FA_LS], Ls, Ds [FA_BM]. */
template <int D>
__global__ void __launch_bounds__(FA_THREADS) kt_fa_dkv(float *dkp, float *dvp, const float *dout, const float *lse,
                                                        const float *dsum, const float *q, const float *k,
                                                        const float *v, const int32_t *re, int n, int H, int Hk,
                                                        float scale) {
    extern __shared__ __align__(128) float fa_sm[];
    const int ld = D + 4;
    float *Ks = fa_sm, *Vs = Ks + FA_BN * ld, *Qs = Vs + FA_BN * ld, *Gs = Qs + FA_BM * ld, *St = Gs + FA_BM * ld;
    float *Pt = St + FA_BN * FA_LS, *Ls = Pt + FA_BN * FA_LS, *Ds = Ls + FA_BM;
    int h = blockIdx.y, kh = h / (H / Hk), first = blockIdx.x * FA_BN, lastk = min(first + FA_BN, n) - 1;
    int r = threadIdx.x >> 2, sub = threadIdx.x & 3, j = first + r;
    bool row = j < n;
    int rej = row ? re[j] : 0, hi = re[lastk];
    fa_load<D>(Ks, ld, k, first, n, (size_t)Hk * D, (size_t)kh * D);
    fa_load<D>(Vs, ld, v, first, n, (size_t)Hk * D, (size_t)kh * D);
    fa_acc ak[D / 32], av[D / 32];
#pragma unroll
    for (int t = 0; t < D / 32; t++) wm::fill_fragment(ak[t], 0.f), wm::fill_fragment(av[t], 0.f);
    for (int i0 = first; i0 < hi; i0 += FA_BM) {
        __syncthreads();
        fa_load<D>(Qs, ld, q, i0, hi, (size_t)H * D, (size_t)h * D);
        fa_load<D>(Gs, ld, dout, i0, hi, (size_t)H * D, (size_t)h * D);
        if (threadIdx.x < FA_BM) {
            int ii = i0 + threadIdx.x;
            Ls[threadIdx.x] = ii < hi ? lse[(size_t)ii * H + h] : 0.f;
            Ds[threadIdx.x] = ii < hi ? dsum[(size_t)ii * H + h] : 0.f;
        }
        __syncthreads();
        fa_mm<wm::col_major>(St, FA_LS, Ks, ld, Qs, ld, FA_BN, FA_BM, D, false); /* Sᵀ = K·Qᵀ */
        fa_mm<wm::col_major>(Pt, FA_LS, Vs, ld, Gs, ld, FA_BN, FA_BM, D, false); /* dPᵀ = V·dOᵀ */
        __syncthreads();
        for (int c = sub; c < FA_BM; c += 4) {
            int ii = i0 + c;
            float p = 0.f, ds = 0.f;
            if (row && ii >= j && ii < rej) {
                p = expf(St[r * FA_LS + c] * scale - Ls[c]);
                ds = p * (Pt[r * FA_LS + c] - Ds[c]);
            }
            St[r * FA_LS + c] = p;
            Pt[r * FA_LS + c] = ds;
        }
        __syncthreads();
        fa_mm_regs<D / 32>(av, St, FA_LS, Gs, ld, D, FA_BM); /* dV += Pᵀ·dO */
        fa_mm_regs<D / 32>(ak, Pt, FA_LS, Qs, ld, D, FA_BM); /* dK += dSᵀ·Q */
    }
    __syncthreads(); /* every warp is done reading Ks, Vs */
    fa_store_regs<D / 32>(Ks, ld, ak, D);
    fa_store_regs<D / 32>(Vs, ld, av, D);
    __syncthreads();
    if (!row) return;
    for (int d = sub; d < D; d += 4) {
        dkp[((size_t)j * H + h) * D + d] = Ks[r * ld + d];
        dvp[((size_t)j * H + h) * D + d] = Vs[r * ld + d];
    }
}

/* dk[j,kh,:] = scale · Σ over the group's heads of dkp[j,h,:]; dv likewise (fixed order; in place
 * when H == Hk and dk == dkp). */
__global__ void kt_fa_group_sum(float *dk, float *dv, const float *dkp, const float *dvp, int n, int H, int Hk, int D,
                                float scale) {
    int grp = H / Hk;
    size_t total = (size_t)n * Hk * D;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        size_t j = e / ((size_t)Hk * D);
        int rr = (int)(e - j * Hk * D), kh = rr / D, d = rr - kh * D;
        float sk = 0.f, sv = 0.f;
        for (int hh = 0; hh < grp; hh++) {
            size_t o = (j * H + (size_t)kh * grp + hh) * D + d;
            sk += dkp[o], sv += dvp[o];
        }
        dk[e] = sk * scale, dv[e] = sv;
    }
}

/* Shared bytes of the three kernels for head_dim D. */
static size_t fa_smem_fwd(int D) { return sizeof(float) * (4 * 64 * (size_t)(D + 4) + 64 * FA_LS); }
static size_t fa_smem_dq(int D) { return sizeof(float) * (4 * 64 * (size_t)(D + 4) + 2 * 64 * FA_LS); }
static size_t fa_smem_dkv(int D) { return fa_smem_dq(D) + sizeof(float) * 2 * FA_BM; }

/* Sets kernel f's dynamic shared memory limit to `bytes`; 0 (error recorded) on failure. */
static int fa_smem(wkc_backend *b, const void *f, size_t bytes) {
    return !wkc_cuda_fail(b, cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes),
                          "tensor-core attention shared memory");
}

/* 1 when the tensor-core kernels take this shape and these pointers. */
static int fa_takes(int D, int H, int Hk, const void *const *ptrs, int np) {
    uintptr_t a = 0;
    for (int i = 0; i < np; i++) a |= (uintptr_t)ptrs[i];
    return (D == 64 || D == 128) && Hk > 0 && H > 0 && H % Hk == 0 && a % 16 == 0;
}

template <int D>
static void fa_fwd(wkc_backend *b, float *out, float *lse, const float *q, const float *k, const float *v,
                   const int32_t *rs, int n, int H, int Hk, float scale) {
    size_t sb = fa_smem_fwd(D);
    if (!fa_smem(b, (const void *)kt_fa_fwd<D>, sb)) return;
    dim3 grid((n + FA_BM - 1) / FA_BM, H);
    kt_fa_fwd<D><<<grid, FA_THREADS, sb, b->st>>>(out, lse, q, k, v, rs, n, H, Hk, scale);
    wkc_launched(b, "tensor-core attention forward (training)");
}

int wkt_attn_fwd_tc(wk_backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                    const int32_t *rs, int n, int H, int Hk, int D, float scale) {
    const void *ptrs[] = {out, q, k, v};
    if (!fa_takes(D, H, Hk, ptrs, 4)) return 0;
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (n <= 0) return 1;
    if (D == 64) fa_fwd<64>(b, out, lse, q, k, v, rs, n, H, Hk, scale);
    else fa_fwd<128>(b, out, lse, q, k, v, rs, n, H, Hk, scale);
    return 1;
}

template <int D>
static void fa_bwd(wkc_backend *b, float *dq, float *dkp, float *dvp, const float *dout, const float *lse,
                   const float *dsum, const float *q, const float *k, const float *v, const int32_t *rs,
                   const int32_t *re, int n, int H, int Hk, float scale) {
    size_t sq = fa_smem_dq(D), skv = fa_smem_dkv(D);
    if (!fa_smem(b, (const void *)kt_fa_dq<D>, sq) || !fa_smem(b, (const void *)kt_fa_dkv<D>, skv)) return;
    dim3 gq((n + FA_BM - 1) / FA_BM, H), gk((n + FA_BN - 1) / FA_BN, H);
    kt_fa_dq<D><<<gq, FA_THREADS, sq, b->st>>>(dq, dout, lse, dsum, q, k, v, rs, n, H, Hk, scale);
    wkc_launched(b, "tensor-core attention backward (dq)");
    kt_fa_dkv<D><<<gk, FA_THREADS, skv, b->st>>>(dkp, dvp, dout, lse, dsum, q, k, v, re, n, H, Hk, scale);
    wkc_launched(b, "tensor-core attention backward (dk, dv)");
}

int wkt_attn_bwd_tc(wk_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *out,
                    const float *lse, const float *q, const float *k, const float *v, const int32_t *rs,
                    const int32_t *re, int n, int H, int Hk, int D, float scale, float *dsum, float *dkp,
                    float *dvp) {
    const void *ptrs[] = {dq, dk, dv, dout, out, q, k, v, dkp, dvp};
    if (!fa_takes(D, H, Hk, ptrs, H == Hk ? 8 : 10)) return 0;
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (n <= 0) return 1;
    size_t nh = (size_t)n * H;
    kt_fa_dsum<<<(unsigned)((nh * 32 + 255) / 256), 256, 0, b->st>>>(dsum, dout, out, nh, D);
    wkc_launched(b, "tensor-core attention backward (dsum)");
    float *pk = H == Hk ? dk : dkp, *pv = H == Hk ? dv : dvp; /* no GQA: the partials are the result */
    if (D == 64) fa_bwd<64>(b, dq, pk, pv, dout, lse, dsum, q, k, v, rs, re, n, H, Hk, scale);
    else fa_bwd<128>(b, dq, pk, pv, dout, lse, dsum, q, k, v, rs, re, n, H, Hk, scale);
    size_t total = (size_t)n * Hk * D;
    kt_fa_group_sum<<<wkc_blocks(total), 256, 0, b->st>>>(dk, dv, pk, pv, n, H, Hk, D, scale);
    wkc_launched(b, "tensor-core attention backward (group sum)");
    return 1;
}
