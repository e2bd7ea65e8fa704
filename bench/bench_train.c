/*
 * bench_train.c — training benchmarks, printed as JSON:
 *  optimizer_step/adamw_step               AdamW over a 512×512 fp32 tensor
 *  full_training_step/complete_iteration   one frozen 512×512 linear + LoRA r8, batch 4×64 rows:
 *                                          forward, cross-entropy over 512 classes, LoRA backward, AdamW
 *  model_training                          tok/s of full LoRA training steps on a qwen2.5-0.5b-shaped
 *                                          model (fp32 or bf16, r16, all linear) with a forward / backward /
 *                                          optimizer / data breakdown, on the CPU or a CUDA device
 *
 * usage: bench_train [--model DIR] [--seq 256] [--batch 4] [--steps 3] [--threads T] [--recompute]
 *                    [--skip-model] [--device cpu|cuda[:N]] [--dtype f32|bf16]
 *                    [--replicas G] [--split|--no-split] [--sgemm] [--op-times]
 * Without --model the model is made once with wick_init_model (qwen2 preset qwen2.5-0.5b, seed 1, in
 * the --dtype) in $TMPDIR/wick_bench_qwen2.5-0.5b (f32) or $TMPDIR/wick_bench_qwen2.5-0.5b-bf16.
 * On a device the adapter is copied back to the host once, after the timed steps (not timed).
 * CPU only: --replicas G: data-parallel replicas inside a step (0 = the trainer's automatic choice);
 * --split / --no-split: with one replica, matmuls split over the threads / OpenBLAS's threading
 *          (default: the trainer's automatic choice);
 * --op-times: on a CUDA device, one more step after the timed ones with every kernel timed
 *          (wk_cuda_optime; no graphs), the table printed to stderr.
 * --sgemm: also print the sgemm rate of the gate projection's shape (1024×896 · 896×4864) on 1, half
 *          and all threads (OpenBLAS threading): the ceiling the f32 training step runs against.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/train_ops.h"
#include "train/train.h"
#ifdef WICK_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_d);
    return v[n / 2];
}

static float *randv(size_t n, float s, uint64_t *st) {
    float *v = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) {
        *st = *st * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = s * ((float)(*st >> 40) / 16777216.f * 2 - 1);
    }
    return v;
}

static void bench_adamw(void) {
    size_t n = 512 * 512;
    uint64_t s = 1;
    float *w = randv(n, 1, &s), *g = randv(n, 1, &s), *m = calloc(n, 4), *v = calloc(n, 4);
    double t[64];
    for (int r = 0; r < 64; r++) {
        double t0 = wk_now();
        wk_adamw(w, g, m, v, n, r + 1, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f);
        t[r] = wk_now() - t0;
    }
    printf("  \"optimizer_step/adamw_step\": {\"params\": %zu, \"ms\": %.4f},\n", n, 1e3 * median(t, 64));
    free(w), free(g), free(m), free(v);
}

static void bench_iteration(void) {
    enum { N = 256, C = 512, R = 8 };
    uint64_t s = 2;
    float *W = randv((size_t)C * C, 0.05f, &s), *A = randv(R * C, 0.05f, &s), *B = randv(C * R, 0.05f, &s);
    float *x = randv((size_t)N * C, 1, &s), *y = malloc(sizeof(float) * N * C), *xa = malloc(sizeof(float) * N * R);
    float *db = malloc(sizeof(float) * N * R), *gA = calloc(R * C, 4), *gB = calloc(C * R, 4);
    float *mA = calloc(R * C, 4), *vA = calloc(R * C, 4), *mB = calloc(C * R, 4), *vB = calloc(C * R, 4);
    int32_t tgt[N];
    for (int i = 0; i < N; i++) tgt[i] = (i * 37) % C;
    const wk_train_ops *ops = wk_train_ops_fast();
    double t[64], loss = 0;
    for (int r = 0; r < 64; r++) {
        double t0 = wk_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, C, C, 1, x, C, W, C, 0, y, C);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, R, C, 1, x, C, A, C, 0, xa, R);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, C, R, 2, xa, R, B, R, 1, y, C);
        loss = ops->xent(y, tgt, N, C, 0) / N;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, R, C, 1, y, C, B, R, 0, db, R);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, R, N, 2.f / N, y, C, xa, R, 0, gB, R);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, C, N, 2.f / N, db, R, x, C, 0, gA, C);
        wk_adamw(A, gA, mA, vA, R * C, r + 1, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f);
        wk_adamw(B, gB, mB, vB, C * R, r + 1, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f);
        t[r] = wk_now() - t0;
    }
    printf("  \"full_training_step/complete_iteration\": {\"rows\": %d, \"dim\": %d, \"r\": %d, \"ms\": %.4f, "
           "\"loss\": %.4f},\n", N, C, R, 1e3 * median(t, 64), loss);
    free(W), free(A), free(B), free(x), free(y), free(xa), free(db), free(gA), free(gB);
    free(mA), free(vA), free(mB), free(vB);
}

/* Best of 3: GFLOP/s of C[1024,4864] = A[1024,896]·B[4864,896]ᵀ on `threads` OpenBLAS threads. */
static double sgemm_rate(int threads) {
    enum { M = 1024, N = 4864, K = 896 };
    uint64_t s = 3;
    float *A = randv((size_t)M * K, 1, &s), *B = randv((size_t)N * K, 1, &s), *C = malloc(sizeof(float) * M * N);
    wick_set_threads(threads);
    double best = 1e30;
    for (int r = 0; r < 4; r++) {
        double t0 = wk_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, A, K, B, K, 0.f, C, N);
        if (r > 0) best = fmin(best, wk_now() - t0);
    }
    free(A), free(B), free(C);
    return 2.0 * M * N * K / best / 1e9;
}

static void bench_sgemm(int threads) {
    int half = threads > 1 ? threads / 2 : 1;
    double r1 = sgemm_rate(1), rh = half > 1 ? sgemm_rate(half) : r1, rn = threads > 1 ? sgemm_rate(threads) : r1;
    printf("  \"sgemm_1024x4864x896_gflops\": {\"threads_1\": %.1f, \"half_threads\": %.1f, \"all_threads\": %.1f},\n", r1,
           rh, rn);
    wick_set_threads(threads);
}

typedef struct {
    const char *model, *device;
    int seq, batch, steps, recompute, bf16, replicas, split, op_times;
} model_args;

/* One more training step with every kernel timed (wk_cuda_optime): the table goes to stderr. */
static int op_times(wick_model *m, wick_trainer *t, const int32_t *ids, const int *lens, int batch) {
#ifdef WICK_HAVE_CUDA
    if (!m->be->device_memory) return 0;
    int64_t nt = 0;
    double loss = 0, t0 = wk_now();
    wk_cuda_optime_begin(m->be);
    if (wick_trainer_accumulate(t, ids, ids, lens, batch, &loss, &nt) || wick_trainer_step(t, nt, NULL, NULL)) return 1;
    double wall = wk_now() - t0, dev = wk_cuda_optime_end(m->be, stderr);
    fprintf(stderr, "op times: kernels %.1f ms, step wall %.1f ms (including a 200 ms hold)\n", 1e3 * dev, 1e3 * wall);
#else
    (void)m, (void)t, (void)ids, (void)lens, (void)batch;
#endif
    return 0;
}

static int bench_model(const model_args *a) {
    char dir[1024];
    const char *md = a->model;
    if (!md) {
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(dir, sizeof dir, "%s/wick_bench_qwen2.5-0.5b%s", tmp, a->bf16 ? "-bf16" : "");
        char cfg[1100];
        snprintf(cfg, sizeof cfg, "%s/config.json", dir);
        FILE *f = fopen(cfg, "r");
        if (f) fclose(f);
        else if (wick_init_model("qwen2", "qwen2.5-0.5b", NULL, a->bf16 ? WICK_DT_BF16 : WICK_DT_F32, 1, dir)) return 1;
        md = dir;
    }
    wick_model_opts mo = wick_model_opts_default();
    mo.device = a->device;
    wick_model *m;
    wick_adapter *ad;
    wick_trainer *t;
    if (wick_model_load(md, &mo, &m)) return 1;
    wick_lora_config lc = wick_lora_config_default();
    lc.r = 16, lc.alpha = 32, lc.targets = WICK_LORA_ALL;
    if (wick_adapter_new(m, &lc, 1, &ad)) return 1;
    wick_train_opts o = wick_train_opts_default();
    o.recompute = a->recompute, o.total_steps = a->steps + 1;
    if (wick_trainer_new(m, ad, &o, &t)) return 1;
    wk_trainer_set_replicas(t, a->replicas);
    if (a->split) wk_trainer_set_split(t, a->split > 0);
    double tc0[WK_TC_COUNT], tc[WK_TC_COUNT];
    wick_model_info info;
    wick_model_get_info(m, &info);
    int n = a->seq * a->batch, *lens = malloc(sizeof(int) * a->batch);
    int32_t *ids = malloc(sizeof(int32_t) * n);
    double td = 0, loss = 0, f0 = 0, b0 = 0, o0 = 0, wall0 = 0;
    for (int s = 0; s <= a->steps; s++) { /* step 0 warms up (workspace allocation, page faults) */
        if (s == 1) wk_trainer_times(t, &f0, &b0, &o0), wk_trainer_breakdown(t, tc0), wall0 = wk_now();
        double t0 = wk_now();
        for (int i = 0; i < n; i++) ids[i] = (int32_t)(((uint64_t)(i + s * 7919) * 2654435761u) % (uint64_t)info.vocab_size);
        for (int b = 0; b < a->batch; b++) lens[b] = a->seq;
        if (s > 0) td += wk_now() - t0;
        int64_t nt = 0;
        loss = 0;
        if (wick_trainer_accumulate(t, ids, ids, lens, a->batch, &loss, &nt) || wick_trainer_step(t, nt, NULL, NULL)) return 1;
        loss /= (double)nt;
    }
    double wall = wk_now() - wall0;
    if (a->op_times && op_times(m, t, ids, lens, a->batch)) return 1;
    size_t dev_mem = 0, dev_cached = 0;
#ifdef WICK_HAVE_CUDA
    if (m->be->device_memory) wk_cuda_mem_stats(m->be, &dev_mem, &dev_cached);
#endif
    if (wick_trainer_sync_adapter(t)) return 1;
    double f, b, op;
    wk_trainer_times(t, &f, &b, &op);
    wk_trainer_breakdown(t, tc);
    f -= f0, b -= b0, op -= o0;
    printf("  \"model_training\": {\"model\": \"%s\", \"device\": \"%s\", \"weights\": \"%s\", \"params\": %lld, "
           "\"seq\": %d, \"batch\": %d, \"r\": 16, \"recompute\": %d, \"replicas\": %d, \"split\": %d, \"steps\": %d, "
           "\"tokens_per_s\": %.1f, \"loss\": %.4f, \"peak_mem_bytes\": %zu, \"device_mem_bytes\": %zu,\n",
           md, a->device ? a->device : "cpu", info.weight_format, (long long)info.n_params, a->seq, a->batch,
           a->recompute, wk_trainer_replicas(t, a->batch), a->split, a->steps, (double)n * a->steps / wall, loss,
           wick_mem_peak(), dev_mem + dev_cached);
    printf("    \"seconds\": {\"total\": %.3f, \"forward\": %.3f, \"backward\": %.3f, \"optimizer\": %.3f, "
           "\"data\": %.5f},\n", wall, f, b, op, td);
    double d[WK_TC_COUNT], other = f + b;
    for (int k = 0; k < WK_TC_COUNT; k++) d[k] = tc[k] - tc0[k], other -= d[k];
    printf("    \"rank0_seconds\": {\"base_matmul\": %.3f, \"lora\": %.3f, \"attention\": %.3f, \"lm_head_loss\": %.3f, "
           "\"other\": %.3f, \"wait_for_ranks\": %.3f}}\n",
           d[WK_TC_BASE], d[WK_TC_LORA], d[WK_TC_ATTN], d[WK_TC_HEAD], other, d[WK_TC_WAIT]);
    wick_trainer_free(t);
    wick_adapter_free(ad);
    wick_model_free(m);
    free(ids), free(lens);
    return 0;
}

int main(int argc, char **argv) {
    model_args a = {.seq = 256, .batch = 4, .steps = 3};
    int threads = 0, skip = 0, sgemm = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) a.model = argv[++i];
        else if (!strcmp(argv[i], "--seq") && i + 1 < argc) a.seq = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) a.batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) a.steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--recompute")) a.recompute = 1;
        else if (!strcmp(argv[i], "--replicas") && i + 1 < argc) a.replicas = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--split")) a.split = 1;
        else if (!strcmp(argv[i], "--no-split")) a.split = -1;
        else if (!strcmp(argv[i], "--sgemm")) sgemm = 1;
        else if (!strcmp(argv[i], "--op-times")) a.op_times = 1;
        else if (!strcmp(argv[i], "--skip-model")) skip = 1;
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) a.device = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc && (!strcmp(argv[i + 1], "f32") || !strcmp(argv[i + 1], "bf16")))
            a.bf16 = !strcmp(argv[++i], "bf16");
        else return fprintf(stderr, "usage: bench_train [--model DIR] [--seq N] [--batch N] [--steps N] [--threads T] "
                                    "[--recompute] [--skip-model] [--device cpu|cuda[:N]] [--dtype f32|bf16] "
                                    "[--replicas G] [--split|--no-split] [--sgemm] [--op-times]\n"), 2;
    }
    wick_set_threads(threads);
    printf("{\n  \"threads\": %d,\n", wick_get_threads());
    if (sgemm) bench_sgemm(wick_get_threads());
    bench_adamw();
    bench_iteration();
    if (!skip && bench_model(&a)) {
        fprintf(stderr, "bench_train: %s\n", wick_last_error());
        printf("  \"model_training\": null\n}\n");
        return 1;
    }
    if (skip) printf("  \"model_training\": null\n");
    printf("}\n");
    return 0;
}
