/*
 * batch_device.c — the batched decode step on a backend with the batched ops (backend.h:
 * bmatmul, brope_kv, battention, brmsnorm, bswiglu; the CUDA backend). n rows, each its own
 * session, run in one forward of a fixed op sequence over the model's own step buffers:
 *   per layer: norm (+ previous down's LoRA expand) → q|k|v product (+ shrink, expand) → RoPE
 *   and KV store into each row's cache (+ the expand) → attention of every row over its cache →
 *   o product into the residual (+ shrink, expand) → norm (+ o's expand) → gate|up product
 *   (+ shrink, expand) → SwiGLU (+ the expand) → down product into the residual (+ shrink, expand).
 * Each product's shrink and expand (into e) run beside it; the op after it adds e.
 * Everything that differs between steps — ids, each row's caches, position and adapter — is in
 * one table in backend memory (wk_brow) uploaded before the step; a row's adapter is a pointer
 * to that adapter's entries (wk_bent per layer and group), which live with its device copy
 * (wk_adapter_bents_on), so a new mix of adapters costs no upload. So on a graph backend the
 * step for n rows is captured once (per row count, LoRA stride and head/no head) and replayed
 * for any sessions, positions and mix of adapters.
 * Rows run grouped by adapter (rows of one adapter then find its A and B in L2) and the
 * final norm writes each row back at its caller's place, so the logits come back in one download.
 * A model holds one such state (m->bst), made at the first batched step; a mutex serialises
 * the steps of threads sharing the model.
 */
#include "model/batch.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#define BD_GRAPHS 24 /* graphs kept (one per (rows, LoRA stride, head)); the oldest is replaced */

typedef struct {
    int n, R, head, warm; /* warm: a direct run of this shape sized the backend's scratch */
    void *g;
} bd_graph;

struct wk_bstate {
    pthread_mutex_t mu;
    int cap;                  /* rows the buffers hold */
    void *scr;                /* backend memory, carved below */
    float *x, *xn;            /* (cap, C) residual stream, normed input */
    float *qkv;               /* (cap, H*D + 2*Hk*D) */
    float *q, *att;           /* (cap, H*D) */
    float *gu;                /* (cap, 2F) gate | up */
    float *g;                 /* (cap, F) */
    float *t;                 /* (cap, WK_BLORA_MAX_R) the LoRA shrinks */
    float *e;                 /* (cap, max(q|k|v, 2F, C)) the LoRA expands of the current product */
    float *logits;            /* (cap, V) */
    int32_t *ids;             /* (cap) ids, followed by the row table */
    wk_brow *rows;            /* (cap) */
    size_t ids_bytes;         /* the ids region, padded */
    unsigned char *hdr;       /* host staging of ids + rows (one upload) */
    const wick_adapter **ads; /* (cap) this step's distinct adapters, ... */
    const wk_bent **bents;    /* (cap) ... and their entries (backend memory) */
    int *perm;                /* (cap) table row j runs session perm[j] (grouped by adapter) */
    bd_graph gr[BD_GRAPHS];
    int next;
    unsigned gen;             /* the model's weights_gen the graphs were captured with */
};

static pthread_mutex_t g_make = PTHREAD_MUTEX_INITIALIZER;

static void drop_graphs(wk_bstate *st, wk_backend *be) {
    for (int i = 0; i < BD_GRAPHS; i++) {
        if (st->gr[i].g) be->graph_free(be, st->gr[i].g);
        st->gr[i] = (bd_graph){0};
    }
}

void wk_bstate_free(wick_model *m) {
    wk_bstate *st = m->bst;
    if (!st) return;
    drop_graphs(st, m->be);
    if (st->scr) m->be->free(m->be, st->scr);
    wk_free(st->hdr), wk_free(st->ads), wk_free(st->bents), wk_free(st->perm);
    pthread_mutex_destroy(&st->mu);
    wk_free(st);
    m->bst = NULL;
}

static void *carve(uint8_t **p, size_t n) {
    void *r = *p;
    *p += (n + 63) & ~(size_t)63;
    return r;
}

/* Makes the buffers hold at least n rows (powers of two from 8; graphs are dropped when they move). */
static wick_status reserve_rows(wick_model *m, wk_bstate *st, int n) {
    if (n <= st->cap) return WICK_OK;
    const wk_config *c = &m->c;
    wk_backend *be = m->be;
    int cap = 8;
    while (cap < n) cap *= 2;
    size_t R = (size_t)cap, C = (size_t)c->hidden, F = (size_t)c->inter, HD = (size_t)c->n_heads * c->head_dim;
    size_t QKV = HD + 2 * (size_t)c->n_kv_heads * c->head_dim, ib = (sizeof(int32_t) * R + 63) & ~(size_t)63;
    size_t E = WK_MAX(WK_MAX(QKV, 2 * F), C);
    size_t need = sizeof(float) * R * (2 * C + QKV + 2 * HD + 3 * F + WK_BLORA_MAX_R + E + (size_t)c->vocab) + ib +
                  sizeof(wk_brow) * R + 16 * 64;
    drop_graphs(st, be);
    if (st->scr) be->free(be, st->scr);
    wk_free(st->hdr), wk_free(st->ads), wk_free(st->bents), wk_free(st->perm);
    st->cap = 0;
    st->scr = be->alloc(be, need);
    st->hdr = wk_malloc(ib + sizeof(wk_brow) * R, "batch step table");
    st->ads = wk_malloc(sizeof(*st->ads) * R, "batch step adapters");
    st->bents = wk_malloc(sizeof(*st->bents) * R, "batch step adapter entries");
    st->perm = wk_malloc(sizeof(int) * R, "batch step order");
    if (!st->scr || !st->hdr || !st->ads || !st->bents || !st->perm) return wk_err_prefix(WICK_ENOMEM, "batch step buffers for %d rows", cap);
    uint8_t *p = st->scr;
    st->x = carve(&p, sizeof(float) * R * C), st->xn = carve(&p, sizeof(float) * R * C);
    st->qkv = carve(&p, sizeof(float) * R * QKV);
    st->q = carve(&p, sizeof(float) * R * HD), st->att = carve(&p, sizeof(float) * R * HD);
    st->gu = carve(&p, sizeof(float) * R * 2 * F), st->g = carve(&p, sizeof(float) * R * F);
    st->t = carve(&p, sizeof(float) * R * WK_BLORA_MAX_R);
    st->e = carve(&p, sizeof(float) * R * E);
    st->logits = carve(&p, sizeof(float) * R * (size_t)c->vocab);
    st->ids = carve(&p, ib);
    st->rows = (wk_brow *)(void *)((uint8_t *)st->ids + ib); /* right after the ids: one upload */
    st->ids_bytes = ib;
    st->cap = cap;
    return WICK_OK;
}

/* The row's adapter, or NULL when it runs on the base. */
static const wick_adapter *row_adapter(const wick_session *s) { return s->ad && s->ad_scale != 0.f ? s->ad : NULL; }

/* 1 when the batched ops can run these rows; *R: the shrink stride (0: no adapter anywhere). */
static int applicable(wick_session *const *ss, int n, int *R) {
    const wick_model *m = ss[0]->m;
    const wk_config *c = &m->c;
    wk_backend *be = m->be;
    *R = 0;
    if (!be->device_memory || !be->bshape_ok || !be->bmatmul || !be->brope_kv || !be->battention || !be->brmsnorm ||
        !be->bswiglu || !be->bshape_ok(be, c->n_heads, c->n_kv_heads, c->head_dim))
        return 0;
    for (int l = 0; l < c->n_layers; l++) {
        const wk_layer *L = &m->layers[l];
        if (!L->qkv.w || !L->gate_up.w) return 0;
        for (int p = WK_P_Q; p <= WK_P_UP; p++) /* biases only on some of a fused group: not read here */
            if (p != WK_P_O && L->bias[p] && !(p <= WK_P_V ? L->qkv_bias : L->gate_up_bias)) return 0;
    }
    int rmax = 0;
    for (int i = 0; i < n; i++) {
        if (!row_adapter(ss[i])) continue;
        if (!ss[i]->adg) return 0;
        for (size_t k = 0; k < (size_t)c->n_layers * WK_G_COUNT; k++) rmax = WK_MAX(rmax, ss[i]->adg[k].ra);
    }
    if (rmax > WK_BLORA_MAX_R) return 0;
    if (rmax > 0) {
        *R = 16;
        while (*R < rmax) *R *= 2;
    }
    return 1;
}

/* This step's row table: each row's caches, position and its adapter's entries (kept with the
 * adapter's device copy, wk_adapter_bents_on), rows grouped by adapter. */
static wick_status build_tables(const wick_model *m, wk_bstate *st, wick_session *const *ss, const int32_t *ids, int n) {
    int nad = 0;
    int *slot = (int *)(void *)st->hdr; /* the ids region is filled last: a scratch for the slots meanwhile */
    for (int i = 0; i < n; i++) {
        const wick_adapter *a = row_adapter(ss[i]);
        int k = 0;
        while (a && k < nad && st->ads[k] != a) k++;
        slot[i] = a ? k : -1;
        if (!a || k < nad) continue;
        wick_status s = wk_adapter_bents_on(a, m->be, &st->bents[nad]);
        if (s) return s;
        st->ads[nad++] = a;
    }
    int j = 0; /* rows grouped by adapter (base first), each group in the caller's order */
    for (int k = -1; k < nad; k++)
        for (int i = 0; i < n; i++)
            if (slot[i] == k) st->perm[j++] = i;
    wk_brow *hr = (wk_brow *)(void *)(st->hdr + st->ids_bytes);
    for (j = 0; j < n; j++) {
        int i = st->perm[j];
        const wick_session *r = ss[i];
        hr[j] = (wk_brow){r->kc, r->vc, slot[i] >= 0 ? st->bents[slot[i]] : NULL, r->cap, r->pos, r->ad_scale, i};
    }
    int32_t *hid = (int32_t *)(void *)st->hdr; /* over the slots, which are used up */
    for (j = 0; j < n; j++) hid[j] = ids[st->perm[j]];
    return WICK_OK;
}

/* One step's ops (a graph records them). */
typedef struct {
    const wick_model *m;
    wk_bstate *st;
    int n, R, head;
} bd_ctx;

/* Several rows read the adapters' bf16 copies (half the bytes of the f32 ones); one row reads
 * the f32 ones, which measured faster there (as in the one-row product, decoder.c). */
static wk_blora lora(const bd_ctx *c, int l, int g) {
    return (wk_blora){c->st->rows, l * WK_G_COUNT + g, c->st->t, c->R, c->st->e, c->n >= 2};
}

static void layer_ops(const bd_ctx *c, int l) {
    const wick_model *m = c->m;
    const wk_config *cf = &m->c;
    const wk_layer *L = &m->layers[l];
    wk_bstate *st = c->st;
    wk_backend *be = m->be;
    int n = c->n, H = cf->n_heads, Hk = cf->n_kv_heads, D = cf->head_dim, C = cf->hidden, F = cf->inter;
    wk_blora prev = lora(c, l - 1, WK_G_DOWN), qkv = lora(c, l, WK_G_QKV), o = lora(c, l, WK_G_O);
    wk_blora gu = lora(c, l, WK_G_GU), down = lora(c, l, WK_G_DOWN);
    be->brmsnorm(be, st->xn, st->x, L->attn_norm, n, C, cf->rms_eps, l ? &prev : NULL, NULL);
    be->bmatmul(be, st->qkv, st->xn, &L->qkv, L->qkv_bias, n, 0, &qkv);
    be->brope_kv(be, st->q, st->qkv, n, st->rows, l, H, Hk, D, m->inv_freq, cf->qk_norm ? L->q_norm : NULL,
                 cf->qk_norm ? L->k_norm : NULL, cf->rms_eps, &qkv);
    be->battention(be, st->att, st->q, n, st->rows, l, H, Hk, D, 1.f / sqrtf((float)D));
    be->bmatmul(be, st->x, st->att, &L->p[WK_P_O], L->bias[WK_P_O], n, 1, &o);
    be->brmsnorm(be, st->xn, st->x, L->mlp_norm, n, C, cf->rms_eps, &o, NULL);
    be->bmatmul(be, st->gu, st->xn, &L->gate_up, L->gate_up_bias, n, 0, &gu);
    be->bswiglu(be, st->g, st->gu, n, F, &gu);
    be->bmatmul(be, st->x, st->g, &L->p[WK_P_DOWN], L->bias[WK_P_DOWN], n, 1, &down);
}

static void run_ops(void *arg) {
    const bd_ctx *c = arg;
    const wick_model *m = c->m;
    wk_bstate *st = c->st;
    wk_backend *be = m->be;
    be->embed(be, st->x, &m->embed, st->ids, c->n);
    for (int l = 0; l < m->c.n_layers; l++) layer_ops(c, l);
    if (!c->head) return; /* the last down's expand only matters to the head */
    wk_blora last = lora(c, m->c.n_layers - 1, WK_G_DOWN);
    be->brmsnorm(be, st->xn, st->x, m->final_norm, c->n, m->c.hidden, m->c.rms_eps, &last, st->rows); /* caller's order */
    be->matmul(be, st->logits, st->xn, &m->lm_head, NULL, c->n, 0);
}

/* Replays the graph of c's shape, or runs the ops (directly the first time, then captured). */
static void run_step(wk_bstate *st, bd_ctx *c, wk_backend *be) {
    if (!be->graph_capture) {
        run_ops(c);
        return;
    }
    bd_graph *g = NULL;
    for (int i = 0; i < BD_GRAPHS && !g; i++)
        if (st->gr[i].warm && st->gr[i].n == c->n && st->gr[i].R == c->R && st->gr[i].head == c->head) g = &st->gr[i];
    if (g && g->g && be->graph_replay(be, g->g) == 0) return;
    if (g && g->g) be->graph_free(be, g->g), g->g = NULL; /* stale: backend scratch moved */
    if (!g) {
        g = &st->gr[st->next];
        st->next = (st->next + 1) % BD_GRAPHS;
        if (g->g) be->graph_free(be, g->g);
        *g = (bd_graph){c->n, c->R, c->head, 0, NULL};
    }
    if (g->warm && (g->g = be->graph_capture(be, run_ops, c))) return;
    g->warm = 1;
    run_ops(c);
}

static wk_bstate *state_of(wick_model *m) {
    pthread_mutex_lock(&g_make);
    if (!m->bst && (m->bst = wk_calloc(sizeof *m->bst, "batch step state"))) pthread_mutex_init(&m->bst->mu, NULL);
    pthread_mutex_unlock(&g_make);
    return m->bst;
}

/* Runs rows [0, n) (n <= WK_SESSION_CHUNK_HOST) with the state locked. */
static wick_status step_locked(wick_model *m, wk_bstate *st, wick_session *const *ss, const int32_t *ids, int n,
                               float *logits, int R) {
    wk_backend *be = m->be;
    wick_status s = reserve_rows(m, st, n);
    if (!s) s = build_tables(m, st, ss, ids, n);
    if (s) return s;
    if (st->gen != m->weights_gen) drop_graphs(st, be), st->gen = m->weights_gen;
    be->upload(be, st->ids, st->hdr, st->ids_bytes + sizeof(wk_brow) * (size_t)n);
    bd_ctx c = {m, st, n, R, logits != NULL};
    run_step(st, &c, be);
    for (int i = 0; i < n; i++) ss[i]->pos++;
    if (logits) be->download(be, logits, st->logits, sizeof(float) * (size_t)n * m->c.vocab);
    return WICK_OK;
}

wick_status wk_batch_device(wick_session *const *ss, const int32_t *ids, int n, float *logits, int *done) {
    int R;
    *done = 0;
    if (n < 2 || n > WK_SESSION_CHUNK_HOST || !applicable(ss, n, &R)) return WICK_OK;
    *done = 1;
    wick_model *m = ss[0]->m;
    wk_bstate *st = state_of(m);
    if (!st) return WICK_ENOMEM;
    pthread_mutex_lock(&st->mu);
    wick_status s = step_locked(m, st, ss, ids, n, logits, R);
    pthread_mutex_unlock(&st->mu);
    m->be->sync(m->be);
    if (s) return s;
    return m->be->check ? m->be->check(m->be) : WICK_OK;
}
