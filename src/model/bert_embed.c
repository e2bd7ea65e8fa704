/*
 * bert_embed.c — the public embeddings API: encoder load/free/info, the checked
 * forward pass, pooling (mean / CLS / max over real tokens, optional L2
 * normalisation) and batched embedding of token-id sequences (sorted by length,
 * padded per batch, masked, truncated at max_seq_len, written back in input order).
 */
#include "model/bert.h"
#include "io/safetensors.h"

#include <math.h>
#include <stdlib.h>

wick_status wick_encoder_load(const char *dir, const wick_model_opts *opts, wick_encoder **out) {
    *out = NULL;
    wick_model_opts o = opts ? *opts : wick_model_opts_default();
    if (!dir) return wk_err(WICK_EINVAL, "encoder: no directory given");
    if (o.threads > 0) wick_set_threads(o.threads);
    wick_encoder *e = wk_calloc(sizeof *e, "encoder");
    if (!e) return WICK_ENOMEM;
    e->dir = wk_strdup(dir);
    e->be = wk_backend_cpu();
    wick_status st = e->dir ? wk_bert_config_load(dir, &e->c) : WICK_ENOMEM;
    if (!st) st = wk_bert_read_st_config(e);
    if (!st) st = wk_bert_load_weights(e);
    if (!st && o.device && strcmp(o.device, "cpu") != 0) st = wk_bert_to_device(e, o.device, o.fast_bf16 != 0);
    else if (!st && o.fast_bf16) st = wk_bert_cpu_fast_bf16(e);
    if (st) {
        wick_encoder_free(e);
        return st;
    }
    *out = e;
    return WICK_OK;
}

void wick_encoder_free(wick_encoder *e) {
    if (!e) return;
    wk_bert_free_device(e);
    wick_st_close(e->file);
    wick_tokenizer_free(e->tok);
    wk_free(e->scratch);
    for (int i = 0; i < e->n_owned; i++) wk_free(e->owned[i]);
    wk_free(e->owned);
    wk_free(e->layers);
    wk_free(e->dir);
    wk_free(e);
}

wick_status wick_encoder_get_info(const wick_encoder *e, wick_encoder_info *o) {
    if (!e || !o) return wk_err(WICK_EINVAL, "wick_encoder_get_info: NULL argument");
    const wk_bert_config *c = &e->c;
    *o = (wick_encoder_info){.hidden_size = c->hidden, .num_layers = c->n_layers, .num_heads = c->n_heads,
                             .intermediate_size = c->inter, .vocab_size = c->vocab, .type_vocab_size = c->type_vocab,
                             .max_position = c->max_pos, .max_seq_len = c->max_seq, .pooling = (wick_pooling)e->pool,
                             .normalize = e->normalize, .n_params = e->n_params};
    return WICK_OK;
}

/* Checks ids, types and masks of a [B,T] batch. */
static wick_status check_batch(const wick_encoder *e, const int32_t *ids, const int32_t *type_ids, const int32_t *mask,
                               int B, int T) {
    const wk_bert_config *c = &e->c;
    if (B < 1 || T < 1) return wk_err(WICK_EINVAL, "encoder: batch [%d,%d] is empty", B, T);
    if (T > c->max_pos)
        return wk_err(WICK_ERANGE, "encoder: sequence length %d exceeds max_position_embeddings %d", T, c->max_pos);
    for (int b = 0; b < B; b++) {
        int real = 0;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            if (ids[i] < 0 || ids[i] >= c->vocab)
                return wk_err(WICK_ERANGE, "encoder: sequence %d position %d: id %d outside the vocabulary [0,%d)", b, t,
                              ids[i], c->vocab);
            if (type_ids && (type_ids[i] < 0 || type_ids[i] >= c->type_vocab))
                return wk_err(WICK_ERANGE, "encoder: sequence %d position %d: token type %d outside [0,%d)", b, t,
                              type_ids[i], c->type_vocab);
            real += !mask || mask[i] != 0;
        }
        if (!real) return wk_err(WICK_EINVAL, "encoder: sequence %d has no real token in its attention mask", b);
    }
    return WICK_OK;
}

wick_status wick_encoder_forward(wick_encoder *e, const int32_t *ids, const int32_t *type_ids, const int32_t *mask,
                                 int B, int T, float *out) {
    if (!e || !ids || !out) return wk_err(WICK_EINVAL, "wick_encoder_forward: NULL argument");
    wick_status st = check_batch(e, ids, type_ids, mask, B, T);
    if (st) return st;
    return e->dev ? wk_bert_dev_forward(e, ids, type_ids, mask, B, T, out) : wk_bert_forward(e, ids, type_ids, mask, B, T, out);
}

wick_status wick_pool(const float *h, const int32_t *mask, int T, int H, wick_pooling pooling, int normalize,
                      float *out) {
    if (!h || !out || T < 1 || H < 1) return wk_err(WICK_EINVAL, "wick_pool: empty or NULL input");
    int n = 0;
    for (int c = 0; c < H; c++) out[c] = pooling == WICK_POOL_MAX ? -INFINITY : 0.f;
    if (pooling == WICK_POOL_CLS) {
        memcpy(out, h, sizeof(float) * H);
        n = 1;
    } else if (pooling == WICK_POOL_MEAN || pooling == WICK_POOL_MAX || pooling == WICK_POOL_DEFAULT) {
        for (int t = 0; t < T; t++) {
            if (mask && !mask[t]) continue;
            const float *r = h + (size_t)t * H;
            n++;
            if (pooling == WICK_POOL_MAX)
                for (int c = 0; c < H; c++) out[c] = r[c] > out[c] ? r[c] : out[c];
            else
                for (int c = 0; c < H; c++) out[c] += r[c];
        }
        if (pooling != WICK_POOL_MAX && n)
            for (int c = 0; c < H; c++) out[c] /= (float)n;
    } else {
        return wk_err(WICK_EINVAL, "wick_pool: unknown pooling %d", (int)pooling);
    }
    if (!n) return wk_err(WICK_EINVAL, "wick_pool: the mask has no real token");
    if (normalize) {
        double ss = 0;
        for (int c = 0; c < H; c++) ss += (double)out[c] * out[c];
        float inv = (float)(1.0 / fmax(sqrt(ss), 1e-12));
        for (int c = 0; c < H; c++) out[c] *= inv;
    }
    return WICK_OK;
}
