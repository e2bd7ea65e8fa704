/*
 * cuda_internal.cuh — state shared by the CUDA backend's translation units:
 * the backend object (stream, cuBLAS handle, caching allocator, scratch) and
 * the error-recording helpers. Not part of any public interface.
 */
#ifndef WK_CUDA_INTERNAL_CUH
#define WK_CUDA_INTERNAL_CUH
extern "C" {
#include "backend/cuda/cuda_backend.h"
}
#include <cublas_v2.h>
#include <cuda_runtime.h>

/* One device allocation the allocator tracks (in use or cached for reuse). */
struct wkc_block {
    void *p;
    size_t size;
    int used;
};

/* Grow-only device scratch slots owned by the backend (ops on one stream may reuse them). */
#define WKC_TICKET_WORDS 2048
#define WKC_PICK_CNT 16
#define WKC_PICK_PART 32
#define WKC_PICK_BLOCKS 64
#define WKC_MV_SLOT 1024 /* k_mv's two shrink slots of WKC_MV_TMAX words each (cuda_ops.cu) */
#define WKC_MV_TMAX 512
#define WKC_MV_EMPTY 0xffffffffu /* a slot word not yet written (no arithmetic result has these bits) */
enum { WKC_SCR_ACT16, WKC_SCR_ATTN, WKC_SCR_SCORES, WKC_SCR_PTRS, WKC_SCR_ROW, WKC_SCR_LT, WKC_SCR_GLU, WKC_SCR_COUNT };

struct wkc_backend {
    wk_backend be;            /* first: ops receive &be */
    int device;
    cudaStream_t st;
    cublasHandle_t blas;
    wkc_block *blocks;        /* (n_blocks) every allocation made through the allocator */
    int n_blocks, cap_blocks;
    size_t in_use, cached;
    void *scr[WKC_SCR_COUNT];
    size_t scr_cap[WKC_SCR_COUNT];
    unsigned scr_epoch;       /* bumped whenever a scratch buffer moves (captured graphs go stale) */
    void *pinned;             /* (pinned_cap) page-locked staging for large downloads */
    size_t pinned_cap;
    int tf32;                 /* prefill attention GEMMs on TF32 tensor cores (the _fast instance) */
    const float *cast_x;      /* the activations last rounded to 16 bits into WKC_SCR_ACT16 ... */
    size_t cast_n;            /* ... their count, and type; cast_x is cleared by every other op */
    int cast_dt;
    int act16;                /* 16-bit type of the last multi-row GEMM's weights (0: none or f32): prefill
                               * ops then write the 16-bit copy of their output themselves (cuda_prefill.cu) */
    int no_graphs;            /* set after a capture failed: ops run directly from then on */
    unsigned char *up_ring;   /* page-locked staging for small uploads (WKC_UP_SLOTS slots) ... */
    cudaEvent_t up_ev[16];    /* ... each slot's copy, waited for before the slot is reused */
    int up_next;
    struct wkc_lt *lt;        /* cuBLASLt handle and plans of the bias-epilogue GEMMs (cuda_prefill.cu) */
    struct wkc_optime *opt;   /* non-NULL while wk_cuda_optime is recording (op timing) */
    int optag;                /* a number the next launch is recorded with (matvec: its rows) */
    unsigned *ticket;         /* (WKC_TICKET_WORDS) device words: [WKC_PICK_CNT] pick's counter (each launch
                               * leaves it at 0), pick's partials from WKC_PICK_PART; from WKC_MV_SLOT the
                               * matvec's shrink slots (WKC_MV_EMPTY until written) */
    int mv_slot;              /* the slot the next matvec with an in-launch expand uses (they alternate) */
    int capturing, mv_cap;    /* a graph is being captured; its capture has emptied the slots */
    cudaStream_t side;        /* batched steps: the LoRA shrink beside the product (cuda_batch.cu), or NULL */
    cudaEvent_t side_fork, side_join;
    int side_state;           /* 0 not tried, 1 ready, -1 unavailable */
    int bpdl;                 /* the batched expand starts as its shrink's programmatic dependent (1) */
    int bexp_rb;              /* rows of one block of the batched expand over more than 4 rows (0: by shape) */
    int sms;                  /* the device's multiprocessors */
    wick_status err;          /* first recorded error since the last check() */
    char errmsg[512];
};

static inline wkc_backend *wkc(wk_backend *be) { return (wkc_backend *)be; }

/* Warp reductions shared by the kernels: every lane gets the sum / max of v over the warp. */
__device__ __forceinline__ float wkc_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float wkc_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* A row of dim floats held as V float4 per thread (nv = dim/4 of them, thread t holds
 * t, t + blockDim.x, ...): loads it into r and returns 1/rms(row) (the block's sum of
 * squares through red, 32 floats of shared memory). Whole block. */
template <int V>
__device__ __forceinline__ float wkc_rms_regs(const float4 *xi, int nv, int dim, float eps, float4 r[V], float *red) {
    float ss = 0.f;
#pragma unroll
    for (int u = 0; u < V; u++) {
        int j = threadIdx.x + u * blockDim.x;
        if (j < nv) {
            r[u] = xi[j];
            ss += r[u].x * r[u].x + r[u].y * r[u].y + r[u].z * r[u].z + r[u].w * r[u].w;
        }
    }
    ss = wkc_warp_sum(ss);
    int wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    if ((threadIdx.x & 31) == 0) red[wid] = ss;
    __syncthreads();
    float t = 0.f;
    for (int i = 0; i < nw; i++) t += red[i];
    return 1.f / sqrtf(t / (float)dim + eps);
}

/* Empties k_mv's two shrink slots (every word WKC_MV_EMPTY), on the backend's stream (cuda_ops.cu). */
void wkc_mv_empty_slots(wkc_backend *b);
/* Records a CUDA failure (first one wins); returns 1 when e is an error. */
int wkc_cuda_fail(wkc_backend *b, cudaError_t e, const char *what);
/* Records a cuBLAS failure; returns 1 when s is an error. */
int wkc_blas_fail(wkc_backend *b, cublasStatus_t s, const char *what);
/* Checks the last launch (and, while op timing records, marks its end). */
void wkc_launched(wkc_backend *b, const char *kernel);
/* Makes the backend's device current for this thread; every op calls it first (it also
 * forgets the cached 16-bit activations, which any op but a matmul may overwrite). */
void wkc_use(wkc_backend *b);
/* A scratch buffer of at least `bytes` in slot `slot` (NULL + recorded error on failure). */
void *wkc_scratch(wkc_backend *b, int slot, size_t bytes);
/* Blocks for a grid-stride launch over n elements with 256 threads. */
static inline int wkc_blocks(size_t n) {
    size_t b = (n + 255) / 256;
    return (int)(b < 1 ? 1 : b > 65535 ? 65535 : b);
}

/* Ops implemented in cuda_ops.cu, cuda_attention.cu and cuda_enc.cu. */
void wkc_matmul(wk_backend *be, float *y, const float *x, const wk_mat *W, const float *bias, int n, int acc);
void wkc_matmul_f32(wk_backend *be, float *y, const float *x, const float *B, int n, int m, int k, float s, int acc);
void wkc_rmsnorm(wk_backend *be, float *y, const float *x, const float *w, int n, int dim, float eps);
void wkc_rope(wk_backend *be, float *x, const int32_t *pos, int n, int nh, int D, const float *inv_freq);
void wkc_swiglu(wk_backend *be, float *out, const float *gate, const float *up, size_t n);
void wkc_pick(wk_backend *be, float *out, const float *x, int n);
void wkc_add(wk_backend *be, float *y, const float *x, size_t n);
void wkc_embed(wk_backend *be, float *out, const wk_mat *E, const int32_t *ids, int n);
void wkc_kv_store(wk_backend *be, float *kc, float *vc, const float *k_new, const float *v_new, int n, int pos0,
                  const int32_t *pos, int Hk, int D, int cap);
void wkc_matvec(wk_backend *be, float *y, const wk_rowin *in, const wk_mat *W, const float *bias, int acc);
void wkc_rope_kv(wk_backend *be, float *q, float *k, float *v, float *kc, float *vc, const int32_t *pos, int H, int Hk,
                 int D, int cap, const float *inv_freq, const float *qn, const float *kn, float eps, const wk_expand *e);
void wkc_lora_seg(wk_backend *be, float *y, const float *x, int n, int in, int out, int nseg, const int *seg,
                  const float *const *A, const float *const *B, const int *r, const float *scale, float *tmp);
void wkc_attention(wk_backend *be, float *out, const float *q, const float *k, const float *v, int n, int pos0,
                   const int32_t *pos, int H, int Hk, int D, int cap, float scale);
/* Batched decode ops (cuda_batch.cu; battention in cuda_attention.cu). */
int wkc_bshape_ok(wk_backend *be, int H, int Hk, int D);
void wkc_bmatmul(wk_backend *be, float *y, const float *x, const wk_mat *W, const float *bias, int n, int acc,
                 const wk_blora *lo);
void wkc_brope_kv(wk_backend *be, float *q, const float *qkv, int n, const wk_brow *rows, int l, int H, int Hk, int D,
                  const float *inv_freq, const float *qn, const float *kn, float eps, const wk_blora *lo);
void wkc_battention(wk_backend *be, float *out, const float *q, int n, const wk_brow *rows, int l, int H, int Hk, int D,
                    float scale);
void wkc_brmsnorm(wk_backend *be, float *y, float *x, const float *w, int n, int dim, float eps, const wk_blora *lo,
                  const wk_brow *perm);
void wkc_bswiglu(wk_backend *be, float *out, const float *gu, int n, int F, const wk_blora *lo);
/* Prefill kernels (cuda_prefill.cu); each returns 1 when it took the op, 0 (nothing
 * launched) when the caller's general kernel must run. */
int wkc_prefill_attention(wkc_backend *b, float *out, const float *q, const float *k, const float *v, int n, int pos0,
                          int H, int Hk, int D, int cap, float scale);
int wkc_rmsnorm16(wkc_backend *b, float *y, const float *x, const float *w, int n, int dim, float eps);
int wkc_swiglu16(wkc_backend *b, float *out, const float *gate, const float *up, size_t n);
/* y[n,out] (=|+=) xh·Wᵀ + bias for 16-bit W and xh (the rounded activations) in one cuBLASLt call
 * with a bias epilogue (fast instance only). */
int wkc_gemm_bias(wkc_backend *b, float *y, const void *xh, const wk_mat *W, const float *bias, int n, int acc);
/* Encoder ops (cuda_enc.cu). */
void wkc_layernorm(wk_backend *be, float *y, const float *x, const float *xb, const float *r, const float *w,
                   const float *b, int n, int dim, float eps);
void wkc_gelu(wk_backend *be, float *y, const float *x, const float *xb, size_t n, int dim);
void wkc_attention_bidir(wk_backend *be, float *out, const float *q, const float *k, const float *v, const float *bias,
                         const int32_t *mask, int B, int T, int H, int D, int ld, int ldo, float scale);
void wkc_pool(wk_backend *be, float *out, const float *h, const int32_t *mask, const int32_t *rows, int B, int T, int C,
              int mode, int normalize);
#endif
