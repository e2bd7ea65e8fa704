/*
 * model_extra.c — the parts other areas attach to a model: its tokenizer, read from
 * DIR/tokenizer.json (+ tokenizer_config.json) or from a GGUF file's metadata.
 * A model without a tokenizer still loads (ids-only use); a tokenizer that is
 * present but broken is an error.
 */
#include "model/model.h"
#include "tok/tok.h"

wick_status wk_model_attach_tokenizer(wick_model *m) {
    if (m->gguf) {
        if (!wk_gguf_has_tokenizer(m->gguf)) return WICK_OK;
        return wk_tokenizer_from_gguf(m->gguf, &m->tok);
    }
    char path[4096];
    wk_path_join(path, sizeof path, m->dir, "tokenizer.json");
    if (!wk_file_exists(path)) return WICK_OK;
    return wick_tokenizer_load(m->dir, &m->tok);
}

void wk_model_free_extra(wick_model *m) {
    wick_tokenizer_free(m->tok);
    m->tok = NULL;
}
