/*
 * test_gen_text.c — generation with text: a random qwen2 model (vocab 259) with the
 * byte-level tokenizer wick writes (ids 0..255 = bytes, 256.. specials, ChatML).
 * Scripted ids through the real detokenizer: emoji/CJK split over byte tokens are
 * never split in pieces, stop strings across tokens are not emitted. The real model:
 * pieces are valid UTF-8 and concatenate to wick_detokenize of the ids; a stop string
 * taken from an unstopped run cuts the text exactly before it; text and chat prompts.
 */
#include "t.h"
#include "infer/infer.h"

#include <unistd.h>

static char g_dir[64];

static int make_model(void) {
    strcpy(g_dir, "/tmp/wick_gen_text_XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    char path[128];
    snprintf(path, sizeof path, "%s/cfg.json", g_dir);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fputs("{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\",\"vocab_size\":259,\"hidden_size\":32,"
          "\"intermediate_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":2,\"num_key_value_heads\":1,"
          "\"max_position_embeddings\":512,\"rope_theta\":10000.0,\"rms_norm_eps\":1e-06,\"tie_word_embeddings\":true,"
          "\"hidden_act\":\"silu\",\"eos_token_id\":258}",
          f);
    fclose(f);
    if (wick_init_model(NULL, NULL, path, WICK_DT_F32, 7, g_dir) || wick_write_byte_tokenizer(g_dir)) {
        fprintf(stderr, "make_model: %s\n", wick_last_error());
        return 1;
    }
    return 0;
}

static int valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t L = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!L || i + L > n) return 0;
        for (size_t k = 1; k < L; k++)
            if (((unsigned char)s[i + k] & 0xC0) != 0x80) return 0;
        i += L;
    }
    return 1;
}

typedef struct {
    int32_t ids[128];
    char text[2048], pieces[128][16];
    int n, valid;
} rec;

static int on_token(const wick_token *t, void *user) {
    rec *r = user;
    r->valid &= valid_utf8(t->piece, t->piece_len);
    r->ids[r->n] = t->id;
    snprintf(r->pieces[r->n++], sizeof r->pieces[0], "%s", t->piece);
    strncat(r->text, t->piece, sizeof r->text - strlen(r->text) - 1);
    return 0;
}

/* ---- scripted ids through the real detokenizer */
static wick_status dpush(void *d, int32_t id, const char **p, size_t *n) { return wick_detok_push(d, id, p, n); }
static wick_status dflush(void *d, const char **p, size_t *n) { return wick_detok_flush(d, p, n); }
static void dfree(void *d) { wick_detok_free(d); }

typedef struct {
    const char *bytes;
    int step;
} script;

static wick_status script_eval(void *ctx, const int32_t *ids, int n, float *logits) {
    script *s = ctx;
    for (int v = 0; v < 259; v++) logits[v] = 0;
    unsigned char b = (unsigned char)s->bytes[s->step];
    logits[b ? b : 258] = 10; /* the string's bytes, then <|im_end|> */
    if (b) s->step++;
    return WICK_OK;
}

static void scripted(const wick_tokenizer *tok) {
    struct {
        const char *bytes, *stop, *want_text;
        wick_stop_reason why;
    } cases[] = {
        {"a\xF0\x9F\x98\x80\xE4\xB8\xAD" "b", NULL, "a\xF0\x9F\x98\x80\xE4\xB8\xAD" "b", WICK_STOP_EOS},
        {"Hello STOP world", "STOP", "Hello ", WICK_STOP_STRING},
        {"x\xE4\xB8\xAD\xE6\x96\x87y", "\xE4\xB8\xAD\xE6\x96\x87", "x", WICK_STOP_STRING},
        {"ST ST STOP", "STOP", "ST ST ", WICK_STOP_STRING},
    };
    for (size_t c = 0; c < WK_ARRAY_LEN(cases); c++) {
        script s = {cases[c].bytes, 0};
        wk_lm lm = {script_eval, &s, 259, 0, 512, 1, {258}, NULL};
        wick_detok *d = wick_detok_new(tok);
        wk_detok_if dt = {dpush, dflush, dfree, d};
        wick_gen_opts o = wick_gen_opts_default();
        o.sampling.temperature = 0, o.max_tokens = 64;
        const char *stops[1] = {cases[c].stop};
        o.stop = stops, o.n_stop = cases[c].stop ? 1 : 0;
        int32_t prompt[1] = {'>'};
        wick_gen *g = NULL;
        rec r = {.valid = 1};
        wick_gen_stats st;
        CHECK_OK(wk_gen_start_src(&lm, &dt, prompt, 1, &o, &g));
        CHECK_OK(wick_gen_run(g, on_token, &r, &st));
        CHECK(!strcmp(r.text, cases[c].want_text) && st.stop == cases[c].why && r.valid, "case %zu: \"%s\" stop %s",
              c, r.text, wick_stop_reason_str(st.stop));
        if (c == 0) /* every piece is a whole character: nothing until the character completes */
            CHECK(!strcmp(r.pieces[0], "a") && !strcmp(r.pieces[1], "") && !strcmp(r.pieces[3], "") &&
                      !strcmp(r.pieces[4], "\xF0\x9F\x98\x80") && !strcmp(r.pieces[6], "") &&
                      !strcmp(r.pieces[7], "\xE4\xB8\xAD") && !strcmp(r.pieces[8], "b"),
                  "pieces split a character");
        wick_gen_free(g);
    }
}

static void real_model(wick_model *m, const wick_tokenizer *tok) {
    wick_session *s = NULL;
    CHECK_OK(wick_session_new(m, NULL, &s));
    if (!s) return;
    wick_gen_opts o = wick_gen_opts_default();
    o.sampling.temperature = 0, o.max_tokens = 40, o.ignore_eos = 1, o.tokenizer = tok;
    rec a = {.valid = 1};
    wick_gen *g = NULL;
    CHECK_OK(wick_gen_start_text(m, s, "The weather today", 0, &o, &g));
    CHECK_OK(wick_gen_run(g, on_token, &a, NULL));
    wick_gen_free(g);
    char *whole = NULL;
    CHECK_OK(wick_detokenize(tok, a.ids, a.n, 0, &whole, NULL));
    CHECK(a.valid && whole && !strcmp(whole, a.text), "pieces != detokenize(ids): \"%s\" vs \"%s\"", a.text,
          whole ? whole : "");
    wick_free(whole);
    /* a stop string from the middle of that text (it spans byte tokens) cuts right before it */
    size_t L = strlen(a.text), at = 3;
    while (at < L && ((unsigned char)a.text[at] & 0xC0) == 0x80) at++;
    size_t end = at + 1;
    while (end < L && ((unsigned char)a.text[end] & 0xC0) == 0x80) end++;
    end++;
    while (end < L && ((unsigned char)a.text[end] & 0xC0) == 0x80) end++;
    char stop[32] = {0};
    memcpy(stop, a.text + at, end - at < 31 ? end - at : 31);
    const char *first = strstr(a.text, stop);
    const char *stops[1] = {stop};
    o.stop = stops, o.n_stop = 1;
    rec b = {.valid = 1};
    wick_session_reset(s);
    wick_gen_stats st;
    CHECK_OK(wick_gen_start_text(m, s, "The weather today", 0, &o, &g));
    CHECK_OK(wick_gen_run(g, on_token, &b, &st));
    wick_gen_free(g);
    CHECK(L > 6 && first && strlen(b.text) == (size_t)(first - a.text) && !strncmp(b.text, a.text, strlen(b.text)) &&
              st.stop == WICK_STOP_STRING,
          "stop \"%s\": got \"%s\" from \"%s\"", stop, b.text, a.text);
    /* chat: the prompt is the rendered template's ids */
    wick_chat_message msgs[2] = {{"system", "Be brief."}, {"user", "Hi"}};
    char *rendered = NULL;
    int32_t *ids = NULL;
    int n = 0;
    CHECK_OK(wick_chat_render(tok, msgs, 2, 1, NULL, &rendered, NULL, NULL));
    CHECK_OK(wick_tokenize(tok, rendered, strlen(rendered), 0, &ids, &n));
    o.n_stop = 0, o.ignore_eos = 0, o.max_tokens = 5;
    wick_session_reset(s);
    CHECK_OK(wick_gen_start_chat(m, s, msgs, 2, NULL, &o, &g));
    CHECK_OK(wick_gen_run(g, NULL, NULL, &st));
    CHECK(st.n_prompt == n && n > 10 && ids[n - 1] == '\n' && wick_session_pos(s) == n + st.n_generated - 1,
          "chat prompt: %d ids, want %d", st.n_prompt, n);
    wick_gen_free(g);
    wick_free(rendered), wick_free(ids);
    wick_session_free(s);
}

int main(void) {
    wick_set_threads(1);
    if (make_model()) {
        CHECK(0, "could not write the test model: %s", wick_last_error());
        return t_summary();
    }
    wick_tokenizer *tok = NULL;
    wick_model *m = NULL;
    CHECK_OK(wick_tokenizer_load(g_dir, &tok));
    CHECK_OK(wick_model_load(g_dir, NULL, &m));
    if (tok) scripted(tok);
    if (tok && m) real_model(m, tok);
    wick_model_free(m);
    wick_tokenizer_free(tok);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    CHECK(system(cmd) == 0, "could not remove %s", g_dir);
    return t_summary();
}
