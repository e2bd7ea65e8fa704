/*
 * batch.c — the batched decode step: n sessions of one model, each with its own KV
 * cache, position and adapter, advance by one id each in ONE forward.
 *
 * Rows are ordered by (adapter, scale) so that every adapter is one contiguous segment;
 * the base projections are one product over all rows (weights read once per step), the
 * adapters go through be->lora_seg (one call per projection for all segments), and
 * attention runs per row against that row's own cache (kv_store + attention with n = 1).
 * Everything is backend ops on backend memory, so the same code runs on every backend; a
 * backend with the batched ops (CUDA) takes the step in batch_device.c instead.
 * The forward borrows the scratch of the first session of each group of
 * WK_SESSION_CHUNK_HOST rows; the logits come back in the caller's order.
 */
#include "model/batch.h"

#include <math.h>
#include <string.h>

/* One group of rows in adapter order: r[i] is the session of row i. */
typedef struct {
    wick_session *const *r;
    int n;
    wk_backend *be;
    const wick_model *m;
    wick_session *s0;        /* owner of the scratch */
    int nseg;
    int *seg;                /* (nseg + 1) row bounds of the adapter segments */
    const wick_adapter **ad; /* (nseg) adapter of each segment (NULL: base) */
    float *ad_scale;         /* (nseg) */
} bgroup;

/* Appends the runs of segments with a pair for (l, p) to lora_seg, one call per contiguous run.
 * Several rows on a bf16 model: the adapters' bf16 copies where the backend reads them
 * (lora_seg16; half the bytes); one row reads the f32 ones (as a session stepped alone). */
static void lora_segments(const bgroup *b, float *y, const float *x, int l, wk_proj p) {
    const wk_mat *W = &b->m->layers[l].p[p];
    const float *A[WK_SESSION_CHUNK_HOST], *B[WK_SESSION_CHUNK_HOST]; /* segments <= rows of a group */
    const uint16_t *A16[WK_SESSION_CHUNK_HOST], *B16[WK_SESSION_CHUNK_HOST];
    int r[WK_SESSION_CHUNK_HOST], seg[WK_SESSION_CHUNK_HOST + 1], k = 0;
    int h16 = b->be->lora_seg16 && b->n >= 2 && W->dt == WICK_DT_BF16 && !W->qtype && !b->be->device_memory &&
              wk_lora16_enabled();
    float sc[WK_SESSION_CHUNK_HOST];
    for (int g = 0; g <= b->nseg; g++) {
        const wk_lora *lp = g < b->nseg && b->ad[g] && b->ad_scale[g] != 0.f ? wk_adapter_pair(b->ad[g], l, p) : NULL;
        const wick_session *owner = g < b->nseg ? b->r[b->seg[g]] : NULL;
        if (lp && owner->adp) lp = &owner->adp[(size_t)l * WK_P_COUNT + p]; /* device backends: the device copy */
        if (lp && lp->A) {
            if (k == 0) seg[0] = b->seg[g];
            A[k] = lp->A, B[k] = lp->B, r[k] = lp->r, sc[k] = lp->scale * b->ad_scale[g];
            A16[k] = h16 ? wk_adapter_bf16(b->ad[g], lp->A) : NULL; /* A and B: one buffer */
            B16[k] = A16[k] ? A16[k] + (lp->B - lp->A) : NULL; /* B's copy: in tiles */
            seg[++k] = b->seg[g + 1];
            continue;
        }
        if (k && h16)
            b->be->lora_seg16(b->be, y, x, b->n, W->cols, W->rows, k, seg, A, B, A16, B16, r, sc, b->s0->tmp);
        else if (k)
            b->be->lora_seg(b->be, y, x, b->n, W->cols, W->rows, k, seg, A, B, r, sc, b->s0->tmp);
        k = 0;
    }
}

/* y[n,out] (=|+=) x·Wᵀ + b + each row's adapter. */
static void blinear(const bgroup *b, float *y, const float *x, int l, wk_proj p, int acc) {
    const wk_layer *L = &b->m->layers[l];
    b->be->matmul(b->be, y, x, &L->p[p], L->bias[p], b->n, acc);
    lora_segments(b, y, x, l, p);
}

/* x += linear(in), as decoder.c: accumulate on device backends, a separate add on the CPU. */
static void bresidual(const bgroup *b, const float *in, int l, wk_proj p) {
    wick_session *s = b->s0;
    if (b->be->device_memory) {
        blinear(b, s->x, in, l, p, 1);
        return;
    }
    blinear(b, s->xn, in, l, p, 0);
    b->be->add(b->be, s->x, s->xn, (size_t)b->n * b->m->c.hidden);
}

static void battention(const bgroup *b, int l) {
    const wk_config *c = &b->m->c;
    const wk_layer *L = &b->m->layers[l];
    wk_backend *be = b->be;
    wick_session *s = b->s0;
    int n = b->n, H = c->n_heads, Hk = c->n_kv_heads, D = c->head_dim;
    size_t HD = (size_t)H * D, KD = (size_t)Hk * D;
    be->rmsnorm(be, s->xn, s->x, L->attn_norm, n, c->hidden, c->rms_eps);
    blinear(b, s->q, s->xn, l, WK_P_Q, 0);
    blinear(b, s->k, s->xn, l, WK_P_K, 0);
    blinear(b, s->v, s->xn, l, WK_P_V, 0);
    if (c->qk_norm) {
        be->rmsnorm(be, s->q, s->q, L->q_norm, n * H, D, c->rms_eps);
        be->rmsnorm(be, s->k, s->k, L->k_norm, n * Hk, D, c->rms_eps);
    }
    be->rope(be, s->q, s->posv, n, H, D, b->m->inv_freq);
    be->rope(be, s->k, s->posv, n, Hk, D, b->m->inv_freq);
    float scale = 1.f / sqrtf((float)D);
    for (int i = 0; i < n; i++) {
        wick_session *r = b->r[i];
        size_t lo = (size_t)l * KD * r->cap;
        be->kv_store(be, r->kc + lo, r->vc + lo, s->k + i * KD, s->v + i * KD, 1, r->pos, s->posv + i, Hk, D, r->cap);
        be->attention(be, s->att + i * HD, s->q + i * HD, r->kc + lo, r->vc + lo, 1, r->pos, s->posv + i, H, Hk, D,
                      r->cap, scale);
    }
    bresidual(b, s->att, l, WK_P_O);
}

static void bmlp(const bgroup *b, int l) {
    const wk_config *c = &b->m->c;
    wick_session *s = b->s0;
    b->be->rmsnorm(b->be, s->xn, s->x, b->m->layers[l].mlp_norm, b->n, c->hidden, c->rms_eps);
    blinear(b, s->g, s->xn, l, WK_P_GATE, 0);
    blinear(b, s->u, s->xn, l, WK_P_UP, 0);
    b->be->swiglu(b->be, s->g, s->g, s->u, (size_t)b->n * c->inter);
    bresidual(b, s->g, l, WK_P_DOWN);
}

/* The forward of one group; head rows into dst (backend memory, (n, V)) unless NULL. */
static void bforward(bgroup *b, const int32_t *ids, float *dst) {
    wick_session *s = b->s0;
    const wk_config *c = &b->m->c;
    wk_backend *be = b->be;
    for (int i = 0; i < b->n; i++) s->hio[i] = b->r[i]->pos, s->hio[WK_SESSION_CHUNK + i] = ids[i];
    be->upload(be, s->posv, s->hio, sizeof(int32_t) * (size_t)(WK_SESSION_CHUNK + b->n));
    be->embed(be, s->x, &b->m->embed, s->idv, b->n);
    for (int l = 0; l < c->n_layers; l++) {
        battention(b, l);
        bmlp(b, l);
    }
    for (int i = 0; i < b->n; i++) b->r[i]->pos++;
    if (!dst) return;
    be->rmsnorm(be, s->xn, s->x, b->m->final_norm, b->n, c->hidden, c->rms_eps);
    be->matmul(be, dst, s->xn, &b->m->lm_head, NULL, b->n, 0);
}

/* Orders rows by (adapter, scale); stable, so equal keys keep the caller's order. */
static int adapter_less(const wick_session *a, const wick_session *b) {
    if (a->ad != b->ad) return (uintptr_t)a->ad < (uintptr_t)b->ad;
    return a->ad_scale < b->ad_scale;
}

static void sort_rows(wick_session *const *ss, int n, int *perm) {
    for (int i = 0; i < n; i++) {
        int v = perm[i] = i, j = i;
        for (; j > 0 && adapter_less(ss[v], ss[perm[j - 1]]); j--) perm[j] = perm[j - 1];
        perm[j] = v;
    }
}

static wick_status check_batch(wick_session *const *ss, const int32_t *ids, int n) {
    if (!ss || !ids || n <= 0) return wk_err(WICK_EINVAL, "session_eval_batch: no sessions or ids given");
    for (int i = 0; i < n; i++) {
        if (!ss[i]) return wk_err(WICK_EINVAL, "session_eval_batch: session %d is NULL", i);
        if (ss[i]->m != ss[0]->m)
            return wk_err(WICK_EINVAL, "session_eval_batch: session %d belongs to another model than session 0", i);
        if (ss[i]->pos + 1 > ss[i]->cap)
            return wk_err(WICK_ERANGE, "session_eval_batch: session %d: context full (%d of %d positions cached)", i,
                          ss[i]->pos, ss[i]->cap);
        if (ids[i] < 0 || ids[i] >= ss[0]->m->c.vocab)
            return wk_err(WICK_ERANGE, "session_eval_batch: token id %d of session %d is outside the vocabulary [0,%d)",
                          ids[i], i, ss[0]->m->c.vocab);
        for (int j = 0; j < i; j++)
            if (ss[j] == ss[i]) return wk_err(WICK_EINVAL, "session_eval_batch: sessions %d and %d are the same", j, i);
    }
    return WICK_OK;
}

/* Runs rows [0, n) of the ordered batch (n <= WK_SESSION_CHUNK_HOST) as one group. */
static wick_status run_group(wick_session *const *r, const int32_t *ids, int n, float *hlogits, int *seg,
                             const wick_adapter **ad, float *sc) {
    bgroup b = {r, n, r[0]->be, r[0]->m, r[0], 0, seg, ad, sc};
    for (int i = 0; i < n; i++) {
        if (i == 0 || r[i]->ad != r[i - 1]->ad || r[i]->ad_scale != r[i - 1]->ad_scale) {
            seg[b.nseg] = i;
            ad[b.nseg] = r[i]->ad, sc[b.nseg] = r[i]->ad_scale;
            b.nseg++;
        }
    }
    seg[b.nseg] = n;
    for (int g = 0; g < b.nseg; g++) { /* device copies of adapters trained since they were uploaded */
        const wk_lora *dp;
        wick_status st = r[seg[g]]->adp ? wk_adapter_pairs_on(ad[g], b.be, &dp, NULL) : WICK_OK;
        if (st) return st;
    }
    float *dst = hlogits;
    if (hlogits && b.be->device_memory) {
        wick_status st = wk_session_reserve_logits(b.s0, n);
        if (st) return st;
        dst = b.s0->dlogits;
    }
    bforward(&b, ids, dst);
    return WICK_OK;
}

/* Puts row i of rows (in adapter order, on the host or the device) at logits[perm[i]];
 * on the host rows == logits and the rows move in place, one cycle of perm at a time. */
static wick_status place_logits(wk_backend *be, float *logits, const float *rows, const int *perm, int n, int V) {
    size_t row = sizeof(float) * (size_t)V;
    if (be->device_memory) {
        for (int i = 0; i < n; i++) be->download(be, logits + (size_t)perm[i] * V, rows + (size_t)i * V, row);
        return WICK_OK;
    }
    float *tmp = wk_malloc(row, "batch logits row");
    char *done = wk_calloc((size_t)n, "batch logits order");
    if (!tmp || !done) {
        wk_free(tmp), wk_free(done);
        return WICK_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        if (done[i] || perm[i] == i) continue;
        memcpy(tmp, logits + (size_t)i * V, row); /* tmp: the row that belongs at perm[j] */
        for (int j = i; !done[j];) {
            done[j] = 1;
            float *dst = logits + (size_t)perm[j] * V;
            for (int v = 0; v < V; v++) {
                float t = dst[v];
                dst[v] = tmp[v], tmp[v] = t;
            }
            j = perm[j];
        }
    }
    wk_free(tmp), wk_free(done);
    return WICK_OK;
}

wick_status wick_session_eval_batch(wick_session *const *ss, const int32_t *ids, int n, float *logits) {
    wick_status st = check_batch(ss, ids, n);
    if (st) return st;
    if (n == 1) return wick_session_eval(ss[0], ids, 1, logits, 0); /* the session's own step: fused, graphed */
    int done;
    st = wk_batch_device(ss, ids, n, logits, &done); /* the batched ops, when the backend has them */
    if (done) return st;
    int V = ss[0]->m->c.vocab;
    wk_backend *be = ss[0]->be;
    size_t need = (sizeof(int) * 2 + sizeof(wick_session *) + sizeof(int32_t) + sizeof(void *) + sizeof(float)) * (size_t)n
                  + sizeof(int) * 2;
    char *mem = wk_malloc(need, "batch order");
    if (!mem) return WICK_ENOMEM;
    int *perm = (int *)mem, *seg = perm + n;                       /* (n), (n + 1) */
    wick_session **r = (wick_session **)(void *)(mem + sizeof(int) * (2 * (size_t)n + 2)); /* (n) */
    const wick_adapter **ad = (const wick_adapter **)(r + n);      /* (n) */
    float *sc = (float *)(ad + n);                                 /* (n) */
    int32_t *rid = (int32_t *)(sc + n);                            /* (n) */
    sort_rows(ss, n, perm);
    for (int i = 0; i < n; i++) r[i] = ss[perm[i]], rid[i] = ids[perm[i]];
    for (int g0 = 0; g0 < n && !st; g0 += WK_SESSION_CHUNK_HOST) { /* every session's scratch holds that many */
        int k = WK_MIN(WK_SESSION_CHUNK_HOST, n - g0);
        float *out = logits && !be->device_memory ? logits + (size_t)g0 * V : logits;
        st = run_group(r + g0, rid + g0, k, out, seg, ad, sc);
        if (!st && logits && be->device_memory)
            st = place_logits(be, logits, r[g0]->dlogits, perm + g0, k, V);
    }
    if (!st && logits && !be->device_memory) st = place_logits(be, logits, logits, perm, n, V);
    wk_free(mem);
    be->sync(be);
    if (st) return st;
    return be->check ? be->check(be) : WICK_OK;
}
