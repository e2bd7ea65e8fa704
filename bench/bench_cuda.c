/*
 * bench_cuda.c — whole-model throughput on a CUDA device: prefill tok/s (a P-token
 * prompt in one call; the decoder runs it in chunks of 512) and decode tok/s at
 * batch 1: N greedy tokens after the prompt through the generation API (wick_gen_next,
 * as wick generate runs them; decode_tok_s), and the same with each step a full
 * wick_session_eval with its logits downloaded and picked on the host
 * (eval_decode_tok_s); both timed after the first token, against the H200's 4.8 TB/s
 * bandwidth roofline for decode (weight bytes per token). --adapter-rank R decodes
 * with an unmerged rank-R LoRA adapter on all linear layers (random A and B), and
 * reports its upload (first selection) and switch times. Prints JSON; without a
 * CUDA device it prints {"skipped": ...} and exits 0.
 *
 * --op-times 1 then times every kernel of one prefill and one decode step (wk_cuda_optime:
 * kernels queued behind a hold so they run back to back) and prints the tables to stderr,
 * with the step's wall time beside the kernels' sum.
 *
 * usage: bench_cuda MODEL_DIR [--prompt P] [--decode N] [--runs R] [--device cuda:N] [--f32 1] [--adapter-rank R]
 *                   [--op-times 1]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "wick.h"
#include "model/model.h"
#include "infer/infer.h"
#ifdef WICK_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

#define ROOFLINE_BYTES_S 4.8e12 /* H200 HBM3e, datasheet */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Greedy pick: the library's vectorised argmax (what wick generate's greedy sampler runs). */
static int argmax(const float *x, int n) { return wk_argmax(x, n); }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_cuda MODEL_DIR [--prompt P] [--decode N] [--runs R] [--device cuda:N] [--f32 1] "
                        "[--adapter-rank R]\n");
        return 2;
    }
    int P = 2048, N = 256, runs = 3, f32 = 0, rank = 0, optimes = 0;
    const char *device = "cuda:0";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--prompt")) P = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--decode")) N = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs")) runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--device")) device = argv[i + 1];
        else if (!strcmp(argv[i], "--f32")) f32 = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--adapter-rank")) rank = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--op-times")) optimes = atoi(argv[i + 1]);
    }
    if (wick_cuda_device_count() == 0) {
        printf("{\"bench\":\"cuda\",\"skipped\":\"no CUDA device in this build or machine\"}\n");
        return 0;
    }
    wick_model_opts o = wick_model_opts_default();
    o.device = device;
    o.keep_bf16 = !f32;
    wick_model *m;
    double tl = now();
    if (wick_model_load(argv[1], &o, &m)) {
        fprintf(stderr, "bench_cuda: %s\n", wick_last_error());
        return 1;
    }
    tl = now() - tl;
    wick_model_info f;
    wick_model_get_info(m, &f);
    wick_session_opts so = {.max_seq = P + N + 2};
    wick_session *s;
    if (wick_session_new(m, &so, &s)) {
        fprintf(stderr, "bench_cuda: %s\n", wick_last_error());
        return 1;
    }
    wick_adapter *ad = NULL;
    double t_up = 0, t_sw = 0;
    if (rank > 0) {
        wick_lora_config lc = wick_lora_config_default();
        lc.r = rank, lc.alpha = 2.f * rank, lc.init = WICK_LORA_INIT_RANDOM;
        if (wick_adapter_new(m, &lc, 1, &ad)) {
            fprintf(stderr, "bench_cuda: adapter: %s\n", wick_last_error());
            return 1;
        }
        t_up = now();
        if (wick_session_set_adapter(s, ad, 1.f)) { /* first selection: uploads A and B */
            fprintf(stderr, "bench_cuda: set_adapter: %s\n", wick_last_error());
            return 1;
        }
        t_up = now() - t_up;
        t_sw = now();
        for (int i = 0; i < 100; i++) wick_session_set_adapter(s, i % 2 ? ad : NULL, 1.f);
        t_sw = (now() - t_sw) / 100;
        wick_session_set_adapter(s, ad, 1.f);
    }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)P);
    for (int i = 0; i < P; i++) ids[i] = (int32_t)((i * 7919u + 13) % (unsigned)f.vocab_size);
    float *logits = malloc(sizeof(float) * (size_t)f.vocab_size);
    double pre[16], dec[16], gen[16], pick_ms = 0;
    runs = runs < 1 ? 1 : runs > 16 ? 16 : runs;
    wick_session_eval(s, ids, P < 64 ? P : 64, logits, 0); /* warm-up: handles, kernels, allocator */
    for (int r = 0; r < runs; r++) {
        wick_session_reset(s);
        double t0 = now();
        if (wick_session_eval(s, ids, P, logits, 0)) {
            fprintf(stderr, "bench_cuda: prefill: %s\n", wick_last_error());
            return 1;
        }
        pre[r] = P / (now() - t0);
        int32_t id = argmax(logits, f.vocab_size);
        wick_session_eval(s, &id, 1, logits, 0); /* first decode token not timed */
        t0 = now();
        double t_pick = 0;
        for (int i = 0; i < N; i++) {
            double tp = now();
            id = argmax(logits, f.vocab_size);
            t_pick += now() - tp;
            if (wick_session_eval(s, &id, 1, logits, 0)) {
                fprintf(stderr, "bench_cuda: decode: %s\n", wick_last_error());
                return 1;
            }
        }
        dec[r] = N / (now() - t0);
        pick_ms = 1e3 * t_pick / N;
        /* the same through the generation API (greedy, EOS ignored): what wick generate runs,
         * where the greedy pick may stay on the device; timed after the first token */
        wick_session_reset(s);
        wick_gen_opts go = wick_gen_opts_default();
        go.sampling.temperature = 0, go.max_tokens = N + 1, go.ignore_eos = 1;
        wick_gen *g = NULL;
        if (wick_gen_start(m, s, ids, P, &go, &g)) {
            fprintf(stderr, "bench_cuda: generate: %s\n", wick_last_error());
            return 1;
        }
        wick_token tok;
        int done = 0, got = 0;
        if (wick_gen_next(g, &tok, &done) || done) {
            fprintf(stderr, "bench_cuda: generate: %s\n", wick_last_error());
            return 1;
        }
        t0 = now();
        while (!wick_gen_next(g, &tok, &done) && !done) got++;
        gen[r] = got / (now() - t0);
        wick_gen_free(g);
        if (got != N) {
            fprintf(stderr, "bench_cuda: generate: %d of %d tokens: %s\n", got, N, wick_last_error());
            return 1;
        }
    }
#ifdef WICK_HAVE_CUDA
    if (optimes) { /* one prefill and one decode step, every kernel timed */
        wick_session_reset(s);
        wk_cuda_optime_begin(m->be);
        wick_session_eval(s, ids, P, logits, 0);
        fprintf(stderr, "== prefill %d: kernels\n", P);
        double kp = wk_cuda_optime_end(m->be, stderr);
        int32_t id = argmax(logits, f.vocab_size);
        double w = 0;
        for (int i = 0; i < 16; i++) { /* graphed steps, wall time of the eval calls alone */
            double t1 = now();
            wick_session_eval(s, &id, 1, logits, 0);
            w += (now() - t1) / 16;
            id = argmax(logits, f.vocab_size);
        }
        wk_cuda_optime_begin(m->be);
        wick_session_eval(s, &id, 1, logits, 0);
        fprintf(stderr, "== decode step at %d (adapter rank %d): kernels\n", P + 1, rank);
        double kd = wk_cuda_optime_end(m->be, stderr);
        fprintf(stderr, "== prefill kernels %.3f ms; decode kernels %.3f ms, graphed eval call %.3f ms (mean of 16)\n", 1e3 * kp,
                1e3 * kd, 1e3 * w);
    }
#else
    (void)optimes;
#endif
    qsort(pre, (size_t)runs, sizeof(double), cmp_d);
    qsort(dec, (size_t)runs, sizeof(double), cmp_d);
    qsort(gen, (size_t)runs, sizeof(double), cmp_d);
    double bytes = (double)f.weight_bytes, dmed = gen[runs / 2];
    double roof = ROOFLINE_BYTES_S / bytes;
    printf("{\"bench\":\"cuda\",\"model\":\"%s\",\"device\":\"%s\",\"weight_dtype\":\"%s\",\"n_params\":%lld,"
           "\"load_s\":%.3f,\"prompt\":%d,\"decode\":%d,\"runs\":%d,\"prefill_tok_s\":%.1f,\"decode_tok_s\":%.1f,"
           "\"weight_bytes_per_token\":%.0f,\"decode_gb_s\":%.1f,\"roofline_tok_s\":%.1f,\"roofline_fraction\":%.3f,"
           "\"prefill_tflop_s\":%.2f,\"adapter_rank\":%d,\"adapter_upload_ms\":%.3f,\"adapter_switch_us\":%.3f,"
           "\"eval_decode_tok_s\":%.1f,\"eval_argmax_ms\":%.4f}\n",
           argv[1], device, wick_dtype_name(f.weight_dtype), (long long)f.n_params, tl, P, N, runs, pre[runs / 2], dmed,
           bytes, bytes * dmed / 1e9, roof, dmed / roof, 2.0 * (double)f.n_params * pre[runs / 2] / 1e12, rank, 1e3 * t_up, 1e6 * t_sw, dec[runs / 2], pick_ms);
    wick_session_free(s);
    wick_adapter_free(ad);
    wick_model_free(m);
    free(ids), free(logits);
    return 0;
}
