/*
 * runner.c — runs benchmark groups: calibration, warm-up, N timed samples,
 * statistics, the results JSON document, and the progress callback.
 */
#define _GNU_SOURCE
#include "bench.h"
#include "backend/backend.h"

#include <fnmatch.h>
#include <jansson.h>
#include <stdlib.h>
#include <time.h>

struct wk_bench {
    wick_bench_opts o;
    int runs;                  /* samples per benchmark (at most, under a time budget) */
    double target_s, warmup_s; /* time of one sample; warm-up time */
    double budget_s;           /* default runs: stop sampling past this, after MIN_SAMPLES; 0 = none */
    int list_only;
    const char *suite;         /* suite of the group running now */
    json_t *results, *skipped, *names;
    wick_bench_fn fn;
    void *user;
};

/* ---- the registry: one entry per benchmark group, in the order they run */
wick_status wk_bench_layer_ops(wk_bench *b);
wick_status wk_bench_kv_cache(wk_bench *b);
wick_status wk_bench_lora_forward(wk_bench *b);
wick_status wk_bench_lora_rank_scaling(wk_bench *b);
wick_status wk_bench_lora_fused(wk_bench *b);
wick_status wk_bench_gradient_computation(wk_bench *b);
wick_status wk_bench_optimizer_step(wk_bench *b);
wick_status wk_bench_full_training_step(wk_bench *b);
wick_status wk_bench_model(wk_bench *b);
wick_status wk_bench_calibration(wk_bench *b);
wick_status wk_bench_adapters(wk_bench *b);
wick_status wk_bench_embed(wk_bench *b);
wick_status wk_bench_sampling_strategies(wk_bench *b);
wick_status wk_bench_sampling_vocab(wk_bench *b);
wick_status wk_bench_generation_cycle(wk_bench *b);
wick_status wk_bench_streaming(wk_bench *b);

const wk_bench_group wk_bench_groups[] = {
    {"calibration", "calibration", 1, wk_bench_calibration}, /* runs with every suite */
    {"inference", "layer_operations", 0, wk_bench_layer_ops},
    {"inference", "kv_cache", 0, wk_bench_kv_cache},
    {"inference", "embed_throughput", 0, wk_bench_embed},
    {"inference", "generation_simulation", 0, wk_bench_generation_cycle},
    {"sampling", "sampling_strategies", 0, wk_bench_sampling_strategies},
    {"sampling", "sampling_vocab_scaling", 0, wk_bench_sampling_vocab},
    {"lora", "lora_forward", 0, wk_bench_lora_forward},
    {"lora", "lora_rank_scaling", 0, wk_bench_lora_rank_scaling},
    {"lora", "lora_fused_vs_unfused", 0, wk_bench_lora_fused},
    {"training", "gradient_computation", 0, wk_bench_gradient_computation},
    {"training", "optimizer_step", 0, wk_bench_optimizer_step},
    {"training", "full_training_step", 0, wk_bench_full_training_step},
    {"adapters", "adapters", 1, wk_bench_adapters},
    {"streaming", "streaming_overhead", 1, wk_bench_streaming},
    {"model", "model", 1, wk_bench_model},
};
const int wk_bench_n_groups = (int)WK_ARRAY_LEN(wk_bench_groups);

static const char *const k_suites[] = {"all", "inference", "sampling", "lora", "training",
                                       "adapters", "streaming", "model"};

int wk_bench_quick(const wk_bench *b) { return b->o.quick; }
const wick_bench_opts *wk_bench_opts(const wk_bench *b) { return &b->o; }
int wk_bench_cuda(const wk_bench *b) { return b->o.device && !strcmp(b->o.device, "cuda"); }

wk_backend *wk_bench_backend(wk_bench *b) {
    (void)b;
    return wk_backend_cpu();
}

int wk_bench_selected(wk_bench *b, const char *name) {
    if (b->o.filter && *b->o.filter && fnmatch(b->o.filter, name, 0) != 0) return 0;
    if (b->list_only) { /* a group may ask about a name twice (setup check, then the case) */
        size_t i;
        json_t *v;
        json_array_foreach(b->names, i, v) if (!strcmp(json_string_value(v), name)) return 0;
        json_array_append_new(b->names, json_string(name));
        return 0;
    }
    return 1;
}

void wk_bench_skip(wk_bench *b, const char *group, const char *reason) {
    if (b->list_only) return;
    json_array_append_new(b->skipped, json_pack("{s:s, s:s}", "group", group, "reason", reason));
}

/* Runs fn until warm-up time has passed; returns the mean time of one iteration
 * (the untimed before_sample preparations excluded). */
static double warm_up(wk_bench *b, const wk_bench_case *c, wk_bench_iter_fn fn, void *state) {
    double t0 = wk_now(), el = 0, prep = 0;
    int64_t k = 0;
    do {
        if (c->before_sample && (k == 0 || (c->max_iters > 0 && k % c->max_iters == 0))) {
            double p0 = wk_now();
            c->before_sample(state);
            prep += wk_now() - p0;
        }
        fn(state);
        k++;
        el = wk_now() - t0 - prep;
    } while (el < b->warmup_s && k < 1000000);
    return el / (double)k;
}

static json_t *result_json(const wk_bench *b, const wk_bench_case *c, const wk_stats *st, int64_t iters,
                           const double *xs) {
    json_t *samples = json_array();
    for (int i = 0; i < st->n; i++) json_array_append_new(samples, json_real(xs[i]));
    json_t *r = json_pack("{s:s, s:s, s:i, s:I, s:f, s:f, s:f, s:f, s:f, s:{s:f, s:f, s:f}, s:o}", "name",
                          c->name, "suite", b->suite, "samples", st->n, "iters_per_sample", (json_int_t)iters,
                          "median_s", st->median, "mad_s", st->mad, "mean_s", st->mean, "min_s", st->min,
                          "max_s", st->max, "ci", "level", st->ci_level, "lo_s", st->ci_lo, "hi_s", st->ci_hi,
                          "samples_s", samples);
    if (c->work > 0 && st->median > 0)
        json_object_set_new(r, "throughput",
                            json_pack("{s:f, s:s}", "value", c->work / st->median, "unit", c->unit ? c->unit : ""));
    if (c->metric_name && *c->metric_name)
        json_object_set_new(r, "metric", json_pack("{s:s, s:f}", "name", c->metric_name, "value", c->metric));
    return r;
}

static int report(wk_bench *b, const wk_bench_case *c, const wk_stats *st, int64_t iters) {
    if (!b->fn) return 0;
    wick_bench_result r = {
        .name = c->name, .suite = b->suite, .samples = st->n, .iters_per_sample = iters,
        .median_s = st->median, .mad_s = st->mad, .ci_lo_s = st->ci_lo, .ci_hi_s = st->ci_hi,
        .ci_level = st->ci_level, .mean_s = st->mean, .min_s = st->min, .max_s = st->max,
        .throughput = (c->work > 0 && st->median > 0) ? c->work / st->median : 0,
        .throughput_unit = c->unit ? c->unit : "", .metric = c->metric,
        .metric_name = c->metric_name ? c->metric_name : "",
    };
    return b->fn(&r, b->user);
}

static int filtered_out(const wk_bench *b, const char *name) {
    return b->list_only || (b->o.filter && *b->o.filter && fnmatch(b->o.filter, name, 0) != 0);
}

/* Warms up and returns the iterations one sample should hold. */
static int64_t calibrate(wk_bench *b, const wk_bench_case *c, wk_bench_iter_fn fn, void *state) {
    double per_iter = warm_up(b, c, fn, state);
    int64_t iters = per_iter > 0 ? (int64_t)(b->target_s / per_iter + 0.5) : 1000;
    if (iters < 1) iters = 1;
    if (iters > 100000000) iters = 100000000;
    if (c->max_iters > 0 && iters > c->max_iters) iters = c->max_iters;
    return iters;
}

/* One timed sample: seconds per iteration. */
static double sample(const wk_bench_case *c, wk_bench_iter_fn fn, void *state, int64_t iters) {
    if (c->before_sample) c->before_sample(state);
    double t0 = wk_now();
    for (int64_t i = 0; i < iters; i++) fn(state);
    return (wk_now() - t0) / (double)iters;
}

enum { MIN_SAMPLES = 5 };

/* Whether to stop sampling after n samples that began at t0: only with default runs, once
 * MIN_SAMPLES are in and the time budget is spent (a whole-model step can take seconds). */
static int out_of_time(const wk_bench *b, int n, double t0) {
    return b->budget_s > 0 && n >= MIN_SAMPLES && wk_now() - t0 > b->budget_s;
}

/* Statistics, the JSON entry and the callback for one case's n samples. */
static wick_status record(wk_bench *b, const wk_bench_case *c, const double *xs, int n, int64_t iters) {
    wk_stats st;
    wick_status rc = wk_stats_compute(xs, n, &st);
    if (rc != WICK_OK) return rc;
    json_array_append_new(b->results, result_json(b, c, &st, iters, xs));
    if (report(b, c, &st, iters)) rc = wk_err(WICK_ECANCELLED, "benchmark run stopped by the caller");
    return rc;
}

wick_status wk_bench_measure(wk_bench *b, const wk_bench_case *c, wk_bench_iter_fn fn, void *state) {
    if (filtered_out(b, c->name)) return WICK_OK;
    int64_t iters = calibrate(b, c, fn, state);
    double *xs = wk_malloc(sizeof(double) * (size_t)b->runs, "benchmark samples");
    if (!xs) return WICK_ENOMEM;
    int n = 0;
    for (double t0 = wk_now(); n < b->runs && !out_of_time(b, n, t0); n++) xs[n] = sample(c, fn, state, iters);
    wick_status rc = record(b, c, xs, n, iters);
    wk_free(xs);
    return rc;
}

wick_status wk_bench_measure_pair(wk_bench *b, const wk_bench_case *ca, wk_bench_iter_fn fa,
                                  const wk_bench_case *cb, wk_bench_iter_fn fb, void *state) {
    int want_a = !filtered_out(b, ca->name), want_b = !filtered_out(b, cb->name);
    if (!want_a || !want_b) {
        wick_status rc = want_a ? wk_bench_measure(b, ca, fa, state) : WICK_OK;
        return rc == WICK_OK && want_b ? wk_bench_measure(b, cb, fb, state) : rc;
    }
    int64_t ia = calibrate(b, ca, fa, state), ib = calibrate(b, cb, fb, state);
    double *xs = wk_malloc(sizeof(double) * 2 * (size_t)b->runs, "benchmark samples");
    if (!xs) return WICK_ENOMEM;
    int n = 0;
    for (double t0 = wk_now(); n < b->runs && !out_of_time(b, n, t0); n++) { /* A B, B A, ...: drift hits both */
        int i = n;
        if (i & 1) {
            xs[b->runs + i] = sample(cb, fb, state, ib);
            xs[i] = sample(ca, fa, state, ia);
        } else {
            xs[i] = sample(ca, fa, state, ia);
            xs[b->runs + i] = sample(cb, fb, state, ib);
        }
    }
    wick_status rc = record(b, ca, xs, n, ia);
    if (rc == WICK_OK) rc = record(b, cb, xs + b->runs, n, ib);
    wk_free(xs);
    return rc;
}

/* ---- options and the document */
wick_bench_opts wick_bench_opts_default(void) {
    wick_bench_opts o = {.suite = "all", .device = "cpu", .runs = 0, .quick = 0, .threads = 0};
    return o;
}

static wick_status check_opts(const wick_bench_opts *o) {
    int ok = 0;
    for (size_t i = 0; i < WK_ARRAY_LEN(k_suites); i++) ok |= !strcmp(o->suite, k_suites[i]);
    if (!ok)
        return wk_err(WICK_EINVAL, "suite '%s': expected all, inference, sampling, lora, training, adapters, "
                                   "streaming or model", o->suite);
    if (strcmp(o->device, "cpu") != 0 && strcmp(o->device, "cuda") != 0)
        return wk_err(WICK_EINVAL, "device '%s': expected cpu or cuda", o->device);
#ifndef WICK_HAVE_CUDA
    if (!strcmp(o->device, "cuda"))
        return wk_err(WICK_EUNSUPPORTED, "device 'cuda': this build of wick has no CUDA backend");
#endif
    if (o->runs < 0 || o->runs > 100000)
        return wk_err(WICK_EINVAL, "runs %d: expected 1..100000 (0 = default)", o->runs);
    return WICK_OK;
}

static void init_bench(wk_bench *b, const wick_bench_opts *o) {
    wick_bench_opts d = wick_bench_opts_default();
    memset(b, 0, sizeof *b);
    b->o = o ? *o : d;
    if (!b->o.suite) b->o.suite = d.suite;
    if (!b->o.device) b->o.device = d.device;
    b->runs = b->o.runs > 0 ? b->o.runs : (b->o.quick ? 5 : 20);
    b->budget_s = b->o.runs > 0 ? 0 : 15.0; /* an explicit --runs is honoured exactly */
    b->target_s = b->o.quick ? 0.004 : 0.02;
    b->warmup_s = b->o.quick ? 0.03 : 0.2;
}

static wick_status run_groups(wk_bench *b) {
    for (int i = 0; i < wk_bench_n_groups; i++) {
        const wk_bench_group *g = &wk_bench_groups[i];
        int always = !strcmp(g->suite, "calibration");
        if (!always && strcmp(b->o.suite, "all") != 0 && strcmp(b->o.suite, g->suite) != 0) continue;
        if (wk_bench_cuda(b) && !g->cuda) {
            wk_bench_skip(b, g->group, "no CUDA implementation of this group; run it with --device cpu");
            continue;
        }
        b->suite = g->suite;
        wick_status rc = g->run(b);
        if (rc != WICK_OK) return rc == WICK_ECANCELLED ? rc : wk_err_prefix(rc, "benchmark group %s", g->group);
    }
    return WICK_OK;
}

static json_t *config_json(const wk_bench *b) {
    return json_pack("{s:s, s:s, s:i, s:b, s:s, s:i}", "suite", b->o.suite, "device", b->o.device, "runs",
                     b->runs, "quick", b->o.quick != 0, "filter", b->o.filter ? b->o.filter : "", "threads",
                     wick_get_threads());
}

static char *utc_now(char *buf, size_t cap) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

wick_status wick_bench_run(const wick_bench_opts *o, wick_bench_fn fn, void *user, char **json_out) {
    if (!json_out) return wk_err(WICK_EINVAL, "wick_bench_run: json_out is NULL");
    *json_out = NULL;
    wk_bench b;
    init_bench(&b, o);
    wick_status rc = check_opts(&b.o);
    if (rc != WICK_OK) return rc;
    if (b.o.threads > 0) wick_set_threads(b.o.threads);
    b.fn = fn;
    b.user = user;
    b.results = json_array();
    b.skipped = json_array();
    char date[32];
    json_t *doc = json_pack("{s:s, s:i, s:s, s:s, s:o, s:o, s:o, s:o}", "schema", "wick-bench", "schema_version", 1,
                            "wick_version", WICK_VERSION, "date", utc_now(date, sizeof date), "git",
                            wk_bench_git_json(), "build", wk_bench_build_json(), "machine",
                            wk_bench_machine_json(wk_bench_cuda(&b)), "config", config_json(&b));
    rc = run_groups(&b);
    json_object_set_new(doc, "results", b.results);
    json_object_set_new(doc, "skipped", b.skipped);
    if (rc == WICK_OK) {
        char *s = json_dumps(doc, JSON_INDENT(1) | JSON_REAL_PRECISION(9));
        *json_out = s ? wk_strdup(s) : NULL;
        free(s);
        if (!*json_out) rc = wk_err(WICK_ENOMEM, "benchmark results: cannot serialise the JSON document");
    }
    json_decref(doc);
    return rc;
}

wick_status wick_bench_list(const wick_bench_opts *o, char **list_out) {
    if (!list_out) return wk_err(WICK_EINVAL, "wick_bench_list: list_out is NULL");
    *list_out = NULL;
    wk_bench b;
    init_bench(&b, o);
    wick_status rc = check_opts(&b.o);
    if (rc != WICK_OK) return rc;
    b.list_only = 1;
    b.names = json_array();
    rc = run_groups(&b);
    size_t len = 1, i;
    json_t *v;
    json_array_foreach(b.names, i, v) len += strlen(json_string_value(v)) + 1;
    char *out = rc == WICK_OK ? wk_malloc(len, "benchmark list") : NULL;
    if (out) {
        char *p = out;
        json_array_foreach(b.names, i, v) p += sprintf(p, "%s\n", json_string_value(v));
        *p = 0;
    } else if (rc == WICK_OK) {
        rc = WICK_ENOMEM;
    }
    json_decref(b.names);
    *list_out = out;
    return rc;
}

/* ---- input data */
void wk_bench_fill(float *x, size_t n, uint64_t seed, float scale) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = scale * (2.0f * (float)((s >> 40) & 0xFFFFFF) / 16777216.0f - 1.0f);
    }
}

void *wk_bench_sink(void *p) {
    __asm__ __volatile__("" : : "g"(p) : "memory");
    return p;
}
