/*
 * merge_device.c — wick_adapter_merge for a model whose weights live on a device
 * backend. Each adapted weight (or fused group: q/k/v, gate/up, uploaded back to
 * back) is downloaded, W + s·B·A is formed in f32 on the host (sgemm) and rounded
 * back to the weight's own dtype, and the result is uploaded into a new device
 * buffer that the model's layer then points at. The original device weights are
 * never written, so unmerge restores them exactly by putting the saved layer
 * back. Merged bf16/f16 weights are rounded once to their dtype (as PEFT's merge
 * in a bf16 model does); f32 weights merge as exactly as on the CPU. Sessions see
 * the change through m->weights_gen (their captured decode graphs are re-captured).
 */
#include "lora/adapter.h"

#include <cblas.h>

/* The projections sharing p's device buffer: [*p0, *p1]. */
static void group_of(const wk_layer *L, int p, int *p0, int *p1) {
    if (p <= WK_P_V && L->qkv.w) *p0 = WK_P_Q, *p1 = WK_P_V;
    else if ((p == WK_P_GATE || p == WK_P_UP) && L->gate_up.w) *p0 = WK_P_GATE, *p1 = WK_P_UP;
    else *p0 = *p1 = p;
}

/* rows x cols of dtype dt at h (host): += s · B·A of slot sl, through f32. */
static wick_status add_delta_rows(uint8_t *h, wick_dtype dt, const wk_slot *sl, float s) {
    size_t n = (size_t)sl->out * sl->in;
    float *f = dt == WICK_DT_F32 ? (float *)h : wk_malloc(sizeof(float) * n, "merge rows");
    if (!f) return WICK_ENOMEM;
    if (dt != WICK_DT_F32) wk_to_f32(f, h, dt, n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, sl->out, sl->in, sl->lp.r, s, sl->lp.B, sl->lp.r, sl->lp.A,
                sl->in, 1.f, f, sl->in);
    uint16_t *o = (uint16_t *)h;
    if (dt == WICK_DT_BF16)
        for (size_t i = 0; i < n; i++) o[i] = wk_f32_to_bf16(f[i]);
    else if (dt == WICK_DT_F16)
        for (size_t i = 0; i < n; i++) o[i] = wk_f32_to_f16(f[i]);
    if (f != (float *)h) wk_free(f);
    return WICK_OK;
}

/* Merges the group [p0, p1] of layer l (some of it adapted) into a new device buffer. */
static wick_status merge_group(wick_model *m, wick_adapter *a, int l, int p0, int p1, float scale) {
    wk_backend *be = m->be;
    wk_layer *L = &m->layers[l];
    wick_dtype dt = L->p[p0].dt;
    size_t es = wick_dtype_size(dt), cols = (size_t)L->p[p0].cols, rows = 0;
    for (int p = p0; p <= p1; p++) {
        if (L->p[p].qtype || (dt != WICK_DT_F32 && dt != WICK_DT_BF16 && dt != WICK_DT_F16) || L->p[p].dt != dt)
            return wk_err(WICK_EUNSUPPORTED, "adapter_merge: layer %d %s: weights of type %s cannot be merged on %s", l,
                          wk_proj_names[p], wick_dtype_name(L->p[p].dt), be->name);
        rows += (size_t)L->p[p].rows;
    }
    uint8_t *h = wk_malloc(rows * cols * es, "merge buffer");
    void *d = h ? be->alloc(be, rows * cols * es) : NULL;
    if (!d) {
        wk_free(h);
        return wk_err_prefix(WICK_ENOMEM, "adapter_merge: layer %d", l);
    }
    be->download(be, h, L->p[p0].w, rows * cols * es);
    wick_status st = WICK_OK;
    size_t off = 0;
    for (int p = p0; p <= p1 && !st; p++) {
        const wk_slot *sl = wk_adapter_slot(a, l, p);
        if (sl->lp.A) st = add_delta_rows(h + off * cols * es, dt, sl, scale * sl->lp.scale);
        off += (size_t)L->p[p].rows;
    }
    if (!st) be->upload(be, d, h, rows * cols * es);
    be->sync(be);
    wk_free(h);
    if (st) {
        be->free(be, d);
        return st;
    }
    a->merged_dev[(size_t)l * WK_P_COUNT + p0] = d;
    off = 0;
    for (int p = p0; p <= p1; p++) {
        L->p[p].w = (uint8_t *)d + off * cols * es;
        off += (size_t)L->p[p].rows;
    }
    if (p0 == WK_P_Q && L->qkv.w) L->qkv.w = d;
    if (p0 == WK_P_GATE && L->gate_up.w) L->gate_up.w = d;
    return WICK_OK;
}

/* Puts every saved layer back and frees the merged buffers. */
static void restore_device(wick_model *m, wick_adapter *a) {
    for (int l = 0; l < a->n_layers; l++) {
        m->layers[l] = a->merged_layers[l];
        for (int p = 0; p < WK_P_COUNT; p++) {
            void **d = &a->merged_dev[(size_t)l * WK_P_COUNT + p];
            if (*d) m->be->free(m->be, *d);
            *d = NULL;
        }
    }
    a->merged_into = NULL;
    m->weights_gen++;
}

wick_status wk_merge_device(wick_model *m, wick_adapter *a, float scale) {
    size_t n = (size_t)a->n_layers;
    if (!a->merged_layers) a->merged_layers = wk_calloc(sizeof(wk_layer) * 2 * (n ? n : 1), "merge state");
    if (!a->merged_dev) a->merged_dev = wk_calloc(sizeof(void *) * n * WK_P_COUNT + 1, "merge state");
    if (!a->merged_layers || !a->merged_dev) return WICK_ENOMEM;
    memcpy(a->merged_layers, m->layers, sizeof(wk_layer) * n);
    a->merged_into = m;
    m->weights_gen++;
    wick_status st = WICK_OK;
    for (int l = 0; l < a->n_layers && !st; l++)
        for (int p = 0, p0, p1; p < WK_P_COUNT && !st; p++) {
            group_of(&m->layers[l], p, &p0, &p1);
            if (p != p0) continue;
            int adapted = 0;
            for (int q = p0; q <= p1; q++) adapted |= wk_adapter_slot(a, l, q)->lp.A != NULL;
            if (adapted) st = merge_group(m, a, l, p0, p1, scale);
        }
    if (st) {
        restore_device(m, a);
        return st;
    }
    memcpy(a->merged_layers + n, m->layers, sizeof(wk_layer) * n);
    return WICK_OK;
}

wick_status wk_unmerge_device(wick_model *m, wick_adapter *a) {
    for (int l = 0; l < a->n_layers; l++)
        if (memcmp(&m->layers[l], &a->merged_layers[a->n_layers + l], sizeof(wk_layer)))
            return wk_err(WICK_ESTATE, "adapter_unmerge: another adapter was merged over '%s' later; unmerge it first", a->name);
    restore_device(m, a);
    return WICK_OK;
}
