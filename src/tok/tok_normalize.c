/*
 * tok_normalize.c — the normalizers of tokenizer.json (NFC/NFD/NFKC/NFKD through
 * utf8proc, Lowercase, Strip, StripAccents, Replace, Prepend, BertNormalizer),
 * applied in sequence, with the character classes of Rust's `char` that Hugging
 * Face uses (is_whitespace, is_control, CJK ranges).
 */
#include "tok.h"
#include <stdlib.h>
#include <utf8proc.h>

int tk_is_ws(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    /* Cc, Cf, Co; unassigned code points (Cn) are kept, as Hugging Face does */
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CO;
}

static void put_cp(tk_buf *b, uint32_t cp) {
    uint8_t u[4];
    utf8proc_ssize_t n = utf8proc_encode_char((utf8proc_int32_t)cp, u);
    tk_buf_put(b, u, (size_t)n);
}

/* Rust's char::to_lowercase, which differs from simple case mapping for U+0130. */
static void put_lower(tk_buf *b, uint32_t cp) {
    if (cp == 0x130) {
        tk_buf_put(b, "i\xCC\x87", 3);
        return;
    }
    put_cp(b, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
}

static int is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)s[i] >= 0x80) return 0;
    return 1;
}

/* Characters NFC leaves alone whatever surrounds them: below U+0300, or combining class 0,
 * no canonical decomposition (kana and Hangul syllables are canonical composites that
 * recompose to themselves), and never the second element of a composition. */
static int nfc_stable(uint32_t cp) {
    static const uint32_t second[] = {0x9be,   0x9d7,   0xb3e,   0xb56,   0xb57,   0xbbe,   0xbd7,   0xcc2,
                                      0xcd5,   0xcd6,   0xd3e,   0xd57,   0xdcf,   0xddf,   0x102e,  0x1b35,
                                      0x11127, 0x1133e, 0x11357, 0x114b0, 0x114ba, 0x114bd, 0x115af, 0x11930};
    if (cp < 0x300) return 1;
    if ((cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0x3041 && cp <= 0x3096) ||
        (cp >= 0x30A1 && cp <= 0x30FA))
        return 1;
    if ((cp >= 0x1161 && cp <= 0x1175) || (cp >= 0x11A8 && cp <= 0x11C2)) return 0; /* Hangul V/T jamo */
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
    if (p->combining_class != 0) return 0;
    if (p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0) return 0; /* canonical decomposition */
    for (size_t i = 0; i < WK_ARRAY_LEN(second); i++)
        if (cp == second[i]) return 0;
    return 1;
}

/* True when NFC(s) == s is certain without running the normalization. */
static int nfc_quick(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if ((uint8_t)s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int k = tk_utf8_next((const uint8_t *)s + i, n - i, &cp);
        if (k <= 0 || !nfc_stable(cp)) return 0;
        i += (size_t)k;
    }
    return 1;
}

static wick_status unicode_form(tk_norm_kind k, const char *s, size_t n, tk_buf *out) {
    if (is_ascii(s, n) || (k == TK_N_NFC && nfc_quick(s, n))) return tk_buf_put(out, s, n);
    int opt = UTF8PROC_STABLE;
    if (k == TK_N_NFC) opt |= UTF8PROC_COMPOSE;
    if (k == TK_N_NFD) opt |= UTF8PROC_DECOMPOSE;
    if (k == TK_N_NFKC) opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    if (k == TK_N_NFKD) opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst, (utf8proc_option_t)opt);
    if (r < 0) return wk_err(WICK_EINVAL, "normalizer: %s", utf8proc_errmsg(r));
    wick_status st = tk_buf_put(out, dst, (size_t)r);
    free(dst);
    return st;
}

/* Calls per-character transforms. mode: 0 lower, 1 strip marks (all), 2 bert clean+cjk, 3 strip Mn. */
static void per_char(const tk_norm *nm, int mode, const char *s, size_t n, tk_buf *out) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int k = tk_utf8_next((const uint8_t *)s + i, n - i, &cp);
        if (k <= 0) k = 1, cp = 0xFFFD;
        i += (size_t)k;
        utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
        if (mode == 0) {
            put_lower(out, cp);
        } else if (mode == 1 || mode == 3) {
            int mark = c == UTF8PROC_CATEGORY_MN || (mode == 1 && (c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ME));
            if (!mark) put_cp(out, cp);
        } else {
            if (nm->clean_text && (cp == 0 || cp == 0xFFFD || is_control(cp))) continue;
            if (nm->clean_text && tk_is_ws(cp)) cp = ' ';
            if (nm->chinese && is_cjk(cp)) {
                tk_buf_put(out, " ", 1), put_cp(out, cp), tk_buf_put(out, " ", 1);
            } else {
                put_cp(out, cp);
            }
        }
    }
}

static wick_status replace(const tk_norm *nm, const char *s, size_t n, tk_buf *out) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(nm->re, NULL);
    if (!md) return wk_err(WICK_ENOMEM, "normalizer Replace: match data");
    size_t pos = 0, last = 0;
    while (pos <= n) {
        int rc = pcre2_match(nm->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        tk_buf_put(out, s + last, ov[0] - last);
        tk_buf_put(out, nm->b, strlen(nm->b));
        last = ov[1];
        pos = ov[1] > ov[0] ? ov[1] : ov[1] + (size_t)WK_MAX(1, tk_utf8_len((uint8_t)s[ov[1]]));
    }
    pcre2_match_data_free(md);
    return tk_buf_put(out, s + last, n - last);
}

static wick_status strip(const tk_norm *nm, const char *s, size_t n, tk_buf *out) {
    size_t a = 0, b = n;
    uint32_t cp;
    int k;
    while (nm->left && a < b && (k = tk_utf8_next((const uint8_t *)s + a, b - a, &cp)) > 0 && tk_is_ws(cp)) a += (size_t)k;
    while (nm->right && b > a) {
        size_t j = b - 1;
        while (j > a && ((uint8_t)s[j] & 0xC0) == 0x80) j--;
        if (tk_utf8_next((const uint8_t *)s + j, b - j, &cp) <= 0 || !tk_is_ws(cp)) break;
        b = j;
    }
    return tk_buf_put(out, s + a, b - a);
}

static wick_status apply(const tk_norm *nm, const char *s, size_t n, tk_buf *out) {
    switch (nm->kind) {
    case TK_N_NFC: case TK_N_NFD: case TK_N_NFKC: case TK_N_NFKD:
        return unicode_form(nm->kind, s, n, out);
    case TK_N_LOWER: per_char(nm, 0, s, n, out); return WICK_OK;
    case TK_N_STRIP_ACCENTS: per_char(nm, 1, s, n, out); return WICK_OK;
    case TK_N_STRIP: return strip(nm, s, n, out);
    case TK_N_REPLACE: return replace(nm, s, n, out);
    case TK_N_PREPEND:
        if (n && nm->a) tk_buf_put(out, nm->a, strlen(nm->a));
        return tk_buf_put(out, s, n);
    case TK_N_BERT: {
        tk_buf a = {0}, b = {0};
        per_char(nm, 2, s, n, &a);
        tk_buf_put(&a, "", 0);
        if (nm->strip_accents) {
            wick_status st = unicode_form(TK_N_NFD, a.p, a.len, &b);
            if (st) return tk_buf_free(&a), tk_buf_free(&b), st;
            a.len = 0;
            per_char(nm, 3, b.p, b.len, &a);
            tk_buf_put(&a, "", 0);
        }
        if (nm->lowercase) per_char(nm, 0, a.p, a.len, out);
        else tk_buf_put(out, a.p, a.len);
        tk_buf_free(&a), tk_buf_free(&b);
        return WICK_OK;
    }
    }
    return WICK_OK;
}

wick_status tk_normalize(const wick_tokenizer *t, const char *s, size_t n, tk_buf *out) {
    if (!t->n_norms) return tk_buf_put(out, s, n);
    tk_buf a = {0}, b = {0};
    wick_status st = tk_buf_put(&a, s, n);
    for (int i = 0; !st && i < t->n_norms; i++) {
        b.len = 0;
        st = apply(&t->norms[i], a.p, a.len, &b);
        if (!st) st = tk_buf_put(&b, "", 0);
        tk_buf tmp = a;
        a = b, b = tmp;
    }
    if (!st) st = tk_buf_put(out, a.p, a.len);
    tk_buf_free(&a), tk_buf_free(&b);
    return st;
}
