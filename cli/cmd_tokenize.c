/*
 * cmd_tokenize.c — `wick tokenize`: text to token ids with a tokenizer.json.
 *   wick tokenize --tokenizer FILE|DIR --text STR        ids on one line, space-separated
 *   wick tokenize --tokenizer FILE|DIR --jsonl IN        one {"ids":[...]} line per {"text": ...} line
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static const char *USAGE =
    "usage: wick tokenize --tokenizer FILE|DIR (--text STR | --jsonl IN) [--add-special] [--special-as-text]\n"
    "  --tokenizer    a tokenizer.json, or a model directory holding one\n"
    "  --text         the text to encode; prints the ids space-separated on one line\n"
    "  --jsonl        a file of {\"text\": ...} lines (\"-\" = stdin); prints one {\"ids\":[...]} line each\n"
    "  --add-special  add the post-processor's special tokens (e.g. [CLS] ... [SEP]); off by default\n"
    "  --special-as-text  tokenize special tokens written in the text as plain text\n";

static void print_ids(const int32_t *ids, int n, int json) {
    if (json) fputs("{\"ids\":[", stdout);
    for (int i = 0; i < n; i++) printf(i ? (json ? ",%d" : " %d") : "%d", ids[i]);
    fputs(json ? "]}\n" : "\n", stdout);
}

static int run_jsonl(wick_tokenizer *t, const char *path, int flags) {
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) return fprintf(stderr, "wick tokenize: %s: cannot open\n", path), 1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        json_error_t e;
        json_t *j = json_loadb(line, (size_t)len, JSON_ALLOW_NUL, &e);
        json_t *txt = json_object_get(j, "text");
        if (!json_is_string(txt)) {
            fprintf(stderr, "wick tokenize: %s:%d: expected a JSON object with a string \"text\"\n", path, lineno);
            rc = 1;
        } else {
            int32_t *ids;
            int n;
            wick_status st = wick_tokenize(t, json_string_value(txt), json_string_length(txt), flags, &ids, &n);
            if (st) {
                char where[64];
                snprintf(where, sizeof where, "line %d", lineno);
                rc = cli_fail("tokenize", where, st);
            } else {
                print_ids(ids, n, 1);
                wick_free(ids);
            }
        }
        json_decref(j);
    }
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return fputs(USAGE, stdout), 0;
    const char *tok = NULL, *text = NULL, *jsonl = NULL, *v;
    int flags = 0;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--tokenizer"))) tok = v;
        else if ((v = cli_opt(argc, argv, &i, "--text"))) text = v;
        else if ((v = cli_opt(argc, argv, &i, "--jsonl"))) jsonl = v;
        else if (cli_flag(argv, i, "--add-special")) flags |= WICK_TOK_ADD_SPECIAL;
        else if (cli_flag(argv, i, "--special-as-text")) flags |= WICK_TOK_SPECIAL_AS_TEXT;
        else return cli_usage_error("tokenize", "unknown or incomplete option '%s'", argv[i]);
    }
    if (!tok) return cli_usage_error("tokenize", "--tokenizer is required");
    if (!text == !jsonl) return cli_usage_error("tokenize", "give exactly one of --text or --jsonl");
    wick_tokenizer *t;
    wick_status st = wick_tokenizer_load(tok, &t);
    if (st) return cli_fail("tokenize", NULL, st);
    int rc = 0;
    if (jsonl) {
        rc = run_jsonl(t, jsonl, flags);
    } else {
        int32_t *ids;
        int n;
        st = wick_tokenize(t, text, strlen(text), flags, &ids, &n);
        if (st) rc = cli_fail("tokenize", NULL, st);
        else print_ids(ids, n, 0), wick_free(ids);
    }
    wick_tokenizer_free(t);
    return rc;
}
