/*
 * bert_device.c — the encoder on a device backend (CUDA). Parses the device string,
 * uploads every weight once (linear weights as f32 in the exact mode, bf16 in the fast
 * mode; the word table as stored), and keeps grow-only device buffers: one batch's
 * inputs, its activations, and the pooled vectors of a whole call. A batch runs as a
 * CUDA graph captured once per (B, T, pooling) shape: its inputs are uploaded into the
 * buffers the graph reads and the graph replayed, so a batch costs one upload and one
 * launch, and a call one download at the end. The model's pointers then name device
 * memory (the host copies stay in the mapping / owned list); freed with the encoder.
 */
#include "model/bert.h"
#ifdef WICK_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

#include <stdlib.h>

#define BERT_GRAPHS 32 /* graphs kept (one per batch shape seen; oldest replaced) */

typedef struct {
    int B, T, pool, norm;
    void *g;
} bert_graph;

struct wk_bert_dev {
    void **bufs;              /* weight buffers owned */
    int n_bufs, cap_bufs;
    wk_mat pos, type;         /* (P,C), (TV,C) f32 tables, gathered like the word table */
    int32_t *in;              /* ids | positions | types | mask [B*T each] | rows [B] of the current batch */
    float *x, *scr;           /* hidden state [tok_cap, C]; forward scratch */
    size_t tok_cap;
    int b_cap;
    float *emb;               /* (emb_rows, C) pooled vectors of a call */
    size_t emb_rows;
    int32_t *h_in;            /* host staging of `in` (h_cap ints) */
    size_t h_cap;
    bert_graph graph[BERT_GRAPHS];
    int next_graph;
};

/* Parses "cuda" / "cuda:N" into N; -1 when s is not a CUDA device string (as model_device.c). */
static int cuda_index(const char *s) {
    if (strncmp(s, "cuda", 4) != 0) return -1;
    if (s[4] == 0) return 0;
    if (s[4] != ':' || s[5] < '0' || s[5] > '9') return -1;
    char *end;
    long v = strtol(s + 5, &end, 10);
    return *end || v > 1 << 20 ? -1 : (int)v;
}

static void drop_graphs(wick_encoder *e) {
    wk_bert_dev *d = e->dev;
    for (int i = 0; i < BERT_GRAPHS; i++) {
        if (d->graph[i].g) e->be->graph_free(e->be, d->graph[i].g);
        d->graph[i] = (bert_graph){0};
    }
}

void wk_bert_free_device(wick_encoder *e) {
    wk_bert_dev *d = e->dev;
    if (!d) return;
    wk_backend *be = e->be;
    drop_graphs(e);
    for (int i = 0; i < d->n_bufs; i++) be->free(be, d->bufs[i]);
    be->free(be, d->in), be->free(be, d->x), be->free(be, d->scr), be->free(be, d->emb);
    wk_free(d->bufs);
    wk_free(d->h_in);
    wk_free(d);
    e->dev = NULL;
}

/* A device copy of `bytes` of host memory, owned by the encoder. */
static wick_status upload(wick_encoder *e, const void *src, size_t bytes, const char *what, void **out) {
    wk_bert_dev *d = e->dev;
    if (d->n_bufs == d->cap_bufs) {
        int cap = d->cap_bufs ? 2 * d->cap_bufs : 64;
        void **n = wk_realloc(d->bufs, sizeof(void *) * (size_t)cap, "encoder device buffers");
        if (!n) return WICK_ENOMEM;
        d->bufs = n, d->cap_bufs = cap;
    }
    void *p = e->be->alloc(e->be, bytes);
    if (!p) return wk_err_prefix(WICK_ENOMEM, "uploading %s", what);
    d->bufs[d->n_bufs++] = p;
    e->be->upload(e->be, p, src, bytes);
    *out = p;
    return WICK_OK;
}

static wick_status upload_vec(wick_encoder *e, float **v, size_t n, const char *what) {
    return upload(e, *v, n * sizeof(float), what, (void **)v);
}

/* Writes the weight w as f32 (bf16 = 0) or bf16 into dst. */
static wick_status convert(const wk_mat *w, int bf16, void *dst) {
    size_t n = (size_t)w->rows * w->cols;
    wick_dtype dt = bf16 ? WICK_DT_BF16 : WICK_DT_F32;
    if (w->dt == dt) {
        memcpy(dst, w->w, n * wick_dtype_size(dt));
        return WICK_OK;
    }
    if (!bf16) return wk_to_f32(dst, w->w, w->dt, n);
    float *f = wk_malloc(sizeof(float) * n, "weight conversion");
    if (!f) return WICK_ENOMEM;
    wk_to_f32(f, w->w, w->dt, n);
    for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = wk_f32_to_bf16(f[i]);
    wk_free(f);
    return WICK_OK;
}

/* Uploads weights w[0..k) (same columns) converted to f32 / bf16 into one buffer, rows back to
 * back, and their biases likewise; w[] then point into it, *fused (may be NULL) covers all. */
static wick_status upload_rows(wick_encoder *e, wk_mat *w, float **bias, int k, int bf16, wk_mat *fused, float **fbias) {
    size_t es = bf16 ? 2 : 4, rows = 0, cols = (size_t)w[0].cols;
    for (int j = 0; j < k; j++) rows += (size_t)w[j].rows;
    uint8_t *h = wk_malloc(rows * cols * es + rows * sizeof(float), "encoder weight upload");
    if (!h) return WICK_ENOMEM;
    float *hb = (float *)(h + rows * cols * es);
    wick_status st = WICK_OK;
    size_t off = 0;
    for (int j = 0; j < k && !st; j++) {
        st = convert(&w[j], bf16, h + off * cols * es);
        memcpy(hb + off, bias[j], sizeof(float) * (size_t)w[j].rows);
        off += (size_t)w[j].rows;
    }
    void *dw = NULL, *db = NULL;
    if (!st) st = upload(e, h, rows * cols * es, "encoder layer weights", &dw);
    if (!st) st = upload(e, hb, rows * sizeof(float), "encoder layer biases", &db);
    e->be->sync(e->be);
    wk_free(h);
    if (st) return st;
    off = 0;
    for (int j = 0; j < k; j++) {
        w[j].w = (uint8_t *)dw + off * cols * es;
        w[j].dt = bf16 ? WICK_DT_BF16 : WICK_DT_F32;
        bias[j] = (float *)db + off;
        off += (size_t)w[j].rows;
    }
    if (fused) *fused = (wk_mat){.w = dw, .dt = w[0].dt, .rows = (int)rows, .cols = (int)cols};
    if (fbias) *fbias = db;
    return WICK_OK;
}

static wick_status upload_layer(wick_encoder *e, wk_bert_layer *L, int bf16) {
    const wk_bert_config *c = &e->c;
    wick_status st = upload_rows(e, &L->w[WK_B_Q], &L->bias[WK_B_Q], 3, bf16, &L->qkv, &L->qkv_bias);
    for (int j = WK_B_O; j < WK_B_COUNT && !st; j++) st = upload_rows(e, &L->w[j], &L->bias[j], 1, bf16, NULL, NULL);
    float **v[4] = {&L->ln1_w, &L->ln1_b, &L->ln2_w, &L->ln2_b};
    for (int j = 0; j < 4 && !st; j++) st = upload_vec(e, v[j], (size_t)c->hidden, "encoder LayerNorm");
    return st;
}

static wick_status upload_all(wick_encoder *e, int bf16) {
    const wk_bert_config *c = &e->c;
    wk_bert_dev *d = e->dev;
    wick_status st = upload(e, e->word.w, (size_t)c->vocab * c->hidden * wick_dtype_size(e->word.dt), "word embeddings",
                            (void **)&e->word.w);
    if (!st) st = upload_vec(e, &e->pos, (size_t)c->max_pos * c->hidden, "position embeddings");
    if (!st) st = upload_vec(e, &e->type, (size_t)c->type_vocab * c->hidden, "token type embeddings");
    if (!st) st = upload_vec(e, &e->emb_ln_w, (size_t)c->hidden, "embeddings LayerNorm");
    if (!st) st = upload_vec(e, &e->emb_ln_b, (size_t)c->hidden, "embeddings LayerNorm");
    for (int l = 0; l < c->n_layers && !st; l++) st = upload_layer(e, &e->layers[l], bf16);
    d->pos = (wk_mat){.w = e->pos, .dt = WICK_DT_F32, .rows = c->max_pos, .cols = c->hidden};
    d->type = (wk_mat){.w = e->type, .dt = WICK_DT_F32, .rows = c->type_vocab, .cols = c->hidden};
    e->be->sync(e->be);
    wick_status cs = e->be->check(e->be);
    return st ? st : cs;
}

wick_status wk_bert_to_backend(wick_encoder *e, wk_backend *be, int bf16) {
    if (!(e->dev = wk_calloc(sizeof *e->dev, "encoder device state"))) return WICK_ENOMEM;
    e->be = be;
    e->bf16 = bf16;
    return upload_all(e, bf16);
}

wick_status wk_bert_to_device(wick_encoder *e, const char *device, int bf16) {
    int idx = cuda_index(device);
    if (idx < 0) return wk_err(WICK_EINVAL, "encoder: device '%s': expected cpu, cuda or cuda:N", device);
#ifdef WICK_HAVE_CUDA
    wk_backend *be = wk_backend_cuda(idx);
    if (!be) return wk_err_prefix(WICK_EUNSUPPORTED, "encoder: device '%s'", device);
    if (e->c.head_dim > 128)
        return wk_err(WICK_EUNSUPPORTED, "%s: head_dim %d: the CUDA encoder supports head_dim <= 128", e->dir, e->c.head_dim);
    wick_status st = wk_bert_to_backend(e, be, bf16);
    return st ? wk_err_prefix(st, "%s: on %s", e->dir, device) : WICK_OK;
#else
    (void)bf16;
    return wk_err(WICK_EUNSUPPORTED, "encoder: device '%s' is not available: this build has no CUDA backend", device);
#endif
}

/* Grows the batch buffers to B sequences of T tokens and the pooled rows to n (graphs bake
 * buffer addresses: they are dropped when a buffer moves). */
static wick_status reserve(wick_encoder *e, int B, int T, size_t n) {
    wk_bert_dev *d = e->dev;
    wk_backend *be = e->be;
    size_t tok = (size_t)B * T, C = (size_t)e->c.hidden, hin = 4 * tok + (size_t)B;
    if (hin > d->h_cap) {
        wk_free(d->h_in);
        d->h_cap = 0;
        if (!(d->h_in = wk_malloc(sizeof(int32_t) * hin, "encoder batch inputs"))) return WICK_ENOMEM;
        d->h_cap = hin;
    }
    if (tok > d->tok_cap || B > d->b_cap) {
        drop_graphs(e);
        be->free(be, d->in), be->free(be, d->x), be->free(be, d->scr);
        d->tok_cap = 0, d->b_cap = 0;
        d->in = be->alloc(be, sizeof(int32_t) * hin);
        d->x = be->alloc(be, sizeof(float) * tok * C);
        d->scr = be->alloc(be, sizeof(float) * wk_bert_scratch_floats(&e->c, tok));
        if (!d->in || !d->x || !d->scr) return WICK_ENOMEM;
        d->tok_cap = tok, d->b_cap = B;
    }
    if (n > d->emb_rows) {
        drop_graphs(e);
        be->free(be, d->emb);
        d->emb_rows = 0;
        if (!(d->emb = be->alloc(be, sizeof(float) * n * C))) return WICK_ENOMEM;
        d->emb_rows = n;
    }
    return WICK_OK;
}

/* Stages ids / positions / types / mask / rows of a [B,T] batch and uploads them into d->in. */
static void stage(wick_encoder *e, const int32_t *ids, const int32_t *types, const int32_t *mask, const int *rows, int B,
                  int T) {
    wk_bert_dev *d = e->dev;
    size_t tok = (size_t)B * T;
    int32_t *h = d->h_in;
    for (size_t i = 0; i < tok; i++) {
        h[i] = ids[i];
        h[tok + i] = (int32_t)(i % (size_t)T);
        h[2 * tok + i] = types ? types[i] : 0;
        h[3 * tok + i] = mask ? mask[i] != 0 : 1;
    }
    for (int b = 0; b < B; b++) h[4 * tok + b] = rows ? rows[b] : b;
    e->be->upload(e->be, d->in, h, sizeof(int32_t) * (4 * tok + (size_t)B));
}

typedef struct {
    wick_encoder *e;
    int B, T, pool, norm;
} batch_ctx;

/* The ops of one batch: forward over d->in, pooled into d->emb at the staged rows (pool > 0). */
static void run_ops(void *ctx) {
    batch_ctx *c = ctx;
    wick_encoder *e = c->e;
    wk_bert_dev *d = e->dev;
    size_t tok = (size_t)c->B * c->T;
    const int32_t *in = d->in;
    wk_bert_forward_ops(e, d->x, d->scr, in, in + tok, in + 2 * tok, in + 3 * tok, &d->pos, &d->type, c->B, c->T);
    if (c->pool) e->be->pool(e->be, d->emb, d->x, in + 3 * tok, in + 4 * tok, c->B, c->T, e->c.hidden, c->pool, c->norm);
}

/* Runs the batch as its shape's graph (captured on first use), or directly without graphs. */
static void run_graph(wick_encoder *e, batch_ctx *c) {
    wk_bert_dev *d = e->dev;
    wk_backend *be = e->be;
    bert_graph *g = NULL;
    for (int i = 0; i < BERT_GRAPHS && !g; i++)
        if (d->graph[i].g && d->graph[i].B == c->B && d->graph[i].T == c->T && d->graph[i].pool == c->pool &&
            d->graph[i].norm == c->norm)
            g = &d->graph[i];
    if (g && be->graph_replay(be, g->g) == 0) return;
    if (g) { /* stale: the backend's scratch moved */
        be->graph_free(be, g->g);
        g->g = NULL;
    }
    if (!g) {
        g = &d->graph[d->next_graph];
        d->next_graph = (d->next_graph + 1) % BERT_GRAPHS;
        if (g->g) be->graph_free(be, g->g);
    }
    *g = (bert_graph){.B = c->B, .T = c->T, .pool = c->pool, .norm = c->norm};
    if (be->graph_capture && (g->g = be->graph_capture(be, run_ops, c))) return;
    run_ops(c);
}

wick_status wk_bert_dev_forward(wick_encoder *e, const int32_t *ids, const int32_t *types, const int32_t *mask, int B,
                                int T, float *out) {
    wick_status st = reserve(e, B, T, 0);
    if (st) return st;
    stage(e, ids, types, mask, NULL, B, T);
    batch_ctx c = {.e = e, .B = B, .T = T};
    run_ops(&c);
    e->be->download(e->be, out, e->dev->x, sizeof(float) * (size_t)B * T * e->c.hidden);
    return e->be->check(e->be);
}

wick_status wk_bert_dev_begin(wick_encoder *e, int n, int bs, int T0) { return reserve(e, bs, T0, (size_t)n); }

wick_status wk_bert_dev_batch(wick_encoder *e, const int32_t *ids, const int32_t *mask, const int *rows, int B, int T,
                              int pool, int norm) {
    wick_status st = reserve(e, B, T, 0);
    if (st) return st;
    stage(e, ids, NULL, mask, rows, B, T);
    batch_ctx c = {.e = e, .B = B, .T = T, .pool = pool, .norm = norm != 0};
    run_graph(e, &c);
    return WICK_OK;
}

wick_status wk_bert_dev_finish(wick_encoder *e, int n, float *out) {
    e->be->download(e->be, out, e->dev->emb, sizeof(float) * (size_t)n * e->c.hidden);
    return e->be->check(e->be);
}
