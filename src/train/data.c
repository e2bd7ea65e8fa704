/*
 * data.c — JSONL training data. Pre-tokenized {"input_ids":[..],"labels":[..]}
 * lines are used as they are (labels default to input_ids). With the model's
 * tokenizer: {"text"} trains every token; {"prompt","completion"} masks the
 * prompt and appends the tokenizer's eos token; {"messages":[{role,content}]} is
 * rendered with the chat template and only the assistant replies (with their
 * end-of-turn marker) are trained: the rendered text is tokenized piece by piece
 * at the reply boundaries. A malformed line is an error naming file and line.
 * The shuffled order of each epoch is a Fisher–Yates permutation seeded by
 * (seed, epoch), so any data position can be recomputed (resume).
 */
#include "train/data.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static wick_status int_array(json_t *a, const char *field, int32_t **out, int *n, const char *path, int line) {
    if (!json_is_array(a)) return wk_err(WICK_EFORMAT, "%s:%d: \"%s\" must be an array of integers", path, line, field);
    size_t k = json_array_size(a);
    if (k == 0) return wk_err(WICK_EFORMAT, "%s:%d: \"%s\" is empty", path, line, field);
    int32_t *v = wk_malloc(sizeof(int32_t) * k, "token ids");
    if (!v) return WICK_ENOMEM;
    for (size_t i = 0; i < k; i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_integer(e) || json_integer_value(e) < -100 || json_integer_value(e) > INT32_MAX) {
            wk_free(v);
            return wk_err(WICK_EFORMAT, "%s:%d: \"%s\"[%zu] is not a token id", path, line, field, i);
        }
        v[i] = (int32_t)json_integer_value(e);
    }
    *out = v;
    *n = (int)k;
    return WICK_OK;
}

static wick_status parse_pretokenized(json_t *o, wk_example *e, const char *path, int line) {
    int n = 0, nl = 0;
    wick_status st = int_array(json_object_get(o, "input_ids"), "input_ids", &e->ids, &n, path, line);
    if (st) return st;
    e->len = n;
    json_t *lab = json_object_get(o, "labels");
    if (!lab) {
        e->labels = wk_malloc(sizeof(int32_t) * n, "labels");
        if (!e->labels) return WICK_ENOMEM;
        memcpy(e->labels, e->ids, sizeof(int32_t) * n);
        return WICK_OK;
    }
    if ((st = int_array(lab, "labels", &e->labels, &nl, path, line))) return st;
    if (nl != n) return wk_err(WICK_EFORMAT, "%s:%d: \"labels\" has %d entries, \"input_ids\" %d", path, line, nl, n);
    for (int i = 0; i < n; i++)
        if (e->ids[i] < 0) return wk_err(WICK_EFORMAT, "%s:%d: \"input_ids\"[%d] is negative", path, line, i);
    return WICK_OK;
}

/* Appends the tokens of text[0,len) to e with label = id (train) or -100. */
static wick_status append_text(wk_example *e, const wick_tokenizer *tok, const char *text, size_t len, int flags,
                               int train) {
    int32_t *ids = NULL;
    int n = 0;
    wick_status st = len ? wick_tokenize(tok, text, len, flags, &ids, &n) : WICK_OK;
    if (st || n == 0) return wick_free(ids), st;
    int32_t *ni = wk_realloc(e->ids, sizeof(int32_t) * (e->len + n), "token ids");
    if (ni) e->ids = ni;
    int32_t *nl = ni ? wk_realloc(e->labels, sizeof(int32_t) * (e->len + n), "labels") : NULL;
    if (nl) e->labels = nl;
    if (!ni || !nl) return wick_free(ids), WICK_ENOMEM;
    for (int i = 0; i < n; i++) e->ids[e->len + i] = ids[i], e->labels[e->len + i] = train ? ids[i] : -100;
    e->len += n;
    wick_free(ids);
    return WICK_OK;
}

static const char *str_field(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static wick_status parse_prompt(json_t *o, wk_example *e, const wick_tokenizer *tok, const char *path, int line) {
    const char *p = str_field(o, "prompt"), *c = str_field(o, "completion");
    if (!p || !c) return wk_err(WICK_EFORMAT, "%s:%d: \"prompt\" and \"completion\" must both be strings", path, line);
    wick_status st = append_text(e, tok, p, strlen(p), WICK_TOK_ADD_SPECIAL, 0);
    if (!st) st = append_text(e, tok, c, strlen(c), 0, 1);
    const char *eos = wick_tokenizer_eos(tok);
    if (!st && eos && wick_tokenizer_find(tok, eos) >= 0) st = append_text(e, tok, eos, strlen(eos), 0, 1);
    return st;
}

static wick_status parse_messages(json_t *o, wk_example *e, const wick_tokenizer *tok, const char *path, int line) {
    json_t *a = json_object_get(o, "messages");
    size_t n = json_array_size(a);
    if (!json_is_array(a) || n == 0) return wk_err(WICK_EFORMAT, "%s:%d: \"messages\" must be a non-empty array", path, line);
    wick_chat_message *msgs = wk_calloc(sizeof(*msgs) * n, "chat messages");
    if (!msgs) return WICK_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        msgs[i].role = str_field(json_array_get(a, i), "role");
        msgs[i].content = str_field(json_array_get(a, i), "content");
        if (!msgs[i].role || !msgs[i].content) {
            wk_free(msgs);
            return wk_err(WICK_EFORMAT, "%s:%d: messages[%zu] needs string \"role\" and \"content\"", path, line, i);
        }
    }
    char *text = NULL;
    size_t *sp = NULL;
    int ns = 0;
    wick_status st = wick_chat_render(tok, msgs, (int)n, 0, NULL, &text, &sp, &ns);
    size_t at = 0;
    for (int k = 0; k < ns && !st; k++) { /* context before reply k, then the reply */
        st = append_text(e, tok, text + at, sp[2 * k] - at, 0, 0);
        if (!st) st = append_text(e, tok, text + sp[2 * k], sp[2 * k + 1] - sp[2 * k], 0, 1);
        at = sp[2 * k + 1];
    }
    if (!st) st = append_text(e, tok, text + at, strlen(text) - at, 0, 0);
    if (st) wk_err_prefix(st, "%s:%d", path, line);
    wick_free(text), wick_free(sp), wk_free(msgs);
    return st;
}

static wick_status parse_text(json_t *o, wk_example *e, const wick_tokenizer *tok, const char *path, int line) {
    if (!tok)
        return wk_err(WICK_EUNSUPPORTED, "%s:%d: text, prompt/completion and messages lines need the model's tokenizer "
                      "(tokenizer.json in the model directory); or give {\"input_ids\",\"labels\"}", path, line);
    wick_status st;
    if (json_object_get(o, "messages")) st = parse_messages(o, e, tok, path, line);
    else if (json_object_get(o, "prompt")) st = parse_prompt(o, e, tok, path, line);
    else if (!str_field(o, "text")) st = wk_err(WICK_EFORMAT, "%s:%d: \"text\" must be a string", path, line);
    else st = append_text(e, tok, str_field(o, "text"), strlen(str_field(o, "text")), WICK_TOK_ADD_SPECIAL, 1);
    if (!st && e->len == 0) st = wk_err(WICK_EFORMAT, "%s:%d: the line has no tokens", path, line);
    return st;
}

static wick_status parse_line(const char *txt, wk_example *e, const wick_tokenizer *tok, const char *path, int line) {
    json_error_t je;
    json_t *o = json_loads(txt, 0, &je);
    if (!o) return wk_err(WICK_EFORMAT, "%s:%d: invalid JSON: %s (column %d)", path, line, je.text, je.column);
    wick_status st;
    if (!json_is_object(o)) st = wk_err(WICK_EFORMAT, "%s:%d: expected a JSON object", path, line);
    else if (json_object_get(o, "input_ids")) st = parse_pretokenized(o, e, path, line);
    else if (json_object_get(o, "text") || json_object_get(o, "prompt") || json_object_get(o, "messages"))
        st = parse_text(o, e, tok, path, line);
    else st = wk_err(WICK_EFORMAT, "%s:%d: expected \"input_ids\", \"text\", \"prompt\"+\"completion\" or \"messages\"",
                     path, line);
    json_decref(o);
    return st;
}

static wick_status add_line(wk_dataset *d, int *cap, char *txt, const char *path, int line, int seq_len, wick_model *m) {
    int V = m->c.vocab;
    if (d->n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        wk_example *ne = wk_realloc(d->ex, sizeof(wk_example) * *cap, "examples");
        if (!ne) return WICK_ENOMEM;
        d->ex = ne;
    }
    wk_example *e = &d->ex[d->n];
    memset(e, 0, sizeof *e);
    e->line = line;
    wick_status st = parse_line(txt, e, wick_model_tokenizer(m), path, line);
    d->n++;
    if (st) return st;
    for (int i = 0; i < e->len; i++)
        if (e->ids[i] >= V || (e->labels[i] != -100 && (e->labels[i] < 0 || e->labels[i] >= V)))
            return wk_err(WICK_ERANGE, "%s:%d: token %d at position %d is outside the vocabulary [0,%d)", path, line,
                          e->ids[i] >= V ? e->ids[i] : e->labels[i], i, V);
    if (seq_len > 0 && e->len > seq_len) e->len = seq_len;
    return WICK_OK;
}

wick_status wk_data_load(const char *path, wick_model *m, int seq_len, wk_dataset *d) {
    memset(d, 0, sizeof *d);
    char *buf;
    size_t len;
    wick_status st = wk_read_file(path, &buf, &len);
    if (st) return st;
    int cap = 0, line = 0;
    for (char *p = buf; p && *p && !st;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        line++;
        char *q = p;
        while (*q == ' ' || *q == '\t' || *q == '\r') q++;
        if (*q) st = add_line(d, &cap, p, path, line, seq_len, m);
        p = nl ? nl + 1 : NULL;
    }
    wk_free(buf);
    if (!st && d->n == 0) st = wk_err(WICK_EFORMAT, "%s: no examples", path);
    if (st) wk_data_free(d);
    return st;
}

void wk_data_free(wk_dataset *d) {
    for (int i = 0; i < d->n; i++) wk_free(d->ex[i].ids), wk_free(d->ex[i].labels);
    wk_free(d->ex);
    wk_free(d->perm);
    memset(d, 0, sizeof *d);
}

static uint64_t next64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int wk_data_index(wk_dataset *d, int64_t pos, int shuffle, uint64_t seed) {
    int64_t epoch = pos / d->n;
    int k = (int)(pos % d->n);
    if (!shuffle) return k;
    if (!d->perm) {
        d->perm = wk_malloc(sizeof(int) * d->n, "shuffle order");
        if (!d->perm) return k;
        d->perm_epoch = -1;
    }
    if (d->perm_epoch != epoch) { /* the epoch's permutation, rebuilt from (seed, epoch) */
        for (int i = 0; i < d->n; i++) d->perm[i] = i;
        uint64_t s = seed ^ ((uint64_t)epoch * 0xd1342543de82ef95ull);
        for (int i = d->n - 1; i > 0; i--) {
            int j = (int)(next64(&s) % (uint64_t)(i + 1));
            int t = d->perm[i];
            d->perm[i] = d->perm[j], d->perm[j] = t;
        }
        d->perm_epoch = epoch;
    }
    return d->perm[k];
}
