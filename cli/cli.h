/*
 * cli.h — shared helpers for the `wick` subcommands. Subcommands use only wick.h
 * and this header.
 */
#ifndef WICK_CLI_H
#define WICK_CLI_H
#include <stdio.h>
#include "wick.h"

/* Each subcommand: argv[0] is the subcommand name. Returns the process exit code. */
typedef int (*cli_cmd_fn)(int argc, char **argv);

/* Prints "wick CMD: <what>: <wick_last_error()>" as one line on stderr; returns 1. */
int cli_fail(const char *cmd, const char *what, wick_status st);
/* Prints "wick CMD: message" on stderr; returns 2 (usage errors). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Option parsing: returns the value following argv[*i] when argv[*i] equals name, advancing *i. */
const char *cli_opt(int argc, char **argv, int *i, const char *name);
int cli_flag(char **argv, int i, const char *name);
/* Parses numbers strictly; on error prints a usage message and returns nonzero. */
int cli_int(const char *cmd, const char *opt, const char *s, long *out);
int cli_float(const char *cmd, const char *opt, const char *s, double *out);
/* True when argv contains -h or --help. */
int cli_wants_help(int argc, char **argv);

/* Parses "1,2;3,4" into a flat array and per-sequence lengths (free with free()). */
int cli_parse_ids(const char *cmd, const char *s, int32_t **ids, int **lens, int *nseq);
#endif
