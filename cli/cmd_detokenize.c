/*
 * cmd_detokenize.c — `wick detokenize --tokenizer FILE|DIR --ids "1,2,3"`: prints the
 * decoded text exactly, with no newline added.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static const char *USAGE =
    "usage: wick detokenize --tokenizer FILE|DIR (--ids \"1,2,3\" | --jsonl IN) [--skip-special]\n"
    "  --ids    prints the decoded text exactly as the tokenizer's decoder produces it (no trailing newline)\n"
    "  --jsonl  a file of {\"ids\": [...]} lines (\"-\" = stdin); prints one {\"text\": ...} line each\n"
    "  --skip-special  drop special tokens (<|im_end|>, [CLS], ...) from the output\n";

static int line_ids(json_t *a, int32_t **ids, int *n) {
    *n = (int)json_array_size(a);
    *ids = malloc(((size_t)*n + 1) * sizeof **ids);
    for (int i = 0; i < *n; i++) {
        json_t *x = json_array_get(a, (size_t)i);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > INT32_MAX) return 1;
        (*ids)[i] = (int32_t)json_integer_value(x);
    }
    return 0;
}

static int run_jsonl(wick_tokenizer *t, const char *path, int skip) {
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) return fprintf(stderr, "wick detokenize: %s: cannot open\n", path), 1;
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (!rc && getline(&line, &cap, f) >= 0) {
        lineno++;
        json_error_t e;
        json_t *j = json_loads(line, 0, &e), *a = json_object_get(j, "ids");
        int32_t *ids = NULL;
        int n = 0;
        char where[64], *text;
        size_t len;
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (!json_is_array(a) || line_ids(a, &ids, &n)) {
            fprintf(stderr, "wick detokenize: %s: expected {\"ids\": [non-negative integers]}\n", where);
            rc = 1;
        } else {
            wick_status st = wick_detokenize(t, ids, n, skip, &text, &len);
            if (st) {
                rc = cli_fail("detokenize", where, st);
            } else {
                json_t *o = json_pack("{s:s%}", "text", text, len);
                char *s = json_dumps(o, JSON_COMPACT);
                puts(s);
                free(s), json_decref(o), wick_free(text);
            }
        }
        free(ids);
        json_decref(j);
    }
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

int cmd_detokenize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return fputs(USAGE, stdout), 0;
    const char *tok = NULL, *ids_s = NULL, *jsonl = NULL, *v;
    int skip = 0;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--tokenizer"))) tok = v;
        else if ((v = cli_opt(argc, argv, &i, "--ids"))) ids_s = v;
        else if ((v = cli_opt(argc, argv, &i, "--jsonl"))) jsonl = v;
        else if (cli_flag(argv, i, "--skip-special")) skip = 1;
        else return cli_usage_error("detokenize", "unknown or incomplete option '%s'", argv[i]);
    }
    if (!tok || !ids_s == !jsonl) return cli_usage_error("detokenize", "--tokenizer and one of --ids or --jsonl are required");
    if (jsonl) {
        wick_tokenizer *t;
        wick_status st = wick_tokenizer_load(tok, &t);
        if (st) return cli_fail("detokenize", NULL, st);
        int rc = run_jsonl(t, jsonl, skip);
        wick_tokenizer_free(t);
        return rc;
    }
    int32_t *ids;
    int *lens, nseq;
    if (cli_parse_ids("detokenize", ids_s, &ids, &lens, &nseq)) return 2;
    int n = 0;
    for (int i = 0; i < nseq; i++) n += lens[i];
    wick_tokenizer *t;
    wick_status st = wick_tokenizer_load(tok, &t);
    int rc = 0;
    if (st) {
        rc = cli_fail("detokenize", NULL, st);
    } else {
        char *text;
        size_t len;
        st = wick_detokenize(t, ids, n, skip, &text, &len);
        if (st) rc = cli_fail("detokenize", NULL, st);
        else fwrite(text, 1, len, stdout), wick_free(text);
        wick_tokenizer_free(t);
    }
    free(ids);
    free(lens);
    return rc;
}
