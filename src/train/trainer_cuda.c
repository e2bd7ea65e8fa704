/*
 * trainer_cuda.c — the LoRA trainer on the CUDA backend: the same forward with
 * saved activations, backward with the base frozen, chunked LM head fused with
 * cross-entropy and AdamW as the CPU trainer (trainer.c), written as a sequence
 * of backend ops (matmul, rmsnorm, rope, swiglu, embed: the inference ops) and
 * the training kernels of backend/cuda/cuda_train.h.
 *
 * Device memory, allocated once per lifetime (llm.c style):
 *   dparam  (4 * total) floats: A/B weights | gradients | exp_avg | exp_avg_sq, PEFT order
 *   ws      activations of up to `cap` tokens (regrown for a larger micro-batch)
 * Precision follows the model: f32 weights give fp32 products everywhere (no TF32;
 * the exactness mode the goldens check); 16-bit weights run the frozen products on
 * bf16/f16 tensor cores with fp32 accumulation (activations rounded per product,
 * the LM-head gradient written in 16 bits by the cross-entropy kernel) and the
 * LoRA products on TF32; causal attention then runs on the bf16 tensor-core flash
 * kernels (wkt_attn_*_bf16, head_dim 64/128; WICK_TRAIN_ATTN=tf32 selects the TF32
 * ones, and other head dims or WICK_TRAIN_ATTN=fp32 the exact fp32 kernels).
 * Element-wise work and the optimizer are fp32.
 * The LoRA products avoid the wide fp32 tensors: the gate/up expands are folded into
 * the SwiGLU kernel (fp32 arithmetic; the backward recomputes g', u' and adds down's LoRA
 * input gradient in the same pass), and the LoRA input gradients of projections reading
 * the same input (q/k/v, gate/up, o) are one product written before the frozen dx products
 * accumulate onto it (lins_bwd). With bf16 weights the LoRA products over output gradients
 * (db = dy·B, gB) read the 16-bit gradient copies the frozen dx products read (written by
 * the SwiGLU, RMSNorm and RoPE backwards) with a bf16 copy of the adapter (w16, refreshed
 * after every step), fp32 accumulation; without dropout silu(g)·u is then kept in bf16 only
 * (acts16), read by down's frozen product, LoRA shrink and gA. Environment switches for
 * comparisons: WICK_TRAIN_FOLD=0 (LoRA GEMMs over the fp32 tensors, per projection), =1
 * (folded, per projection); WICK_TRAIN_LORA=tf32 (TF32 LoRA products, fp32 act).
 * The host adapter is updated by wk_ctrainer_sync, not after every step.
 *
 * Launch overhead: a micro-batch is ~90 kernel launches per layer. When the same
 * shape (tokens, scored rows) comes again, its forward and its backward are
 * captured as CUDA graphs and replayed (the batch's indices live in device memory;
 * not with LoRA dropout, whose mask keys are launch arguments). WICK_CUDA_GRAPHS=0
 * turns that off. WICK_TRAIN_PROFILE=1 waits for the device after every group of
 * ops and prints where the time went after the first optimizer step (module loading
 * and scratch growth land there) when the trainer is freed; no graphs then.
 */
#include "train/trainer_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef WICK_HAVE_CUDA
#include "backend/cuda/cuda_train.h"

#define P WK_P_COUNT
#define CT_GRAPHS 8 /* cached micro-batch graphs */

/* Profile buckets (WICK_TRAIN_PROFILE). */
enum { PR_NORM, PR_GEMM, PR_LORA, PR_ATTN, PR_HEAD, PR_DX, PR_LORA_B, PR_ATTN_B, PR_ELEM_B, PR_COUNT };
static const char *const pr_names[PR_COUNT] = {"element-wise fwd", "base gemm fwd", "lora fwd", "attention fwd",
                                               "head + loss",      "gemm dx bwd",   "lora bwd", "attention bwd",
                                               "element-wise bwd"};

/* Projections that read the same input, whose LoRA input gradients are one product (lins_bwd). */
enum { GR_QKV, GR_O, GR_GU, GR_COUNT };
static const wk_proj gr_proj[GR_COUNT][3] = {{WK_P_Q, WK_P_K, WK_P_V}, {WK_P_O}, {WK_P_GATE, WK_P_UP}};
static const int gr_cnt[GR_COUNT] = {3, 1, 2};

/* A captured pass: forward (+ head) of (n, nt, backward) or backward of n tokens. */
typedef struct {
    void *g;
    int kind, n, nt, bw, seen;
} ct_graph;

typedef wk_lact ct_act; /* train.h */

/* The tensor-core attention backwards (wkt_attn_bwd_tc / _bf16): 0 when they refuse the shape. */
typedef int (*ct_attn_bwd_fn)(wk_backend *, float *, float *, float *, const float *, const float *, const float *,
                              const float *, const float *, const float *, const int32_t *, const int32_t *, int, int,
                              int, int, float, float *, float *, float *);

/* Bump allocator over one device buffer; base NULL = dry run that only measures. */
typedef struct {
    uint8_t *base;
    size_t used;
} ct_arena;

struct wk_ctrainer {
    wick_model *m;
    wk_backend *be;
    wick_train_opts o;
    float drop;               /* dropout of the current call (0 in eval) */
    const wk_lora **pairs;    /* (L*P) host pairs */
    wk_lora *dl;              /* (L*P) the same pairs with device A/B */
    wk_tparam *par;           /* (n_par) host view: w = host A/B, g/m/v = snapshots in hbuf */
    int n_par, *par_of;
    size_t total, *off;       /* floats per buffer; off[i] = par i's offset */
    float *dparam;            /* device (4 * total): w | g | m | v */
    uint16_t *w16;            /* device (total) w rounded to bf16 when lo16 is used, refreshed after every
                               * optimizer step; else NULL */
    double *dpart;            /* device (WKT_NORM_BLOCKS) norm partial sums */
    float *hbuf;              /* host (3 * total) snapshots of g | m | v */
    int steps, rmax, tf32, dt16, dirty;
    int attn_tc;              /* attention kernels: 0 exact fp32, 1 TF32 tensor cores, 2 bf16 tensor cores */
    uint64_t micro;
    uint8_t *ws;              /* device workspace for cap tokens */
    int cap;
    ct_act *la, rc;           /* (L) saved activations (only .x, .att, .lse with recompute); recompute scratch */
    float **acts;             /* (L) saved silu(g)·u per layer (n, F); all t->act with recompute; NULL where
                               * acts16 holds it */
    void **acts16;            /* (L) silu(g)·u rounded to bf16 instead (act16_ok), or NULL; one shared
                               * buffer with recompute */
    float **xna, **xnm;       /* (L) saved attention / MLP RMSNorm outputs (n, C); shared with recompute */
    float *xL, *xn, *act, *dres, *dxn, *dA, *dG, *dU, *tC;
    float *dq, *dk, *dv, *datt, *dq2, *dk2, *db, *xd, *dsum;
    float *hx, *hdx, *logits, *rloss; /* head chunk (R, C), (R, C), (R, V); per-row losses (cap) */
    void *tmp16;              /* 16-bit casts: max(cap * W, R * V) values */
    void *tmp16b;             /* 16-bit copy of the up projection's gradient (cap * F values) */
    void *dres16, *dq16, *dk16; /* 16-bit copies of dres (cap * C), dq (cap * HD), dk (cap * KD) written by
                               * the RMSNorm / RoPE backwards for the next dx products; NULL without dt16 */
    uint16_t *lo16;           /* bf16 weights: xa (cap * rmax) rounded for the LoRA products over bf16
                               * gradients (their B's: w16); else NULL */
    uint16_t *db16;           /* with lo16: db rounded (cap * 3 * rmax) for gA over acts16 */
    int fold, group, lora16;  /* WICK_TRAIN_FOLD (glu_fold, down_fold; lins_bwd), WICK_TRAIN_LORA (lo16, acts16) */
    int *gr_r;                /* (L*GR_COUNT) summed rank of a group's adapters (0: none) */
    size_t *gr_off;           /* (L*GR_COUNT) the group's [s_i·A_i] stack in `stack`, (size_t)-1 if < 2 adapters */
    float *stack;             /* device: the stacks, rebuilt from dparam after every optimizer step */
    wkt_seg *dseg;            /* device (n_seg) the copies that rebuild them */
    int n_seg;
    size_t seg_max;
    int32_t *dint, *hint;     /* device / host: ids, rs, re, pos, rows, tgt (cap each) */
    float *hloss;             /* host (cap) */
    int R, R_cap;
    double t_fwd, t_bwd, t_opt;
    ct_graph graphs[CT_GRAPHS];
    int n_graphs, use_graphs, prof;
    double prof_t[PR_COUNT], prof_last;
};

/* Profiling: waits for the device and charges the time since the last mark to bucket b. */
static void mark(wk_ctrainer *t, int b) {
    if (!t->prof) return;
    t->be->sync(t->be);
    double now = wk_now();
    t->prof_t[b] += now - t->prof_last;
    t->prof_last = now;
}

static void graphs_free(wk_ctrainer *t) {
    for (int i = 0; i < t->n_graphs; i++)
        if (t->graphs[i].g) t->be->graph_free(t->be, t->graphs[i].g);
    t->n_graphs = 0;
}

static void *carve(ct_arena *a, size_t bytes) {
    void *p = a->base ? a->base + a->used : NULL;
    a->used += (bytes + 255) & ~(size_t)255;
    return p;
}

/* ------------------------------------------------------------ workspace */

/* Whether layer l keeps silu(g)·u only rounded to bf16 (t->acts16): bf16 weights with the LoRA
 * products on bf16 (lo16), no LoRA dropout (its mask applies to the fp32 act), a bf16 down weight
 * without bias. Down's frozen product, its LoRA shrink and its gA then read the bf16 act. */
static int act16_ok(const wk_ctrainer *t, int l) {
    const wk_mat *W = &t->m->layers[l].p[WK_P_DOWN];
    return t->fold && t->lora16 && t->dt16 == WICK_DT_BF16 && !(t->o.lora_dropout > 0) && W->dt == WICK_DT_BF16 &&
           !W->qtype && !t->m->layers[l].bias[WK_P_DOWN];
}

static void act_carve(ct_act *a, ct_arena *ar, const wk_ctrainer *t, size_t n, int full, int l) {
    const wk_config *c = &t->m->c;
    size_t C = c->hidden, F = c->inter, HD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    memset(a, 0, sizeof *a);
    a->x = carve(ar, 4 * n * C);
    if (!full && l >= 0) { /* recompute: the attention output and lse are kept, the kernel is not run again */
        a->att = carve(ar, 4 * n * HD), a->lse = carve(ar, 4 * n * c->n_heads);
        return;
    }
    a->q = carve(ar, 4 * n * HD), a->k = carve(ar, 4 * n * KD), a->v = carve(ar, 4 * n * KD);
    a->att = carve(ar, 4 * n * HD), a->lse = carve(ar, 4 * n * c->n_heads), a->h = carve(ar, 4 * n * C);
    a->g = carve(ar, 4 * n * F), a->u = carve(ar, 4 * n * F);
    if (c->qk_norm) a->qr = carve(ar, 4 * n * HD), a->kr = carve(ar, 4 * n * KD);
    for (int p = 0; p < P; p++) {
        const wk_lora *lp = l >= 0 ? t->pairs[(size_t)l * P + p] : NULL;
        int r = l >= 0 ? (lp ? lp->r : 0) : WK_MAX(t->rmax, 1);
        a->xa[p] = r ? carve(ar, 4 * n * (size_t)r) : NULL;
    }
}

static void ws_carve(wk_ctrainer *t, ct_arena *ar, size_t N) {
    const wk_config *c = &t->m->c;
    size_t C = c->hidden, F = c->inter, HD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    size_t W = WK_MAX(WK_MAX(C, F), HD), V = c->vocab;
    int full = !t->o.recompute;
    void *act16 = NULL; /* with recompute: the one bf16 act buffer of the layers that take it */
    int have16 = 0;
    for (int l = 0; l < c->n_layers; l++) {
        act_carve(&t->la[l], ar, t, N, full, l);
        int a16 = act16_ok(t, l);
        if (a16 && !full && !have16) act16 = carve(ar, 2 * N * F), have16 = 1;
        t->acts16[l] = !a16 ? NULL : full ? carve(ar, 2 * N * F) : act16;
        t->acts[l] = full && !a16 ? carve(ar, 4 * N * F) : NULL; /* the backward then needs no SwiGLU again ... */
        t->xna[l] = full ? carve(ar, 4 * N * C) : NULL;  /* ... nor the RMSNorms */
        t->xnm[l] = full ? carve(ar, 4 * N * C) : NULL;
    }
    float *xna = full ? NULL : carve(ar, 4 * N * C), *xnm = full ? NULL : carve(ar, 4 * N * C);
    act_carve(&t->rc, ar, t, N, 1, -1);
    float **bC[] = {&t->xL, &t->xn, &t->dres, &t->dxn, &t->tC, NULL};
    for (int i = 0; bC[i]; i++) *bC[i] = carve(ar, 4 * N * C);
    float **bF[] = {&t->act, &t->dA, &t->dG, &t->dU, NULL};
    for (int i = 0; bF[i]; i++) *bF[i] = carve(ar, 4 * N * F);
    for (int l = 0; l < c->n_layers; l++)
        if (!full) /* recomputed just before the backward */
            t->acts[l] = t->acts16[l] ? NULL : t->act, t->xna[l] = xna, t->xnm[l] = xnm;
    t->dq = carve(ar, 4 * N * HD), t->dq2 = carve(ar, 4 * N * HD), t->datt = carve(ar, 4 * N * HD);
    t->dk = carve(ar, 4 * N * KD), t->dk2 = carve(ar, 4 * N * KD), t->dv = carve(ar, 4 * N * KD);
    t->db = carve(ar, 4 * N * 3 * WK_MAX(t->rmax, 1)), t->xd = carve(ar, 4 * N * W); /* db: a group's (lins_bwd) */
    t->dsum = carve(ar, 4 * N * c->n_heads);
    t->R = (int)WK_MAX(1, WK_MIN(WK_MIN((size_t)2048, N), ((size_t)1 << 28) / V)); /* <= 1 GB of logits */
    if (t->R_cap > 0) t->R = WK_MIN(t->R, t->R_cap);
    t->hx = carve(ar, 4 * (size_t)t->R * C), t->hdx = carve(ar, 4 * (size_t)t->R * C);
    t->logits = carve(ar, 4 * (size_t)t->R * V);
    t->rloss = carve(ar, 4 * N);
    t->tmp16 = t->dt16 ? carve(ar, 2 * WK_MAX(N * W, (size_t)t->R * V)) : NULL;
    t->tmp16b = t->dt16 ? carve(ar, 2 * N * F) : NULL;
    t->dres16 = t->dt16 ? carve(ar, 2 * N * C) : NULL;
    t->dq16 = t->dt16 ? carve(ar, 2 * N * HD) : NULL;
    t->dk16 = t->dt16 ? carve(ar, 2 * N * KD) : NULL;
    size_t rk = (size_t)WK_MAX(t->rmax, 1);
    int lo = t->dt16 == WICK_DT_BF16 && t->lora16; /* not t->lo16: NULL in the dry run */
    t->lo16 = lo ? carve(ar, 2 * rk * N) : NULL;
    t->db16 = lo ? carve(ar, 2 * 3 * rk * N) : NULL;
    t->dint = carve(ar, 4 * 6 * N);
}

/* (Re)sizes the workspace for n tokens: a dry run measures it, then one device allocation. */
static wick_status ws_reserve(wk_ctrainer *t, int n) {
    if (n <= t->cap) return WICK_OK;
    ct_arena dry = {0};
    ws_carve(t, &dry, (size_t)n);
    graphs_free(t);
    if (t->ws) t->be->sync(t->be), t->be->free(t->be, t->ws);
    wk_free(t->hint), wk_free(t->hloss);
    t->ws = NULL, t->hint = NULL, t->hloss = NULL, t->cap = 0;
    t->ws = t->be->alloc(t->be, dry.used);
    if (!t->ws) return wk_err_prefix(WICK_ENOMEM, "trainer: activations of a micro-batch of %d tokens (%zu bytes)", n,
                                     dry.used);
    t->hint = wk_malloc(sizeof(int32_t) * 6 * (size_t)n, "trainer batch indices");
    t->hloss = wk_malloc(sizeof(float) * (size_t)n, "trainer losses");
    if (!t->hint || !t->hloss) return WICK_ENOMEM;
    ct_arena ar = {t->ws, 0};
    ws_carve(t, &ar, (size_t)n);
    t->cap = n;
    return WICK_OK;
}

/* ------------------------------------------------------------ LoRA dropout */

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The CPU trainer's mask key for (micro-batch, layer, projection). */
static uint64_t drop_key(const wk_ctrainer *t, int l, int p) {
    return mix64(t->o.seed ^ mix64(t->micro * 131 + (uint64_t)l * P + (uint64_t)p + 1));
}

/* ------------------------------------------------------------ linear layers */

/* LoRA part of the forward: y[n,out] += s·(drop(x)·Aᵀ)·Bᵀ; xa keeps drop(x)·Aᵀ. expand 0: only
 * xa (a later kernel folds the expand in: glu_fold). */
static void lora_fwd(wk_ctrainer *t, float *y, const float *x, int l, wk_proj p, int n, float *xa, int expand) {
    const wk_lora *lp = &t->dl[(size_t)l * P + p];
    if (!lp->A) return;
    const wk_mat *W = &t->m->layers[l].p[p];
    int in = W->cols, out = W->rows, r = lp->r;
    const float *src = x;
    if (t->drop > 0) {
        wkt_dropout(t->be, t->xd, x, (size_t)n * in, drop_key(t, l, p), t->drop);
        src = t->xd;
    }
    wkt_gemm(t->be, 0, 1, n, r, in, 1.f, src, in, lp->A, in, 0.f, xa, r, t->tf32);
    if (expand) wkt_gemm(t->be, 0, 1, n, out, r, lp->scale, xa, r, lp->B, r, 1.f, y, out, t->tf32);
}

/* y_i (=|+=) x·W_iᵀ + b_i + LoRA for projections ps[0..cnt) reading the same x: the base
 * products first, so a 16-bit cast of x is made once and reused. expand 0: the LoRA shrinks only. */
static void lins_fwd(wk_ctrainer *t, float *const *ys, const wk_proj *ps, int cnt, const float *x, int l, int n,
                     float *const *xa, int acc, int expand) {
    const wk_layer *L = &t->m->layers[l];
    for (int i = 0; i < cnt; i++) t->be->matmul(t->be, ys[i], x, &L->p[ps[i]], L->bias[ps[i]], n, acc);
    mark(t, PR_GEMM);
    for (int i = 0; i < cnt; i++) lora_fwd(t, ys[i], x, l, ps[i], n, xa[ps[i]], expand);
    mark(t, PR_LORA);
}

/* The adapter gradients of projection p given its output gradient dy (dy16: dy rounded to W's
 * 16-bit type, or NULL): db = dy·B into db (row stride ldb), gB += s·dyᵀ·xa, gA += s·dbᵀ·drop(x).
 * With bf16 weights and dy16 the first two read dy16 (B and xa rounded in t->lo16; fp32
 * accumulation and results) and dy is not read at all. */
static void lora_grads(wk_ctrainer *t, const float *dy, const void *dy16, const float *x, const void *x16, int l,
                       wk_proj p, int n, const float *xa, float *db, int ldb) {
    wk_backend *be = t->be;
    const wk_lora *lp = &t->dl[(size_t)l * P + p];
    const wk_mat *W = &t->m->layers[l].p[p];
    int in = W->cols, out = W->rows, r = lp->r, tf = t->tf32;
    size_t ia = t->off[t->par_of[(size_t)l * P + p]], ib = t->off[t->par_of[(size_t)l * P + p] + 1];
    float s = lp->scale, *gA = t->dparam + t->total + ia, *gB = t->dparam + t->total + ib;
    if (dy16 && t->lo16) {
        const uint16_t *B16 = t->w16 + ib;
        uint16_t *xa16 = t->lo16;
        wkt_to16(be, xa16, xa, (size_t)n * r, t->dt16);
        wkt_gemm16(be, 0, 0, n, r, out, 1.f, dy16, out, B16, r, 0.f, db, ldb, t->dt16); /* db = dy·B */
        wkt_gemm16(be, 1, 0, out, r, n, s, dy16, out, xa16, r, 1.f, gB, r, t->dt16); /* gB += s·dyᵀ·xa */
    } else {
        wkt_gemm(be, 0, 0, n, r, out, 1.f, dy, out, lp->B, r, 0.f, db, ldb, tf); /* db = dy·B */
        wkt_gemm(be, 1, 0, out, r, n, s, dy, out, xa, r, 1.f, gB, r, tf);       /* gB += s·dyᵀ·xa */
    }
    if (x16) { /* x held in bf16 (acts16; no dropout): gA += s·dbᵀ·x with db rounded too */
        wkt_to16(be, t->db16, db, (size_t)n * ldb, t->dt16);
        wkt_gemm16(be, 1, 0, r, in, n, s, t->db16, ldb, x16, in, 1.f, gA, in, t->dt16);
        return;
    }
    const float *src = x;
    if (t->drop > 0) {
        wkt_dropout(be, t->xd, x, (size_t)n * in, drop_key(t, l, p), t->drop);
        src = t->xd;
    }
    wkt_gemm(be, 1, 0, r, in, n, s, db, ldb, src, in, 1.f, gA, in, tf); /* gA += s·dbᵀ·drop(x) */
}

/* Backward of a linear layer: dx (=|+=) dy·W + LoRA input gradient; adds to gA, gB (lora_grads).
 * lora_dx 0 (no dropout): the LoRA input gradient s·db·A is left to the SwiGLU backward
 * (down_fold), with db = dy·B in t->db. */
static void lin_bwd(wk_ctrainer *t, float *dx, const float *dy, const void *dy16, const float *x, const void *x16,
                    int l, wk_proj p, int n, const float *xa, int acc, int lora_dx) {
    wk_backend *be = t->be;
    const wk_mat *W = &t->m->layers[l].p[p];
    wkt_matmul_dx(be, dx, dy, dy16, W, n, acc, t->tmp16);
    mark(t, PR_DX);
    const wk_lora *lp = &t->dl[(size_t)l * P + p];
    if (!lp->A) return;
    int in = W->cols, r = lp->r, tf = t->tf32;
    float s = lp->scale, *db = t->db;
    lora_grads(t, dy, dy16, x, x16, l, p, n, xa, db, r);
    if (!lora_dx || t->drop <= 0) {
        if (lora_dx) wkt_gemm(be, 0, 0, n, in, r, s, db, r, lp->A, in, 1.f, dx, in, tf); /* dx += s·db·A */
        mark(t, PR_LORA_B);
        return;
    }
    wkt_gemm(be, 0, 0, n, in, r, s, db, r, lp->A, in, 0.f, t->xd, in, tf);
    wkt_dropout(be, t->xd, t->xd, (size_t)n * in, drop_key(t, l, p), t->drop);
    be->add(be, dx, t->xd, (size_t)n * in);
    mark(t, PR_LORA_B);
}

/* Backward of the projections of group gr (gr_proj: they read the same x), dys[i] / dy16s[i]
 * their output gradients (as lin_bwd's dy / dy16): dx (=|+=) Σ dy_i·W_i + the LoRA input
 * gradients; adds to the adapters' gradients. Without dropout the group's LoRA input gradient
 * is one product, [db_i]·[s_i·A_i] (t->stack: the scaled A's stacked), written to dx first with
 * the frozen products accumulating onto it, so dx is read and written once, not per projection. */
static void lins_bwd(wk_ctrainer *t, float *dx, const float *const *dys, const void *const *dy16s, int gr,
                     const float *x, int l, int n, const ct_act *a, int acc) {
    wk_backend *be = t->be;
    const wk_layer *L = &t->m->layers[l];
    int cnt = gr_cnt[gr], R = t->gr_r[(size_t)l * GR_COUNT + gr];
    if (!t->group || t->drop > 0 || R == 0) {
        for (int i = 0; i < cnt; i++)
            lin_bwd(t, dx, dys[i], dy16s[i], x, NULL, l, gr_proj[gr][i], n, a->xa[gr_proj[gr][i]], acc || i > 0, 1);
        return;
    }
    int in = L->p[gr_proj[gr][0]].cols, col = 0;
    const wk_lora *one = NULL;
    for (int i = 0; i < cnt; i++) {
        wk_proj p = gr_proj[gr][i];
        const wk_lora *lp = &t->dl[(size_t)l * P + p];
        if (!lp->A) continue;
        lora_grads(t, dys[i], dy16s[i], x, NULL, l, p, n, a->xa[p], t->db + col, R);
        col += lp->r, one = lp;
    }
    size_t so = t->gr_off[(size_t)l * GR_COUNT + gr];
    const float *As = so != (size_t)-1 ? t->stack + so : one->A; /* one adapter: its A, scaled by alpha */
    wkt_gemm(be, 0, 0, n, in, R, so != (size_t)-1 ? 1.f : one->scale, t->db, R, As, in, acc ? 1.f : 0.f, dx, in,
             t->tf32);
    mark(t, PR_LORA_B);
    for (int i = 0; i < cnt; i++) wkt_matmul_dx(be, dx, dys[i], dy16s[i], &L->p[gr_proj[gr][i]], n, 1, t->tmp16);
    mark(t, PR_DX);
}

/* Whether layer l folds its gate/up LoRA expands into the SwiGLU kernels (wkt_swiglu_lora, and
 * the backward recomputes g', u' from the frozen products): an adapter on gate or up, ranks within
 * WKT_GLU_RMAX. a->g, a->u then hold the frozen products only. */
static int glu_fold(const wk_ctrainer *t, int l) {
    const wk_lora *g = &t->dl[(size_t)l * P + WK_P_GATE], *u = &t->dl[(size_t)l * P + WK_P_UP];
    return t->fold && (g->A || u->A) && (!g->A || g->r <= WKT_GLU_RMAX) && (!u->A || u->r <= WKT_GLU_RMAX);
}

/* Whether down's LoRA input gradient is added inside the SwiGLU backward (not with dropout, whose
 * mask applies to it). */
static int down_fold(const wk_ctrainer *t, int l) {
    const wk_lora *d = &t->dl[(size_t)l * P + WK_P_DOWN];
    return t->fold && d->A && d->r <= WKT_GLU_RMAX && t->drop <= 0;
}

/* Projection p's expand for the SwiGLU kernels over the rank-space rows xa (n, r): its B (out, r),
 * or with transposed its A (r, F) read as (F, r). No adapter: rank 0. */
static wkt_expand expand_of(const wk_ctrainer *t, int l, wk_proj p, const float *xa, int transposed) {
    const wk_lora *lp = &t->dl[(size_t)l * P + p];
    if (!lp->A) return (wkt_expand){0};
    if (transposed)
        return (wkt_expand){.xa = xa, .B = lp->A, .sj = 1, .sk = (size_t)t->m->c.inter, .s = lp->scale, .r = lp->r};
    return (wkt_expand){.xa = xa, .B = lp->B, .sj = (size_t)lp->r, .sk = 1, .s = lp->scale, .r = lp->r};
}

/* ------------------------------------------------------------ one layer */

static const int32_t *d_rs(const wk_ctrainer *t) { return t->dint + t->cap; }
static const int32_t *d_re(const wk_ctrainer *t) { return t->dint + 2 * (size_t)t->cap; }
static const int32_t *d_pos(const wk_ctrainer *t) { return t->dint + 3 * (size_t)t->cap; }
static const int32_t *d_rows(const wk_ctrainer *t) { return t->dint + 4 * (size_t)t->cap; }
static const int32_t *d_tgt(const wk_ctrainer *t) { return t->dint + 5 * (size_t)t->cap; }

/* p16 (a gradient's 16-bit copy in t->dt16) when W's dx product takes it, else NULL. */
static const void *as16(const wk_ctrainer *t, const wk_mat *W, const void *p16) {
    return p16 && t->dt16 && (int)W->dt == t->dt16 && !W->qtype ? p16 : NULL;
}

/* y += down(act) + LoRA from act's bf16 copy (t->acts16): the frozen product and the LoRA shrink
 * (A's bf16 copy in t->w16) read it; the expand is the fp32 one of lora_fwd. */
static void down16_fwd(wk_ctrainer *t, int l, const ct_act *a, float *y, int n) {
    wk_backend *be = t->be;
    const wk_mat *W = &t->m->layers[l].p[WK_P_DOWN];
    const wk_lora *lp = &t->dl[(size_t)l * P + WK_P_DOWN];
    int F = W->cols, C = W->rows;
    wkt_matmul16(be, y, t->acts16[l], W, n, 1);
    mark(t, PR_GEMM);
    if (!lp->A) return;
    int r = lp->r;
    float *xa = a->xa[WK_P_DOWN];
    const uint16_t *A16 = t->w16 + t->off[t->par_of[(size_t)l * P + WK_P_DOWN]];
    wkt_gemm16(be, 0, 1, n, r, F, 1.f, t->acts16[l], F, A16, F, 0.f, xa, r, t->dt16); /* xa = act·Aᵀ */
    wkt_gemm(be, 0, 1, n, C, r, lp->scale, xa, r, lp->B, r, 1.f, y, C, t->tf32);       /* y += s·xa·Bᵀ */
    mark(t, PR_LORA);
}

/* Forward of layer l from a->x; writes the layer output to y and fills a (attn 0: a->att and a->lse
 * hold the attention from an earlier forward of the same batch, which is not run again). */
static void layer_fwd(wk_ctrainer *t, int l, ct_act *a, float *y, int n, int attn) {
    const wk_config *c = &t->m->c;
    const wk_layer *L = &t->m->layers[l];
    wk_backend *be = t->be;
    int H = c->n_heads, Hk = c->n_kv_heads, D = c->head_dim, C = c->hidden;
    be->rmsnorm(be, t->xna[l], a->x, L->attn_norm, n, C, c->rms_eps);
    mark(t, PR_NORM);
    float *qkv[3] = {c->qk_norm ? a->qr : a->q, c->qk_norm ? a->kr : a->k, a->v};
    wk_proj pq[3] = {WK_P_Q, WK_P_K, WK_P_V};
    lins_fwd(t, qkv, pq, 3, t->xna[l], l, n, a->xa, 0, 1);
    if (c->qk_norm) {
        be->rmsnorm(be, a->q, a->qr, L->q_norm, n * H, D, c->rms_eps);
        be->rmsnorm(be, a->k, a->kr, L->k_norm, n * Hk, D, c->rms_eps);
    }
    be->rope(be, a->q, d_pos(t), n, H, D, t->m->inv_freq);
    be->rope(be, a->k, d_pos(t), n, Hk, D, t->m->inv_freq);
    wkt_copy(be, a->h, a->x, sizeof(float) * (size_t)n * C); /* before the attention: its bf16 copy of att feeds o */
    mark(t, PR_NORM);
    float sc = 1.f / sqrtf((float)D);
    int took = !attn                ? 1
               : t->attn_tc == 2 ? wkt_attn_fwd_bf16(be, a->att, a->lse, a->q, a->k, a->v, d_rs(t), n, H, Hk, D, sc)
               : t->attn_tc == 1 ? wkt_attn_fwd_tc(be, a->att, a->lse, a->q, a->k, a->v, d_rs(t), n, H, Hk, D, sc)
                                 : 0;
    if (!took) wkt_attn_fwd(be, a->att, a->lse, a->q, a->k, a->v, d_rs(t), n, H, Hk, D, sc);
    mark(t, PR_ATTN);
    wk_proj po = WK_P_O;
    lins_fwd(t, &a->h, &po, 1, a->att, l, n, a->xa, 1, 1); /* h = x + o(att) */
    be->rmsnorm(be, t->xnm[l], a->h, L->mlp_norm, n, C, c->rms_eps);
    mark(t, PR_NORM);
    float *gu[2] = {a->g, a->u};
    wk_proj pg[2] = {WK_P_GATE, WK_P_UP};
    int fold = glu_fold(t, l);
    lins_fwd(t, gu, pg, 2, t->xnm[l], l, n, a->xa, 0, !fold);
    wkt_copy(be, y, a->h, sizeof(float) * (size_t)n * C);
    if (fold || t->acts16[l]) { /* last: its 16-bit copy feeds down's GEMM */
        wkt_expand eg = {0}, eu = {0};
        if (fold)
            eg = expand_of(t, l, WK_P_GATE, a->xa[WK_P_GATE], 0), eu = expand_of(t, l, WK_P_UP, a->xa[WK_P_UP], 0);
        wkt_swiglu_lora(be, t->acts[l], t->acts16[l], t->dt16, a->g, a->u, n, c->inter, &eg, &eu, t->tf32);
    } else {
        be->swiglu(be, t->acts[l], a->g, a->u, (size_t)n * c->inter);
    }
    mark(t, PR_NORM);
    wk_proj pd = WK_P_DOWN;
    if (t->acts16[l]) down16_fwd(t, l, a, y, n);
    else lins_fwd(t, &y, &pd, 1, t->acts[l], l, n, a->xa, 1, 1); /* x' = h + down(act) */
}

/* Backward of the MLP half: t->dres holds dL/dx' on entry, dL/dh on return. */
static void mlp_bwd(wk_ctrainer *t, int l, const ct_act *a, int n) {
    const wk_config *c = &t->m->c;
    const wk_layer *L = &t->m->layers[l];
    wk_backend *be = t->be;
    size_t nF = (size_t)n * c->inter;
    int fold = glu_fold(t, l), dfold = down_fold(t, l);
    lin_bwd(t, t->dA, t->dres, as16(t, &L->p[WK_P_DOWN], t->dres16), t->acts[l], t->acts16[l], l, WK_P_DOWN, n,
            a->xa[WK_P_DOWN], 0, !dfold); /* act saved by layer_fwd */
    const void *dg16 = NULL, *du16 = NULL; /* the dx GEMMs' 16-bit inputs, rounded by the SwiGLU backward */
    wick_dtype wg = L->p[WK_P_GATE].dt;
    int to16 = t->dt16 && (int)wg == t->dt16 && L->p[WK_P_UP].dt == wg && !L->p[WK_P_GATE].qtype &&
               !L->p[WK_P_UP].qtype;
    if (fold || dfold) {
        wkt_expand eg = {0}, eu = {0}, ed = {0};
        if (fold)
            eg = expand_of(t, l, WK_P_GATE, a->xa[WK_P_GATE], 0), eu = expand_of(t, l, WK_P_UP, a->xa[WK_P_UP], 0);
        if (dfold) ed = expand_of(t, l, WK_P_DOWN, t->db, 1);
        int f32 = !to16 || !t->lo16; /* fp32 gradients: read by fp32 dx GEMMs or by the TF32 LoRA products */
        wkt_swiglu_lora_bwd(be, f32 ? t->dG : NULL, f32 ? t->dU : NULL, to16 ? t->tmp16 : NULL, to16 ? t->tmp16b : NULL,
                            t->dt16, t->dA, a->g, a->u, n, c->inter, &eg, &eu, &ed, t->tf32);
        if (to16) dg16 = t->tmp16, du16 = t->tmp16b;
    } else if (to16) {
        wkt_swiglu_bwd16(be, t->dG, t->dU, t->tmp16, t->tmp16b, t->dt16, t->dA, a->g, a->u, nF);
        dg16 = t->tmp16, du16 = t->tmp16b;
    } else {
        wkt_swiglu_bwd(be, t->dG, t->dU, t->dA, a->g, a->u, nF);
    }
    mark(t, PR_ELEM_B);
    const float *dgu[2] = {t->dG, t->dU};
    const void *dgu16[2] = {dg16, du16};
    lins_bwd(t, t->dxn, dgu, dgu16, GR_GU, t->xnm[l], l, n, a, 0);
    wkt_rmsnorm_bwd16(be, t->dres, t->dres16, t->dt16, t->dxn, a->h, L->mlp_norm, n, c->hidden, c->rms_eps, 1);
    mark(t, PR_ELEM_B);
}

/* Backward of the attention half: t->dres holds dL/dh on entry, dL/dx on return. */
static void attn_bwd(wk_ctrainer *t, int l, const ct_act *a, int n) {
    const wk_config *c = &t->m->c;
    const wk_layer *L = &t->m->layers[l];
    wk_backend *be = t->be;
    int H = c->n_heads, Hk = c->n_kv_heads, D = c->head_dim, C = c->hidden;
    const float *dres = t->dres;
    const void *dres16 = as16(t, &L->p[WK_P_O], t->dres16);
    lins_bwd(t, t->datt, &dres, &dres16, GR_O, a->att, l, n, a, 0);
    float sc = 1.f / sqrtf((float)D); /* dq2, xd: free until used below */
    ct_attn_bwd_fn fast = t->attn_tc == 2 ? wkt_attn_bwd_bf16 : t->attn_tc == 1 ? wkt_attn_bwd_tc : NULL;
    if (!fast || !fast(be, t->dq, t->dk, t->dv, t->datt, a->att, a->lse, a->q, a->k, a->v, d_rs(t), d_re(t), n, H, Hk,
                       D, sc, t->dsum, t->dq2, t->xd))
        wkt_attn_bwd(be, t->dq, t->dk, t->dv, t->datt, a->att, a->lse, a->q, a->k, a->v, d_rs(t), d_re(t), n, H, Hk,
                     D, sc, t->dsum, t->dq2, t->xd);
    mark(t, PR_ATTN_B);
    int qn = c->qk_norm, d16 = t->dt16; /* the last op on dq / dk writes their 16-bit copies */
    wkt_rope_bwd16(be, t->dq, qn ? NULL : t->dq16, d16, d_pos(t), n, H, D, t->m->inv_freq);
    wkt_rope_bwd16(be, t->dk, qn ? NULL : t->dk16, d16, d_pos(t), n, Hk, D, t->m->inv_freq);
    float *dq = t->dq, *dk = t->dk;
    if (qn) {
        wkt_rmsnorm_bwd16(be, t->dq2, t->dq16, d16, t->dq, a->qr, L->q_norm, n * H, D, c->rms_eps, 0);
        wkt_rmsnorm_bwd16(be, t->dk2, t->dk16, d16, t->dk, a->kr, L->k_norm, n * Hk, D, c->rms_eps, 0);
        dq = t->dq2, dk = t->dk2;
    }
    mark(t, PR_ELEM_B);
    const float *dqkv[3] = {dq, dk, t->dv};
    const void *dqkv16[3] = {as16(t, &L->p[WK_P_Q], t->dq16), as16(t, &L->p[WK_P_K], t->dk16), NULL};
    lins_bwd(t, t->dxn, dqkv, dqkv16, GR_QKV, t->xna[l], l, n, a, 0);
    wkt_rmsnorm_bwd16(be, t->dres, t->dres16, t->dt16, t->dxn, a->x, L->attn_norm, n, C, c->rms_eps, 1);
    mark(t, PR_ELEM_B);
}

/* ------------------------------------------------------------ head + loss */

/* Final norm, LM head and cross-entropy over the nt scored rows, R rows at a time: per-row
 * losses in t->rloss; with backward, dL/dx_L in t->dres. */
static void head(wk_ctrainer *t, int n, int nt, int backward) {
    const wk_config *c = &t->m->c;
    wk_backend *be = t->be;
    int C = c->hidden, V = c->vocab;
    const wk_mat *Wh = &t->m->lm_head;
    void *g16 = backward && t->dt16 && Wh->dt == (wick_dtype)t->dt16 ? t->tmp16 : NULL;
    be->rmsnorm(be, t->xn, t->xL, t->m->final_norm, n, C, c->rms_eps);
    if (backward) wkt_zero(be, t->dxn, sizeof(float) * (size_t)n * C);
    for (int c0 = 0; c0 < nt; c0 += t->R) {
        int rows = WK_MIN(t->R, nt - c0);
        wkt_gather_rows(be, t->hx, t->xn, d_rows(t) + c0, rows, C);
        be->matmul(be, t->logits, t->hx, Wh, NULL, rows, 0);
        wkt_xent(be, t->logits, d_tgt(t) + c0, rows, V, t->o.label_smoothing, t->rloss + c0, g16, t->dt16);
        if (!backward) continue;
        wkt_matmul_dx(be, t->hdx, t->logits, g16, Wh, rows, 0, t->tmp16);
        wkt_scatter_rows(be, t->dxn, t->hdx, d_rows(t) + c0, rows, C);
    }
    if (backward)
        wkt_rmsnorm_bwd16(be, t->dres, t->dres16, t->dt16, t->dxn, t->xL, t->m->final_norm, n, C, c->rms_eps, 0);
    mark(t, PR_HEAD);
}

/* ------------------------------------------------------------ passes */

/* Forward of a micro-batch whose indices are uploaded: embedding, layers, head (+ its backward). */
static void pass_fwd(wk_ctrainer *t, int n, int nt, int bw) {
    int Lc = t->m->c.n_layers;
    t->be->embed(t->be, t->la[0].x, &t->m->embed, t->dint, n);
    for (int l = 0; l < Lc; l++) {
        ct_act a = t->o.recompute ? t->rc : t->la[l];
        a.x = t->la[l].x, a.att = t->la[l].att, a.lse = t->la[l].lse;
        layer_fwd(t, l, &a, l + 1 < Lc ? t->la[l + 1].x : t->xL, n, 1);
    }
    head(t, n, nt, bw);
}

/* Backward through the layers from t->dres (gradients accumulate into the adapter's). */
static void pass_bwd(wk_ctrainer *t, int n) {
    for (int l = t->m->c.n_layers - 1; l >= 0; l--) {
        ct_act a = t->la[l];
        if (t->o.recompute) {
            a = t->rc;
            a.x = t->la[l].x, a.att = t->la[l].att, a.lse = t->la[l].lse;
            layer_fwd(t, l, &a, t->tC, n, 0);
        }
        mlp_bwd(t, l, &a, n);
        attn_bwd(t, l, &a, n);
    }
}

typedef struct {
    wk_ctrainer *t;
    int kind, n, nt, bw; /* kind 0: pass_fwd(n, nt, bw), 1: pass_bwd(n) */
} ct_pass;

static void pass_run(void *ctx) {
    ct_pass *p = ctx;
    if (p->kind == 0) pass_fwd(p->t, p->n, p->nt, p->bw);
    else pass_bwd(p->t, p->n);
}

/* Runs a pass; a shape seen before is captured as a graph once and replayed after that. */
static void run_pass(wk_ctrainer *t, int kind, int n, int nt, int bw) {
    ct_pass p = {t, kind, n, nt, bw};
    wk_backend *be = t->be;
    if (!t->use_graphs || t->drop > 0 || !be->graph_capture) {
        pass_run(&p);
        return;
    }
    ct_graph *g = NULL;
    for (int i = 0; i < t->n_graphs && !g; i++) {
        ct_graph *e = &t->graphs[i];
        if (e->kind == kind && e->n == n && e->nt == nt && e->bw == bw) g = e;
    }
    if (g && g->g) {
        if (be->graph_replay(be, g->g) == 0) return;
        be->graph_free(be, g->g); /* stale (backend scratch moved): capture again next time */
        g->g = NULL;
        pass_run(&p);
        return;
    }
    if (!g) { /* first sighting: remember the shape, run directly (scratch grows outside any capture) */
        if (t->n_graphs == CT_GRAPHS) {
            if (t->graphs[0].g) be->graph_free(be, t->graphs[0].g);
            memmove(t->graphs, t->graphs + 1, sizeof(ct_graph) * (CT_GRAPHS - 1));
            t->n_graphs--;
        }
        t->graphs[t->n_graphs++] = (ct_graph){NULL, kind, n, nt, bw, 1};
        pass_run(&p);
        return;
    }
    g->g = be->graph_capture(be, pass_run, &p); /* runs the pass once */
    if (!g->g) pass_run(&p);
}

/* ------------------------------------------------------------ micro-batch */

/* Checks ids and labels, fills the host index arrays and uploads them. Returns scored rows or < 0. */
static int prepare(wk_ctrainer *t, const int32_t *ids, const int32_t *labels, const int *lens, int nseq, int n) {
    int V = t->m->c.vocab, k = 0, nt = 0;
    size_t N = (size_t)t->cap;
    int32_t *hid = t->hint, *rs = hid + N, *re = rs + N, *pos = re + N, *rows = pos + N, *tgt = rows + N;
    for (int s = 0; s < nseq; s++) {
        int st = k;
        for (int i = 0; i < lens[s]; i++, k++) {
            if (ids[k] < 0 || ids[k] >= V)
                return wk_err(WICK_ERANGE, "sequence %d: input id %d at position %d is outside the vocabulary [0,%d)",
                              s, ids[k], i, V);
            if (labels[k] != -100 && (labels[k] < 0 || labels[k] >= V))
                return wk_err(WICK_ERANGE, "sequence %d: label %d at position %d is neither -100 nor in [0,%d)", s,
                              labels[k], i, V);
            hid[k] = ids[k], rs[k] = st, re[k] = st + lens[s], pos[k] = i;
            if (i > 0 && labels[k] != -100) rows[nt] = k - 1, tgt[nt++] = labels[k];
        }
    }
    (void)n;
    t->be->upload(t->be, t->dint, t->hint, sizeof(int32_t) * 6 * N);
    return nt;
}

wick_status wk_ctrainer_run(wk_ctrainer *t, const int32_t *ids, const int32_t *labels, const int *lens, int nseq,
                            double *loss_sum, int64_t *n_targets, int backward) {
    int64_t n = 0;
    wick_status st = wk_batch_tokens(lens, nseq, &n);
    if (st) return st;
    st = ws_reserve(t, (int)n);
    if (st) return st;
    int nt = prepare(t, ids, labels, lens, nseq, (int)n);
    if (nt < 0) return (wick_status)nt;
    wk_backend *be = t->be;
    t->drop = backward ? t->o.lora_dropout : 0.f; /* evaluation runs the adapter without dropout */
    int bw = backward && nt > 0;
    if (t->prof) be->sync(be), t->prof_last = wk_now();
    double t0 = wk_now(), loss = 0;
    run_pass(t, 0, (int)n, nt, bw);
    if (nt > 0) be->download(be, t->hloss, t->rloss, sizeof(float) * (size_t)nt); /* waits */
    for (int i = 0; i < nt; i++) loss += t->hloss[i];
    double t1 = wk_now();
    t->t_fwd += t1 - t0; /* forward time includes the LM head's backward */
    if (bw) run_pass(t, 1, (int)n, 0, 0), be->sync(be);
    t->t_bwd += wk_now() - t1;
    if ((st = be->check(be))) return wk_err_prefix(st, "trainer");
    if (backward) t->micro++;
    if (loss_sum) *loss_sum += loss;
    if (n_targets) *n_targets += nt;
    return WICK_OK;
}

/* ------------------------------------------------------------ optimizer step */

static wick_status save_grads(wk_ctrainer *t, const char *path) {
    float *g = t->hbuf;
    t->be->download(t->be, g, t->dparam + t->total, sizeof(float) * t->total);
    wick_tensor_view *v = wk_calloc(sizeof(*v) * t->n_par, "gradient list");
    if (!v) return WICK_ENOMEM;
    for (int i = 0; i < t->n_par; i++)
        v[i] = (wick_tensor_view){.name = t->par[i].name, .dtype = WICK_DT_F32, .ndim = 2,
                                  .shape = {t->par[i].rows, t->par[i].cols}, .data = g + t->off[i]};
    wick_status st = wick_safetensors_write(path, v, t->n_par, "{\"format\":\"pt\"}");
    wk_free(v);
    return st;
}

static wick_status step(wk_ctrainer *t, int64_t n_targets, const char *grads_path, wick_step_info *info) {
    if (n_targets <= 0)
        return wk_err(WICK_EINVAL, "trainer: step %d has no labelled positions (all labels -100)", t->steps + 1);
    wk_backend *be = t->be;
    float *g = t->dparam + t->total;
    double part[WKT_NORM_BLOCKS], ss = 0;
    wkt_scale_sumsq(be, g, t->total, (float)(1.0 / (double)n_targets), t->dpart);
    be->download(be, part, t->dpart, sizeof part);
    for (int b = 0; b < WKT_NORM_BLOCKS; b++) ss += part[b];
    double norm = isfinite(ss) ? sqrt(ss) : NAN;
    wick_status st = WICK_OK;
    if (grads_path && (st = save_grads(t, grads_path))) return st;
    if (!isfinite(norm)) {
        wkt_zero(be, g, sizeof(float) * t->total);
        return wk_err(WICK_ESTATE, "trainer: step %d: gradient is NaN or infinite; adapter left unchanged", t->steps + 1);
    }
    float clip = 1.f;
    if (t->o.max_grad_norm > 0) {
        float c = t->o.max_grad_norm / ((float)norm + 1e-6f);
        clip = c < 1.f ? c : 1.f;
    }
    double lr = t->o.lr * wk_lr_factor(t->o.scheduler, t->steps, t->o.warmup_steps, t->o.total_steps);
    int k = t->steps + 1;
    double bc1 = 1.0 - pow((double)t->o.beta1, k), bc2 = 1.0 - pow((double)t->o.beta2, k);
    float flr = (float)lr;
    wkt_adamw(be, t->dparam, g, g + t->total, g + 2 * t->total, t->total, clip,
              (float)(1.0 - (double)flr * (double)t->o.weight_decay), (float)(1.0 - (double)t->o.beta1), t->o.beta2,
              (float)(1.0 - (double)t->o.beta2), (float)((double)flr / bc1), (float)sqrt(bc2), t->o.eps);
    wkt_seg_scale(be, t->stack, t->dparam, t->dseg, t->n_seg, t->seg_max); /* the A stacks follow the new A's */
    if (t->w16) wkt_to16(be, t->w16, t->dparam, t->total, t->dt16);        /* and so does the bf16 copy */
    if ((st = be->check(be))) return wk_err_prefix(st, "trainer: step %d", k);
    t->steps++;
    t->dirty = 1;
    if (t->steps == 1) memset(t->prof_t, 0, sizeof t->prof_t); /* the profile leaves out the warm-up step */
    if (info) *info = (wick_step_info){.step = t->steps, .lr = lr, .grad_norm = norm};
    return WICK_OK;
}

wick_status wk_ctrainer_step(wk_ctrainer *t, int64_t n_targets, const char *grads_path, wick_step_info *info) {
    double t0 = wk_now();
    wick_status st = step(t, n_targets, grads_path, info);
    t->t_opt += wk_now() - t0;
    return st;
}

/* ------------------------------------------------------------ host views */

wick_status wk_ctrainer_sync(wk_ctrainer *t) {
    if (!t->dirty) return WICK_OK;
    t->be->download(t->be, t->hbuf, t->dparam, sizeof(float) * t->total); /* staged in the g snapshot */
    wick_status st = t->be->check(t->be);
    if (st) return wk_err_prefix(st, "trainer: copying the adapter back");
    for (int i = 0; i < t->n_par; i++) memcpy(t->par[i].w, t->hbuf + t->off[i], sizeof(float) * t->par[i].n);
    t->dirty = 0;
    return WICK_OK;
}

wk_tparam *wk_ctrainer_params(wk_ctrainer *t, int *n) {
    wk_ctrainer_sync(t);
    t->be->download(t->be, t->hbuf, t->dparam + t->total, sizeof(float) * 3 * t->total);
    *n = t->n_par;
    return t->par;
}

wick_status wk_ctrainer_save_state(wk_ctrainer *t, const char *path) {
    t->be->download(t->be, t->hbuf + t->total, t->dparam + 2 * t->total, sizeof(float) * 2 * t->total);
    return wk_state_write(path, t->par, t->n_par, t->steps, t->micro);
}

wick_status wk_ctrainer_load_state(wk_ctrainer *t, const char *path) {
    wick_status st = wk_state_read(path, t->par, t->n_par, &t->steps, &t->micro);
    if (st) return st;
    t->be->upload(t->be, t->dparam + 2 * t->total, t->hbuf + t->total, sizeof(float) * 2 * t->total);
    t->be->sync(t->be);
    return t->be->check(t->be);
}

int wk_ctrainer_steps(const wk_ctrainer *t) { return t->steps; }
void wk_ctrainer_set_micro(wk_ctrainer *t, uint64_t micro) { t->micro = micro; }
uint64_t wk_ctrainer_micro(const wk_ctrainer *t) { return t->micro; }
void wk_ctrainer_grad_span(wk_ctrainer *t, float **g, size_t *n) {
    *g = t->dparam + t->total;
    *n = t->total;
}
void wk_ctrainer_set_head_rows(wk_ctrainer *t, int rows) {
    t->R_cap = rows;
    t->cap = 0; /* re-carve the workspace on the next batch */
}
void wk_ctrainer_times(const wk_ctrainer *t, double *fwd, double *bwd, double *opt) {
    *fwd = t->t_fwd, *bwd = t->t_bwd, *opt = t->t_opt;
}

/* ------------------------------------------------------------ lifetime */

/* PEFT-ordered parameter list (state.c, as the CPU trainer), offsets and sizes. */
static wick_status build_params(wk_ctrainer *t) {
    wick_status st = wk_param_list(t->m, t->pairs, t->par, t->par_of, &t->n_par, t->off, &t->rmax);
    if (!st) t->total = t->off[t->n_par];
    return st;
}

/* Device parameters (uploaded A/B, zero gradient and moments) and the host snapshots. */
static wick_status build_device(wk_ctrainer *t) {
    wk_backend *be = t->be;
    t->hbuf = wk_calloc(sizeof(float) * 3 * t->total, "gradient and AdamW snapshots");
    if (!t->hbuf) return WICK_ENOMEM;
    t->dparam = be->alloc(be, sizeof(float) * 4 * t->total);
    t->dpart = be->alloc(be, sizeof(double) * WKT_NORM_BLOCKS);
    if (!t->dparam || !t->dpart)
        return wk_err_prefix(WICK_ENOMEM, "trainer: adapter, gradients and AdamW state (%zu bytes)",
                             sizeof(float) * 4 * t->total);
    for (int i = 0; i < t->n_par; i++) {
        wk_tparam *q = &t->par[i];
        be->upload(be, t->dparam + t->off[i], q->w, sizeof(float) * q->n);
        q->g = t->hbuf + t->off[i], q->m = q->g + t->total, q->v = q->g + 2 * t->total;
    }
    wkt_zero(be, t->dparam + t->total, sizeof(float) * 3 * t->total);
    if (t->dt16 == WICK_DT_BF16 && t->lora16) { /* the bf16 A/B the LoRA products over bf16 tensors read */
        t->w16 = be->alloc(be, sizeof(uint16_t) * t->total);
        if (!t->w16) return wk_err_prefix(WICK_ENOMEM, "trainer: bf16 copy of the adapter (%zu bytes)", 2 * t->total);
        wkt_to16(be, t->w16, t->dparam, t->total, t->dt16);
    }
    for (int i = 0; i < t->m->c.n_layers * P; i++) {
        if (t->par_of[i] < 0) continue;
        const wk_lora *lp = t->pairs[i];
        t->dl[i] = (wk_lora){.A = t->dparam + t->off[t->par_of[i]], .B = t->dparam + t->off[t->par_of[i] + 1],
                             .r = lp->r, .scale = lp->scale};
    }
    be->sync(be);
    return be->check(be);
}

/* The groups' summed ranks, and the [s_i·A_i] stacks of those with two or more adapters (lins_bwd):
 * their offsets, the segment copies that rebuild them from dparam (after every optimizer step),
 * one device allocation, built once here. */
static wick_status build_groups(wk_ctrainer *t) {
    wk_backend *be = t->be;
    int Lc = t->m->c.n_layers;
    wkt_seg *seg = wk_calloc(sizeof(wkt_seg) * (size_t)WK_MAX(Lc, 1) * P, "trainer A stacks");
    if (!seg) return WICK_ENOMEM;
    size_t total = 0;
    for (int l = 0; l < Lc; l++)
        for (int g = 0; g < GR_COUNT; g++) {
            int R = 0, k = 0;
            for (int i = 0; i < gr_cnt[g]; i++) {
                const wk_lora *lp = &t->dl[(size_t)l * P + gr_proj[g][i]];
                if (lp->A) R += lp->r, k++;
            }
            size_t gi = (size_t)l * GR_COUNT + g, in = (size_t)t->m->layers[l].p[gr_proj[g][0]].cols;
            t->gr_r[gi] = R;
            t->gr_off[gi] = k >= 2 ? total : (size_t)-1;
            for (int i = 0; i < gr_cnt[g] && k >= 2; i++) {
                wk_proj p = gr_proj[g][i];
                const wk_lora *lp = &t->dl[(size_t)l * P + p];
                if (!lp->A) continue;
                size_t cnt = (size_t)lp->r * in;
                seg[t->n_seg++] = (wkt_seg){.src_at = t->off[t->par_of[(size_t)l * P + p]], .dst_at = total, .n = cnt,
                                            .s = lp->scale};
                t->seg_max = WK_MAX(t->seg_max, cnt);
                total += cnt;
            }
        }
    wick_status st = WICK_OK;
    if (t->n_seg) {
        t->stack = be->alloc(be, sizeof(float) * total);
        t->dseg = be->alloc(be, sizeof(wkt_seg) * (size_t)t->n_seg);
        if (!t->stack || !t->dseg) {
            st = wk_err_prefix(WICK_ENOMEM, "trainer: stacked LoRA A matrices (%zu bytes)", sizeof(float) * total);
        } else {
            be->upload(be, t->dseg, seg, sizeof(wkt_seg) * (size_t)t->n_seg);
            wkt_seg_scale(be, t->stack, t->dparam, t->dseg, t->n_seg, t->seg_max);
            be->sync(be);
            st = be->check(be);
        }
    }
    wk_free(seg);
    return st;
}

wick_status wk_ctrainer_new(wick_model *m, const wk_lora *const *pairs, const wick_train_opts *o, wk_ctrainer **out) {
    *out = NULL;
    int LP = m->c.n_layers * P;
    wk_ctrainer *t = wk_calloc(sizeof *t, "trainer");
    if (!t) return WICK_ENOMEM;
    t->m = m;
    t->be = m->be;
    t->o = o ? *o : wick_train_opts_default();
    const char *pe = getenv("WICK_TRAIN_PROFILE");
    t->prof = pe && *pe && strcmp(pe, "0") != 0;
    t->use_graphs = !t->prof;
    wick_dtype wdt = m->c.n_layers > 0 ? m->layers[0].p[WK_P_Q].dt : WICK_DT_F32;
    t->tf32 = wdt != WICK_DT_F32;
    const char *pa = getenv("WICK_TRAIN_ATTN"); /* "fp32": the exact kernels in every mode; "tf32": the TF32 ones */
    t->attn_tc = !t->tf32 ? 0 : pa && strcmp(pa, "fp32") == 0 ? 0 : pa && strcmp(pa, "tf32") == 0 ? 1 : 2;
    const char *pf = getenv("WICK_TRAIN_FOLD"), *pl = getenv("WICK_TRAIN_LORA");
    t->fold = !(pf && strcmp(pf, "0") == 0);
    t->group = !(pf && (strcmp(pf, "0") == 0 || strcmp(pf, "1") == 0));
    t->lora16 = !(pl && strcmp(pl, "tf32") == 0);
    t->dt16 = wdt == WICK_DT_BF16 || wdt == WICK_DT_F16 ? (int)wdt
              : m->lm_head.dt == WICK_DT_BF16 || m->lm_head.dt == WICK_DT_F16 ? (int)m->lm_head.dt : 0;
    t->pairs = wk_calloc(sizeof(*t->pairs) * LP, "trainer pairs");
    t->dl = wk_calloc(sizeof(*t->dl) * LP, "trainer device pairs");
    t->par = wk_calloc(sizeof(*t->par) * 2 * LP, "trainer parameters");
    t->off = wk_calloc(sizeof(size_t) * (2 * LP + 1), "trainer parameters");
    t->par_of = wk_calloc(sizeof(int) * LP, "trainer parameters");
    t->la = wk_calloc(sizeof(ct_act) * WK_MAX(m->c.n_layers, 1), "trainer activations");
    t->acts = wk_calloc(sizeof(float *) * 3 * WK_MAX(m->c.n_layers, 1), "trainer activations");
    t->acts16 = wk_calloc(sizeof(void *) * WK_MAX(m->c.n_layers, 1), "trainer activations");
    if (t->acts) t->xna = t->acts + WK_MAX(m->c.n_layers, 1), t->xnm = t->xna + WK_MAX(m->c.n_layers, 1);
    t->gr_r = wk_calloc(sizeof(int) * GR_COUNT * WK_MAX(m->c.n_layers, 1), "trainer groups");
    t->gr_off = wk_calloc(sizeof(size_t) * GR_COUNT * WK_MAX(m->c.n_layers, 1), "trainer groups");
    int got = t->pairs && t->dl && t->par && t->off && t->par_of && t->la && t->acts && t->acts16;
    got = got && t->gr_r && t->gr_off;
    wick_status st = got ? WICK_OK : WICK_ENOMEM;
    if (!st) {
        memcpy(t->pairs, pairs, sizeof(*t->pairs) * LP);
        st = build_params(t);
    }
    if (!st) st = build_device(t);
    if (!st) st = build_groups(t);
    if (st) {
        wk_ctrainer_free(t);
        return st;
    }
    *out = t;
    return WICK_OK;
}

void wk_ctrainer_free(wk_ctrainer *t) {
    if (!t) return;
    if (t->dparam && t->dirty && wk_ctrainer_sync(t))
        wk_log(WICK_LOG_WARN, "trainer: the trained adapter could not be copied back: %s", wick_last_error());
    wk_backend *be = t->be;
    be->sync(be);
    graphs_free(t);
    if (t->prof) { /* WICK_TRAIN_PROFILE: opted in by the environment, printed once */
        fprintf(stderr, "wick train profile (seconds, device waited after each group):");
        for (int i = 0; i < PR_COUNT; i++) fprintf(stderr, "%s %s %.4f", i ? "," : "", pr_names[i], t->prof_t[i]);
        fprintf(stderr, "\n");
    }
    if (t->ws) be->free(be, t->ws);
    if (t->dparam) be->free(be, t->dparam);
    if (t->dpart) be->free(be, t->dpart);
    if (t->stack) be->free(be, t->stack);
    if (t->w16) be->free(be, t->w16);
    if (t->dseg) be->free(be, t->dseg);
    wk_free(t->hint), wk_free(t->hloss), wk_free(t->hbuf);
    wk_free(t->pairs), wk_free(t->dl), wk_free(t->par), wk_free(t->off), wk_free(t->par_of), wk_free(t->la);
    wk_free(t->acts), wk_free(t->acts16), wk_free(t->gr_r), wk_free(t->gr_off);
    wk_free(t);
}

#else /* !WICK_HAVE_CUDA: no device models exist in this build, so only creation is reachable */

wick_status wk_ctrainer_new(wick_model *m, const wk_lora *const *pairs, const wick_train_opts *o, wk_ctrainer **out) {
    (void)m, (void)pairs, (void)o;
    *out = NULL;
    return wk_err(WICK_EUNSUPPORTED, "trainer: this build has no CUDA backend");
}
void wk_ctrainer_free(wk_ctrainer *t) { (void)t; }
wick_status wk_ctrainer_run(wk_ctrainer *t, const int32_t *ids, const int32_t *labels, const int *lens, int nseq,
                            double *loss_sum, int64_t *n_targets, int backward) {
    (void)t, (void)ids, (void)labels, (void)lens, (void)nseq, (void)loss_sum, (void)n_targets, (void)backward;
    return wk_err(WICK_EUNSUPPORTED, "trainer: this build has no CUDA backend");
}
wick_status wk_ctrainer_step(wk_ctrainer *t, int64_t n_targets, const char *grads_path, wick_step_info *info) {
    (void)t, (void)n_targets, (void)grads_path, (void)info;
    return wk_err(WICK_EUNSUPPORTED, "trainer: this build has no CUDA backend");
}
wick_status wk_ctrainer_sync(wk_ctrainer *t) { return (void)t, WICK_OK; }
wk_tparam *wk_ctrainer_params(wk_ctrainer *t, int *n) { return (void)t, *n = 0, NULL; }
wick_status wk_ctrainer_save_state(wk_ctrainer *t, const char *path) {
    (void)t, (void)path;
    return wk_err(WICK_EUNSUPPORTED, "trainer: this build has no CUDA backend");
}
wick_status wk_ctrainer_load_state(wk_ctrainer *t, const char *path) {
    (void)t, (void)path;
    return wk_err(WICK_EUNSUPPORTED, "trainer: this build has no CUDA backend");
}
int wk_ctrainer_steps(const wk_ctrainer *t) { return (void)t, 0; }
void wk_ctrainer_set_micro(wk_ctrainer *t, uint64_t micro) { (void)t, (void)micro; }
uint64_t wk_ctrainer_micro(const wk_ctrainer *t) { return (void)t, 0; }
void wk_ctrainer_grad_span(wk_ctrainer *t, float **g, size_t *n) { (void)t, *g = NULL, *n = 0; }
void wk_ctrainer_set_head_rows(wk_ctrainer *t, int rows) { (void)t, (void)rows; }
void wk_ctrainer_times(const wk_ctrainer *t, double *fwd, double *bwd, double *opt) {
    (void)t;
    *fwd = *bwd = *opt = 0;
}
#endif
