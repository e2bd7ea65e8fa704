/*
 * model_device.c — puts a loaded model on a device backend: parses the device
 * string ("cpu", "cuda", "cuda:N"), creates the backend (exact fp32 for f32
 * weights; TF32 prefill attention for 16-bit weights), and uploads every weight
 * matrix and vector once (the host copies stay in the mapping); q/k/v and gate/up
 * rows go back to back so a decode step runs each group as one product. The
 * model's pointers then name device memory; freed with the model. GGUF
 * block-quantized weights have no device kernels: they are dequantized and
 * rounded to bf16 on the host, then uploaded as a bf16 checkpoint would be (so
 * on a device they take bf16's memory and bandwidth, not the quantized size).
 */
#include "model/model.h"
#ifdef WICK_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

#include <stdio.h>
#include <stdlib.h>

/* Parses "cuda" / "cuda:N" into N; -1 when s is not a CUDA device string. */
static int cuda_index(const char *s) {
    if (strncmp(s, "cuda", 4) != 0) return -1;
    if (s[4] == 0) return 0;
    if (s[4] != ':' || s[5] < '0' || s[5] > '9') return -1;
    char *end;
    long v = strtol(s + 5, &end, 10);
    return *end || v > 1 << 20 ? -1 : (int)v;
}

#ifdef WICK_HAVE_CUDA
static wick_status dev_own(wick_model *m, void *p) {
    if (m->n_dev == m->cap_dev) {
        int cap = m->cap_dev ? 2 * m->cap_dev : 256;
        void **n = wk_realloc(m->dev, sizeof(void *) * (size_t)cap, "device buffers");
        if (!n) return WICK_ENOMEM;
        m->dev = n;
        m->cap_dev = cap;
    }
    m->dev[m->n_dev++] = p;
    return WICK_OK;
}

/* Replaces *p (host, `bytes` long) with a device copy. */
static wick_status upload(wick_model *m, const void **p, size_t bytes, const char *what) {
    wk_backend *be = m->be;
    void *d = be->alloc(be, bytes);
    if (!d) return wk_err_prefix(WICK_ENOMEM, "uploading %s", what);
    wick_status st = dev_own(m, d);
    if (st) {
        be->free(be, d);
        return st;
    }
    be->upload(be, d, *p, bytes);
    *p = d;
    return WICK_OK;
}

static wick_status upload_mat(wick_model *m, wk_mat *w, const char *what) {
    return upload(m, &w->w, (size_t)w->rows * w->cols * wick_dtype_size(w->dt), what);
}

static wick_status upload_vec(wick_model *m, float **v, size_t n, const char *what) {
    if (!*v) return WICK_OK;
    return upload(m, (const void **)v, n * sizeof(float), what);
}

/* Uploads projections p0..p1 into one buffer, rows back to back (and their biases, when
 * all have one), into *fused; p[] then point into it. */
static wick_status upload_fused(wick_model *m, wk_layer *L, int p0, int p1, wk_mat *fused, float **fbias, const char *what) {
    wk_backend *be = m->be;
    size_t es = wick_dtype_size(L->p[p0].dt), rows = 0;
    int nb = 0;
    for (int p = p0; p <= p1; p++) rows += (size_t)L->p[p].rows, nb += L->bias[p] != NULL;
    size_t cols = (size_t)L->p[p0].cols;
    uint8_t *d = be->alloc(be, rows * cols * es);
    float *db = nb == p1 - p0 + 1 ? be->alloc(be, rows * sizeof(float)) : NULL;
    wick_status st = d ? dev_own(m, d) : wk_err_prefix(WICK_ENOMEM, "uploading %s", what);
    if (!st && nb == p1 - p0 + 1) st = db ? dev_own(m, db) : wk_err_prefix(WICK_ENOMEM, "uploading %s", what);
    if (st) return st;
    size_t off = 0;
    for (int p = p0; p <= p1; p++) {
        size_t r = (size_t)L->p[p].rows;
        be->upload(be, d + off * cols * es, L->p[p].w, r * cols * es);
        L->p[p].w = d + off * cols * es;
        if (db) {
            be->upload(be, db + off, L->bias[p], r * sizeof(float));
            L->bias[p] = db + off;
        }
        off += r;
    }
    *fused = (wk_mat){.w = d, .dt = L->p[p0].dt, .rows = (int)rows, .cols = (int)cols};
    *fbias = db;
    for (int p = p0; p <= p1 && !db; p++) /* biases on some only: upload them one by one */
        if ((st = upload_vec(m, &L->bias[p], (size_t)L->p[p].rows, what))) return st;
    return WICK_OK;
}

static int same_type(const wk_layer *L, int p0, int p1) {
    for (int p = p0; p <= p1; p++)
        if (L->p[p].dt != L->p[p0].dt || L->p[p].cols != L->p[p0].cols || L->p[p].qtype) return 0;
    return 1;
}

static wick_status upload_layer(wick_model *m, int l) {
    const wk_config *c = &m->c;
    wk_layer *L = &m->layers[l];
    wick_status st = WICK_OK;
    char what[64];
    snprintf(what, sizeof what, "layer %d", l);
    int fq = same_type(L, WK_P_Q, WK_P_V), fg = same_type(L, WK_P_GATE, WK_P_UP);
    if (fq) st = upload_fused(m, L, WK_P_Q, WK_P_V, &L->qkv, &L->qkv_bias, what);
    if (fg && !st) st = upload_fused(m, L, WK_P_GATE, WK_P_UP, &L->gate_up, &L->gate_up_bias, what);
    for (int p = 0; p < WK_P_COUNT && !st; p++) {
        if ((fq && p <= WK_P_V) || (fg && (p == WK_P_GATE || p == WK_P_UP))) continue;
        st = upload_mat(m, &L->p[p], what);
        if (!st) st = upload_vec(m, &L->bias[p], (size_t)L->p[p].rows, what);
    }
    if (!st) st = upload_vec(m, &L->attn_norm, (size_t)c->hidden, what);
    if (!st) st = upload_vec(m, &L->mlp_norm, (size_t)c->hidden, what);
    if (!st) st = upload_vec(m, &L->q_norm, (size_t)c->head_dim, what);
    if (!st) st = upload_vec(m, &L->k_norm, (size_t)c->head_dim, what);
    return st;
}

/* Host bf16 copies of quantized weights, freed once uploaded. */
typedef struct {
    void **p;
    int n, cap;
} host_tmp;

/* Replaces a block-quantized *w by a host bf16 copy (row by row through f32). */
static wick_status dequant_bf16(wick_model *m, wk_mat *w, host_tmp *t) {
    if (!w->qtype) return WICK_OK;
    size_t rb = wk_model_qrow_bytes(w->qtype, w->cols);
    uint16_t *d = wk_malloc(sizeof(uint16_t) * (size_t)w->rows * w->cols, "dequantized weight");
    float *row = wk_malloc(sizeof(float) * (size_t)w->cols, "dequantized row");
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 64;
        void **np = wk_realloc(t->p, sizeof(void *) * (size_t)cap, "dequantized weights");
        if (np) t->p = np, t->cap = cap;
    }
    wick_status st = d && row && t->n < t->cap ? WICK_OK : WICK_ENOMEM;
    for (int r = 0; r < w->rows && !st; r++) {
        st = wk_model_dequant(w->qtype, (const uint8_t *)w->w + (size_t)r * rb, row, w->cols);
        for (int k = 0; k < w->cols && !st; k++) d[(size_t)r * w->cols + k] = wk_f32_to_bf16(row[k]);
    }
    wk_free(row);
    if (st) {
        wk_free(d);
        return wk_err_prefix(st, "%s: dequantizing %s weights for the device", m->dir, wk_model_qtype_name(w->qtype));
    }
    t->p[t->n++] = d;
    m->weight_bytes += (int64_t)((size_t)w->rows * w->cols * 2) - (int64_t)(rb * (size_t)w->rows);
    *w = (wk_mat){.w = d, .dt = WICK_DT_BF16, .rows = w->rows, .cols = w->cols};
    return WICK_OK;
}

static wick_status dequant_all(wick_model *m, host_tmp *t) {
    int tied = m->lm_head.w == m->embed.w;
    wick_status st = dequant_bf16(m, &m->embed, t);
    if (!st && tied) m->lm_head = m->embed;
    else if (!st) st = dequant_bf16(m, &m->lm_head, t);
    for (int l = 0; l < m->c.n_layers && !st; l++)
        for (int p = 0; p < WK_P_COUNT && !st; p++) st = dequant_bf16(m, &m->layers[l].p[p], t);
    return st;
}

/* Uploads every weight; the tied LM head shares the embedding's device copy. */
static wick_status upload_all(wick_model *m) {
    const wk_config *c = &m->c;
    host_tmp t = {0};
    wick_status st = dequant_all(m, &t);
    int tied = m->lm_head.w == m->embed.w;
    if (!st) st = upload_mat(m, &m->embed, "embed_tokens");
    if (!st && tied) m->lm_head.w = m->embed.w;
    else if (!st) st = upload_mat(m, &m->lm_head, "lm_head");
    for (int l = 0; l < c->n_layers && !st; l++) st = upload_layer(m, l);
    if (!st) st = upload_vec(m, &m->final_norm, (size_t)c->hidden, "model.norm");
    if (!st) st = upload_vec(m, &m->inv_freq, (size_t)(c->head_dim / 2), "rope frequencies");
    m->be->sync(m->be);
    for (int i = 0; i < t.n; i++) wk_free(t.p[i]);
    wk_free(t.p);
    if (!st && m->be->check) st = m->be->check(m->be);
    return st;
}

#endif /* WICK_HAVE_CUDA */

wick_status wk_model_to_device(wick_model *m, const char *device) {
    if (!device || !strcmp(device, "cpu")) {
        m->be = wk_backend_cpu();
        return WICK_OK;
    }
    int idx = cuda_index(device);
    if (idx < 0) return wk_err(WICK_EINVAL, "device '%s': expected cpu, cuda or cuda:N", device);
#ifdef WICK_HAVE_CUDA
    /* inv_freq is owned by the model struct, not m->owned: keep the host copy for freeing */
    m->host_inv_freq = m->inv_freq;
    /* 16-bit weights already round prefill activations to 16 bits: TF32 attention products cost nothing more */
    wick_dtype wdt = m->c.n_layers > 0 ? m->layers[0].p[WK_P_Q].dt : WICK_DT_F32;
    m->be = wdt == WICK_DT_F32 && !m->qtype ? wk_backend_cuda(idx) : wk_backend_cuda_fast(idx);
    if (!m->be) return wk_err_prefix(WICK_EUNSUPPORTED, "device '%s'", device);
    wick_status st = upload_all(m);
    return st ? wk_err_prefix(st, "%s: on %s", m->dir, device) : WICK_OK;
#else
    return wk_err(WICK_EUNSUPPORTED, "device '%s' is not available: this build has no CUDA backend", device);
#endif
}

void wk_model_free_device(wick_model *m) {
    if (m->be)
        for (int i = 0; i < m->n_dev; i++) m->be->free(m->be, m->dev[i]);
    wk_free(m->dev);
    m->dev = NULL;
    m->n_dev = m->cap_dev = 0;
    if (m->host_inv_freq) m->inv_freq = m->host_inv_freq;
}
