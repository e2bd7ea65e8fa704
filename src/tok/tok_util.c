/*
 * tok_util.c — small building blocks of the tokenizer: growable buffers, hashing,
 * the string->id and pair->merge hash tables, UTF-8 helpers (lossy decoding with
 * Rust's replacement rule) and the GPT-2 byte-level character map.
 */
#include "tok.h"
#include <stdlib.h>

wick_status tk_buf_reserve(tk_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return WICK_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = wk_realloc(b->p, cap, "tokenizer buffer");
    if (!p) return WICK_ENOMEM;
    b->p = p;
    b->cap = cap;
    return WICK_OK;
}

wick_status tk_buf_put(tk_buf *b, const void *s, size_t n) {
    if (b->len + n + 1 > b->cap && tk_buf_reserve(b, n)) return WICK_ENOMEM;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return WICK_OK;
}

void tk_buf_free(tk_buf *b) {
    wk_free(b->p);
    memset(b, 0, sizeof *b);
}

wick_status tk_ids_push(tk_ids *v, int32_t x) {
    if (v->len == v->cap) {
        int cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = wk_realloc(v->p, (size_t)cap * sizeof *p, "token ids");
        if (!p) return WICK_ENOMEM;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->len++] = x;
    return WICK_OK;
}

/* A fast non-cryptographic hash (8 bytes at a time, multiply-xorshift mixing). */
uint64_t tk_hash(const void *s, size_t n) {
    const uint8_t *p = s;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

wick_status tk_strmap_build(tk_strmap *m, const wick_tokenizer *t, int n_model) {
    uint32_t cap = 16;
    while (cap < (uint32_t)n_model * 2) cap *= 2;
    m->slots = wk_calloc((size_t)cap * sizeof(uint64_t), "vocabulary hash table");
    if (!m->slots) return WICK_ENOMEM;
    m->mask = cap - 1;
    m->pool = (const char *const *)&t->pool;
    m->strs = (const tk_str *const *)&t->strs;
    enum { B = 32 };
    uint64_t hs[B];
    for (int base = 0; base < n_model; base += B) { /* hash a batch, prefetch, then insert */
        int nb = WK_MIN(B, n_model - base);
        for (int k = 0; k < nb; k++) {
            const tk_str *s = &t->strs[base + k];
            hs[k] = s->off == UINT32_MAX ? 0 : tk_hash(t->pool + s->off, s->len);
            __builtin_prefetch(&m->slots[(uint32_t)hs[k] & m->mask], 1);
        }
        for (int k = 0; k < nb; k++) {
            if (t->strs[base + k].off == UINT32_MAX) continue; /* hole in the id range */
            uint32_t h = (uint32_t)hs[k] & m->mask;
            while (m->slots[h]) h = (h + 1) & m->mask;
            m->slots[h] = (hs[k] & 0xffffffff00000000ull) | ((uint32_t)(base + k) + 1);
        }
    }
    return WICK_OK;
}

static int32_t strmap_get(const tk_strmap *m, const char *s, size_t n, uint64_t hv) {
    if (!m->slots) return -1;
    const char *pool = *m->pool;
    const tk_str *strs = *m->strs;
    uint64_t tag = hv & 0xffffffff00000000ull;
    uint32_t h = (uint32_t)hv & m->mask;
    for (;;) {
        uint64_t v = m->slots[h];
        if (!v) return -1;
        if ((v & 0xffffffff00000000ull) == tag) {
            uint32_t id = (uint32_t)v - 1;
            const tk_str *e = &strs[id];
            if (e->len == n && memcmp(pool + e->off, s, n) == 0) return (int32_t)id;
        }
        h = (h + 1) & m->mask;
    }
}

int32_t tk_vocab_get(const wick_tokenizer *t, const char *s, size_t n) {
    return strmap_get(&t->vocab, s, n, tk_hash(s, n));
}

int32_t tk_vocab_get_h(const wick_tokenizer *t, const char *s, size_t n, uint64_t h) {
    return strmap_get(&t->vocab, s, n, h);
}

void tk_vocab_prefetch(const wick_tokenizer *t, uint64_t h) {
    __builtin_prefetch(&t->vocab.slots[(uint32_t)h & t->vocab.mask]);
}

static inline uint32_t pair_hash(uint64_t k) {
    k *= 0x9e3779b97f4a7c15ull;
    return (uint32_t)(k >> 32);
}

wick_status tk_mergemap_init(tk_mergemap *m, size_t n) {
    uint32_t cap = 16;
    while (cap < n * 2) cap *= 2;
    m->keys = wk_malloc((size_t)cap * 8, "merge table");
    m->rank = wk_malloc((size_t)cap * 4, "merge table");
    m->merged = wk_malloc((size_t)cap * 4, "merge table");
    if (!m->keys || !m->rank || !m->merged) return WICK_ENOMEM;
    memset(m->keys, 0xff, (size_t)cap * 8);
    m->mask = cap - 1;
    return WICK_OK;
}

void tk_mergemap_prefetch(const tk_mergemap *m, int32_t a, int32_t b) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t h = pair_hash(k) & m->mask;
    __builtin_prefetch(&m->keys[h], 1);
    __builtin_prefetch(&m->rank[h], 1);
    __builtin_prefetch(&m->merged[h], 1);
}

void tk_mergemap_put(tk_mergemap *m, int32_t a, int32_t b, int32_t rank, int32_t merged) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t h = pair_hash(k) & m->mask;
    while (m->keys[h] != UINT64_MAX) {
        if (m->keys[h] == k) return; /* first (lowest) rank wins, as in HF */
        h = (h + 1) & m->mask;
    }
    m->keys[h] = k;
    m->rank[h] = rank;
    m->merged[h] = merged;
}

int32_t tk_merge_get(const tk_mergemap *m, int32_t a, int32_t b, int32_t *merged) {
    if (!m->keys) return -1;
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t h = pair_hash(k) & m->mask;
    for (;;) {
        uint64_t kk = m->keys[h];
        if (kk == k) {
            *merged = m->merged[h];
            return m->rank[h];
        }
        if (kk == UINT64_MAX) return -1;
        h = (h + 1) & m->mask;
    }
}

/* ---- GPT-2 byte-level map: printable bytes map to themselves, the rest to U+0100.. */
static int bytelevel_cp(uint8_t b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return b;
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174)) n++;
    return 256 + n;
}

int tk_byte_to_utf8(uint8_t b, char out[2]) {
    int cp = bytelevel_cp(b);
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

int tk_cp_to_byte(uint32_t cp) {
    static int16_t rev[324];
    static int ready;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        for (int i = 0; i < 324; i++) rev[i] = -1;
        for (int b = 0; b < 256; b++) rev[bytelevel_cp((uint8_t)b)] = (int16_t)b;
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    return cp < 324 ? rev[cp] : -1;
}

int tk_utf8_len(uint8_t c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* Length of the valid prefix of a sequence starting at s (how many bytes Rust counts
 * as one maximal subpart); *complete = 1 when a whole valid character was read. */
static int utf8_subpart(const uint8_t *s, size_t n, uint32_t *cp, int *complete) {
    uint8_t c = s[0];
    int len = tk_utf8_len(c);
    *complete = 0;
    if (len == 0) return 1;
    if (len == 1) {
        *cp = c;
        *complete = 1;
        return 1;
    }
    uint32_t v = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) return i;
        uint8_t d = s[i];
        uint8_t lo = 0x80, hi = 0xBF;
        if (i == 1) {
            if (c == 0xE0) lo = 0xA0;
            else if (c == 0xED) hi = 0x9F;
            else if (c == 0xF0) lo = 0x90;
            else if (c == 0xF4) hi = 0x8F;
        }
        if (d < lo || d > hi) return i;
        v = (v << 6) | (d & 0x3F);
    }
    *cp = v;
    *complete = 1;
    return len;
}

int tk_utf8_next(const uint8_t *s, size_t n, uint32_t *cp) {
    int complete;
    int k = utf8_subpart(s, n, cp, &complete);
    return complete ? k : 0;
}

wick_status tk_utf8_lossy(tk_buf *out, const char *s, size_t n) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, run = 0;
    if (tk_buf_reserve(out, n)) return WICK_ENOMEM;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int complete;
        int k = utf8_subpart(p + i, n - i, &cp, &complete);
        if (complete) {
            i += (size_t)k;
            continue;
        }
        if (tk_buf_put(out, s + run, i - run) || tk_buf_put(out, "\xEF\xBF\xBD", 3)) return WICK_ENOMEM;
        i += (size_t)k;
        run = i;
    }
    return tk_buf_put(out, s + run, n - run);
}

pcre2_code *tk_regex_compile(const char *pattern, int literal, const char *what) {
    int err;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_UTF | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        wk_err(WICK_EUNSUPPORTED, "%s: regex \"%s\" does not compile with PCRE2 at offset %zu: %s", what, pattern,
               (size_t)off, (char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter when JIT is unavailable */
    return re;
}
