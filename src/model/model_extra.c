/*
 * model_extra.c — the parts of a model that other areas attach: its tokenizer.
 */
#include "model/model.h"

wick_status wk_model_attach_tokenizer(wick_model *m) {
    (void)m; /* the tokenizer loader attaches DIR/tokenizer.json here once src/tok exists */
    return WICK_OK;
}

void wk_model_free_extra(wick_model *m) { (void)m; }
