/*
 * cuda_attention.cu — causal attention of q[n,H,D] over the KV cache [Hk,cap,D].
 *
 * Decode (n <= 8 query rows): split-K over the KV cache, GQA-aware: one block serves all
 * the query heads (and rows) of a KV head for its span of keys, so K and V are read once;
 * the spans' partial softmax results are merged by the blocks themselves (the last to
 * finish, counted with self-resetting atomics), in one launch. Head sizes outside its list
 * (or misaligned tensors) take the general kernels: one block per (row, head) and span of
 * SPLIT keys, and a second kernel that merges the spans (flash-decoding). With device
 * positions (pos) both grids cover the whole cache and spans past the current length exit
 * at once, so a captured graph replays at any position.
 * Prefill: S = scale·Q·Kᵀ and O = P·V for all heads as two pointer-array batched
 * fp32 cuBLAS GEMMs (GQA: each query head points at its KV head), with a causal
 * softmax kernel between them. Everything accumulates in fp32.
 */
#include "backend/cuda/cuda_internal.cuh"

#include <math.h>
#include <stdlib.h>

#define SPLIT 64         /* keys per split-K block: many short blocks keep every SM busy */
#define DECODE_MAX_ROWS 8
#define ATT_THREADS 64


/* Block-wide max (op 0) or sum (op 1); every thread gets the result. */
__device__ float block_reduce(float v, int op, float *red) {
    int wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = op ? wkc_warp_sum(v) : wkc_warp_max(v);
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

/* ---------------------------------------------------------------- decode: GQA split-K
 *
 * Grid (groups, NB): a group is one KV head and up to DA_RB of its query rows (row r of a
 * KV head kh is query row i = r / grp of head kh·grp + r % grp, so n rows × grp heads share
 * the head's K and V, read once per group). Block b of a group takes the keys of span b:
 * the span length is computed on the device from the current length L = pos0 + n, so
 * the NB spans always cover [0, L) evenly (spans past the needed count exit at once), and
 * a graph captured at one position replays at any other. Each block stages its keys in
 * tiles of `tk` K and V rows (cp.async, 16 bytes a copy, coalesced), scores every row
 * against them, keeps a running max/sum and o = Σ exp(s - m)·v, and stores (o, m, l).
 * Merging is done by the blocks themselves: the last of each run of DA_G1 spans to finish
 * (an atomic counter) merges them, and the last of those merges the runs and writes the
 * output. The last arrival resets each counter to 0, so the next launch (or replay) finds
 * them zero; they are zeroed once when the scratch buffer is (re)allocated. */

#define DA_THREADS 256
#define DA_RB 16          /* query rows of one KV head per block */
#define DA_G1 8           /* spans merged by the first merge level */
#define DA_MAXNB 256      /* spans per group at most */
#define DA_CSTRIDE 33     /* counters per group: DA_MAXNB / DA_G1 first-level ones, one second-level */
#define DA_CNT_BYTES 65536 /* the counters, at the start of the WKC_SCR_ATTN scratch */
#define DA_MINSPAN 32     /* keys per span at least */

struct da_args {
    float *out;
    const float *q, *k, *v;
    float *part;          /* per group: NB span partials, then NB/DA_G1 first-level ones; (o[RB][D], m/l[RB][2]) each */
    unsigned *cnt;
    const int32_t *pos;
    int pos0, n, H, grp, cap, nb, minspan, tk, nchunk;
    float scale;
};

/* Keys per span for L keys over nb spans (a multiple of 16, at least minspan). */
__host__ __device__ static inline int da_span(int L, int nb, int minspan) {
    int s = ((L + nb - 1) / nb + 15) & ~15;
    return s > minspan ? s : minspan;
}

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* Output row of chunk row r: (i·H + h)·D for the query row i and head h it stands for. */
__device__ __forceinline__ size_t da_orow(const da_args &a, int kh, int r0, int r, int D) {
    int rc = r0 + r;
    return ((size_t)(rc / a.grp) * a.H + (size_t)kh * a.grp + rc % a.grp) * D;
}

/* Merges P partials (slots of ss floats from src) of R rows into one: the output rows
 * (fin: normalised) or the partial at dst. Each thread takes (row, 4 columns) and combines
 * the partials online, 8 at a time (their loads in flight together). */
template <int D>
__device__ void da_merge(const da_args &a, const float *src, int P, size_t ss, int R, float *dst, int fin, int kh,
                         int r0) {
    constexpr int D4 = D / 4;
    for (int e = threadIdx.x; e < R * D4; e += blockDim.x) {
        int r = e / D4, d4 = e % D4;
        float M = -INFINITY, L = 0.f;
        float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int p0 = 0; p0 < P; p0 += 8) {
            float m[8], l[8];
            float4 x[8];
#pragma unroll
            for (int u = 0; u < 8; u++)
                if (p0 + u < P) {
                    const float *s = src + (p0 + u) * ss;
                    m[u] = __ldcg(s + DA_RB * D + 2 * r), l[u] = __ldcg(s + DA_RB * D + 2 * r + 1);
                    x[u] = __ldcg((const float4 *)(s + r * D) + d4);
                }
#pragma unroll
            for (int u = 0; u < 8; u++) {
                if (p0 + u >= P) break;
                float mn = fmaxf(M, m[u]);
                if (mn == -INFINITY) continue; /* no keys for this row so far */
                float c = expf(M - mn), w = expf(m[u] - mn);
                o.x = o.x * c + w * x[u].x, o.y = o.y * c + w * x[u].y;
                o.z = o.z * c + w * x[u].z, o.w = o.w * c + w * x[u].w;
                L = L * c + w * l[u], M = mn;
            }
        }
        if (fin) {
            float il = 1.f / L;
            o.x *= il, o.y *= il, o.z *= il, o.w *= il;
            ((float4 *)(a.out + da_orow(a, kh, r0, r, D)))[d4] = o;
        } else {
            ((float4 *)(dst + r * D))[d4] = o;
            if (d4 == 0) dst[DA_RB * D + 2 * r] = M, dst[DA_RB * D + 2 * r + 1] = L;
        }
    }
}

/* One block's rows against one tile of nk keys starting at t0 (K, V staged in Ks, Vs): the
 * scores, the running max/sum update (crow: the factor the old o is scaled by). */
template <int D>
__device__ void da_scores(const da_args &a, int pos0, int r0, int R, int t0, int nk, const float *qs, const float *Ks,
                          float *S, float *mrow, float *lrow, float *crow) {
    constexpr int D4 = D / 4, LD = D + 4;
    for (int e = threadIdx.x; e < R * nk; e += blockDim.x) {
        int r = e / nk, jj = e % nk;
        float s = -INFINITY;
        if (t0 + jj <= pos0 + (r0 + r) / a.grp) {
            const float4 *kk = (const float4 *)(Ks + jj * LD), *qq = (const float4 *)(qs + r * D);
            float s0 = 0.f, s1 = 0.f;
#pragma unroll
            for (int d = 0; d < D4; d += 2) {
                float4 x = kk[d], y = qq[d];
                s0 += x.x * y.x + x.y * y.y + x.z * y.z + x.w * y.w;
                if (d + 1 < D4) {
                    float4 x1 = kk[d + 1], y1 = qq[d + 1];
                    s1 += x1.x * y1.x + x1.y * y1.y + x1.z * y1.z + x1.w * y1.w;
                }
            }
            s = (s0 + s1) * a.scale;
        }
        S[r * a.tk + jj] = s;
    }
    __syncthreads();
    int lane = threadIdx.x & 31;
    for (int r = threadIdx.x >> 5; r < R; r += blockDim.x >> 5) {
        float *sr = S + r * a.tk, mx = -INFINITY;
        for (int jj = lane; jj < nk; jj += 32) mx = fmaxf(mx, sr[jj]);
        mx = wkc_warp_max(mx);
        float mold = mrow[r], mnew = fmaxf(mold, mx), sum = 0.f;
        for (int jj = lane; jj < nk; jj += 32) {
            float p = mnew == -INFINITY ? 0.f : expf(sr[jj] - mnew);
            sr[jj] = p;
            sum += p;
        }
        sum = wkc_warp_sum(sum);
        if (lane == 0) {
            float c = mnew == -INFINITY ? 1.f : expf(mold - mnew);
            crow[r] = c, mrow[r] = mnew, lrow[r] = lrow[r] * c + sum;
        }
    }
}

/* The decode kernel's body for group gl of a's rows (its KV head and query rows) at position
 * pos0; g numbers the group's partials and counters in the launch. */
template <int D>
__device__ __forceinline__ void da_body(const da_args &a, int gl, int g, int pos0) {
    constexpr int D4 = D / 4, LD = D + 4, PP = (DA_RB * D4 + DA_THREADS - 1) / DA_THREADS;
    extern __shared__ float4 sm4[];
    __shared__ int s_last;
    int L = pos0 + a.n;
    int span = da_span(L, a.nb, a.minspan), live = (L + span - 1) / span, b = blockIdx.y;
    if (b >= live) return; /* past the current length: nothing to do (the grid may cover the whole cache) */
    int kh = gl / a.nchunk, r0 = (gl % a.nchunk) * DA_RB, R = min(DA_RB, a.n * a.grp - r0);
    float *Ks = (float *)sm4, *Vs = Ks + a.tk * LD, *qs = Vs + a.tk * LD, *S = qs + DA_RB * D;
    float *mrow = S + DA_RB * a.tk, *lrow = mrow + DA_RB, *crow = lrow + DA_RB;
    float4 *red = (float4 *)(crow + DA_RB);
    for (int r = threadIdx.x; r < DA_RB; r += blockDim.x) mrow[r] = -INFINITY, lrow[r] = 0.f;
    /* P·V work: pairs (row, 4 columns); with few pairs the keys are split ks ways too */
    int pairs = R * D4, ks = max(1, min(8, DA_THREADS / pairs));
    float4 acc[PP];
#pragma unroll
    for (int u = 0; u < PP; u++) acc[u] = make_float4(0.f, 0.f, 0.f, 0.f);
    const float *kb = a.k + (size_t)kh * a.cap * D, *vb = a.v + (size_t)kh * a.cap * D;
    int j1 = min(b * span + span, L);
    for (int t0 = b * span; t0 < j1; t0 += a.tk) {
        int nk = min(a.tk, j1 - t0);
        __syncthreads(); /* the previous tile is consumed (and qs, mrow written) */
        for (int e = threadIdx.x; e < nk * D4; e += blockDim.x)
            cp_async16(Ks + (e / D4) * LD + 4 * (e % D4), kb + (size_t)(t0 + e / D4) * D + 4 * (e % D4));
        if (t0 == b * span) /* the queries travel with the first K tile */
            for (int e = threadIdx.x; e < R * D4; e += blockDim.x)
                cp_async16(qs + 4 * e, a.q + da_orow(a, kh, r0, e / D4, D) + 4 * (e % D4));
        cp_async_commit();
        for (int e = threadIdx.x; e < nk * D4; e += blockDim.x)
            cp_async16(Vs + (e / D4) * LD + 4 * (e % D4), vb + (size_t)(t0 + e / D4) * D + 4 * (e % D4));
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        da_scores<D>(a, pos0, r0, R, t0, nk, qs, Ks, S, mrow, lrow, crow);
        cp_async_wait<0>();
        __syncthreads();
#pragma unroll
        for (int u = 0; u < PP; u++) {
            int e = threadIdx.x + u * DA_THREADS, pr = e % pairs, seg = e / pairs;
            if (seg >= ks) continue;
            int r = pr / D4, d4 = pr % D4;
            const float *p = S + r * a.tk;
            float c = crow[r];
            float4 o = acc[u];
            o.x *= c, o.y *= c, o.z *= c, o.w *= c;
            for (int jj = seg; jj < nk; jj += ks) {
                float w = p[jj];
                float4 x = ((const float4 *)(Vs + jj * LD))[d4];
                o.x += w * x.x, o.y += w * x.y, o.z += w * x.z, o.w += w * x.w;
            }
            acc[u] = o;
        }
    }
    if (ks > 1) { /* sum the key segments: red[seg][pair] */
        __syncthreads();
        int e = threadIdx.x, seg = e / pairs;
        if (seg < ks) red[e] = acc[0];
        __syncthreads();
        if (e < pairs)
            for (int s = 1; s < ks; s++) {
                float4 x = red[s * pairs + e];
                acc[0].x += x.x, acc[0].y += x.y, acc[0].z += x.z, acc[0].w += x.w;
            }
    }
    size_t ss = (size_t)DA_RB * (D + 2);
    float *gp = a.part + (size_t)g * (a.nb + (a.nb + DA_G1 - 1) / DA_G1) * ss;
#pragma unroll
    for (int u = 0; u < PP; u++) {
        int e = threadIdx.x + u * DA_THREADS;
        if (e >= pairs) continue;
        int r = e / D4, d4 = e % D4;
        float4 o = acc[u];
        if (live == 1) { /* one span: this block is the whole answer */
            float il = 1.f / lrow[r];
            o.x *= il, o.y *= il, o.z *= il, o.w *= il;
            ((float4 *)(a.out + da_orow(a, kh, r0, r, D)))[d4] = o;
        } else ((float4 *)(gp + b * ss + r * D))[d4] = o;
    }
    if (live == 1) return;
    for (int r = threadIdx.x; r < R; r += blockDim.x) gp[b * ss + DA_RB * D + 2 * r] = mrow[r], gp[b * ss + DA_RB * D + 2 * r + 1] = lrow[r];
    /* first level: the last of the DA_G1 spans of run q merges them */
    int q = b / DA_G1, members = min(DA_G1, live - q * DA_G1), nq = (live + DA_G1 - 1) / DA_G1;
    unsigned *cnt = a.cnt + (size_t)g * DA_CSTRIDE;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        s_last = atomicAdd(cnt + q, 1u) == (unsigned)members - 1;
        if (s_last) cnt[q] = 0;
    }
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    float *l1 = gp + (size_t)a.nb * ss;
    da_merge<D>(a, gp + (size_t)q * DA_G1 * ss, members, ss, R, l1 + q * ss, nq == 1, kh, r0);
    if (nq == 1) return;
    /* second level: the last run merger merges the runs */
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        s_last = atomicAdd(cnt + DA_CSTRIDE - 1, 1u) == (unsigned)nq - 1;
        if (s_last) cnt[DA_CSTRIDE - 1] = 0;
    }
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    da_merge<D>(a, l1, nq, ss, R, NULL, 1, kh, r0);
}

template <int D>
__global__ void __launch_bounds__(DA_THREADS) k_attn_decode(da_args a) {
    da_body<D>(a, blockIdx.x, blockIdx.x, a.pos ? a.pos[0] : a.pos0);
}

/* Batched decode: rows row0.. of the wk_brow table, one query row each over its own caches
 * of layer l at its own position; gpr groups per row (Hk · nchunk). a.q/a.out are the
 * batch's (rows, H·D) buffers. */
template <int D>
__global__ void __launch_bounds__(DA_THREADS) k_attn_rows(da_args a, const wk_brow *rows, int row0, int l, int gpr) {
    int ri = row0 + blockIdx.x / gpr, Hk = a.H / a.grp;
    const wk_brow *w = rows + ri;
    int cap = w->cap, pos0 = w->pos;
    size_t lo = (size_t)l * Hk * cap * D;
    da_args r = a;
    r.q = a.q + (size_t)ri * a.H * D, r.out = a.out + (size_t)ri * a.H * D;
    r.k = w->kc + lo, r.v = w->vc + lo, r.cap = cap, r.n = 1, r.pos = NULL;
    da_body<D>(r, blockIdx.x % gpr, blockIdx.x, pos0);
}

/* Keys per staged tile for head size D (two tiles of K and V fit in about 70 KB). */
static int da_tile(int D) { return D <= 64 ? 128 : D <= 128 ? 64 : 32; }

static size_t da_smem(int D, int tk) {
    return sizeof(float) * ((size_t)2 * tk * (D + 4) + (size_t)DA_RB * D + (size_t)DA_RB * tk + 3 * DA_RB) +
           sizeof(float) * 4 * DA_THREADS;
}

/* Launches k_attn_decode<D> (dynamic shared memory above 48 KB allowed once per device). */
template <int D>
static void da_launch(wkc_backend *b, dim3 grid, size_t smem, const da_args &a) {
    static unsigned long long ready; /* devices the attribute was set on */
    if (b->device < 64 && !(__atomic_load_n(&ready, __ATOMIC_RELAXED) & (1ull << b->device))) {
        cudaFuncSetAttribute(k_attn_decode<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)da_smem(D, da_tile(D)));
        __atomic_fetch_or(&ready, 1ull << b->device, __ATOMIC_RELAXED);
    }
    k_attn_decode<D><<<grid, DA_THREADS, smem, b->st>>>(a);
}

/* Launches k_attn_rows<D> (the dynamic shared memory limit raised once per device). */
template <int D>
static void da_rows_launch(wkc_backend *b, dim3 grid, size_t smem, const da_args &a, const wk_brow *rows, int row0,
                           int l, int gpr) {
    static unsigned long long ready;
    if (b->device < 64 && !(__atomic_load_n(&ready, __ATOMIC_RELAXED) & (1ull << b->device))) {
        cudaFuncSetAttribute(k_attn_rows<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)da_smem(D, da_tile(D)));
        __atomic_fetch_or(&ready, 1ull << b->device, __ATOMIC_RELAXED);
    }
    k_attn_rows<D><<<grid, DA_THREADS, smem, b->st>>>(a, rows, row0, l, gpr);
}

/* The WKC_SCR_ATTN scratch: DA_CNT_BYTES of merge counters, then `bytes`. The counters are
 * zeroed whenever the buffer is new; a buffer that had to grow inside a graph capture (which
 * the scratch epoch then discards) is dropped again, so the direct run that follows makes
 * (and zeroes) its own. */
static unsigned *decode_scratch(wkc_backend *b, size_t bytes) {
    unsigned ep = b->scr_epoch;
    unsigned *cnt = (unsigned *)wkc_scratch(b, WKC_SCR_ATTN, DA_CNT_BYTES + bytes);
    if (!cnt || b->scr_epoch == ep) return cnt;
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    cudaStreamIsCapturing(b->st, &cs);
    if (cs == cudaStreamCaptureStatusNone) wkc_cuda_fail(b, cudaMemsetAsync(cnt, 0, DA_CNT_BYTES, b->st), "attention counters");
    else b->scr_cap[WKC_SCR_ATTN] = 0;
    return cnt;
}

/* The GQA decode kernel when it takes the shape (D in its list, 16-byte aligned tensors); 0 otherwise. */
static int attention_decode_gqa(wkc_backend *b, float *out, const float *q, const float *k, const float *v, int n,
                                int pos0, const int32_t *pos, int H, int Hk, int D, int cap, float scale) {
    if (D != 32 && D != 64 && D != 80 && D != 96 && D != 128 && D != 256) return 0;
    if (((uintptr_t)out | (uintptr_t)q | (uintptr_t)k | (uintptr_t)v) & 15) return 0;
    int grp = H / Hk, nchunk = (n * grp + DA_RB - 1) / DA_RB, groups = Hk * nchunk;
    if ((size_t)groups * DA_CSTRIDE * sizeof(unsigned) > DA_CNT_BYTES) return 0;
    static int nb_env = -1; /* WICK_DA_NB=k: k spans per group (for sweeps) */
    if (nb_env < 0) {
        const char *e = getenv("WICK_DA_NB");
        nb_env = e ? atoi(e) : 0;
    }
    int nb = nb_env > 0 ? nb_env : (2 * b->sms + groups - 1) / groups;
    nb = nb < 1 ? 1 : nb > DA_MAXNB ? DA_MAXNB : nb;
    int Lmax = pos ? cap : pos0 + n, tk = da_span(Lmax, nb, DA_MINSPAN);
    tk = tk < da_tile(D) ? tk : da_tile(D);
    size_t ss = (size_t)DA_RB * (D + 2);
    unsigned *cnt = decode_scratch(b, sizeof(float) * groups * (size_t)(nb + (nb + DA_G1 - 1) / DA_G1) * ss);
    if (!cnt) return 1;
    da_args a = {out, q, k, v, (float *)((char *)cnt + DA_CNT_BYTES), cnt, pos, pos0, n, H, grp, cap, nb, DA_MINSPAN,
                 tk, nchunk, scale};
    int L = pos0 + n, span = da_span(L, nb, DA_MINSPAN);
    dim3 grid(groups, pos ? nb : (L + span - 1) / span);
    size_t smem = da_smem(D, tk);
    switch (D) {
    case 32: da_launch<32>(b, grid, smem, a); break;
    case 64: da_launch<64>(b, grid, smem, a); break;
    case 80: da_launch<80>(b, grid, smem, a); break;
    case 96: da_launch<96>(b, grid, smem, a); break;
    case 128: da_launch<128>(b, grid, smem, a); break;
    default: da_launch<256>(b, grid, smem, a); break;
    }
    wkc_launched(b, "attention (decode)");
    return 1;
}

static void attention_decode(wkc_backend *b, float *out, const float *q, const float *k, const float *v, int n, int pos0,
                             const int32_t *pos, int H, int Hk, int D, int cap, float scale) {
    if (attention_decode_gqa(b, out, q, k, v, n, pos0, pos, H, Hk, D, cap, scale)) return;
    /* the general kernels: any D, any alignment */
    int nsplit = ((pos ? cap : pos0 + n) + SPLIT - 1) / SPLIT;
    size_t rows = (size_t)n * H;
    unsigned *cnt = decode_scratch(b, sizeof(float) * rows * nsplit * (D + 2));
    if (!cnt) return;
    float *part = (float *)((char *)cnt + DA_CNT_BYTES);
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
    else if (wkc_prefill_attention(b, out, q, k, v, n, pos0, H, Hk, D, cap, scale)) return; /* TF32 flash (fast) */
    else attention_prefill(b, out, q, k, v, n, pos0, H, Hk, D, cap, scale);
}

/* ------------------------------------------------------- batched decode */

static int rows_d_ok(int D) { return D == 16 || D == 32 || D == 64 || D == 80 || D == 96 || D == 128 || D == 256; }

int wkc_bshape_ok(wk_backend *be, int H, int Hk, int D) {
    (void)be;
    return rows_d_ok(D) && Hk > 0 && H % Hk == 0 && D % 2 == 0;
}

/* One launch per chunk of rows whose groups fit the merge counters; the spans cover each
 * row's own length (computed on the device), so a captured graph replays at any positions. */
void wkc_battention(wk_backend *be, float *out, const float *q, int n, const wk_brow *rows, int l, int H, int Hk, int D,
                    float scale) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    b->optag = n;
    if (!wkc_bshape_ok(be, H, Hk, D)) {
        if (!b->err) {
            b->err = WICK_EUNSUPPORTED;
            snprintf(b->errmsg, sizeof b->errmsg, "cuda:%d: batched attention: head_dim %d, %d/%d heads", b->device, D,
                     H, Hk);
        }
        return;
    }
    int grp = H / Hk, nchunk = (grp + DA_RB - 1) / DA_RB, gpr = Hk * nchunk;
    int per = (int)(DA_CNT_BYTES / (DA_CSTRIDE * sizeof(unsigned))) / gpr; /* rows per launch */
    per = per < 1 ? 1 : per > n ? n : per;
    int nb = (2 * b->sms + per * gpr - 1) / (per * gpr);
    nb = nb < 1 ? 1 : nb > DA_MAXNB ? DA_MAXNB : nb;
    int tk = da_tile(D);
    size_t ss = (size_t)DA_RB * (D + 2), smem = da_smem(D, tk);
    unsigned *cnt = decode_scratch(b, sizeof(float) * (size_t)per * gpr * (size_t)(nb + (nb + DA_G1 - 1) / DA_G1) * ss);
    if (!cnt) return;
    da_args a = {out, q, NULL, NULL, (float *)((char *)cnt + DA_CNT_BYTES), cnt, NULL, 0, 1, H, grp, 0, nb, DA_MINSPAN,
                 tk, nchunk, scale};
    for (int r0 = 0; r0 < n; r0 += per) {
        int k = n - r0 < per ? n - r0 : per;
        dim3 grid((unsigned)(k * gpr), (unsigned)nb);
        switch (D) {
        case 16: da_rows_launch<16>(b, grid, smem, a, rows, r0, l, gpr); break;
        case 32: da_rows_launch<32>(b, grid, smem, a, rows, r0, l, gpr); break;
        case 64: da_rows_launch<64>(b, grid, smem, a, rows, r0, l, gpr); break;
        case 80: da_rows_launch<80>(b, grid, smem, a, rows, r0, l, gpr); break;
        case 96: da_rows_launch<96>(b, grid, smem, a, rows, r0, l, gpr); break;
        case 128: da_rows_launch<128>(b, grid, smem, a, rows, r0, l, gpr); break;
        default: da_rows_launch<256>(b, grid, smem, a, rows, r0, l, gpr); break;
        }
        wkc_launched(b, "batched attention");
    }
}
