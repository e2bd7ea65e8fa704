/*
 * infer.h — internal interfaces of src/infer: the sampler's pieces (exposed for
 * tests and benchmarks) and the generator's two plug points: a "next logits" source
 * (normally a wick_session; a fake one in tests) and a streaming detokenizer
 * (normally the model's tokenizer; a table in tests).
 */
#ifndef WK_INFER_H
#define WK_INFER_H
#include "wk.h"

/* ---- seeded RNG: xoshiro256** seeded through splitmix64 */
typedef struct {
    uint64_t s[4];
} wk_rng;

void wk_rng_seed(wk_rng *r, uint64_t seed);
uint64_t wk_rng_next(wk_rng *r);
double wk_rng_uniform(wk_rng *r); /* [0, 1), 53 random bits */

/* Value of the k-th largest of x[0..n) (1 <= k <= n), NaN ignored as -inf.
 * scratch holds n floats (used only when k is large). */
float wk_kth_largest(const float *x, int n, int k, float *scratch);

/* ---- vectorized vocabulary loops (vecmath.c) */
#define WK_EXP_BLOCK 256 /* ids per block of wk_exp_blocks' partial sums */

/* Largest value of x[0..n) ignoring NaN (-inf when none). */
float wk_maxf(const float *x, int n);
/* Index of the first maximum of x[0..n), or -1 if every value is -inf or NaN. */
int wk_argmax(const float *x, int n);
/* exp(x) for x <= 0 (relative error < 2e-7; 0 below -87; NaN stays NaN). */
float wk_exp_neg(float x);
/* w[i] = exp(x[i] / T - mx) (w may be NULL); bsum[b] (may be NULL) = sum of block b of
 * WK_EXP_BLOCK ids. Returns the total, summed in double across blocks. */
double wk_exp_blocks(const float *x, int n, float T, float mx, float *w, double *bsum);
/* mass[t] = sum of the w[i] >= tau[t], for four thresholds in one pass. */
void wk_mass_at_least4(const float *w, int n, const float tau[4], double mass[4]);
/* log(sum(exp(x))) over n values, around max. */
double wk_logsumexp(const float *x, int n, float max);

/* Fills top[0..k) with the k largest (id, logprob) of x[0..n) (logprob = x - lse),
 * most likely first. k <= WICK_MAX_TOP_LOGPROBS. */
void wk_top_logprobs(const float *x, int n, int k, double lse, wick_top_logprob *top);

/* ---- generator plug points */

/* Appends ids[0..n) to the sequence and writes the logits [vocab] of the last one. */
typedef wick_status (*wk_eval_fn)(void *ctx, const int32_t *ids, int n, float *logits);

/* Greedy steps without the logits (optional): evaluates ids and returns the last row's
 * argmax (first index of the max) and its log-probability. */
typedef wick_status (*wk_pick_fn)(void *ctx, const int32_t *ids, int n, int32_t *id, float *logprob);

typedef struct {
    wk_eval_fn eval;
    void *ctx;
    int vocab;
    int pos;          /* positions already held when the generation starts */
    int capacity;     /* positions the sequence can hold */
    int n_eos;
    int eos[8];
    wk_pick_fn pick; /* may be NULL; greedy steps with nothing else needing the logits use it */
} wk_lm;

/* Streaming detokenizer: push returns the UTF-8-complete text released by id (borrowed
 * until the next call); flush returns what is still pending at the end. */
typedef struct {
    wick_status (*push)(void *ctx, int32_t id, const char **piece, size_t *len);
    wick_status (*flush)(void *ctx, const char **piece, size_t *len);
    void (*free)(void *ctx); /* may be NULL; called by wick_gen_free */
    void *ctx;
} wk_detok_if;

/* Starts a generation on any logits source; dt may be NULL (no text). */
wick_status wk_gen_start_src(const wk_lm *lm, const wk_detok_if *dt, const int32_t *prompt, int n_prompt,
                             const wick_gen_opts *o, wick_gen **out);

/* wick_gen_start on model m + session s whose steps go through eval(ctx, ...) instead of
 * wick_session_eval (the server's scheduler batches them); extra_eos (>= 0) also stops
 * (a chat template's end of turn). eval must leave s holding the evaluated ids. */
wick_status wk_gen_start_via(wick_model *m, wick_session *s, const int32_t *prompt, int n_prompt,
                             const wick_gen_opts *o, int32_t extra_eos, wk_eval_fn eval, void *ctx, wick_gen **out);

/* Drives g to the end collecting ids (and text when text != NULL); both freed with wick_free. */
wick_status wk_gen_run_collect(wick_gen *g, int32_t **ids, int *n, char **text, wick_gen_stats *stats);
#endif
