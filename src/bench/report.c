/*
 * report.c — renders a comparison report (the JSON object compare.c builds) as
 * Markdown that reads like an analysis: the runs, a summary with the verdict,
 * the claims, regressions by severity, improvements, what was within noise and
 * what was not measured.
 */
#define _GNU_SOURCE
#include "compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const char *S(const json_t *o, const char *k) {
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}
static double N(const json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }
static long long I(const json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }

static char *fmt_time(double s, char *buf, size_t cap) {
    double a = fabs(s);
    if (a < 1e-6) snprintf(buf, cap, "%.1f ns", s * 1e9);
    else if (a < 1e-3) snprintf(buf, cap, "%.2f us", s * 1e6);
    else if (a < 1) snprintf(buf, cap, "%.2f ms", s * 1e3);
    else snprintf(buf, cap, "%.3f s", s);
    return buf;
}

static void runs_table(FILE *f, const json_t *rep) {
    const json_t *b = json_object_get(rep, "base"), *n = json_object_get(rep, "new");
    const json_t *cols[2] = {b, n};
    const char *hdr = b ? "| | base | new |\n| --- | --- | --- |\n" : "| | run |\n| --- | --- |\n";
    fputs(hdr, f);
    static const char *rows[] = {"file", "commit", "date", "machine", "mode"};
    for (size_t r = 0; r < 5; r++) {
        fprintf(f, "| %s |", rows[r]);
        for (int c = b ? 0 : 1; c < 2; c++) {
            const json_t *x = cols[c];
            if (r == 0) fprintf(f, " `%s` |", S(x, "file"));
            else if (r == 1) fprintf(f, " `%.12s`%s |", S(x, "commit"), json_is_true(json_object_get(x, "dirty")) ? " (dirty)" : "");
            else if (r == 2) fprintf(f, " %s |", S(x, "date"));
            else if (r == 3)
                fprintf(f, " %s, %lld cores%s%s%s%s |", S(x, "cpu"), I(x, "cores"), *S(x, "simd") ? ", " : "",
                        S(x, "simd"), *S(x, "gpu") ? ", GPU " : "", S(x, "gpu"));
            else fprintf(f, " %s, %lld samples%s |", S(x, "device"), I(x, "runs"), json_is_true(json_object_get(x, "quick")) ? ", quick" : "");
        }
        fputc('\n', f);
    }
}

static void summary(FILE *f, const json_t *rep) {
    const json_t *s = json_object_get(rep, "summary");
    int fail = !strcmp(S(rep, "verdict"), "fail");
    fprintf(f, "\n## Summary\n\n**%s**", fail ? "FAIL" : "PASS");
    if (fail)
        fprintf(f, ": %lld critical regression%s, %lld failed claim%s.", I(s, "critical"),
                I(s, "critical") == 1 ? "" : "s", I(s, "claims_failed"), I(s, "claims_failed") == 1 ? "" : "s");
    fputs("\n\n", f);
    if (json_object_get(rep, "base"))
        fprintf(f, "- %lld benchmarks compared (threshold %.1f%%): %lld regressions (%lld critical, %lld moderate, "
                   "%lld minor), %lld improvements, %lld within noise.\n",
                I(s, "compared"), 100 * N(rep, "threshold"), I(s, "regressions"), I(s, "critical"), I(s, "moderate"),
                I(s, "minor"), I(s, "improvements"), I(s, "within_noise"));
    fprintf(f, "- Claims: %lld validated, %lld failed, %lld not measured.\n", I(s, "claims_validated"),
            I(s, "claims_failed"), I(s, "claims_not_measured"));
    if (json_object_get(rep, "base"))
        fprintf(f, "- Not measured: %lld benchmarks of the base are missing from the new run; %lld are new.\n",
                I(s, "only_base"), I(s, "only_new"));
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(rep, "warnings"), i, w) fprintf(f, "\n> Warning: %s.\n", json_string_value(w));
}

static void claims(FILE *f, const json_t *rep) {
    const json_t *arr = json_object_get(rep, "claims");
    if (!json_array_size(arr)) return;
    fputs("\n## Claims\n\n| status | claim | measured (worst) | limit | where |\n| --- | --- | --- | --- | --- |\n", f);
    size_t i;
    json_t *c;
    json_array_foreach(arr, i, c) {
        const char *st = S(c, "status");
        fprintf(f, "| %s | %s |", !strcmp(st, "failed") ? "**FAILED**" : !strcmp(st, "validated") ? "validated" : "not measured",
                S(c, "claim"));
        if (json_object_get(c, "measured")) fprintf(f, " %.4g %s |", N(c, "measured"), S(c, "unit"));
        else fputs(" — |", f);
        fprintf(f, " %s %.4g %s | %s |\n", S(c, "op"), N(c, "limit"), S(c, "unit"),
                json_object_get(c, "measured_in") ? S(c, "measured_in") : "no matching benchmark in the run");
    }
}

static void change_row(FILE *f, const json_t *r) {
    char a[32], b[32], al[32], ah[32], bl[32], bh[32];
    double ratio = N(r, "ratio");
    fprintf(f, "| `%s` | %s | %s | ", S(r, "name"), fmt_time(N(r, "base_median_s"), a, sizeof a),
            fmt_time(N(r, "new_median_s"), b, sizeof b));
    if (ratio >= 1) fprintf(f, "%.2f× slower (%+.1f%%)", ratio, 100 * (ratio - 1));
    else fprintf(f, "%.2f× faster (%+.1f%%)", ratio > 0 ? 1 / ratio : INFINITY, 100 * (ratio - 1));
    fprintf(f, " | [%s, %s] | [%s, %s] |\n", fmt_time(N(r, "base_lo_s"), al, sizeof al),
            fmt_time(N(r, "base_hi_s"), ah, sizeof ah), fmt_time(N(r, "new_lo_s"), bl, sizeof bl),
            fmt_time(N(r, "new_hi_s"), bh, sizeof bh));
}

/* Prints the rows whose verdict (and severity, when given) match, under a heading; "None." when empty. */
static void change_table(FILE *f, const json_t *rows, const char *heading, const char *verdict, const char *sev) {
    size_t i, count = 0;
    json_t *r;
    fprintf(f, "\n%s\n\n", heading);
    json_array_foreach(rows, i, r) {
        if (strcmp(S(r, "verdict"), verdict) || (sev && strcmp(S(r, "severity"), sev))) continue;
        if (!count++) fputs("| benchmark | base | new | change | base 95% CI | new 95% CI |\n| --- | --- | --- | --- | --- | --- |\n", f);
        change_row(f, r);
    }
    if (!count) fputs("None.\n", f);
}

static void name_list(FILE *f, const char *title, const json_t *arr) {
    if (!json_array_size(arr)) return;
    fprintf(f, "\n%s\n\n", title);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) fprintf(f, "- `%s`\n", json_string_value(v));
}

char *wk_cmp_markdown(const json_t *rep) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    fputs("# Benchmark report\n\n", f);
    runs_table(f, rep);
    summary(f, rep);
    claims(f, rep);
    const json_t *rows = json_object_get(rep, "benchmarks");
    if (rows) {
        fputs("\n## Regressions\n", f);
        change_table(f, rows, "### Critical (≥ 2× slower)", "regression", "critical");
        change_table(f, rows, "### Moderate (1.2×–2× slower)", "regression", "moderate");
        change_table(f, rows, "### Minor (beyond the threshold, under 1.2×)", "regression", "minor");
        change_table(f, rows, "## Improvements", "improvement", NULL);
        change_table(f, rows, "## Within noise", "within_noise", NULL);
    }
    const json_t *cal = json_object_get(rep, "calibration");
    if (json_array_size(cal)) {
        fputs("\n## Machine calibration\n\nFixed work that does not change with the code; a change here is the "
              "machine's, and it is not counted above.\n\n| benchmark | base | new | change | base 95% CI | new 95% CI |\n"
              "| --- | --- | --- | --- | --- | --- |\n", f);
        size_t i;
        json_t *r;
        json_array_foreach(cal, i, r) change_row(f, r);
    }
    const json_t *nm = json_object_get(rep, "not_measured");
    if (json_array_size(json_object_get(nm, "claims")) || json_array_size(json_object_get(nm, "base_only")) ||
        json_array_size(json_object_get(nm, "new_only"))) {
        fputs("\n## Not measured\n", f);
        name_list(f, "Claims with no matching benchmark in the run:", json_object_get(nm, "claims"));
        name_list(f, "Benchmarks in the base but missing from the new run:", json_object_get(nm, "base_only"));
        name_list(f, "Benchmarks new in this run (no baseline):", json_object_get(nm, "new_only"));
    }
    fclose(f);
    return buf;
}
