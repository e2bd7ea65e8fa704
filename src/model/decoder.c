/*
 * decoder.c — the decoder forward pass (Qwen2/Qwen3/Llama/Mistral) as a fixed
 * sequence of backend op calls, and the session that owns the KV cache.
 *
 * Per layer:  h = x + o_proj(attn(rope(q), rope(k), v)) on rmsnorm(x)
 *             x' = h + down(silu(gate(n)) * up(n)) with n = rmsnorm(h)
 * Every linear layer is x·Wᵀ (+ bias) (+ s·(x·Aᵀ)·Bᵀ when an adapter is active).
 */
#include "model/model.h"

#include <math.h>

#define CHUNK 512 /* tokens per forward chunk: bounds the scratch arena */

struct wick_session {
    wick_model *m;
    wk_backend *be;
    int cap, pos;
    float *kc, *vc;           /* (L, Hk, cap, D) */
    /* scratch for one chunk of up to CHUNK tokens (one arena) */
    wk_arena ar;
    float *x;                 /* (CHUNK, C) residual stream */
    float *xn;                /* (CHUNK, C) normed input */
    float *q;                 /* (CHUNK, H*D) */
    float *k, *v;             /* (CHUNK, Hk*D) */
    float *att;               /* (CHUNK, H*D) */
    float *g, *u;             /* (CHUNK, F) */
    float *tmp;               /* (CHUNK, max(C,F,H*D)) LoRA rank / o_proj out */
    int32_t *posv;            /* (CHUNK) */
    const wick_adapter *ad;
    float ad_scale;
};

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
    size_t C = (size_t)c->hidden, F = (size_t)c->inter, HD = (size_t)c->n_heads * c->head_dim;
    size_t KD = (size_t)c->n_kv_heads * c->head_dim, W = WK_MAX(WK_MAX(C, F), HD);
    size_t kv = (size_t)c->n_layers * KD * (size_t)cap;
    size_t need = sizeof(float) * CHUNK * (2 * C + 2 * HD + 2 * KD + 2 * F + W) + sizeof(int32_t) * CHUNK + 16 * 64;
    s->kc = s->be->alloc(s->be, kv * sizeof(float));
    s->vc = s->be->alloc(s->be, kv * sizeof(float));
    wick_status st = (s->kc && s->vc) ? wk_arena_init(&s->ar, need, "session scratch") : WICK_ENOMEM;
    if (st) {
        if (!s->kc || !s->vc)
            wk_err(WICK_ENOMEM, "session: KV cache of %zu bytes for %d positions does not fit", 2 * kv * sizeof(float), cap);
        wick_session_free(s);
        return WICK_ENOMEM;
    }
    s->x = wk_arena_alloc(&s->ar, sizeof(float) * CHUNK * C);
    s->xn = wk_arena_alloc(&s->ar, sizeof(float) * CHUNK * C);
    s->q = wk_arena_alloc(&s->ar, sizeof(float) * CHUNK * HD);
    s->att = wk_arena_alloc(&s->ar, sizeof(float) * CHUNK * HD);
    s->k = wk_arena_alloc(&s->ar, sizeof(float) * CHUNK * KD);
    s->v = wk_arena_alloc(&s->ar, sizeof(float) * CHUNK * KD);
    s->g = wk_arena_alloc(&s->ar, sizeof(float) * CHUNK * F);
    s->u = wk_arena_alloc(&s->ar, sizeof(float) * CHUNK * F);
    s->tmp = wk_arena_alloc(&s->ar, sizeof(float) * CHUNK * W);
    s->posv = wk_arena_alloc(&s->ar, sizeof(int32_t) * CHUNK);
    *out = s;
    return WICK_OK;
}

void wick_session_free(wick_session *s) {
    if (!s) return;
    if (s->kc) s->be->free(s->be, s->kc);
    if (s->vc) s->be->free(s->be, s->vc);
    wk_arena_free(&s->ar);
    wk_free(s);
}

wick_status wick_session_set_adapter(wick_session *s, const wick_adapter *a, float scale) {
    if (a && wk_adapter_model(a) != s->m)
        return wk_err(WICK_EINVAL, "set_adapter: the adapter was loaded for another model (or opened without one)");
    s->ad = a;
    s->ad_scale = scale;
    return WICK_OK;
}

void wick_session_reset(wick_session *s) { s->pos = 0; }
int wick_session_pos(const wick_session *s) { return s->pos; }

/* y[n,out] = x·Wᵀ + b (+ adapter). tmp holds (n, r). */
static void linear(wick_session *s, float *y, const float *x, int l, wk_proj p, int n) {
    wk_backend *be = s->be;
    const wk_layer *L = &s->m->layers[l];
    be->matmul(be, y, x, &L->p[p], L->bias[p], n, 0);
    const wk_lora *lp = s->ad ? wk_adapter_pair(s->ad, l, p) : NULL;
    if (!lp || s->ad_scale == 0.f) return;
    int in = L->p[p].cols, out = L->p[p].rows;
    be->matmul_f32(be, s->tmp, x, lp->A, n, in, lp->r, 1.f, 0);
    be->matmul_f32(be, y, s->tmp, lp->B, n, lp->r, out, lp->scale * s->ad_scale, 1);
}

static void attention_block(wick_session *s, int l, int n) {
    const wk_config *c = &s->m->c;
    const wk_layer *L = &s->m->layers[l];
    wk_backend *be = s->be;
    int H = c->n_heads, Hk = c->n_kv_heads, D = c->head_dim, C = c->hidden;
    be->rmsnorm(be, s->xn, s->x, L->attn_norm, n, C, c->rms_eps);
    linear(s, s->q, s->xn, l, WK_P_Q, n);
    linear(s, s->k, s->xn, l, WK_P_K, n);
    linear(s, s->v, s->xn, l, WK_P_V, n);
    if (c->qk_norm) {
        be->rmsnorm(be, s->q, s->q, L->q_norm, n * H, D, c->rms_eps);
        be->rmsnorm(be, s->k, s->k, L->k_norm, n * Hk, D, c->rms_eps);
    }
    be->rope(be, s->q, s->posv, n, H, D, s->m->inv_freq);
    be->rope(be, s->k, s->posv, n, Hk, D, s->m->inv_freq);
    size_t lo = (size_t)l * Hk * s->cap * D;
    be->kv_store(be, s->kc + lo, s->vc + lo, s->k, s->v, n, s->pos, Hk, D, s->cap);
    be->attention(be, s->att, s->q, s->kc + lo, s->vc + lo, n, s->pos, H, Hk, D, s->cap, 1.f / sqrtf((float)D));
    linear(s, s->xn, s->att, l, WK_P_O, n);
    be->add(be, s->x, s->xn, (size_t)n * C);
}

static void mlp_block(wick_session *s, int l, int n) {
    const wk_config *c = &s->m->c;
    const wk_layer *L = &s->m->layers[l];
    wk_backend *be = s->be;
    be->rmsnorm(be, s->xn, s->x, L->mlp_norm, n, c->hidden, c->rms_eps);
    linear(s, s->g, s->xn, l, WK_P_GATE, n);
    linear(s, s->u, s->xn, l, WK_P_UP, n);
    be->swiglu(be, s->g, s->g, s->u, (size_t)n * c->inter);
    linear(s, s->xn, s->g, l, WK_P_DOWN, n);
    be->add(be, s->x, s->xn, (size_t)n * c->hidden);
}

/* Runs n <= CHUNK ids; logits (if not NULL) gets rows [first_row, n) of the head. */
static void forward_chunk(wick_session *s, const int32_t *ids, int n, float *logits, int first_row) {
    const wk_config *c = &s->m->c;
    wk_backend *be = s->be;
    for (int i = 0; i < n; i++) s->posv[i] = s->pos + i;
    be->embed(be, s->x, &s->m->embed, ids, n);
    for (int l = 0; l < c->n_layers; l++) {
        attention_block(s, l, n);
        mlp_block(s, l, n);
    }
    s->pos += n;
    if (!logits) return;
    int rows = n - first_row;
    float *xr = s->x + (size_t)first_row * c->hidden;
    be->rmsnorm(be, s->xn, xr, s->m->final_norm, rows, c->hidden, c->rms_eps);
    be->matmul(be, logits, s->xn, &s->m->lm_head, NULL, rows, 0);
}

wick_status wick_session_eval(wick_session *s, const int32_t *ids, int n, float *logits, int all_logits) {
    const wk_config *c = &s->m->c;
    if (n <= 0) return wk_err(WICK_EINVAL, "session_eval: no ids given");
    if (s->pos + n > s->cap)
        return wk_err(WICK_ERANGE, "context full: %d cached + %d new ids exceed the session's %d positions", s->pos, n, s->cap);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return wk_err(WICK_ERANGE, "token id %d at index %d is outside the vocabulary [0,%d)", ids[i], i, c->vocab);
    for (int done = 0; done < n;) {
        int k = WK_MIN(CHUNK, n - done), last = done + k == n;
        float *dst = NULL;
        int first = 0;
        if (logits && all_logits) dst = logits + (size_t)done * c->vocab;
        else if (logits && last) dst = logits, first = k - 1;
        forward_chunk(s, ids + done, k, dst, first);
        done += k;
    }
    s->be->sync(s->be);
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
