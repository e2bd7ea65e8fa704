/*
 * bench_model.c — whole-model CPU throughput: prefill tok/s (a P-token prompt) and
 * decode tok/s (batch 1, N tokens after the prompt, timed after the first token),
 * with the weight bytes per token and the bandwidth that implies. Prints JSON.
 *
 * usage: bench_model MODEL_DIR [--prompt P] [--decode N] [--threads T] [--runs R] [--fast-bf16]
 * (--fast-bf16: wick_model_opts.fast_bf16, bf16-rounded activations in prefill)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "wick.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_model MODEL_DIR [--prompt P] [--decode N] [--threads T] [--runs R] [--fast-bf16]\n");
        return 2;
    }
    int P = 512, N = 64, threads = 0, runs = 3;
    wick_model_opts mo = wick_model_opts_default();
    for (int i = 2; i < argc; i += 2) {
        if (!strcmp(argv[i], "--fast-bf16")) mo.fast_bf16 = 1, i--;
        else if (i + 1 >= argc) break;
        else if (!strcmp(argv[i], "--prompt")) P = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--decode")) N = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs")) runs = atoi(argv[i + 1]);
    }
    wick_set_threads(threads);
    wick_model *m;
    if (wick_model_load(argv[1], &mo, &m)) {
        fprintf(stderr, "bench_model: %s\n", wick_last_error());
        return 1;
    }
    wick_model_info f;
    wick_model_get_info(m, &f);
    wick_session_opts so = {.max_seq = P + N + 1};
    wick_session *s;
    if (wick_session_new(m, &so, &s)) {
        fprintf(stderr, "bench_model: %s\n", wick_last_error());
        return 1;
    }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)P);
    for (int i = 0; i < P; i++) ids[i] = (int32_t)((i * 7919u + 13) % (unsigned)f.vocab_size);
    float *logits = malloc(sizeof(float) * (size_t)f.vocab_size);
    double pre[16], dec[16];
    runs = runs < 1 ? 1 : runs > 16 ? 16 : runs;
    for (int r = 0; r < runs; r++) {
        wick_session_reset(s);
        double t0 = now();
        wick_session_eval(s, ids, P, logits, 0);
        pre[r] = P / (now() - t0);
        int32_t id = 1;
        wick_session_eval(s, &id, 1, logits, 0); /* first decode token not timed */
        t0 = now();
        for (int i = 0; i < N; i++) {
            int32_t best = 0;
            for (int v = 1; v < f.vocab_size; v++) best = logits[v] > logits[best] ? v : best;
            wick_session_eval(s, &best, 1, logits, 0);
        }
        dec[r] = N / (now() - t0);
    }
    qsort(pre, (size_t)runs, sizeof(double), cmp_d);
    qsort(dec, (size_t)runs, sizeof(double), cmp_d);
    /* bytes read per decode token: all linear weights + (tied) head once */
    double bytes = (double)f.weight_bytes;
    double dmed = dec[runs / 2];
    printf("{\"model\":\"%s\",\"arch\":\"%s\",\"weight_dtype\":\"%s\",\"threads\":%d,\"prompt\":%d,\"decode\":%d,"
           "\"runs\":%d,\"fast_bf16\":%d,\"prefill_tok_s\":%.2f,\"decode_tok_s\":%.2f,\"weight_bytes_per_token\":%.0f,"
           "\"decode_gb_s\":%.2f}\n",
           argv[1], f.arch, wick_dtype_name(f.weight_dtype), wick_get_threads(), P, N, runs, mo.fast_bf16, pre[runs / 2], dmed, bytes,
           bytes * dmed / 1e9);
    free(ids);
    free(logits);
    wick_session_free(s);
    wick_model_free(m);
    return 0;
}
