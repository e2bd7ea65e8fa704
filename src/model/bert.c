/*
 * bert.c — loads a BertModel checkpoint: config.json (every field wick relies on
 * checked, unsupported variants refused by name), the sentence-transformers pooling
 * files, and the weights from model.safetensors (mmap'd; keys with or without the
 * "bert." prefix; every tensor checked for presence, dtype and shape). Word
 * embeddings and linear weights in f32/bf16 stay in the mapping; f16 linear weights,
 * vectors and the small position/type tables become f32 copies.
 */
#include "model/bert.h"
#include "io/safetensors.h"
#include "backend/cpu/gemm_bf16.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static wick_status cfg_int(json_t *r, const char *path, const char *key, int required, int dflt, int *out) {
    json_t *v = json_object_get(r, key);
    if (!v || json_is_null(v)) {
        if (required) return wk_err(WICK_EFORMAT, "%s: missing field '%s'", path, key);
        *out = dflt;
        return WICK_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 30))
        return wk_err(WICK_EFORMAT, "%s: field '%s' must be a non-negative integer", path, key);
    *out = (int)json_integer_value(v);
    return WICK_OK;
}

/* Refuses what wick would compute differently from transformers. */
static wick_status cfg_variant(json_t *r, const char *path) {
    json_t *mt = json_object_get(r, "model_type");
    if (!json_is_string(mt)) return wk_err(WICK_EFORMAT, "%s: missing string field 'model_type' (expected \"bert\")", path);
    if (strcmp(json_string_value(mt), "bert") != 0)
        return wk_err(WICK_EUNSUPPORTED, "%s: model_type \"%s\" is not supported by the encoder (expected \"bert\")", path,
                      json_string_value(mt));
    json_t *act = json_object_get(r, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "gelu") != 0))
        return wk_err(WICK_EUNSUPPORTED, "%s: hidden_act %s is not supported (expected \"gelu\")", path,
                      json_is_string(act) ? json_string_value(act) : "(not a string)");
    json_t *pe = json_object_get(r, "position_embedding_type");
    if (pe && !json_is_null(pe) && (!json_is_string(pe) || strcmp(json_string_value(pe), "absolute") != 0))
        return wk_err(WICK_EUNSUPPORTED, "%s: position_embedding_type %s is not supported (expected \"absolute\")", path,
                      json_is_string(pe) ? json_string_value(pe) : "(not a string)");
    if (json_is_true(json_object_get(r, "is_decoder")))
        return wk_err(WICK_EUNSUPPORTED, "%s: is_decoder true is not supported (the encoder is bidirectional)", path);
    return WICK_OK;
}

static wick_status cfg_parse(json_t *r, const char *path, wk_bert_config *c) {
    wick_status st = cfg_variant(r, path);
    if (!st) st = cfg_int(r, path, "vocab_size", 1, 0, &c->vocab);
    if (!st) st = cfg_int(r, path, "hidden_size", 1, 0, &c->hidden);
    if (!st) st = cfg_int(r, path, "intermediate_size", 1, 0, &c->inter);
    if (!st) st = cfg_int(r, path, "num_hidden_layers", 1, 0, &c->n_layers);
    if (!st) st = cfg_int(r, path, "num_attention_heads", 1, 0, &c->n_heads);
    if (!st) st = cfg_int(r, path, "max_position_embeddings", 1, 0, &c->max_pos);
    if (!st) st = cfg_int(r, path, "type_vocab_size", 0, 2, &c->type_vocab);
    if (!st) st = cfg_int(r, path, "pad_token_id", 0, 0, &c->pad_id);
    if (st) return st;
    json_t *eps = json_object_get(r, "layer_norm_eps");
    if (eps && !json_is_number(eps)) return wk_err(WICK_EFORMAT, "%s: field 'layer_norm_eps' must be a number", path);
    c->ln_eps = eps ? (float)json_number_value(eps) : 1e-12f;
    const char *zero = !c->vocab ? "vocab_size" : !c->hidden ? "hidden_size" : !c->inter ? "intermediate_size"
                     : !c->n_layers ? "num_hidden_layers" : !c->n_heads ? "num_attention_heads"
                     : !c->max_pos ? "max_position_embeddings" : !c->type_vocab ? "type_vocab_size" : NULL;
    if (zero) return wk_err(WICK_EFORMAT, "%s: field '%s' must be positive", path, zero);
    if (c->hidden % c->n_heads)
        return wk_err(WICK_EFORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path, c->hidden,
                      c->n_heads);
    if (!(c->ln_eps > 0)) return wk_err(WICK_EFORMAT, "%s: field 'layer_norm_eps' must be positive", path);
    c->head_dim = c->hidden / c->n_heads;
    c->max_seq = c->max_pos;
    return WICK_OK;
}

wick_status wk_bert_config_load(const char *dir, wk_bert_config *c) {
    char path[4096];
    wk_path_join(path, sizeof path, dir, "config.json");
    memset(c, 0, sizeof *c);
    json_error_t e;
    json_t *r = json_load_file(path, 0, &e);
    if (!r) {
        if (!wk_file_exists(path)) return wk_err(WICK_EIO, "%s: file not found", path);
        return wk_err(WICK_EFORMAT, "%s: invalid JSON: %s (line %d)", path, e.text, e.line);
    }
    wick_status st = json_is_object(r) ? cfg_parse(r, path, c) : wk_err(WICK_EFORMAT, "%s: not a JSON object", path);
    json_decref(r);
    return st;
}

/* ------------------------------------------------ sentence-transformers files */

static wick_status read_pooling(wick_encoder *e, const char *sub) {
    char dir[4096], path[4096];
    wk_path_join(dir, sizeof dir, e->dir, sub);
    wk_path_join(path, sizeof path, dir, "config.json");
    json_error_t je;
    json_t *r = json_load_file(path, 0, &je);
    if (!r) return wk_err(WICK_EFORMAT, "%s: unreadable or invalid JSON: %s", path, je.text);
    static const char *keys[3] = {"pooling_mode_mean_tokens", "pooling_mode_cls_token", "pooling_mode_max_tokens"};
    int on[3], n_on = 0;
    for (int i = 0; i < 3; i++) n_on += on[i] = json_is_true(json_object_get(r, keys[i]));
    int other = json_is_true(json_object_get(r, "pooling_mode_mean_sqrt_len_tokens")) ||
                json_is_true(json_object_get(r, "pooling_mode_weightedmean_tokens")) ||
                json_is_true(json_object_get(r, "pooling_mode_lasttoken"));
    json_decref(r);
    if (n_on != 1 || other)
        return wk_err(WICK_EUNSUPPORTED, "%s: exactly one of pooling_mode_mean_tokens, pooling_mode_cls_token, "
                      "pooling_mode_max_tokens must be true (other modes and combinations are not supported)", path);
    e->pool = on[0] ? WICK_POOL_MEAN : on[1] ? WICK_POOL_CLS : WICK_POOL_MAX;
    return WICK_OK;
}

static wick_status read_modules(wick_encoder *e, const char *path) {
    json_error_t je;
    json_t *r = json_load_file(path, 0, &je);
    if (!r) return wk_err(WICK_EFORMAT, "%s: invalid JSON: %s (line %d)", path, je.text, je.line);
    wick_status st = json_is_array(r) ? WICK_OK : wk_err(WICK_EFORMAT, "%s: expected a JSON array of modules", path);
    size_t i;
    json_t *m;
    e->normalize = 0;
    json_array_foreach(r, i, m) {
        if (st) break;
        const char *type = json_string_value(json_object_get(m, "type"));
        const char *sub = json_string_value(json_object_get(m, "path"));
        if (!type) st = wk_err(WICK_EFORMAT, "%s: module %zu has no string 'type'", path, i);
        else if (strstr(type, "Normalize")) e->normalize = 1;
        else if (strstr(type, "Pooling")) {
            if (!sub || strstr(sub, "..")) st = wk_err(WICK_EFORMAT, "%s: Pooling module %zu has no valid 'path'", path, i);
            else st = read_pooling(e, sub);
        } else if (strstr(type, "Dense"))
            st = wk_err(WICK_EUNSUPPORTED, "%s: module %zu (%s) is not supported", path, i, type);
    }
    json_decref(r);
    return st;
}

wick_status wk_bert_read_st_config(wick_encoder *e) {
    char path[4096];
    e->pool = WICK_POOL_MEAN;
    e->normalize = 1;
    wk_path_join(path, sizeof path, e->dir, "modules.json");
    wick_status st;
    if (wk_file_exists(path) && (st = read_modules(e, path))) return st;
    wk_path_join(path, sizeof path, e->dir, "sentence_bert_config.json");
    if (!wk_file_exists(path)) return WICK_OK;
    json_error_t je;
    json_t *r = json_load_file(path, 0, &je);
    if (!r) return wk_err(WICK_EFORMAT, "%s: invalid JSON: %s (line %d)", path, je.text, je.line);
    json_t *v = json_object_get(r, "max_seq_length");
    st = WICK_OK;
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            st = wk_err(WICK_EFORMAT, "%s: field 'max_seq_length' must be a positive integer", path);
        else if (json_integer_value(v) < e->c.max_pos)
            e->c.max_seq = (int)json_integer_value(v);
    }
    json_decref(r);
    return st;
}

/* ------------------------------------------------------------------ weights */

static wick_status own(wick_encoder *e, void *p) {
    if (e->n_owned == e->cap_owned) {
        int cap = e->cap_owned ? 2 * e->cap_owned : 64;
        void **n = wk_realloc(e->owned, sizeof(void *) * (size_t)cap, "encoder buffers");
        if (!n) return wk_free(p), WICK_ENOMEM;
        e->owned = n;
        e->cap_owned = cap;
    }
    e->owned[e->n_owned++] = p;
    return WICK_OK;
}

/* The tensor `name` (prefix "bert." tried too) checked for dtype and shape [d0] or [d0,d1] (d1 < 0). */
static wick_status find(wick_encoder *e, const char *name, int64_t d0, int64_t d1, const wick_tensor_view **out) {
    char full[256];
    const wick_tensor_view *v = wk_st_lookup(e->file, name);
    if (!v) {
        snprintf(full, sizeof full, "bert.%s", name);
        v = wk_st_lookup(e->file, full);
    }
    const char *path = wk_st_path(e->file);
    if (!v) return wk_err(WICK_EFORMAT, "%s: missing tensor '%s' (or 'bert.%s')", path, name, name);
    if (v->dtype != WICK_DT_F32 && v->dtype != WICK_DT_BF16 && v->dtype != WICK_DT_F16)
        return wk_err(WICK_EFORMAT, "%s: tensor '%s': dtype %s, expected F32, BF16 or F16", path, v->name,
                      wick_dtype_name(v->dtype));
    int ok = d1 < 0 ? (v->ndim == 1 && v->shape[0] == d0) : (v->ndim == 2 && v->shape[0] == d0 && v->shape[1] == d1);
    if (!ok) {
        char got[128] = "", *p = got;
        for (int i = 0; i < v->ndim; i++)
            p += snprintf(p, sizeof got - (size_t)(p - got), i ? ",%lld" : "%lld", (long long)v->shape[i]);
        if (d1 < 0) return wk_err(WICK_EFORMAT, "%s: tensor '%s': shape [%s], expected [%lld]", path, v->name, got, (long long)d0);
        return wk_err(WICK_EFORMAT, "%s: tensor '%s': shape [%s], expected [%lld,%lld]", path, v->name, got,
                      (long long)d0, (long long)d1);
    }
    e->n_params += d1 < 0 ? d0 : d0 * d1;
    *out = v;
    return WICK_OK;
}

/* An f32 copy of a tensor of shape [d0] or [d0,d1]. */
static wick_status load_f32(wick_encoder *e, const char *name, int64_t d0, int64_t d1, float **out) {
    const wick_tensor_view *v;
    wick_status st = find(e, name, d0, d1, &v);
    if (st) return st;
    size_t n = (size_t)d0 * (size_t)(d1 < 0 ? 1 : d1);
    float *f = wk_malloc(sizeof(float) * n, name);
    if (!f) return WICK_ENOMEM;
    wk_to_f32(f, v->data, v->dtype, n);
    *out = f;
    return own(e, f);
}

/* A weight matrix: f32/bf16 stay mapped (when aligned), anything else becomes f32. */
static wick_status load_mat(wick_encoder *e, const char *name, int rows, int cols, wk_mat *out) {
    const wick_tensor_view *v;
    wick_status st = find(e, name, rows, cols, &v);
    if (st) return st;
    size_t es = wick_dtype_size(v->dtype);
    *out = (wk_mat){.w = v->data, .dt = v->dtype, .rows = rows, .cols = cols};
    if ((v->dtype == WICK_DT_F32 || v->dtype == WICK_DT_BF16) && (uintptr_t)v->data % es == 0) return WICK_OK;
    float *f = wk_malloc(sizeof(float) * (size_t)rows * cols, name);
    if (!f) return WICK_ENOMEM;
    wk_to_f32(f, v->data, v->dtype, (size_t)rows * cols);
    out->w = f;
    out->dt = WICK_DT_F32;
    return own(e, f);
}

static wick_status load_layer(wick_encoder *e, int l) {
    static const char *lin[WK_B_COUNT] = {"attention.self.query", "attention.self.key", "attention.self.value",
                                          "attention.output.dense", "intermediate.dense", "output.dense"};
    int C = e->c.hidden, F = e->c.inter;
    wk_bert_layer *L = &e->layers[l];
    char name[256];
    wick_status st;
    for (int j = 0; j < WK_B_COUNT; j++) {
        int rows = j == WK_B_UP ? F : C, cols = j == WK_B_DOWN ? F : C;
        snprintf(name, sizeof name, "encoder.layer.%d.%s.weight", l, lin[j]);
        if ((st = load_mat(e, name, rows, cols, &L->w[j]))) return st;
        snprintf(name, sizeof name, "encoder.layer.%d.%s.bias", l, lin[j]);
        if ((st = load_f32(e, name, rows, -1, &L->bias[j]))) return st;
    }
    float **dst[4] = {&L->ln1_w, &L->ln1_b, &L->ln2_w, &L->ln2_b};
    static const char *ln[4] = {"attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
                                "output.LayerNorm.weight", "output.LayerNorm.bias"};
    for (int j = 0; j < 4; j++) {
        snprintf(name, sizeof name, "encoder.layer.%d.%s", l, ln[j]);
        if ((st = load_f32(e, name, C, -1, dst[j]))) return st;
    }
    return WICK_OK;
}

wick_status wk_bert_load_weights(wick_encoder *e) {
    char path[4096];
    const wk_bert_config *c = &e->c;
    wk_path_join(path, sizeof path, e->dir, "model.safetensors");
    if (!wk_file_exists(path)) return wk_err(WICK_EIO, "%s: file not found (the encoder reads model.safetensors)", path);
    wick_status st = wick_st_open(path, &e->file);
    if (st) return st;
    e->layers = wk_calloc(sizeof(wk_bert_layer) * (size_t)c->n_layers, "encoder layers");
    if (!e->layers) return WICK_ENOMEM;
    if ((st = load_mat(e, "embeddings.word_embeddings.weight", c->vocab, c->hidden, &e->word))) return st;
    if ((st = load_f32(e, "embeddings.position_embeddings.weight", c->max_pos, c->hidden, &e->pos))) return st;
    if ((st = load_f32(e, "embeddings.token_type_embeddings.weight", c->type_vocab, c->hidden, &e->type))) return st;
    if ((st = load_f32(e, "embeddings.LayerNorm.weight", c->hidden, -1, &e->emb_ln_w))) return st;
    if ((st = load_f32(e, "embeddings.LayerNorm.bias", c->hidden, -1, &e->emb_ln_b))) return st;
    for (int l = 0; l < c->n_layers; l++)
        if ((st = load_layer(e, l))) return st;
    return WICK_OK;
}

/* The AMX tile layout of a bf16 matrix, packed once and owned by the encoder. */
static wick_status pack_amx(wick_encoder *e, wk_mat *w) {
    uint16_t *p = wk_malloc(sizeof(uint16_t) * wk_gemm_amx_packed_elems(w->cols, w->rows), "encoder AMX weights");
    wick_status st = p ? own(e, p) : WICK_ENOMEM;
    if (st) return st;
    wk_gemm_amx_pack(p, w->w, w->cols, w->rows);
    w->amx = p;
    return WICK_OK;
}

wick_status wk_bert_cpu_fast_bf16(wick_encoder *e) {
    if (!wk_gemm_bf16_native()) { /* the exact path would only widen bf16 back: keep f32 */
        wk_log(WICK_LOG_INFO, "encoder: no bf16 kernel for this CPU (AMX or AVX512-BF16); --fast-bf16 keeps the exact fp32 path");
        return WICK_OK;
    }
    int amx = wk_gemm_bf16_level() == WK_BF16_AMX;
    for (int l = 0; l < e->c.n_layers; l++)
        for (int j = 0; j < WK_B_COUNT; j++) {
            wk_mat *w = &e->layers[l].w[j];
            size_t n = (size_t)w->rows * w->cols;
            if (w->dt != WICK_DT_BF16) {
                uint16_t *h = wk_malloc(sizeof(uint16_t) * n, "encoder bf16 weights");
                wick_status st = h ? own(e, h) : WICK_ENOMEM;
                float *f = st ? NULL : wk_malloc(sizeof(float) * n, "encoder bf16 weights");
                if (st || !f) return st ? st : WICK_ENOMEM;
                wk_to_f32(f, w->w, w->dt, n);
                for (size_t i = 0; i < n; i++) h[i] = wk_f32_to_bf16(f[i]);
                wk_free(f);
                w->w = h, w->dt = WICK_DT_BF16;
            }
            w->fast_bf16 = 1;
            wick_status st = amx ? pack_amx(e, w) : WICK_OK;
            if (st) return st;
        }
    return WICK_OK;
}
