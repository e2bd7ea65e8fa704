/*
 * bench_dp.c — data-parallel LoRA training throughput (wick_train_run with replicas: one
 * replica per GPU, gradients all-reduced with NCCL) against the GPU count, printed as JSON.
 *
 * For each count G in --gpus (default 1,2): the same per-GPU micro-batch (--batch sequences
 * of exactly --seq ids, random, each GPU its own), so the global batch is G × batch; r16 on
 * all seven linear layers, AdamW; --warmup steps untimed, then --steps timed. tok/s counts
 * every id of the global batch over the timed steps' wall time (as bench_train); scaling is
 * tok/s(G) / tok/s(1). G = 1 is plain one-GPU training (no NCCL group).
 *
 * usage: bench_dp --model DIR [--gpus 1,2] [--seq 512] [--batch 4] [--steps 6] [--warmup 2]
 *                 [--recompute] [--work DIR]
 * Needs the CUDA backend, G GPUs and libnccl.so.2 for G > 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "wick.h"

typedef struct {
    int warmup, step;
    double t0, t1; /* elapsed_s at the end of the warm-up / of the last step */
} timing;

static int on_step(const wick_train_progress *p, void *user) {
    timing *t = user;
    if (p->step == t->warmup) t->t0 = p->elapsed_s;
    t->t1 = p->elapsed_s, t->step = p->step;
    return 0;
}

static int write_data(const char *path, int lines, int seq, int vocab) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < lines; i++) {
        fputs("{\"input_ids\": [", f);
        for (int t = 0; t < seq; t++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            fprintf(f, "%s%d", t ? "," : "", (int)(3 + (x >> 33) % (uint64_t)(vocab - 3)));
        }
        fputs("]}\n", f);
    }
    return fclose(f) ? -1 : 0;
}

int main(int argc, char **argv) {
    const char *model = NULL, *gpus = "1,2", *work = "/tmp/wick_bench_dp";
    int seq = 512, batch = 4, steps = 6, warmup = 2, recompute = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--gpus") && i + 1 < argc) gpus = argv[++i];
        else if (!strcmp(argv[i], "--seq") && i + 1 < argc) seq = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--work") && i + 1 < argc) work = argv[++i];
        else if (!strcmp(argv[i], "--recompute")) recompute = 1;
        else return fprintf(stderr, "usage: bench_dp --model DIR [--gpus 1,2] [--seq N] [--batch N] [--steps N] "
                                    "[--warmup N] [--recompute] [--work DIR]\n"), 2;
    }
    if (!model || seq < 2 || batch < 1 || steps < 1 || warmup < 1)
        return fprintf(stderr, "bench_dp: --model is required; seq >= 2, batch, steps, warmup >= 1\n"), 2;
    int ng = 0, g[16], maxg = 1;
    for (const char *p = gpus; *p && ng < 16; p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p)) {
        g[ng] = atoi(p);
        if (g[ng] < 1) return fprintf(stderr, "bench_dp: --gpus wants counts >= 1, not '%s'\n", gpus), 2;
        maxg = g[ng] > maxg ? g[ng] : maxg, ng++;
    }
    if (wick_cuda_device_count() < maxg)
        return fprintf(stderr, "bench_dp: %d GPUs asked, %d found\n", maxg, wick_cuda_device_count()), 1;
    wick_model *m;
    wick_model_info mi;
    if (wick_model_load(model, NULL, &m)) return fprintf(stderr, "bench_dp: %s\n", wick_last_error()), 1;
    wick_model_get_info(m, &mi);
    wick_model_free(m);
    mkdir(work, 0755);
    char data[1024], out[1100];
    snprintf(data, sizeof data, "%s/data.jsonl", work);
    if (write_data(data, (warmup + steps) * batch * maxg, seq, mi.vocab_size))
        return fprintf(stderr, "bench_dp: cannot write %s\n", data), 1;
    printf("{\"bench\": \"dp\", \"model\": \"%s\", \"seq\": %d, \"batch_per_gpu\": %d, \"r\": 16, \"recompute\": %d, "
           "\"steps\": %d, \"results\": [", model, seq, batch, recompute, steps);
    double base = 0;
    for (int k = 0; k < ng; k++) {
        wick_train_config c = wick_train_config_default();
        snprintf(out, sizeof out, "%s/out%d", work, g[k]);
        c.model_dir = model, c.data_path = data, c.out_dir = out, c.device = "cuda";
        c.replicas = g[k] > 1 ? g[k] : 0;
        c.batch_size = batch * g[k], c.max_steps = warmup + steps, c.seq_len = seq, c.shuffle = 0;
        c.lora_r = 16, c.lora_alpha = 32, c.opt.lr = 1e-4f, c.opt.recompute = recompute;
        timing t = {warmup, 0, 0, 0};
        c.progress = on_step, c.user = &t;
        wick_train_summary s;
        if (wick_train_run(&c, &s)) return fprintf(stderr, "bench_dp: %d GPUs: %s\n", g[k], wick_last_error()), 1;
        double tok = (double)steps * batch * g[k] * seq / (t.t1 - t.t0);
        if (g[k] == 1) base = tok;
        printf("%s{\"gpus\": %d, \"tok_s\": %.1f, \"tok_s_per_gpu\": %.1f, \"scaling\": %.3f, \"last_loss\": %.4f}",
               k ? ", " : "", g[k], tok, tok / g[k], base > 0 ? tok / base : 0.0, s.last_loss);
        fflush(stdout);
    }
    printf("]}\n");
    return 0;
}
