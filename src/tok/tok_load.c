/*
 * tok_load.c — reads a Hugging Face tokenizer.json (and tokenizer_config.json /
 * chat_template.jinja beside it) into a wick_tokenizer. vocab and merges go through
 * the fast scanner of tok_json.c; the small parts (normalizer, pre_tokenizer,
 * post_processor, decoder, added_tokens) through jansson. Anything the file asks for
 * that wick does not implement is WICK_EUNSUPPORTED naming the field.
 */
#include "io/gguf.h"
#include "tok.h"
#include <jansson.h>
#include <stdlib.h>
#include <sys/stat.h>

#define UNSUP(field, val) wk_err(WICK_EUNSUPPORTED, "%s \"%s\" is not supported", field, val)

static json_t *jparse(const char *s, size_t n, const char *what) {
    json_error_t e;
    json_t *j = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j) wk_err(WICK_EFORMAT, "%s: malformed JSON: %s", what, e.text);
    return j;
}

static const char *jstr(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}
static int jbool(json_t *o, const char *k, int def) {
    json_t *v = json_object_get(o, k);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

/* {"String": s} or {"Regex": r}: literal sets *literal. */
static const char *jpattern(json_t *o, int *literal) {
    json_t *p = json_object_get(o, "pattern");
    const char *s = jstr(p, "String");
    *literal = s != NULL;
    return s ? s : jstr(p, "Regex");
}

static char *dup_or_null(const char *s) { return s ? wk_strdup(s) : NULL; }

static tk_prepend prepend_scheme(json_t *o) {
    const char *ps = jstr(o, "prepend_scheme");
    if (ps) return !strcmp(ps, "first") ? TK_PS_FIRST : !strcmp(ps, "never") ? TK_PS_NEVER : TK_PS_ALWAYS;
    return jbool(o, "add_prefix_space", 1) ? TK_PS_ALWAYS : TK_PS_NEVER;
}

static wick_status add_norm(wick_tokenizer *t, json_t *o) {
    const char *type = jstr(o, "type");
    if (!type) return wk_err(WICK_EFORMAT, "normalizer: missing \"type\"");
    if (!strcmp(type, "Sequence")) {
        json_t *a = json_object_get(o, "normalizers"), *x;
        size_t i;
        json_array_foreach(a, i, x) {
            wick_status st = add_norm(t, x);
            if (st) return st;
        }
        return WICK_OK;
    }
    tk_norm n = {0};
    static const char *names[] = {"NFC", "NFD", "NFKC", "NFKD", "Lowercase", "Strip", "StripAccents", "Replace",
                                  "Prepend", "BertNormalizer"};
    int k = -1;
    for (int i = 0; i < (int)WK_ARRAY_LEN(names); i++)
        if (!strcmp(type, names[i])) k = i;
    if (k < 0) return UNSUP("normalizer.type", type);
    n.kind = (tk_norm_kind)k;
    if (n.kind == TK_N_STRIP) n.left = jbool(o, "strip_left", 1), n.right = jbool(o, "strip_right", 1);
    if (n.kind == TK_N_PREPEND) n.a = dup_or_null(jstr(o, "prepend"));
    if (n.kind == TK_N_REPLACE) {
        int lit;
        const char *p = jpattern(o, &lit);
        if (!p || !jstr(o, "content")) return wk_err(WICK_EFORMAT, "normalizer Replace: needs pattern and content");
        n.a = wk_strdup(p), n.b = wk_strdup(jstr(o, "content"));
        if (!(n.re = tk_regex_compile(p, lit, "normalizer Replace"))) return WICK_EUNSUPPORTED;
    }
    if (n.kind == TK_N_BERT) {
        n.clean_text = jbool(o, "clean_text", 1), n.chinese = jbool(o, "handle_chinese_chars", 1);
        n.lowercase = jbool(o, "lowercase", 1);
        json_t *sa = json_object_get(o, "strip_accents");
        n.strip_accents = json_is_boolean(sa) ? json_is_true(sa) : n.lowercase;
    }
    tk_norm *p = wk_realloc(t->norms, (size_t)(t->n_norms + 1) * sizeof *p, "normalizers");
    if (!p) return WICK_ENOMEM;
    t->norms = p;
    t->norms[t->n_norms++] = n;
    return WICK_OK;
}

static const char *GPT2_RE = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static wick_status pre_fields(tk_pre *p, json_t *o, const char *type) {
    if (p->kind == TK_P_SPLIT) {
        int lit;
        const char *pat = jpattern(o, &lit);
        const char *b = jstr(o, "behavior");
        static const char *bn[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        p->behavior = (tk_behavior)99;
        for (int i = 0; b && i < 5; i++)
            if (!strcmp(b, bn[i])) p->behavior = (tk_behavior)i;
        if (!pat) return wk_err(WICK_EFORMAT, "pre_tokenizer Split: missing pattern");
        if ((int)p->behavior == 99) return UNSUP("pre_tokenizer Split.behavior", b ? b : "(missing)");
        p->invert = jbool(o, "invert", 0);
        if (!(p->re = tk_regex_compile(pat, lit, "pre_tokenizer Split.pattern"))) return WICK_EUNSUPPORTED;
    } else if (p->kind == TK_P_BYTELEVEL) {
        p->add_prefix_space = jbool(o, "add_prefix_space", 1);
        if (jbool(o, "use_regex", 1) && !(p->re = tk_regex_compile(GPT2_RE, 0, "ByteLevel"))) return WICK_EUNSUPPORTED;
    } else if (p->kind == TK_P_METASPACE) {
        const char *r = jstr(o, "replacement");
        if (!r || strlen(r) >= sizeof p->repl) return wk_err(WICK_EFORMAT, "pre_tokenizer Metaspace.replacement");
        strcpy(p->repl, r);
        p->prepend = prepend_scheme(o);
        p->split = jbool(o, "split", 1);
        if (p->split && !(p->re = tk_regex_compile(p->repl, 1, "Metaspace"))) return WICK_EUNSUPPORTED;
    } else if (p->kind == TK_P_WHITESPACE) {
        if (!(p->re = tk_regex_compile("\\w+|[^\\w\\s]+", 0, "Whitespace"))) return WICK_EUNSUPPORTED;
    } else if (p->kind == TK_P_DIGITS) {
        p->individual = jbool(o, "individual_digits", 0);
    }
    (void)type;
    return WICK_OK;
}

static wick_status add_pre(wick_tokenizer *t, json_t *o) {
    const char *type = jstr(o, "type");
    if (!type) return wk_err(WICK_EFORMAT, "pre_tokenizer: missing \"type\"");
    if (!strcmp(type, "Sequence")) {
        json_t *a = json_object_get(o, "pretokenizers"), *x;
        size_t i;
        json_array_foreach(a, i, x) {
            wick_status st = add_pre(t, x);
            if (st) return st;
        }
        return WICK_OK;
    }
    static const char *names[] = {"Split", "ByteLevel", "Metaspace", "BertPreTokenizer", "Whitespace",
                                  "WhitespaceSplit", "Digits"};
    int k = -1;
    for (int i = 0; i < (int)WK_ARRAY_LEN(names); i++)
        if (!strcmp(type, names[i])) k = i;
    if (k < 0) return UNSUP("pre_tokenizer.type", type);
    tk_pre p = {0};
    p.kind = (tk_pre_kind)k;
    wick_status st = pre_fields(&p, o, type);
    if (st) return st;
    if (p.kind == TK_P_BYTELEVEL) t->byte_level = 1;
    tk_pre *np = wk_realloc(t->pres, (size_t)(t->n_pres + 1) * sizeof *np, "pre-tokenizers");
    if (!np) return WICK_ENOMEM;
    t->pres = np;
    t->pres[t->n_pres++] = p;
    return WICK_OK;
}

static wick_status add_dec(wick_tokenizer *t, json_t *o) {
    const char *type = jstr(o, "type");
    if (!type) return wk_err(WICK_EFORMAT, "decoder: missing \"type\"");
    if (!strcmp(type, "Sequence")) {
        json_t *a = json_object_get(o, "decoders"), *x;
        size_t i;
        json_array_foreach(a, i, x) {
            wick_status st = add_dec(t, x);
            if (st) return st;
        }
        return WICK_OK;
    }
    static const char *names[] = {"ByteLevel", "Metaspace", "WordPiece", "ByteFallback", "Fuse", "Strip", "Replace"};
    int k = -1;
    for (int i = 0; i < (int)WK_ARRAY_LEN(names); i++)
        if (!strcmp(type, names[i])) k = i;
    if (k < 0) return UNSUP("decoder.type", type);
    tk_dec d = {0};
    d.kind = (tk_dec_kind)k;
    if (d.kind == TK_D_METASPACE) {
        const char *r = jstr(o, "replacement");
        if (!r || strlen(r) >= sizeof d.repl) return wk_err(WICK_EFORMAT, "decoder Metaspace.replacement");
        strcpy(d.repl, r);
        d.prepend = prepend_scheme(o);
    } else if (d.kind == TK_D_WORDPIECE) {
        d.a = wk_strdup(jstr(o, "prefix") ? jstr(o, "prefix") : "##");
        d.cleanup = jbool(o, "cleanup", 1);
    } else if (d.kind == TK_D_STRIP) {
        const char *c = jstr(o, "content");
        d.a = wk_strdup(c ? c : " ");
        d.start = (int)json_integer_value(json_object_get(o, "start"));
        d.stop = (int)json_integer_value(json_object_get(o, "stop"));
    } else if (d.kind == TK_D_REPLACE) {
        int lit;
        const char *p = jpattern(o, &lit);
        if (!p || !lit) return UNSUP("decoder Replace.pattern", "Regex");
        d.a = wk_strdup(p);
        d.b = wk_strdup(jstr(o, "content") ? jstr(o, "content") : "");
    }
    tk_dec *np = wk_realloc(t->decs, (size_t)(t->n_decs + 1) * sizeof *np, "decoders");
    if (!np) return WICK_ENOMEM;
    t->decs = np;
    t->decs[t->n_decs++] = d;
    return WICK_OK;
}

/* A [token, id] pair (BertProcessing / RobertaProcessing). */
static wick_status pair_id(json_t *o, const char *k, int32_t *id) {
    json_t *v = json_object_get(o, k);
    if (!json_is_array(v) || !json_is_integer(json_array_get(v, 1)))
        return wk_err(WICK_EFORMAT, "post_processor.%s: expected [token, id]", k);
    *id = (int32_t)json_integer_value(json_array_get(v, 1));
    return WICK_OK;
}

static wick_status template_single(wick_tokenizer *t, json_t *o) {
    json_t *single = json_object_get(o, "single"), *it, *specials = json_object_get(o, "special_tokens");
    size_t i;
    int seen_seq = 0;
    json_array_foreach(single, i, it) {
        json_t *sp = json_object_get(it, "SpecialToken");
        if (json_object_get(it, "Sequence")) {
            seen_seq = 1;
            continue;
        }
        const char *name = jstr(sp, "id");
        json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids"), *x;
        if (!name || !json_is_array(ids))
            return wk_err(WICK_EFORMAT, "post_processor TemplateProcessing: special token \"%s\" has no ids",
                          name ? name : "?");
        size_t j;
        json_array_foreach(ids, j, x) {
            if (tk_ids_push(seen_seq ? &t->post_post : &t->post_pre, (int32_t)json_integer_value(x)))
                return WICK_ENOMEM;
        }
    }
    return WICK_OK;
}

static wick_status set_post(wick_tokenizer *t, json_t *o) {
    const char *type = jstr(o, "type");
    if (!type) return wk_err(WICK_EFORMAT, "post_processor: missing \"type\"");
    if (!strcmp(type, "Sequence")) {
        json_t *a = json_object_get(o, "processors"), *x;
        size_t i;
        json_array_foreach(a, i, x) {
            wick_status st = set_post(t, x);
            if (st) return st;
        }
        return WICK_OK;
    }
    if (!strcmp(type, "ByteLevel")) return WICK_OK; /* only trims offsets */
    if (!strcmp(type, "TemplateProcessing")) return template_single(t, o);
    if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        int32_t cls, sep;
        wick_status st = pair_id(o, "cls", &cls);
        if (!st) st = pair_id(o, "sep", &sep);
        if (!st) st = tk_ids_push(&t->post_pre, cls);
        if (!st) st = tk_ids_push(&t->post_post, sep);
        return st;
    }
    return UNSUP("post_processor.type", type);
}

/* Registers an id -> string for an added token (it may already be in the model vocab). */
static wick_status added_token(wick_tokenizer *t, json_t *o, int idx) {
    json_t *jid = json_object_get(o, "id");
    const char *content = jstr(o, "content");
    if (!json_is_integer(jid) || !content)
        return wk_err(WICK_EFORMAT, "added_tokens[%d]: needs integer \"id\" and string \"content\"", idx);
    tk_added *a = &t->added[idx];
    a->id = (int32_t)json_integer_value(jid);
    if (a->id < 0 || a->id > 100000000) return wk_err(WICK_EFORMAT, "added_tokens[%d]: id out of range", idx);
    a->content = wk_strdup(content);
    a->special = jbool(o, "special", 0), a->normalized = jbool(o, "normalized", !a->special);
    a->lstrip = jbool(o, "lstrip", 0), a->rstrip = jbool(o, "rstrip", 0);
    a->single_word = jbool(o, "single_word", 0);
    if (!a->content || !*content) return wk_err(WICK_EFORMAT, "added_tokens[%d]: empty content", idx);
    return WICK_OK;
}

static wick_status load_added(wick_tokenizer *t, json_t *arr) {
    size_t n = json_array_size(arr);
    if (!n) return WICK_OK;
    t->added = wk_calloc(n * sizeof *t->added, "added tokens");
    if (!t->added) return WICK_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        t->n_added = (int)i + 1;
        wick_status st = added_token(t, json_array_get(arr, i), (int)i);
        if (st) return st;
    }
    return WICK_OK;
}

/* ---- model section */
typedef struct {
    const char *vocab, *merges;
    size_t vocab_n, merges_n;
    json_t *rest; /* the other keys, parsed */
    wick_status st;
} model_spans;

static wick_status model_cb(void *u, const char *key, const char *val, size_t vlen) {
    model_spans *m = u;
    if (!strcmp(key, "vocab")) m->vocab = val, m->vocab_n = vlen;
    else if (!strcmp(key, "merges")) m->merges = val, m->merges_n = vlen;
    else {
        json_t *v = jparse(val, vlen, "model");
        if (!v) return WICK_EFORMAT;
        json_object_set_new(m->rest, key, v);
    }
    return WICK_OK;
}

static int finish_vocab(wick_tokenizer *t) {
    int n = t->n_ids;
    while (n > 0 && t->strs[n - 1].off == UINT32_MAX) n--;
    return n;
}

static wick_status bpe_options(wick_tokenizer *t, json_t *m) {
    json_t *drop = json_object_get(m, "dropout");
    if (drop && !json_is_null(drop) && json_number_value(drop) != 0.0)
        return wk_err(WICK_EUNSUPPORTED, "model.dropout %g is not supported (only null or 0)", json_number_value(drop));
    const char *csp = jstr(m, "continuing_subword_prefix"), *eow = jstr(m, "end_of_word_suffix");
    if (csp && *csp) return UNSUP("model.continuing_subword_prefix", csp);
    if (eow && *eow) return UNSUP("model.end_of_word_suffix", eow);
    t->byte_fallback = jbool(m, "byte_fallback", 0);
    t->ignore_merges = jbool(m, "ignore_merges", 0);
    t->fuse_unk = jbool(m, "fuse_unk", 0);
    return WICK_OK;
}

static wick_status load_model(wick_tokenizer *t, const char *val, size_t vlen) {
    model_spans ms = {0};
    ms.rest = json_object();
    wick_status st = tk_json_object_each(val, vlen, model_cb, &ms);
    const char *type = jstr(ms.rest, "type");
    if (!st && !type) st = wk_err(WICK_EFORMAT, "model: missing \"type\"");
    if (!st && strcmp(type, "BPE") && strcmp(type, "WordPiece")) st = UNSUP("model.type", type);
    if (!st && !ms.vocab) st = wk_err(WICK_EFORMAT, "model.vocab: missing");
    if (!st) st = tk_json_parse_vocab(t, ms.vocab, ms.vocab_n, 0);
    int n_model = st ? 0 : finish_vocab(t);
    if (!st) st = tk_strmap_build(&t->vocab, t, n_model);
    if (!st && !strcmp(type, "BPE")) {
        t->model = TK_MODEL_BPE;
        st = bpe_options(t, ms.rest);
        if (!st && !ms.merges) st = wk_err(WICK_EFORMAT, "model.merges: missing");
        if (!st) st = tk_json_parse_merges(t, ms.merges, ms.merges_n);
    } else if (!st) {
        t->model = TK_MODEL_WORDPIECE;
        const char *p = jstr(ms.rest, "continuing_subword_prefix");
        t->wp_prefix = wk_strdup(p ? p : "##");
        json_t *mx = json_object_get(ms.rest, "max_input_chars_per_word");
        t->wp_max_chars = json_is_integer(mx) ? (int)json_integer_value(mx) : 100;
    }
    const char *unk = jstr(ms.rest, "unk_token");
    t->unk_id = -1;
    if (!st && unk) {
        t->unk_id = tk_vocab_get(t, unk, strlen(unk));
        if (t->unk_id < 0) st = wk_err(WICK_EFORMAT, "model.unk_token \"%s\" is not in model.vocab", unk);
    }
    if (!st && t->model == TK_MODEL_WORDPIECE && t->unk_id < 0) st = wk_err(WICK_EFORMAT, "model.unk_token: missing");
    json_decref(ms.rest);
    return st;
}

/* Byte ids: byte-level chars, or <0xXX> tokens for byte_fallback. */
static wick_status byte_ids(wick_tokenizer *t) {
    for (int b = 0; b < 256; b++) {
        char s[8];
        int n;
        if (t->byte_level) n = tk_byte_to_utf8((uint8_t)b, s);
        else n = snprintf(s, sizeof s, "<0x%02X>", b);
        t->byte_id[b] = tk_vocab_get(t, s, (size_t)n); /* -1: byte missing from the vocab (unk or dropped, as HF) */
    }
    return WICK_OK;
}

/* Puts added tokens into the id -> string table and marks them. */
static wick_status index_added(wick_tokenizer *t) {
    int n = finish_vocab(t);
    for (int i = 0; i < t->n_added; i++) n = WK_MAX(n, t->added[i].id + 1);
    tk_str *p = wk_realloc(t->strs, (size_t)WK_MAX(n, 1) * sizeof *p, "vocabulary");
    if (!p) return WICK_ENOMEM;
    for (int i = t->n_ids; i < n; i++) p[i] = (tk_str){UINT32_MAX, 0};
    t->strs = p;
    t->n_ids = n;
    t->is_special = wk_calloc((size_t)n + 1, "special flags");
    t->is_added = wk_calloc((size_t)n + 1, "added flags");
    if (!t->is_special || !t->is_added) return WICK_ENOMEM;
    for (int i = 0; i < t->n_added; i++) {
        tk_added *a = &t->added[i];
        if (a->normalized && t->n_norms) {
            tk_buf nb = {0};
            wick_status st = tk_normalize(t, a->content, strlen(a->content), &nb);
            if (st) return st;
            a->norm_content = nb.p;
            t->has_norm_added = 1;
        } else {
            t->added_first[(uint8_t)a->content[0]] = 1;
        }
        if (t->strs[a->id].off == UINT32_MAX) { /* decodes as HF does: the normalized form when matched normalized */
            const char *c = a->norm_content ? a->norm_content : a->content;
            tk_buf pool = {t->pool, t->pool_len, t->pool_cap};
            uint32_t off = (uint32_t)pool.len;
            if (tk_buf_put(&pool, c, strlen(c))) return WICK_ENOMEM;
            t->pool = pool.p, t->pool_len = pool.len, t->pool_cap = pool.cap;
            t->strs[a->id] = (tk_str){off, (uint32_t)strlen(c)};
        }
        t->is_special[a->id] = (uint8_t)a->special;
        t->is_added[a->id] = 1;
    }
    return WICK_OK;
}

typedef struct {
    wick_tokenizer *t;
    const char *file;
} top_ctx;

static wick_status section(wick_tokenizer *t, const char *key, json_t *v) {
    wick_status st = WICK_OK;
    if (json_is_null(v)) return WICK_OK;
    if (!strcmp(key, "normalizer")) st = add_norm(t, v);
    else if (!strcmp(key, "pre_tokenizer")) st = add_pre(t, v);
    else if (!strcmp(key, "decoder")) st = add_dec(t, v);
    else if (!strcmp(key, "post_processor")) st = set_post(t, v);
    else if (!strcmp(key, "added_tokens")) st = load_added(t, v);
    else if (!strcmp(key, "truncation") || !strcmp(key, "padding"))
        wk_log(WICK_LOG_WARN, "tokenizer.json: \"%s\" is set; wick ignores it (no truncation or padding on encode)",
               key);
    return st;
}

static wick_status top_cb(void *u, const char *key, const char *val, size_t vlen) {
    top_ctx *c = u;
    if (!strcmp(key, "model")) return load_model(c->t, val, vlen);
    if (!strcmp(key, "version")) return WICK_OK;
    json_t *v = jparse(val, vlen, key);
    if (!v) return WICK_EFORMAT;
    wick_status st = section(c->t, key, v);
    json_decref(v);
    return st;
}

/* ---- tokenizer_config.json */
static char *token_string(json_t *v) {
    if (json_is_string(v)) return wk_strdup(json_string_value(v));
    if (json_is_object(v) && jstr(v, "content")) return wk_strdup(jstr(v, "content"));
    return NULL;
}

static wick_status load_config(wick_tokenizer *t, const char *dir) {
    char path[4096];
    wk_path_join(path, sizeof path, dir, "tokenizer_config.json");
    if (wk_file_exists(path)) {
        json_error_t e;
        json_t *c = json_load_file(path, JSON_DECODE_INT_AS_REAL, &e);
        if (!c) return wk_err(WICK_EFORMAT, "%s: line %d: %s", path, e.line, e.text);
        t->bos_token = token_string(json_object_get(c, "bos_token"));
        t->eos_token = token_string(json_object_get(c, "eos_token"));
        json_t *ct = json_object_get(c, "chat_template"), *x;
        size_t i;
        if (json_is_string(ct)) t->chat_template = wk_strdup(json_string_value(ct));
        json_array_foreach(ct, i, x) {
            if (jstr(x, "name") && !strcmp(jstr(x, "name"), "default") && jstr(x, "template"))
                t->chat_template = wk_strdup(jstr(x, "template"));
        }
        json_decref(c);
    }
    wk_path_join(path, sizeof path, dir, "chat_template.jinja");
    if (!t->chat_template && wk_file_exists(path)) {
        size_t n;
        wick_status st = wk_read_file(path, &t->chat_template, &n);
        if (st) return st;
    }
    return WICK_OK;
}

static wick_status load_json_text(wick_tokenizer *t, const char *js, size_t n, const char *file) {
    top_ctx c = {t, file};
    wick_status st = tk_json_object_each(js, n, top_cb, &c);
    if (!st && !t->vocab.slots) st = wk_err(WICK_EFORMAT, "model: missing");
    if (!st && t->model == TK_MODEL_WORDPIECE && t->byte_level) st = UNSUP("pre_tokenizer", "ByteLevel with WordPiece");
    if (!st) st = byte_ids(t);
    if (!st) st = index_added(t);
    return st;
}

static wick_status load_json(wick_tokenizer *t, const char *file) {
    char *js;
    size_t n;
    wick_status st = wk_read_file(file, &js, &n);
    if (st) return st;
    st = load_json_text(t, js, n, file);
    wk_free(js);
    return st ? wk_err_prefix(st, "%s", file) : WICK_OK;
}

wick_status wk_tokenizer_from_json(const char *js, size_t n, const char *name, const char *bos, const char *eos,
                                   const char *chat_template, wick_tokenizer **out) {
    *out = NULL;
    wick_tokenizer *t = wk_calloc(sizeof *t, "tokenizer");
    if (!t) return WICK_ENOMEM;
    t->path = wk_strdup(name);
    wick_status st = load_json_text(t, js, n, name);
    if (!st && bos) t->bos_token = wk_strdup(bos);
    if (!st && eos) t->eos_token = wk_strdup(eos);
    if (!st && chat_template) t->chat_template = wk_strdup(chat_template);
    if (!st) st = tk_cache_init(&t->cache);
    if (st) {
        wk_err_prefix(st, "%s", name);
        wick_tokenizer_free(t);
        return st;
    }
    *out = t;
    return WICK_OK;
}

/* A .gguf file: the tokenizer in its tokenizer.ggml.* metadata. */
static wick_status load_gguf(const char *path, wick_tokenizer **out) {
    wk_gguf *g;
    wick_status st = wk_gguf_open(path, &g);
    if (!st) st = wk_tokenizer_from_gguf(g, out);
    wk_gguf_close(g);
    return st;
}

wick_status wick_tokenizer_load(const char *path, wick_tokenizer **out) {
    if (!path || !out) return wk_err(WICK_EINVAL, "wick_tokenizer_load: NULL argument");
    *out = NULL;
    size_t pl = strlen(path);
    if (pl > 5 && !strcmp(path + pl - 5, ".gguf")) return load_gguf(path, out);
    char file[4096], dir[4096];
    struct stat sb;
    if (stat(path, &sb) != 0) return wk_err(WICK_EIO, "%s: no such file or directory", path);
    if (S_ISDIR(sb.st_mode)) {
        snprintf(dir, sizeof dir, "%s", path);
        wk_path_join(file, sizeof file, path, "tokenizer.json");
        if (!wk_file_exists(file)) return wk_err(WICK_EIO, "%s: directory has no tokenizer.json", path);
    } else {
        snprintf(file, sizeof file, "%s", path);
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else strcpy(dir, ".");
    }
    wick_tokenizer *t = wk_calloc(sizeof *t, "tokenizer");
    if (!t) return WICK_ENOMEM;
    t->path = wk_strdup(file);
    wick_status st = load_json(t, file);
    if (!st) st = load_config(t, dir);
    if (!st) st = tk_cache_init(&t->cache);
    if (st) {
        wick_tokenizer_free(t);
        return st;
    }
    *out = t;
    return WICK_OK;
}

void wick_tokenizer_free(wick_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_norms; i++) {
        wk_free(t->norms[i].a), wk_free(t->norms[i].b);
        pcre2_code_free(t->norms[i].re);
    }
    for (int i = 0; i < t->n_pres; i++) pcre2_code_free(t->pres[i].re);
    for (int i = 0; i < t->n_decs; i++) wk_free(t->decs[i].a), wk_free(t->decs[i].b);
    for (int i = 0; i < t->n_added; i++) wk_free(t->added[i].content), wk_free(t->added[i].norm_content);
    wk_free(t->norms), wk_free(t->pres), wk_free(t->decs), wk_free(t->added);
    wk_free(t->post_pre.p), wk_free(t->post_post.p);
    wk_free(t->merges.keys), wk_free(t->merges.rank), wk_free(t->merges.merged);
    wk_free(t->vocab.slots), wk_free(t->strs), wk_free(t->pool);
    wk_free(t->is_special), wk_free(t->is_added), wk_free(t->wp_prefix);
    wk_free(t->chat_template), wk_free(t->bos_token), wk_free(t->eos_token), wk_free(t->path);
    tk_cache_free(&t->cache);
    wk_free(t);
}

int wick_tokenizer_vocab_size(const wick_tokenizer *t) { return t ? t->n_ids : 0; }

int32_t wick_tokenizer_find(const wick_tokenizer *t, const char *token) {
    if (!t || !token) return -1;
    size_t n = strlen(token);
    for (int i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].content, token)) return t->added[i].id;
    return tk_vocab_get(t, token, n);
}

const char *wick_tokenizer_token(const wick_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_ids || t->strs[id].off == UINT32_MAX) return NULL;
    if (len) *len = t->strs[id].len;
    return t->pool + t->strs[id].off;
}

const char *wick_tokenizer_bos(const wick_tokenizer *t) { return t ? t->bos_token : NULL; }
const char *wick_tokenizer_eos(const wick_tokenizer *t) { return t ? t->eos_token : NULL; }
const char *wick_tokenizer_chat_template(const wick_tokenizer *t) { return t ? t->chat_template : NULL; }
