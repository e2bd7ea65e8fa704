/*
 * bert_batch.c — batched embedding of token-id sequences: truncation at the model's
 * max_seq_len (one warning per call), sort by length (longest first, so each batch
 * pads little), pad per batch with pad_token_id and mask, one forward pass per batch,
 * pooling, and results written back in input order.
 */
#include "model/bert.h"

#include <omp.h>
#include <stdlib.h>

wick_embed_opts wick_embed_opts_default(void) {
    wick_embed_opts o = {.pooling = WICK_POOL_DEFAULT, .normalize = -1, .batch_size = 0};
    return o;
}

typedef struct {
    int len, idx;
} seq_ref;

static int by_len_desc(const void *a, const void *b) {
    const seq_ref *x = a, *y = b;
    if (x->len != y->len) return y->len - x->len;
    return x->idx - y->idx;
}

static wick_status check_inputs(const wick_encoder *e, const int32_t *const *seqs, const int *lens, int n) {
    for (int i = 0; i < n; i++) {
        if (!seqs[i] || lens[i] < 1) return wk_err(WICK_EINVAL, "embed: sequence %d is empty", i);
        for (int t = 0; t < lens[i]; t++)
            if (seqs[i][t] < 0 || seqs[i][t] >= e->c.vocab)
                return wk_err(WICK_ERANGE, "embed: sequence %d position %d: id %d outside the vocabulary [0,%d)", i, t,
                              seqs[i][t], e->c.vocab);
    }
    return WICK_OK;
}

/* Pads sequences order[0..B) (lengths already truncated; a truncated sequence keeps its last
 * id, as a tokenizer truncating [CLS] ... [SEP] does) into ids/mask [B,T], T = order[0].len. */
static void fill_batch(const wick_encoder *e, const int32_t *const *seqs, const int *full_len, const seq_ref *order,
                       int B, int32_t *ids, int32_t *mask) {
    int T = order[0].len;
    for (int b = 0; b < B; b++) {
        int len = order[b].len;
        for (int t = 0; t < T; t++) {
            ids[(size_t)b * T + t] = t < len ? seqs[order[b].idx][t] : e->c.pad_id;
            mask[(size_t)b * T + t] = t < len;
        }
        if (full_len[order[b].idx] > len) ids[(size_t)b * T + len - 1] = seqs[order[b].idx][full_len[order[b].idx] - 1];
    }
}

/* Pools the hidden states h [B,T,C] of sequences order[0..B) into their rows of out. */
static wick_status pool_batch(const wick_encoder *e, const seq_ref *order, int B, const int32_t *mask, const float *h,
                              wick_pooling pool, int norm, float *out) {
    int T = order[0].len, C = e->c.hidden;
    wick_status st = WICK_OK;
    for (int b = 0; b < B && !st; b++)
        st = wick_pool(h + (size_t)b * T * C, mask + (size_t)b * T, T, C, pool, norm, out + (size_t)order[b].idx * C);
    return st;
}

/* Runs sequences order[0..B) as one padded batch (ops threaded inside) and pools them. */
static wick_status run_batch(wick_encoder *e, const int32_t *const *seqs, const int *full_len, const seq_ref *order, int B,
                             wick_pooling pool, int norm, int32_t *ids, int32_t *mask, float *h, float *out) {
    fill_batch(e, seqs, full_len, order, B, ids, mask);
    wick_status st = wk_bert_forward(e, ids, NULL, mask, B, order[0].len, h);
    return st ? st : pool_batch(e, order, B, mask, h, pool, norm, out);
}

/* Batches one after the other, each threaded inside (few sequences, or one thread). */
static wick_status embed_serial(wick_encoder *e, const int32_t *const *seqs, const int *lens, const seq_ref *order, int n,
                                int bs, wick_pooling pool, int norm, float *out) {
    size_t cap = (size_t)bs * order[0].len;
    int32_t *ids = wk_malloc(sizeof(int32_t) * cap * 2, "embed batch ids");
    float *h = wk_malloc(sizeof(float) * cap * e->c.hidden, "embed hidden states");
    wick_status st = ids && h ? WICK_OK : WICK_ENOMEM;
    for (int i = 0; i < n && !st; i += bs)
        st = run_batch(e, seqs, lens, order + i, WK_MIN(bs, n - i), pool, norm, ids, ids + cap, h, out);
    wk_free(ids);
    wk_free(h);
    return st;
}

/* On a device: each batch is staged, run (a replayed graph) and pooled on the device; one
 * download of the n vectors at the end. */
static wick_status embed_device(wick_encoder *e, const int32_t *const *seqs, const int *lens, const seq_ref *order, int n,
                                int bs, wick_pooling pool, int norm, float *out) {
    size_t cap = (size_t)bs * order[0].len;
    int32_t *ids = wk_malloc(sizeof(int32_t) * cap * 2, "embed batch ids");
    int *rows = wk_malloc(sizeof(int) * (size_t)bs, "embed batch rows");
    wick_status st = ids && rows ? wk_bert_dev_begin(e, n, bs, order[0].len) : WICK_ENOMEM;
    for (int i = 0; i < n && !st; i += bs) {
        int B = WK_MIN(bs, n - i);
        fill_batch(e, seqs, lens, order + i, B, ids, ids + cap);
        for (int b = 0; b < B; b++) rows[b] = order[i + b].idx;
        st = wk_bert_dev_batch(e, ids, ids + cap, rows, B, order[i].len, (int)pool, norm);
    }
    if (!st) st = wk_bert_dev_finish(e, n, out);
    wk_free(ids);
    wk_free(rows);
    return st;
}

/* Buffers of one worker of embed_parallel: ids, mask [bs*T], hidden [bs*T,C], forward scratch. */
typedef struct {
    int32_t *ids;
    float *h, *scr;
} worker_buf;

/* Many sequences on several threads: independent batches of at most bs sequences run side by
 * side, one per thread, each with single-threaded ops and BLAS (a small encoder's products are
 * too small to spread over many threads; whole batches keep every core busy). Same batches'
 * arithmetic as run_batch: rows do not depend on which batch or thread computes them. */
static wick_status embed_parallel(wick_encoder *e, const int32_t *const *seqs, const int *lens, const seq_ref *order,
                                  int n, int bs, int nt, wick_pooling pool, int norm, float *out) {
    size_t tok = (size_t)bs * order[0].len, C = (size_t)e->c.hidden;
    worker_buf *w = wk_calloc(sizeof(worker_buf) * (size_t)nt, "embed workers");
    wick_status st = w ? WICK_OK : WICK_ENOMEM;
    for (int t = 0; t < nt && !st; t++) {
        w[t].ids = wk_malloc(sizeof(int32_t) * tok * 2, "embed batch ids");
        w[t].h = wk_malloc(sizeof(float) * tok * C, "embed hidden states");
        w[t].scr = wk_malloc(sizeof(float) * wk_bert_scratch_floats(&e->c, tok), "encoder activations");
        if (!w[t].ids || !w[t].h || !w[t].scr) st = WICK_ENOMEM;
    }
    int nb = (n + bs - 1) / bs, bad = 0;
    extern void wk_blas_set_threads(int);
    if (!st) {
        wk_blas_set_threads(1);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) reduction(| : bad)
        for (int i = 0; i < nb; i++) {
            worker_buf *b = &w[omp_get_thread_num()];
            const seq_ref *o = order + (size_t)i * bs;
            int B = WK_MIN(bs, n - i * bs);
            fill_batch(e, seqs, lens, o, B, b->ids, b->ids + tok);
            wk_bert_forward_with(e, b->ids, NULL, b->ids + tok, B, o[0].len, b->h, b->scr);
            bad |= pool_batch(e, o, B, b->ids + tok, b->h, pool, norm, out) != WICK_OK;
        }
        wk_blas_set_threads(nt);
        if (bad) st = wk_err(WICK_EINVAL, "embed: pooling failed");
    }
    for (int t = 0; w && t < nt; t++) wk_free(w[t].ids), wk_free(w[t].h), wk_free(w[t].scr);
    wk_free(w);
    return st;
}

/* Sequences per batch when batches run side by side on nt threads: at most bs, few enough
 * that every thread gets work, and at most ~1024 tokens per batch (memory stays ~ one batch
 * of the serial path per thread at long lengths). 0: run batches one after the other. */
static int parallel_batch_size(const wick_encoder *e, int n, int bs, int T0) {
    int nt = wick_get_threads();
    if (e->be->device_memory || nt < 2 || n < nt) return 0;
    int per = (n + nt - 1) / nt, cap = WK_MAX(1, 1024 / T0);
    return WK_MIN(bs, WK_MIN(per, cap));
}

wick_status wick_embed_ids(wick_encoder *e, const int32_t *const *seqs, const int *lens, int n,
                           const wick_embed_opts *opts, float *out) {
    if (!e || (n > 0 && (!seqs || !lens || !out)) || n < 0) return wk_err(WICK_EINVAL, "wick_embed_ids: bad argument");
    wick_embed_opts o = opts ? *opts : wick_embed_opts_default();
    wick_pooling pool = o.pooling == WICK_POOL_DEFAULT ? (wick_pooling)e->pool : o.pooling;
    int norm = o.normalize < 0 ? e->normalize : o.normalize != 0;
    int bs = o.batch_size > 0 ? o.batch_size : e->dev ? 128 : 32;
    if (pool < WICK_POOL_MEAN || pool > WICK_POOL_MAX) return wk_err(WICK_EINVAL, "embed: unknown pooling %d", (int)pool);
    if (n == 0) return WICK_OK;
    wick_status st = check_inputs(e, seqs, lens, n);
    if (st) return st;
    seq_ref *order = wk_malloc(sizeof(seq_ref) * (size_t)n, "embed order");
    if (!order) return WICK_ENOMEM;
    int cut = 0, max_seq = e->c.max_seq;
    for (int i = 0; i < n; i++) {
        order[i] = (seq_ref){.len = WK_MIN(lens[i], max_seq), .idx = i};
        cut += lens[i] > max_seq;
    }
    if (cut) wk_log(WICK_LOG_WARN, "embed: %d of %d sequences longer than %d tokens were truncated", cut, n, max_seq);
    qsort(order, (size_t)n, sizeof *order, by_len_desc);
    bs = WK_MIN(bs, n);
    int pbs = parallel_batch_size(e, n, bs, order[0].len);
    if (e->dev) st = embed_device(e, seqs, lens, order, n, bs, pool, norm, out);
    else if (pbs) st = embed_parallel(e, seqs, lens, order, n, pbs, wick_get_threads(), pool, norm, out);
    else st = embed_serial(e, seqs, lens, order, n, bs, pool, norm, out);
    wk_free(order);
    return st;
}
