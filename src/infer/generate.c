/*
 * generate.c — the generator: prefill, then one-token decode steps on a logits
 * source (a wick_session, or a fake in tests), each step sampling an id, computing
 * its raw logprob and top-N alternatives, turning it into UTF-8-complete text with a
 * streaming detokenizer, holding back text that could be the start of a stop string,
 * and deciding whether to stop (EOS, stop string, max tokens, context, cancel).
 *
 * The pull iterator (wick_gen_next) is the only engine: the streaming call and the
 * non-streaming call both drive it, so they produce the same tokens by construction.
 *
 * Text rule: a token's piece is the text that became certain with it. Text that
 * could still turn into a stop string stays held; a found stop string and everything
 * after it is dropped; at the end, whatever is held (and the detokenizer's tail) is
 * released with the last token.
 */
#include "infer.h"

#include <math.h>
#include <stdlib.h>

struct wick_gen {
    wk_lm lm;
    wk_detok_if dt;
    int has_dt;
    wick_gen_opts o;
    char **stop;               /* [n_stop] copies of the stop strings */
    wick_sampler *smp;
    float *logits;             /* [V] logits of the last evaluated position */
    float *raw;                /* [V] copy before penalties (only when the sampler changes logits) */
    int32_t *prompt;           /* [n_prompt] copy; evaluated on the first step */
    int n_prompt, n_gen, prefilled;
    int32_t last_id;
    wick_stop_reason reason;
    char *held, *piece;        /* pending text; the piece handed out with the current token */
    size_t held_len, held_cap, piece_cap;
    wick_top_logprob top[WICK_MAX_TOP_LOGPROBS];
    double t0, t_prefill, t_first, t_last;
};

const char *wick_stop_reason_str(wick_stop_reason r) {
    switch (r) {
    case WICK_STOP_NONE: return "none";
    case WICK_STOP_EOS: return "eos";
    case WICK_STOP_STRING: return "stop";
    case WICK_STOP_MAX_TOKENS: return "length";
    case WICK_STOP_CONTEXT: return "context";
    case WICK_STOP_CANCELLED: return "cancelled";
    case WICK_STOP_ERROR: return "error";
    }
    return "unknown";
}

wick_gen_opts wick_gen_opts_default(void) {
    return (wick_gen_opts){.sampling = wick_sampler_opts_default(), .max_tokens = 256, .ignore_eos = 0,
                           .stop = NULL, .n_stop = 0, .top_logprobs = 0, .max_context = 0};
}

/* ---------------------------------------------------------------- setup */

static wick_status check_gen_opts(const wick_gen_opts *o, const wk_lm *lm, int n_prompt, int has_dt) {
    if (o->max_tokens < 1) return wk_err(WICK_EINVAL, "generate: max_tokens %d, expected >= 1", o->max_tokens);
    if (o->top_logprobs < 0 || o->top_logprobs > WICK_MAX_TOP_LOGPROBS)
        return wk_err(WICK_EINVAL, "generate: top_logprobs %d, expected 0..%d", o->top_logprobs,
                      WICK_MAX_TOP_LOGPROBS);
    if (o->n_stop < 0 || (o->n_stop > 0 && !o->stop))
        return wk_err(WICK_EINVAL, "generate: stop is NULL with n_stop %d", o->n_stop);
    for (int i = 0; i < o->n_stop; i++)
        if (!o->stop[i] || !o->stop[i][0]) return wk_err(WICK_EINVAL, "generate: stop string %d is empty", i);
    if (o->n_stop > 0 && !has_dt)
        return wk_err(WICK_EUNSUPPORTED, "generate: stop strings need a tokenizer, and the model has none");
    if (n_prompt < 1) return wk_err(WICK_EINVAL, "generate: the prompt is empty (at least one id is needed)");
    if (lm->pos + n_prompt + 1 > lm->capacity)
        return wk_err(WICK_ERANGE,
                      "generate: prompt of %d ids leaves no room to generate: the session holds %d of %d positions",
                      n_prompt, lm->pos, lm->capacity);
    return WICK_OK;
}

static wick_status copy_stops(wick_gen *g, const wick_gen_opts *o) {
    if (!o->n_stop) return WICK_OK;
    g->stop = wk_calloc((size_t)o->n_stop * sizeof *g->stop, "stop strings");
    if (!g->stop) return WICK_ENOMEM;
    for (int i = 0; i < o->n_stop; i++)
        if (!(g->stop[i] = wk_strdup(o->stop[i]))) return wk_err(WICK_ENOMEM, "stop strings: out of memory");
    g->o.stop = (const char *const *)g->stop;
    return WICK_OK;
}

static int penalties_change_logits(const wick_sampler_opts *s) {
    return s->n_logit_bias > 0 || s->repetition_penalty != 1.0f || s->presence_penalty != 0.0f ||
           s->frequency_penalty != 0.0f;
}

static wick_status check_prompt(const wk_lm *lm, const int32_t *prompt, int n_prompt) {
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= lm->vocab)
            return wk_err(WICK_ERANGE, "generate: prompt id %d at index %d is outside the vocabulary [0, %d)",
                          (int)prompt[i], i, lm->vocab);
    return WICK_OK;
}

wick_status wk_gen_start_src(const wk_lm *lm, const wk_detok_if *dt, const int32_t *prompt, int n_prompt,
                             const wick_gen_opts *o, wick_gen **out) {
    wick_gen_opts def = wick_gen_opts_default();
    if (!o) o = &def;
    wick_status st = !out ? wk_err(WICK_EINVAL, "generate: out is NULL") : check_gen_opts(o, lm, n_prompt, dt != NULL);
    if (!st) st = check_prompt(lm, prompt, n_prompt);
    if (out) *out = NULL;
    if (st) {
        if (dt && dt->free) dt->free(dt->ctx);
        return st;
    }
    wick_gen *g = wk_calloc(sizeof *g, "generator");
    if (!g) {
        if (dt && dt->free) dt->free(dt->ctx);
        return WICK_ENOMEM;
    }
    g->lm = *lm;
    g->o = *o;
    g->o.stop = NULL;
    g->o.n_stop = o->n_stop;
    if (dt) g->dt = *dt, g->has_dt = 1;
    g->n_prompt = n_prompt;
    size_t V = (size_t)lm->vocab;
    g->t0 = wk_now();
    if ((st = copy_stops(g, o)) || (st = wick_sampler_new(&o->sampling, lm->vocab, &g->smp)) ||
        (st = wick_sampler_add_prompt(g->smp, prompt, n_prompt)))
        goto fail;
    g->logits = wk_malloc(V * sizeof(float), "generator logits");
    g->raw = penalties_change_logits(&o->sampling) ? wk_malloc(V * sizeof(float), "generator raw logits") : NULL;
    g->prompt = wk_malloc((size_t)n_prompt * sizeof(int32_t), "generator prompt");
    g->piece = wk_malloc(g->piece_cap = 256, "generator text");
    g->held = wk_malloc(g->held_cap = 256, "generator text");
    if (!g->logits || (penalties_change_logits(&o->sampling) && !g->raw) || !g->prompt || !g->piece || !g->held) {
        st = WICK_ENOMEM;
        goto fail;
    }
    memcpy(g->prompt, prompt, (size_t)n_prompt * sizeof(int32_t));
    *out = g;
    return WICK_OK;
fail:
    wick_gen_free(g);
    return st;
}

void wick_gen_free(wick_gen *g) {
    if (!g) return;
    for (int i = 0; g->stop && i < g->o.n_stop; i++) wk_free(g->stop[i]);
    wk_free(g->stop);
    wick_sampler_free(g->smp);
    wk_free(g->logits);
    wk_free(g->raw);
    wk_free(g->prompt);
    wk_free(g->held);
    wk_free(g->piece);
    if (g->has_dt && g->dt.free) g->dt.free(g->dt.ctx);
    wk_free(g);
}

void wick_gen_cancel(wick_gen *g) {
    if (g && g->reason == WICK_STOP_NONE) g->reason = WICK_STOP_CANCELLED;
}

void wick_gen_get_stats(const wick_gen *g, wick_gen_stats *st) {
    memset(st, 0, sizeof *st);
    st->n_prompt = g->n_prompt;
    st->n_generated = g->n_gen;
    st->stop = g->reason;
    if (!g->n_gen) return;
    st->ttft_ms = (g->t_first - g->t0) * 1e3;
    double pre = g->t_prefill - g->t0;
    st->prefill_tok_s = pre > 0 ? g->n_prompt / pre : 0;
    double dec = g->t_last - g->t_first;
    st->decode_tok_s = g->n_gen > 1 && dec > 0 ? (g->n_gen - 1) / dec : 0;
    st->total_ms = (g->t_last - g->t0) * 1e3;
}

/* ----------------------------------------------------------------- text */

static wick_status grow(char **buf, size_t *cap, size_t need, const char *what) {
    if (need <= *cap) return WICK_OK;
    size_t c = *cap * 2 > need ? *cap * 2 : need;
    char *p = wk_realloc(*buf, c, what);
    if (!p) return WICK_ENOMEM;
    *buf = p, *cap = c;
    return WICK_OK;
}

static wick_status hold(wick_gen *g, const char *s, size_t n) {
    if (grow(&g->held, &g->held_cap, g->held_len + n + 1, "generator text")) return WICK_ENOMEM;
    memcpy(g->held + g->held_len, s, n);
    g->held_len += n;
    return WICK_OK;
}

/* Earliest occurrence of any stop string in held, or -1. */
static long find_stop(const wick_gen *g) {
    long best = -1;
    for (int i = 0; i < g->o.n_stop; i++) {
        size_t L = strlen(g->stop[i]);
        for (size_t p = 0; p + L <= g->held_len && (best < 0 || (long)p < best); p++)
            if (!memcmp(g->held + p, g->stop[i], L)) {
                best = (long)p;
                break;
            }
    }
    return best;
}

/* Length of the longest suffix of held that is a proper prefix of a stop string. */
static size_t stop_prefix_len(const wick_gen *g) {
    size_t best = 0;
    for (int i = 0; i < g->o.n_stop; i++) {
        size_t L = strlen(g->stop[i]);
        for (size_t k = L - 1 < g->held_len ? L - 1 : g->held_len; k > best; k--)
            if (!memcmp(g->held + g->held_len - k, g->stop[i], k)) {
                best = k;
                break;
            }
    }
    return best;
}

/* Moves the first n bytes of held into piece (NUL-terminated). */
static wick_status release(wick_gen *g, size_t n, size_t *piece_len) {
    if (grow(&g->piece, &g->piece_cap, n + 1, "generator text")) return WICK_ENOMEM;
    memcpy(g->piece, g->held, n);
    g->piece[n] = 0;
    *piece_len = n;
    memmove(g->held, g->held + n, g->held_len - n);
    g->held_len -= n;
    return WICK_OK;
}

/* Feeds id to the detokenizer and decides the piece this token releases; may set
 * the stop reason to WICK_STOP_STRING. final: the generation ends with this token. */
static wick_status token_text(wick_gen *g, int32_t id, int skip_text, size_t *piece_len) {
    const char *p;
    size_t n;
    *piece_len = 0;
    g->piece[0] = 0;
    if (!g->has_dt) return WICK_OK;
    wick_status st;
    if (!skip_text && ((st = g->dt.push(g->dt.ctx, id, &p, &n)) || (st = hold(g, p, n)))) return st;
    if (g->reason != WICK_STOP_NONE && ((st = g->dt.flush(g->dt.ctx, &p, &n)) || (st = hold(g, p, n)))) return st;
    long at = find_stop(g);
    if (at >= 0) {
        g->reason = WICK_STOP_STRING;
        g->held_len = (size_t)at;
        return release(g, (size_t)at, piece_len);
    }
    size_t keep = g->reason != WICK_STOP_NONE ? 0 : stop_prefix_len(g);
    return release(g, g->held_len - keep, piece_len);
}

/* ----------------------------------------------------------------- step */

static int is_eos(const wk_lm *lm, int32_t id) {
    for (int i = 0; i < lm->n_eos; i++)
        if (lm->eos[i] == id) return 1;
    return 0;
}

/* Runs the model for the next position and samples an id; fills id/logprob/prob/top. */
static wick_status step_sample(wick_gen *g, wick_token *t) {
    wick_status st;
    if (g->lm.pick && g->o.sampling.temperature <= 0.0f && !penalties_change_logits(&g->o.sampling) &&
        g->o.top_logprobs == 0) { /* greedy with nothing else needing the logits: picked where they are */
        int first = !g->prefilled;
        st = first ? g->lm.pick(g->lm.ctx, g->prompt, g->n_prompt, &t->id, &t->logprob)
                   : g->lm.pick(g->lm.ctx, &g->last_id, 1, &t->id, &t->logprob);
        if (first) g->prefilled = 1, g->t_prefill = wk_now();
        if (st) return wk_err_prefix(st, "generate: model step at position %d", g->lm.pos + g->n_prompt + g->n_gen - 1);
        t->prob = 1.0f;
        t->top = g->top;
        t->n_top = 0;
        return wick_sampler_accept(g->smp, t->id);
    }
    if (!g->prefilled) {
        st = g->lm.eval(g->lm.ctx, g->prompt, g->n_prompt, g->logits);
        g->prefilled = 1;
        g->t_prefill = wk_now();
    } else {
        st = g->lm.eval(g->lm.ctx, &g->last_id, 1, g->logits);
    }
    if (st) return wk_err_prefix(st, "generate: model step at position %d", g->lm.pos + g->n_prompt + g->n_gen - 1);
    int V = g->lm.vocab;
    float mx = wk_maxf(g->logits, V);
    mx = mx > -INFINITY ? mx : 0.0f; /* all -inf/NaN: the sampler reports it */
    double lse = wk_logsumexp(g->logits, V, mx);
    if (g->o.top_logprobs > 0) wk_top_logprobs(g->logits, V, g->o.top_logprobs, lse, g->top);
    if (g->raw) memcpy(g->raw, g->logits, (size_t)V * sizeof(float));
    if ((st = wick_sampler_sample(g->smp, g->logits, &t->id, &t->prob))) return st;
    t->logprob = (float)((double)(g->raw ? g->raw : g->logits)[t->id] - lse);
    t->top = g->top;
    t->n_top = g->o.top_logprobs;
    return wick_sampler_accept(g->smp, t->id);
}

wick_status wick_gen_next(wick_gen *g, wick_token *t, int *done) {
    *done = 0;
    if (g->reason != WICK_STOP_NONE) {
        *done = 1;
        return WICK_OK;
    }
    double t_start = wk_now();
    wick_token tok = {0};
    wick_status st = step_sample(g, &tok);
    if (st) {
        g->reason = WICK_STOP_ERROR;
        return st;
    }
    tok.index = g->n_gen++;
    tok.pos = g->lm.pos + g->n_prompt + tok.index;
    int eos = !g->o.ignore_eos && is_eos(&g->lm, tok.id);
    if (eos) g->reason = WICK_STOP_EOS;
    else if (g->n_gen >= g->o.max_tokens) g->reason = WICK_STOP_MAX_TOKENS;
    else if (tok.pos + 1 >= g->lm.capacity) g->reason = WICK_STOP_CONTEXT; /* sequence fills the context */
    if ((st = token_text(g, tok.id, eos, &tok.piece_len))) {
        g->reason = WICK_STOP_ERROR;
        return wk_err_prefix(st, "generate: text of id %d", (int)tok.id);
    }
    g->last_id = tok.id;
    tok.piece = g->piece;
    tok.stop = g->reason;
    g->t_last = wk_now();
    if (tok.index == 0) g->t_first = g->t_last;
    tok.t_ms = (g->t_last - g->t0) * 1e3;
    tok.dt_ms = (g->t_last - t_start) * 1e3;
    *t = tok;
    return WICK_OK;
}

/* ------------------------------------------------------ drivers */

wick_status wick_gen_run(wick_gen *g, wick_token_fn fn, void *user, wick_gen_stats *stats) {
    wick_status st = WICK_OK;
    for (;;) {
        wick_token t;
        int done;
        if ((st = wick_gen_next(g, &t, &done)) || done) break;
        if (fn && fn(&t, user)) {
            wick_gen_cancel(g);
            st = wk_err(WICK_ECANCELLED, "generate: cancelled by the callback after %d tokens", g->n_gen);
            break;
        }
    }
    if (stats) wick_gen_get_stats(g, stats);
    return st;
}

typedef struct {
    int32_t *ids;
    int n, cap;
    char *text;
    size_t len, tcap;
    wick_status err;
} collect;

static int collect_token(const wick_token *t, void *user) {
    collect *c = user;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        int32_t *p = wk_realloc(c->ids, (size_t)cap * sizeof *p, "generated ids");
        if (!p) return c->err = WICK_ENOMEM, 1;
        c->ids = p, c->cap = cap;
    }
    c->ids[c->n++] = t->id;
    if (grow(&c->text, &c->tcap, c->len + t->piece_len + 1, "generated text")) return c->err = WICK_ENOMEM, 1;
    memcpy(c->text + c->len, t->piece, t->piece_len);
    c->len += t->piece_len;
    c->text[c->len] = 0;
    return 0;
}

wick_status wk_gen_run_collect(wick_gen *g, int32_t **ids, int *n, char **text, wick_gen_stats *stats) {
    collect c = {0};
    c.text = wk_malloc(c.tcap = 64, "generated text");
    if (!c.text) return WICK_ENOMEM;
    c.text[0] = 0;
    wick_status st = wick_gen_run(g, collect_token, &c, stats);
    if (c.err) st = wk_err(c.err, "generate: out of memory collecting %d tokens", c.n);
    if (st) {
        wk_free(c.ids);
        wk_free(c.text);
        return st;
    }
    *ids = c.ids;
    *n = c.n;
    if (text) *text = c.text;
    else wk_free(c.text);
    return WICK_OK;
}
