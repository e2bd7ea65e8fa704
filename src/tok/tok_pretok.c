/*
 * tok_pretok.c — pre-tokenizers: Split (the file's regex run by PCRE2 with UTF+UCP and
 * JIT, every split behavior), ByteLevel (prefix space + GPT-2 regex; the byte map
 * itself is applied by the BPE model), Metaspace, BertPreTokenizer, Whitespace,
 * WhitespaceSplit and Digits. A piece is a span of a byte buffer; steps that change
 * text (prefix space, Metaspace) append the new text to the buffer.
 */
#include "tok.h"
#include <utf8proc.h>

int tk_is_ws(uint32_t c);

void tk_pieces_free(tk_pieces *p) {
    wk_free(p->p);
    memset(p, 0, sizeof *p);
}

static wick_status push(tk_pieces *v, uint32_t off, uint32_t len) {
    if (!len) return WICK_OK;
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 64;
        tk_piece *p = wk_realloc(v->p, (size_t)cap * sizeof *p, "pre-tokenizer pieces");
        if (!p) return WICK_ENOMEM;
        v->p = p, v->cap = cap;
    }
    v->p[v->n++] = (tk_piece){off, len};
    return WICK_OK;
}

/* Emits the parts of one input piece, in order, according to the split behavior
 * (the same folds as Hugging Face's SplitDelimiterBehavior). */
typedef struct {
    tk_pieces *out;
    tk_behavior beh;
    int base;       /* out->n when this input piece started */
    int last_match; /* the previous part was a match */
} emitter;

static wick_status emit(emitter *e, uint32_t off, uint32_t len, int match) {
    if (!len) return WICK_OK;
    tk_pieces *o = e->out;
    int prev_match = e->last_match, have = o->n > e->base;
    e->last_match = match;
    switch (e->beh) {
    case TK_B_ISOLATED: return push(o, off, len);
    case TK_B_REMOVED: return match ? WICK_OK : push(o, off, len);
    case TK_B_PREV:
        if (match && !prev_match && have) return o->p[o->n - 1].len += len, WICK_OK;
        return push(o, off, len);
    case TK_B_NEXT:
        if (!match && prev_match && have) return o->p[o->n - 1].len += len, WICK_OK;
        return push(o, off, len);
    case TK_B_CONTIG:
        if (match && prev_match && have) return o->p[o->n - 1].len += len, WICK_OK;
        return push(o, off, len);
    }
    return WICK_OK;
}

static wick_status split_regex(pcre2_code *re, tk_behavior beh, int invert, const char *buf, const tk_pieces *in,
                               tk_pieces *out) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) return wk_err(WICK_ENOMEM, "pre-tokenizer: match data");
    wick_status st = WICK_OK;
    for (int i = 0; !st && i < in->n; i++) {
        emitter e = {out, beh, out->n, 0};
        uint32_t off = in->p[i].off, n = in->p[i].len, pos = 0, last = 0;
        const char *s = buf + off;
        while (!st && pos < n) {
            int rc = pcre2_jit_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_JIT_BADOPTION)
                rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc < 0) break;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            if (ov[1] == ov[0]) { /* empty match: step over one character */
                pos = (uint32_t)ov[0] + (uint32_t)WK_MAX(1, tk_utf8_len((uint8_t)s[ov[0]]));
                continue;
            }
            st = emit(&e, off + last, (uint32_t)ov[0] - last, invert);
            if (!st) st = emit(&e, off + (uint32_t)ov[0], (uint32_t)(ov[1] - ov[0]), !invert);
            last = pos = (uint32_t)ov[1];
        }
        if (!st) st = emit(&e, off + last, n - last, invert);
    }
    pcre2_match_data_free(md);
    return st;
}

/* Splits by a character predicate: kind 0 whitespace (removed), 1 punctuation (isolated),
 * 2 digits (isolated; individual or runs). */
static int is_punct(uint32_t c) {
    if (c < 128) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}
static int is_num(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

static wick_status split_class(int kind, int individual, const char *buf, const tk_pieces *in, tk_pieces *out) {
    wick_status st = WICK_OK;
    for (int i = 0; !st && i < in->n; i++) {
        emitter e = {out, kind == 0 ? TK_B_REMOVED : TK_B_ISOLATED, out->n, 0};
        uint32_t off = in->p[i].off, n = in->p[i].len, pos = 0, start = 0;
        int run_match = -1;
        while (!st && pos < n) {
            uint32_t cp;
            int k = tk_utf8_next((const uint8_t *)buf + off + pos, n - pos, &cp);
            if (k <= 0) k = 1, cp = 0xFFFD;
            int m = kind == 0 ? tk_is_ws(cp) : kind == 1 ? is_punct(cp) : is_num(cp);
            /* punctuation and individual digits are one piece per character */
            int single = m && (kind == 1 || (kind == 2 && individual));
            if (pos > start && (m != run_match || single)) {
                st = emit(&e, off + start, pos - start, run_match);
                start = pos;
            }
            run_match = m;
            pos += (uint32_t)k;
            if (single) {
                st = st ? st : emit(&e, off + start, pos - start, 1);
                start = pos;
                run_match = -1;
            }
        }
        if (!st && pos > start) st = emit(&e, off + start, pos - start, run_match);
    }
    return st;
}

static wick_status prefix_space(const tk_pre *p, tk_buf *buf, tk_pieces *v, int first_segment) {
    for (int i = 0; i < v->n; i++) {
        tk_piece *pc = &v->p[i];
        if (p->kind == TK_P_BYTELEVEL) {
            if (buf->p[pc->off] == ' ') continue;
            uint32_t off = (uint32_t)buf->len;
            size_t len = pc->len;
            if (tk_buf_put(buf, " ", 1) || tk_buf_reserve(buf, len)) return WICK_ENOMEM;
            tk_buf_put(buf, buf->p + pc->off, len);
            pc->off = off, pc->len = (uint32_t)len + 1;
            continue;
        }
        /* Metaspace: spaces become the replacement, then the prefix */
        size_t rl = strlen(p->repl);
        uint32_t off = (uint32_t)buf->len;
        int want = p->prepend == TK_PS_ALWAYS || (p->prepend == TK_PS_FIRST && first_segment && i == 0);
        int starts = (pc->len >= rl && memcmp(buf->p + pc->off, p->repl, rl) == 0) || buf->p[pc->off] == ' ';
        if (want && !starts && tk_buf_put(buf, p->repl, rl)) return WICK_ENOMEM;
        for (uint32_t j = 0; j < pc->len; j++) {
            char c = buf->p[pc->off + j];
            if (c == ' ' ? tk_buf_put(buf, p->repl, rl) : tk_buf_put(buf, &c, 1)) return WICK_ENOMEM;
        }
        pc->off = off, pc->len = (uint32_t)(buf->len - off);
    }
    return WICK_OK;
}

static wick_status step(const wick_tokenizer *t, const tk_pre *p, tk_buf *buf, tk_pieces *in, tk_pieces *out,
                        int first_segment) {
    wick_status st;
    switch (p->kind) {
    case TK_P_SPLIT: return split_regex(p->re, p->behavior, p->invert, buf->p, in, out);
    case TK_P_BYTELEVEL:
        if (p->add_prefix_space && (st = prefix_space(p, buf, in, first_segment))) return st;
        if (p->re) return split_regex(p->re, TK_B_ISOLATED, 0, buf->p, in, out);
        break;
    case TK_P_METASPACE: {
        if ((st = prefix_space(p, buf, in, first_segment))) return st;
        if (!p->split) break;
        return split_regex(p->re, TK_B_NEXT, 0, buf->p, in, out);
    }
    case TK_P_BERT: {
        tk_pieces mid = {0};
        st = split_class(0, 0, buf->p, in, &mid);
        if (!st) st = split_class(1, 0, buf->p, &mid, out);
        tk_pieces_free(&mid);
        return st;
    }
    case TK_P_WHITESPACE: return split_regex(p->re, TK_B_REMOVED, 1, buf->p, in, out);
    case TK_P_WSSPLIT: return split_class(0, 0, buf->p, in, out);
    case TK_P_DIGITS: return split_class(2, p->individual, buf->p, in, out);
    }
    (void)t;
    for (int i = 0; i < in->n; i++)
        if ((st = push(out, in->p[i].off, in->p[i].len))) return st;
    return WICK_OK;
}

wick_status tk_pretokenize(const wick_tokenizer *t, tk_buf *buf, tk_pieces *pieces, int first_segment) {
    tk_pieces tmp = {0};
    for (int i = 0; i < t->n_pres; i++) {
        tmp.n = 0;
        wick_status st = step(t, &t->pres[i], buf, pieces, &tmp, first_segment);
        if (st) return tk_pieces_free(&tmp), st;
        tk_pieces x = *pieces;
        *pieces = tmp, tmp = x;
    }
    tk_pieces_free(&tmp);
    return WICK_OK;
}
