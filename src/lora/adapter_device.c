/*
 * adapter_device.c — an adapter's A/B in a device backend's memory. The first
 * session that selects an adapter on a device backend uploads every A and B in
 * one copy (the same layout as the host buffer); the copy is kept for that
 * (adapter, backend) until the adapter is freed, so switching adapters later is
 * a pointer switch. A process-wide mutex makes the lazy upload safe for sessions
 * on several threads sharing an adapter (the registry). Beside the pairs it keeps
 * the grouped layout the fused decode step reads (wk_lora_group: q|k|v, o,
 * gate|up, down; A stacked, B block-diagonal with each pair's scale folded in),
 * built on the host and uploaded with them. The host A/B stay the
 * source of truth: a trainer that changes them bumps the adapter's generation
 * (wk_adapter_touch), and the next selection or evaluation copies them again
 * into the same device buffers.
 */
#include "lora/adapter.h"

#include <pthread.h>

/* One adapter's device copy for one backend. */
struct wk_adapter_dev {
    wk_backend *be;
    float *data;             /* (n_floats) every A and B, device memory */
    wk_lora *pairs;          /* (n_layers, WK_P_COUNT) host array of device pointers; A == NULL: not adapted */
    float *gdata;            /* (gtotal) the groups' A and B, device memory */
    void *g16;               /* (gtotal) the same in bf16 (a bf16 model's), else NULL */
    size_t gtotal;
    unsigned gen;            /* the adapter's gen when last copied */
    wk_lora_group *groups;   /* (n_layers, WK_G_COUNT) host array of device pointers */
    wk_bent *bents;          /* (n_layers, WK_G_COUNT) the batched step's entries, device memory (made at first use) */
    struct wk_adapter_dev *next;
};

static pthread_mutex_t g_dev_mu = PTHREAD_MUTEX_INITIALIZER;

static const int g_first[WK_G_COUNT] = {WK_P_Q, WK_P_O, WK_P_GATE, WK_P_DOWN};
static const int g_last[WK_G_COUNT] = {WK_P_V, WK_P_O, WK_P_UP, WK_P_DOWN};

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Values of group g of layer l (A then B, each padded to 16 values: 32-byte aligned in
 * bf16, 64 in f32); *ra gets its rank. */
static size_t group_values(const wick_adapter *a, int l, int g, int *ra) {
    const wk_layer *L = &a->m->layers[l];
    size_t rows = 0;
    *ra = 0;
    for (int p = g_first[g]; p <= g_last[g]; p++) {
        rows += (size_t)L->p[p].rows;
        *ra += wk_adapter_slot(a, l, p)->lp.A ? wk_adapter_slot(a, l, p)->lp.r : 0;
    }
    return *ra ? pad16((size_t)*ra * L->p[g_first[g]].cols) + pad16(rows * (size_t)*ra) : 0;
}

/* Writes group g of layer l at h: A stacked, B block-diagonal and scaled. */
static void group_fill(const wick_adapter *a, int l, int g, int ra, float *h) {
    const wk_layer *L = &a->m->layers[l];
    size_t in = (size_t)L->p[g_first[g]].cols, rows = 0, ro = 0;
    int co = 0;
    for (int p = g_first[g]; p <= g_last[g]; p++) rows += (size_t)L->p[p].rows;
    float *A = h, *B = h + pad16((size_t)ra * in);
    memset(B, 0, sizeof(float) * rows * (size_t)ra);
    for (int p = g_first[g]; p <= g_last[g]; p++) {
        const wk_lora *lp = &wk_adapter_slot(a, l, p)->lp;
        size_t out = (size_t)L->p[p].rows;
        if (lp->A) {
            memcpy(A + (size_t)co * in, lp->A, sizeof(float) * (size_t)lp->r * in);
            for (size_t i = 0; i < out; i++)
                for (int j = 0; j < lp->r; j++) B[(ro + i) * (size_t)ra + (size_t)co + (size_t)j] = lp->scale * lp->B[i * (size_t)lp->r + (size_t)j];
            co += lp->r;
        }
        ro += out;
    }
}

int wk_lora16_enabled(void) {
    static int v = -1; /* a benign race: every thread computes the same value */
    if (v < 0) {
        const char *e = getenv("WICK_LORA_F32");
        v = !(e && !strcmp(e, "1"));
    }
    return v;
}

/* The groups also get bf16 copies when every projection of the model has plain bf16 weights
 * (the batched step's rows read half the adapter bytes); the fp32 mode and one-row decode
 * read the f32 ones. */
static int groups_b16(const wick_adapter *a) {
    if (!wk_lora16_enabled()) return 0;
    for (int l = 0; l < a->n_layers; l++)
        for (int p = 0; p < WK_P_COUNT; p++) {
            const wk_mat *W = &a->m->layers[l].p[p];
            if (W->dt != WICK_DT_BF16 || W->qtype) return 0;
        }
    return a->n_layers > 0;
}

/* Builds and uploads d's grouped layout (a bound adapter only); the first call allocates it,
 * later ones (a refresh) rewrite the same device buffer. */
static wick_status upload_groups(wick_adapter *a, wk_adapter_dev *d, wk_backend *be) {
    size_t ng = (size_t)a->n_layers * WK_G_COUNT, total = 0;
    int ra;
    for (int l = 0; l < a->n_layers; l++)
        for (int g = 0; g < WK_G_COUNT; g++) total += group_values(a, l, g, &ra);
    if (!d->groups) {
        d->groups = wk_calloc(sizeof(wk_lora_group) * (ng ? ng : 1), "adapter groups");
        int b16 = groups_b16(a);
        d->gdata = d->groups ? be->alloc(be, sizeof(float) * (total ? total : 1)) : NULL;
        if (d->gdata && b16) d->g16 = be->alloc(be, 2 * (total ? total : 1));
        if (!d->gdata || (b16 && !d->g16))
            return wk_err_prefix(WICK_ENOMEM, "adapter '%s': grouped device copy", a->name);
        d->gtotal = total;
    }
    float *h = wk_malloc(sizeof(float) * (total ? total : 1), "adapter groups");
    if (!h) return WICK_ENOMEM;
    memset(h, 0, sizeof(float) * (total ? total : 1)); /* the padding too: the upload is deterministic */
    size_t off = 0;
    for (int l = 0; l < a->n_layers; l++)
        for (int g = 0; g < WK_G_COUNT; g++) {
            size_t n = group_values(a, l, g, &ra);
            if (!n) continue;
            group_fill(a, l, g, ra, h + off);
            size_t in = (size_t)a->m->layers[l].p[g_first[g]].cols, bo = off + pad16((size_t)ra * in);
            uint16_t *g16 = d->g16;
            d->groups[(size_t)l * WK_G_COUNT + g] =
                (wk_lora_group){d->gdata + off, d->gdata + bo, g16 ? g16 + off : NULL, g16 ? g16 + bo : NULL, ra};
            off += n;
        }
    be->upload(be, d->gdata, h, sizeof(float) * (total ? total : 1));
    if (d->g16) { /* in place, front to back: value i's 2 bytes land at or before its 4 */
        be->sync(be); /* the f32 upload has read h */
        uint16_t *h16 = (uint16_t *)h;
        for (size_t i = 0; i < total; i++) h16[i] = wk_f32_to_bf16(h[i]);
        be->upload(be, d->g16, h16, 2 * (total ? total : 1));
    }
    be->sync(be); /* the host staging is freed next */
    wk_free(h);
    return WICK_OK;
}

static void free_dev(wk_adapter_dev *d) {
    if (d->data) d->be->free(d->be, d->data);
    if (d->gdata) d->be->free(d->be, d->gdata);
    if (d->g16) d->be->free(d->be, d->g16);
    if (d->bents) d->be->free(d->be, d->bents);
    wk_free(d->pairs);
    wk_free(d->groups);
    wk_free(d);
}

static wick_status copy(wick_adapter *a, wk_adapter_dev *d);

/* The device copy of a for be, or NULL with the error set. */
static wk_adapter_dev *upload(wick_adapter *a, wk_backend *be) {
    size_t np = (size_t)a->n_layers * WK_P_COUNT;
    wk_adapter_dev *d = wk_calloc(sizeof *d, "adapter device copy");
    if (!d) return NULL;
    d->be = be;
    d->pairs = wk_calloc(sizeof(wk_lora) * (np ? np : 1), "adapter device pairs");
    d->data = d->pairs ? be->alloc(be, sizeof(float) * (a->n_floats ? a->n_floats : 1)) : NULL;
    if (!d->data) {
        if (d->pairs) wk_err_prefix(WICK_ENOMEM, "adapter '%s': device copy of %zu bytes", a->name, sizeof(float) * a->n_floats);
        free_dev(d);
        return NULL;
    }
    for (size_t i = 0; i < np; i++) {
        const wk_lora *h = &a->slots[i].lp;
        if (!h->A) continue;
        d->pairs[i] = *h;
        d->pairs[i].A = d->data + (h->A - a->data);
        d->pairs[i].B = d->data + (h->B - a->data);
    }
    wick_status st = copy(a, d);
    if (st) {
        free_dev(d);
        return NULL;
    }
    return d;
}

/* Copies the host A/B (and the grouped layout built from them) into d's buffers. */
static wick_status copy(wick_adapter *a, wk_adapter_dev *d) {
    wk_backend *be = d->be;
    be->upload(be, d->data, a->data, sizeof(float) * a->n_floats);
    wick_status st = a->m ? upload_groups(a, d, be) : WICK_OK;
    be->sync(be);
    if (!st && be->check) st = be->check(be);
    d->gen = a->gen;
    return st ? wk_err_prefix(st, "adapter '%s': uploading to %s", a->name, be->name) : WICK_OK;
}

/* a's device copy for be, made or refreshed (g_dev_mu held); NULL with *st set. */
static wk_adapter_dev *dev_locked(wick_adapter *a, wk_backend *be, wick_status *st) {
    wk_adapter_dev *d = a->dev;
    while (d && d->be != be) d = d->next;
    *st = WICK_OK;
    if (!d && (d = upload(a, be))) {
        d->next = a->dev;
        a->dev = d;
    } else if (d && d->gen != a->gen) { /* trained since: the same buffers (captured graphs stay valid) */
        *st = copy(a, d);
    }
    if (!d) *st = wk_err_prefix(WICK_ENOMEM, "session: adapter '%s' on %s", a->name, be->name);
    return *st ? NULL : d;
}

wick_status wk_adapter_pairs_on(const wick_adapter *ca, wk_backend *be, const wk_lora **pairs, const wk_lora_group **groups) {
    wick_adapter *a = (wick_adapter *)ca; /* the device cache is not part of the adapter's value */
    *pairs = NULL;
    if (groups) *groups = NULL;
    if (!be->device_memory) return WICK_OK;
    wick_status st;
    pthread_mutex_lock(&g_dev_mu);
    wk_adapter_dev *d = dev_locked(a, be, &st);
    pthread_mutex_unlock(&g_dev_mu);
    if (st) return st;
    *pairs = d->pairs;
    if (groups) *groups = d->groups;
    return WICK_OK;
}

/* The batched step's entries of d (backend.h: wk_bent), from its groups: A/B of each group,
 * and for a fused group whose every projection is adapted B's block-diagonal shape (otherwise
 * B is read densely). The groups' buffers stay put on a refresh, so these are made once. */
static wick_status make_bents(const wick_adapter *a, wk_adapter_dev *d) {
    size_t ng = (size_t)a->n_layers * WK_G_COUNT;
    wk_bent *h = wk_calloc(sizeof(wk_bent) * (ng ? ng : 1), "adapter batch entries");
    if (!h) return WICK_ENOMEM;
    for (int l = 0; l < a->n_layers; l++)
        for (int g = 0; g < WK_G_COUNT; g++) {
            const wk_lora_group *G = &d->groups[(size_t)l * WK_G_COUNT + g];
            wk_bent *x = &h[(size_t)l * WK_G_COUNT + g];
            x->A = G->A, x->B = G->B, x->A16 = G->A16, x->B16 = G->B16, x->ra = G->ra;
            if (G->ra <= 0 || g_last[g] == g_first[g]) continue;
            int cols = 0;
            for (int p = g_first[g]; p <= g_last[g]; p++) {
                const wk_lora *lp = &wk_adapter_slot(a, l, p)->lp;
                x->brows[p - g_first[g]] = a->m->layers[l].p[p].rows;
                x->bcols[p - g_first[g]] = lp->A ? lp->r : 0;
                cols += x->bcols[p - g_first[g]];
            }
            x->nblk = cols == G->ra ? g_last[g] - g_first[g] + 1 : 0;
        }
    wk_backend *be = d->be;
    d->bents = be->alloc(be, sizeof(wk_bent) * (ng ? ng : 1));
    if (d->bents) be->upload(be, d->bents, h, sizeof(wk_bent) * (ng ? ng : 1)), be->sync(be);
    wk_free(h);
    return d->bents ? WICK_OK : wk_err_prefix(WICK_ENOMEM, "adapter '%s': batch entries on %s", a->name, be->name);
}

wick_status wk_adapter_bents_on(const wick_adapter *ca, wk_backend *be, const wk_bent **bents) {
    wick_adapter *a = (wick_adapter *)ca; /* the device cache is not part of the adapter's value */
    *bents = NULL;
    if (!be->device_memory) return WICK_OK;
    if (!a->m) return wk_err(WICK_EINVAL, "adapter '%s' is bound to no model", a->name);
    wick_status st;
    pthread_mutex_lock(&g_dev_mu);
    wk_adapter_dev *d = dev_locked(a, be, &st);
    if (d && !d->groups) st = wk_err(WICK_EUNSUPPORTED, "batch step: adapter '%s' without a grouped device layout", a->name);
    else if (d && !d->bents) st = make_bents(a, d);
    pthread_mutex_unlock(&g_dev_mu);
    if (!st) *bents = d->bents;
    return st;
}

const uint16_t *wk_adapter_bf16(const wick_adapter *ca, const float *p) {
    wick_adapter *a = (wick_adapter *)ca; /* a cache, not part of the adapter's value */
    pthread_mutex_lock(&g_dev_mu);
    if (!a->data16 || a->gen16 != a->gen) {
        if (!a->data16) a->data16 = wk_malloc(2 * (a->n_floats ? a->n_floats : 1), "adapter bf16 copies");
        if (a->data16) { /* A as it is, B in lora_seg16's tiles (backend.h) */
            for (size_t i = 0; i < a->n_floats; i++) a->data16[i] = wk_f32_to_bf16(a->data[i]);
            for (int l = 0; l < a->n_layers; l++)
                for (int p = 0; p < WK_P_COUNT; p++) {
                    const wk_slot *sl = wk_adapter_slot(a, l, p);
                    if (sl->lp.A && sl->lp.B) wk_lora_tiles16(a->data16 + (sl->lp.B - a->data), sl->lp.B, sl->out, sl->lp.r);
                }
            a->gen16 = a->gen;
        }
    }
    const uint16_t *r = a->data16 && p >= a->data && p < a->data + a->n_floats ? a->data16 + (p - a->data) : NULL;
    pthread_mutex_unlock(&g_dev_mu);
    return r;
}

void wk_adapter_touch(wick_adapter *a) {
    if (!a) return;
    pthread_mutex_lock(&g_dev_mu);
    a->gen++;
    pthread_mutex_unlock(&g_dev_mu);
}

void wk_adapter_free_device(wick_adapter *a) {
    pthread_mutex_lock(&g_dev_mu);
    wk_adapter_dev *d = a->dev;
    a->dev = NULL;
    pthread_mutex_unlock(&g_dev_mu);
    while (d) {
        wk_adapter_dev *n = d->next;
        free_dev(d);
        d = n;
    }
}
