/*
 * generate_session.c — the public generation calls on a model + session: binds the
 * generator's logits source to wick_session_eval and its EOS ids, context size and
 * vocabulary to the model, then drives it (streaming, collecting, or several prompts).
 */
#include "infer.h"

static wick_status session_eval(void *ctx, const int32_t *ids, int n, float *logits) {
    return wick_session_eval(ctx, ids, n, logits, 0);
}

/* Fills the logits source for model m and session s. */
static wick_status bind_session(wick_model *m, wick_session *s, const wick_gen_opts *o, wk_lm *lm) {
    if (!m || !s) return wk_err(WICK_EINVAL, "generate: model or session is NULL");
    wick_model_info info;
    wick_status st = wick_model_get_info(m, &info);
    if (st) return st;
    memset(lm, 0, sizeof *lm);
    lm->eval = session_eval;
    lm->ctx = s;
    lm->vocab = info.vocab_size;
    lm->pos = wick_session_pos(s);
    int max_pos = info.max_position > 0 ? info.max_position : 4096;
    lm->capacity = o && o->max_context > 0 ? o->max_context : WK_MIN(max_pos, 4096);
    lm->n_eos = WK_MIN(info.n_eos, (int)WK_ARRAY_LEN(lm->eos));
    for (int i = 0; i < lm->n_eos; i++) lm->eos[i] = info.eos_ids[i];
    return WICK_OK;
}

wick_status wick_gen_start(wick_model *m, wick_session *s, const int32_t *prompt, int n_prompt,
                           const wick_gen_opts *o, wick_gen **out) {
    wk_lm lm;
    wick_status st = bind_session(m, s, o, &lm);
    if (st) return st;
    return wk_gen_start_src(&lm, NULL, prompt, n_prompt, o, out);
}

wick_status wick_generate_stream(wick_model *m, wick_session *s, const int32_t *prompt, int n_prompt,
                                 const wick_gen_opts *o, wick_token_fn fn, void *user, wick_gen_stats *stats) {
    wick_gen *g;
    wick_status st = wick_gen_start(m, s, prompt, n_prompt, o, &g);
    if (st) return st;
    st = wk_gen_run_stream(g, fn, user, stats);
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
