/*
 * config.c — reads Hugging Face config.json for Qwen2/Qwen3/Llama/Mistral causal
 * LMs. Required fields missing or of the wrong type are errors naming the field;
 * values wick cannot honour (other activations, unknown rope types, quantized
 * checkpoints, sliding-window attention in use) are errors too, so nothing is
 * silently computed differently from transformers. Keys wick does not know are
 * reported as warnings (real checkpoints carry many harmless extras).
 */
#include "model/config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>

/* Keys that are read, or known to be harmless for inference/training here. */
static const char *const known_keys[] = {
    "architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings", "rope_theta",
    "rope_scaling", "rope_parameters", "rms_norm_eps", "tie_word_embeddings", "attention_bias", "mlp_bias",
    "hidden_act", "bos_token_id", "eos_token_id", "pad_token_id", "torch_dtype", "dtype", "transformers_version",
    "use_cache", "initializer_range", "attention_dropout", "layer_types", "max_window_layers", "sliding_window",
    "use_sliding_window", "pretraining_tp", "_name_or_path", "quantization_config", "use_mrope", "rope_interleaved",
    "is_llama_config", "transformers.js_config", "_attn_implementation", "output_attentions", "output_hidden_states",
    "return_dict", "torchscript", "id2label", "label2id", "problem_type", "tokenizer_class", "keys_to_ignore_at_inference",
    "decoder_start_token_id", "sep_token_id", "chunk_size_feed_forward", "is_decoder", "is_encoder_decoder",
    "cross_attention_hidden_size", "add_cross_attention", "tie_encoder_decoder", "prefix", "task_specific_params",
    "finetuning_task", "num_labels", "residual_dropout", "embd_pdrop", "resid_pdrop", "moe_intermediate_size",
};

static int key_known(const char *k) {
    for (size_t i = 0; i < WK_ARRAY_LEN(known_keys); i++)
        if (!strcmp(k, known_keys[i])) return 1;
    return 0;
}

static wick_status get_int(json_t *root, const char *path, const char *key, int required, int dflt, int *out) {
    json_t *v = json_object_get(root, key);
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

static wick_status get_num(json_t *root, const char *path, const char *key, int required, double dflt, double *out) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required) return wk_err(WICK_EFORMAT, "%s: missing field '%s'", path, key);
        *out = dflt;
        return WICK_OK;
    }
    if (!json_is_number(v)) return wk_err(WICK_EFORMAT, "%s: field '%s' must be a number", path, key);
    *out = json_number_value(v);
    return WICK_OK;
}

static wick_status get_bool(json_t *root, const char *path, const char *key, int dflt, int *out) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return WICK_OK;
    }
    if (!json_is_boolean(v)) return wk_err(WICK_EFORMAT, "%s: field '%s' must be true or false", path, key);
    *out = json_is_true(v);
    return WICK_OK;
}

static wick_status parse_arch(json_t *root, const char *path, wk_config *c) {
    json_t *mt = json_object_get(root, "model_type");
    const char *t = json_is_string(mt) ? json_string_value(mt) : NULL;
    json_t *archs = json_object_get(root, "architectures");
    const char *a0 = (json_is_array(archs) && json_is_string(json_array_get(archs, 0)))
                         ? json_string_value(json_array_get(archs, 0)) : NULL;
    static const struct {
        const char *type, *cls, *name;
        wk_arch arch;
    } tab[] = {{"qwen2", "Qwen2ForCausalLM", "qwen2", WK_ARCH_QWEN2},
               {"qwen3", "Qwen3ForCausalLM", "qwen3", WK_ARCH_QWEN3},
               {"llama", "LlamaForCausalLM", "llama", WK_ARCH_LLAMA},
               {"mistral", "MistralForCausalLM", "mistral", WK_ARCH_MISTRAL}};
    if (!t && !a0) return wk_err(WICK_EFORMAT, "%s: missing field 'model_type' (and no 'architectures')", path);
    for (size_t i = 0; i < WK_ARRAY_LEN(tab); i++) {
        if ((t && !strcmp(t, tab[i].type)) || (!t && a0 && !strcmp(a0, tab[i].cls))) {
            c->arch = tab[i].arch;
            c->arch_name = tab[i].name;
            return WICK_OK;
        }
    }
    return wk_err(WICK_EUNSUPPORTED, "%s: model_type '%s' is not supported (want qwen2, qwen3, llama or mistral)", path,
                  t ? t : a0);
}

/* rope_scaling (old layout) or rope_parameters (transformers >= 5). */
static wick_status parse_rope(json_t *root, const char *path, wk_config *c) {
    double theta = 10000.0;
    wick_status st = get_num(root, path, "rope_theta", 0, 10000.0, &theta);
    if (st) return st;
    json_t *rp = json_object_get(root, "rope_parameters");
    json_t *rs = json_object_get(root, "rope_scaling");
    json_t *r = (rp && json_is_object(rp)) ? rp : rs;
    c->rope_type = WK_ROPE_DEFAULT;
    c->rope_factor = 1;
    if (r && !json_is_null(r)) {
        if (!json_is_object(r)) return wk_err(WICK_EFORMAT, "%s: field 'rope_scaling' must be an object or null", path);
        if (json_object_get(r, "rope_theta") && (st = get_num(r, path, "rope_theta", 1, 0, &theta))) return st;
        json_t *ty = json_object_get(r, "rope_type");
        if (!ty) ty = json_object_get(r, "type");
        const char *tn = json_is_string(ty) ? json_string_value(ty) : "default";
        double f = 1, lo = 1, hi = 4;
        int orig = 8192;
        if (!strcmp(tn, "default")) {
            c->rope_type = WK_ROPE_DEFAULT;
        } else if (!strcmp(tn, "linear")) {
            c->rope_type = WK_ROPE_LINEAR;
            if ((st = get_num(r, path, "factor", 1, 1, &f))) return wk_err_prefix(st, "rope_scaling");
        } else if (!strcmp(tn, "llama3")) {
            c->rope_type = WK_ROPE_LLAMA3;
            if ((st = get_num(r, path, "factor", 1, 1, &f)) || (st = get_num(r, path, "low_freq_factor", 1, 1, &lo)) ||
                (st = get_num(r, path, "high_freq_factor", 1, 4, &hi)) ||
                (st = get_int(r, path, "original_max_position_embeddings", 1, 8192, &orig)))
                return wk_err_prefix(st, "rope_scaling");
            if (!(hi > lo)) return wk_err(WICK_EFORMAT, "%s: rope_scaling: high_freq_factor must exceed low_freq_factor", path);
        } else {
            return wk_err(WICK_EUNSUPPORTED, "%s: rope_scaling type '%s' is not supported (want default, linear or llama3)",
                          path, tn);
        }
        if (!(f > 0)) return wk_err(WICK_EFORMAT, "%s: rope_scaling factor must be positive", path);
        c->rope_factor = (float)f;
        c->rope_low_freq = (float)lo;
        c->rope_high_freq = (float)hi;
        c->rope_orig_max_pos = orig;
    }
    if (!(theta > 0)) return wk_err(WICK_EFORMAT, "%s: rope_theta must be positive", path);
    c->rope_theta = (float)theta;
    return WICK_OK;
}

static wick_status check_unsupported(json_t *root, const char *path) {
    json_t *act = json_object_get(root, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu")))
        return wk_err(WICK_EUNSUPPORTED, "%s: hidden_act '%s' is not supported (want silu)", path,
                      json_is_string(act) ? json_string_value(act) : "?");
    json_t *q = json_object_get(root, "quantization_config");
    if (q && !json_is_null(q))
        return wk_err(WICK_EUNSUPPORTED, "%s: quantization_config is set: quantized HF checkpoints are not supported "
                      "(use an unquantized checkpoint or a GGUF file)", path);
    json_t *usw = json_object_get(root, "use_sliding_window");
    if (json_is_true(usw)) return wk_err(WICK_EUNSUPPORTED, "%s: use_sliding_window is true: sliding-window attention is not supported", path);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!key_known(key)) wk_log(WICK_LOG_WARN, "%s: ignoring unknown field '%s'", path, key);
    }
    return WICK_OK;
}

static wick_status parse_fields(json_t *root, const char *path, wk_config *c) {
    wick_status st;
    if ((st = parse_arch(root, path, c)) || (st = check_unsupported(root, path))) return st;
    if ((st = get_int(root, path, "vocab_size", 1, 0, &c->vocab)) || (st = get_int(root, path, "hidden_size", 1, 0, &c->hidden)) ||
        (st = get_int(root, path, "intermediate_size", 1, 0, &c->inter)) ||
        (st = get_int(root, path, "num_hidden_layers", 1, 0, &c->n_layers)) ||
        (st = get_int(root, path, "num_attention_heads", 1, 0, &c->n_heads)) ||
        (st = get_int(root, path, "num_key_value_heads", 0, c->n_heads, &c->n_kv_heads)) ||
        (st = get_int(root, path, "max_position_embeddings", 0, 4096, &c->max_pos)))
        return st;
    if (c->vocab <= 0 || c->hidden <= 0 || c->inter <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0)
        return wk_err(WICK_EFORMAT, "%s: vocab_size, hidden_size, intermediate_size, num_hidden_layers and head counts must be positive", path);
    if (c->n_heads % c->n_kv_heads)
        return wk_err(WICK_EFORMAT, "%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)", path,
                      c->n_heads, c->n_kv_heads);
    if ((st = get_int(root, path, "head_dim", 0, c->hidden / c->n_heads, &c->head_dim))) return st;
    if (c->head_dim <= 0 || c->head_dim % 2)
        return wk_err(WICK_EFORMAT, "%s: head_dim %d must be positive and even", path, c->head_dim);
    if (!json_object_get(root, "head_dim") && c->hidden % c->n_heads)
        return wk_err(WICK_EFORMAT, "%s: hidden_size %d not divisible by num_attention_heads %d and no head_dim", path,
                      c->hidden, c->n_heads);
    double eps = 1e-6;
    if ((st = get_num(root, path, "rms_norm_eps", 0, 1e-6, &eps))) return st;
    c->rms_eps = (float)eps;
    if ((st = parse_rope(root, path, c))) return st;
    int attn_bias, tie;
    if ((st = get_bool(root, path, "tie_word_embeddings", c->arch == WK_ARCH_QWEN2 ? 0 : 0, &tie)) ||
        (st = get_bool(root, path, "attention_bias", c->arch == WK_ARCH_QWEN2, &attn_bias)) ||
        (st = get_bool(root, path, "mlp_bias", 0, &c->mlp_bias)))
        return st;
    c->tie_embeddings = tie;
    c->qkv_bias = c->arch == WK_ARCH_QWEN2 ? 1 : attn_bias;
    c->o_bias = (c->arch == WK_ARCH_LLAMA || c->arch == WK_ARCH_MISTRAL) ? attn_bias : 0;
    c->qk_norm = c->arch == WK_ARCH_QWEN3;
    /* Mistral applies sliding_window whenever it is set; Qwen only with use_sliding_window (rejected above). */
    if (c->arch == WK_ARCH_MISTRAL && (st = get_int(root, path, "sliding_window", 0, 0, &c->sliding_window))) return st;
    return WICK_OK;
}

/* eos_token_id: an integer or a list of integers. */
static wick_status parse_ids(json_t *v, const char *path, const char *key, wk_config *c) {
    if (!v || json_is_null(v)) return WICK_OK;
    if (json_is_integer(v)) {
        c->n_eos = 1;
        c->eos[0] = (int)json_integer_value(v);
        return WICK_OK;
    }
    if (!json_is_array(v)) return wk_err(WICK_EFORMAT, "%s: field '%s' must be an integer or a list", path, key);
    c->n_eos = 0;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_integer(e)) return wk_err(WICK_EFORMAT, "%s: field '%s'[%zu] must be an integer", path, key, i);
        if (c->n_eos < WK_MAX_EOS) c->eos[c->n_eos++] = (int)json_integer_value(e);
    }
    return WICK_OK;
}

wick_status wk_config_parse(const char *text, const char *path, wk_config *c) {
    memset(c, 0, sizeof *c);
    c->bos = -1;
    json_error_t e;
    json_t *root = json_loads(text, 0, &e);
    if (!root) return wk_err(WICK_EFORMAT, "%s: invalid JSON: %s (line %d column %d)", path, e.text, e.line, e.column);
    wick_status st = json_is_object(root) ? parse_fields(root, path, c)
                                          : wk_err(WICK_EFORMAT, "%s: top level is not a JSON object", path);
    if (!st) st = parse_ids(json_object_get(root, "eos_token_id"), path, "eos_token_id", c);
    json_t *b = json_object_get(root, "bos_token_id");
    if (!st && json_is_integer(b)) c->bos = (int)json_integer_value(b);
    json_decref(root);
    return st;
}

wick_status wk_config_load(const char *dir, wk_config *c) {
    char path[4096], *text;
    wk_path_join(path, sizeof path, dir, "config.json");
    wick_status st = wk_read_file(path, &text, NULL);
    if (st) return st;
    st = wk_config_parse(text, path, c);
    wk_free(text);
    if (st) return st;
    /* generation_config.json's eos_token_id takes precedence (it may be a list). */
    wk_path_join(path, sizeof path, dir, "generation_config.json");
    if (!wk_file_exists(path)) return WICK_OK;
    if ((st = wk_read_file(path, &text, NULL))) return st;
    json_error_t e;
    json_t *root = json_loads(text, 0, &e);
    wk_free(text);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return wk_err(WICK_EFORMAT, "%s: invalid JSON: %s (line %d)", path, e.text, e.line);
    }
    st = parse_ids(json_object_get(root, "eos_token_id"), path, "eos_token_id", c);
    json_t *b = json_object_get(root, "bos_token_id");
    if (json_is_integer(b)) c->bos = (int)json_integer_value(b);
    json_decref(root);
    for (int i = 0; !st && i < c->n_eos; i++)
        if (c->eos[i] < 0 || c->eos[i] >= c->vocab)
            st = wk_err(WICK_EFORMAT, "%s: eos_token_id %d outside the vocabulary (%d)", path, c->eos[i], c->vocab);
    return st;
}

void wk_rope_inv_freq(const wk_config *c, float *inv) {
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        float f = (float)(1.0 / pow((double)c->rope_theta, (double)(2 * i) / (double)c->head_dim));
        if (c->rope_type == WK_ROPE_LINEAR) {
            f /= c->rope_factor;
        } else if (c->rope_type == WK_ROPE_LLAMA3) {
            double lo_wl = c->rope_orig_max_pos / c->rope_low_freq, hi_wl = c->rope_orig_max_pos / c->rope_high_freq;
            double wl = 2 * M_PI / f;
            if (wl > lo_wl) {
                f = f / c->rope_factor;
            } else if (wl >= hi_wl) {
                double s = (c->rope_orig_max_pos / wl - c->rope_low_freq) / (c->rope_high_freq - c->rope_low_freq);
                f = (float)((1 - s) * f / c->rope_factor + s * f);
            }
        }
        inv[i] = f;
    }
}
