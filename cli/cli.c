/*
 * cli.c — option parsing and error printing shared by the subcommands.
 */
#include "cli.h"
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(const char *cmd, const char *what, wick_status st) {
    const char *msg = wick_last_error();
    if (what && *what)
        fprintf(stderr, "wick %s: %s: %s\n", cmd, what, *msg ? msg : wick_status_str(st));
    else
        fprintf(stderr, "wick %s: %s\n", cmd, *msg ? msg : wick_status_str(st));
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "wick %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see wick %s --help)\n", cmd);
    va_end(ap);
    return 2;
}

const char *cli_opt(int argc, char **argv, int *i, const char *name) {
    if (strcmp(argv[*i], name) != 0) return NULL;
    if (*i + 1 >= argc) return NULL;
    (*i)++;
    return argv[*i];
}

int cli_flag(char **argv, int i, const char *name) { return strcmp(argv[i], name) == 0; }

int cli_int(const char *cmd, const char *opt, const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno) return cli_usage_error(cmd, "%s expects an integer, got \"%s\"", opt, s);
    *out = v;
    return 0;
}

int cli_float(const char *cmd, const char *opt, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno) return cli_usage_error(cmd, "%s expects a number, got \"%s\"", opt, s);
    *out = v;
    return 0;
}

int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

int cli_parse_ids(const char *cmd, const char *s, int32_t **ids_out, int **lens_out, int *nseq_out) {
    size_t len = strlen(s);
    int32_t *ids = malloc((len / 2 + 2) * sizeof *ids);
    int *lens = calloc(len + 2, sizeof *lens);
    if (!ids || !lens) {
        free(ids);
        free(lens);
        fprintf(stderr, "wick %s: out of memory parsing ids\n", cmd);
        return 1;
    }
    size_t n = 0;
    int seq = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ') p++;
        if (*p == 0 || *p == ';') {
            seq++;
            if (*p == 0) break;
            p++;
            continue;
        }
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX) {
            free(ids);
            free(lens);
            return cli_usage_error(cmd, "ids: expected a non-negative integer at \"%.20s\"", p);
        }
        ids[n++] = (int32_t)v;
        lens[seq]++;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p != ';' && *p != 0) {
            free(ids);
            free(lens);
            return cli_usage_error(cmd, "ids: unexpected character '%c' (want digits, ',' or ';')", *p);
        }
    }
    *ids_out = ids;
    *lens_out = lens;
    *nseq_out = seq;
    return 0;
}
