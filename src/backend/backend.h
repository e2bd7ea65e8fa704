/*
 * backend.h — the ops table. The decoder (src/model) is a fixed sequence of these
 * calls; a backend (cpu reference, cpu fast, cuda) provides them. Activations are
 * float32 row-major; weight matrices are [out,in] row-major in f32, bf16 or f16
 * (wk_mat). Pointers passed to ops are the backend's own memory (host memory for
 * the CPU backends, device memory for CUDA).
 *
 * Shape conventions: n = rows (tokens), C = hidden, H = heads, Hk = kv heads,
 * D = head_dim.
 */
#ifndef WK_BACKEND_H
#define WK_BACKEND_H
#include "wk.h"

/* A weight matrix W [rows=out, cols=in]. `q` is non-NULL for quantized formats
 * (GGUF) whose kernels live with the backend. */
typedef struct {
    const void *w;
    wick_dtype dt;
    int rows, cols;
    int qtype;          /* 0 = plain (dt), else a GGUF quant type handled by the backend */
    int fast_bf16;      /* 1: a bf16 W may multiply bf16-rounded x in multi-row products (backends may ignore) */
    const uint16_t *amx; /* fast_bf16 on a CPU with AMX: W packed by wk_gemm_amx_pack (gemm_bf16.h), else NULL */
} wk_mat;

/* The input row of a fused matvec (backend.h: matvec): x' = x, x / rms(x) * nw (nw set),
 * or silu(x) * up (up set); `in` elements. A/ra/t: an optional LoRA shrink in the same
 * launch. scale multiplies the product (not the bias). */
typedef struct wk_rowin {
    const float *x, *nw, *up;
    float eps, scale;
    int in;
    const float *A;   /* (ra, in) f32, or NULL */
    int ra;
    float *t;         /* (ra) */
    /* An optional expand of this launch's own shrink, added to every product row: y[o] +=
     * ps · Σ_j pB[o, j] · t[j], pB f32 (out, ra); needs A. pnblk > 0: pB is block-diagonal
     * (an adapter group's layout): rows in pnblk blocks of pbrows[i], block i nonzero only in
     * its own rank's pbcols[i] columns, which follow those of the blocks before it. NULL: none. */
    const float *pB;
    float ps;
    int pnblk, pbrows[3], pbcols[3];
    /* 1: W's rows are [gate | up] halves (out even) and y gets the out/2 values
     * silu(gate_o)·up_o of the whole rows (bias and expand included); acc must be 0. */
    int glu;
    /* Non-NULL: W is a [q | k | v] product of out = (H + 2·Hk)·D rows and the launch
     * also does rope_kv's work (no q/k norm): y gets q and k rotated (rotate-half) at
     * position pos[0] and v as is, and k, v are stored at that position of the caches;
     * acc must be 0 and glu unset. */
    const struct wk_rope_out *rope;
} wk_rowin;

typedef struct wk_rope_out {
    const int32_t *pos;    /* backend memory: pos[0] */
    const float *inv_freq; /* D/2 */
    float *kc, *vc;        /* this layer's caches (Hk, cap, D) */
    int H, Hk, D, cap;
} wk_rope_out;

/* A LoRA expand applied inside another op: rows += s · t·Bᵀ with B f32 (rows, ra). */
typedef struct wk_expand {
    const float *B, *t;
    int ra;
    float s;
} wk_expand;

/* ---- The batched decode step's per-row state (device backends; src/model/batch_device.c).
 * One adapter's LoRA for one projection group of one layer, the grouped layout (model.h:
 * wk_lora_group) in backend memory: A (ra, in) stacked, B (out, ra) with each pair's scale
 * folded in; when nblk > 0, B's output rows come in nblk blocks of brows[i] rows, block i
 * nonzero only in its own bcols[i] columns (which follow those of the blocks before it);
 * A16, B16: the same in bf16 (a bf16 model's adapters), else NULL. */
typedef struct wk_bent {
    const float *A, *B;
    const void *A16, *B16;
    int ra, nblk;
    int brows[3], bcols[3];
} wk_bent;

/* Row i of a batched step, in backend memory: the row's KV caches (n_layers, Hk, cap, D), its
 * capacity, the position its new id takes, its adapter: ent = (n_layers * groups) entries
 * (NULL: the base) at scale sc, and orow, the row's place in the caller's order (rows may run
 * grouped by adapter). */
typedef struct wk_brow {
    float *kc, *vc;
    const wk_bent *ent;
    int cap, pos;
    float sc;
    int orow;
} wk_brow;

#define WK_BLORA_MAX_R 512 /* most shrink components (ra) of one row's group in the batched ops */

/* A projection group's per-row LoRA in a batched op: row i uses rows[i].ent[g]; t (n, R) holds
 * the shrink x[i]·Aᵀ (R >= every row's ra), e (n, out) its expand (zeros on rows of the base);
 * h16: read the entries' bf16 copies where they have them (several rows: half the bytes). */
typedef struct wk_blora {
    const wk_brow *rows;
    int g;
    float *t;
    int R;
    float *e;
    int h16;
} wk_blora;

typedef struct wk_backend wk_backend;
struct wk_backend {
    const char *name;
    int device_memory;  /* 1: buffers live on a device (host pointers must go through upload/download) */
    /* Returns and clears the first asynchronous error since the last call (NULL op: never fails). */
    wick_status (*check)(wk_backend *be);
    /* memory */
    void *(*alloc)(wk_backend *be, size_t bytes);               /* NULL + error on failure */
    void (*free)(wk_backend *be, void *p);
    void (*upload)(wk_backend *be, void *dst, const void *src, size_t bytes);
    void (*download)(wk_backend *be, void *dst, const void *src, size_t bytes);
    void (*sync)(wk_backend *be);

    /* y[n,out] (=|+=) x[n,in] · Wᵀ (+ bias[out]); accumulate adds into y. */
    void (*matmul)(wk_backend *be, float *y, const float *x, const wk_mat *W, const float *bias, int n, int accumulate);
    /* y[n,k] (=|+=) s * x[n,m] · B[k,m]ᵀ with f32 B (LoRA shrink/expand and backward helpers). */
    void (*matmul_f32)(wk_backend *be, float *y, const float *x, const float *B, int n, int m, int k, float s, int accumulate);
    /* y[n,dim] = x / rms(x) * w ; w may be NULL (no weight). */
    void (*rmsnorm)(wk_backend *be, float *y, const float *x, const float *w, int n, int dim, float eps);
    /* In-place rotary embedding (HF rotate_half layout) on x[n, nh, D] at positions pos[n]. */
    void (*rope)(wk_backend *be, float *x, const int32_t *pos, int n, int nh, int D, const float *inv_freq);
    /* Causal attention of q[n,H,D] (rows at positions pos0..pos0+n-1) over the cache
     * k,v [Hk, cap, D] holding positions 0..pos0+n-1; out[n,H,D]. scale = 1/sqrt(D).
     * pos: NULL, or backend memory holding pos0..pos0+n-1, which a backend may read
     * instead of pos0 (a captured graph then replays at any position).
     */
    void (*attention)(wk_backend *be, float *out, const float *q, const float *k, const float *v, int n, int pos0,
                      const int32_t *pos, int H, int Hk, int D, int cap, float scale);
    /* out[i] = silu(gate[i]) * up[i] for n elements. */
    void (*swiglu)(wk_backend *be, float *out, const float *gate, const float *up, size_t n);
    /* y[i] += x[i]. */
    void (*add)(wk_backend *be, float *y, const float *x, size_t n);
    /* out[n,C] = rows ids[n] of the embedding table E [V,C]. */
    void (*embed)(wk_backend *be, float *out, const wk_mat *E, const int32_t *ids, int n);
    /* Writes k_new,v_new [n,Hk,D] into the cache [Hk,cap,D] at positions pos0.. (pos: as for attention). */
    void (*kv_store)(wk_backend *be, float *kc, float *vc, const float *k_new, const float *v_new, int n, int pos0,
                     const int32_t *pos, int Hk, int D, int cap);

    /* Encoder ops (BERT, src/model/bert*.c). */
    /* y[n,dim] = LayerNorm((x + xb) + r) * w + b (biased variance, as torch); xb [dim] (a bias the
     * product x left out) and r may be NULL; y may equal x or r. */
    void (*layernorm)(wk_backend *be, float *y, const float *x, const float *xb, const float *r, const float *w,
                      const float *b, int n, int dim, float eps);
    /* y[i] = 0.5 u (1 + erf(u / sqrt 2)) (HF "gelu") with u = x[i] (+ xb[i % dim]) for n elements;
     * xb may be NULL (dim is then ignored); y may equal x. */
    void (*gelu)(wk_backend *be, float *y, const float *x, const float *xb, size_t n, int dim);
    /* Bidirectional attention of B sequences of T rows: q, k, v are [B*T, ld] and out [B*T, ldo] with
     * head h in columns h*D..h*D+D-1 (a fused q|k|v buffer: ld = 3*H*D, ldo = H*D); key j of sequence b counts only when mask[b*T+j] != 0 (mask NULL: all;
     * every sequence needs one real key). scale = 1/sqrt(D). bias: NULL, or [3*H*D]
     * biases of q | k | v (a fused product's) added as they are read. */
    void (*attention_bidir)(wk_backend *be, float *out, const float *q, const float *k, const float *v,
                            const float *bias, const int32_t *mask, int B, int T, int H, int D, int ld, int ldo, float scale);
    /* Pooling (optional; NULL on the CPU backends, whose callers pool on the host with wick_pool):
     * out[rows[b], :] = the pooled h[b*T .. b*T+T-1, C] over the tokens with mask != 0 for b < B;
     * mode 1 mean, 2 first token, 3 max (wick_pooling); normalize != 0: unit L2 norm. */
    void (*pool)(wk_backend *be, float *out, const float *h, const int32_t *mask, const int32_t *rows, int B, int T,
                 int C, int mode, int normalize);

    /* Segmented LoRA (rows grouped by adapter, Punica/S-LoRA style): for each segment g,
     * rows seg[g]..seg[g+1]-1 get y[rows] += scale[g] * (x[rows]·A[g]ᵀ)·B[g]ᵀ, with A[g] (r[g], in)
     * and B[g] (out, r[g]) f32 in backend memory. seg, A, B, r, scale are host arrays of nseg
     * (seg: nseg+1) entries; tmp is backend scratch of n * max(r) floats. */
    void (*lora_seg)(wk_backend *be, float *y, const float *x, int n, int in, int out, int nseg, const int *seg,
                     const float *const *A, const float *const *B, const int *r, const float *scale, float *tmp);
    /* The same where segment g also has bf16 copies A16[g] of its A, (r, in) as A, and B16[g] of
     * its B in tiles of 16 outputs, each tile rank by rank: B[o, j] at (o - o%16)·r + j·w + o%16,
     * w = min(16, out - (o - o%16)) (wk_lora_tiles16) (NULL: none), read instead of the f32 ones
     * where the backend finds that pays (optional: NULL). */
    void (*lora_seg16)(wk_backend *be, float *y, const float *x, int n, int in, int out, int nseg, const int *seg,
                       const float *const *A, const float *const *B, const uint16_t *const *A16,
                       const uint16_t *const *B16, const int *r, const float *scale, float *tmp);

    /* Decode-step fusions (optional; NULL on backends without them; the decoder then runs
     * the plain ops). One row each; every pointer is backend memory.
     * matvec: y[out] (=|+=) scale · x'·Wᵀ + bias, x' built from the input row on the fly
     * (wk_rowin); when in->A is set the same launch also computes the LoRA shrink
     * t[ra] = x'·Aᵀ (A f32 (ra, in)), unscaled; in->glu: the gated product (wk_rowin). */
    void (*matvec)(wk_backend *be, float *y, const struct wk_rowin *in, const wk_mat *W, const float *bias, int acc);
    /* The greedy pick over one row x[n] of logits (optional): out[0] = max, out[1] =
     * Σ exp(x - max) over the finite entries, out[2] = the first index holding the max as an
     * int32 bit pattern (-1 when every entry is -inf or NaN). out is backend memory. */
    void (*pick)(wk_backend *be, float *out, const float *x, int n);
    /* q[H,D], k[Hk,D], v[Hk,D] of one row at position pos[0]: optional LoRA expand first
     * ([q|k|v] += e->s · e->t·e->Bᵀ, B f32 (H*D + 2*Hk*D, e->ra); e may be NULL), optional
     * per-head RMSNorm (qn/kn, Qwen3), RoPE of q and k (q rotated in place), then k and v
     * stored into the caches [Hk, cap, D] at pos[0]. */
    void (*rope_kv)(wk_backend *be, float *q, float *k, float *v, float *kc, float *vc, const int32_t *pos, int H,
                    int Hk, int D, int cap, const float *inv_freq, const float *qn, const float *kn, float eps,
                    const struct wk_expand *e);

    /* Replayable graphs (optional; NULL on backends without them). graph_capture records
     * the ops fn issues and runs them once; NULL when capture failed and nothing ran (the
     * caller runs fn directly). graph_replay runs a graph again: 0, or -1 when it is stale
     * (backend scratch moved; free it and capture again). Ops inside must take varying
     * scalars from backend memory (positions: the pos arguments). */
    void *(*graph_capture)(wk_backend *be, void (*fn)(void *ctx), void *ctx);
    int (*graph_replay)(wk_backend *be, void *graph);
    void (*graph_free)(wk_backend *be, void *graph);

    /* Batched decode ops (optional, all or none; NULL: batch.c runs the per-row plain ops).
     * n rows, each its own sequence (rows: the wk_brow table, backend memory); a LoRA (lo) may
     * be NULL. Each row's expand adds rows[i].sc · Σ B[o, its block's columns]·t[i, ...].
     * bshape_ok: 1 when the ops take these attention shapes. */
    int (*bshape_ok)(wk_backend *be, int H, int Hk, int D);
    /* y[n,out] (=|+=) x·Wᵀ + bias, and with lo also lo->t[i, :ra] = x[i]·Aᵀ for each row with an
     * entry lo->g of rank ra > 0 (the shrink) and lo->e (n, out) = the rows' expands (both may run
     * beside the product: the op that consumes y adds lo->e). */
    void (*bmatmul)(wk_backend *be, float *y, const float *x, const wk_mat *W, const float *bias, int n, int acc,
                    const wk_blora *lo);
    /* Each row of qkv (n, (H + 2Hk)·D), plus lo's expand: per-head RMSNorm (qn/kn, NULL: none),
     * RoPE of q and k at the row's pos; q into q (n, H·D), k and v into the row's caches of layer l. */
    void (*brope_kv)(wk_backend *be, float *q, const float *qkv, int n, const wk_brow *rows, int l, int H, int Hk,
                     int D, const float *inv_freq, const float *qn, const float *kn, float eps, const wk_blora *lo);
    /* out (n, H·D) = causal attention of each row's q over its caches of layer l, positions 0..pos. */
    void (*battention)(wk_backend *be, float *out, const float *q, int n, const wk_brow *rows, int l, int H, int Hk,
                       int D, float scale);
    /* x (n, dim) += lo's expand (written back), then y = x / rms(x) * w; with perm, row i of y is
     * row perm[i].orow (the caller's order), else row i. */
    void (*brmsnorm)(wk_backend *be, float *y, float *x, const float *w, int n, int dim, float eps, const wk_blora *lo,
                     const wk_brow *perm);
    /* out (n, F) = silu(g)·u, [g | u] = gu (n, 2F) plus lo's expand. */
    void (*bswiglu)(wk_backend *be, float *out, const float *gu, int n, int F, const wk_blora *lo);
};

/* The CPU backends: `ref` is naive and readable (the oracle for tests), `cpu` the fast one. */
wk_backend *wk_backend_cpu_ref(void);
wk_backend *wk_backend_cpu(void);

/* dst (out·r bf16) = B (out, r) f32 rounded to bf16 in lora_seg16's layout of B16 (tiles of 16
 * outputs, rank by rank). */
void wk_lora_tiles16(uint16_t *dst, const float *B, int out, int r);

/* lora_seg for any backend: two matmul_f32 calls per segment. */
void wk_lora_seg_generic(wk_backend *be, float *y, const float *x, int n, int in, int out, int nseg, const int *seg,
                         const float *const *A, const float *const *B, const int *r, const float *scale, float *tmp);
#endif
