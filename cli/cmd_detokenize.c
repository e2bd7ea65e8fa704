/*
 * cmd_detokenize.c — `wick detokenize --tokenizer FILE|DIR --ids "1,2,3"`: prints the
 * decoded text exactly, with no newline added.
 */
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static const char *USAGE =
    "usage: wick detokenize --tokenizer FILE|DIR --ids \"1,2,3\" [--skip-special]\n"
    "  prints the decoded text exactly as the tokenizer's decoder produces it (no trailing newline)\n"
    "  --skip-special  drop special tokens (<|im_end|>, [CLS], ...) from the output\n";

int cmd_detokenize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return fputs(USAGE, stdout), 0;
    const char *tok = NULL, *ids_s = NULL, *v;
    int skip = 0;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--tokenizer"))) tok = v;
        else if ((v = cli_opt(argc, argv, &i, "--ids"))) ids_s = v;
        else if (cli_flag(argv, i, "--skip-special")) skip = 1;
        else return cli_usage_error("detokenize", "unknown or incomplete option '%s'", argv[i]);
    }
    if (!tok || !ids_s) return cli_usage_error("detokenize", "--tokenizer and --ids are required");
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
