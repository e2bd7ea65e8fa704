/*
 * claims.c — validation of performance claims from a budgets file:
 *
 *   {"schema_version": 1, "claims": [
 *     {"id": "adapter-load", "claim": "adapter load < 500 ms for r8-r32",
 *      "benchmark": ["adapter_loading/MODEL/rank_8", "adapter_loading/MODEL/rank_32"],
 *      "metric": "median", "op": "<", "limit": 500, "unit": "ms"},
 *     {"id": "streaming-overhead", "benchmark": "streaming_overhead/MODEL/streaming_32",
 *      "relative_to": "streaming_overhead/MODEL/non_streaming_32",
 *      "metric": "overhead", "limit": 5, "unit": "%"}]}
 *
 * benchmark: a name or shell glob, or an array of them. metric: median | ci_hi | mean
 * (time; unit ns, us, ms, s), throughput (unit: the result's unit, optionally with a
 * k/M/G/T prefix), overhead (median relative to relative_to, in %; when relative_to
 * matches several results, the one sharing the longest name prefix), overhead_min (the
 * same from the fastest samples: robust on a busy machine), metric (the
 * result's extra value; unit B, KiB, MiB, GiB or none). op defaults to "<" ("<=",
 * ">", ">=" also), except ">" for throughput. A claim is validated when every
 * pattern matched and every matched result meets the limit, failed when any
 * matched result misses it, and not measured otherwise.
 */
#define _GNU_SOURCE
#include "compare.h"

#include <fnmatch.h>
#include <math.h>

typedef struct {
    const char *id, *text, *metric, *op, *unit, *relative_to;
    double limit;
    json_t *patterns; /* array of strings (borrowed or owned, see owns) */
} claim;

static double time_unit(const char *u) {
    if (!strcmp(u, "ns")) return 1e9;
    if (!strcmp(u, "us") || !strcmp(u, "µs")) return 1e6;
    if (!strcmp(u, "ms")) return 1e3;
    if (!strcmp(u, "s")) return 1;
    return 0;
}

static double byte_unit(const char *u) {
    static const struct {
        const char *u;
        double div;
    } t[] = {{"", 1}, {"B", 1}, {"bytes", 1}, {"KiB", 1024}, {"MiB", 1048576}, {"GiB", 1073741824},
             {"kB", 1e3}, {"MB", 1e6}, {"GB", 1e9}};
    for (size_t i = 0; i < WK_ARRAY_LEN(t); i++)
        if (!strcmp(u, t[i].u)) return t[i].div;
    return 0;
}

/* Throughput scale: unit == base or a k/M/G/T prefix followed by base. 0 when it does not match. */
static double rate_unit(const char *u, const char *base) {
    static const char pre[] = "kMGT";
    if (!base) return 0;
    if (!strcmp(u, base)) return 1;
    const char *p = strchr(pre, u[0]);
    if (u[0] && p && !strcmp(u + 1, base)) return pow(1000.0, (double)(p - pre + 1));
    return 0;
}

static wick_status parse_claim(json_t *j, const char *path, size_t idx, claim *c) {
    memset(c, 0, sizeof *c);
    json_t *bm = json_object_get(j, "benchmark"), *lim = json_object_get(j, "limit");
    c->metric = json_string_value(json_object_get(j, "metric"));
    c->unit = json_string_value(json_object_get(j, "unit"));
    if (!json_is_object(j) || !(json_is_string(bm) || json_is_array(bm)) || !json_is_number(lim) || !c->metric ||
        !c->unit)
        return wk_err(WICK_EFORMAT, "%s: claims[%zu]: expected \"benchmark\" (name, glob or array), \"metric\", "
                                    "\"limit\" (number) and \"unit\"", path, idx);
    c->patterns = json_is_string(bm) ? json_pack("[O]", bm) : json_incref(bm);
    c->limit = json_number_value(lim);
    c->text = json_string_value(json_object_get(j, "claim"));
    c->id = json_string_value(json_object_get(j, "id"));
    c->relative_to = json_string_value(json_object_get(j, "relative_to"));
    c->op = json_string_value(json_object_get(j, "op"));
    if (!c->op) c->op = !strcmp(c->metric, "throughput") ? ">" : "<";
    if (!c->id) c->id = c->text ? c->text : json_string_value(json_array_get(c->patterns, 0));
    if (!c->text) c->text = c->id;
    const char *m = c->metric;
    int time_m = !strcmp(m, "median") || !strcmp(m, "ci_hi") || !strcmp(m, "mean");
    const char *bad = NULL;
    int over = !strcmp(m, "overhead") || !strcmp(m, "overhead_min");
    if (!time_m && !over && strcmp(m, "throughput") && strcmp(m, "metric"))
        bad = "\"metric\": expected median, ci_hi, mean, throughput, overhead, overhead_min or metric";
    else if (time_m && !time_unit(c->unit)) bad = "\"unit\": a time metric takes ns, us, ms or s";
    else if (over && (strcmp(c->unit, "%") || !c->relative_to))
        bad = "an overhead claim takes \"unit\": \"%\" and \"relative_to\": a benchmark name";
    else if (!strcmp(m, "metric") && !byte_unit(c->unit)) bad = "\"unit\": a metric claim takes B, KiB, MiB or GiB";
    else if (strcmp(c->op, "<") && strcmp(c->op, "<=") && strcmp(c->op, ">") && strcmp(c->op, ">="))
        bad = "\"op\": expected <, <=, > or >=";
    for (size_t i = 0; !bad && i < json_array_size(c->patterns); i++)
        if (!json_is_string(json_array_get(c->patterns, i))) bad = "\"benchmark\": array entries must be strings";
    if (bad) {
        json_decref(c->patterns);
        return wk_err(WICK_EFORMAT, "%s: claims[%zu] '%s': %s", path, idx, c->id ? c->id : "?", bad);
    }
    return WICK_OK;
}

/* The claim's metric of entry e in the claim's unit; NAN when it cannot be measured. */
static double measure(const claim *c, const wk_cmp_file *cur, const wk_cmp_entry *e) {
    const char *m = c->metric;
    if (!strcmp(m, "median")) return e->med * time_unit(c->unit);
    if (!strcmp(m, "ci_hi")) return e->hi * time_unit(c->unit);
    if (!strcmp(m, "mean")) {
        json_t *r = json_array_get(json_object_get(cur->doc, "results"), (size_t)(e - cur->e));
        return json_number_value(json_object_get(r, "mean_s")) * time_unit(c->unit);
    }
    if (!strcmp(m, "throughput")) {
        double s = rate_unit(c->unit, e->tp_unit);
        return s > 0 && e->tp > 0 ? e->tp / s : NAN;
    }
    if (!strcmp(m, "metric")) return e->metric_name ? e->metric / byte_unit(c->unit) : NAN;
    /* overhead: against the match of relative_to that shares the longest prefix with e's name
     * (so "x/tiny/streaming" pairs with "x/tiny/non_streaming", not another model's) */
    const wk_cmp_entry *ref = NULL;
    size_t best = 0;
    for (int i = 0; i < cur->n; i++) {
        if (fnmatch(c->relative_to, cur->e[i].name, 0) != 0 || !(cur->e[i].med > 0) || &cur->e[i] == e) continue;
        size_t k = 0;
        while (e->name[k] && e->name[k] == cur->e[i].name[k]) k++;
        if (!ref || k > best) ref = &cur->e[i], best = k;
    }
    if (!ref) return NAN;
    if (!strcmp(m, "overhead_min")) return e->min > 0 && ref->min > 0 ? (e->min / ref->min - 1.0) * 100.0 : NAN;
    return (e->med / ref->med - 1.0) * 100.0;
}

static int meets(const claim *c, double v) {
    if (!strcmp(c->op, "<")) return v < c->limit;
    if (!strcmp(c->op, "<=")) return v <= c->limit;
    if (!strcmp(c->op, ">")) return v > c->limit;
    return v >= c->limit;
}

/* Evaluates one claim into a report object; returns its status. */
static const char *evaluate(const claim *c, const wk_cmp_file *cur, json_t *out) {
    json_t *res = json_array(), *missing = json_array();
    int failed = 0, any = 0, lower = c->op[0] == '<';
    double worst = NAN;
    const char *worst_name = NULL;
    for (size_t p = 0; p < json_array_size(c->patterns); p++) {
        const char *pat = json_string_value(json_array_get(c->patterns, p));
        int matched = 0;
        for (int i = 0; i < cur->n; i++) {
            if (fnmatch(pat, cur->e[i].name, 0) != 0) continue;
            double v = measure(c, cur, &cur->e[i]);
            if (isnan(v)) continue;
            int ok = meets(c, v);
            matched = any = 1;
            failed |= !ok;
            if (isnan(worst) || (lower ? v > worst : v < worst)) worst = v, worst_name = cur->e[i].name;
            json_array_append_new(res, json_pack("{s:s, s:f, s:b}", "name", cur->e[i].name, "value", v, "ok", ok));
        }
        if (!matched) json_array_append_new(missing, json_string(pat));
    }
    const char *status = failed ? "failed" : (json_array_size(missing) == 0 && any) ? "validated" : "not_measured";
    json_object_set_new(out, "status", json_string(status));
    json_object_set_new(out, "results", res);
    json_object_set_new(out, "missing", missing);
    if (any) {
        json_object_set_new(out, "measured", json_real(worst));
        json_object_set_new(out, "measured_in", json_string(worst_name));
    }
    return status;
}

wick_status wk_cmp_claims(const char *path, const wk_cmp_file *cur, wick_bench_summary *s, json_t *claims,
                          json_t *not_measured) {
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (!doc) return wk_cmp_json_error(path, &jerr);
    json_t *arr = json_object_get(doc, "claims");
    wick_status rc = WICK_OK;
    if (!json_is_array(arr)) rc = wk_err(WICK_EFORMAT, "%s: \"claims\": expected an array", path);
    for (size_t i = 0; rc == WICK_OK && i < json_array_size(arr); i++) {
        claim c;
        rc = parse_claim(json_array_get(arr, i), path, i, &c);
        if (rc != WICK_OK) break;
        json_t *o = json_pack("{s:s, s:s, s:O, s:s, s:s, s:f, s:s}", "id", c.id, "claim", c.text, "benchmark",
                              c.patterns, "metric", c.metric, "op", c.op, "limit", c.limit, "unit", c.unit);
        if (c.relative_to) json_object_set_new(o, "relative_to", json_string(c.relative_to));
        const char *st = evaluate(&c, cur, o);
        if (!strcmp(st, "failed")) s->claims_failed++;
        else if (!strcmp(st, "validated")) s->claims_validated++;
        else s->claims_not_measured++, json_array_append_new(not_measured, json_string(c.id));
        json_array_append_new(claims, o);
        json_decref(c.patterns);
    }
    json_decref(doc);
    return rc;
}
