/*
 * generate_session.c — the public generation calls on a model + session: binds the
 * generator's logits source to wick_session_eval, its EOS ids, context size and
 * vocabulary to the model, its text to the tokenizer's streaming detokenizer, then
 * drives it (streaming, collecting, or several prompts); text and chat prompts go
 * through the tokenizer and chat template first.
 */
#include "infer.h"
#include "model/model.h"
#include "model/session.h"

static wick_status session_eval(void *ctx, const int32_t *ids, int n, float *logits) {
    return wick_session_eval(ctx, ids, n, logits, 0);
}

static wick_status session_pick(void *ctx, const int32_t *ids, int n, int32_t *id, float *logprob) {
    return wk_session_eval_pick(ctx, ids, n, id, logprob);
}

/* Fills the logits source for model m and session s. */
static wick_status bind_session(wick_model *m, wick_session *s, const wick_gen_opts *o, wk_lm *lm) {
    if (!m || !s) return wk_err(WICK_EINVAL, "generate: model or session is NULL");
    wick_model_info info;
    wick_status st = wick_model_get_info(m, &info);
    if (st) return st;
    memset(lm, 0, sizeof *lm);
    lm->eval = session_eval;
    lm->pick = wk_session_can_pick(s) ? session_pick : NULL;
    lm->ctx = s;
    lm->vocab = info.vocab_size;
    lm->pos = wick_session_pos(s);
    /* the session's own rule (decoder.c): min(max_position, 4096), bounded by a sliding window */
    int max_pos = info.max_position > 0 ? info.max_position : 4096;
    lm->capacity = o && o->max_context > 0 ? o->max_context : WK_MIN(max_pos, 4096);
    if (m->c.sliding_window > 0) lm->capacity = WK_MIN(lm->capacity, m->c.sliding_window);
    lm->n_eos = WK_MIN(info.n_eos, (int)WK_ARRAY_LEN(lm->eos));
    for (int i = 0; i < lm->n_eos; i++) lm->eos[i] = info.eos_ids[i];
    return WICK_OK;
}

/* ---- the tokenizer's streaming detokenizer as the generator's text source */
typedef struct {
    wick_detok *d;
    const wick_tokenizer *t;
} tok_dt;

static wick_status tdt_push(void *ctx, int32_t id, const char **piece, size_t *len) {
    tok_dt *x = ctx;
    size_t l;
    if (!wick_tokenizer_token(x->t, id, &l)) { /* a padding id of the embedding: no text */
        *piece = "", *len = 0;
        return WICK_OK;
    }
    return wick_detok_push(x->d, id, piece, len);
}

static wick_status tdt_flush(void *ctx, const char **piece, size_t *len) {
    return wick_detok_flush(((tok_dt *)ctx)->d, piece, len);
}

static void tdt_free(void *ctx) {
    tok_dt *x = ctx;
    wick_detok_free(x->d);
    wk_free(x);
}

static const wick_tokenizer *gen_tokenizer(wick_model *m, const wick_gen_opts *o) {
    return o && o->tokenizer ? o->tokenizer : wick_model_tokenizer(m);
}

/* Starts on ids; extra_eos (>= 0) also stops the generation; eval (NULL = wick_session_eval) runs the steps. */
static wick_status start_ids(wick_model *m, wick_session *s, const int32_t *prompt, int n_prompt,
                             const wick_gen_opts *o, int32_t extra_eos, wk_eval_fn eval, void *ctx, wick_gen **out) {
    wk_lm lm;
    wick_status st = bind_session(m, s, o, &lm);
    if (st) return st;
    if (eval) lm.eval = eval, lm.pick = NULL, lm.ctx = ctx;
    if (extra_eos >= 0 && lm.n_eos < (int)WK_ARRAY_LEN(lm.eos)) lm.eos[lm.n_eos++] = extra_eos;
    const wick_tokenizer *t = gen_tokenizer(m, o);
    if (!t) return wk_gen_start_src(&lm, NULL, prompt, n_prompt, o, out);
    tok_dt *x = wk_calloc(sizeof *x, "generator detokenizer");
    if (!x || !(x->d = wick_detok_new(t))) {
        wk_free(x);
        return wk_err(WICK_ENOMEM, "generate: out of memory for the detokenizer");
    }
    x->t = t;
    wk_detok_if dt = {tdt_push, tdt_flush, tdt_free, x};
    return wk_gen_start_src(&lm, &dt, prompt, n_prompt, o, out);
}

wick_status wick_gen_start(wick_model *m, wick_session *s, const int32_t *prompt, int n_prompt,
                           const wick_gen_opts *o, wick_gen **out) {
    return start_ids(m, s, prompt, n_prompt, o, -1, NULL, NULL, out);
}

wick_status wk_gen_start_via(wick_model *m, wick_session *s, const int32_t *prompt, int n_prompt,
                             const wick_gen_opts *o, int32_t extra_eos, wk_eval_fn eval, void *ctx, wick_gen **out) {
    return start_ids(m, s, prompt, n_prompt, o, extra_eos, eval, ctx, out);
}

static wick_status need_tokenizer(const wick_tokenizer *t) {
    if (t) return WICK_OK;
    return wk_err(WICK_EINVAL, "generate: a text prompt needs a tokenizer: the model directory has no "
                               "tokenizer.json and wick_gen_opts.tokenizer is NULL");
}

wick_status wick_gen_start_text(wick_model *m, wick_session *s, const char *text, int tok_flags,
                                const wick_gen_opts *o, wick_gen **out) {
    const wick_tokenizer *t = gen_tokenizer(m, o);
    wick_status st = need_tokenizer(t);
    if (st) return st;
    int32_t *ids = NULL;
    int n = 0;
    if ((st = wick_tokenize(t, text, strlen(text), tok_flags, &ids, &n))) return wk_err_prefix(st, "generate: prompt");
    st = start_ids(m, s, ids, n, o, -1, NULL, NULL, out);
    wick_free(ids);
    return st;
}

wick_status wick_gen_start_chat(wick_model *m, wick_session *s, const wick_chat_message *msgs, int n_msgs,
                                const char *template_name, const wick_gen_opts *o, wick_gen **out) {
    const wick_tokenizer *t = gen_tokenizer(m, o);
    wick_status st = need_tokenizer(t);
    if (st) return st;
    char *text = NULL;
    int32_t *ids = NULL;
    int n = 0;
    if ((st = wick_chat_render(t, msgs, n_msgs, 1, template_name, &text, NULL, NULL)))
        return wk_err_prefix(st, "generate: chat template");
    if ((st = wick_tokenize(t, text, strlen(text), 0, &ids, &n))) {
        wick_free(text);
        return wk_err_prefix(st, "generate: rendered chat");
    }
    const char *eos = wick_tokenizer_eos(t);
    st = start_ids(m, s, ids, n, o, eos ? wick_tokenizer_find(t, eos) : -1, NULL, NULL, out);
    wick_free(ids);
    wick_free(text);
    return st;
}

wick_status wick_generate_stream(wick_model *m, wick_session *s, const int32_t *prompt, int n_prompt,
                                 const wick_gen_opts *o, wick_token_fn fn, void *user, wick_gen_stats *stats) {
    wick_gen *g;
    wick_status st = wick_gen_start(m, s, prompt, n_prompt, o, &g);
    if (st) return st;
    st = wick_gen_run(g, fn, user, stats);
    wick_gen_free(g);
    return st;
}

wick_status wick_generate(wick_model *m, wick_session *s, const int32_t *prompt, int n_prompt,
                          const wick_gen_opts *o, int32_t **ids, int *n, char **text, wick_gen_stats *stats) {
    if (!ids || !n) return wk_err(WICK_EINVAL, "generate: ids or n is NULL");
    wick_gen *g;
    wick_status st = wick_gen_start(m, s, prompt, n_prompt, o, &g);
    if (st) return st;
    st = wk_gen_run_collect(g, ids, n, text, stats);
    wick_gen_free(g);
    return st;
}

wick_status wick_generate_batch(wick_model *m, wick_session *s, const int32_t *const *prompts,
                                const int *n_prompts, int n_seqs, const wick_gen_opts *o, int32_t **ids, int *n,
                                wick_gen_stats *stats) {
    wick_gen_opts oi = o ? *o : wick_gen_opts_default();
    uint64_t seed = oi.sampling.seed;
    for (int i = 0; i < n_seqs; i++) ids[i] = NULL, n[i] = 0;
    for (int i = 0; i < n_seqs; i++) {
        wick_session_reset(s);
        oi.sampling.seed = seed + (uint64_t)i;
        wick_status st = wick_generate(m, s, prompts[i], n_prompts[i], &oi, &ids[i], &n[i], NULL,
                                       stats ? &stats[i] : NULL);
        if (st) {
            for (int j = 0; j <= i; j++) wick_free(ids[j]), ids[j] = NULL, n[j] = 0;
            return wk_err_prefix(st, "prompt %d", i);
        }
    }
    return WICK_OK;
}
