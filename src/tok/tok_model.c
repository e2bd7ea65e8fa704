/*
 * tok_model.c — the models: BPE (byte-level or SentencePiece-style with byte_fallback,
 * ignore_merges, unk fusing) with a binary-heap merge by rank (lowest rank first,
 * leftmost on ties, exactly Hugging Face's Word::merge_all), a word cache, and
 * WordPiece greedy longest-match-first.
 */
#include "tok.h"

#define CACHE_CAP 65536u
#define CACHE_MAX_KEY 128

wick_status tk_cache_init(tk_cache *c) {
    c->cap = CACHE_CAP;
    c->mask = CACHE_CAP * 2 - 1;
    c->slots = wk_calloc((size_t)(c->mask + 1) * 4, "word cache");
    c->key_off = wk_malloc((size_t)c->cap * 4 * 4, "word cache");
    if (!c->slots || !c->key_off) return WICK_ENOMEM;
    c->key_len = c->key_off + c->cap, c->val_off = c->key_len + c->cap, c->val_len = c->val_off + c->cap;
    pthread_mutex_init(&c->mu, NULL);
    return WICK_OK;
}

void tk_cache_free(tk_cache *c) {
    if (!c->slots) return;
    wk_free(c->slots), wk_free(c->key_off);
    tk_buf_free(&c->keys);
    wk_free(c->vals.p);
    pthread_mutex_destroy(&c->mu);
}

/* Returns 1 and appends the cached ids when s is cached. Caller holds the lock. */
static int cache_get(tk_cache *c, const char *s, size_t n, uint64_t h, tk_ids *out) {
    for (uint32_t i = (uint32_t)h & c->mask;; i = (i + 1) & c->mask) {
        uint32_t e = c->slots[i];
        if (!e) return 0;
        e--;
        if (c->key_len[e] == n && memcmp(c->keys.p + c->key_off[e], s, n) == 0) {
            for (uint32_t k = 0; k < c->val_len[e]; k++) tk_ids_push(out, c->vals.p[c->val_off[e] + k]);
            return 1;
        }
    }
}

static void cache_put(tk_cache *c, const char *s, size_t n, uint64_t h, const int32_t *ids, int nids) {
    if (c->n == c->cap) { /* full: start over (bounded memory, like HF's capacity limit) */
        memset(c->slots, 0, (size_t)(c->mask + 1) * 4);
        c->n = 0, c->keys.len = 0, c->vals.len = 0;
    }
    uint32_t e = c->n;
    c->key_off[e] = (uint32_t)c->keys.len, c->key_len[e] = (uint32_t)n;
    c->val_off[e] = (uint32_t)c->vals.len, c->val_len[e] = (uint32_t)nids;
    if (tk_buf_put(&c->keys, s, n)) return;
    for (int k = 0; k < nids; k++)
        if (tk_ids_push(&c->vals, ids[k])) return;
    uint32_t i = (uint32_t)h & c->mask;
    while (c->slots[i]) i = (i + 1) & c->mask;
    c->slots[i] = e + 1;
    c->n++;
}

/* ---- BPE merge on a symbol list with a min-heap of candidate pairs */
typedef struct { int32_t rank, pos, left, right; } cand;

static int cand_less(const cand *a, const cand *b) { return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos); }

static void heap_push(cand *h, int *n, cand c) {
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!cand_less(&c, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static cand heap_pop(cand *h, int *n) {
    cand top = h[0], last = h[--(*n)];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < *n && cand_less(&h[l], best)) m = l, best = &h[l];
        if (r < *n && cand_less(&h[r], best)) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    h[i] = last;
    return top;
}

static void try_pair(const wick_tokenizer *t, const int32_t *id, int a, int b, cand *h, int *nh) {
    int32_t merged, rank = tk_merge_get(&t->merges, id[a], id[b], &merged);
    if (rank >= 0) heap_push(h, nh, (cand){rank, a, id[a], id[b]});
}

/* Merges symbols id[0..n) in place; appends the surviving ids to out. */
static wick_status merge_all(const wick_tokenizer *t, int32_t *id, int n, tk_ids *out) {
    if (n <= 0) return WICK_OK;
    int stack_next[256], stack_prev[256];
    cand stack_heap[768];
    int *next = stack_next, *prev = stack_prev;
    cand *h = stack_heap;
    if (n > 256) {
        next = wk_malloc((size_t)n * 2 * sizeof(int), "bpe word");
        h = wk_malloc((size_t)n * 3 * sizeof(cand), "bpe word");
        if (!next || !h) return wk_free(next), wk_free(h), WICK_ENOMEM;
        prev = next + n;
    }
    int nh = 0;
    for (int i = 0; i < n; i++) next[i] = i + 1 < n ? i + 1 : -1, prev[i] = i - 1;
    for (int i = 0; i + 1 < n; i++) try_pair(t, id, i, i + 1, h, &nh);
    while (nh) {
        cand c = heap_pop(h, &nh);
        int a = c.pos, b = next[a];
        if (id[a] != c.left || b < 0 || id[b] != c.right) continue; /* stale */
        int32_t merged;
        tk_merge_get(&t->merges, id[a], id[b], &merged);
        id[a] = merged;
        id[b] = -1;
        next[a] = next[b];
        if (next[b] >= 0) prev[next[b]] = a;
        if (prev[a] >= 0) try_pair(t, id, prev[a], a, h, &nh);
        if (next[a] >= 0) try_pair(t, id, a, next[a], h, &nh);
    }
    wick_status st = WICK_OK;
    for (int i = 0; i >= 0 && !st; i = next[i]) st = tk_ids_push(out, id[i]);
    if (n > 256) wk_free(next), wk_free(h);
    return st;
}

/* Initial symbols of a SentencePiece-style word: characters, else byte tokens, else unk. */
static int sp_symbols(const wick_tokenizer *t, const char *s, size_t n, int32_t *id) {
    int k = 0;
    size_t i = 0;
    while (i < n) {
        int len = tk_utf8_len((uint8_t)s[i]);
        if (len <= 0 || i + (size_t)len > n) len = 1;
        int32_t v = tk_vocab_get(t, s + i, (size_t)len);
        if (v >= 0) {
            id[k++] = v;
        } else {
            int ok = t->byte_fallback;
            for (int j = 0; ok && j < len; j++) ok = t->byte_id[(uint8_t)s[i + j]] >= 0;
            if (ok) {
                for (int j = 0; j < len; j++) id[k++] = t->byte_id[(uint8_t)s[i + j]];
            } else if (t->unk_id >= 0) {
                if (!(t->fuse_unk && k > 0 && id[k - 1] == t->unk_id)) id[k++] = t->unk_id;
            } else {
                return -1;
            }
        }
        i += (size_t)len;
    }
    return k;
}

static wick_status bpe_uncached(const wick_tokenizer *t, const char *s, size_t n, tk_ids *out) {
    int32_t stack_id[512];
    int32_t *id = n <= 512 ? stack_id : wk_malloc(n * sizeof(int32_t), "bpe word");
    if (!id) return WICK_ENOMEM;
    int k = 0;
    wick_status st = WICK_OK;
    if (t->byte_level) {
        /* a byte missing from the vocabulary becomes unk_token, or is dropped without one (HF BPE) */
        for (size_t i = 0; i < n; i++) {
            int32_t v = t->byte_id[(uint8_t)s[i]];
            if (v < 0) v = t->unk_id;
            if (v >= 0) id[k++] = v;
        }
    } else if ((k = sp_symbols(t, s, n, id)) < 0) {
        st = wk_err(WICK_EINVAL, "text \"%.*s\" has a character outside the vocabulary and the model has no unk_token",
                    (int)WK_MIN(n, 40), s);
    }
    if (!st) st = merge_all(t, id, k, out);
    if (id != stack_id) wk_free(id);
    return st;
}

/* The word as the vocabulary spells it (byte-level chars), for ignore_merges. */
static int32_t whole_word(const wick_tokenizer *t, const char *s, size_t n) {
    if (!t->byte_level) return tk_vocab_get(t, s, n);
    char buf[2 * CACHE_MAX_KEY];
    if (n > CACHE_MAX_KEY) return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)tk_byte_to_utf8((uint8_t)s[i], buf + k);
    return tk_vocab_get(t, buf, k);
}

wick_status tk_bpe_word(const wick_tokenizer *t, const char *s, size_t n, tk_ids *out) {
    if (t->ignore_merges) {
        int32_t w = whole_word(t, s, n);
        if (w >= 0) return tk_ids_push(out, w);
    }
    if (n > CACHE_MAX_KEY) return bpe_uncached(t, s, n, out);
    tk_cache *c = (tk_cache *)&t->cache;
    uint64_t h = tk_hash(s, n);
    if (pthread_mutex_trylock(&c->mu) == 0) {
        int hit = cache_get(c, s, n, h, out);
        pthread_mutex_unlock(&c->mu);
        if (hit) return WICK_OK;
    }
    int start = out->len;
    wick_status st = bpe_uncached(t, s, n, out);
    if (!st && pthread_mutex_trylock(&c->mu) == 0) {
        cache_put(c, s, n, h, out->p + start, out->len - start);
        pthread_mutex_unlock(&c->mu);
    }
    return st;
}

/* ---- WordPiece */
wick_status tk_wordpiece_word(const wick_tokenizer *t, const char *s, size_t n, tk_ids *out) {
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) chars += ((uint8_t)s[i] & 0xC0) != 0x80;
    if (chars > (size_t)t->wp_max_chars) return tk_ids_push(out, t->unk_id);
    size_t plen = strlen(t->wp_prefix);
    char stack[512];
    char *buf = n + plen <= sizeof stack ? stack : wk_malloc(n + plen, "wordpiece");
    if (!buf) return WICK_ENOMEM;
    int start_len = out->len;
    size_t start = 0;
    wick_status st = WICK_OK;
    memcpy(buf, t->wp_prefix, plen);
    while (start < n && !st) {
        size_t end = n;
        int32_t found = -1;
        while (end > start) {
            size_t pre = start > 0 ? plen : 0;
            memcpy(buf + plen, s + start, end - start);
            found = tk_vocab_get(t, buf + plen - pre, end - start + pre);
            if (found >= 0) break;
            end--;
            while (end > start && ((uint8_t)s[end] & 0xC0) == 0x80) end--;
        }
        if (found < 0) {
            out->len = start_len;
            st = tk_ids_push(out, t->unk_id);
            break;
        }
        st = tk_ids_push(out, found);
        start = end;
    }
    if (buf != stack) wk_free(buf);
    return st;
}
