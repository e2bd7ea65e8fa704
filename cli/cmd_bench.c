/*
 * cmd_bench.c — `wick bench`: run benchmark suites and print a table (and a
 * results JSON), `wick bench compare` two results files against each other and
 * a claims file, `wick bench list` the benchmark names.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *k_usage =
    "usage: wick bench [--suite all|inference|sampling|lora|training|adapters|streaming|model]\n"
    "                  [--device cpu|cuda] [--runs N] [--quick] [--filter GLOB] [--threads N]\n"
    "                  [--model DIR | --preset NAME[,NAME]] [--json FILE] [--quiet]\n"
    "       wick bench list [same options as a run]\n"
    "       wick bench compare BASE.json NEW.json [--threshold 5%] [--budgets FILE] [--format md|json]\n"
    "                  [--out FILE]\n"
    "       wick bench compare NEW.json --budgets FILE      (claims only)\n"
    "       wick bench profile [--model DIR | --preset NAME] [--prompt P] [--steps N] [--threads N]\n"
    "                  [--no-training] [--format md|json] [--out FILE]\n"
    "\n"
    "Runs each benchmark with warm-up, then N timed samples (default 20, 5 with --quick), and\n"
    "reports median, MAD, a 95% order-statistic confidence interval of the median and throughput.\n"
    "--json writes the results document (schema_version, git commit, build flags, date, machine).\n"
    "The model suite measures prefill and decode tok/s on --model DIR, or on init-model presets\n"
    "(default qwen2.5-0.5b, tiny with --quick) written once under $WICK_BENCH_CACHE or\n"
    "$TMPDIR/wick-bench-models.\n"
    "compare: a change is a regression/improvement only when it exceeds --threshold and the two\n"
    "confidence intervals do not overlap; severity critical >= 2x, moderate >= 1.2x, else minor.\n"
    "Exit status of compare: 0 pass, 1 critical regression or failed claim, 2 bad input.\n"
    "profile: time per phase and op type of a prompt (default 128 tokens), of decode steps\n"
    "(default 16) and of a LoRA training step (r8, 4x64 tokens), each op synced; model as for\n"
    "the model suite (default preset qwen2.5-0.5b).\n";

static void fmt_time(double s, char *buf, size_t cap) {
    double a = s < 0 ? -s : s;
    if (a < 1e-6) snprintf(buf, cap, "%.1f ns", s * 1e9);
    else if (a < 1e-3) snprintf(buf, cap, "%.2f us", s * 1e6);
    else if (a < 1) snprintf(buf, cap, "%.2f ms", s * 1e3);
    else snprintf(buf, cap, "%.3f s", s);
}

static void fmt_rate(double v, const char *unit, char *buf, size_t cap) {
    static const char *pre[] = {"", "k", "M", "G", "T"};
    int i = 0;
    while (v >= 1000 && i < 4) v /= 1000, i++;
    snprintf(buf, cap, "%.2f %s%s", v, pre[i], unit);
}

static int print_row(const wick_bench_result *r, void *user) {
    int *state = user; /* 0: header not printed yet, 1: printed, 2: --quiet */
    if (*state == 2) return 0;
    if (*state == 0)
        printf("%-52s %11s %10s  %-24s  %s\n", "benchmark", "median", "MAD", "95% CI of median", "throughput");
    *state = 1;
    char med[32], mad[32], lo[32], hi[32], tp[48] = "";
    fmt_time(r->median_s, med, sizeof med);
    fmt_time(r->mad_s, mad, sizeof mad);
    fmt_time(r->ci_lo_s, lo, sizeof lo);
    fmt_time(r->ci_hi_s, hi, sizeof hi);
    if (r->throughput > 0) fmt_rate(r->throughput, r->throughput_unit, tp, sizeof tp);
    if (r->metric_name[0]) {
        size_t l = strlen(tp);
        snprintf(tp + l, sizeof tp - l, "%s%s=%.0f", l ? "  " : "", r->metric_name, r->metric);
    }
    printf("%-52s %11s %10s  [%s, %s]  %s\n", r->name, med, mad, lo, hi, tp);
    fflush(stdout);
    return 0;
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "wick bench: %s: cannot write the file\n", path);
        if (f) fclose(f);
        return 1;
    }
    return 0;
}

static int parse_threshold(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    int pct = *end == '%';
    if (end == s || (*end && strcmp(end, "%") != 0) || v < 0) return 1;
    *out = (pct || v >= 1) ? v / 100.0 : v;
    return 0;
}

static int cmd_compare(int argc, char **argv) {
    const char *files[2] = {NULL, NULL}, *out = NULL, *v;
    int nfiles = 0;
    wick_bench_compare_opts o = {.threshold = 0.05, .budgets = NULL, .format_json = 0};
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--threshold"))) {
            if (parse_threshold(v, &o.threshold))
                return cli_usage_error("bench", "--threshold expects a percentage like 5%%, got \"%s\"", v);
        } else if ((v = cli_opt(argc, argv, &i, "--budgets"))) {
            o.budgets = v;
        } else if ((v = cli_opt(argc, argv, &i, "--format"))) {
            if (strcmp(v, "md") && strcmp(v, "json"))
                return cli_usage_error("bench", "--format expects md or json, got \"%s\"", v);
            o.format_json = !strcmp(v, "json");
        } else if ((v = cli_opt(argc, argv, &i, "--out"))) {
            out = v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("bench", "compare: unknown option '%s'", argv[i]);
        } else if (nfiles < 2) {
            files[nfiles++] = argv[i];
        } else {
            return cli_usage_error("bench", "compare takes BASE.json NEW.json, got a third file '%s'", argv[i]);
        }
    }
    if (nfiles == 0 || (nfiles == 1 && !o.budgets))
        return cli_usage_error("bench", "compare needs BASE.json NEW.json (or NEW.json --budgets FILE)");
    const char *base = nfiles == 2 ? files[0] : NULL, *cur = nfiles == 2 ? files[1] : files[0];
    char *report = NULL;
    wick_bench_summary sum;
    wick_status st = wick_bench_compare(base, cur, &o, &report, &sum);
    if (st != WICK_OK) {
        cli_fail("bench", "compare", st);
        return 2;
    }
    int rc = out ? write_text(out, report) : (fputs(report, stdout), 0);
    wick_free(report);
    if (rc) return 2;
    return (sum.critical > 0 || sum.claims_failed > 0) ? 1 : 0;
}

/* Runs the suite, or with `list` first prints the names it would run. */
static int cmd_run(int argc, char **argv) {
    wick_bench_opts o = wick_bench_opts_default();
    const char *json = NULL, *v;
    int quiet = 0, list = argc >= 2 && !strcmp(argv[1], "list");
    long n;
    for (int i = 1 + list; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--suite"))) o.suite = v;
        else if ((v = cli_opt(argc, argv, &i, "--model"))) o.model = v;
        else if ((v = cli_opt(argc, argv, &i, "--preset"))) o.presets = v;
        else if ((v = cli_opt(argc, argv, &i, "--device"))) o.device = v;
        else if ((v = cli_opt(argc, argv, &i, "--filter"))) o.filter = v;
        else if ((v = cli_opt(argc, argv, &i, "--json"))) json = v;
        else if ((v = cli_opt(argc, argv, &i, "--runs"))) {
            if (cli_int("bench", "--runs", v, &n)) return 2;
            if (n < 1 || n > 100000) return cli_usage_error("bench", "--runs expects 1..100000, got %ld", n);
            o.runs = (int)n;
        } else if ((v = cli_opt(argc, argv, &i, "--threads"))) {
            if (cli_int("bench", "--threads", v, &n)) return 2;
            if (n < 0 || n > 4096) return cli_usage_error("bench", "--threads expects 0..4096, got %ld", n);
            o.threads = (int)n;
        } else if (cli_flag(argv, i, "--quick")) o.quick = 1;
        else if (cli_flag(argv, i, "--quiet")) quiet = 1;
        else return cli_usage_error("bench", "unknown option or missing value '%s'", argv[i]);
    }
    if (list) {
        char *names = NULL;
        wick_status st = wick_bench_list(&o, &names);
        if (st != WICK_OK) return cli_fail("bench", "list", st);
        fputs(names, stdout);
        wick_free(names);
        return 0;
    }
    char *doc = NULL;
    int table = quiet ? 2 : 0;
    wick_status st = wick_bench_run(&o, print_row, &table, &doc);
    if (st != WICK_OK) return cli_fail("bench", "run", st);
    int rc = json ? write_text(json, doc) : 0;
    wick_free(doc);
    return rc;
}

static int cmd_profile(int argc, char **argv) {
    wick_bench_profile_opts o = {0};
    const char *out = NULL, *v;
    long n;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--model"))) o.model = v;
        else if ((v = cli_opt(argc, argv, &i, "--preset"))) o.preset = v;
        else if ((v = cli_opt(argc, argv, &i, "--out"))) out = v;
        else if (cli_flag(argv, i, "--no-training")) o.no_training = 1;
        else if ((v = cli_opt(argc, argv, &i, "--format"))) {
            if (strcmp(v, "md") && strcmp(v, "json"))
                return cli_usage_error("bench", "--format expects md or json, got \"%s\"", v);
            o.format_json = !strcmp(v, "json");
        } else if ((v = cli_opt(argc, argv, &i, "--prompt")) || (v = cli_opt(argc, argv, &i, "--steps")) ||
                   (v = cli_opt(argc, argv, &i, "--threads"))) {
            const char *opt = argv[i - 1];
            if (cli_int("bench", opt, v, &n)) return 2;
            if (n < 1 || n > 100000) return cli_usage_error("bench", "%s expects 1..100000, got %ld", opt, n);
            if (!strcmp(opt, "--prompt")) o.prompt = (int)n;
            else if (!strcmp(opt, "--steps")) o.steps = (int)n;
            else o.threads = (int)n;
        } else return cli_usage_error("bench", "profile: unknown option or missing value '%s'", argv[i]);
    }
    char *report = NULL;
    wick_status st = wick_bench_profile(&o, &report);
    if (st != WICK_OK) return cli_fail("bench", "profile", st);
    int rc = out ? write_text(out, report) : (fputs(report, stdout), 0);
    wick_free(report);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "profile")) {
        if (cli_wants_help(argc - 1, argv + 1)) return fputs(k_usage, stdout), 0;
        return cmd_profile(argc - 1, argv + 1);
    }
    if (argc >= 2 && !strcmp(argv[1], "compare")) {
        if (cli_wants_help(argc - 1, argv + 1)) return fputs(k_usage, stdout), 0;
        return cmd_compare(argc - 1, argv + 1);
    }
    if (cli_wants_help(argc, argv)) return fputs(k_usage, stdout), 0;
    return cmd_run(argc, argv);
}
