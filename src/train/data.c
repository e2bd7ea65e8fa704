/*
 * data.c — JSONL training data. Pre-tokenized {"input_ids":[..],"labels":[..]}
 * lines are used as they are (labels default to input_ids); text formats need
 * the model's tokenizer. A malformed line is an error naming file and line.
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

static wick_status parse_line(const char *txt, wk_example *e, const char *path, int line) {
    json_error_t je;
    json_t *o = json_loads(txt, 0, &je);
    if (!o) return wk_err(WICK_EFORMAT, "%s:%d: invalid JSON: %s (column %d)", path, line, je.text, je.column);
    wick_status st;
    if (!json_is_object(o)) st = wk_err(WICK_EFORMAT, "%s:%d: expected a JSON object", path, line);
    else if (json_object_get(o, "input_ids")) st = parse_pretokenized(o, e, path, line);
    else if (json_object_get(o, "text") || json_object_get(o, "prompt") || json_object_get(o, "messages"))
        st = wk_err(WICK_EUNSUPPORTED, "%s:%d: text, prompt/completion and messages lines need the model's tokenizer, "
                    "which this build does not have yet; use {\"input_ids\",\"labels\"}", path, line);
    else st = wk_err(WICK_EFORMAT, "%s:%d: expected \"input_ids\", \"text\", \"prompt\"+\"completion\" or \"messages\"",
                     path, line);
    json_decref(o);
    return st;
}

static wick_status add_line(wk_dataset *d, int *cap, char *txt, const char *path, int line, int seq_len, int V) {
    if (d->n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        wk_example *ne = wk_realloc(d->ex, sizeof(wk_example) * *cap, "examples");
        if (!ne) return WICK_ENOMEM;
        d->ex = ne;
    }
    wk_example *e = &d->ex[d->n];
    memset(e, 0, sizeof *e);
    e->line = line;
    wick_status st = parse_line(txt, e, path, line);
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
        if (*q) st = add_line(d, &cap, p, path, line, seq_len, m->c.vocab);
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
