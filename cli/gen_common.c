/*
 * gen_common.c — option parsing, model loading and output helpers shared by
 * `wick generate` and `wick chat` (see gen_common.h).
 */
#include "gen_common.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

void gen_opts_help(void) {
    printf("sampling (Hugging Face order: bias, penalties, temperature, top-k, top-p, min-p):\n"
           "  --temperature T         0 = greedy (default 0.8)\n"
           "  --top-k K               0 = off (default 40)\n"
           "  --top-p P               1 = off (default 0.95)\n"
           "  --min-p P               0 = off (default 0.05)\n"
           "  --repetition-penalty X  HF rule over prompt + output (default 1 = off)\n"
           "  --presence-penalty X    OpenAI rule over the output (default 0)\n"
           "  --frequency-penalty X   OpenAI rule over the output (default 0)\n"
           "  --logit-bias ID:B,...   add B to the logit of ID (-inf bans it)\n"
           "  --seed S                random seed (default 0; the same seed gives the same output)\n"
           "generation:\n"
           "  --max-tokens N          at most N new tokens (default 256)\n"
           "  --ignore-eos            do not stop at the model's EOS ids\n"
           "  --stop STR              stop when STR appears (not printed); repeatable, up to %d\n"
           "  --max-context N         positions the session holds (default min(max_position, 4096))\n"
           "  --threads N             CPU threads (default: all cores)\n"
           "  --device D              cpu (default), cuda or cuda:N\n"
           "  --fast-bf16             bf16 weights: multiply bf16-rounded activations in prompt processing\n"
           "                          (AMX tiles or AVX512-BF16 where the CPU has them; logits within ~1e-2)\n",
           GEN_MAX_STOP);
}

/* Parses "ID:BIAS,ID:BIAS". */
static int parse_bias(const char *cmd, const char *s, wick_gen_cli *g) {
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long id = strtol(p, &end, 10);
        if (end == p || *end != ':' || id < 0 || id > INT32_MAX || g->opts.sampling.n_logit_bias >= GEN_MAX_BIAS)
            return cli_usage_error(cmd, "--logit-bias: expected ID:BIAS[,ID:BIAS...] (at most %d) at \"%.20s\"",
                                   GEN_MAX_BIAS, p);
        p = end + 1;
        double b = strtod(p, &end);
        if (end == p || (*end && *end != ',') || b != b)
            return cli_usage_error(cmd, "--logit-bias: expected a number after \"%ld:\"", id);
        g->bias[g->opts.sampling.n_logit_bias++] = (wick_logit_bias){(int32_t)id, (float)b};
        p = *end ? end + 1 : end;
    }
    g->opts.sampling.logit_bias = g->bias;
    return 0;
}

/* A float option into *dst: -1 when argv[*i] is not `name`, else 0 or an exit code. */
static int opt_f(const char *cmd, int argc, char **argv, int *i, const char *name, float *dst) {
    const char *v = cli_opt(argc, argv, i, name);
    double d;
    if (!v) return -1;
    if (cli_float(cmd, name, v, &d)) return 2;
    *dst = (float)d;
    return 0;
}

static int opt_i(const char *cmd, int argc, char **argv, int *i, const char *name, long *dst) {
    const char *v = cli_opt(argc, argv, i, name);
    if (!v) return -1;
    return cli_int(cmd, name, v, dst) ? 2 : 0;
}

/* Sampling and generation options; -1 when argv[*i] is none of them. */
static int parse_sampling(const char *cmd, int argc, char **argv, int *i, wick_gen_cli *g) {
    wick_sampler_opts *s = &g->opts.sampling;
    long v = 0;
    int r;
    if ((r = opt_f(cmd, argc, argv, i, "--temperature", &s->temperature)) >= 0) return r;
    if ((r = opt_f(cmd, argc, argv, i, "--top-p", &s->top_p)) >= 0) return r;
    if ((r = opt_f(cmd, argc, argv, i, "--min-p", &s->min_p)) >= 0) return r;
    if ((r = opt_f(cmd, argc, argv, i, "--repetition-penalty", &s->repetition_penalty)) >= 0) return r;
    if ((r = opt_f(cmd, argc, argv, i, "--presence-penalty", &s->presence_penalty)) >= 0) return r;
    if ((r = opt_f(cmd, argc, argv, i, "--frequency-penalty", &s->frequency_penalty)) >= 0) return r;
    if ((r = opt_i(cmd, argc, argv, i, "--top-k", &v)) >= 0) return r ? r : (s->top_k = (int)v, 0);
    if ((r = opt_i(cmd, argc, argv, i, "--seed", &v)) >= 0) return r ? r : (s->seed = (uint64_t)v, 0);
    if ((r = opt_i(cmd, argc, argv, i, "--max-tokens", &v)) >= 0) return r ? r : (g->opts.max_tokens = (int)v, 0);
    if ((r = opt_i(cmd, argc, argv, i, "--max-context", &v)) >= 0) return r ? r : (g->opts.max_context = (int)v, 0);
    if ((r = opt_i(cmd, argc, argv, i, "--top-logprobs", &v)) >= 0) return r ? r : (g->opts.top_logprobs = (int)v, 0);
    if ((r = opt_i(cmd, argc, argv, i, "--threads", &g->threads)) >= 0) return r;
    const char *val;
    if ((val = cli_opt(argc, argv, i, "--device"))) return g->device = val, 0;
    if ((val = cli_opt(argc, argv, i, "--logit-bias"))) return parse_bias(cmd, val, g);
    if ((val = cli_opt(argc, argv, i, "--stop"))) {
        if (g->n_stop >= GEN_MAX_STOP) return cli_usage_error(cmd, "--stop: at most %d stop strings", GEN_MAX_STOP);
        if (!*val) return cli_usage_error(cmd, "--stop: empty stop string");
        g->stops[g->n_stop++] = val;
        g->opts.stop = g->stops, g->opts.n_stop = g->n_stop;
        return 0;
    }
    if (cli_flag(argv, *i, "--ignore-eos")) return g->opts.ignore_eos = 1, 0;
    if (cli_flag(argv, *i, "--fast-bf16")) return g->fast_bf16 = 1, 0;
    return -1;
}

int gen_cli_parse(const char *cmd, int argc, char **argv, wick_gen_cli *g, int *json, int *print_ids, int *stats) {
    memset(g, 0, sizeof *g);
    g->opts = wick_gen_opts_default();
    g->opts.sampling.temperature = 0.8f, g->opts.sampling.top_k = 40;
    g->opts.sampling.top_p = 0.95f, g->opts.sampling.min_p = 0.05f;
    g->adapter_scale = 1;
    const char *v;
    for (int i = 1; i < argc; i++) {
        int r = parse_sampling(cmd, argc, argv, &i, g);
        if (r > 0) return r;
        if (r == 0) continue;
        if ((v = cli_opt(argc, argv, &i, "--model"))) g->model_dir = v;
        else if ((v = cli_opt(argc, argv, &i, "--adapter"))) g->adapter_dir = v;
        else if ((v = cli_opt(argc, argv, &i, "--adapter-scale"))) { if (cli_float(cmd, "--adapter-scale", v, &g->adapter_scale)) return 2; }
        else if ((v = cli_opt(argc, argv, &i, "--prompt-ids"))) g->prompt_ids = v;
        else if ((v = cli_opt(argc, argv, &i, "--prompt"))) g->prompt = v;
        else if ((v = cli_opt(argc, argv, &i, "--system"))) g->system = v, g->chat = 1;
        else if ((v = cli_opt(argc, argv, &i, "--chat-template"))) g->chat_template = v;
        else if (cli_flag(argv, i, "--chat")) g->chat = 1;
        else if (json && cli_flag(argv, i, "--json")) *json = 1;
        else if (print_ids && cli_flag(argv, i, "--print-ids")) *print_ids = 1;
        else if (stats && cli_flag(argv, i, "--stats")) *stats = 1;
        else return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[i]);
    }
    if (!g->model_dir) return cli_usage_error(cmd, "--model DIR is required");
    if (g->prompt_ids && g->prompt) return cli_usage_error(cmd, "give --prompt-ids or --prompt, not both");
    if (g->prompt_ids && g->chat) return cli_usage_error(cmd, "--chat/--system need --prompt (text), not --prompt-ids");
    if (json && print_ids && *json && *print_ids) return cli_usage_error(cmd, "--json and --print-ids exclude each other");
    return 0;
}

int gen_cli_load(const char *cmd, wick_gen_cli *g) {
    wick_model_opts mo = wick_model_opts_default();
    mo.threads = (int)g->threads;
    if (g->device) mo.device = g->device;
    mo.fast_bf16 = g->fast_bf16;
    wick_status st = wick_model_load(g->model_dir, &mo, &g->m);
    if (st) return cli_fail(cmd, NULL, st);
    if (g->adapter_dir) {
        if ((st = wick_adapter_load(g->m, g->adapter_dir, &g->a))) return cli_fail(cmd, NULL, st);
    }
    wick_session_opts so = {.max_seq = g->opts.max_context};
    if ((st = wick_session_new(g->m, &so, &g->s))) return cli_fail(cmd, NULL, st);
    if (g->a && (st = wick_session_set_adapter(g->s, g->a, (float)g->adapter_scale))) return cli_fail(cmd, NULL, st);
    g->tok = wick_model_tokenizer(g->m);
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", g->model_dir);
    FILE *f = g->tok ? NULL : fopen(path, "r");
    if (f) {
        fclose(f);
        if ((st = wick_tokenizer_load(g->model_dir, &g->own_tok))) return cli_fail(cmd, NULL, st);
        g->tok = g->own_tok;
    }
    g->opts.tokenizer = g->tok;
    return 0;
}

int gen_cli_context(const wick_gen_cli *g) {
    if (g->opts.max_context > 0) return g->opts.max_context;
    wick_model_info info;
    if (!g->m || wick_model_get_info(g->m, &info)) return 0;
    int mp = info.max_position > 0 ? info.max_position : 4096;
    return mp < 4096 ? mp : 4096;
}

static int ids_prompt(const char *cmd, wick_gen_cli *g, wick_gen **out) {
    int *lens, nseq;
    int32_t *p;
    if (cli_parse_ids(cmd, g->prompt_ids, &p, &lens, &nseq)) return 2;
    int n = lens[0];
    free(lens);
    if (nseq != 1) return free(p), cli_usage_error(cmd, "--prompt-ids: one sequence expected (no ';')");
    wick_status st = wick_gen_start(g->m, g->s, p, n, &g->opts, out);
    free(p);
    return st ? cli_fail(cmd, NULL, st) : 0;
}

int gen_cli_start(const char *cmd, wick_gen_cli *g, wick_gen **out) {
    *out = NULL;
    if (g->prompt_ids) return ids_prompt(cmd, g, out);
    if (!g->tok) return cli_usage_error(cmd, "--prompt: %s has no tokenizer.json (use --prompt-ids)", g->model_dir);
    wick_status st;
    if (g->chat) {
        wick_chat_message msgs[2] = {{"system", g->system}, {"user", g->prompt}};
        int skip = g->system ? 0 : 1;
        st = wick_gen_start_chat(g->m, g->s, msgs + skip, 2 - skip, g->chat_template, &g->opts, out);
    } else {
        st = wick_gen_start_text(g->m, g->s, g->prompt, WICK_TOK_ADD_SPECIAL, &g->opts, out);
    }
    return st ? cli_fail(cmd, NULL, st) : 0;
}

void gen_cli_free(wick_gen_cli *g) {
    wick_session_free(g->s);
    wick_adapter_free(g->a);
    wick_model_free(g->m);
    wick_tokenizer_free(g->own_tok);
    g->s = NULL, g->a = NULL, g->m = NULL, g->own_tok = NULL, g->tok = NULL;
}

/* ------------------------------------------------------------ output */

void gen_json_string(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, const char *key, double v) {
    if (isfinite(v)) fprintf(f, ",\"%s\":%.9g", key, v);
    else fprintf(f, ",\"%s\":null", key);
}

void gen_print_token_json(FILE *f, const wick_token *t, const wick_gen_cli *g) {
    fprintf(f, "{\"index\":%d,\"id\":%d,\"text\":", t->index, (int)t->id);
    gen_json_string(f, t->piece, t->piece_len);
    json_num(f, "logprob", t->logprob);
    json_num(f, "prob", t->prob);
    fprintf(f, ",\"pos\":%d", t->pos);
    json_num(f, "t_ms", t->t_ms);
    json_num(f, "dt_ms", t->dt_ms);
    fputs(",\"top_logprobs\":[", f);
    for (int k = 0; k < t->n_top; k++) {
        fprintf(f, "%s{\"id\":%d", k ? "," : "", (int)t->top[k].id);
        json_num(f, "logprob", t->top[k].logprob);
        char *text = NULL;
        size_t len = 0;
        if (g->tok && !wick_detokenize(g->tok, &t->top[k].id, 1, 0, &text, &len)) {
            fputs(",\"text\":", f);
            gen_json_string(f, text, len);
        }
        wick_free(text);
        fputc('}', f);
    }
    fputc(']', f);
    if (t->stop) fprintf(f, ",\"stop\":\"%s\"", wick_stop_reason_str(t->stop));
    fputs("}\n", f);
    fflush(f);
}

void gen_print_summary_json(FILE *f, const wick_gen_stats *st) {
    fprintf(f, "{\"done\":true,\"stop\":\"%s\",\"n_prompt\":%d,\"n_generated\":%d", wick_stop_reason_str(st->stop),
            st->n_prompt, st->n_generated);
    json_num(f, "ttft_ms", st->ttft_ms);
    json_num(f, "prefill_tok_s", st->prefill_tok_s);
    json_num(f, "decode_tok_s", st->decode_tok_s);
    json_num(f, "total_ms", st->total_ms);
    fputs("}\n", f);
}

void gen_print_stats(FILE *f, const wick_gen_stats *st) {
    fprintf(f, "%d prompt + %d generated tokens, time to first token %.1f ms, prefill %.1f tok/s, decode %.1f tok/s, "
               "stop: %s\n",
            st->n_prompt, st->n_generated, st->ttft_ms, st->prefill_tok_s, st->decode_tok_s,
            wick_stop_reason_str(st->stop));
}
