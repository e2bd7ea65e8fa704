/*
 * compare.h — internals of `wick bench compare`: loaded results files, claims
 * validation (claims.c) and the Markdown rendering of a report (report.c).
 */
#ifndef WK_BENCH_COMPARE_H
#define WK_BENCH_COMPARE_H

#include <jansson.h>

#include "wk.h"

typedef struct {
    const char *name;     /* borrowed from the document */
    double med, mad, lo, hi, min; /* min: the fastest sample (NAN when the file has none) */
    double tp;            /* throughput value (0 when none) */
    const char *tp_unit;  /* NULL when none */
    double metric;
    const char *metric_name;
} wk_cmp_entry;

typedef struct {
    const char *path;
    json_t *doc;
    wk_cmp_entry *e;
    int n;
} wk_cmp_file;

/* The error for a JSON file jansson could not load: unreadable (EIO) or malformed (EFORMAT, with the line). */
wick_status wk_cmp_json_error(const char *path, const json_error_t *e);
/* Loads and validates a results document (schema_version 1). */
wick_status wk_cmp_load(const char *path, wk_cmp_file *f);
void wk_cmp_free(wk_cmp_file *f);
const wk_cmp_entry *wk_cmp_find(const wk_cmp_file *f, const char *name);
/* "critical" (>= 2x), "moderate" (>= 1.2x) or "minor". */
const char *wk_cmp_severity(double ratio);

/* Validates the claims of the budgets file at path against cur: appends one object per
 * claim to claims and the ids of those not measured to not_measured; counts into s. */
wick_status wk_cmp_claims(const char *path, const wk_cmp_file *cur, wick_bench_summary *s, json_t *claims,
                          json_t *not_measured);

/* Renders a report object (built by compare.c) as Markdown; free() the result. */
char *wk_cmp_markdown(const json_t *rep);

#endif
