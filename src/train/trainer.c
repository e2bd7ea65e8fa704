/*
 * trainer.c — the LoRA trainer: a training forward through the decoder that
 * saves what the backward needs, the backward through every layer with the base
 * frozen (gradients reach only the LoRA A/B tensors), and the LM head fused
 * with cross-entropy in chunks of rows so [tokens × vocab] never exists at once.
 *
 * Per layer (same as decoder.c):  h = x + o(attn(rope(norm_qk(q)), rope(norm_qk(k)), v)) on rmsnorm(x)
 *                                 x' = h + down(silu(gate(n)) * up(n)) with n = rmsnorm(h)
 * Saved per layer (wk_lact); rmsnorm outputs and silu(g)*u are recomputed in the
 * backward. With opts.recompute only the layer inputs are kept and each layer's
 * forward runs again just before its backward.
 *
 * Data parallelism (replica.h): a micro-batch's sequences are cut into up to G
 * shards of about equal tokens; each shard runs on a replica (wk_rep: its own
 * workspace and share of the threads), rank 0 adding into the trainer's
 * gradients and ranks ≥ 1 writing their own, which are then summed in rank order.
 * With G = 1 the whole batch runs on the calling thread. Matmuls are cblas_sgemm
 * (OpenBLAS threading) or, in replicas, wk_sgemm_split over the replica's threads;
 * element-wise work is OpenMP (train_ops.c) on the replica's threads.
 */
#include "train/train.h"
#include "train/trainer_cuda.h"
#include "train/pgemm.h"
#include "train/replica.h"
#include "dist/comm.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define P WK_P_COUNT


/* One replica: the workspace for its shard of a micro-batch (one arena, regrown when larger). */
typedef struct {
    int rank, nth;           /* replica index; OpenMP threads of the current run */
    int split;               /* 1: matmuls through wk_sgemm_split on nth threads */
    wk_arena ar;
    int cap;
    wk_lact *la;             /* (L) saved activations (only .x when recompute) */
    wk_lact rc;              /* recompute scratch (full) */
    float *xL, *xn, *act, *dres, *dxn, *tC, *dA, *dG, *dU;
    float *dq, *dk, *dv, *datt, *dq2, *dk2, *db, *xd, *tmp;
    int32_t *rs, *pos, *rows, *tgt;
    float *hx, *hdx, *logits; /* head chunk (R, C), (R, C), (R, V) */
    int R;                   /* head rows per chunk */
    float *grad;             /* NULL: adds into the trainer's gradients; else its own (n_grad floats), overwritten */
    /* the shard of the current micro-batch */
    const int32_t *ids;      /* its first token */
    int n, nt, row0, backward;
    double loss, t_fwd, t_bwd;
    double tc[WK_TC_COUNT];  /* seconds per class of work (wk_trainer_breakdown) */
} wk_rep;

struct wick_trainer {
    wick_model *m;
    wick_adapter *a;         /* the adapter trained (wick_trainer_new), NULL for bare pairs */
    wick_train_opts o;
    const wk_train_ops *ops;
    const wk_lora **pairs;   /* (L*P) */
    wk_tparam *par;          /* (n_par) A then B of each adapted pair */
    int n_par, *par_of;      /* par_of[l*P+p] = index of its A in par, -1 */
    float *pbuf;             /* grads + moments, one allocation */
    size_t n_grad;           /* floats of the gradient part of pbuf */
    int steps, rmax;
    uint64_t micro;          /* micro-batches run (dropout stream) */
    wk_rep rep[WK_TRAIN_MAX_REPLICAS];
    wk_replicas *comm;       /* created on first use with more than one replica */
    int want_rep;            /* replicas asked for (0: automatic) */
    int split1;              /* with one replica: 1 = split matmuls, 0 = OpenBLAS threading, -1 = automatic */
    int can_split;           /* every base matrix is f32/bf16/f16 (no quantized blocks) */
    int R_cap;               /* > 0 bounds the head rows per chunk (tests) */
    double t_fwd, t_bwd, t_opt; /* seconds spent (bench/summary breakdown) */
    double tc[WK_TC_COUNT];     /* rank 0's seconds per class of work */
    wk_ctrainer *dev;        /* models on a device backend: every call goes to trainer_cuda.c */
};

wick_train_opts wick_train_opts_default(void) {
    wick_train_opts o = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.f,
                         .max_grad_norm = 1.f, .scheduler = WICK_SCHED_CONSTANT, .warmup_steps = 0, .total_steps = 1,
                         .label_smoothing = 0.f, .lora_dropout = 0.f, .recompute = 0, .seed = 42};
    return o;
}

/* ------------------------------------------------------------ workspace */

static void lact_carve(wk_lact *a, wk_arena *ar, const wick_trainer *t, size_t n, int full) {
    const wk_config *c = &t->m->c;
    size_t C = c->hidden, F = c->inter, HD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    memset(a, 0, sizeof *a);
    a->x = wk_arena_alloc(ar, sizeof(float) * n * C);
    if (!full) return;
    a->q = wk_arena_alloc(ar, sizeof(float) * n * HD);
    a->k = wk_arena_alloc(ar, sizeof(float) * n * KD);
    a->v = wk_arena_alloc(ar, sizeof(float) * n * KD);
    a->att = wk_arena_alloc(ar, sizeof(float) * n * HD);
    a->lse = wk_arena_alloc(ar, sizeof(float) * n * c->n_heads);
    a->h = wk_arena_alloc(ar, sizeof(float) * n * C);
    a->g = wk_arena_alloc(ar, sizeof(float) * n * F);
    a->u = wk_arena_alloc(ar, sizeof(float) * n * F);
    if (c->qk_norm) {
        a->qr = wk_arena_alloc(ar, sizeof(float) * n * HD);
        a->kr = wk_arena_alloc(ar, sizeof(float) * n * KD);
    }
}

/* LoRA rank-buffers of one layer: carved separately because ranks differ per pair. */
static void lact_carve_lora(wk_lact *a, wk_arena *ar, const wick_trainer *t, int l, size_t n) {
    for (int p = 0; p < P; p++) {
        const wk_lora *lp = t->pairs[(size_t)l * P + p];
        a->xa[p] = lp ? wk_arena_alloc(ar, sizeof(float) * n * lp->r) : NULL;
    }
}

/* Carves every workspace buffer of w for N tokens from ar (also used as a dry run to size it). */
static void ws_carve(const wick_trainer *t, wk_rep *w, wk_arena *ar, size_t N) {
    const wk_config *c = &t->m->c;
    size_t C = c->hidden, F = c->inter, HD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    size_t W = WK_MAX(C, F), V = c->vocab;
    int full = !t->o.recompute;
    for (int l = 0; l < c->n_layers; l++) {
        lact_carve(&w->la[l], ar, t, N, full);
        if (full) lact_carve_lora(&w->la[l], ar, t, l, N);
    }
    lact_carve(&w->rc, ar, t, N, 1);
    for (int p = 0; p < P; p++) w->rc.xa[p] = wk_arena_alloc(ar, sizeof(float) * N * WK_MAX(t->rmax, 1));
    float **bufC[] = {&w->xL, &w->xn, &w->dres, &w->dxn, &w->tC, NULL};
    for (int i = 0; bufC[i]; i++) *bufC[i] = wk_arena_alloc(ar, sizeof(float) * N * C);
    float **bufF[] = {&w->act, &w->dA, &w->dG, &w->dU, NULL};
    for (int i = 0; bufF[i]; i++) *bufF[i] = wk_arena_alloc(ar, sizeof(float) * N * F);
    w->dq = wk_arena_alloc(ar, sizeof(float) * N * HD);
    w->dq2 = wk_arena_alloc(ar, sizeof(float) * N * HD);
    w->datt = wk_arena_alloc(ar, sizeof(float) * N * HD);
    w->dk = wk_arena_alloc(ar, sizeof(float) * N * KD);
    w->dk2 = wk_arena_alloc(ar, sizeof(float) * N * KD);
    w->dv = wk_arena_alloc(ar, sizeof(float) * N * KD);
    w->db = wk_arena_alloc(ar, sizeof(float) * N * WK_MAX(t->rmax, 1));
    w->xd = wk_arena_alloc(ar, sizeof(float) * N * W);
    w->tmp = wk_arena_alloc(ar, sizeof(float) * N * W);
    w->R = (int)WK_MAX(1, WK_MIN(WK_MIN((size_t)512, N), ((size_t)48 << 20) / V)); /* 192 MB of logits at most */
    if (t->R_cap > 0) w->R = WK_MIN(w->R, t->R_cap);
    w->hx = wk_arena_alloc(ar, sizeof(float) * w->R * C);
    w->hdx = wk_arena_alloc(ar, sizeof(float) * w->R * C);
    w->logits = wk_arena_alloc(ar, sizeof(float) * w->R * V);
    w->rs = wk_arena_alloc(ar, sizeof(int32_t) * N);
    w->pos = wk_arena_alloc(ar, sizeof(int32_t) * N);
    w->rows = wk_arena_alloc(ar, sizeof(int32_t) * N);
    w->tgt = wk_arena_alloc(ar, sizeof(int32_t) * N);
}

/* (Re)sizes w's workspace for n tokens: a dry run measures it, then one allocation. */
static wick_status ws_reserve(const wick_trainer *t, wk_rep *w, int n) {
    if (n <= w->cap) return WICK_OK;
    if (!w->la && !(w->la = wk_calloc(sizeof(wk_lact) * t->m->c.n_layers, "trainer activations"))) return WICK_ENOMEM;
    wk_arena dry = {.base = (uint8_t *)64, .cap = SIZE_MAX / 2};
    ws_carve(t, w, &dry, (size_t)n);
    wk_arena_free(&w->ar);
    w->cap = 0;
    wick_status st = wk_arena_init(&w->ar, dry.used + 64, "training activations");
    if (st) return wk_err_prefix(st, "trainer: micro-batch shard of %d tokens", n);
    ws_carve(t, w, &w->ar, (size_t)n);
    w->cap = n;
    return WICK_OK;
}

static void rep_release(wk_rep *w) {
    wk_arena_free(&w->ar);
    wk_free(w->la);
    wk_free(w->grad);
    w->la = NULL, w->grad = NULL, w->cap = 0;
}

/* ------------------------------------------------------------ LoRA dropout */

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* dst = src * mask / keep with a mask that depends only on (key, element), so the
 * backward regenerates it; element i of the shard is element off + i of the batch.
 * dst may equal src. */
static void dropout(float *dst, const float *src, size_t cnt, size_t off, uint64_t key, float p) {
    float keep = 1.f - p, inv = 1.f / keep;
    uint32_t thr = (uint32_t)((double)p * 4294967296.0);
#pragma omp parallel for schedule(static) if (cnt > 65536)
    for (size_t i = 0; i < cnt; i++)
        dst[i] = (uint32_t)(mix64(key + (off + i) * 0x9e3779b97f4a7c15ull) >> 32) < thr ? 0.f : src[i] * inv;
}

static uint64_t drop_key(const wick_trainer *t, int l, int p) {
    return mix64(t->o.seed ^ mix64(t->micro * 131 + (uint64_t)l * P + (uint64_t)p + 1));
}

/* ------------------------------------------------------------ linear layers */

/* C = alpha·op(A)·op(B) + beta·C on w's threads (split) or through OpenBLAS's threading. */
static void gemm(const wk_rep *w, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (w->split) wk_sgemm_split(w->nth, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Rows per tile when a 16-bit W is widened into w->tmp ((cap, max(C,F)) floats). */
static int tile_rows(const wick_trainer *t, const wk_rep *w, int rows, int in) {
    size_t W_ = (size_t)WK_MAX(t->m->c.hidden, t->m->c.inter);
    return (int)WK_MAX(1, WK_MIN((size_t)rows, (size_t)w->cap * W_ / (size_t)in));
}

/* y[n,out] = x·Wᵀ + b for a frozen W (split mode: f32 directly, bf16/f16 widened a tile at a time). */
static void base_fwd(const wick_trainer *t, wk_rep *w, float *y, const float *x, const wk_mat *W, const float *bias,
                     int n) {
    wk_backend *be = t->m->be;
    if (!w->split) {
        be->matmul(be, y, x, W, bias, n, 0);
        return;
    }
    int out = W->rows, in = W->cols;
    if (W->dt == WICK_DT_F32) gemm(w, CblasNoTrans, CblasTrans, n, out, in, 1.f, x, in, W->w, in, 0.f, y, out);
    else
        for (int o0 = 0, tile = tile_rows(t, w, out, in); o0 < out; o0 += tile) {
            int rows = WK_MIN(tile, out - o0);
            size_t cnt = (size_t)rows * in, s0 = (size_t)o0 * in;
            const uint16_t *src = W->w;
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < cnt; i++)
                w->tmp[i] = W->dt == WICK_DT_BF16 ? wk_bf16_to_f32(src[s0 + i]) : wk_f16_to_f32(src[s0 + i]);
            gemm(w, CblasNoTrans, CblasTrans, n, rows, in, 1.f, x, in, w->tmp, in, 0.f, y + o0, out);
        }
    if (!bias) return;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) y[(size_t)i * out + o] += bias[o];
}

/* y[n,out] = x·Wᵀ + b + s·(drop(x)·Aᵀ)·Bᵀ; xa[n,r] keeps drop(x)·Aᵀ. */
static void lin_fwd(wick_trainer *t, wk_rep *w, float *y, const float *x, int l, wk_proj p, int n, float *xa) {
    const wk_layer *L = &t->m->layers[l];
    double t0 = wk_now();
    base_fwd(t, w, y, x, &L->p[p], L->bias[p], n);
    double t1 = wk_now();
    w->tc[WK_TC_BASE] += t1 - t0;
    const wk_lora *lp = t->pairs[(size_t)l * P + p];
    if (!lp) return;
    int in = L->p[p].cols, out = L->p[p].rows, r = lp->r;
    const float *src = x;
    if (t->o.lora_dropout > 0) {
        dropout(w->xd, x, (size_t)n * in, (size_t)w->row0 * in, drop_key(t, l, p), t->o.lora_dropout);
        src = w->xd;
    }
    gemm(w, CblasNoTrans, CblasTrans, n, r, in, 1.f, src, in, lp->A, in, 0.f, xa, r);
    gemm(w, CblasNoTrans, CblasTrans, n, out, r, lp->scale, xa, r, lp->B, r, 1.f, y, out);
    w->tc[WK_TC_LORA] += wk_now() - t1;
}

/* dx[n,in] (=|+=) dy[n,out]·W for a frozen W of any float dtype. */
static void matmul_dx(wick_trainer *t, wk_rep *w, float *dx, const float *dy, const wk_mat *W, int n, int acc) {
    int out = W->rows, in = W->cols;
    if (W->dt == WICK_DT_F32 && !W->qtype) {
        gemm(w, CblasNoTrans, CblasNoTrans, n, in, out, 1.f, dy, out, W->w, in, acc ? 1.f : 0.f, dx, in);
        return;
    }
    int tile = tile_rows(t, w, out, in);
    float *buf = w->tmp; /* (n, max(C,F)) floats: holds `tile` rows of W */
    for (int o0 = 0; o0 < out; o0 += tile) {
        int rows = WK_MIN(tile, out - o0);
        if (W->qtype) /* QLoRA: the frozen base stays quantized; rows are dequantized per tile */
            for (int r = 0; r < rows; r++)
                wk_model_dequant(W->qtype, (const uint8_t *)W->w + (size_t)(o0 + r) * wk_model_qrow_bytes(W->qtype, in),
                                 buf + (size_t)r * in, in);
        else
            wk_to_f32(buf, (const uint16_t *)W->w + (size_t)o0 * in, W->dt, (size_t)rows * in);
        gemm(w, CblasNoTrans, CblasNoTrans, n, in, rows, 1.f, dy + o0, out, buf, in, (acc || o0 > 0) ? 1.f : 0.f, dx,
             in);
    }
}

/* The gradient buffer of parameter q for replica w, and the beta its sgemm uses. */
static float *grad_of(const wick_trainer *t, const wk_rep *w, const wk_tparam *q, float *beta) {
    *beta = w->grad ? 0.f : 1.f;
    return w->grad ? w->grad + (q->g - t->pbuf) : q->g;
}

/* The LoRA part of lin_bwd. */
static void lora_bwd(wick_trainer *t, wk_rep *w, float *dx, const float *dy, const float *x, int l, wk_proj p, int n,
                     const float *xa, const wk_lora *lp) {
    const wk_layer *L = &t->m->layers[l];
    int in = L->p[p].cols, out = L->p[p].rows, r = lp->r;
    const wk_tparam *pa = &t->par[t->par_of[(size_t)l * P + p]], *pb = pa + 1;
    float s = lp->scale, *db = w->db, ba, bb, *gA = grad_of(t, w, pa, &ba), *gB = grad_of(t, w, pb, &bb);
    size_t off = (size_t)w->row0 * in;
    gemm(w, CblasNoTrans, CblasNoTrans, n, r, out, 1.f, dy, out, lp->B, r, 0.f, db, r);
    gemm(w, CblasTrans, CblasNoTrans, out, r, n, s, dy, out, xa, r, bb, gB, r);
    const float *src = x;
    if (t->o.lora_dropout > 0) {
        dropout(w->xd, x, (size_t)n * in, off, drop_key(t, l, p), t->o.lora_dropout);
        src = w->xd;
    }
    gemm(w, CblasTrans, CblasNoTrans, r, in, n, s, db, r, src, in, ba, gA, in);
    if (!dx) return;
    if (t->o.lora_dropout <= 0) {
        gemm(w, CblasNoTrans, CblasNoTrans, n, in, r, s, db, r, lp->A, in, 1.f, dx, in);
        return;
    }
    gemm(w, CblasNoTrans, CblasNoTrans, n, in, r, s, db, r, lp->A, in, 0.f, w->xd, in);
    dropout(w->xd, w->xd, (size_t)n * in, off, drop_key(t, l, p), t->o.lora_dropout);
    wk_backend *be = t->m->be;
    be->add(be, dx, w->xd, (size_t)n * in);
}

/* Backward of lin_fwd: dx (=|+=) dy·W + LoRA input gradient (dx NULL: not needed); adds to gA, gB. */
static void lin_bwd(wick_trainer *t, wk_rep *w, float *dx, const float *dy, const float *x, int l, wk_proj p, int n,
                    const float *xa, int acc) {
    const wk_layer *L = &t->m->layers[l];
    double t0 = wk_now();
    if (dx) matmul_dx(t, w, dx, dy, &L->p[p], n, acc);
    double t1 = wk_now();
    w->tc[WK_TC_BASE] += t1 - t0;
    const wk_lora *lp = t->pairs[(size_t)l * P + p];
    if (!lp) return;
    lora_bwd(t, w, dx, dy, x, l, p, n, xa, lp);
    w->tc[WK_TC_LORA] += wk_now() - t1;
}


/* ------------------------------------------------------------ one layer */

/* Forward of layer l from a->x; writes the layer output to y and fills a. */
static void layer_fwd(wick_trainer *t, wk_rep *w, int l, wk_lact *a, float *y, int n) {
    const wk_config *c = &t->m->c;
    const wk_layer *L = &t->m->layers[l];
    wk_backend *be = t->m->be;
    int H = c->n_heads, Hk = c->n_kv_heads, D = c->head_dim, C = c->hidden;
    be->rmsnorm(be, w->xn, a->x, L->attn_norm, n, C, c->rms_eps);
    lin_fwd(t, w, c->qk_norm ? a->qr : a->q, w->xn, l, WK_P_Q, n, a->xa[WK_P_Q]);
    lin_fwd(t, w, c->qk_norm ? a->kr : a->k, w->xn, l, WK_P_K, n, a->xa[WK_P_K]);
    lin_fwd(t, w, a->v, w->xn, l, WK_P_V, n, a->xa[WK_P_V]);
    if (c->qk_norm) {
        be->rmsnorm(be, a->q, a->qr, L->q_norm, n * H, D, c->rms_eps);
        be->rmsnorm(be, a->k, a->kr, L->k_norm, n * Hk, D, c->rms_eps);
    }
    be->rope(be, a->q, w->pos, n, H, D, t->m->inv_freq);
    be->rope(be, a->k, w->pos, n, Hk, D, t->m->inv_freq);
    double t0 = wk_now();
    t->ops->attn_fwd(a->att, a->lse, a->q, a->k, a->v, w->rs, n, H, Hk, D, 1.f / sqrtf((float)D));
    w->tc[WK_TC_ATTN] += wk_now() - t0;
    lin_fwd(t, w, w->tC, a->att, l, WK_P_O, n, a->xa[WK_P_O]);
    memcpy(a->h, a->x, sizeof(float) * (size_t)n * C);
    be->add(be, a->h, w->tC, (size_t)n * C);
    be->rmsnorm(be, w->xn, a->h, L->mlp_norm, n, C, c->rms_eps);
    lin_fwd(t, w, a->g, w->xn, l, WK_P_GATE, n, a->xa[WK_P_GATE]);
    lin_fwd(t, w, a->u, w->xn, l, WK_P_UP, n, a->xa[WK_P_UP]);
    be->swiglu(be, w->act, a->g, a->u, (size_t)n * c->inter);
    lin_fwd(t, w, y, w->act, l, WK_P_DOWN, n, a->xa[WK_P_DOWN]);
    be->add(be, y, a->h, (size_t)n * C);
}

/* Backward of the MLP half: w->dres holds dL/dx' on entry, dL/dh on return. */
static void mlp_bwd(wick_trainer *t, wk_rep *w, int l, const wk_lact *a, int n) {
    const wk_config *c = &t->m->c;
    const wk_layer *L = &t->m->layers[l];
    wk_backend *be = t->m->be;
    size_t nF = (size_t)n * c->inter;
    be->swiglu(be, w->act, a->g, a->u, nF);
    lin_bwd(t, w, w->dA, w->dres, w->act, l, WK_P_DOWN, n, a->xa[WK_P_DOWN], 0);
    t->ops->swiglu_bwd(w->dG, w->dU, w->dA, a->g, a->u, nF);
    be->rmsnorm(be, w->xn, a->h, L->mlp_norm, n, c->hidden, c->rms_eps);
    lin_bwd(t, w, w->dxn, w->dG, w->xn, l, WK_P_GATE, n, a->xa[WK_P_GATE], 0);
    lin_bwd(t, w, w->dxn, w->dU, w->xn, l, WK_P_UP, n, a->xa[WK_P_UP], 1);
    t->ops->rmsnorm_bwd(w->dres, w->dxn, a->h, L->mlp_norm, n, c->hidden, c->rms_eps, 1);
}

/* Backward of the attention half: w->dres holds dL/dh on entry, dL/dx on return
 * (layer 0: not computed; the embeddings are frozen). */
static void attn_bwd(wick_trainer *t, wk_rep *w, int l, const wk_lact *a, int n) {
    const wk_config *c = &t->m->c;
    const wk_layer *L = &t->m->layers[l];
    wk_backend *be = t->m->be;
    int H = c->n_heads, Hk = c->n_kv_heads, D = c->head_dim, C = c->hidden;
    lin_bwd(t, w, w->datt, w->dres, a->att, l, WK_P_O, n, a->xa[WK_P_O], 0);
    double t0 = wk_now();
    t->ops->attn_bwd(w->dq, w->dk, w->dv, w->datt, a->att, a->lse, a->q, a->k, a->v, w->rs, n, H, Hk, D,
                     1.f / sqrtf((float)D));
    w->tc[WK_TC_ATTN] += wk_now() - t0;
    t->ops->rope_bwd(w->dq, w->pos, n, H, D, t->m->inv_freq);
    t->ops->rope_bwd(w->dk, w->pos, n, Hk, D, t->m->inv_freq);
    float *dq = w->dq, *dk = w->dk, *dxn = l > 0 ? w->dxn : NULL;
    if (c->qk_norm) {
        t->ops->rmsnorm_bwd(w->dq2, w->dq, a->qr, L->q_norm, n * H, D, c->rms_eps, 0);
        t->ops->rmsnorm_bwd(w->dk2, w->dk, a->kr, L->k_norm, n * Hk, D, c->rms_eps, 0);
        dq = w->dq2, dk = w->dk2;
    }
    be->rmsnorm(be, w->xn, a->x, L->attn_norm, n, C, c->rms_eps);
    lin_bwd(t, w, dxn, dq, w->xn, l, WK_P_Q, n, a->xa[WK_P_Q], 0);
    lin_bwd(t, w, dxn, dk, w->xn, l, WK_P_K, n, a->xa[WK_P_K], 1);
    lin_bwd(t, w, dxn, w->dv, w->xn, l, WK_P_V, n, a->xa[WK_P_V], 1);
    if (dxn) t->ops->rmsnorm_bwd(w->dres, w->dxn, a->x, L->attn_norm, n, C, c->rms_eps, 1);
}

/* ------------------------------------------------------------ head + loss */

/* hdx[rows,C] = dlogits·E: with split matmuls and f32 weights the vocabulary is cut over the
 * threads (each packs only its slice of the logits and of E). */
static void head_dx(wick_trainer *t, wk_rep *w, int rows) {
    const wk_mat *E = &t->m->lm_head;
    int C = t->m->c.hidden, V = t->m->c.vocab;
    if (w->split && w->nth > 1 && E->dt == WICK_DT_F32 && !E->qtype &&
        wk_sgemm_split_k(w->nth, rows, C, V, w->logits, V, E->w, C, w->hdx, C) == WICK_OK)
        return;
    matmul_dx(t, w, w->hdx, w->logits, E, rows, 0); /* also when the slices' buffers cannot be had */
}

/* Final norm, LM head and cross-entropy over w's nt scored rows, in chunks of about equal
 * rows (at most R). With backward, leaves dL/dx_L in w->dres. Returns the summed loss. */
static double head(wick_trainer *t, wk_rep *w, int backward) {
    const wk_config *c = &t->m->c;
    wk_backend *be = t->m->be;
    int C = c->hidden, V = c->vocab, n = w->n, nt = w->nt;
    int chunks = (nt + w->R - 1) / w->R, per = chunks ? (nt + chunks - 1) / chunks : 0;
    double loss = 0;
    be->rmsnorm(be, w->xn, w->xL, t->m->final_norm, n, C, c->rms_eps);
    if (backward) memset(w->dxn, 0, sizeof(float) * (size_t)n * C);
    for (int c0 = 0; c0 < nt; c0 += per) {
        int rows = WK_MIN(per, nt - c0);
        for (int r = 0; r < rows; r++)
            memcpy(w->hx + (size_t)r * C, w->xn + (size_t)w->rows[c0 + r] * C, sizeof(float) * C);
        double t0 = wk_now();
        base_fwd(t, w, w->logits, w->hx, &t->m->lm_head, NULL, rows);
        loss += t->ops->xent(w->logits, w->tgt + c0, rows, V, t->o.label_smoothing);
        double t1 = wk_now();
        w->t_fwd += t1 - t0;
        if (!backward) continue;
        head_dx(t, w, rows);
        w->t_bwd += wk_now() - t1;
        for (int r = 0; r < rows; r++)
            memcpy(w->dxn + (size_t)w->rows[c0 + r] * C, w->hdx + (size_t)r * C, sizeof(float) * C);
    }
    if (backward) t->ops->rmsnorm_bwd(w->dres, w->dxn, w->xL, t->m->final_norm, n, C, c->rms_eps, 0);
    return loss;
}

/* Checks every id and label of the micro-batch. */
static wick_status check_batch(const wick_trainer *t, const int32_t *ids, const int32_t *labels, const int *lens,
                               int nseq) {
    int V = t->m->c.vocab, n = 0;
    for (int s = 0; s < nseq; s++)
        for (int i = 0; i < lens[s]; i++, n++) {
            if (ids[n] < 0 || ids[n] >= V)
                return wk_err(WICK_ERANGE, "sequence %d: input id %d at position %d is outside the vocabulary [0,%d)",
                              s, ids[n], i, V);
            if (labels[n] != -100 && (labels[n] < 0 || labels[n] >= V))
                return wk_err(WICK_ERANGE, "sequence %d: label %d at position %d is neither -100 nor in [0,%d)", s,
                              labels[n], i, V);
        }
    return WICK_OK;
}

/* Fills w's rs/pos and scored rows from sequences s0..s1-1, whose labels start at `labels`. */
static void fill_shard(wk_rep *w, const int32_t *labels, const int *lens, int s0, int s1) {
    int n = 0, nt = 0;
    for (int s = s0; s < s1; s++) {
        int st = n;
        for (int i = 0; i < lens[s]; i++, n++) {
            w->rs[n] = st;
            w->pos[n] = i;
            if (i > 0 && labels[n] != -100) w->rows[nt] = n - 1, w->tgt[nt++] = labels[n];
        }
    }
    w->nt = nt;
}

static void forward_layers(wick_trainer *t, wk_rep *w) {
    int Lc = t->m->c.n_layers, n = w->n;
    for (int l = 0; l < Lc; l++) {
        float *y = l + 1 < Lc ? w->la[l + 1].x : w->xL;
        if (!t->o.recompute) {
            layer_fwd(t, w, l, &w->la[l], y, n);
            continue;
        }
        wk_lact a = w->rc;
        a.x = w->la[l].x;
        layer_fwd(t, w, l, &a, y, n);
    }
}

static void backward_layers(wick_trainer *t, wk_rep *w) {
    for (int l = t->m->c.n_layers - 1; l >= 0; l--) {
        wk_lact a = w->la[l];
        if (t->o.recompute) {
            a = w->rc;
            a.x = w->la[l].x;
            layer_fwd(t, w, l, &a, w->tC, w->n);
        }
        mlp_bwd(t, w, l, &a, w->n);
        attn_bwd(t, w, l, &a, w->n);
    }
}

/* One replica's pass over its shard: embed, forward, head (+ backward when asked and scored). */
static void rep_pass(void *arg, int rank, int threads) {
    wick_trainer *t = arg;
    wk_rep *w = &t->rep[rank];
    w->nth = threads;
    double t0 = wk_now();
    t->m->be->embed(t->m->be, w->la[0].x, &t->m->embed, w->ids, w->n);
    forward_layers(t, w);
    w->t_fwd += wk_now() - t0;
    w->backward = w->backward && w->nt > 0;
    t0 = wk_now();
    w->loss = head(t, w, w->backward);
    w->tc[WK_TC_HEAD] += wk_now() - t0;
    t0 = wk_now();
    if (w->backward) backward_layers(t, w);
    w->t_bwd += wk_now() - t0;
}

/* Replicas for a micro-batch of nseq sequences on `threads` threads. */
static int replicas_for(const wick_trainer *t, int nseq, int threads) {
    /* automatic: replicas of threads/2 threads, at most 8 (measured best on 2 and 16 threads, docs/BENCHMARKS.md) */
    int g = t->want_rep > 0 ? t->want_rep : threads / WK_MAX(1, WK_MIN(8, threads / 2));
    if (!t->can_split) g = 1;
    return WK_MAX(1, WK_MIN(WK_MIN(g, nseq), WK_TRAIN_MAX_REPLICAS));
}

/* Cuts sequences into g shards of about n/g tokens each (every shard non-empty); sets ids/row0/n. */
static wick_status plan_shards(wick_trainer *t, int g, const int32_t *ids, const int32_t *labels, const int *lens,
                               int nseq, int64_t n) {
    int s = 0, row = 0;
    for (int k = 0; k < g; k++) {
        wk_rep *w = &t->rep[k];
        int s0 = s, r0 = row;
        int64_t goal = n * (k + 1) / g;
        do row += lens[s++];
        while (s < nseq - (g - 1 - k) && row + lens[s] / 2 <= goal);
        if (k == g - 1)
            while (s < nseq) row += lens[s++];
        wick_status st = ws_reserve(t, w, row - r0);
        if (st) return st;
        w->rank = k, w->ids = ids + r0, w->row0 = r0, w->n = row - r0;
        fill_shard(w, labels + r0, lens, s0, s);
    }
    return WICK_OK;
}

/* Sums the replicas' gradients (those that ran a backward) into the trainer's, in rank order. */
static wick_status reduce_grads(wick_trainer *t, int g) {
    float *bufs[WK_TRAIN_MAX_REPLICAS];
    int k = 0;
    bufs[k++] = t->pbuf;
    for (int r = 1; r < g; r++)
        if (t->rep[r].backward) bufs[k++] = t->rep[r].grad;
    if (k == 1) return WICK_OK;
    wk_comm *c = NULL;
    wick_status st = wk_comm_host(k, &c); /* the host communicator sums in rank order */
    if (!st) st = c->allreduce(c, bufs, t->n_grad);
    if (c) c->free(c);
    return st;
}

/* Sets up g replicas (threads, gradient buffers); g == 1 runs on the calling thread. */
static wick_status replicas_ready(wick_trainer *t, int g, int threads, int backward) {
    for (int r = 0; r < g; r++) {
        wk_rep *w = &t->rep[r];
        int split1 = t->split1 >= 0 ? t->split1 : threads >= 16; /* measured faster on 16 threads */
        w->split = (g > 1 || split1) && t->can_split;
        w->nth = g > 1 ? WK_MAX(1, threads / g) : threads;
        w->backward = backward, w->t_fwd = w->t_bwd = 0, w->loss = 0;
        memset(w->tc, 0, sizeof w->tc);
        if (r > 0 && backward && !w->grad && !(w->grad = wk_malloc(sizeof(float) * t->n_grad, "replica gradients")))
            return WICK_ENOMEM;
    }
    if (g == 1 || (t->comm && t->comm->size >= g && t->comm->threads == threads)) return WICK_OK;
    wk_replicas_free(t->comm);
    t->comm = NULL;
    return wk_replicas_cpu_new(g, threads, &t->comm);
}

static wick_status run_batch(wick_trainer *t, const int32_t *ids, const int32_t *labels, const int *lens, int nseq,
                             double *loss_sum, int64_t *n_targets, int backward) {
    int64_t n = 0;
    wick_status st = wk_batch_tokens(lens, nseq, &n);
    if (st) return st;
    st = check_batch(t, ids, labels, lens, nseq);
    int threads = wick_get_threads(), g = replicas_for(t, nseq, threads);
    if (!st) st = replicas_ready(t, g, threads, backward);
    if (!st) st = plan_shards(t, g, ids, labels, lens, nseq, n);
    if (st) return st;
    double t0 = wk_now(), loss = 0;
    if (g == 1) rep_pass(t, 0, threads);
    else wk_replicas_run(t->comm, rep_pass, t, g);
    int64_t nt = 0;
    for (int r = 0; r < g; r++) loss += t->rep[r].loss, nt += t->rep[r].nt;
    if (backward && g > 1 && (st = reduce_grads(t, g))) return wk_err_prefix(st, "trainer: summing replica gradients");
    const wk_rep *w0 = &t->rep[0];
    double wall = wk_now() - t0;
    for (int k = 0; k < WK_TC_COUNT; k++) t->tc[k] += w0->tc[k];
    t->tc[WK_TC_WAIT] += wall - w0->t_fwd - w0->t_bwd;
    t->t_fwd += w0->t_fwd;
    t->t_bwd += wall - w0->t_fwd; /* rank 0's backward, waiting for the other ranks, the gradient sum */
    if (backward) t->micro++;
    if (loss_sum) *loss_sum += loss;
    if (n_targets) *n_targets += nt;
    return WICK_OK;
}

wick_status wick_trainer_accumulate(wick_trainer *t, const int32_t *ids, const int32_t *labels, const int *lens,
                                    int nseq, double *loss_sum, int64_t *n_targets) {
    if (t->dev) return wk_ctrainer_run(t->dev, ids, labels, lens, nseq, loss_sum, n_targets, 1);
    return run_batch(t, ids, labels, lens, nseq, loss_sum, n_targets, 1);
}

wick_status wick_trainer_eval(wick_trainer *t, const int32_t *ids, const int32_t *labels, const int *lens, int nseq,
                              double *loss_sum, int64_t *n_targets) {
    if (t->dev) return wk_ctrainer_run(t->dev, ids, labels, lens, nseq, loss_sum, n_targets, 0);
    float p = t->o.lora_dropout;
    t->o.lora_dropout = 0; /* evaluation runs the adapter without dropout */
    wick_status st = run_batch(t, ids, labels, lens, nseq, loss_sum, n_targets, 0);
    t->o.lora_dropout = p;
    return st;
}

/* ------------------------------------------------------------ lifetime */

/* Builds the PEFT-ordered parameter list (state.c) and the one buffer of grads + moments. */
static wick_status build_params(wick_trainer *t) {
    size_t *off = wk_malloc(sizeof(size_t) * (2 * (size_t)t->m->c.n_layers * P + 1), "trainer parameter offsets");
    if (!off) return WICK_ENOMEM;
    wick_status st = wk_param_list(t->m, t->pairs, t->par, t->par_of, &t->n_par, off, &t->rmax);
    size_t total = st ? 0 : off[t->n_par];
    wk_free(off);
    if (st) return st;
    t->n_grad = total;
    t->pbuf = wk_calloc(sizeof(float) * 3 * total, "gradients and AdamW state");
    if (!t->pbuf) return WICK_ENOMEM;
    float *b = t->pbuf;
    for (int i = 0; i < t->n_par; i++) {
        t->par[i].g = b, t->par[i].m = b + total, t->par[i].v = b + 2 * total;
        b += t->par[i].n;
    }
    return WICK_OK;
}

/* 1 when every base matrix is f32, bf16 or f16 (the split matmuls widen 16-bit tiles themselves). */
static int splittable(const wick_model *m) {
    const wk_mat *mats[] = {&m->lm_head, NULL};
    for (int i = 0; mats[i]; i++)
        if (mats[i]->qtype) return 0;
    for (int l = 0; l < m->c.n_layers; l++)
        for (int p = 0; p < P; p++) {
            const wk_mat *W = &m->layers[l].p[p];
            if (W->qtype || (W->dt != WICK_DT_F32 && W->dt != WICK_DT_BF16 && W->dt != WICK_DT_F16)) return 0;
        }
    return m->lm_head.dt == WICK_DT_F32 || m->lm_head.dt == WICK_DT_BF16 || m->lm_head.dt == WICK_DT_F16;
}

wick_status wk_trainer_new_pairs(wick_model *m, const wk_lora *const *pairs, const wick_train_opts *o,
                                 wick_trainer **out) {
    *out = NULL;
    wick_status st = WICK_OK;
    if (o && (o->lora_dropout < 0 || o->lora_dropout >= 1))
        return wk_err(WICK_EINVAL, "trainer: lora_dropout %g is outside [0,1)", o->lora_dropout);
    int LP = m->c.n_layers * P;
    wick_trainer *t = wk_calloc(sizeof *t, "trainer");
    if (!t) return WICK_ENOMEM;
    t->m = m;
    if (m->be->device_memory) {
        if ((st = wk_ctrainer_new(m, pairs, o, &t->dev))) wk_free(t);
        else *out = t;
        return st;
    }
    t->o = o ? *o : wick_train_opts_default();
    t->ops = wk_train_ops_fast();
    t->pairs = wk_calloc(sizeof(*t->pairs) * LP, "trainer pairs");
    t->par = wk_calloc(sizeof(*t->par) * 2 * LP, "trainer parameters");
    t->par_of = wk_calloc(sizeof(int) * LP, "trainer parameters");
    t->can_split = splittable(m);
    t->split1 = -1;
    if (!t->pairs || !t->par || !t->par_of) st = WICK_ENOMEM;
    if (!st) {
        memcpy(t->pairs, pairs, sizeof(*t->pairs) * LP);
        st = build_params(t);
    }
    if (st) {
        wick_trainer_free(t);
        return st;
    }
    *out = t;
    return WICK_OK;
}

wick_status wick_trainer_new(wick_model *m, wick_adapter *a, const wick_train_opts *o, wick_trainer **out) {
    int LP = m->c.n_layers * P;
    const wk_lora **pairs = wk_calloc(sizeof(*pairs) * LP, "trainer pairs");
    if (!pairs) return WICK_ENOMEM;
    for (int i = 0; i < LP; i++) pairs[i] = a ? wk_adapter_pair(a, i / P, (wk_proj)(i % P)) : NULL;
    wick_status st = wk_trainer_new_pairs(m, pairs, o, out);
    wk_free(pairs);
    if (!st) (*out)->a = a;
    return st;
}

void wick_trainer_free(wick_trainer *t) {
    if (!t) return;
    wk_ctrainer_free(t->dev); /* copies the adapter back */
    wk_adapter_touch(t->a);  /* device copies of it (sessions) refresh */
    for (int r = 0; r < WK_TRAIN_MAX_REPLICAS; r++) rep_release(&t->rep[r]);
    wk_replicas_free(t->comm);
    wk_free(t->pbuf);
    wk_free(t->pairs);
    wk_free(t->par);
    wk_free(t->par_of);
    wk_free(t);
}

wk_tparam *wk_trainer_params(wick_trainer *t, int *n) {
    if (t->dev) return wk_ctrainer_params(t->dev, n);
    *n = t->n_par;
    return t->par;
}

void wk_trainer_set_ops(wick_trainer *t, const wk_train_ops *ops) { t->ops = ops; }
void wk_trainer_set_micro(wick_trainer *t, uint64_t micro) {
    if (t->dev) wk_ctrainer_set_micro(t->dev, micro);
    t->micro = micro;
}
uint64_t wk_trainer_micro(const wick_trainer *t) { return t->dev ? wk_ctrainer_micro(t->dev) : t->micro; }
void wk_trainer_set_head_rows(wick_trainer *t, int rows) {
    if (t->dev) wk_ctrainer_set_head_rows(t->dev, rows);
    t->R_cap = rows;
    for (int r = 0; r < WK_TRAIN_MAX_REPLICAS; r++) t->rep[r].cap = 0; /* re-carve on the next batch */
}
void wk_trainer_set_replicas(wick_trainer *t, int n) { t->want_rep = WK_MAX(0, WK_MIN(n, WK_TRAIN_MAX_REPLICAS)); }
void wk_trainer_set_split(wick_trainer *t, int on) { t->split1 = on < 0 ? -1 : on != 0; }
int wk_trainer_replicas(const wick_trainer *t, int nseq) { return replicas_for(t, nseq, wick_get_threads()); }
int wick_trainer_steps(const wick_trainer *t) { return t->dev ? wk_ctrainer_steps(t->dev) : t->steps; }

wick_status wick_trainer_sync_adapter(wick_trainer *t) {
    wick_status st = t->dev ? wk_ctrainer_sync(t->dev) : WICK_OK;
    wk_adapter_touch(t->a);
    return st;
}

void wk_trainer_grad_span(wick_trainer *t, float **g, size_t *n) {
    if (t->dev) {
        wk_ctrainer_grad_span(t->dev, g, n);
        return;
    }
    *g = t->n_par ? t->par[0].g : NULL;
    *n = t->n_par ? (size_t)(t->par[t->n_par - 1].g + t->par[t->n_par - 1].n - t->par[0].g) : 0;
}

/* ------------------------------------------------------------ optimizer step */

static wick_status save_grads(const wick_trainer *t, const char *path) {
    wick_tensor_view *v = wk_calloc(sizeof(*v) * t->n_par, "gradient list");
    if (!v) return WICK_ENOMEM;
    for (int i = 0; i < t->n_par; i++)
        v[i] = (wick_tensor_view){.name = t->par[i].name, .dtype = WICK_DT_F32, .ndim = 2,
                                  .shape = {t->par[i].rows, t->par[i].cols}, .data = t->par[i].g};
    wick_status st = wick_safetensors_write(path, v, t->n_par, "{\"format\":\"pt\"}");
    wk_free(v);
    return st;
}

/* Scales the gradient by 1/n_targets and returns its global L2 norm (NaN when not finite).
 * Sums go by fixed blocks of the flat gradient, then in order: the same bits for any thread
 * count (resume is exact). */
static double finish_grads(wick_trainer *t, int64_t n_targets) {
    enum { BLK = 16384 };
    float inv = (float)(1.0 / (double)n_targets), *g = t->pbuf;
    size_t n = t->n_grad, nb = (n + BLK - 1) / BLK;
    double ss = 0, *pp = malloc(sizeof(double) * nb);
    if (!pp) return NAN;
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < nb; b++) {
        double s = 0;
        for (size_t j = b * BLK; j < WK_MIN(n, (b + 1) * BLK); j++) {
            g[j] *= inv;
            s += (double)g[j] * g[j];
        }
        pp[b] = s;
    }
    for (size_t b = 0; b < nb; b++) ss += pp[b];
    free(pp);
    return isfinite(ss) ? sqrt(ss) : NAN;
}

static wick_status trainer_step(wick_trainer *t, int64_t n_targets, const char *grads_path, wick_step_info *info);

wick_status wick_trainer_step(wick_trainer *t, int64_t n_targets, const char *grads_path, wick_step_info *info) {
    if (t->dev) return wk_ctrainer_step(t->dev, n_targets, grads_path, info); /* host A/B change at sync */
    double t0 = wk_now();
    wick_status st = trainer_step(t, n_targets, grads_path, info);
    t->t_opt += wk_now() - t0;
    wk_adapter_touch(t->a);
    return st;
}

void wk_trainer_times(const wick_trainer *t, double *fwd, double *bwd, double *opt) {
    if (t->dev) {
        wk_ctrainer_times(t->dev, fwd, bwd, opt);
        return;
    }
    *fwd = t->t_fwd, *bwd = t->t_bwd, *opt = t->t_opt;
}

void wk_trainer_breakdown(const wick_trainer *t, double sec[WK_TC_COUNT]) { memcpy(sec, t->tc, sizeof t->tc); }

static wick_status trainer_step(wick_trainer *t, int64_t n_targets, const char *grads_path, wick_step_info *info) {
    if (n_targets <= 0) return wk_err(WICK_EINVAL, "trainer: step %d has no labelled positions (all labels -100)", t->steps + 1);
    double norm = finish_grads(t, n_targets);
    wick_status st = WICK_OK;
    if (grads_path && (st = save_grads(t, grads_path))) return st;
    if (!isfinite(norm)) {
        memset(t->par[0].g, 0, sizeof(float) * (size_t)(t->par[t->n_par - 1].g + t->par[t->n_par - 1].n - t->par[0].g));
        return wk_err(WICK_ESTATE, "trainer: step %d: gradient is NaN or infinite; adapter left unchanged", t->steps + 1);
    }
    float clip = 1.f;
    if (t->o.max_grad_norm > 0) {
        float c = t->o.max_grad_norm / ((float)norm + 1e-6f);
        clip = c < 1.f ? c : 1.f;
    }
    double lr = t->o.lr * wk_lr_factor(t->o.scheduler, t->steps, t->o.warmup_steps, t->o.total_steps);
#pragma omp parallel for schedule(dynamic, 1) /* one tensor per task (most are too small to split) */
    for (int i = 0; i < t->n_par; i++) {
        wk_tparam *q = &t->par[i];
        if (clip < 1.f)
            for (size_t j = 0; j < q->n; j++) q->g[j] *= clip;
        wk_adamw(q->w, q->g, q->m, q->v, q->n, t->steps + 1, (float)lr, t->o.beta1, t->o.beta2, t->o.eps,
                 t->o.weight_decay);
        memset(q->g, 0, sizeof(float) * q->n);
    }
    t->steps++;
    if (info) *info = (wick_step_info){.step = t->steps, .lr = lr, .grad_norm = norm};
    return WICK_OK;
}

/* ------------------------------------------------------------ state */

wick_status wick_trainer_save_state(const wick_trainer *t, const char *path) {
    if (t->dev) return wk_ctrainer_save_state(t->dev, path);
    return wk_state_write(path, t->par, t->n_par, t->steps, t->micro);
}

wick_status wick_trainer_load_state(wick_trainer *t, const char *path) {
    if (t->dev) return wk_ctrainer_load_state(t->dev, path);
    return wk_state_read(path, t->par, t->n_par, &t->steps, &t->micro);
}
