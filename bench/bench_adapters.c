/*
 * bench_adapters.c — LoRA adapter costs, printed as JSON:
 *  - load time of a PEFT adapter directory (F32 tensors, in the page cache) for ranks
 *    4/8/16/32/64 on all seven linear layers of qwen2.5-0.5b and qwen2.5-7b shapes
 *    (wick_adapter_open: parse, validate, convert into one allocation; best of R);
 *  - the same bound to a real qwen2.5-0.5b base (wick_adapter_load, shapes checked);
 *  - switch time (registry acquire + wick_session_set_adapter + release);
 *  - decode tok/s on the 0.5b base alone and with an unmerged r16 adapter.
 * The base is made once with wick_init_model (bf16, seed 1) in the work directory.
 *
 * usage: bench_adapters [--work DIR] [--runs R] [--decode N] [--threads T] [--no-7b] [--load-only]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "wick.h"

typedef struct {
    const char *name;
    int layers, hidden, inter, q, kv; /* q = heads*head_dim, kv = kv_heads*head_dim */
} shapes;

static const shapes SHAPES[] = {{"qwen2.5-0.5b", 24, 896, 4864, 896, 128}, {"qwen2.5-7b", 28, 3584, 18944, 3584, 512}};
static const int RANKS[] = {4, 8, 16, 32, 64};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "bench_adapters: %s: %s\n", what, wick_last_error());
    exit(1);
}

/* Writes an all-linear adapter of rank r for shapes s (random F32 data) to dir. */
static void write_adapter(const shapes *s, int r, const char *dir) {
    static const char *par[7] = {"self_attn", "self_attn", "self_attn", "self_attn", "mlp", "mlp", "mlp"};
    int in[7] = {s->hidden, s->hidden, s->hidden, s->q, s->hidden, s->hidden, s->inter};
    int out[7] = {s->q, s->kv, s->kv, s->hidden, s->inter, s->inter, s->hidden};
    int n = s->layers * 14;
    wick_tensor_view *t = calloc((size_t)n, sizeof *t);
    char (*names)[128] = calloc((size_t)n, 128);
    size_t maxe = (size_t)r * (size_t)(s->inter > s->hidden ? s->inter : s->hidden);
    float *data = malloc(maxe * sizeof(float));
    for (size_t i = 0; i < maxe; i++) data[i] = (float)((int)(i * 2654435761u % 2001) - 1000) * 1e-5f;
    for (int l = 0, k = 0; l < s->layers; l++)
        for (int p = 0; p < 7; p++)
            for (int b = 0; b < 2; b++, k++) {
                snprintf(names[k], 128, "base_model.model.model.layers.%d.%s.%s.lora_%c.weight", l, par[p],
                         wick_lora_target_name(p), b ? 'B' : 'A');
                t[k] = (wick_tensor_view){.name = names[k], .dtype = WICK_DT_F32, .ndim = 2,
                                          .shape = {b ? out[p] : r, b ? r : in[p]}, .data = data};
            }
    char p[1100];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    if (wick_safetensors_write(p, t, n, "{\"format\":\"pt\"}")) die(p);
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    FILE *f = fopen(p, "w");
    fprintf(f, "{\"peft_type\":\"LORA\",\"r\":%d,\"lora_alpha\":%d,\"target_modules\":\"all-linear\",\"bias\":\"none\","
               "\"use_dora\":false,\"use_rslora\":false,\"task_type\":\"CAUSAL_LM\"}\n", r, 2 * r);
    fclose(f);
    free(t), free(names), free(data);
}

/* Best-of-runs seconds to load dir (bound to m when m is not NULL). */
static double time_load(wick_model *m, const char *dir, int runs, long long *bytes) {
    double best = 1e30;
    for (int i = 0; i < runs; i++) {
        wick_adapter *a;
        double t0 = now();
        wick_status st = m ? wick_adapter_load(m, dir, &a) : wick_adapter_open(dir, &a);
        double dt = now() - t0;
        if (st) die(dir);
        wick_adapter_info f;
        wick_adapter_get_info(a, &f);
        *bytes = f.bytes;
        wick_adapter_free(a);
        best = dt < best ? dt : best;
    }
    return best;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Decode tok/s (wall) and CPU ms per token (all threads; robust to a loaded machine with --threads 1). */
static double decode_tps(wick_session *s, const wick_adapter *a, int n, float *logits, double *cpu_ms) {
    wick_session_set_adapter(s, a, 1.f);
    wick_session_reset(s);
    int32_t id = 17;
    wick_session_eval(s, &id, 1, logits, 0); /* first token untimed */
    double t0 = now(), c0 = cpu_now();
    for (int i = 0; i < n; i++) {
        id = (int32_t)((id * 7919 + 13) % 150000);
        wick_session_eval(s, &id, 1, logits, 0);
    }
    *cpu_ms = (cpu_now() - c0) * 1e3 / n;
    return n / (now() - t0);
}

int main(int argc, char **argv) {
    const char *work = "/tmp/wick_bench_adapters";
    int runs = 5, N = 32, threads = 0, do7b = 1, load_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--work") && i + 1 < argc) work = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--decode") && i + 1 < argc) N = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-7b")) do7b = 0;
        else if (!strcmp(argv[i], "--load-only")) load_only = 1;
        else {
            fprintf(stderr, "usage: bench_adapters [--work DIR] [--runs R] [--decode N] [--threads T] [--no-7b] [--load-only]\n");
            return 2;
        }
    }
    wick_set_threads(threads);
    mkdir(work, 0755);
    printf("{\"bench\":\"adapters\",\"threads\":%d,\"load\":[", wick_get_threads());
    int first = 1;
    for (int si = 0; si < (do7b ? 2 : 1); si++)
        for (size_t ri = 0; ri < sizeof RANKS / sizeof RANKS[0]; ri++) {
            char dir[1024];
            snprintf(dir, sizeof dir, "%s/%s_r%d", work, SHAPES[si].name, RANKS[ri]);
            write_adapter(&SHAPES[si], RANKS[ri], dir);
            long long bytes = 0;
            double t = time_load(NULL, dir, runs, &bytes);
            printf("%s{\"shapes\":\"%s\",\"r\":%d,\"bytes\":%lld,\"load_ms\":%.2f}", first ? "" : ",", SHAPES[si].name,
                   RANKS[ri], bytes, t * 1e3);
            fflush(stdout);
            first = 0;
        }
    if (load_only) {
        printf("]}\n");
        return 0;
    }
    char base[1024];
    snprintf(base, sizeof base, "%s/base-qwen2.5-0.5b", work);
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "%s/config.json", base);
    struct stat sb;
    if (stat(cfg, &sb) != 0 && wick_init_model("qwen2", "qwen2.5-0.5b", NULL, WICK_DT_BF16, 1, base)) die("init_model");
    wick_model *m;
    if (wick_model_load(base, NULL, &m)) die(base);
    printf("],\"load_bound_0.5b\":[");
    for (size_t ri = 0; ri < sizeof RANKS / sizeof RANKS[0]; ri++) {
        char dir[1024];
        long long bytes;
        snprintf(dir, sizeof dir, "%s/qwen2.5-0.5b_r%d", work, RANKS[ri]);
        printf("%s{\"r\":%d,\"load_ms\":%.2f}", ri ? "," : "", RANKS[ri], time_load(m, dir, runs, &bytes) * 1e3);
    }
    wick_registry *reg;
    char d8[1024], d16[1024];
    snprintf(d8, sizeof d8, "%s/qwen2.5-0.5b_r8", work);
    snprintf(d16, sizeof d16, "%s/qwen2.5-0.5b_r16", work);
    if (wick_registry_new(m, &reg) || wick_registry_load(reg, "r8", d8) || wick_registry_load(reg, "r16", d16)) die("registry");
    wick_session_opts so = {.max_seq = N + 8};
    wick_session *s;
    if (wick_session_new(m, &so, &s)) die("session");
    const int SW = 1000000;
    double t0 = now();
    for (int i = 0; i < SW; i++) {
        wick_adapter *a = wick_registry_acquire(reg, (i & 1) ? "r8" : "r16");
        wick_session_set_adapter(s, a, 1.f);
        wick_registry_release(reg, a);
    }
    double sw = (now() - t0) / SW;
    wick_model_info f;
    wick_model_get_info(m, &f);
    float *logits = malloc(sizeof(float) * (size_t)f.vocab_size);
    wick_adapter *a16 = wick_registry_acquire(reg, "r16");
    double tb = 0, ta = 0, cb = 1e30, ca = 1e30;
    for (int r = 0; r < 3; r++) { /* interleaved, best of 3 */
        double xb, xa, b = decode_tps(s, NULL, N, logits, &xb), a = decode_tps(s, a16, N, logits, &xa);
        tb = b > tb ? b : tb;
        ta = a > ta ? a : ta;
        cb = xb < cb ? xb : cb;
        ca = xa < ca ? xa : ca;
    }
    printf("],\"switch_us\":%.4f,\"decode\":{\"model\":\"qwen2.5-0.5b bf16\",\"tokens\":%d,\"base_tok_s\":%.2f,"
           "\"r16_tok_s\":%.2f,\"slowdown_pct\":%.2f,\"base_cpu_ms_per_tok\":%.2f,\"r16_cpu_ms_per_tok\":%.2f,"
           "\"cpu_overhead_pct\":%.2f}}\n", sw * 1e6, N, tb, ta, 100.0 * (tb - ta) / tb, cb, ca, 100.0 * (ca - cb) / cb);
    wick_registry_release(reg, a16);
    free(logits);
    wick_session_free(s);
    wick_registry_free(reg);
    wick_model_free(m);
    return 0;
}
