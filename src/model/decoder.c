/*
 * decoder.c — the decoder forward pass (Qwen2/Qwen3/Llama/Mistral) as a fixed
 * sequence of backend op calls, and the session that owns the KV cache.
 *
 * Per layer:  h = x + o_proj(attn(rope(q), rope(k), v)) on rmsnorm(x)
 *             x' = h + down(silu(gate(n)) * up(n)) with n = rmsnorm(h)
 * Every linear layer is x·Wᵀ (+ bias) (+ s·(x·Aᵀ)·Bᵀ when an adapter is active).
 */
#include "model/session.h"

#include <math.h>

#define CHUNK WK_SESSION_CHUNK /* the posv/hio stride; s->chunk rows of scratch */

/* Returns *p and advances it by n rounded up to 64 bytes. */
static void *carve(uint8_t **p, size_t n) {
    void *r = *p;
    *p += (n + 63) & ~(size_t)63;
    return r;
}

wick_status wick_session_new(wick_model *m, const wick_session_opts *o, wick_session **out) {
    *out = NULL;
    const wk_config *c = &m->c;
    int cap = o && o->max_seq > 0 ? o->max_seq : WK_MIN(c->max_pos > 0 ? c->max_pos : 4096, 4096);
    if (c->sliding_window > 0 && cap > c->sliding_window) {
        /* within the window, full causal attention is exact; beyond it Mistral's mask would differ */
        wk_log(WICK_LOG_INFO, "session: context limited to the sliding window of %d positions", c->sliding_window);
        cap = c->sliding_window;
    }
    wick_session *s = wk_calloc(sizeof *s, "session");
    if (!s) return WICK_ENOMEM;
    s->m = m;
    s->be = m->be;
    s->cap = cap;
    s->ad_scale = 1;
    /* device backends prefill in chunks of up to 2048 ids (no score matrix, larger products), but a
     * short session needs no more scratch than its positions (a server holds several sessions) */
    s->chunk = s->be->device_memory ? WK_MAX(WK_SESSION_CHUNK_HOST, WK_MIN(WK_SESSION_CHUNK, cap)) : WK_SESSION_CHUNK_HOST;
    if (o && o->chunk > 0 && s->be->device_memory) s->chunk = WK_MAX(WK_SESSION_CHUNK_HOST, WK_MIN(WK_SESSION_CHUNK, o->chunk));
    size_t C = (size_t)c->hidden, F = (size_t)c->inter, HD = (size_t)c->n_heads * c->head_dim;
    size_t KD = (size_t)c->n_kv_heads * c->head_dim, W = WK_MAX(WK_MAX(C, F), HD);
    size_t kv = (size_t)c->n_layers * KD * (size_t)cap;
    size_t R = (size_t)s->chunk;
    size_t need = sizeof(float) * R * (2 * C + 2 * HD + 2 * KD + 2 * F + W) + 2 * sizeof(int32_t) * CHUNK + 16 * 64;
    s->kc = s->be->alloc(s->be, kv * sizeof(float));
    s->vc = s->be->alloc(s->be, kv * sizeof(float));
    if (!s->kc || !s->vc) {
        wk_err(WICK_ENOMEM, "session: KV cache of %zu bytes for %d positions does not fit", 2 * kv * sizeof(float), cap);
        wick_session_free(s);
        return WICK_ENOMEM;
    }
    if (!(s->scr = s->be->alloc(s->be, need))) {
        wk_err_prefix(WICK_ENOMEM, "session scratch");
        wick_session_free(s);
        return WICK_ENOMEM;
    }
    uint8_t *p = s->scr;
    s->x = carve(&p, sizeof(float) * R * C);
    s->xn = carve(&p, sizeof(float) * R * C);
    s->q = carve(&p, sizeof(float) * R * HD);
    s->att = carve(&p, sizeof(float) * R * HD);
    s->k = carve(&p, sizeof(float) * R * KD);
    s->v = carve(&p, sizeof(float) * R * KD);
    s->g = carve(&p, sizeof(float) * R * F);
    s->u = carve(&p, sizeof(float) * R * F);
    s->tmp = carve(&p, sizeof(float) * R * W);
    s->posv = carve(&p, sizeof(int32_t) * 2 * CHUNK);
    s->idv = s->posv + CHUNK;
    *out = s;
    return WICK_OK;
}

void wick_session_free(wick_session *s) {
    if (!s) return;
    if (s->kc) s->be->free(s->be, s->kc);
    if (s->vc) s->be->free(s->be, s->vc);
    if (s->scr) s->be->free(s->be, s->scr);
    if (s->dlogits) s->be->free(s->be, s->dlogits);
    if (s->graph) s->be->graph_free(s->be, s->graph);
    wk_free(s);
}

wick_status wick_session_set_adapter(wick_session *s, const wick_adapter *a, float scale) {
    if (a && wk_adapter_model(a) != s->m)
        return wk_err(WICK_EINVAL, "set_adapter: the adapter was loaded for another model (or opened without one)");
    const wk_lora *dp = NULL;
    const wk_lora_group *dg = NULL;
    wick_status st = a ? wk_adapter_pairs_on(a, s->be, &dp, &dg) : WICK_OK; /* device backends: uploaded once */
    if (st) return st;
    s->ad = a;
    s->adp = dp;
    s->adg = dg;
    s->ad_scale = scale;
    return WICK_OK;
}

void wick_session_reset(wick_session *s) { s->pos = 0; }
int wick_session_pos(const wick_session *s) { return s->pos; }

/* The active adapter's pair for layer l / projection p in the backend's memory, or NULL. */
static const wk_lora *active_pair(const wick_session *s, int l, wk_proj p) {
    const wk_lora *h = s->ad && s->ad_scale != 0.f ? wk_adapter_pair(s->ad, l, p) : NULL;
    return h && s->adp ? &s->adp[(size_t)l * WK_P_COUNT + p] : h;
}

/* y[n,out] += the adapter's s·(x·Aᵀ)·Bᵀ for layer l / projection p (nothing without one). tmp holds (n, r). */
static void add_lora(wick_session *s, float *y, const float *x, int l, wk_proj p, int n) {
    const wk_lora *lp = active_pair(s, l, p);
    if (!lp) return;
    const wk_mat *W = &s->m->layers[l].p[p];
    int seg[2] = {0, n}, r = lp->r;
    const float *A = lp->A, *B = lp->B;
    float sc = lp->scale * s->ad_scale;
    s->be->lora_seg(s->be, y, x, n, W->cols, W->rows, 1, seg, &A, &B, &r, &sc, s->tmp);
}

/* y[n,out] (=|+=) x·Wᵀ + b (+ adapter). */
static void linear(wick_session *s, float *y, const float *x, int l, wk_proj p, int n, int acc) {
    const wk_layer *L = &s->m->layers[l];
    s->be->matmul(s->be, y, x, &L->p[p], L->bias[p], n, acc);
    add_lora(s, y, x, l, p, n);
}

/* x += linear(in): on device backends the product accumulates into x (one kernel less);
 * the CPU backends add a separate product (their accumulate path is the slow one). */
static void residual_linear(wick_session *s, const float *in, int l, wk_proj p, int n) {
    if (s->be->device_memory) {
        linear(s, s->x, in, l, p, n, 1);
        return;
    }
    linear(s, s->xn, in, l, p, n, 0);
    s->be->add(s->be, s->x, s->xn, (size_t)n * s->m->c.hidden);
}

/* The fused decode step (one row): a backend with matvec/rope_kv, q/k/v and gate/up
 * uploaded as groups, and (with an adapter) its grouped device layout. Per layer:
 * norm+qkv with RoPE and the KV store (a separate rope_kv with per-head q/k norms),
 * attention, o into the residual, norm+gate|up with silu(gate)·up, down into the
 * residual; an adapter adds no launch: each product also computes its group's shrink
 * and adds that shrink's expand (matvec's A and pB). */
static int fused_step(const wick_session *s, const wk_layer *L, int n) {
    return n == 1 && L->qkv.w && L->gate_up.w && s->be->matvec && s->be->rope_kv && (!s->ad || s->adg);
}

/* The adapter's group g of layer l (NULL: none active or nothing adapted there). */
static const wk_lora_group *active_group(const wick_session *s, int l, int g) {
    if (!s->ad || s->ad_scale == 0.f || !s->adg) return NULL;
    const wk_lora_group *r = &s->adg[(size_t)l * WK_G_COUNT + g];
    return r->ra > 0 ? r : NULL;
}

/* in's LoRA for group lg (projections p0..p1 of layer l): its shrink into s->tmp and the
 * expand of that shrink in the same launch, with the group's block-diagonal B described
 * (each projection's rows read only its own rank's columns). */
static wk_rowin row_in(wick_session *s, const float *x, int n_in, int l, const wk_lora_group *lg, int p0, int p1) {
    wk_rowin in = {.x = x, .scale = 1.f, .in = n_in};
    if (!lg) return in;
    in.A = lg->A, in.ra = lg->ra, in.t = s->tmp, in.pB = lg->B, in.ps = s->ad_scale;
    int cols = 0;
    for (int p = p0; p <= p1 && p1 > p0; p++) {
        const wk_lora *lp = wk_adapter_pair(s->ad, l, (wk_proj)p);
        in.pbrows[p - p0] = s->m->layers[l].p[p].rows;
        in.pbcols[p - p0] = lp && lp->A ? lp->r : 0;
        cols += in.pbcols[p - p0];
    }
    in.pnblk = p1 > p0 && cols == lg->ra ? p1 - p0 + 1 : 0; /* otherwise: B read as dense */
    return in;
}

static void attention_fused(wick_session *s, int l) {
    const wk_config *c = &s->m->c;
    const wk_layer *L = &s->m->layers[l];
    wk_backend *be = s->be;
    int H = c->n_heads, Hk = c->n_kv_heads, D = c->head_dim, C = c->hidden;
    wk_rowin in = row_in(s, s->x, C, l, active_group(s, l, WK_G_QKV), WK_P_Q, WK_P_V);
    in.nw = L->attn_norm, in.eps = c->rms_eps;
    float *k = s->q + (size_t)H * D, *v = k + (size_t)Hk * D;
    size_t lo = (size_t)l * Hk * s->cap * D;
    /* without per-head q/k norms the product rotates q, k and fills the caches itself */
    wk_rope_out ro = {s->posv, s->m->inv_freq, s->kc + lo, s->vc + lo, H, Hk, D, s->cap};
    if (!c->qk_norm) in.rope = &ro;
    be->matvec(be, s->q, &in, &L->qkv, L->qkv_bias, 0);
    if (c->qk_norm)
        be->rope_kv(be, s->q, k, v, s->kc + lo, s->vc + lo, s->posv, H, Hk, D, s->cap, s->m->inv_freq, L->q_norm,
                    L->k_norm, c->rms_eps, NULL);
    be->attention(be, s->att, s->q, s->kc + lo, s->vc + lo, 1, s->pos, s->posv, H, Hk, D, s->cap, 1.f / sqrtf((float)D));
    in = row_in(s, s->att, H * D, l, active_group(s, l, WK_G_O), WK_P_O, WK_P_O);
    be->matvec(be, s->x, &in, &L->p[WK_P_O], L->bias[WK_P_O], 1);
}

static void mlp_fused(wick_session *s, int l) {
    const wk_config *c = &s->m->c;
    const wk_layer *L = &s->m->layers[l];
    int F = c->inter;
    wk_rowin in = row_in(s, s->x, c->hidden, l, active_group(s, l, WK_G_GU), WK_P_GATE, WK_P_UP);
    in.nw = L->mlp_norm, in.eps = c->rms_eps;
    in.glu = 1; /* silu(gate)·up written by the product itself: F values, no SwiGLU launch */
    s->be->matvec(s->be, s->g, &in, &L->gate_up, L->gate_up_bias, 0);
    in = row_in(s, s->g, F, l, active_group(s, l, WK_G_DOWN), WK_P_DOWN, WK_P_DOWN);
    s->be->matvec(s->be, s->x, &in, &L->p[WK_P_DOWN], L->bias[WK_P_DOWN], 1);
}

static void attention_block(wick_session *s, int l, int n) {
    const wk_config *c = &s->m->c;
    const wk_layer *L = &s->m->layers[l];
    wk_backend *be = s->be;
    int H = c->n_heads, Hk = c->n_kv_heads, D = c->head_dim, C = c->hidden;
    be->rmsnorm(be, s->xn, s->x, L->attn_norm, n, C, c->rms_eps);
    float *q = s->q, *k = s->k, *v = s->v;
    int fused = n == 1 && L->qkv.w; /* one row: [q | k | v] back to back from one product */
    if (fused) {
        be->matmul(be, s->q, s->xn, &L->qkv, L->qkv_bias, 1, 0);
        k = q + (size_t)H * D, v = k + (size_t)Hk * D;
        add_lora(s, q, s->xn, l, WK_P_Q, 1);
        add_lora(s, k, s->xn, l, WK_P_K, 1);
        add_lora(s, v, s->xn, l, WK_P_V, 1);
    } else {
        linear(s, q, s->xn, l, WK_P_Q, n, 0);
        linear(s, k, s->xn, l, WK_P_K, n, 0);
        linear(s, v, s->xn, l, WK_P_V, n, 0);
    }
    if (c->qk_norm) {
        be->rmsnorm(be, q, q, L->q_norm, n * H, D, c->rms_eps);
        be->rmsnorm(be, k, k, L->k_norm, n * Hk, D, c->rms_eps);
    }
    if (fused) { /* q and k heads are adjacent: rotate them in one pass */
        be->rope(be, q, s->posv, 1, H + Hk, D, s->m->inv_freq);
    } else {
        be->rope(be, q, s->posv, n, H, D, s->m->inv_freq);
        be->rope(be, k, s->posv, n, Hk, D, s->m->inv_freq);
    }
    size_t lo = (size_t)l * Hk * s->cap * D;
    be->kv_store(be, s->kc + lo, s->vc + lo, k, v, n, s->pos, s->posv, Hk, D, s->cap);
    be->attention(be, s->att, q, s->kc + lo, s->vc + lo, n, s->pos, s->posv, H, Hk, D, s->cap, 1.f / sqrtf((float)D));
    residual_linear(s, s->att, l, WK_P_O, n);
}

static void mlp_block(wick_session *s, int l, int n) {
    const wk_config *c = &s->m->c;
    const wk_layer *L = &s->m->layers[l];
    wk_backend *be = s->be;
    be->rmsnorm(be, s->xn, s->x, L->mlp_norm, n, c->hidden, c->rms_eps);
    if (n == 1 && L->gate_up.w) { /* one row: [gate | up] from one product */
        be->matmul(be, s->g, s->xn, &L->gate_up, L->gate_up_bias, 1, 0);
        add_lora(s, s->g, s->xn, l, WK_P_GATE, 1);
        add_lora(s, s->g + c->inter, s->xn, l, WK_P_UP, 1);
        be->swiglu(be, s->g, s->g, s->g + c->inter, (size_t)c->inter);
    } else {
        linear(s, s->g, s->xn, l, WK_P_GATE, n, 0);
        linear(s, s->u, s->xn, l, WK_P_UP, n, 0);
        be->swiglu(be, s->g, s->g, s->u, (size_t)n * c->inter);
    }
    residual_linear(s, s->g, l, WK_P_DOWN, n);
}

/* The ops of one chunk of n ids (already uploaded): embedding, layers, and the head's
 * rows [first_row, n) into dst (backend memory; NULL: no head). A decode graph records these. */
typedef struct {
    wick_session *s;
    int n, first_row;
    float *dst;
} chunk_ops;

static void run_chunk(void *arg) {
    const chunk_ops *a = arg;
    wick_session *s = a->s;
    const wk_config *c = &s->m->c;
    wk_backend *be = s->be;
    be->embed(be, s->x, &s->m->embed, s->idv, a->n);
    for (int l = 0; l < c->n_layers; l++) {
        if (fused_step(s, &s->m->layers[l], a->n)) {
            attention_fused(s, l);
            mlp_fused(s, l);
            continue;
        }
        attention_block(s, l, a->n);
        mlp_block(s, l, a->n);
    }
    if (!a->dst) return;
    int rows = a->n - a->first_row;
    if (rows == 1 && be->matvec) { /* final norm inside the head's product */
        wk_rowin in = {.x = s->x + (size_t)a->first_row * c->hidden, .nw = s->m->final_norm, .eps = c->rms_eps,
                       .scale = 1.f, .in = c->hidden};
        be->matvec(be, a->dst, &in, &s->m->lm_head, NULL, 0);
        return;
    }
    be->rmsnorm(be, s->xn, s->x + (size_t)a->first_row * c->hidden, s->m->final_norm, rows, c->hidden, c->rms_eps);
    be->matmul(be, a->dst, s->xn, &s->m->lm_head, NULL, rows, 0);
}

/* One-id steps on a graph backend: the first runs directly (sizing the backend's
 * scratch), the next is captured, later ones replay (positions and ids are read from
 * backend memory, so one graph serves every position). A graph records the adapter's
 * pointers and scale and the weights' pointers: selecting another adapter or scale, or
 * merging, captures a new one. */
static void decode_step(wick_session *s, const chunk_ops *a) {
    wk_backend *be = s->be;
    int same = s->g_ad == s->ad && s->g_scale == s->ad_scale && s->g_gen == s->m->weights_gen;
    if (s->graph && same && be->graph_replay(be, s->graph) == 0) return;
    if (s->graph) be->graph_free(be, s->graph);
    s->graph = NULL;
    s->g_ad = s->ad, s->g_scale = s->ad_scale, s->g_gen = s->m->weights_gen;
    if (s->graph_warm && (s->graph = be->graph_capture(be, run_chunk, (void *)a))) return;
    s->graph_warm = 1;
    run_chunk((void *)a);
}

/* Runs n <= s->chunk ids; logits (if not NULL) gets rows [first_row, n) of the head (keep:
 * device backends leave them in s->dlogits). */
static void forward_chunk(wick_session *s, const int32_t *ids, int n, float *logits, int first_row, int keep) {
    const wk_config *c = &s->m->c;
    wk_backend *be = s->be;
    for (int i = 0; i < n; i++) s->hio[i] = s->pos + i, s->hio[CHUNK + i] = ids[i];
    be->upload(be, s->posv, s->hio, sizeof(int32_t) * (size_t)(CHUNK + n));
    chunk_ops a = {s, n, first_row, logits && be->device_memory ? s->dlogits : logits};
    if (n == 1 && logits && be->graph_capture) decode_step(s, &a);
    else run_chunk(&a);
    s->pos += n;
    if (logits && be->device_memory && !keep)
        be->download(be, logits, s->dlogits, sizeof(float) * (size_t)(n - first_row) * c->vocab);
}

/* Device backends: makes room for `rows` rows of device-side logits (session.h). */
wick_status wk_session_reserve_logits(wick_session *s, int rows) {
    if (!s->be->device_memory || rows <= s->dlogits_rows) return WICK_OK;
    if (s->dlogits) s->be->free(s->be, s->dlogits);
    if (s->graph) s->be->graph_free(s->be, s->graph); /* it wrote to the old buffer */
    s->graph = NULL;
    s->dlogits = s->be->alloc(s->be, sizeof(float) * ((size_t)rows * s->m->c.vocab + 4)); /* + the pick's 4 */
    s->dlogits_rows = s->dlogits ? rows : 0;
    return s->dlogits ? WICK_OK : wk_err_prefix(WICK_ENOMEM, "session logits");
}

/* wick_session_eval; keep: the logits stay in s->dlogits (device backends; logits only says
 * that they are wanted). */
static wick_status eval_ids(wick_session *s, const int32_t *ids, int n, float *logits, int all_logits, int keep) {
    const wk_config *c = &s->m->c;
    if (n <= 0) return wk_err(WICK_EINVAL, "session_eval: no ids given");
    if (s->pos + n > s->cap)
        return wk_err(WICK_ERANGE, "context full: %d cached + %d new ids exceed the session's %d positions", s->pos, n, s->cap);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return wk_err(WICK_ERANGE, "token id %d at index %d is outside the vocabulary [0,%d)", ids[i], i, c->vocab);
    wick_status st = logits ? wk_session_reserve_logits(s, all_logits ? WK_MIN(n, s->chunk) : 1) : WICK_OK;
    const wk_lora *dp;
    const wk_lora_group *dg;
    if (!st && s->adp) st = wk_adapter_pairs_on(s->ad, s->be, &dp, &dg); /* refreshes a copy trained since */
    if (st) return st;
    for (int done = 0; done < n;) {
        int k = WK_MIN(s->chunk, n - done), last = done + k == n;
        float *dst = NULL;
        int first = 0;
        if (logits && all_logits) dst = logits + (size_t)done * c->vocab;
        else if (logits && last) dst = logits, first = k - 1;
        forward_chunk(s, ids + done, k, dst, first, keep);
        done += k;
    }
    if (!keep) s->be->sync(s->be);
    return s->be->check ? s->be->check(s->be) : WICK_OK;
}

wick_status wick_session_eval(wick_session *s, const int32_t *ids, int n, float *logits, int all_logits) {
    return eval_ids(s, ids, n, logits, all_logits, 0);
}

int wk_session_can_pick(const wick_session *s) { return s && s->be->device_memory && s->be->pick; }

wick_status wk_session_eval_pick(wick_session *s, const int32_t *ids, int n, int32_t *id, float *logprob) {
    if (!wk_session_can_pick(s)) return wk_err(WICK_EUNSUPPORTED, "session: the backend has no device pick");
    wick_status st = wk_session_reserve_logits(s, 1);
    if (!st) st = eval_ids(s, ids, n, s->dlogits, 0, 1); /* the last row's logits, left in s->dlogits */
    if (st) return st;
    float *dout = s->dlogits + (size_t)s->dlogits_rows * s->m->c.vocab, out[3];
    s->be->pick(s->be, dout, s->dlogits, s->m->c.vocab);
    s->be->download(s->be, out, dout, sizeof out);
    if ((st = s->be->check ? s->be->check(s->be) : WICK_OK)) return st;
    int32_t i;
    memcpy(&i, &out[2], sizeof i);
    if (i < 0 || i >= s->m->c.vocab) return wk_err(WICK_EINVAL, "sampler: every logit is -inf or NaN");
    *id = i;
    *logprob = -logf(out[1]); /* the max's own term is 1: log p(max) = -log Σ exp(x - max) */
    return WICK_OK;
}

wick_status wick_model_logits(wick_model *m, const wick_adapter *a, float scale, const int32_t *ids, int B, int T,
                              float *out) {
    if (B <= 0 || T <= 0) return wk_err(WICK_EINVAL, "logits: need at least one sequence of at least one id");
    wick_session_opts so = {.max_seq = T};
    wick_session *s;
    wick_status st = wick_session_new(m, &so, &s);
    if (st) return st;
    st = wick_session_set_adapter(s, a, scale);
    for (int b = 0; b < B && !st; b++) {
        wick_session_reset(s);
        st = wick_session_eval(s, ids + (size_t)b * T, T, out + (size_t)b * T * m->c.vocab, 1);
        if (st) wk_err_prefix(st, "sequence %d", b);
    }
    wick_session_free(s);
    return st;
}
