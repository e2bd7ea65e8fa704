/*
 * gen_common.h — what `wick generate` and `wick chat` share: sampling/generation
 * options, loading the model (+ adapter, tokenizer, session), prompt building, and
 * JSON/statistics printing.
 */
#ifndef WICK_GEN_COMMON_H
#define WICK_GEN_COMMON_H
#include <stdio.h>
#include "wick.h"

#define GEN_MAX_STOP 16
#define GEN_MAX_BIAS 256

typedef struct {
    const char *model_dir, *adapter_dir, *prompt_ids, *prompt, *system, *chat_template;
    int chat;
    double adapter_scale;
    long threads;
    const char *device;   /* --device: cpu (default), cuda, cuda:N */
    int fast_bf16;        /* --fast-bf16: wick_model_opts.fast_bf16 */
    const char *stops[GEN_MAX_STOP];
    int n_stop;
    wick_logit_bias bias[GEN_MAX_BIAS];
    wick_gen_opts opts;
    wick_model *m;
    wick_session *s;
    wick_adapter *a;
    wick_tokenizer *tok; /* the model's, or loaded from the model directory; NULL without tokenizer.json */
    wick_tokenizer *own_tok; /* tok when this command loaded it */
} wick_gen_cli;

/* Prints the sampling/generation options (shared by generate and chat). */
void gen_opts_help(void);
/* Parses argv into g (options of both commands); json/print_ids/stats may be NULL for a
 * command that has no such flags. Returns 0 or an exit code (usage error printed). */
int gen_cli_parse(const char *cmd, int argc, char **argv, wick_gen_cli *g, int *json, int *print_ids, int *stats);
/* Loads the model, the adapter, the session. Returns 0 or an exit code (error printed). */
int gen_cli_load(const char *cmd, wick_gen_cli *g);
/* Starts the generation from --prompt-ids, or --prompt (through the tokenizer and, with
 * --chat/--system, the chat template). Returns 0 or an exit code (error printed). */
int gen_cli_start(const char *cmd, wick_gen_cli *g, wick_gen **out);
/* Positions the session holds. */
int gen_cli_context(const wick_gen_cli *g);
void gen_cli_free(wick_gen_cli *g);

/* JSON output: one line per token, and a summary line. */
void gen_print_token_json(FILE *f, const wick_token *t, const wick_gen_cli *g);
void gen_print_summary_json(FILE *f, const wick_gen_stats *st);
/* "N tokens, TTFT x ms, y tok/s (prefill z tok/s), stop: reason" on one line. */
void gen_print_stats(FILE *f, const wick_gen_stats *st);
/* Writes s as a JSON string literal (with quotes). */
void gen_json_string(FILE *f, const char *s, size_t n);
#endif
