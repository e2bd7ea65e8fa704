/*
 * peft_config.c — reads PEFT's adapter_config.json for LoRA and answers which
 * (layer, projection) pairs it adapts, with which rank and alpha, following
 * PEFT's own matching rules:
 *   target_modules list: key == t or key ends with "." + t (layers_to_transform
 *     then filters the suffix matches); a string: a regex that must match the whole
 *     key; "all-linear": every linear layer but the head.
 *   exclude_modules: the same rules, checked first.
 *   rank_pattern/alpha_pattern: the first pattern p with re.match("(.*\.)?(p)$", key).
 * Keys are module names of the base model: "model.layers.3.self_attn.q_proj".
 * Fields of features wick does not implement (DoRA, modules_to_save, ...) are errors.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "lora/adapter.h"

#include <math.h>
#include <pcre2.h>
#include <stdio.h>

void wk_module_name(char *buf, size_t cap, int l, int p) {
    snprintf(buf, cap, "model.layers.%d.%s.%s", l, wk_proj_parent[p], wk_proj_names[p]);
}

float wk_lora_scale(double alpha, int r, int rslora) {
    return (float)(rslora ? alpha / sqrt((double)r) : alpha / (double)r);
}

static pcre2_code *compile_re(const char *path, const char *field, const char *re, wick_status *st) {
    int err;
    PCRE2_SIZE off;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
    if (!c) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        *st = wk_err(WICK_EFORMAT, "%s: %s: regex '%s' does not compile: %s (offset %zu)", path, field, re, msg, (size_t)off);
    }
    return c;
}

/* Python re.fullmatch (full = 1) or re.match (anchored at the start only). */
static int re_match(const pcre2_code *c, const char *s, int full) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(c, NULL);
    if (!md) return 0;
    uint32_t opt = PCRE2_ANCHORED | (full ? PCRE2_ENDANCHORED : 0);
    int rc = pcre2_match(c, (PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED, 0, opt, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

static int ends_with_component(const char *key, const char *t) {
    size_t kl = strlen(key), tl = strlen(t);
    if (kl == tl) return !strcmp(key, t);
    return kl > tl && key[kl - tl - 1] == '.' && !strcmp(key + kl - tl, t);
}

/* Fields of PEFT features that change the forward pass: each must be null/false/empty. */
static wick_status check_unsupported(const char *path, json_t *root) {
    static const char *const off[] = {"use_dora", "fan_in_fan_out", "lora_bias", "modules_to_save",
                                      "trainable_token_indices", "layer_replication", "use_qalora",
                                      "alora_invocation_tokens", "target_parameters", "use_bdlora", "arrow_config",
                                      "kasa_config", "monteclora_config", "velora_config", "lora_ga_config"};
    for (size_t i = 0; i < WK_ARRAY_LEN(off); i++) {
        json_t *v = json_object_get(root, off[i]);
        int set = v && !json_is_null(v) && !json_is_false(v) &&
                  !(json_is_array(v) && json_array_size(v) == 0) && !(json_is_object(v) && json_object_size(v) == 0);
        if (set)
            return wk_err(WICK_EUNSUPPORTED, "%s: field '%s' is set: this LoRA variant is not supported (only plain LoRA)",
                          path, off[i]);
    }
    json_t *v = json_object_get(root, "bias");
    if (v && !json_is_null(v) && !(json_is_string(v) && !strcmp(json_string_value(v), "none")))
        return wk_err(WICK_EUNSUPPORTED, "%s: field 'bias' must be \"none\" (trained biases are not supported)", path);
    v = json_object_get(root, "peft_type");
    if (v && !(json_is_string(v) && !strcmp(json_string_value(v), "LORA")))
        return wk_err(WICK_EUNSUPPORTED, "%s: field 'peft_type' is %s, only \"LORA\" is supported", path,
                      json_is_string(v) ? json_string_value(v) : "not a string");
    v = json_object_get(root, "layers_pattern");
    if (v && !json_is_null(v)) {
        const char *s = json_is_string(v) ? json_string_value(v)
                        : (json_is_array(v) && json_array_size(v) == 1) ? json_string_value(json_array_get(v, 0)) : NULL;
        if (!s || strcmp(s, "layers"))
            return wk_err(WICK_EUNSUPPORTED, "%s: field 'layers_pattern' must be null or \"layers\"", path);
    }
    return WICK_OK;
}

/* A target_modules list entry must name one of the seven projections. */
static wick_status check_target_entry(const char *path, const char *field, const char *t) {
    const char *last = strrchr(t, '.');
    last = last ? last + 1 : t;
    for (int p = 0; p < WK_P_COUNT; p++)
        if (!strcmp(last, wk_proj_names[p])) return WICK_OK;
    if (!strcmp(last, "lm_head") || !strcmp(last, "embed_tokens"))
        return wk_err(WICK_EUNSUPPORTED, "%s: %s entry '%s': LoRA on the embedding or LM head is not supported", path,
                      field, t);
    return wk_err(WICK_EFORMAT, "%s: %s entry '%s' names no linear layer (want q_proj, k_proj, v_proj, o_proj, "
                  "gate_proj, up_proj or down_proj)", path, field, t);
}

static wick_status parse_modules(const char *path, const char *field, json_t *v, json_t **list, void **re, int *all) {
    if (!v || json_is_null(v)) return WICK_OK;
    wick_status st = WICK_OK;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (all && !strcasecmp(s, "all-linear")) return *all = 1, WICK_OK;
        pcre2_code *c = compile_re(path, field, s, &st);
        if (!c) return st;
        *re = c;
        if (re_match(c, "lm_head", 1) || re_match(c, "model.embed_tokens", 1))
            if (all) return wk_err(WICK_EUNSUPPORTED, "%s: %s '%s' matches the embedding or LM head (not supported)", path, field, s);
        return WICK_OK;
    }
    if (!json_is_array(v)) return wk_err(WICK_EFORMAT, "%s: field '%s' must be a list of module names or a string", path, field);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) return wk_err(WICK_EFORMAT, "%s: %s[%zu] is not a string", path, field, i);
        if (all && (st = check_target_entry(path, field, json_string_value(e)))) return st;
    }
    *list = json_incref(v);
    return WICK_OK;
}

static wick_status parse_pattern(const char *path, const char *field, json_t *v, int want_int, json_t **out) {
    if (!v || json_is_null(v)) return WICK_OK;
    if (!json_is_object(v)) return wk_err(WICK_EFORMAT, "%s: field '%s' must be an object", path, field);
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        wick_status st = WICK_OK;
        if (want_int ? !(json_is_integer(x) && json_integer_value(x) > 0) : !json_is_number(x))
            return wk_err(WICK_EFORMAT, "%s: %s['%s'] must be a %s", path, field, k, want_int ? "positive integer" : "number");
        char re[600];
        snprintf(re, sizeof re, "(.*\\.)?(%s)$", k);
        pcre2_code *c = compile_re(path, field, re, &st);
        if (!c) return st;
        pcre2_code_free(c);
    }
    *out = json_incref(v);
    return WICK_OK;
}

static wick_status parse_numbers(const char *path, json_t *root, wk_peft_cfg *c) {
    json_t *v = json_object_get(root, "r");
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > 65536)
        return wk_err(WICK_EFORMAT, "%s: field 'r' must be a positive integer", path);
    c->r = (int)json_integer_value(v);
    c->alpha = 8;
    if ((v = json_object_get(root, "lora_alpha")) && !json_is_null(v)) {
        if (!json_is_number(v)) return wk_err(WICK_EFORMAT, "%s: field 'lora_alpha' must be a number", path);
        c->alpha = json_number_value(v);
    }
    if ((v = json_object_get(root, "lora_dropout")) && !json_is_null(v)) {
        if (!json_is_number(v)) return wk_err(WICK_EFORMAT, "%s: field 'lora_dropout' must be a number", path);
        c->dropout = json_number_value(v);
    }
    if ((v = json_object_get(root, "use_rslora")) && !json_is_null(v)) {
        if (!json_is_boolean(v)) return wk_err(WICK_EFORMAT, "%s: field 'use_rslora' must be true or false", path);
        c->rslora = json_is_true(v);
    }
    v = json_object_get(root, "layers_to_transform");
    if (v && !json_is_null(v)) {
        size_t i;
        json_t *e;
        if (json_is_array(v)) {
            json_array_foreach(v, i, e) if (!json_is_integer(e) || json_integer_value(e) < 0)
                return wk_err(WICK_EFORMAT, "%s: layers_to_transform[%zu] must be a layer index", path, i);
        } else if (!json_is_integer(v) || json_integer_value(v) < 0) {
            return wk_err(WICK_EFORMAT, "%s: field 'layers_to_transform' must be a layer index or a list of them", path);
        }
        c->layers = json_incref(v);
    }
    return WICK_OK;
}

wick_status wk_peft_parse(const char *path, const char *text, wk_peft_cfg *c) {
    memset(c, 0, sizeof *c);
    json_error_t e;
    json_t *root = json_loads(text, 0, &e);
    if (!root) return wk_err(WICK_EFORMAT, "%s: invalid JSON: %s (line %d)", path, e.text, e.line);
    c->root = root;
    if (!json_is_object(root)) return wk_err(WICK_EFORMAT, "%s: not a JSON object", path);
    wick_status st = check_unsupported(path, root);
    if (!st) st = parse_numbers(path, root, c);
    json_t *t = json_object_get(root, "target_modules");
    if (!st && (!t || json_is_null(t))) {
        /* PEFT's default for Llama/Qwen/Mistral when target_modules is null */
        c->targets = json_pack("[ss]", "q_proj", "v_proj");
    } else if (!st) {
        st = parse_modules(path, "target_modules", t, &c->targets, &c->target_re, &c->all_linear);
    }
    if (!st) st = parse_modules(path, "exclude_modules", json_object_get(root, "exclude_modules"), &c->exclude, &c->exclude_re, NULL);
    if (!st) st = parse_pattern(path, "rank_pattern", json_object_get(root, "rank_pattern"), 1, &c->rank_pattern);
    if (!st) st = parse_pattern(path, "alpha_pattern", json_object_get(root, "alpha_pattern"), 0, &c->alpha_pattern);
    if (st) wk_peft_free(c);
    return st;
}

void wk_peft_free(wk_peft_cfg *c) {
    json_decref(c->targets);
    json_decref(c->exclude);
    json_decref(c->layers);
    json_decref(c->rank_pattern);
    json_decref(c->alpha_pattern);
    json_decref(c->root);
    if (c->target_re) pcre2_code_free(c->target_re);
    if (c->exclude_re) pcre2_code_free(c->exclude_re);
    memset(c, 0, sizeof *c);
}

static int layer_selected(const json_t *layers, int l) {
    if (!layers) return 1;
    if (json_is_integer(layers)) return json_integer_value(layers) == l;
    size_t i;
    json_t *e;
    json_array_foreach(layers, i, e) if (json_integer_value(e) == l) return 1;
    return 0;
}

/* 0: no match; 1: the key itself; 2: a suffix match (layers_to_transform applies). */
static int list_match(const json_t *list, const char *key) {
    size_t i;
    json_t *e;
    int how = 0;
    json_array_foreach(list, i, e) {
        const char *t = json_string_value(e);
        if (!strcmp(t, key)) return 1;
        if (ends_with_component(key, t)) how = 2;
    }
    return how;
}

int wk_peft_is_target(const wk_peft_cfg *c, int l, int p) {
    char key[160];
    wk_module_name(key, sizeof key, l, p);
    if (c->exclude_re && re_match(c->exclude_re, key, 1)) return 0;
    if (c->exclude && list_match(c->exclude, key)) return 0;
    if (c->target_re) return re_match(c->target_re, key, 1);
    int how = c->all_linear ? 2 : list_match(c->targets, key);
    return how == 1 || (how == 2 && layer_selected(c->layers, l));
}

/* The value of the first pattern matching key, or NULL. */
static json_t *pattern_value(const json_t *pat, const char *key) {
    if (!pat) return NULL;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)pat, k, v) {
        char re[600];
        wick_status st = WICK_OK;
        snprintf(re, sizeof re, "(.*\\.)?(%s)$", k);
        pcre2_code *cc = compile_re("", "", re, &st);
        int hit = cc && re_match(cc, key, 0);
        if (cc) pcre2_code_free(cc);
        if (hit) return v;
    }
    return NULL;
}

void wk_peft_rank_alpha(const wk_peft_cfg *c, int l, int p, int *r, double *alpha) {
    char key[160];
    wk_module_name(key, sizeof key, l, p);
    json_t *rv = pattern_value(c->rank_pattern, key), *av = pattern_value(c->alpha_pattern, key);
    *r = rv ? (int)json_integer_value(rv) : c->r;
    *alpha = av ? json_number_value(av) : c->alpha;
}
