/*
 * test_generate.c — the generator on a scripted fake model and a table detokenizer
 * (no weights needed): prefill/decode call pattern, streaming == non-streaming ==
 * pull iterator, stop strings across token boundaries (stop text never emitted),
 * emoji/CJK split over tokens never split in pieces, EOS / ignore_eos, max tokens,
 * context limit, cancellation, logprobs and top-N alternatives, statistics, greedy
 * steps through a pick source.
 */
#include "t.h"
#include "infer/infer.h"

enum { V = 16 };
static const char *VOCAB[V] = {"<eos>", "Hello", " wor", "ld", "\xF0\x9F", "\x98\x80", "\xE4\xB8", "\xAD",
                               "ST",    "OP",    "!",    " ",  "a",        "b",        "c",        "d"};

/* ---- fake model: the k-th step puts the highest logit on script[k], with a spread */
typedef struct {
    const int32_t *script;
    int n_script, steps, calls, bad_calls;
    int32_t got[64]; /* ids the decode calls received */
    int n_got;
    int fail_at;     /* > 0: the step with this index fails */
} fake_lm;

static wick_status fake_eval(void *ctx, const int32_t *ids, int n, float *logits) {
    fake_lm *f = ctx;
    if (f->fail_at > 0 && f->steps == f->fail_at) return wk_err(WICK_EIO, "fake model: step %d failed", f->steps);
    if (f->calls > 0 && n != 1) f->bad_calls++;
    if (f->calls > 0 && f->n_got < 64) f->got[f->n_got++] = ids[0];
    f->calls++;
    int want = f->script[f->steps < f->n_script ? f->steps : f->n_script - 1];
    for (int v = 0; v < V; v++) logits[v] = 0.1f * (float)((v * 7 + f->steps * 3) % 11) - 1.0f;
    logits[want] = 4.0f;
    f->steps++;
    return WICK_OK;
}

/* ---- table detokenizer with UTF-8 completion */
typedef struct {
    char pend[64], out[128];
    size_t n_pend;
} table_dt;

static size_t utf8_complete_prefix(const char *s, size_t n) {
    size_t i = 0, ok = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t L = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (i + L > n) break;
        i += L, ok = i;
    }
    return ok;
}

static wick_status dt_emit(table_dt *d, size_t k, const char **piece, size_t *len) {
    memcpy(d->out, d->pend, k);
    d->out[k] = 0;
    memmove(d->pend, d->pend + k, d->n_pend - k);
    d->n_pend -= k;
    *piece = d->out, *len = k;
    return WICK_OK;
}

static wick_status dt_push(void *ctx, int32_t id, const char **piece, size_t *len) {
    table_dt *d = ctx;
    size_t L = strlen(VOCAB[id]);
    memcpy(d->pend + d->n_pend, VOCAB[id], L);
    d->n_pend += L;
    return dt_emit(d, utf8_complete_prefix(d->pend, d->n_pend), piece, len);
}

static wick_status dt_flush(void *ctx, const char **piece, size_t *len) {
    table_dt *d = ctx;
    return dt_emit(d, d->n_pend, piece, len);
}

static int valid_utf8(const char *s, size_t n) {
    return utf8_complete_prefix(s, n) == n;
}

/* ---- a run: start a generation on a fresh fake model */
typedef struct {
    fake_lm lm;
    table_dt dt;
    wk_lm src;
    wk_detok_if dif;
} rig;

static wick_gen *start(rig *r, const int32_t *script, int n_script, int capacity, const wick_gen_opts *o,
                       int with_dt) {
    memset(r, 0, sizeof *r);
    r->lm.script = script, r->lm.n_script = n_script;
    r->src = (wk_lm){fake_eval, &r->lm, V, 0, capacity, 1, {0}, NULL};
    r->dif = (wk_detok_if){dt_push, dt_flush, NULL, &r->dt};
    static const int32_t prompt[3] = {12, 13, 14};
    wick_gen *g = NULL;
    CHECK_OK(wk_gen_start_src(&r->src, with_dt ? &r->dif : NULL, prompt, 3, o, &g));
    return g;
}

typedef struct {
    int32_t ids[64];
    char text[512], pieces[64][32];
    int n, stop_at, all_valid;
    float logprob[64], prob[64];
    wick_top_logprob top0[64];
} seen;

static int on_token(const wick_token *t, void *user) {
    seen *s = user;
    if (s->n == 0) s->all_valid = 1;
    s->all_valid &= valid_utf8(t->piece, t->piece_len) && t->piece[t->piece_len] == 0 && t->index == s->n &&
                    t->pos == 3 + s->n;
    s->ids[s->n] = t->id;
    s->logprob[s->n] = t->logprob, s->prob[s->n] = t->prob;
    if (t->n_top) s->top0[s->n] = t->top[0];
    snprintf(s->pieces[s->n], sizeof s->pieces[0], "%s", t->piece);
    strncat(s->text, t->piece, sizeof s->text - strlen(s->text) - 1);
    s->n++;
    return s->stop_at && s->n >= s->stop_at;
}

static void run_text(const int32_t *script, int n_script, const char *stop, int max_tokens, seen *out,
                     wick_gen_stats *st) {
    rig r;
    wick_gen_opts o = wick_gen_opts_default();
    o.sampling.temperature = 0;
    o.max_tokens = max_tokens;
    const char *stops[1] = {stop};
    o.stop = stops, o.n_stop = stop ? 1 : 0;
    memset(out, 0, sizeof *out);
    wick_gen *g = start(&r, script, n_script, 100, &o, 1);
    CHECK_OK(wick_gen_run(g, on_token, out, st));
    int fed = r.lm.bad_calls == 0 && r.lm.n_got == out->n - 1;
    for (int i = 0; fed && i < r.lm.n_got; i++) fed = r.lm.got[i] == out->ids[i];
    CHECK(fed, "decode steps did not feed back the sampled ids one by one");
    wick_gen_free(g);
}

static void test_stop_strings(void) {
    const int32_t s1[] = {1, 2, 3, 8, 9, 10, 12, 13};
    seen o;
    wick_gen_stats st;
    run_text(s1, 8, "STOP", 20, &o, &st);
    CHECK(!strcmp(o.text, "Hello world"), "text \"%s\"", o.text);
    CHECK(st.stop == WICK_STOP_STRING && o.n == 5 && o.ids[4] == 9, "stop %d after %d ids", st.stop, o.n);
    CHECK(!strcmp(o.pieces[3], "") && !strcmp(o.pieces[4], ""), "held text leaked: \"%s\" \"%s\"", o.pieces[3],
          o.pieces[4]);
    run_text(s1, 8, "orl", 20, &o, &st); /* spans " wor" + "ld" */
    CHECK(!strcmp(o.text, "Hello w") && st.stop == WICK_STOP_STRING && o.n == 3, "text \"%s\", %d ids", o.text, o.n);
    run_text(s1, 8, "STX", 8, &o, &st); /* a prefix that does not complete is released later */
    CHECK(!strcmp(o.pieces[3], "") && !strcmp(o.pieces[4], "STOP"), "pieces \"%s\" \"%s\"", o.pieces[3], o.pieces[4]);
    CHECK(!strcmp(o.text, "Hello worldSTOP!ab") && st.stop == WICK_STOP_MAX_TOKENS, "text \"%s\"", o.text);
    run_text(s1, 8, "ST", 4, &o, &st); /* ends on max tokens exactly at the stop string */
    CHECK(!strcmp(o.text, "Hello world") && st.stop == WICK_STOP_STRING, "text \"%s\" stop %d", o.text, st.stop);
    run_text(s1, 8, "S", 4, &o, &st);
    CHECK(!strcmp(o.text, "Hello world") && st.stop == WICK_STOP_STRING, "text \"%s\"", o.text);
    run_text(s1, 8, "ldS", 3, &o, &st); /* held prefix "ld" released at max tokens */
    CHECK(!strcmp(o.text, "Hello world") && !strcmp(o.pieces[2], "ld") && st.stop == WICK_STOP_MAX_TOKENS,
          "text \"%s\"", o.text);
}

static void test_utf8_and_eos(void) {
    const int32_t s2[] = {4, 5, 6, 7, 1, 0, 12};
    seen o;
    wick_gen_stats st;
    run_text(s2, 7, "\xE4\xB8\xAD", 20, &o, &st); /* stop on a CJK character split over two tokens */
    CHECK(!strcmp(o.text, "\xF0\x9F\x98\x80") && o.all_valid && st.stop == WICK_STOP_STRING, "text \"%s\"", o.text);
    run_text(s2, 7, NULL, 20, &o, &st);
    CHECK(o.all_valid, "a piece was not complete UTF-8");
    CHECK(!strcmp(o.pieces[0], "") && !strcmp(o.pieces[1], "\xF0\x9F\x98\x80") && !strcmp(o.pieces[2], "") &&
              !strcmp(o.pieces[3], "\xE4\xB8\xAD"),
          "emoji/CJK pieces split");
    CHECK(st.stop == WICK_STOP_EOS && o.n == 6 && o.ids[5] == 0 && !strcmp(o.pieces[5], ""),
          "EOS: stop %d, %d ids, last piece \"%s\"", st.stop, o.n, o.pieces[5]);
    CHECK(!strcmp(o.text, "\xF0\x9F\x98\x80\xE4\xB8\xADHello"), "text \"%s\"", o.text);
    /* an unfinished character at the end is flushed with the last token */
    run_text(s2, 7, NULL, 1, &o, &st);
    CHECK(o.n == 1 && o.pieces[0][0] == '\xF0' && st.stop == WICK_STOP_MAX_TOKENS, "flush at the end");
    /* ignore_eos keeps going */
    rig r;
    wick_gen_opts opt = wick_gen_opts_default();
    opt.sampling.temperature = 0, opt.ignore_eos = 1, opt.max_tokens = 9;
    wick_gen *g = start(&r, s2, 7, 100, &opt, 1);
    memset(&o, 0, sizeof o);
    CHECK_OK(wick_gen_run(g, on_token, &o, &st));
    CHECK(o.n == 9 && o.ids[5] == 0 && st.stop == WICK_STOP_MAX_TOKENS, "ignore_eos: %d ids, stop %d", o.n, st.stop);
    wick_gen_free(g);
}

/* streaming, non-streaming and the pull iterator give the same ids, text and logprobs */
static void test_same_tokens(void) {
    const int32_t s3[] = {1, 2, 3, 4, 5, 10, 11, 12, 13, 6, 7, 8, 9, 1, 2, 3};
    wick_gen_opts o = wick_gen_opts_default();
    o.sampling.temperature = 1.5f, o.sampling.top_p = 0.95f, o.sampling.seed = 99;
    o.sampling.repetition_penalty = 1.2f, o.max_tokens = 16, o.top_logprobs = 3;
    rig r;
    seen a = {0};
    wick_gen *g = start(&r, s3, 16, 100, &o, 1);
    CHECK_OK(wick_gen_run(g, on_token, &a, NULL));
    wick_gen_free(g);
    int32_t *ids = NULL;
    int n = 0;
    char *text = NULL;
    g = start(&r, s3, 16, 100, &o, 1);
    CHECK_OK(wk_gen_run_collect(g, &ids, &n, &text, NULL));
    wick_gen_free(g);
    CHECK(n == a.n && ids && !memcmp(ids, a.ids, n * sizeof *ids), "non-streaming ids differ");
    CHECK(text && !strcmp(text, a.text), "non-streaming text differs");
    g = start(&r, s3, 16, 100, &o, 1);
    int k = 0, done = 0, same = 1;
    wick_token t;
    while (!wick_gen_next(g, &t, &done) && !done) same &= k < a.n && t.id == a.ids[k] && t.logprob == a.logprob[k], k++;
    CHECK(same && k == a.n, "pull iterator differs (%d of %d)", k, a.n);
    CHECK(wick_gen_next(g, &t, &done) == WICK_OK && done, "iterator does not stay done");
    wick_gen_free(g);
    int differs = 0; /* a sampled run: ids are not all the script's */
    for (int i = 0; i < a.n; i++) differs += a.ids[i] != s3[i];
    CHECK(differs > 0, "temperature 1.5 sampled exactly the greedy path");
    wick_free(ids), wick_free(text);
}

/* logprob/top-N are those of the raw logits (before the repetition penalty) */
static void test_logprobs(void) {
    const int32_t s4[] = {12, 3, 3};
    wick_gen_opts o = wick_gen_opts_default();
    o.sampling.temperature = 0, o.sampling.repetition_penalty = 1.5f, o.max_tokens = 3, o.top_logprobs = 2;
    rig r;
    seen a = {0};
    wick_gen *g = start(&r, s4, 3, 100, &o, 0);
    CHECK_OK(wick_gen_run(g, on_token, &a, NULL));
    wick_gen_free(g);
    float l[V];
    fake_lm f = {s4, 3, 0, 0, 0, {0}, 0, 0};
    fake_eval(&f, s4, 1, l);
    double z = 0;
    for (int v = 0; v < V; v++) z += exp((double)l[v]);
    /* step 0: 12 is in the prompt, 4/1.5 = 2.67 still wins; raw logprob uses 4.0 */
    CHECK(a.ids[0] == 12 && fabs(a.logprob[0] - (4.0 - log(z))) < 1e-5, "logprob %g want %g", (double)a.logprob[0],
          4.0 - log(z));
    CHECK(a.top0[0].id == 12 && fabsf(a.top0[0].logprob - a.logprob[0]) < 1e-6f && a.prob[0] == 1.0f, "top-1");
    CHECK(!strcmp(a.text, ""), "text without a detokenizer");
}

/* ---- a device-style pick: the fake model's logits reduced to (argmax, its log-probability) */
static int pick_calls;
static wick_status fake_pick(void *ctx, const int32_t *ids, int n, int32_t *id, float *logprob) {
    float l[V];
    wick_status st = fake_eval(ctx, ids, n, l);
    if (st) return st;
    int best = 0;
    for (int v = 1; v < V; v++)
        if (l[v] > l[best]) best = v;
    double z = 0;
    for (int v = 0; v < V; v++) z += exp((double)l[v] - l[best]);
    pick_calls++;
    *id = best, *logprob = (float)-log(z);
    return WICK_OK;
}

/* Greedy steps go through the source's pick when nothing else needs the logits (same ids,
 * logprobs and text as through eval); sampling, penalties or top logprobs keep eval. */
static void test_pick(void) {
    const int32_t s6[] = {1, 2, 3, 10, 12, 0};
    for (int variant = 0; variant < 4; variant++) {
        wick_gen_opts o = wick_gen_opts_default();
        o.sampling.temperature = 0, o.max_tokens = 8;
        if (variant == 1) o.top_logprobs = 2;
        if (variant == 2) o.sampling.repetition_penalty = 1.3f;
        if (variant == 3) o.sampling.temperature = 0.7f, o.sampling.top_k = 1;
        seen a = {0}, b = {0};
        rig r;
        wick_gen *g = start(&r, s6, 6, 100, &o, 1);
        CHECK_OK(wick_gen_run(g, on_token, &a, NULL));
        wick_gen_free(g);
        memset(&r, 0, sizeof r);
        r.lm.script = s6, r.lm.n_script = 6;
        r.src = (wk_lm){fake_eval, &r.lm, V, 0, 100, 1, {0}, fake_pick};
        r.dif = (wk_detok_if){dt_push, dt_flush, NULL, &r.dt};
        static const int32_t prompt[3] = {12, 13, 14};
        pick_calls = 0;
        CHECK_OK(wk_gen_start_src(&r.src, &r.dif, prompt, 3, &o, &g));
        CHECK_OK(wick_gen_run(g, on_token, &b, NULL));
        wick_gen_free(g);
        CHECK(variant == 0 ? pick_calls == b.n && b.n >= 5 : pick_calls == 0, "variant %d: %d picks for %d ids", variant,
              pick_calls, b.n);
        CHECK(a.n == b.n && !memcmp(a.ids, b.ids, sizeof(int32_t) * (size_t)a.n) && !strcmp(a.text, b.text),
              "variant %d: pick and eval agree (%d / %d ids, '%s' / '%s')", variant, a.n, b.n, a.text, b.text);
        for (int i = 0; i < a.n && i < b.n; i++)
            CHECK(fabsf(a.logprob[i] - b.logprob[i]) < 1e-5f && a.prob[i] == b.prob[i] && b.prob[i] == 1.0f,
                  "variant %d token %d: logprob %g / %g", variant, i, (double)a.logprob[i], (double)b.logprob[i]);
        CHECK(r.lm.bad_calls == 0, "one id per decode step");
    }
}

static void test_limits(void) {
    const int32_t s5[] = {12, 13, 14, 15};
    wick_gen_opts o = wick_gen_opts_default();
    o.sampling.temperature = 0;
    rig r;
    seen a = {0};
    wick_gen_stats st;
    wick_gen *g = start(&r, s5, 4, 6, &o, 1); /* 3 prompt ids + 3 generated fill 6 positions */
    CHECK_OK(wick_gen_run(g, on_token, &a, &st));
    CHECK(a.n == 3 && st.stop == WICK_STOP_CONTEXT, "context: %d ids, stop %s", a.n, wick_stop_reason_str(st.stop));
    wick_gen_free(g);
    memset(&a, 0, sizeof a);
    a.stop_at = 2;
    g = start(&r, s5, 4, 100, &o, 1);
    CHECK_FAILS(wick_gen_run(g, on_token, &a, &st), "cancelled by the callback after 2 tokens");
    CHECK(a.n == 2 && st.stop == WICK_STOP_CANCELLED && st.n_generated == 2, "cancel: %d ids", a.n);
    CHECK(st.ttft_ms > 0 && st.total_ms >= st.ttft_ms && st.n_prompt == 3, "stats");
    wick_gen_free(g);
    /* a failing step: its status comes back, the generation ends with reason "error" */
    g = start(&r, s5, 4, 100, &o, 1);
    r.lm.fail_at = 2;
    memset(&a, 0, sizeof a);
    CHECK_FAILS(wick_gen_run(g, on_token, &a, &st), "model step at position 4: fake model: step 2 failed");
    wick_token t;
    int done = 0;
    CHECK(a.n == 2 && st.stop == WICK_STOP_ERROR && !wick_gen_next(g, &t, &done) && done, "error stop: %d ids, %s",
          a.n, wick_stop_reason_str(st.stop));
    wick_gen_free(g);
    fake_lm f = {s5, 4, 0, 0, 0, {0}, 0, 0};
    wk_lm src = {fake_eval, &f, V, 0, 3, 0, {0}, NULL};
    int32_t prompt[3] = {1, 2, 3}, bad[2] = {1, 16};
    CHECK_FAILS(wk_gen_start_src(&src, NULL, prompt, 3, &o, &g), "leaves no room");
    src.capacity = 100;
    CHECK_FAILS(wk_gen_start_src(&src, NULL, bad, 2, &o, &g), "prompt id 16 at index 1");
    const char *stops[1] = {"x"};
    o.stop = stops, o.n_stop = 1;
    CHECK_FAILS(wk_gen_start_src(&src, NULL, prompt, 3, &o, &g), "need a tokenizer");
    o.n_stop = 0, o.max_tokens = 0;
    CHECK_FAILS(wk_gen_start_src(&src, NULL, prompt, 3, &o, &g), "max_tokens");
}

int main(void) {
    test_stop_strings();
    test_utf8_and_eos();
    test_same_tokens();
    test_logprobs();
    test_pick();
    test_limits();
    return t_summary();
}
