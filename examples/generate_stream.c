/*
 * generate_stream.c — text generation with streaming, using only wick.h: a callback
 * prints each UTF-8-complete piece as it is produced; then the same prompt through
 * the pull iterator, printing ids with their logprobs.
 *
 * usage: example_generate_stream MODEL_DIR "prompt text" [max_tokens]
 *        (MODEL_DIR needs a tokenizer.json)
 */
#include <stdio.h>
#include <stdlib.h>
#include "wick.h"

static int print_piece(const wick_token *t, void *user) {
    fwrite(t->piece, 1, t->piece_len, stdout);
    fflush(stdout);
    return 0; /* nonzero would stop the generation */
}

static int fail(const char *what) {
    fprintf(stderr, "%s: %s\n", what, wick_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR \"prompt text\" [max_tokens]\n", argv[0]);
        return 2;
    }
    wick_model *m = NULL;
    wick_session *s = NULL;
    wick_tokenizer *tok = NULL;
    if (wick_model_load(argv[1], NULL, &m) || wick_session_new(m, NULL, &s)) return fail("load");
    if (wick_tokenizer_load(argv[1], &tok)) return fail("tokenizer");

    wick_gen_opts o = wick_gen_opts_default();
    o.sampling.temperature = 0.7f;
    o.sampling.top_p = 0.9f;
    o.sampling.seed = 42;
    o.max_tokens = argc > 3 ? atoi(argv[3]) : 32;
    o.tokenizer = tok;
    o.top_logprobs = 2;

    /* 1. streaming with a callback */
    wick_gen *g = NULL;
    wick_gen_stats st;
    if (wick_gen_start_text(m, s, argv[2], WICK_TOK_ADD_SPECIAL, &o, &g)) return fail("start");
    printf("%s", argv[2]);
    if (wick_gen_run(g, print_piece, NULL, &st)) return fail("generate");
    wick_gen_free(g);
    printf("\n-- %d tokens, first after %.1f ms, then %.1f tok/s, stop: %s\n", st.n_generated, st.ttft_ms,
           st.decode_tok_s, wick_stop_reason_str(st.stop));

    /* 2. the same generation pulled token by token (same seed -> same tokens) */
    wick_session_reset(s);
    if (wick_gen_start_text(m, s, argv[2], WICK_TOK_ADD_SPECIAL, &o, &g)) return fail("start");
    wick_token t;
    int done = 0;
    while (!wick_gen_next(g, &t, &done) && !done)
        printf("%4d  id %6d  logprob %7.3f  best alternative %6d (%.3f)\n", t.index, (int)t.id, t.logprob,
               t.n_top ? (int)t.top[0].id : -1, t.n_top ? t.top[0].logprob : 0.0f);
    wick_gen_free(g);

    wick_tokenizer_free(tok);
    wick_session_free(s);
    wick_model_free(m);
    return 0;
}
