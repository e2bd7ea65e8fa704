/*
 * bert_text.c — text input for the encoder: the model directory's tokenizer.json
 * (WordPiece for BERT checkpoints) is loaded on first use, texts are tokenized with
 * the post-processor's special tokens ([CLS] ... [SEP]) and embedded through
 * wick_embed_ids (whose truncation keeps the final [SEP], as tokenizers do).
 */
#include "model/bert.h"

#include <stdlib.h>

static wick_status need_tokenizer(wick_encoder *e) {
    if (e->tok) return WICK_OK;
    char path[4096];
    wk_path_join(path, sizeof path, e->dir, "tokenizer.json");
    if (!wk_file_exists(path)) return wk_err(WICK_EUNSUPPORTED, "%s: file not found (text input needs the model's tokenizer; give token ids instead)", path);
    return wick_tokenizer_load(path, &e->tok);
}

wick_tokenizer *wick_encoder_tokenizer(wick_encoder *e) { return e && !need_tokenizer(e) ? e->tok : NULL; }

wick_status wick_encoder_tokenize(wick_encoder *e, const char *text, size_t len, int32_t **ids, int *n) {
    if (!e || !text || !ids || !n) return wk_err(WICK_EINVAL, "wick_encoder_tokenize: NULL argument");
    *ids = NULL, *n = 0;
    wick_status st = need_tokenizer(e);
    if (!st) st = wick_tokenize(e->tok, text, len, WICK_TOK_ADD_SPECIAL, ids, n);
    if (!st && *n == 0) {
        wick_free(*ids), *ids = NULL;
        st = wk_err(WICK_EINVAL, "embed: the text tokenizes to no ids");
    }
    return st;
}

wick_status wick_embed_texts(wick_encoder *e, const char *const *texts, int n, const wick_embed_opts *opts, float *out) {
    if (!e || n < 0 || (n > 0 && (!texts || !out))) return wk_err(WICK_EINVAL, "wick_embed_texts: bad argument");
    int32_t **seqs = wk_calloc(sizeof(int32_t *) * (size_t)(n + 1), "embed texts");
    int *lens = wk_calloc(sizeof(int) * (size_t)(n + 1), "embed texts");
    wick_status st = seqs && lens ? WICK_OK : WICK_ENOMEM;
    for (int i = 0; i < n && !st; i++) {
        if (!texts[i]) st = wk_err(WICK_EINVAL, "embed: text %d is NULL", i);
        else if ((st = wick_encoder_tokenize(e, texts[i], strlen(texts[i]), &seqs[i], &lens[i])))
            wk_err_prefix(st, "embed: text %d", i);
    }
    if (!st) st = wick_embed_ids(e, (const int32_t *const *)seqs, lens, n, opts, out);
    for (int i = 0; seqs && i < n; i++) wick_free(seqs[i]);
    wk_free(seqs);
    wk_free(lens);
    return st;
}
