/*
 * tok_encode.c — text to ids: invalid UTF-8 becomes U+FFFD (the documented rule),
 * added tokens are matched first (leftmost-longest, honouring lstrip/rstrip/
 * single_word; special ones can be treated as text), each remaining segment is
 * normalized, pre-tokenized and run through the model, and the post-processor's
 * special tokens are added on request.
 */
#include "tok.h"
#include <utf8proc.h>

int tk_is_ws(uint32_t c);

typedef struct {
    const wick_tokenizer *t;
    int flags;
    tk_buf norm;
    tk_pieces pieces;
    tk_ids *out;
} enc;

/* Rust regex \w (what HF's single_word check uses): Alphabetic, marks, Nd, Pc, joiners. */
static int is_word_char(uint32_t c) {
    if (c == 0x200C || c == 0x200D) return 1;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) || k == UTF8PROC_CATEGORY_ND ||
           k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC ||
           k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_PC;
}

static uint32_t cp_before(const char *s, size_t at) {
    if (!at) return 0;
    size_t j = at - 1;
    while (j > 0 && ((uint8_t)s[j] & 0xC0) == 0x80) j--;
    uint32_t cp = 0;
    tk_utf8_next((const uint8_t *)s + j, at - j, &cp);
    return cp;
}

/* Finds the leftmost-longest added token in s[from, n) of the given pass (0 = raw,
 * 1 = normalized). Sets [*a, *b) (with lstrip/rstrip extensions) and the token index. */
static int find_added(const enc *e, const char *s, size_t n, size_t from, int pass, size_t *a, size_t *b, int *which) {
    const wick_tokenizer *t = e->t;
    for (size_t i = from; i < n; i++) {
        if (pass == 0 && !t->added_first[(uint8_t)s[i]]) continue;
        int best = -1;
        size_t best_len = 0;
        for (int k = 0; k < t->n_added; k++) {
            const tk_added *ad = &t->added[k];
            const char *c = pass ? ad->norm_content : (ad->norm_content ? NULL : ad->content);
            if (!c || (ad->special && (e->flags & WICK_TOK_SPECIAL_AS_TEXT))) continue;
            size_t len = strlen(c);
            if (len <= best_len || len > n - i || memcmp(s + i, c, len) != 0) continue;
            if (ad->single_word) {
                uint32_t after = 0;
                if (i + len < n) tk_utf8_next((const uint8_t *)s + i + len, n - i - len, &after);
                if ((i > from || i > 0) && is_word_char(cp_before(s, i))) continue;
                if (i + len < n && is_word_char(after)) continue;
            }
            best = k, best_len = len;
        }
        if (best < 0) continue;
        size_t x = i, y = i + best_len;
        uint32_t cp;
        int k;
        if (t->added[best].lstrip)
            while (x > from && tk_is_ws(cp_before(s, x))) {
                x--;
                while (x > from && ((uint8_t)s[x] & 0xC0) == 0x80) x--;
            }
        if (t->added[best].rstrip)
            while (y < n && (k = tk_utf8_next((const uint8_t *)s + y, n - y, &cp)) > 0 && tk_is_ws(cp)) y += (size_t)k;
        *a = x, *b = y, *which = best;
        return 1;
    }
    return 0;
}

/* Normal text: normalized (pass 0 only), pre-tokenized, modelled. */
static wick_status model_text(enc *e, const char *s, size_t n, int first) {
    const wick_tokenizer *t = e->t;
    e->norm.len = 0;
    wick_status st = tk_buf_put(&e->norm, s, n);
    if (st) return st;
    e->pieces.n = 0;
    if (n) {
        tk_piece whole = {0, (uint32_t)n};
        if (e->pieces.cap < 1) {
            e->pieces.p = wk_realloc(e->pieces.p, 64 * sizeof(tk_piece), "pieces");
            if (!e->pieces.p) return WICK_ENOMEM;
            e->pieces.cap = 64;
        }
        e->pieces.p[e->pieces.n++] = whole;
    }
    if ((st = tk_pretokenize(t, &e->norm, &e->pieces, first))) return st;
    for (int i = 0; i < e->pieces.n && !st; i++) {
        const char *p = e->norm.p + e->pieces.p[i].off;
        size_t len = e->pieces.p[i].len;
        st = t->model == TK_MODEL_BPE ? tk_bpe_word(t, p, len, e->out) : tk_wordpiece_word(t, p, len, e->out);
    }
    return st;
}

/* A segment free of raw-matched added tokens: normalize, then split by normalized ones. */
static wick_status segment(enc *e, const char *s, size_t n, int first) {
    const wick_tokenizer *t = e->t;
    if (!n) return WICK_OK;
    tk_buf nb = {0};
    wick_status st = tk_normalize(t, s, n, &nb);
    if (!st && !nb.p) st = tk_buf_put(&nb, "", 0);
    size_t pos = 0, a, b;
    int which;
    while (!st && t->has_norm_added && find_added(e, nb.p, nb.len, pos, 1, &a, &b, &which)) {
        st = model_text(e, nb.p + pos, a - pos, first && pos == 0);
        if (!st) st = tk_ids_push(e->out, t->added[which].id);
        pos = b;
    }
    if (!st) st = model_text(e, nb.p + pos, nb.len - pos, first && pos == 0);
    tk_buf_free(&nb);
    return st;
}

static int valid_utf8(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if ((uint8_t)s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int k = tk_utf8_next((const uint8_t *)s + i, n - i, &cp);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

static wick_status encode(enc *e, const char *text, size_t len) {
    const wick_tokenizer *t = e->t;
    size_t pos = 0, a, b;
    int which;
    wick_status st = WICK_OK;
    while (!st && find_added(e, text, len, pos, 0, &a, &b, &which)) {
        st = segment(e, text + pos, a - pos, pos == 0);
        if (!st) st = tk_ids_push(e->out, t->added[which].id);
        pos = b;
    }
    if (!st) st = segment(e, text + pos, len - pos, pos == 0);
    return st;
}

wick_status wick_tokenize(const wick_tokenizer *t, const char *text, size_t len, int flags, int32_t **ids, int *n) {
    if (!t || (!text && len) || !ids || !n) return wk_err(WICK_EINVAL, "wick_tokenize: NULL argument");
    *ids = NULL, *n = 0;
    tk_ids out = {0};
    tk_buf clean = {0};
    wick_status st = WICK_OK;
    if (text && !valid_utf8(text, len)) { /* documented rule: invalid bytes become U+FFFD */
        if ((st = tk_utf8_lossy(&clean, text, len))) return st;
        text = clean.p, len = clean.len;
    }
    enc e = {t, flags, {0}, {0}, &out};
    if (flags & WICK_TOK_ADD_SPECIAL)
        for (int i = 0; i < t->post_pre.len && !st; i++) st = tk_ids_push(&out, t->post_pre.p[i]);
    if (!st && len) st = encode(&e, text, len);
    if (flags & WICK_TOK_ADD_SPECIAL)
        for (int i = 0; i < t->post_post.len && !st; i++) st = tk_ids_push(&out, t->post_post.p[i]);
    if (!st && !out.p) st = tk_ids_push(&out, 0), out.len = 0;
    tk_buf_free(&e.norm), tk_pieces_free(&e.pieces), tk_buf_free(&clean);
    if (st) {
        wk_free(out.p);
        return st;
    }
    *ids = out.p, *n = out.len;
    return WICK_OK;
}
