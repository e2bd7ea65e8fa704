/*
 * bench.h — internals of the benchmark framework: robust statistics, the run
 * context each benchmark group measures into, and the group registry.
 *
 * A group (one file per area: suite_ops.c, suite_lora.c, ...) sets up its data
 * once per case and calls wk_bench_measure with a function that performs one
 * iteration. The runner calibrates how many iterations make one sample, warms
 * up, takes N samples and records median, MAD and a confidence interval.
 */
#ifndef WK_BENCH_H
#define WK_BENCH_H

#include "wk.h"

/* ---- statistics (stats.c) */
typedef struct {
    int n;
    double median, mad, mean, min, max;
    double ci_lo, ci_hi, ci_level; /* order-statistic interval of the median */
} wk_stats;

/* Computes the statistics of x[0..n) (n >= 1); x is not modified. */
wick_status wk_stats_compute(const double *x, int n, wk_stats *out);
/* Picks the order-statistic interval [x(j), x(n+1-j)] (1-based, sorted) of the median with
 * coverage >= level, the narrowest such; *j_out = 1 (min..max) when n is too small. Returns its coverage. */
double wk_stats_median_ci_rank(int n, double level, int *j_out);

/* ---- a run in progress (runner.c) */
typedef struct wk_bench wk_bench;
typedef void (*wk_bench_iter_fn)(void *state);

typedef struct {
    const char *name;   /* full name "group/function/case" */
    double work;        /* work units per iteration (0 = no throughput) */
    const char *unit;   /* throughput unit, e.g. "elem/s" */
    double metric;      /* extra measured value, 0 = none */
    const char *metric_name;
    /* Optional: untimed preparation run before each sample (and during warm-up every
     * max_iters iterations), e.g. resetting a session; max_iters caps iterations per sample. */
    wk_bench_iter_fn before_sample;
    int64_t max_iters;
} wk_bench_case;

/* True when `name` is selected by the run's filter. In listing mode it records the
 * name and returns false, so groups call it before setting a case up. */
int wk_bench_selected(wk_bench *b, const char *name);
/* Measures fn(state) and records the result under c->name. WICK_ECANCELLED when the callback asked to stop. */
wick_status wk_bench_measure(wk_bench *b, const wk_bench_case *c, wk_bench_iter_fn fn, void *state);
/* Measures two cases with their samples interleaved (A B, B A, A B, ...), so that a change
 * in the machine's speed during the run hits both alike: for A/B claims such as overheads. */
wick_status wk_bench_measure_pair(wk_bench *b, const wk_bench_case *ca, wk_bench_iter_fn fa,
                                  const wk_bench_case *cb, wk_bench_iter_fn fb, void *state);
/* Records that a group did not run, and why (e.g. no CUDA implementation yet). */
void wk_bench_skip(wk_bench *b, const char *group, const char *reason);
int wk_bench_quick(const wk_bench *b);
const wick_bench_opts *wk_bench_opts(const wk_bench *b);
int wk_bench_cuda(const wk_bench *b);
/* The backend ops table benchmarks run on (the fast CPU backend; CUDA's once it is on main). */
struct wk_backend *wk_bench_backend(wk_bench *b);

/* ---- groups (one per benchmark_group of the seed) */
typedef struct {
    const char *suite;
    const char *group;
    int cuda;                          /* has a CUDA path */
    wick_status (*run)(wk_bench *b);
} wk_bench_group;

extern const wk_bench_group wk_bench_groups[];
extern const int wk_bench_n_groups;

/* ---- machine and build description (machine.c); each returns a new jansson object */
struct json_t;
struct json_t *wk_bench_machine_json(int with_gpu);
struct json_t *wk_bench_git_json(void);
struct json_t *wk_bench_build_json(void);

/* ---- models for the model suite and the profiler (suite_model.c) */
/* Writes init-model preset `preset` (bf16, seed 1) into the benchmark cache once and
 * puts its directory in out; later calls reuse it. */
wick_status wk_bench_preset_dir(const char *preset, char *out, size_t cap);
/* The models a run measures: --model's base name, or the presets (default qwen2.5-0.5b, tiny
 * with quick). Returns how many labels were written (at most max). */
int wk_bench_model_labels(wk_bench *b, char labels[][128], int max);
/* The directory of a label (the --model directory, or the preset written to the cache). */
wick_status wk_bench_model_dir(wk_bench *b, const char *label, char *dir, size_t cap);
/* Loads a model on the run's device. */
wick_status wk_bench_model_load(wk_bench *b, const char *dir, wick_model **out);

/* ---- deterministic data for benchmark inputs */
void wk_bench_fill(float *x, size_t n, uint64_t seed, float scale); /* uniform in [-scale, scale] */
void *wk_bench_sink(void *p); /* keeps a result alive so the compiler cannot drop the work */

#endif
