/*
 * tok_json.c — a purpose-built JSON scanner for the two big parts of tokenizer.json
 * (model.vocab and model.merges, ~300k strings) and for locating the other parts,
 * which tok_load.c then hands to jansson. jansson alone needs ~600 ms for the Qwen
 * file; this scanner reads it in a few tens of milliseconds. It validates what it
 * reads: malformed JSON is WICK_EFORMAT with the byte offset.
 */
#include "tok.h"
#include <stdlib.h>

typedef struct {
    const char *p, *end, *base;
} jscan;

static wick_status jerr(const jscan *s, const char *what) {
    return wk_err(WICK_EFORMAT, "malformed JSON at byte %zu: %s", (size_t)(s->p - s->base), what);
}

static void ws(jscan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')) s->p++;
}

static int hex4(const char *p, uint32_t *v) {
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        x <<= 4;
        if (c >= '0' && c <= '9') x |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') x |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') x |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    *v = x;
    return 0;
}

static void put_cp(tk_buf *b, uint32_t cp) {
    char u[4];
    int n;
    if (cp < 0x80) u[0] = (char)cp, n = 1;
    else if (cp < 0x800) u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    else if (cp < 0x10000)
        u[0] = (char)(0xE0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[2] = (char)(0x80 | (cp & 0x3F)),
        n = 3;
    else
        u[0] = (char)(0xF0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    tk_buf_put(b, u, (size_t)n);
}

static wick_status escape(jscan *s, tk_buf *out) {
    char c = *s->p++;
    const char *map = "\"\"\\\\//b\bf\fn\nr\rt\t";
    for (const char *m = map; *m; m += 2)
        if (*m == c) return tk_buf_put(out, m + 1, 1);
    uint32_t cp, lo;
    if (c != 'u' || s->end - s->p < 4 || hex4(s->p, &cp)) return jerr(s, "bad escape in string");
    s->p += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' || hex4(s->p + 2, &lo) || lo < 0xDC00 ||
            lo > 0xDFFF)
            cp = 0xFFFD; /* lone surrogate: serde_json would reject; keep going with U+FFFD */
        else {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            s->p += 6;
        }
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        cp = 0xFFFD;
    }
    put_cp(out, cp);
    return WICK_OK;
}

/* Reads a string at s->p ('"') into out (appended, not cleared). */
static wick_status jstring(jscan *s, tk_buf *out) {
    if (s->p >= s->end || *s->p != '"') return jerr(s, "expected a string");
    s->p++;
    for (;;) {
        const char *q = s->p;
        while (q < s->end && *q != '"' && *q != '\\') q++;
        if (q >= s->end) return jerr(s, "unterminated string");
        if (tk_buf_put(out, s->p, (size_t)(q - s->p))) return WICK_ENOMEM;
        s->p = q + 1;
        if (*q == '"') return WICK_OK;
        if (s->p >= s->end) return jerr(s, "unterminated string");
        wick_status st = escape(s, out);
        if (st) return st;
    }
}

static wick_status skip_value(jscan *s, int depth) {
    ws(s);
    if (s->p >= s->end) return jerr(s, "unexpected end");
    if (depth > 64) return jerr(s, "nesting too deep");
    char c = *s->p;
    if (c == '"') {
        const char *q = s->p + 1;
        for (;;) {
            q = memchr(q, '"', (size_t)(s->end - q));
            if (!q) return jerr(s, "unterminated string");
            const char *b = q; /* an odd number of backslashes before it escapes the quote */
            while (b > s->p && b[-1] == '\\') b--;
            q++;
            if (((q - 1 - b) & 1) == 0) break;
        }
        s->p = q;
        return WICK_OK;
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        s->p++;
        ws(s);
        if (s->p < s->end && *s->p == close) return s->p++, WICK_OK;
        for (;;) {
            if (c == '{') {
                ws(s);
                wick_status st = skip_value(s, depth + 1); /* key */
                if (st) return st;
                ws(s);
                if (s->p >= s->end || *s->p != ':') return jerr(s, "expected ':'");
                s->p++;
            }
            wick_status st = skip_value(s, depth + 1);
            if (st) return st;
            ws(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                continue;
            }
            if (s->p < s->end && *s->p == close) return s->p++, WICK_OK;
            return jerr(s, "expected ',' or a closing bracket");
        }
    }
    const char *q = s->p;
    while (q < s->end && ((*q >= '0' && *q <= '9') || *q == '-' || *q == '+' || *q == '.' || *q == 'E' ||
                          (*q >= 'a' && *q <= 'z')))
        q++;
    if (q == s->p) return jerr(s, "unexpected character");
    s->p = q;
    return WICK_OK;
}

wick_status tk_json_object_each(const char *js, size_t n, tk_json_kv_fn fn, void *user) {
    jscan s = {js, js + n, js};
    tk_buf key = {0};
    wick_status st = WICK_OK;
    ws(&s);
    if (s.p >= s.end || *s.p != '{') return jerr(&s, "expected an object");
    s.p++;
    ws(&s);
    if (s.p < s.end && *s.p == '}') return WICK_OK;
    for (;;) {
        ws(&s);
        key.len = 0;
        if ((st = jstring(&s, &key))) break;
        tk_buf_put(&key, "", 0);
        ws(&s);
        if (s.p >= s.end || *s.p != ':') {
            st = jerr(&s, "expected ':'");
            break;
        }
        s.p++;
        ws(&s);
        const char *v = s.p;
        if ((st = skip_value(&s, 1))) break;
        if ((st = fn(user, key.p, v, (size_t)(s.p - v)))) break;
        ws(&s);
        if (s.p < s.end && *s.p == ',') {
            s.p++;
            continue;
        }
        if (s.p < s.end && *s.p == '}') break;
        st = jerr(&s, "expected ',' or '}'");
        break;
    }
    tk_buf_free(&key);
    return st;
}

typedef struct { const char *key, *val; size_t vlen; } find_ctx;
static wick_status find_cb(void *u, const char *key, const char *val, size_t vlen) {
    find_ctx *f = u;
    if (!f->val && strcmp(key, f->key) == 0) f->val = val, f->vlen = vlen;
    return WICK_OK;
}

wick_status tk_json_find(const char *js, size_t n, const char *key, const char **val, size_t *vlen) {
    find_ctx f = {key, NULL, 0};
    wick_status st = tk_json_object_each(js, n, find_cb, &f);
    *val = f.val;
    *vlen = f.vlen;
    return st;
}

static wick_status set_token(wick_tokenizer *t, int64_t id, uint32_t off, uint32_t len) {
    if (id < 0 || id > 100000000) return wk_err(WICK_EFORMAT, "model.vocab: id %lld out of range", (long long)id);
    if (id >= t->n_ids) {
        int n = t->n_ids ? t->n_ids : 1024;
        while (n <= id) n *= 2;
        tk_str *p = wk_realloc(t->strs, (size_t)n * sizeof *p, "vocabulary");
        if (!p) return WICK_ENOMEM;
        for (int i = t->n_ids; i < n; i++) p[i] = (tk_str){UINT32_MAX, 0};
        t->strs = p;
        t->n_ids = n;
    }
    if (t->strs[id].off != UINT32_MAX)
        return wk_err(WICK_EFORMAT, "model.vocab: id %lld appears twice", (long long)id);
    t->strs[id] = (tk_str){off, len};
    return WICK_OK;
}

static wick_status pool_take(wick_tokenizer *t, tk_buf *b, uint32_t *off) {
    tk_buf pool = {t->pool, t->pool_len, t->pool_cap};
    *off = (uint32_t)pool.len;
    wick_status st = tk_buf_put(&pool, b->p, b->len);
    t->pool = pool.p, t->pool_len = pool.len, t->pool_cap = pool.cap;
    return st;
}

/* model.vocab: {"token": id, ...}. Sets t->strs; n_ids becomes (capacity) >= max id + 1. */
wick_status tk_json_parse_vocab(wick_tokenizer *t, const char *js, size_t n, int with_scores) {
    jscan s = {js, js + n, js};
    tk_buf key = {0};
    wick_status st = WICK_OK;
    ws(&s);
    if (s.p >= s.end || *s.p != '{') return wk_err(WICK_EUNSUPPORTED, "model.vocab: expected an object of token: id");
    s.p++;
    ws(&s);
    if (s.p < s.end && *s.p == '}') return WICK_OK;
    for (;;) {
        ws(&s);
        key.len = 0;
        if ((st = jstring(&s, &key))) break;
        ws(&s);
        if (s.p >= s.end || *s.p != ':') {
            st = jerr(&s, "model.vocab: expected ':'");
            break;
        }
        s.p++;
        ws(&s);
        char *e;
        long long id = strtoll(s.p, &e, 10);
        if (e == s.p) {
            st = jerr(&s, "model.vocab: expected an integer id");
            break;
        }
        s.p = e;
        uint32_t off;
        if ((st = pool_take(t, &key, &off)) || (st = set_token(t, id, off, (uint32_t)key.len))) break;
        ws(&s);
        if (s.p < s.end && *s.p == ',') {
            s.p++;
            continue;
        }
        if (s.p < s.end && *s.p == '}') break;
        st = jerr(&s, "model.vocab: expected ',' or '}'");
        break;
    }
    (void)with_scores;
    tk_buf_free(&key);
    return st;
}

/* Merges are resolved in batches: hash all strings of a batch and prefetch their hash
 * slots first, so the table's cache misses overlap instead of queueing. */
#define MBATCH 64
typedef struct {
    tk_buf text;                 /* a+b of each merge, back to back */
    uint32_t off[MBATCH], len[MBATCH], split[MBATCH];
    int n, first_rank;
} mbatch;

static wick_status flush_batch(wick_tokenizer *t, mbatch *b) {
    uint64_t h[MBATCH][3];
    for (int i = 0; i < b->n; i++) {
        const char *s = b->text.p + b->off[i];
        h[i][0] = tk_hash(s, b->split[i]);
        h[i][1] = tk_hash(s + b->split[i], b->len[i] - b->split[i]);
        h[i][2] = tk_hash(s, b->len[i]);
        for (int k = 0; k < 3; k++) tk_vocab_prefetch(t, h[i][k]);
    }
    int32_t ids[MBATCH][3];
    for (int i = 0; i < b->n; i++) {
        const char *s = b->text.p + b->off[i];
        size_t sp = b->split[i], n = b->len[i];
        int32_t ia = tk_vocab_get_h(t, s, sp, h[i][0]), ib = tk_vocab_get_h(t, s + sp, n - sp, h[i][1]);
        int32_t im = tk_vocab_get_h(t, s, n, h[i][2]);
        int rank = b->first_rank + i;
        if (ia < 0 || ib < 0 || im < 0)
            return wk_err(WICK_EFORMAT, "model.merges[%d]: \"%.*s\" + \"%.*s\": %s not in model.vocab", rank, (int)sp,
                          s, (int)(n - sp), s + sp, ia < 0 ? "first part" : ib < 0 ? "second part" : "merged token");
        ids[i][0] = ia, ids[i][1] = ib, ids[i][2] = im;
        tk_mergemap_prefetch(&t->merges, ia, ib);
    }
    for (int i = 0; i < b->n; i++) tk_mergemap_put(&t->merges, ids[i][0], ids[i][1], b->first_rank + i, ids[i][2]);
    b->first_rank += b->n;
    b->n = 0;
    b->text.len = 0;
    return WICK_OK;
}

static wick_status add_merge(wick_tokenizer *t, mbatch *b, tk_buf *a, size_t split) {
    b->off[b->n] = (uint32_t)b->text.len, b->len[b->n] = (uint32_t)a->len, b->split[b->n] = (uint32_t)split;
    b->n++;
    if (tk_buf_put(&b->text, a->p, a->len)) return WICK_ENOMEM;
    return b->n == MBATCH ? flush_batch(t, b) : WICK_OK;
}

/* One merge, either "a b" or ["a", "b"]; the concatenation a+b goes to buf, split = |a|. */
static wick_status merge_entry(jscan *s, tk_buf *buf, size_t *split, int rank) {
    buf->len = 0;
    if (*s->p == '"') {
        wick_status st = jstring(s, buf);
        if (st) return st;
        char *sp = memchr(buf->p, ' ', buf->len);
        if (!sp || memchr(sp + 1, ' ', buf->len - (size_t)(sp - buf->p) - 1))
            return wk_err(WICK_EFORMAT, "model.merges[%d]: \"%s\" is not two tokens separated by one space", rank,
                          buf->p);
        *split = (size_t)(sp - buf->p);
        memmove(sp, sp + 1, buf->len - *split - 1);
        buf->len--;
        return WICK_OK;
    }
    if (*s->p != '[') return jerr(s, "model.merges: expected a string or a pair");
    s->p++;
    ws(s);
    wick_status st = jstring(s, buf);
    if (st) return st;
    *split = buf->len;
    ws(s);
    if (s->p >= s->end || *s->p != ',') return jerr(s, "model.merges: expected a pair of strings");
    s->p++;
    ws(s);
    if ((st = jstring(s, buf))) return st;
    ws(s);
    if (s->p >= s->end || *s->p != ']') return jerr(s, "model.merges: expected a pair of strings");
    s->p++;
    return WICK_OK;
}

wick_status tk_json_parse_merges(wick_tokenizer *t, const char *js, size_t n) {
    jscan s = {js, js + n, js};
    size_t count = 0;
    for (const char *q = js; q < js + n; q++) count += (*q == ',');
    wick_status st = tk_mergemap_init(&t->merges, count + 1);
    if (st) return st;
    tk_buf buf = {0};
    tk_buf_reserve(&buf, 256);
    ws(&s);
    if (s.p >= s.end || *s.p != '[') return wk_err(WICK_EFORMAT, "model.merges: expected an array");
    s.p++;
    ws(&s);
    int rank = 0;
    mbatch batch = {0};
    if (s.p < s.end && *s.p == ']') goto done;
    for (;; rank++) {
        ws(&s);
        size_t split = 0;
        if ((st = merge_entry(&s, &buf, &split, rank)) || (st = add_merge(t, &batch, &buf, split))) break;
        ws(&s);
        if (s.p < s.end && *s.p == ',') {
            s.p++;
            continue;
        }
        if (s.p < s.end && *s.p == ']') break;
        st = jerr(&s, "model.merges: expected ',' or ']'");
        break;
    }
done:
    if (!st) st = flush_batch(t, &batch);
    tk_buf_free(&buf), tk_buf_free(&batch.text);
    return st;
}
