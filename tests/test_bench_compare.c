/* test_bench_compare.c — `wick bench compare` on synthetic results files: an injected 4x
 * regression is critical, changes inside the noise stay quiet, a failed claim is flagged,
 * a missing benchmark is "not measured", exit codes; plus the median/MAD/CI statistics. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "t.h"

static char dir[64];

/* One result entry: median m (ms) with its interval [lo, hi] (ms). */
typedef struct {
    const char *name;
    double m, lo, hi;
} res;

static const char *write_results(const char *file, const res *r, int n, const char *cpu) {
    static char paths[8][128];
    static int k;
    char *p = paths[k++ % 8];
    snprintf(p, 128, "%s/%s", dir, file);
    FILE *f = fopen(p, "w");
    fprintf(f, "{\"schema\":\"wick-bench\",\"schema_version\":1,\"date\":\"2026-01-01T00:00:00Z\","
               "\"git\":{\"commit\":\"abc\"},\"machine\":{\"cpu\":\"%s\",\"cores\":2},"
               "\"config\":{\"device\":\"cpu\",\"runs\":20,\"quick\":false},\"results\":[", cpu);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s{\"name\":\"%s\",\"suite\":\"x\",\"median_s\":%g,\"mad_s\":%g,\"min_s\":%g,"
                   "\"ci\":{\"level\":0.95,\"lo_s\":%g,\"hi_s\":%g},\"throughput\":{\"value\":%g,\"unit\":\"elem/s\"}}",
                i ? "," : "", r[i].name, r[i].m / 1e3, (r[i].hi - r[i].lo) / 4e3, r[i].lo / 1e3, r[i].lo / 1e3,
                r[i].hi / 1e3, 1000.0 / (r[i].m / 1e3));
    fputs("]}\n", f);
    fclose(f);
    return p;
}

static const char *write_text(const char *file, const char *text) {
    static char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

static int run_cli(const char *args) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s bench compare %s > %s/out.md 2> %s/err.txt", WICK_BIN, args, dir, dir);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_stats(void) {
    double x[20];
    for (int i = 0; i < 20; i++) x[i] = (double)((i * 7) % 20) + 1; /* 1..20 shuffled */
    wk_stats s;
    CHECK_OK(wk_stats_compute(x, 20, &s));
    CHECK(s.median == 10.5 && s.min == 1 && s.max == 20 && s.mean == 10.5, "median %g", s.median);
    CHECK(s.mad == 5.0, "MAD of 1..20 is 5, got %g", s.mad);
    /* n = 20: the 95% interval of the median is [x(6), x(15)] with coverage 0.9586 */
    CHECK(s.ci_lo == 6 && s.ci_hi == 15 && fabs(s.ci_level - 0.958611) < 1e-5, "ci [%g, %g] level %g", s.ci_lo,
          s.ci_hi, s.ci_level);
    int j;
    double lv = wk_stats_median_ci_rank(5, 0.95, &j);
    CHECK(j == 1 && fabs(lv - 0.9375) < 1e-12, "n=5 uses min..max (j=%d, level %g)", j, lv);
    double one = 3;
    CHECK_OK(wk_stats_compute(&one, 1, &s));
    CHECK(s.median == 3 && s.ci_lo == 3 && s.ci_hi == 3 && s.mad == 0, "single sample");
    CHECK_FAILS(wk_stats_compute(x, 0, &s), "0 samples");
}

static void test_regression_and_noise(void) {
    res base[] = {{"train/step", 10, 9.8, 10.2},  {"opt/adamw", 1.0, 0.99, 1.01}, {"noisy/op", 10, 9, 11},
                  {"tight/op", 5, 4.99, 5.01},     {"fast/op", 8, 7.9, 8.1},      {"gone/op", 1, 0.9, 1.1}};
    res cur[] = {{"train/step", 41.5, 40.9, 42.0}, {"opt/adamw", 1.24, 1.23, 1.25}, {"noisy/op", 10.9, 9.6, 12},
                 {"tight/op", 5.1, 5.09, 5.11},    {"fast/op", 4, 3.9, 4.1},        {"new/op", 1, 0.9, 1.1}};
    const char *a = write_results("base.json", base, 6, "cpu A"), *b = write_results("new.json", cur, 6, "cpu A");
    char *rep = NULL;
    wick_bench_summary s;
    wick_bench_compare_opts o = {.threshold = 0.05};
    CHECK_OK(wick_bench_compare(a, b, &o, &rep, &s));
    CHECK(s.compared == 5 && s.critical == 1 && s.moderate == 1 && s.minor == 0 && s.regressions == 2,
          "compared %d critical %d moderate %d minor %d", s.compared, s.critical, s.moderate, s.minor);
    CHECK(s.improvements == 1 && s.within_noise == 2, "improvements %d noise %d", s.improvements, s.within_noise);
    CHECK(s.only_base == 1 && s.only_new == 1, "only_base %d only_new %d", s.only_base, s.only_new);
    const char *crit = rep ? strstr(rep, "### Critical") : NULL, *mod = rep ? strstr(rep, "### Moderate") : NULL;
    CHECK(crit && mod && strstr(crit, "`train/step`") && strstr(crit, "`train/step`") < mod &&
              strstr(crit, "4.15× slower"), "critical section lists train/step at 4.15x:\n%s", rep);
    const char *noise = rep ? strstr(rep, "## Within noise") : NULL;
    CHECK(noise && strstr(noise, "`noisy/op`") && strstr(noise, "`tight/op`"), "noise section");
    CHECK(rep && strstr(rep, "**FAIL**") && strstr(rep, "`gone/op`") && strstr(rep, "## Not measured"),
          "verdict and not-measured section");
    wick_free(rep);
    char args[256];
    snprintf(args, sizeof args, "%s %s", a, b);
    CHECK(run_cli(args) == 1, "a critical regression exits 1");
    /* quiet: the same file against itself, and a +9%% change inside wide intervals */
    res wide_b[] = {{"noisy/op", 10, 8, 12}}, wide_n[] = {{"noisy/op", 10.9, 8.5, 12.5}};
    a = write_results("wb.json", wide_b, 1, "cpu A");
    b = write_results("wn.json", wide_n, 1, "cpu A");
    CHECK_OK(wick_bench_compare(a, b, &o, &rep, &s));
    CHECK(s.regressions == 0 && s.improvements == 0 && s.within_noise == 1 && rep && strstr(rep, "**PASS**"),
          "inside the noise is quiet");
    wick_free(rep);
    snprintf(args, sizeof args, "%s %s", a, b);
    CHECK(run_cli(args) == 0, "within noise exits 0");
}

static void test_claims(void) {
    res r[] = {{"adapter_loading/load/rank_8", 120, 110, 130}, {"adapter_loading/load/rank_16", 700, 650, 720},
               {"stream/on", 10.3, 10.2, 10.4},                {"stream/off", 10, 9.9, 10.1}};
    const char *cur = write_results("claims_new.json", r, 4, "cpu A");
    const char *budgets = write_text(
        "budgets.json",
        "{\"schema_version\":1,\"claims\":["
        "{\"id\":\"load\",\"claim\":\"adapter load < 500 ms\",\"benchmark\":\"adapter_loading/load/*\","
        "\"metric\":\"median\",\"limit\":500,\"unit\":\"ms\"},"
        "{\"id\":\"load8\",\"benchmark\":[\"adapter_loading/load/rank_8\"],\"metric\":\"median\",\"limit\":0.5,"
        "\"unit\":\"s\"},"
        "{\"id\":\"switch\",\"benchmark\":\"adapter_switching/*\",\"metric\":\"median\",\"limit\":100,\"unit\":\"ms\"},"
        "{\"id\":\"overhead\",\"benchmark\":\"stream/on\",\"relative_to\":\"stream/off\",\"metric\":\"overhead\","
        "\"limit\":5,\"unit\":\"%\"},"
        "{\"id\":\"tp\",\"benchmark\":\"stream/off\",\"metric\":\"throughput\",\"limit\":50,\"unit\":\"kelem/s\"}]}");
    char *rep = NULL;
    wick_bench_summary s;
    wick_bench_compare_opts o = {.budgets = budgets};
    CHECK_OK(wick_bench_compare(NULL, cur, &o, &rep, &s));
    CHECK(s.claims_failed == 1 && s.claims_validated == 3 && s.claims_not_measured == 1,
          "failed %d validated %d not measured %d", s.claims_failed, s.claims_validated, s.claims_not_measured);
    CHECK(rep && strstr(rep, "| **FAILED** | adapter load < 500 ms | 700 ms |"), "failed claim row:\n%s", rep);
    CHECK(rep && strstr(rep, "| not measured | switch |"), "not measured claim row");
    wick_free(rep);
    char args[512];
    snprintf(args, sizeof args, "%s --budgets %s", cur, budgets);
    CHECK(run_cli(args) == 1, "a failed claim exits 1");
    snprintf(args, sizeof args, "%s --budgets %s --format json", cur, budgets);
    CHECK(run_cli(args) == 1, "json format: same exit");
    /* only the passing and unmeasured claims: exit 0 */
    const char *ok = write_text("budgets_ok.json",
                                "{\"schema_version\":1,\"claims\":[{\"benchmark\":\"stream/*\",\"metric\":\"median\","
                                "\"limit\":1,\"unit\":\"s\"},{\"benchmark\":\"nothing/*\",\"metric\":\"median\","
                                "\"limit\":1,\"unit\":\"s\"}]}");
    snprintf(args, sizeof args, "%s --budgets %s", cur, ok);
    CHECK(run_cli(args) == 0, "validated + not measured exits 0");
}

/* An overhead claim over two models pairs each model's benchmarks with each other. */
static void test_overhead_pairing(void) {
    res r[] = {{"so/a/stream", 10.3, 10.2, 10.4}, {"so/a/plain", 10, 9.9, 10.1},
               {"so/b/stream", 20, 19.9, 20.1},   {"so/b/plain", 19.9, 19.8, 20.0}};
    const char *cur = write_results("pair.json", r, 4, "cpu A");
    const char *bud = write_text("pair_budget.json",
                                 "{\"claims\":[{\"benchmark\":\"so/*/stream\",\"relative_to\":\"so/*/plain\","
                                 "\"metric\":\"overhead\",\"limit\":5,\"unit\":\"%\"}]}");
    char *rep = NULL;
    wick_bench_summary s;
    wick_bench_compare_opts o = {.budgets = bud, .format_json = 1};
    CHECK_OK(wick_bench_compare(NULL, cur, &o, &rep, &s));
    CHECK(s.claims_validated == 1 && s.claims_failed == 0, "paired per model: validated %d failed %d\n%s",
          s.claims_validated, s.claims_failed, rep);
    CHECK(rep && strstr(rep, "\"measured\": 3.0"), "worst overhead is model a's 3%%");
    wick_free(rep);
    /* overhead_min reads the fastest samples (min_s = the interval's low end here): 10.2 / 9.9 */
    bud = write_text("pair_budget_min.json",
                     "{\"claims\":[{\"benchmark\":\"so/*/stream\",\"relative_to\":\"so/*/plain\","
                     "\"metric\":\"overhead_min\",\"limit\":5,\"unit\":\"%\"}]}");
    o.budgets = bud;
    CHECK_OK(wick_bench_compare(NULL, cur, &o, &rep, &s));
    CHECK(s.claims_validated == 1 && rep && strstr(rep, "\"measured\": 3.03"), "overhead_min:\n%s", rep);
    wick_free(rep);
}

static void test_calibration(void) {
    res base[] = {{"calibration/cpu_scalar", 1, 0.99, 1.01}, {"op", 5, 4.9, 5.1}};
    res cur[] = {{"calibration/cpu_scalar", 2.2, 2.19, 2.21}, {"op", 11, 10.9, 11.1}};
    const char *a = write_results("cal_b.json", base, 2, "cpu A"), *b = write_results("cal_n.json", cur, 2, "cpu B");
    char *rep = NULL;
    wick_bench_summary s;
    wick_bench_compare_opts o = {0};
    CHECK_OK(wick_bench_compare(a, b, &o, &rep, &s));
    CHECK(s.compared == 1 && s.critical == 1, "calibration is not counted: compared %d", s.compared);
    CHECK(rep && strstr(rep, "calibration/cpu_scalar (fixed work, the same on every commit) changed by +120.0%") &&
              strstr(rep, "## Machine calibration") && strstr(rep, "differ in CPU models"),
          "calibration and machine warnings:\n%s", rep);
    wick_free(rep);
}

static void test_bad_input(void) {
    res r[] = {{"a", 1, 0.9, 1.1}};
    const char *cur = write_results("bad_new.json", r, 1, "cpu A");
    const char *junk = write_text("junk.json", "{\"schema_version\": 1, \"results\": [{\"median_s\": 1}]}");
    char *rep = NULL;
    wick_bench_summary s;
    wick_bench_compare_opts o = {0};
    CHECK_FAILS(wick_bench_compare(junk, cur, &o, &rep, &s), "junk.json: results[0]");
    const char *trunc = write_text("trunc.json", "{\"schema_version\": 1, \"res");
    CHECK_FAILS(wick_bench_compare(trunc, cur, &o, &rep, &s), "trunc.json: line 1");
    const char *bc = write_text("bad_claim.json", "{\"claims\":[{\"benchmark\":\"a\",\"metric\":\"median\","
                                                  "\"limit\":1,\"unit\":\"furlongs\"}]}");
    o.budgets = bc;
    CHECK_FAILS(wick_bench_compare(NULL, cur, &o, &rep, &s), "bad_claim.json: claims[0]");
    char args[256];
    snprintf(args, sizeof args, "%s %s", junk, cur);
    CHECK(run_cli(args) == 2, "bad input exits 2");
    CHECK(run_cli("") == 2, "no files is a usage error");
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/wick_bench_cmp_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_stats();
    test_regression_and_noise();
    test_claims();
    test_calibration();
    test_overhead_pairing();
    test_bad_input();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_summary();
}
