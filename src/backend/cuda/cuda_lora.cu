/*
 * cuda_lora.cu — the segmented LoRA op (backend.h: lora_seg) in two launches,
 * Punica/S-LoRA SGMV style: rows come grouped by adapter into segments, cut into
 * tiles of up to LORA_TILE rows of one segment; one launch computes the shrink
 * tmp[rows, r] = x[rows]·Aᵀ for every tile of every segment, one launch the
 * expand y[rows] += s · tmp[rows]·Bᵀ. The per-segment pointers, ranks, scales and
 * the tile list travel by value as a kernel parameter (so a captured graph keeps
 * them), and everything stays fp32. Beyond LORA_FUSED_MAX_ROWS rows (prefill) or
 * the descriptor's capacity (segments, tiles, rank) the op takes the generic
 * per-segment cuBLAS path.
 */
#include "backend/cuda/cuda_internal.cuh"

#include <string.h>

#define LORA_MAX_SEG 32
#define LORA_MAX_TILES 128
#define LORA_TILE 8
#define LORA_MAX_R 128
#define LORA_FUSED_MAX_ROWS 64 /* more rows (prefill): cuBLAS sgemm per segment is faster */
#define SHRINK_WARPS 4 /* warps per shrink block; each computes one rank component for a tile */

/* Everything one lora_seg call needs on the device, passed by value. */
struct lora_desc {
    const float *A[LORA_MAX_SEG]; /* (r[g], in) */
    const float *B[LORA_MAX_SEG]; /* (out, r[g]) */
    int r[LORA_MAX_SEG];
    float s[LORA_MAX_SEG];
    short tg[LORA_MAX_TILES];    /* tile -> segment */
    short tn[LORA_MAX_TILES];    /* rows in the tile (1..LORA_TILE) */
    int trow[LORA_MAX_TILES];    /* first row of the tile */
    int R;                       /* row stride of tmp (max rank) */
};


/* tmp[row, j] = x[row]·A[g][j] for the tile's rows; warp w of block (t, yb) takes j = yb*SHRINK_WARPS + w.
 * vec: in % 4 == 0 and x, A 16-byte aligned. */
__global__ void k_lora_shrink(lora_desc d, float *tmp, const float *x, int in, int vec) {
    int t = blockIdx.x, g = d.tg[t], rows = d.tn[t], row0 = d.trow[t];
    int j = blockIdx.y * SHRINK_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (j >= d.r[g]) return;
    const float *a = d.A[g] + (size_t)j * in;
    const float *xr = x + (size_t)row0 * in;
    float acc[LORA_TILE];
#pragma unroll
    for (int i = 0; i < LORA_TILE; i++) acc[i] = 0.f;
    if (vec) {
        for (int k = lane * 4; k < in; k += 128) {
            float4 w = __ldg((const float4 *)(a + k));
#pragma unroll
            for (int i = 0; i < LORA_TILE; i++) {
                if (i >= rows) break;
                float4 v = *(const float4 *)(xr + (size_t)i * in + k);
                acc[i] += w.x * v.x + w.y * v.y + w.z * v.z + w.w * v.w;
            }
        }
    } else {
        for (int k = lane; k < in; k += 32) {
            float w = a[k];
#pragma unroll
            for (int i = 0; i < LORA_TILE; i++)
                if (i < rows) acc[i] += w * xr[(size_t)i * in + k];
        }
    }
#pragma unroll
    for (int i = 0; i < LORA_TILE; i++) {
        float v = wkc_warp_sum(acc[i]);
        if (lane == 0 && i < rows) tmp[(size_t)(row0 + i) * d.R + j] = v;
    }
}

/* y[row, o] += s[g] · tmp[row, :r]·B[g][o, :r]; block (t, ob) covers outputs ob*blockDim.. */
__global__ void k_lora_expand(lora_desc d, float *y, const float *tmp, int out) {
    extern __shared__ float st[]; /* (LORA_TILE, r) */
    int t = blockIdx.x, g = d.tg[t], rows = d.tn[t], row0 = d.trow[t], r = d.r[g];
    for (int e = threadIdx.x; e < rows * r; e += blockDim.x) st[e] = tmp[(size_t)(row0 + e / r) * d.R + e % r];
    __syncthreads();
    int o = blockIdx.y * blockDim.x + threadIdx.x;
    if (o >= out) return;
    const float *b = d.B[g] + (size_t)o * r;
    float acc[LORA_TILE];
#pragma unroll
    for (int i = 0; i < LORA_TILE; i++) acc[i] = 0.f;
    for (int j = 0; j < r; j++) {
        float w = __ldg(b + j);
#pragma unroll
        for (int i = 0; i < LORA_TILE; i++)
            if (i < rows) acc[i] += w * st[i * r + j];
    }
    float s = d.s[g];
#pragma unroll
    for (int i = 0; i < LORA_TILE; i++)
        if (i < rows) y[(size_t)(row0 + i) * out + o] += s * acc[i];
}

/* Fills d's segment table and tiles; 0 when the call does not fit the descriptor. */
static int describe(lora_desc *d, int nseg, const int *seg, const float *const *A, const float *const *B, const int *r,
                    const float *scale, int *ntiles) {
    int nt = 0;
    d->R = 0;
    if (nseg > LORA_MAX_SEG) return 0;
    for (int g = 0; g < nseg; g++) {
        d->A[g] = A[g], d->B[g] = B[g], d->r[g] = r[g], d->s[g] = scale[g];
        if (seg[g + 1] <= seg[g] || !A[g] || r[g] <= 0 || scale[g] == 0.f) continue;
        if (r[g] > LORA_MAX_R) return 0;
        d->R = r[g] > d->R ? r[g] : d->R;
        for (int row = seg[g]; row < seg[g + 1]; row += LORA_TILE) {
            if (nt == LORA_MAX_TILES) return 0;
            int rows = seg[g + 1] - row;
            d->tg[nt] = (short)g, d->trow[nt] = row, d->tn[nt] = (short)(rows < LORA_TILE ? rows : LORA_TILE);
            nt++;
        }
    }
    *ntiles = nt;
    return 1;
}

void wkc_lora_seg(wk_backend *be, float *y, const float *x, int n, int in, int out, int nseg, const int *seg,
                  const float *const *A, const float *const *B, const int *r, const float *scale, float *tmp) {
    wkc_backend *b = wkc(be);
    lora_desc d;
    memset(&d, 0, sizeof d);
    int nt = 0;
    if (n > LORA_FUSED_MAX_ROWS || !describe(&d, nseg, seg, A, B, r, scale, &nt)) {
        /* the generic path's tmp stride is each segment's own rank: same buffer bound */
        wk_lora_seg_generic(be, y, x, n, in, out, nseg, seg, A, B, r, scale, tmp);
        return;
    }
    if (nt == 0) return;
    wkc_use(b);
    int vec = in % 4 == 0 && (uintptr_t)x % 16 == 0;
    for (int g = 0; g < nseg && vec; g++) vec = !A[g] || (uintptr_t)A[g] % 16 == 0;
    k_lora_shrink<<<dim3((unsigned)nt, (unsigned)((d.R + SHRINK_WARPS - 1) / SHRINK_WARPS)), 32 * SHRINK_WARPS, 0,
                    b->st>>>(d, tmp, x, in, vec);
    wkc_launched(b, "lora shrink");
    int threads = out >= 256 ? 256 : 32 * ((out + 31) / 32);
    k_lora_expand<<<dim3((unsigned)nt, (unsigned)((out + threads - 1) / threads)), threads,
                    sizeof(float) * LORA_TILE * d.R, b->st>>>(d, y, tmp, out);
    wkc_launched(b, "lora expand");
}
