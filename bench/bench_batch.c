/*
 * bench_batch.c — aggregate decode throughput of the batched decode step
 * (wick_session_eval_batch) vs the number of concurrent streams, printed as JSON.
 *
 * For each stream count S (default 1,4,16,64): S sessions, each prefilled with a few ids
 * (batched steps, untimed), then timed batched decode steps (one id per stream each) in
 * three mixes: every stream on the base; every stream on one adapter; stream i on adapter
 * i % 8 of 8 different adapters (r16 on all seven linear layers, random A and B). Reports
 * tok/s = S * steps / seconds (best of --reps, the mixes interleaved) and the ratios of the
 * adapter mixes to the base; the target is 8-adapter / base >= 0.90. The same per second of
 * process CPU time (*_tok_per_cpu_s, cpu_ratio_*) holds up on a shared machine (with
 * --threads 1 it is the work itself; with more threads it includes barrier spinning).
 *
 * --op-times 1 (CUDA) then times every kernel of one batched step on the base and one with the
 * 8 adapters, for each stream count (wk_cuda_optime: kernels back to back), tables to stderr.
 *
 * usage: bench_batch [--model DIR | --preset NAME] [--device cpu|cuda[:N]] [--threads T]
 *                    [--streams 1,4,16,64] [--steps K] [--reps R] [--rank 16] [--work DIR] [--op-times 1]
 *                    [--logits 0]
 * --logits 0 runs the steps without the LM head and its download (the layers alone).
 * Without --model, the preset (default qwen2.5-0.5b, bf16, seed 1) is written once under
 * --work (default /tmp/wick_bench_batch/<preset>).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "wick.h"
#include "model/model.h"
#ifdef WICK_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

#define N_ADAPTERS 8
#define PREFILL 4 /* ids each stream holds before the timed steps */
#define MAX_STREAMS 64

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "bench_batch: %s: %s\n", what, wick_last_error());
    exit(1);
}

typedef struct {
    const char *model, *preset, *device, *work, *streams;
    int threads, steps, reps, rank, optimes, logits;
} opts;

static void usage(void) {
    fprintf(stderr, "usage: bench_batch [--model DIR | --preset NAME] [--device cpu|cuda[:N]] [--threads T]\n"
                    "                   [--streams 1,4,16,64] [--steps K] [--reps R] [--rank 16] [--work DIR]\n"
                    "                   [--op-times 1] [--logits 0]\n");
}

static int parse(int argc, char **argv, opts *o) {
    *o = (opts){NULL, "qwen2.5-0.5b", "cpu", "/tmp/wick_bench_batch", "1,4,16,64", 0, 8, 2, 16, 0, 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(), 1;
        if (!v) return usage(), 2;
        if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--preset")) o->preset = v;
        else if (!strcmp(a, "--device")) o->device = v;
        else if (!strcmp(a, "--work")) o->work = v;
        else if (!strcmp(a, "--streams")) o->streams = v;
        else if (!strcmp(a, "--threads")) o->threads = atoi(v);
        else if (!strcmp(a, "--steps")) o->steps = atoi(v);
        else if (!strcmp(a, "--reps")) o->reps = atoi(v);
        else if (!strcmp(a, "--rank")) o->rank = atoi(v);
        else if (!strcmp(a, "--op-times")) o->optimes = atoi(v);
        else if (!strcmp(a, "--logits")) o->logits = atoi(v);
        else return usage(), 2;
        i++;
    }
    if (o->steps < 1 || o->reps < 1 || o->rank < 1) return usage(), 2;
    return 0;
}

/* The model directory: --model, or the preset written once under work. */
static const char *model_dir(const opts *o, char *buf, size_t cap) {
    if (o->model) return o->model;
    snprintf(buf, cap, "%s/%s", o->work, o->preset);
    char cfg[1200];
    snprintf(cfg, sizeof cfg, "%s/config.json", buf);
    struct stat st;
    if (stat(cfg, &st) == 0) return buf;
    mkdir(o->work, 0755);
    fprintf(stderr, "bench_batch: writing preset %s (bf16) to %s\n", o->preset, buf);
    if (wick_init_model(NULL, o->preset, NULL, WICK_DT_BF16, 1, buf)) die("init-model");
    return buf;
}

/* Seconds (wall; *cpu: process CPU time) for `steps` batched steps of the S sessions with
 * adapter ads[i % nad] (none when nad = 0). */
static double run_mix(wick_session **ss, int S, wick_adapter *const *ads, int nad, int steps, float *logits,
                      double *cpu) {
    int32_t ids[MAX_STREAMS];
    for (int i = 0; i < S; i++) {
        wick_session_reset(ss[i]);
        wick_status st = wick_session_set_adapter(ss[i], nad ? ads[i % nad] : NULL, 1.f);
        if (st == WICK_EUNSUPPORTED) return -1; /* a backend without adapters yet: reported as null */
        if (st) die("set_adapter");
        ids[i] = (int32_t)((17 + 31 * i) % 256);
    }
    for (int t = 0; t < PREFILL; t++) { /* the streams' history (untimed; the first step also warms up) */
        if (wick_session_eval_batch(ss, ids, S, NULL)) die("prefill");
        for (int i = 0; i < S; i++) ids[i] = (int32_t)((ids[i] * 7919 + 13) % 256);
    }
    double t0 = now(), c0 = cpu_now();
    for (int t = 0; t < steps; t++) {
        if (wick_session_eval_batch(ss, ids, S, logits)) die("decode step");
        for (int i = 0; i < S; i++) ids[i] = (int32_t)((ids[i] * 7919 + 13 + t) % 256);
    }
    *cpu = cpu_now() - c0;
    return now() - t0;
}

/* CUDA: every kernel of one batched step of the S sessions on the base and on the 8 adapters. */
static void op_times(wick_model *m, wick_session **ss, int S, wick_adapter *const *ads, float *logits) {
#ifdef WICK_HAVE_CUDA
    for (int c = 0; c < 2; c++) {
        double cpu;
        run_mix(ss, S, ads, c ? N_ADAPTERS : 0, 2, logits, &cpu); /* warm: graphs captured */
        int32_t ids[MAX_STREAMS];
        for (int i = 0; i < S; i++) ids[i] = (int32_t)(i % 256);
        wk_cuda_optime_begin(m->be);
        if (wick_session_eval_batch(ss, ids, S, logits)) die("decode step");
        fprintf(stderr, "== %d streams, %s: kernels of one step\n", S, c ? "8 adapters" : "base");
        wk_cuda_optime_end(m->be, stderr);
    }
#else
    (void)m, (void)ss, (void)S, (void)ads, (void)logits;
#endif
}

/* A JSON number, or null for a case that could not run. */
static const char *num(double v, char *buf) {
    if (v > 1e-12 && v < 1e29) snprintf(buf, 32, "%.3f", v);
    else snprintf(buf, 32, "null");
    return buf;
}

int main(int argc, char **argv) {
    opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    wick_set_threads(o.threads);
    char buf[1024];
    const char *dir = model_dir(&o, buf, sizeof buf);
    wick_model_opts mo = wick_model_opts_default();
    mo.device = o.device;
    wick_model *m;
    if (wick_model_load(dir, &mo, &m)) die(dir);
    wick_model_info mi;
    wick_model_get_info(m, &mi);
    wick_adapter *ads[N_ADAPTERS];
    wick_lora_config lc = wick_lora_config_default();
    lc.r = o.rank, lc.alpha = 2.f * o.rank, lc.init = WICK_LORA_INIT_RANDOM;
    for (int a = 0; a < N_ADAPTERS; a++)
        if (wick_adapter_new(m, &lc, (uint64_t)a + 1, &ads[a])) die("adapter_new");
    printf("{\"bench\":\"batch\",\"model\":\"%s\",\"device\":\"%s\",\"threads\":%d,\"rank\":%d,\"steps\":%d,\"reps\":%d,"
           "\"results\":[",
           dir, o.device, wick_get_threads(), o.rank, o.steps, o.reps);
    float *logits = malloc(sizeof(float) * (size_t)MAX_STREAMS * mi.vocab_size);
    const char *p = o.streams;
    for (int first = 1; *p; first = 0) {
        int S = atoi(p);
        while (*p && *p != ',') p++;
        if (*p == ',') p++;
        if (S < 1 || S > MAX_STREAMS) die("--streams: each count must be 1..64");
        wick_session *ss[MAX_STREAMS];
        wick_session_opts so = {.max_seq = PREFILL + o.steps + 1};
        for (int i = 0; i < S; i++)
            if (wick_session_new(m, &so, &ss[i])) die("session_new");
        double best[3] = {1e30, 1e30, 1e30}, bcpu[3] = {1e30, 1e30, 1e30};
        for (int r = 0; r < o.reps; r++)
            for (int k = 0; k < 3; k++) {
                int c = (k + r) % 3; /* the order rotates per rep: no mix always runs first */
                double cpu = 0, t = run_mix(ss, S, ads, c == 0 ? 0 : c == 1 ? 1 : N_ADAPTERS, o.steps, logits, &cpu);
                if (t < 0) continue;
                best[c] = t < best[c] ? t : best[c];
                bcpu[c] = cpu < bcpu[c] ? cpu : bcpu[c];
            }
        double tps[3], tpc[3];
        for (int c = 0; c < 3; c++) tps[c] = S * o.steps / best[c], tpc[c] = S * o.steps / bcpu[c];
        char b[10][32];
        printf("%s{\"streams\":%d,\"base_tok_s\":%s,\"one_adapter_tok_s\":%s,\"eight_adapters_tok_s\":%s,"
               "\"ratio_one_vs_base\":%s,\"ratio_eight_vs_base\":%s,"
               "\"base_tok_per_cpu_s\":%s,\"one_adapter_tok_per_cpu_s\":%s,\"eight_adapters_tok_per_cpu_s\":%s,"
               "\"cpu_ratio_one_vs_base\":%s,\"cpu_ratio_eight_vs_base\":%s}",
               first ? "" : ",", S, num(tps[0], b[0]), num(tps[1], b[1]), num(tps[2], b[2]), num(tps[1] / tps[0], b[3]),
               num(tps[2] / tps[0], b[4]), num(tpc[0], b[5]), num(tpc[1], b[6]), num(tpc[2], b[7]),
               num(tpc[1] / tpc[0], b[8]), num(tpc[2] / tpc[0], b[9]));
        fflush(stdout);
        if (o.optimes && !strncmp(o.device, "cuda", 4)) op_times(m, ss, S, ads, logits);
        for (int i = 0; i < S; i++) wick_session_free(ss[i]);
    }
    printf("]}\n");
    free(logits);
    for (int a = 0; a < N_ADAPTERS; a++) wick_adapter_free(ads[a]);
    wick_model_free(m);
    return 0;
}
