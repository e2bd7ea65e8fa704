/*
 * compare.c — `wick bench compare`: reads two results documents, gives each
 * benchmark a noise-aware verdict, validates the claims of a budgets file, and
 * builds one JSON report (report.c renders it as Markdown).
 *
 * Verdict: ratio = new median / base median. A regression needs ratio > 1 + threshold
 * and the new median's confidence interval entirely above the base's; an improvement
 * the mirror image. Anything else is within noise. Severity of a regression:
 * critical >= 2x, moderate >= 1.2x, minor below.
 */
#define _GNU_SOURCE
#include "compare.h"

#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>

/* ---- loading a results document */
wick_status wk_cmp_json_error(const char *path, const json_error_t *e) {
    if (e->line < 1) return wk_err(WICK_EIO, "%s: %s", path, e->text); /* could not open or read it */
    return wk_err(WICK_EFORMAT, "%s: line %d: %s", path, e->line, e->text);
}

static wick_status entry_from_json(json_t *r, const char *path, size_t idx, wk_cmp_entry *e) {
    json_t *name = json_object_get(r, "name"), *med = json_object_get(r, "median_s");
    if (!json_is_string(name) || !json_is_number(med))
        return wk_err(WICK_EFORMAT, "%s: results[%zu]: expected \"name\" (string) and \"median_s\" (number)", path,
                      idx);
    memset(e, 0, sizeof *e);
    e->name = json_string_value(name);
    e->med = json_number_value(med);
    e->mad = json_number_value(json_object_get(r, "mad_s"));
    e->min = json_is_number(json_object_get(r, "min_s")) ? json_number_value(json_object_get(r, "min_s")) : NAN;
    json_t *ci = json_object_get(r, "ci");
    if (json_is_object(ci) && json_is_number(json_object_get(ci, "lo_s")) &&
        json_is_number(json_object_get(ci, "hi_s"))) {
        e->lo = json_number_value(json_object_get(ci, "lo_s"));
        e->hi = json_number_value(json_object_get(ci, "hi_s"));
    } else { /* no interval recorded: one MAD either side */
        e->lo = e->med - e->mad;
        e->hi = e->med + e->mad;
    }
    json_t *tp = json_object_get(r, "throughput"), *m = json_object_get(r, "metric");
    e->tp = json_number_value(json_object_get(tp, "value"));
    e->tp_unit = json_string_value(json_object_get(tp, "unit"));
    e->metric = json_number_value(json_object_get(m, "value"));
    e->metric_name = json_string_value(json_object_get(m, "name"));
    if (!(e->med >= 0) || !(e->hi >= e->lo))
        return wk_err(WICK_EFORMAT, "%s: results[%zu] '%s': median_s %g and ci [%g, %g] are not a valid interval",
                      path, idx, e->name, e->med, e->lo, e->hi);
    return WICK_OK;
}

wick_status wk_cmp_load(const char *path, wk_cmp_file *f) {
    memset(f, 0, sizeof *f);
    f->path = path;
    json_error_t jerr;
    f->doc = json_load_file(path, 0, &jerr);
    if (!f->doc) return wk_cmp_json_error(path, &jerr);
    json_t *ver = json_object_get(f->doc, "schema_version"), *res = json_object_get(f->doc, "results");
    wick_status rc = WICK_OK;
    if (!json_is_integer(ver) || json_integer_value(ver) != 1)
        rc = wk_err(WICK_EFORMAT, "%s: \"schema_version\": expected 1 (a wick bench results file)", path);
    else if (!json_is_array(res))
        rc = wk_err(WICK_EFORMAT, "%s: \"results\": expected an array", path);
    if (rc == WICK_OK && json_array_size(res) > 0) {
        f->n = (int)json_array_size(res);
        f->e = wk_calloc(sizeof(wk_cmp_entry) * (size_t)f->n, "results entries");
        if (!f->e) rc = WICK_ENOMEM;
    }
    for (int i = 0; rc == WICK_OK && i < f->n; i++)
        rc = entry_from_json(json_array_get(res, (size_t)i), path, (size_t)i, &f->e[i]);
    if (rc != WICK_OK) wk_cmp_free(f);
    return rc;
}

void wk_cmp_free(wk_cmp_file *f) {
    wk_free(f->e);
    json_decref(f->doc);
    memset(f, 0, sizeof *f);
}

const wk_cmp_entry *wk_cmp_find(const wk_cmp_file *f, const char *name) {
    for (int i = 0; f && i < f->n; i++)
        if (!strcmp(f->e[i].name, name)) return &f->e[i];
    return NULL;
}

/* ---- verdicts */
const char *wk_cmp_severity(double ratio) { return ratio >= 2.0 ? "critical" : ratio >= 1.2 ? "moderate" : "minor"; }

static json_t *verdict_json(const wk_cmp_entry *a, const wk_cmp_entry *b, double thr, wick_bench_summary *s) {
    double ratio = a->med > 0 ? b->med / a->med : (b->med > 0 ? INFINITY : 1.0);
    const char *verdict = "within_noise", *sev = NULL, *note = NULL;
    if (ratio > 1.0 + thr && b->lo > a->hi) {
        verdict = "regression";
        sev = wk_cmp_severity(ratio);
        s->regressions++;
        if (!strcmp(sev, "critical")) s->critical++;
        else if (!strcmp(sev, "moderate")) s->moderate++;
        else s->minor++;
    } else if (ratio < 1.0 / (1.0 + thr) && b->hi < a->lo) {
        verdict = "improvement";
        s->improvements++;
    } else {
        s->within_noise++;
        if (ratio > 1.0 + thr || ratio < 1.0 / (1.0 + thr)) note = "beyond the threshold, but the intervals overlap";
    }
    s->compared++;
    json_t *j = json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "name", a->name, "verdict", verdict,
                          "ratio", isfinite(ratio) ? ratio : 1e300, "base_median_s", a->med, "new_median_s",
                          b->med, "base_lo_s", a->lo, "base_hi_s", a->hi, "new_lo_s", b->lo, "new_hi_s", b->hi);
    if (sev) json_object_set_new(j, "severity", json_string(sev));
    if (note) json_object_set_new(j, "note", json_string(note));
    return j;
}

/* Benchmarks named calibration/... measure the machine: reported apart, never counted, warned about when it moved. */
static void calibration_row(const wk_cmp_entry *a, const wk_cmp_entry *b, double thr, json_t *calib, json_t *warn) {
    wick_bench_summary ignored = {0};
    json_t *row = verdict_json(a, b, thr, &ignored);
    if (strcmp(json_string_value(json_object_get(row, "verdict")), "within_noise") != 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s (fixed work, the same on every commit) changed by %+.1f%%: the machine's speed "
                 "differed between the runs, so read changes of that size with care", a->name,
                 100 * (json_number_value(json_object_get(row, "ratio")) - 1));
        json_array_append_new(warn, json_string(msg));
    }
    json_array_append_new(calib, row);
}

static json_t *compare_results(const wk_cmp_file *base, const wk_cmp_file *cur, double thr,
                               wick_bench_summary *s, json_t *not_measured, json_t *calib, json_t *warn) {
    json_t *rows = json_array(), *base_only = json_array(), *new_only = json_array();
    for (int i = 0; i < base->n; i++) {
        const wk_cmp_entry *b = wk_cmp_find(cur, base->e[i].name);
        if (b && !strncmp(b->name, "calibration/", 12)) calibration_row(&base->e[i], b, thr, calib, warn);
        else if (b) json_array_append_new(rows, verdict_json(&base->e[i], b, thr, s));
        else json_array_append_new(base_only, json_string(base->e[i].name)), s->only_base++;
    }
    for (int i = 0; i < cur->n; i++)
        if (!wk_cmp_find(base, cur->e[i].name)) json_array_append_new(new_only, json_string(cur->e[i].name)), s->only_new++;
    json_object_set_new(not_measured, "base_only", base_only);
    json_object_set_new(not_measured, "new_only", new_only);
    return rows;
}

/* ---- run descriptions and warnings */
static json_t *run_info(const wk_cmp_file *f) {
    json_t *d = f->doc, *m = json_object_get(d, "machine"), *g = json_object_get(d, "git"),
           *c = json_object_get(d, "config");
    json_t *simd = json_object_get(m, "simd");
    char simd_s[256] = "";
    size_t i;
    json_t *v;
    json_array_foreach(simd, i, v) {
        size_t l = strlen(simd_s);
        snprintf(simd_s + l, sizeof simd_s - l, "%s%s", l ? " " : "", json_string_value(v));
    }
    json_t *gpu = json_object_get(m, "gpu");
    return json_pack("{s:s, s:s, s:b, s:s, s:s, s:I, s:s, s:s, s:s, s:b, s:I}", "file", f->path, "commit",
                     json_is_string(json_object_get(g, "commit")) ? json_string_value(json_object_get(g, "commit"))
                                                                  : "unknown",
                     "dirty", json_is_true(json_object_get(g, "dirty")), "date",
                     json_is_string(json_object_get(d, "date")) ? json_string_value(json_object_get(d, "date")) : "",
                     "cpu", json_is_string(json_object_get(m, "cpu")) ? json_string_value(json_object_get(m, "cpu")) : "",
                     "cores", json_integer_value(json_object_get(m, "cores")), "simd", simd_s, "gpu",
                     json_is_string(json_object_get(gpu, "name")) ? json_string_value(json_object_get(gpu, "name")) : "",
                     "device",
                     json_is_string(json_object_get(c, "device")) ? json_string_value(json_object_get(c, "device")) : "",
                     "quick", json_is_true(json_object_get(c, "quick")), "runs",
                     json_integer_value(json_object_get(c, "runs")));
}

static void add_warnings(json_t *base, json_t *cur, json_t *warn) {
    static const char *keys[] = {"cpu", "cores", "gpu", "device", "quick"};
    static const char *what[] = {"CPU models", "core counts", "GPUs", "devices", "modes (--quick)"};
    for (size_t i = 0; i < WK_ARRAY_LEN(keys); i++) {
        if (json_equal(json_object_get(base, keys[i]), json_object_get(cur, keys[i]))) continue;
        char msg[160];
        snprintf(msg, sizeof msg, "the two runs differ in %s: changes may come from that, not from the code",
                 what[i]);
        json_array_append_new(warn, json_string(msg));
    }
}

/* ---- the report */
static json_t *summary_json(const wick_bench_summary *s) {
    return json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "compared", s->compared,
                     "regressions", s->regressions, "critical", s->critical, "moderate", s->moderate, "minor",
                     s->minor, "improvements", s->improvements, "within_noise", s->within_noise, "only_base",
                     s->only_base, "only_new", s->only_new, "claims_validated", s->claims_validated,
                     "claims_failed", s->claims_failed, "claims_not_measured", s->claims_not_measured);
}

static wick_status build_report(const wk_cmp_file *base, const wk_cmp_file *cur, const wick_bench_compare_opts *o,
                                wick_bench_summary *s, json_t **out) {
    json_t *rep = json_pack("{s:i, s:f}", "schema_version", 1, "threshold", o->threshold);
    json_t *nm = json_object(), *warn = json_array(), *ci = run_info(cur);
    json_object_set_new(rep, "new", ci);
    if (base) {
        json_t *bi = run_info(base);
        json_object_set_new(rep, "base", bi);
        add_warnings(bi, ci, warn);
        json_t *calib = json_array();
        json_object_set_new(rep, "benchmarks", compare_results(base, cur, o->threshold, s, nm, calib, warn));
        json_object_set_new(rep, "calibration", calib);
    }
    json_t *claims = json_array(), *claims_nm = json_array();
    wick_status rc = o->budgets ? wk_cmp_claims(o->budgets, cur, s, claims, claims_nm) : WICK_OK;
    json_object_set_new(rep, "claims", claims);
    json_object_set_new(nm, "claims", claims_nm);
    json_object_set_new(rep, "not_measured", nm);
    json_object_set_new(rep, "warnings", warn);
    json_object_set_new(rep, "summary", summary_json(s));
    json_object_set_new(rep, "verdict", json_string(s->critical || s->claims_failed ? "fail" : "pass"));
    if (rc != WICK_OK) json_decref(rep), rep = NULL;
    *out = rep;
    return rc;
}

wick_status wick_bench_compare(const char *base_path, const char *new_path, const wick_bench_compare_opts *opts,
                               char **report_out, wick_bench_summary *sum) {
    if (!new_path || !report_out || !sum) return wk_err(WICK_EINVAL, "wick_bench_compare: NULL argument");
    *report_out = NULL;
    memset(sum, 0, sizeof *sum);
    wick_bench_compare_opts o = opts ? *opts : (wick_bench_compare_opts){0};
    if (o.threshold <= 0) o.threshold = 0.05;
    if (!base_path && !o.budgets)
        return wk_err(WICK_EINVAL, "wick_bench_compare: a base file or a budgets file is needed");
    wk_cmp_file base = {0}, cur = {0};
    json_t *rep = NULL;
    wick_status rc = base_path ? wk_cmp_load(base_path, &base) : WICK_OK;
    if (rc == WICK_OK) rc = wk_cmp_load(new_path, &cur);
    if (rc == WICK_OK) rc = build_report(base_path ? &base : NULL, &cur, &o, sum, &rep);
    if (rc == WICK_OK) {
        char *text = o.format_json ? json_dumps(rep, JSON_INDENT(1) | JSON_REAL_PRECISION(9)) : wk_cmp_markdown(rep);
        *report_out = text ? wk_strdup(text) : NULL;
        free(text);
        if (!*report_out) rc = wk_err(WICK_ENOMEM, "benchmark report: out of memory");
    }
    json_decref(rep);
    wk_cmp_free(&base);
    wk_cmp_free(&cur);
    return rc;
}
