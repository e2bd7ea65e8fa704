/*
 * cmd_generate.c — `wick generate`: generation from token ids (or text, through the
 * model's tokenizer and chat template), streamed to the terminal as produced, as one
 * JSON line per token (--json), or as the conformance form
 *   wick generate --model DIR [--adapter DIR] --prompt-ids "1,2,3" --max-tokens N
 *                 --temperature 0 [--repetition-penalty X] --ignore-eos --print-ids
 * which prints exactly the generated ids, space-separated, on one line.
 */
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "gen_common.h"

static void help(void) {
    printf("usage: wick generate --model DIR (--prompt-ids \"1,2,3\" | --prompt TEXT) [options]\n\n"
           "input:\n"
           "  --prompt-ids IDS        comma-separated prompt token ids\n"
           "  --prompt TEXT           prompt text (tokenized with the model's tokenizer)\n"
           "  --chat                  wrap --prompt as a user message in the model's chat template\n"
           "  --system TEXT           system message (implies --chat)\n"
           "  --chat-template NAME    chatml, qwen2.5, qwen3, llama3, mistral (default: the model's)\n"
           "  --adapter DIR           PEFT LoRA adapter  [--adapter-scale S]\n"
           "output (default: text streamed to stdout as it is produced; ids without a tokenizer):\n"
           "  --print-ids             print the generated ids space-separated on one line, nothing else\n"
           "  --json                  one JSON line per token (id, text, logprob, prob, top_logprobs,\n"
           "                          pos, t_ms, dt_ms), then a summary line\n"
           "  --top-logprobs N        alternatives per token in --json (0..%d)\n"
           "  --stats                 print time to first token and tok/s to stderr\n",
           WICK_MAX_TOP_LOGPROBS);
    gen_opts_help();
}

typedef struct {
    int json, print_ids, stats;
    int32_t *ids;        /* --print-ids: collected ids */
    int n_ids, printed_any;
    const wick_gen_cli *cli;
} out_state;

static int on_token(const wick_token *t, void *user) {
    out_state *o = user;
    if (o->print_ids) {
        o->ids[o->n_ids++] = t->id;
    } else if (o->json) {
        gen_print_token_json(stdout, t, o->cli);
    } else if (o->cli->tok) {
        fwrite(t->piece, 1, t->piece_len, stdout);
        fflush(stdout);
    } else {
        printf(o->printed_any ? " %d" : "%d", (int)t->id);
        fflush(stdout);
    }
    o->printed_any = 1;
    return 0;
}

int cmd_generate(int argc, char **argv) {
    const char *cmd = "generate";
    if (cli_wants_help(argc, argv)) return help(), 0;
    wick_gen_cli g;
    out_state o = {0};
    int rc = gen_cli_parse(cmd, argc, argv, &g, &o.json, &o.print_ids, &o.stats);
    if (rc) return rc;
    if (!g.prompt_ids && !g.prompt) return cli_usage_error(cmd, "--prompt-ids or --prompt is required");
    wick_gen *gen = NULL;
    if ((rc = gen_cli_load(cmd, &g)) || (rc = gen_cli_start(cmd, &g, &gen))) return gen_cli_free(&g), rc;
    o.cli = &g;
    o.ids = malloc(sizeof(int32_t) * (size_t)g.opts.max_tokens);
    wick_gen_stats st;
    wick_status s = o.ids ? wick_gen_run(gen, on_token, &o, &st) : WICK_ENOMEM;
    if (s) rc = cli_fail(cmd, NULL, s);
    else if (o.print_ids && st.stop == WICK_STOP_CONTEXT && o.n_ids < g.opts.max_tokens)
        rc = 1, fprintf(stderr, "wick generate: the context of %d positions filled after %d of %d tokens (see --max-context)\n",
                        gen_cli_context(&g), o.n_ids, g.opts.max_tokens);
    else if (o.print_ids) {
        for (int i = 0; i < o.n_ids; i++) printf(i ? " %d" : "%d", (int)o.ids[i]);
        printf("\n");
    } else if (o.json) {
        gen_print_summary_json(stdout, &st);
    } else if (o.printed_any) {
        printf("\n");
    }
    if (!s && o.stats) gen_print_stats(stderr, &st);
    free(o.ids);
    wick_gen_free(gen);
    gen_cli_free(&g);
    return rc;
}
