/*
 * prof_backend.c — a backend ops table that wraps another and charges each op's
 * time to the profiling table (core/prof.h), syncing after every op so an
 * asynchronous backend's time lands on the op that queued it. Profiling a model
 * is then a matter of running it on the wrapper; the decoder needs no changes.
 * Ops added to the table later pass through untimed (their time shows up as
 * "untracked" in the profile).
 */
#include "bench.h"
#include "backend/backend.h"
#include "prof.h"
#include "prof_backend.h"
#include "model/train_ops.h"

static wk_backend *inner(wk_backend *be) { return ((wk_prof_backend *)be)->in; }
static void done(wk_backend *be, wk_prof_op op, double t0) {
    wk_backend *in = inner(be);
    if (in->sync) in->sync(in);
    wk_prof_end(op, t0);
}

static void p_upload(wk_backend *be, void *dst, const void *src, size_t n) {
    double t0 = wk_prof_begin();
    inner(be)->upload(inner(be), dst, src, n);
    done(be, WK_PROF_COPY, t0);
}
static void p_download(wk_backend *be, void *dst, const void *src, size_t n) {
    double t0 = wk_prof_begin();
    inner(be)->download(inner(be), dst, src, n);
    done(be, WK_PROF_COPY, t0);
}
static void p_matmul(wk_backend *be, float *y, const float *x, const wk_mat *W, const float *bias, int n, int acc) {
    double t0 = wk_prof_begin();
    inner(be)->matmul(inner(be), y, x, W, bias, n, acc);
    done(be, W->w == ((wk_prof_backend *)be)->head ? WK_PROF_LOGITS : WK_PROF_MATMUL, t0);
}
static void p_matmul_f32(wk_backend *be, float *y, const float *x, const float *B, int n, int m, int k, float s,
                         int acc) {
    double t0 = wk_prof_begin();
    inner(be)->matmul_f32(inner(be), y, x, B, n, m, k, s, acc);
    done(be, WK_PROF_LORA, t0);
}
static void p_rmsnorm(wk_backend *be, float *y, const float *x, const float *w, int n, int dim, float eps) {
    double t0 = wk_prof_begin();
    inner(be)->rmsnorm(inner(be), y, x, w, n, dim, eps);
    done(be, WK_PROF_NORM, t0);
}
static void p_rope(wk_backend *be, float *x, const int32_t *pos, int n, int nh, int D, const float *inv_freq) {
    double t0 = wk_prof_begin();
    inner(be)->rope(inner(be), x, pos, n, nh, D, inv_freq);
    done(be, WK_PROF_ROPE, t0);
}
static void p_attention(wk_backend *be, float *out, const float *q, const float *k, const float *v, int n, int pos0,
                        const int32_t *pos, int H, int Hk, int D, int cap, float scale) {
    double t0 = wk_prof_begin();
    inner(be)->attention(inner(be), out, q, k, v, n, pos0, pos, H, Hk, D, cap, scale);
    done(be, WK_PROF_ATTENTION, t0);
}
static void p_swiglu(wk_backend *be, float *out, const float *g, const float *u, size_t n) {
    double t0 = wk_prof_begin();
    inner(be)->swiglu(inner(be), out, g, u, n);
    done(be, WK_PROF_ACT, t0);
}
static void p_add(wk_backend *be, float *y, const float *x, size_t n) {
    double t0 = wk_prof_begin();
    inner(be)->add(inner(be), y, x, n);
    done(be, WK_PROF_OTHER, t0);
}
static void p_embed(wk_backend *be, float *out, const wk_mat *E, const int32_t *ids, int n) {
    double t0 = wk_prof_begin();
    inner(be)->embed(inner(be), out, E, ids, n);
    done(be, WK_PROF_EMBED, t0);
}
static void p_kv_store(wk_backend *be, float *kc, float *vc, const float *k, const float *v, int n, int pos0,
                       const int32_t *pos, int Hk, int D, int cap) {
    double t0 = wk_prof_begin();
    inner(be)->kv_store(inner(be), kc, vc, k, v, n, pos0, pos, Hk, D, cap);
    done(be, WK_PROF_KV, t0);
}

/* Untimed pass-throughs that must see the inner backend (a device backend's own state). */
static void *p_alloc(wk_backend *be, size_t n) { return inner(be)->alloc(inner(be), n); }
static void p_free(wk_backend *be, void *p) { inner(be)->free(inner(be), p); }
static void p_sync(wk_backend *be) { inner(be)->sync(inner(be)); }
static wick_status p_check(wk_backend *be) { return inner(be)->check(inner(be)); }

void wk_prof_backend_init(wk_prof_backend *p, wk_backend *in, const void *head) {
    p->base = *in; /* everything not overridden below passes straight through */
    p->in = in;
    p->head = head;
    p->base.name = "profile";
    if (in->upload) p->base.upload = p_upload;
    if (in->download) p->base.download = p_download;
    if (in->matmul) p->base.matmul = p_matmul;
    if (in->matmul_f32) p->base.matmul_f32 = p_matmul_f32;
    if (in->rmsnorm) p->base.rmsnorm = p_rmsnorm;
    if (in->rope) p->base.rope = p_rope;
    if (in->attention) p->base.attention = p_attention;
    if (in->swiglu) p->base.swiglu = p_swiglu;
    if (in->add) p->base.add = p_add;
    if (in->embed) p->base.embed = p_embed;
    if (in->kv_store) p->base.kv_store = p_kv_store;
    if (in->alloc) p->base.alloc = p_alloc;
    if (in->free) p->base.free = p_free;
    if (in->sync) p->base.sync = p_sync;
    if (in->check) p->base.check = p_check;
    p->base.graph_capture = NULL; /* every op is synced and timed on its own */
    p->base.graph_replay = NULL;
    p->base.graph_free = NULL;
}

/* ---- the trainer's op table: its functions take no context, so the wrapped table is a
 * global (one profile at a time) */
static const wk_train_ops *g_tin;

static void t_rmsnorm_bwd(float *dx, const float *dy, const float *x, const float *w, int n, int dim, float eps,
                          int acc) {
    double t0 = wk_prof_begin();
    g_tin->rmsnorm_bwd(dx, dy, x, w, n, dim, eps, acc);
    wk_prof_end(WK_PROF_NORM, t0);
}
static void t_rope_bwd(float *d, const int32_t *pos, int n, int nh, int D, const float *inv_freq) {
    double t0 = wk_prof_begin();
    g_tin->rope_bwd(d, pos, n, nh, D, inv_freq);
    wk_prof_end(WK_PROF_ROPE, t0);
}
static void t_attn_fwd(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *rs,
                       int n, int H, int Hk, int D, float scale) {
    double t0 = wk_prof_begin();
    g_tin->attn_fwd(out, lse, q, k, v, rs, n, H, Hk, D, scale);
    wk_prof_end(WK_PROF_ATTENTION, t0);
}
static void t_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                       const float *q, const float *k, const float *v, const int32_t *rs, int n, int H, int Hk, int D,
                       float scale) {
    double t0 = wk_prof_begin();
    g_tin->attn_bwd(dq, dk, dv, dout, out, lse, q, k, v, rs, n, H, Hk, D, scale);
    wk_prof_end(WK_PROF_ATTENTION, t0);
}
static void t_swiglu_bwd(float *dg, float *du, const float *dact, const float *g, const float *u, size_t n) {
    double t0 = wk_prof_begin();
    g_tin->swiglu_bwd(dg, du, dact, g, u, n);
    wk_prof_end(WK_PROF_ACT, t0);
}
static double t_xent(float *logits, const int32_t *tgt, int rows, int V, float smoothing) {
    double t0 = wk_prof_begin();
    double r = g_tin->xent(logits, tgt, rows, V, smoothing);
    wk_prof_end(WK_PROF_LOSS, t0);
    return r;
}

const wk_train_ops *wk_prof_train_ops(const wk_train_ops *in) {
    static wk_train_ops ops = {t_rmsnorm_bwd, t_rope_bwd, t_attn_fwd, t_attn_bwd, t_swiglu_bwd, t_xent};
    g_tin = in;
    return &ops;
}
