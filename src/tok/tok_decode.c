/*
 * tok_decode.c — ids to text: the decoder chain of tokenizer.json (ByteLevel,
 * Metaspace, WordPiece "##" joining with cleanup, ByteFallback, Fuse, Strip, Replace)
 * applied to the list of token strings as Hugging Face's decode_chain does, then
 * concatenated; and the streaming detokenizer, which re-decodes a short window of
 * recent ids and emits only text that is complete (never a partial UTF-8 character).
 */
#include "tok.h"
#include <stdlib.h>

/* A list of strings in one buffer. */
typedef struct {
    tk_buf b;
    tk_str *s;
    int n, cap;
} slist;

static wick_status sl_add(slist *l, const char *p, size_t n) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        tk_str *s = wk_realloc(l->s, (size_t)cap * sizeof *s, "decoder tokens");
        if (!s) return WICK_ENOMEM;
        l->s = s, l->cap = cap;
    }
    l->s[l->n++] = (tk_str){(uint32_t)l->b.len, (uint32_t)n};
    return tk_buf_put(&l->b, p, n);
}
/* Appends to the last string (which must be the last thing in the buffer). */
static wick_status sl_cat(slist *l, const char *p, size_t n) {
    l->s[l->n - 1].len += (uint32_t)n;
    return tk_buf_put(&l->b, p, n);
}
static void sl_free(slist *l) {
    tk_buf_free(&l->b);
    wk_free(l->s);
    memset(l, 0, sizeof *l);
}
#define SL_P(l, i) ((l)->b.p + (l)->s[i].off)

static void replace_all(tk_buf *out, const char *s, size_t n, const char *pat, const char *rep) {
    size_t pl = strlen(pat), rl = strlen(rep), i = 0, last = 0;
    while (pl && i + pl <= n) {
        if (memcmp(s + i, pat, pl) == 0) {
            tk_buf_put(out, s + last, i - last);
            tk_buf_put(out, rep, rl);
            i += pl;
            last = i;
        } else {
            i++;
        }
    }
    tk_buf_put(out, s + last, n - last);
}

static wick_status dec_bytelevel(const slist *in, slist *out) {
    tk_buf bytes = {0};
    for (int i = 0; i < in->n; i++) {
        const char *p = SL_P(in, i);
        size_t n = in->s[i].len, start = bytes.len, j = 0;
        int ok = 1;
        while (j < n && ok) {
            uint32_t cp;
            int k = tk_utf8_next((const uint8_t *)p + j, n - j, &cp);
            int b = k > 0 ? tk_cp_to_byte(cp) : -1;
            if (b < 0) ok = 0;
            else {
                char c = (char)b;
                tk_buf_put(&bytes, &c, 1);
                j += (size_t)k;
            }
        }
        if (!ok) { /* a char outside the byte map: the token's own bytes */
            bytes.len = start;
            tk_buf_put(&bytes, p, n);
        }
    }
    tk_buf s = {0};
    wick_status st = tk_utf8_lossy(&s, bytes.p ? bytes.p : "", bytes.len);
    if (!st) st = sl_add(out, s.p ? s.p : "", s.len);
    tk_buf_free(&bytes), tk_buf_free(&s);
    return st;
}

static int byte_token(const char *p, size_t n, uint8_t *b) {
    if (n != 6 || p[0] != '<' || p[1] != '0' || p[2] != 'x' || p[5] != '>') return 0;
    char h[3] = {p[3], p[4], 0}, *e;
    long v = strtol(h, &e, 16);
    if (*e) return 0;
    *b = (uint8_t)v;
    return 1;
}

static wick_status dec_bytefallback(const slist *in, slist *out) {
    tk_buf bytes = {0};
    int nbytes = 0;
    wick_status st = WICK_OK;
    for (int i = 0; i <= in->n && !st; i++) {
        uint8_t b;
        if (i < in->n && byte_token(SL_P(in, i), in->s[i].len, &b)) {
            tk_buf_put(&bytes, &b, 1), nbytes++;
            continue;
        }
        if (nbytes) {
            tk_buf chk = {0};
            tk_utf8_lossy(&chk, bytes.p, bytes.len);
            if (chk.len == bytes.len) st = sl_add(out, bytes.p, bytes.len);
            else
                for (int k = 0; k < nbytes && !st; k++) st = sl_add(out, "\xEF\xBF\xBD", 3);
            tk_buf_free(&chk);
            bytes.len = 0, nbytes = 0;
        }
        if (i < in->n && !st) st = sl_add(out, SL_P(in, i), in->s[i].len);
    }
    tk_buf_free(&bytes);
    return st;
}

static wick_status dec_step(const tk_dec *d, const slist *in, slist *out) {
    wick_status st = WICK_OK;
    if (d->kind == TK_D_BYTELEVEL) return dec_bytelevel(in, out);
    if (d->kind == TK_D_BYTEFALLBACK) return dec_bytefallback(in, out);
    if (d->kind == TK_D_FUSE) {
        if ((st = sl_add(out, "", 0))) return st;
        for (int i = 0; i < in->n && !st; i++) st = sl_cat(out, SL_P(in, i), in->s[i].len);
        return st;
    }
    for (int i = 0; i < in->n && !st; i++) {
        const char *p = SL_P(in, i);
        size_t n = in->s[i].len;
        tk_buf t = {0};
        if (d->kind == TK_D_REPLACE) {
            replace_all(&t, p, n, d->a, d->b);
        } else if (d->kind == TK_D_METASPACE) {
            /* HF drops every replacement char of the first token, and maps the others to spaces */
            replace_all(&t, p, n, d->repl, i == 0 && d->prepend != TK_PS_NEVER ? "" : " ");
        } else if (d->kind == TK_D_STRIP) {
            size_t cl = strlen(d->a), a = 0, b = n;
            for (int k = 0; k < d->start && b - a >= cl && cl && !memcmp(p + a, d->a, cl); k++) a += cl;
            for (int k = 0; k < d->stop && b - a >= cl && cl && !memcmp(p + b - cl, d->a, cl); k++) b -= cl;
            tk_buf_put(&t, p + a, b - a);
        } else if (d->kind == TK_D_WORDPIECE) {
            size_t pl = strlen(d->a);
            if (i != 0) {
                if (n >= pl && !memcmp(p, d->a, pl)) p += pl, n -= pl;
                else tk_buf_put(&t, " ", 1);
            }
            if (d->cleanup) {
                static const char *cl[][2] = {{" .", "."},   {" ?", "?"},     {" !", "!"},       {" ,", ","},
                                              {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},     {" do not", " don't"},
                                              {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
                tk_buf a = {0}, b = {0};
                tk_buf_put(&a, t.p ? t.p : "", t.len), tk_buf_put(&a, p, n);
                for (size_t k = 0; k < WK_ARRAY_LEN(cl); k++) {
                    b.len = 0;
                    replace_all(&b, a.p, a.len, cl[k][0], cl[k][1]);
                    tk_buf x = a;
                    a = b, b = x;
                }
                t.len = 0;
                tk_buf_put(&t, a.p, a.len);
                tk_buf_free(&a), tk_buf_free(&b);
            } else {
                tk_buf_put(&t, p, n);
            }
        }
        st = sl_add(out, t.p ? t.p : "", t.len);
        tk_buf_free(&t);
    }
    return st;
}

wick_status tk_decode(const wick_tokenizer *t, const int32_t *ids, int n, int skip_special, tk_buf *out) {
    slist a = {0}, b = {0};
    wick_status st = WICK_OK;
    for (int i = 0; i < n && !st; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids || t->strs[id].off == UINT32_MAX) {
            st = wk_err(WICK_ERANGE, "id %d at position %d is outside the vocabulary (size %d)", id, i, t->n_ids);
            break;
        }
        if (skip_special && t->is_special[id]) continue;
        st = sl_add(&a, t->pool + t->strs[id].off, t->strs[id].len);
    }
    for (int k = 0; k < t->n_decs && !st; k++) {
        b.n = 0, b.b.len = 0;
        st = dec_step(&t->decs[k], &a, &b);
        slist x = a;
        a = b, b = x;
    }
    for (int i = 0; i < a.n && !st; i++) {
        if (!t->n_decs && i > 0) st = tk_buf_put(out, " ", 1);
        if (!st) st = tk_buf_put(out, SL_P(&a, i), a.s[i].len);
    }
    if (!st && !out->p) st = tk_buf_put(out, "", 0);
    sl_free(&a), sl_free(&b);
    return st;
}

wick_status wick_detokenize(const wick_tokenizer *t, const int32_t *ids, int n, int skip_special, char **text,
                            size_t *len) {
    if (!t || (!ids && n) || n < 0 || !text) return wk_err(WICK_EINVAL, "wick_detokenize: bad argument");
    tk_buf out = {0};
    wick_status st = tk_decode(t, ids, n, skip_special, &out);
    if (st) {
        tk_buf_free(&out);
        *text = NULL;
        return st;
    }
    *text = out.p;
    if (len) *len = out.len;
    return WICK_OK;
}

/* ---- streaming: decode ids[prefix..] and ids[prefix..read); emit the difference once
 * it is complete text (no trailing U+FFFD, which marks a character still being built). */
struct wick_detok {
    const wick_tokenizer *t;
    tk_ids ids;
    int prefix, read;
    tk_buf piece, a, b;
};

wick_detok *wick_detok_new(const wick_tokenizer *t) {
    if (!t) return NULL;
    wick_detok *d = wk_calloc(sizeof *d, "detokenizer");
    if (d) d->t = t;
    return d;
}

void wick_detok_free(wick_detok *d) {
    if (!d) return;
    wk_free(d->ids.p);
    tk_buf_free(&d->piece), tk_buf_free(&d->a), tk_buf_free(&d->b);
    wk_free(d);
}

static int ends_incomplete(const tk_buf *b) { return b->len >= 3 && !memcmp(b->p + b->len - 3, "\xEF\xBF\xBD", 3); }

/* A run of <0xXX> tokens decodes as a group (invalid groups become one U+FFFD per byte),
 * so while the last id is a byte token the text before it is not settled yet. */
static int pending_bytes(const wick_detok *d) {
    const wick_tokenizer *t = d->t;
    int fallback = 0;
    for (int i = 0; i < t->n_decs; i++) fallback |= t->decs[i].kind == TK_D_BYTEFALLBACK;
    if (!fallback || !d->ids.len) return 0;
    const tk_str *s = &t->strs[d->ids.p[d->ids.len - 1]];
    uint8_t b;
    return byte_token(t->pool + s->off, s->len, &b);
}

static wick_status step_stream(wick_detok *d, int final, const char **piece, size_t *len) {
    d->a.len = d->b.len = d->piece.len = 0;
    if (!final && pending_bytes(d)) {
        wick_status st = tk_buf_put(&d->piece, "", 0);
        *piece = d->piece.p;
        if (len) *len = 0;
        return st;
    }
    wick_status st = tk_decode(d->t, d->ids.p + d->prefix, d->read - d->prefix, 0, &d->a);
    if (!st) st = tk_decode(d->t, d->ids.p + d->prefix, d->ids.len - d->prefix, 0, &d->b);
    if (!st) st = tk_buf_put(&d->piece, "", 0);
    if (st) return st;
    if (d->b.len > d->a.len && (final || !ends_incomplete(&d->b))) {
        size_t cut = d->a.len;
        /* keep the cut on a character boundary even if a decoder rewrote earlier text */
        while (cut < d->b.len && ((uint8_t)d->b.p[cut] & 0xC0) == 0x80) cut++;
        tk_buf_put(&d->piece, d->b.p + cut, d->b.len - cut);
        d->prefix = d->read;
        d->read = d->ids.len;
    }
    if (final) d->prefix = d->read = d->ids.len;
    *piece = d->piece.p;
    if (len) *len = d->piece.len;
    return WICK_OK;
}

wick_status wick_detok_push(wick_detok *d, int32_t id, const char **piece, size_t *len) {
    if (!d || !piece) return wk_err(WICK_EINVAL, "wick_detok_push: NULL argument");
    if (id < 0 || id >= d->t->n_ids || d->t->strs[id].off == UINT32_MAX)
        return wk_err(WICK_ERANGE, "wick_detok_push: id %d is outside the vocabulary (size %d)", id, d->t->n_ids);
    wick_status st = tk_ids_push(&d->ids, id);
    if (st) return st;
    return step_stream(d, 0, piece, len);
}

wick_status wick_detok_flush(wick_detok *d, const char **piece, size_t *len) {
    if (!d || !piece) return wk_err(WICK_EINVAL, "wick_detok_flush: NULL argument");
    return step_stream(d, 1, piece, len);
}
