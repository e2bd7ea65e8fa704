/*
 * bench_embed.c — sentence-embedding throughput (docs/s) of the BERT encoder on the
 * CPU for e5-small shapes (12 layers, hidden 384, 12 heads, intermediate 1536, vocab
 * 30522; random weights written with wick_init_model unless a model dir is given) at
 * batch 1 x 16 tokens, 100 x 32 and 1000 x 64 (mean pooling + L2 normalisation
 * included). Timed calls of wick_embed_ids after one warm-up call; best of R runs.
 * Prints JSON.
 *
 * usage: bench_embed [--model DIR] [--quick] [--threads T] [--runs R] [--batch-size N]
 *                    [--device cpu|cuda[:N]] [--fast-bf16] [--case NxT]
 *   --device cuda: the encoder on the GPU (fp32 exact); --fast-bf16: bf16 linear layers (GPU, or a CPU
 *   with AVX512-BF16)
 *   --quick: fewer docs for the large cases (1 x 16, 100 x 32, 200 x 64)
 *   --case NxT: only N docs of T tokens (e.g. 100x32)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "wick.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Best-of-runs seconds for embedding n docs of len tokens ([CLS] random ids [SEP]). */
static double time_case(wick_encoder *e, int n, int len, int runs, int bs, int vocab, int hidden) {
    int32_t *flat = malloc(sizeof(int32_t) * (size_t)n * len);
    const int32_t **seqs = malloc(sizeof *seqs * (size_t)n);
    int *lens = malloc(sizeof(int) * (size_t)n);
    float *out = malloc(sizeof(float) * (size_t)n * hidden);
    uint64_t x = 0x853c49e6748fea9bull;
    for (int i = 0; i < n; i++) {
        seqs[i] = flat + (size_t)i * len;
        lens[i] = len;
        for (int t = 0; t < len; t++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            flat[(size_t)i * len + t] = t == 0 ? 101 : t == len - 1 ? 102 : (int32_t)(1000 + x % (uint64_t)(vocab - 1000));
        }
    }
    wick_embed_opts o = wick_embed_opts_default();
    o.batch_size = bs;
    double best = 1e30;
    for (int r = 0; r <= runs; r++) {
        double t0 = now();
        if (wick_embed_ids(e, seqs, lens, n, &o, out)) {
            fprintf(stderr, "bench_embed: %s\n", wick_last_error());
            exit(1);
        }
        double dt = now() - t0;
        if (r > 0 && dt < best) best = dt; /* run 0 warms up */
    }
    free(flat), free(seqs), free(lens), free(out);
    return best;
}

int main(int argc, char **argv) {
    const char *model = NULL;
    const char *device = "cpu";
    int quick = 0, threads = 0, runs = 3, bs = 0, fast = 0, one_n = 0, one_t = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--model")) model = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--runs")) runs = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--batch-size")) bs = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--device")) device = argv[++i];
        else if (!strcmp(argv[i], "--fast-bf16")) fast = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--case") && sscanf(argv[i + 1], "%dx%d", &one_n, &one_t) == 2 &&
                 one_n > 0 && one_t > 1)
            i++;
        else return fprintf(stderr, "usage: bench_embed [--model DIR] [--quick] [--threads T] [--runs R] [--batch-size N] "
                                    "[--device cpu|cuda[:N]] [--fast-bf16] [--case NxT]\n"), 2;
    }
    wick_set_threads(threads);
    if (fast) wick_set_log(NULL, NULL, WICK_LOG_INFO); /* stderr names the bf16 kernel this CPU runs */
    char dir[] = "/tmp/wick_bench_embed_XXXXXX";
    if (!model) {
        if (!mkdtemp(dir) || wick_init_model("bert", "e5-small", NULL, WICK_DT_F32, 1, dir)) {
            fprintf(stderr, "bench_embed: init-model e5-small: %s\n", wick_last_error());
            return 1;
        }
        model = dir;
    }
    wick_encoder *e;
    wick_model_opts mo = wick_model_opts_default();
    mo.device = device;
    mo.fast_bf16 = fast;
    if (wick_encoder_load(model, &mo, &e)) return fprintf(stderr, "bench_embed: %s\n", wick_last_error()), 1;
    wick_encoder_info info;
    wick_encoder_get_info(e, &info);
    int cases[3][2] = {{1, 16}, {100, 32}, {quick ? 200 : 1000, 64}}, ncase = 3;
    if (one_n) cases[0][0] = one_n, cases[0][1] = one_t, ncase = 1;
    printf("{\"bench\":\"embed\",\"device\":\"%s\",\"precision\":\"%s\",\"threads\":%d,\"model\":\"%s\",\"layers\":%d,\"hidden\":%d,"
           "\"batch_size\":%d,\"results\":[",
           device, fast ? "bf16" : "fp32", wick_get_threads(), model == dir ? "e5-small (random)" : model, info.num_layers, info.hidden_size,
           bs ? bs : strcmp(device, "cpu") ? 128 : 32);
    for (int c = 0; c < ncase; c++) {
        int n = cases[c][0], len = cases[c][1];
        double s = time_case(e, n, len, n >= 1000 ? (runs < 2 ? runs : 1) : n == 1 ? runs * 10 : runs, bs, info.vocab_size,
                             info.hidden_size);
        printf("%s{\"docs\":%d,\"tokens\":%d,\"seconds\":%.6f,\"docs_per_s\":%.1f,\"ms_per_call\":%.3f}", c ? "," : "", n,
               len, s, n / s, s * 1e3);
        fflush(stdout);
    }
    printf("]}\n");
    wick_encoder_free(e);
    if (model == dir) {
        char p[600];
        snprintf(p, sizeof p, "%s/config.json", dir), unlink(p);
        snprintf(p, sizeof p, "%s/generation_config.json", dir), unlink(p);
        snprintf(p, sizeof p, "%s/model.safetensors", dir), unlink(p);
        rmdir(dir);
    }
    return 0;
}
