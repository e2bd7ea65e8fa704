/*
 * bert_batch.c — batched embedding of token-id sequences: truncation at the model's
 * max_seq_len (one warning per call), sort by length (longest first, so each batch
 * pads little), pad per batch with pad_token_id and mask, one forward pass per batch,
 * pooling, and results written back in input order.
 */
#include "model/bert.h"

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

/* Runs sequences order[0..B) (lengths already truncated; a truncated sequence keeps its
 * last id, as a tokenizer truncating [CLS] ... [SEP] does) as one padded batch and pools them. */
static wick_status run_batch(wick_encoder *e, const int32_t *const *seqs, const int *full_len, const seq_ref *order, int B,
                             wick_pooling pool, int norm, int32_t *ids, int32_t *mask, float *h, float *out) {
    int T = order[0].len, C = e->c.hidden;
    for (int b = 0; b < B; b++) {
        int len = order[b].len;
        for (int t = 0; t < T; t++) {
            ids[(size_t)b * T + t] = t < len ? seqs[order[b].idx][t] : e->c.pad_id;
        if (full_len[order[b].idx] > len) ids[(size_t)b * T + len - 1] = seqs[order[b].idx][full_len[order[b].idx] - 1];
            mask[(size_t)b * T + t] = t < len;
        }
    }
    wick_status st = wk_bert_forward(e, ids, NULL, mask, B, T, h);
    for (int b = 0; b < B && !st; b++)
        st = wick_pool(h + (size_t)b * T * C, mask + (size_t)b * T, T, C, pool, norm, out + (size_t)order[b].idx * C);
    return st;
}

wick_status wick_embed_ids(wick_encoder *e, const int32_t *const *seqs, const int *lens, int n,
                           const wick_embed_opts *opts, float *out) {
    if (!e || (n > 0 && (!seqs || !lens || !out)) || n < 0) return wk_err(WICK_EINVAL, "wick_embed_ids: bad argument");
    wick_embed_opts o = opts ? *opts : wick_embed_opts_default();
    wick_pooling pool = o.pooling == WICK_POOL_DEFAULT ? (wick_pooling)e->pool : o.pooling;
    int norm = o.normalize < 0 ? e->normalize : o.normalize != 0;
    int bs = o.batch_size > 0 ? o.batch_size : 32;
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
    size_t cap = (size_t)bs * order[0].len;
    int32_t *ids = wk_malloc(sizeof(int32_t) * cap * 2, "embed batch ids");
    float *h = wk_malloc(sizeof(float) * cap * e->c.hidden, "embed hidden states");
    if (!ids || !h) st = WICK_ENOMEM;
    for (int i = 0; i < n && !st; i += bs)
        st = run_batch(e, seqs, lens, order + i, WK_MIN(bs, n - i), pool, norm, ids, ids + cap, h, out);
    wk_free(ids);
    wk_free(h);
    wk_free(order);
    return st;
}
