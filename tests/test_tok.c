/*
 * test_tok.c — the tokenizer against golden data: the real Qwen3 and Llama 3
 * tokenizers (ids and decoded text from HF tokenizers, chat renderings from
 * transformers), the small SentencePiece/WordPiece fixtures, streaming decode,
 * round trips, the invalid-UTF-8 rule, assistant spans and error messages.
 */
#include <jansson.h>
#include <stdint.h>
#include <unistd.h>
#include "t.h"

static json_t *load_json(const char *path) {
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    CHECK(j != NULL, "%s: %s", path, e.text);
    return j;
}

static int ids_equal(const int32_t *a, int na, json_t *want) {
    if ((size_t)na != json_array_size(want)) return 0;
    for (int i = 0; i < na; i++)
        if (a[i] != json_integer_value(json_array_get(want, (size_t)i))) return 0;
    return 1;
}

static int32_t *json_ids(json_t *arr, int *n) {
    *n = (int)json_array_size(arr);
    int32_t *ids = malloc(((size_t)*n + 1) * sizeof *ids);
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(arr, (size_t)i));
    return ids;
}

/* Streams ids through a detokenizer; returns the concatenated pieces (malloc'd). */
static char *stream_decode(const wick_tokenizer *t, const int32_t *ids, int n) {
    wick_detok *d = wick_detok_new(t);
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    for (int i = 0; i <= n; i++) {
        const char *p;
        size_t pl;
        wick_status st = i < n ? wick_detok_push(d, ids[i], &p, &pl) : wick_detok_flush(d, &p, &pl);
        CHECK(st == WICK_OK, "detok: %s", wick_last_error());
        if (st) break;
        /* every piece is whole UTF-8: no continuation byte at its start, no cut lead at its end */
        if (pl) CHECK(((uint8_t)p[0] & 0xC0) != 0x80, "piece %d starts inside a character", i);
        while (len + pl + 1 > cap) cap *= 2, out = realloc(out, cap);
        memcpy(out + len, p, pl);
        len += pl;
    }
    out[len] = 0;
    wick_detok_free(d);
    return out;
}

static void golden_cases(const wick_tokenizer *t, const char *golden) {
    json_t *g = load_json(golden), *c;
    size_t i;
    json_array_foreach(json_object_get(g, "cases"), i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        const char *dec = json_string_value(json_object_get(c, "decoded"));
        int32_t *ids;
        int n;
        CHECK_OK(wick_tokenize(t, text, strlen(text), 0, &ids, &n));
        CHECK(ids_equal(ids, n, json_object_get(c, "ids")), "%s case %zu (\"%.40s\"): ids differ", golden, i, text);
        char *out;
        size_t len;
        int wn;
        int32_t *want = json_ids(json_object_get(c, "ids"), &wn);
        CHECK_OK(wick_detokenize(t, want, wn, 0, &out, &len));
        CHECK(out && len == strlen(dec) && !strcmp(out, dec), "%s case %zu: decoded \"%s\" want \"%s\"", golden, i,
              out, dec);
        char *s = stream_decode(t, want, wn);
        CHECK(!strcmp(s, out), "%s case %zu: streamed \"%s\" != full \"%s\"", golden, i, s, out);
        free(s), free(want), wick_free(out), wick_free(ids);
    }
    json_decref(g);
}

static void chat_golden(const wick_tokenizer *t, const char *path) {
    json_t *g = load_json(path), *c;
    size_t i;
    json_array_foreach(g, i, c) {
        json_t *ms = json_object_get(c, "messages");
        int n = (int)json_array_size(ms);
        wick_chat_message m[16];
        for (int k = 0; k < n && k < 16; k++) {
            m[k].role = json_string_value(json_object_get(json_array_get(ms, (size_t)k), "role"));
            m[k].content = json_string_value(json_object_get(json_array_get(ms, (size_t)k), "content"));
        }
        char *out;
        size_t *spans;
        int ns;
        int gen = json_is_true(json_object_get(c, "add_generation_prompt"));
        CHECK_OK(wick_chat_render(t, m, n, gen, NULL, &out, &spans, &ns));
        const char *want = json_string_value(json_object_get(c, "rendered"));
        CHECK(out && !strcmp(out, want), "%s conversation %zu:\n got %s\nwant %s", path, i, out, want);
        int32_t *ids;
        int ni;
        CHECK_OK(wick_tokenize(t, out, strlen(out), 0, &ids, &ni));
        CHECK(ids_equal(ids, ni, json_object_get(c, "ids")), "%s conversation %zu: ids of the rendering differ", path, i);
        for (int k = 0, a = 0; k < n; k++) { /* each assistant span starts with its content */
            if (strcmp(m[k].role, "assistant")) continue;
            CHECK(a < ns && !strncmp(out + spans[2 * a], m[k].content, strlen(m[k].content)),
                  "conversation %zu: assistant span %d", i, a);
            a++;
        }
        wick_free(ids), wick_free(out), wick_free(spans);
    }
    json_decref(g);
}

static void test_real(const char *dir, const char *name, const char *eos) {
    char path[1024];
    wick_tokenizer *t = NULL;
    double t0 = 0;
    (void)t0;
    snprintf(path, sizeof path, "%s/%s", WICK_TEST_DIR "/golden", dir);
    CHECK_OK(wick_tokenizer_load(path, &t));
    if (!t) return;
    snprintf(path, sizeof path, "%s/%s/golden.json", WICK_TEST_DIR "/golden", dir);
    golden_cases(t, path);
    snprintf(path, sizeof path, "%s/%s/chat_golden.json", WICK_TEST_DIR "/golden", dir);
    chat_golden(t, path);
    const char *tn = wick_chat_template_name(t);
    CHECK(tn && !strcmp(tn, name), "%s: template recognised as %s, want %s", dir, tn ? tn : "(none)", name);
    CHECK(wick_tokenizer_eos(t) && !strcmp(wick_tokenizer_eos(t), eos), "%s: eos", dir);
    CHECK(wick_tokenizer_find(t, eos) > 0, "%s: find eos", dir);
    CHECK(wick_tokenizer_find(t, "no-such-token-xyz") == -1, "find absent");
    CHECK(wick_tokenizer_vocab_size(t) > 128000, "%s: vocab size %d", dir, wick_tokenizer_vocab_size(t));
    wick_tokenizer_free(t);
}

/* Mixed text: decode(encode(s)) == s for NFC input. */
static void test_roundtrip(void) {
    wick_tokenizer *t;
    CHECK_OK(wick_tokenizer_load(T_PATH("golden/tok_qwen/tokenizer.json"), &t));
    if (!t) return;
    const char *corpus[] = {"The quick brown fox — 速い茶色の狐 — 빠른 갈색 여우 🦊\n\tdef f(x):\n\t\treturn x ** 2\n",
                            "  leading and trailing  ", "emoji 👩‍👩‍👧 flags 🇫🇷🇩🇪 skin 👍🏽", "\r\n\r\n\u00a0\u3000",
                            "<|im_start|>user\nhi<|im_end|>", "Ünïcödé ñ ß ﬁ ½ Ⅻ", "a\x01b\x7f"};
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
        int32_t *ids;
        int n;
        char *out;
        CHECK_OK(wick_tokenize(t, corpus[i], strlen(corpus[i]), 0, &ids, &n));
        CHECK_OK(wick_detokenize(t, ids, n, 0, &out, NULL));
        CHECK(out && !strcmp(out, corpus[i]), "roundtrip %zu: \"%s\"", i, out);
        char *s = stream_decode(t, ids, n);
        CHECK(!strcmp(s, out), "stream %zu", i);
        free(s), wick_free(out), wick_free(ids);
    }
    /* NFC: a decomposed é encodes as the composed one */
    int32_t *a, *b;
    int na, nb;
    CHECK_OK(wick_tokenize(t, "e\xCC\x81", 3, 0, &a, &na));
    CHECK_OK(wick_tokenize(t, "\xC3\xA9", 2, 0, &b, &nb));
    CHECK(na == nb && !memcmp(a, b, (size_t)na * 4), "NFC");
    wick_free(a), wick_free(b);
    /* invalid UTF-8 -> U+FFFD per maximal subpart (documented rule) */
    const char bad[] = "ok\xff\xc3(\xe2\x82";
    CHECK_OK(wick_tokenize(t, bad, sizeof bad - 1, 0, &a, &na));
    char *out;
    CHECK_OK(wick_detokenize(t, a, na, 0, &out, NULL));
    CHECK(out && !strcmp(out, "ok\xEF\xBF\xBD\xEF\xBF\xBD(\xEF\xBF\xBD"), "invalid utf-8 -> U+FFFD: \"%s\"", out);
    wick_free(out), wick_free(a);
    /* specials: matched, or as text */
    CHECK_OK(wick_tokenize(t, "<|im_end|>", 10, 0, &a, &na));
    CHECK(na == 1 && a[0] == 151645, "special matched");
    wick_free(a);
    CHECK_OK(wick_tokenize(t, "<|im_end|>", 10, WICK_TOK_SPECIAL_AS_TEXT, &a, &na));
    CHECK(na > 1, "special as text gives %d ids", na);
    wick_free(a);
    /* skip_special and out-of-range ids */
    int32_t ids[] = {151644, 9707, 151645};
    CHECK_OK(wick_detokenize(t, ids, 3, 1, &out, NULL));
    CHECK(out && !strcmp(out, "Hello"), "skip special: \"%s\"", out);
    wick_free(out);
    int32_t badid[] = {9707, 99999999};
    CHECK_FAILS(wick_detokenize(t, badid, 2, 0, &out, NULL), "outside the vocabulary");
    /* streaming holds back a split character: U+13000 is three byte-level tokens */
    CHECK_OK(wick_tokenize(t, "\xF0\x93\x80\x80", 4, 0, &a, &na));
    CHECK(na >= 2, "character split into %d tokens", na);
    wick_detok *d = wick_detok_new(t);
    const char *p;
    size_t pl;
    CHECK_OK(wick_detok_push(d, a[0], &p, &pl));
    CHECK(pl == 0, "partial character emitted %zu bytes", pl);
    for (int i = 1; i < na; i++) CHECK_OK(wick_detok_push(d, a[i], &p, &pl));
    CHECK(pl == 4 && !memcmp(p, "\xF0\x93\x80\x80", 4), "character completed");
    wick_detok_free(d), wick_free(a);
    wick_tokenizer_free(t);
}

static void test_fixtures(void) {
    wick_tokenizer *t;
    int32_t *ids;
    int n;
    char *out;
    /* WordPiece: lowercase, accents, [CLS]/[SEP] on request, "##" joining */
    CHECK_OK(wick_tokenizer_load(T_PATH("golden/tok_fixtures/wordpiece.json"), &t));
    if (t) {
        CHECK_OK(wick_tokenize(t, "Hello naïve", strlen("Hello naïve"), WICK_TOK_ADD_SPECIAL, &ids, &n));
        CHECK(n >= 3 && ids[0] == wick_tokenizer_find(t, "[CLS]") && ids[n - 1] == wick_tokenizer_find(t, "[SEP]"),
              "wordpiece specials");
        CHECK_OK(wick_detokenize(t, ids, n, 1, &out, NULL));
        CHECK(out && !strcmp(out, "hello naive"), "wordpiece decode: \"%s\"", out);
        wick_free(out), wick_free(ids);
        wick_tokenizer_free(t);
    }
    /* SentencePiece BPE with byte fallback: an unseen character goes through <0xXX> tokens */
    CHECK_OK(wick_tokenizer_load(T_PATH("golden/tok_fixtures/sp_bpe.json"), &t));
    if (t) {
        const char *s = "the fox \xE2\x98\x83 jumps";
        CHECK_OK(wick_tokenize(t, s, strlen(s), WICK_TOK_ADD_SPECIAL, &ids, &n));
        CHECK(n > 3 && ids[0] == 1, "bos added");
        int fb = 0;
        for (int i = 0; i < n; i++) fb += ids[i] == wick_tokenizer_find(t, "<0xE2>");
        CHECK(fb == 1, "byte fallback for the snowman");
        CHECK_OK(wick_detokenize(t, ids + 1, n - 1, 0, &out, NULL)); /* byte tokens are special here */
        CHECK(out && !strcmp(out, s), "sp decode: \"%s\"", out);
        char *st = stream_decode(t, ids + 1, n - 1);
        CHECK(!strcmp(st, s), "sp stream: \"%s\"", st);
        free(st), wick_free(out), wick_free(ids);
        wick_tokenizer_free(t);
    }
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_errors(void) {
    wick_tokenizer *t = NULL;
    char dir[] = "/tmp/wick_tok_XXXXXX", path[256];
    if (!mkdtemp(dir)) return;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_file(path, "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}");
    CHECK_FAILS(wick_tokenizer_load(path, &t), "model.type \"Unigram\"");
    write_file(path, "{\"normalizer\": {\"type\": \"Precompiled\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}, "
                     "\"merges\": []}}");
    CHECK_FAILS(wick_tokenizer_load(path, &t), "normalizer.type \"Precompiled\"");
    write_file(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}");
    CHECK_FAILS(wick_tokenizer_load(path, &t), "model.merges[0]");
    write_file(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"c\": 3, \"abc\": 4}, "
                     "\"merges\": [[\"a\", \"b\"], \"ab c\"]}}");
    CHECK_OK(wick_tokenizer_load(path, &t));
    if (t) {
        int32_t *ids;
        int n;
        CHECK_OK(wick_tokenize(t, "abcab", 5, 0, &ids, &n));
        CHECK(n == 2 && ids[0] == 4 && ids[1] == 2, "both merge formats");
        wick_free(ids);
        char *out;
        size_t *sp;
        int ns;
        wick_chat_message m = {"user", "hi"};
        CHECK_FAILS(wick_chat_render(t, &m, 1, 1, NULL, &out, &sp, &ns), "--chat-template");
        CHECK_OK(wick_chat_render(t, &m, 1, 1, "chatml", &out, &sp, &ns));
        CHECK(out && !strcmp(out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"), "chatml");
        wick_free(out);
        CHECK_FAILS(wick_chat_render(t, &m, 1, 1, "nonesuch", &out, &sp, &ns), "--chat-template");
        wick_tokenizer_free(t);
        t = NULL;
    }
    write_file(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, ");
    CHECK_FAILS(wick_tokenizer_load(path, &t), "malformed JSON");
    CHECK_FAILS(wick_tokenizer_load("/nonexistent/tokenizer.json", &t), "/nonexistent");
    unlink(path);
    rmdir(dir);
}

/* Assistant spans for training: the reply and its end-of-turn marker. */
static void test_spans(void) {
    wick_tokenizer *t;
    CHECK_OK(wick_tokenizer_load(T_PATH("golden/tok_llama3"), &t));
    if (!t) return;
    wick_chat_message m[] = {{"user", "Hi"}, {"assistant", " Hello. "}, {"user", "Bye"}, {"assistant", "Ciao"}};
    char *out;
    size_t *sp;
    int ns;
    CHECK_OK(wick_chat_render(t, m, 4, 0, "llama3", &out, &sp, &ns));
    CHECK(ns == 2, "two spans");
    if (ns == 2) {
        CHECK(!strncmp(out + sp[0], "Hello.<|eot_id|>", sp[1] - sp[0]) && sp[1] - sp[0] == 16, "span 0");
        CHECK(!strncmp(out + sp[2], "Ciao<|eot_id|>", sp[3] - sp[2]) && sp[3] == strlen(out), "span 1");
    }
    wick_free(out), wick_free(sp);
    /* Llama 3.1 by name: dated system header, trimmed system message */
    wick_chat_message m2[] = {{"system", " Be brief. "}, {"user", "Hi"}};
    CHECK_OK(wick_chat_render(t, m2, 2, 1, "llama3.1", &out, NULL, NULL));
    CHECK(out && !strcmp(out, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
                              "December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|><|start_header_id|>user"
                              "<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
          "llama3.1: %s", out);
    wick_free(out);
    wick_tokenizer_free(t);
}

/* Random id sequences (specials, split characters, byte tokens): streamed == full decode. */
static void test_stream_random(const char *path) {
    wick_tokenizer *t;
    CHECK_OK(wick_tokenizer_load(path, &t));
    if (!t) return;
    uint64_t s = 12345;
    int V = wick_tokenizer_vocab_size(t), bad = 0;
    for (int rep = 0; rep < 150; rep++) {
        int32_t ids[48];
        int n = 1 + rep % 48;
        for (int i = 0; i < n; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            ids[i] = (int32_t)((s >> 33) % (uint64_t)V);
            if (wick_tokenizer_token(t, ids[i], NULL) == NULL) ids[i] = 0;
        }
        char *full;
        CHECK_OK(wick_detokenize(t, ids, n, 0, &full, NULL));
        char *st = stream_decode(t, ids, n);
        if (full && strcmp(full, st)) {
            if (!bad) { /* show the first difference */
                fprintf(stderr, "full [%s]\nstrm [%s]\nids", full, st);
                for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
                fprintf(stderr, "\n");
            }
            bad++;
        }
        free(st), wick_free(full);
    }
    CHECK(bad == 0, "%s: %d random sequences stream differently from the full decode", path, bad);
    wick_tokenizer_free(t);
}

int main(void) {
    test_real("tok_qwen", "qwen3", "<|im_end|>");
    test_real("tok_llama3", "llama3", "<|end_of_text|>");
    test_roundtrip();
    test_fixtures();
    test_errors();
    test_spans();
    test_stream_random(T_PATH("golden/tok_qwen/tokenizer.json"));
    test_stream_random(T_PATH("golden/tok_fixtures/sp_bpe.json"));
    test_stream_random(T_PATH("golden/tok_fixtures/sp_meta.json"));
    test_stream_random(T_PATH("golden/tok_fixtures/wordpiece.json"));
    return t_summary();
}
