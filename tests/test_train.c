/* test_train.c — the training run: a process killed in the middle of writing a checkpoint leaves
 * the previous checkpoint complete and loadable, and resuming from the output directory ends with
 * the adapter of an uninterrupted run (bit for bit); the loss falls on a memorisation task with a
 * new adapter; a NaN in the adapter stops training with a clear error; the lr schedules follow HF. */
#include "t.h"
#include "train/train.h"
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmp[256], data[300];

static wick_train_config base_cfg(const char *out) {
    wick_train_config c = wick_train_config_default();
    c.model_dir = T_PATH("golden/llama_tiny/model");
    c.data_path = data;
    c.out_dir = out;
    c.max_steps = 6, c.batch_size = 2, c.grad_accum = 1, c.save_every = 1, c.keep_checkpoints = 3;
    c.lora_r = 4, c.lora_alpha = 8;
    c.opt.lr = 1e-2f, c.opt.scheduler = WICK_SCHED_LINEAR, c.opt.warmup_steps = 1, c.opt.lora_dropout = 0.1f;
    c.opt.seed = 7;
    return c;
}

static void kill_hook(const char *path, void *user) {
    (void)user;
    if (strstr(path, ".checkpoint-4.tmp/optimizer")) raise(SIGKILL);
}

static int read_all(const char *path, char **buf, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    *buf = malloc(*n + 1);
    size_t k = fread(*buf, 1, *n, f);
    (*buf)[k] = 0;
    fclose(f);
    return k == *n ? 0 : -1;
}

static int same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int ok = !read_all(a, &x, &nx) && !read_all(b, &y, &ny) && nx == ny && !memcmp(x, y, nx);
    free(x), free(y);
    return ok;
}

static void kill_during_save(pid_t child) {
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child was not killed during the save (status %d)", status);
    char p[512], q[512];
    snprintf(p, sizeof p, "%s/killed/checkpoint-3/trainer_state.json", tmp);
    CHECK(access(p, F_OK) == 0, "checkpoint-3 missing after the kill");
    snprintf(p, sizeof p, "%s/killed/checkpoint-4", tmp);
    CHECK(access(p, F_OK) != 0, "a partial checkpoint-4 was published");
    /* the last checkpoint loads: resume from the out dir and finish */
    snprintf(p, sizeof p, "%s/killed", tmp);
    wick_train_config c = base_cfg(p);
    c.resume = p;
    wick_train_summary s;
    CHECK_OK(wick_train_run(&c, &s));
    CHECK(s.steps == 6, "resumed run ended at step %d", s.steps);
    wick_train_config c3 = base_cfg(p);
    c3.resume = p, c3.batch_size = 3;
    CHECK_FAILS(wick_train_run(&c3, NULL), "settings of the original run");
    snprintf(q, sizeof q, "%s/clean", tmp);
    wick_train_config c2 = base_cfg(q);
    CHECK_OK(wick_train_run(&c2, &s));
    snprintf(p, sizeof p, "%s/killed/adapter_model.safetensors", tmp);
    snprintf(q, sizeof q, "%s/clean/adapter_model.safetensors", tmp);
    CHECK(same_file(p, q), "adapter after kill + resume differs from the uninterrupted run");
    snprintf(p, sizeof p, "%s/killed/metrics.jsonl", tmp);
    snprintf(q, sizeof q, "%s/clean/metrics.jsonl", tmp);
    char *x = NULL;
    size_t n = 0;
    int lines = 0;
    if (!read_all(p, &x, &n))
        for (size_t i = 0; i < n; i++) lines += x[i] == '\n';
    free(x);
    CHECK(lines == 6, "metrics.jsonl after resume has %d lines, expected 6", lines);
}

static void memorise(void) {
    char out[512];
    snprintf(out, sizeof out, "%s/mem", tmp);
    wick_train_config c = base_cfg(out);
    c.max_steps = 40, c.save_every = 0, c.opt.lora_dropout = 0, c.opt.lr = 2e-2f, c.lora_r = 8, c.lora_alpha = 16;
    c.opt.scheduler = WICK_SCHED_CONSTANT, c.opt.warmup_steps = 0;
    c.eval_path = data, c.eval_every = 20;
    wick_train_summary s;
    CHECK_OK(wick_train_run(&c, &s));
    CHECK(fabs(s.eval_loss - s.last_loss) < 0.5, "eval loss %g vs last training loss %g", s.eval_loss, s.last_loss);
    char p[600], *x = NULL;
    size_t n = 0;
    snprintf(p, sizeof p, "%s/metrics.jsonl", out);
    int evals = 0;
    if (!read_all(p, &x, &n))
        for (char *q = x; (q = strstr(q, "eval_loss")); q++) evals++;
    free(x);
    CHECK(evals == 2, "metrics.jsonl has %d eval_loss entries, expected 2 (steps 20, 40)", evals);
    CHECK(s.last_loss < 0.5 * s.first_loss, "memorisation: loss %.4f -> %.4f did not halve", s.first_loss, s.last_loss);
    printf("memorisation: loss %.4f -> %.4f in %d steps\n", s.first_loss, s.last_loss, s.steps);
}

static void nan_stops(void) {
    char out[512], ad[512], p[600];
    snprintf(ad, sizeof ad, "%s/nan_adapter", tmp);
    snprintf(out, sizeof out, "%s/nan", tmp);
    wick_train_config c = base_cfg(out);
    c.max_steps = 2, c.save_every = 0, c.init_adapter = ad;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/adapter_config.json %s/", ad, T_PATH("golden/llama_tiny/adapter1"), ad);
    CHECK(system(cmd) == 0, "copy adapter config");
    wick_st *f;
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", T_PATH("golden/llama_tiny/adapter1"));
    if (wick_st_open(p, &f)) return;
    int n = wick_st_count(f);
    wick_tensor_view *v = calloc(n, sizeof *v);
    float *bad = NULL;
    for (int i = 0; i < n; i++) {
        wick_st_get(f, i, &v[i]);
        if (i == 0) {
            size_t cnt = (size_t)v[0].shape[0] * v[0].shape[1];
            bad = malloc(sizeof(float) * cnt);
            memcpy(bad, v[0].data, sizeof(float) * cnt);
            bad[3] = NAN;
            v[0].data = bad;
        }
    }
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", ad);
    CHECK_OK(wick_safetensors_write(p, v, n, NULL));
    wick_st_close(f);
    free(v), free(bad);
    CHECK_FAILS(wick_train_run(&c, NULL), "NaN");
}

static void epochs(void) {
    char out[512];
    snprintf(out, sizeof out, "%s/epochs", tmp);
    wick_train_config c = base_cfg(out);
    c.max_steps = 0, c.epochs = 2, c.batch_size = 4, c.save_every = 0; /* 12 lines of 6 -> 3 steps */
    wick_train_summary s;
    CHECK_OK(wick_train_run(&c, &s));
    CHECK(s.steps == 3, "2 epochs of 6 lines at 4 per step took %d steps, expected 3", s.steps);
}

static void schedules(void) {
    CHECK(wk_lr_factor(WICK_SCHED_COSINE, 0, 3, 10) == 0.0, "warmup starts at 0");
    CHECK(fabs(wk_lr_factor(WICK_SCHED_COSINE, 2, 3, 10) - 2.0 / 3) < 1e-15, "warmup 2/3");
    CHECK(fabs(wk_lr_factor(WICK_SCHED_COSINE, 5, 3, 10) - 0.5 * (1 + cos(M_PI * 2 / 7))) < 1e-15, "cosine");
    CHECK(fabs(wk_lr_factor(WICK_SCHED_LINEAR, 5, 3, 10) - 5.0 / 7) < 1e-15, "linear");
    CHECK(wk_lr_factor(WICK_SCHED_LINEAR, 12, 3, 10) == 0.0, "linear clamps at 0");
    CHECK(wk_lr_factor(WICK_SCHED_CONSTANT, 7, 3, 10) == 1.0 && wk_lr_factor(WICK_SCHED_CONSTANT, 0, 0, 10) == 1.0,
          "constant");
    /* AdamW step 1 from zero state: p*(1-lr*wd) - lr*g/(|g|+eps) */
    float w[2] = {1.f, -2.f}, g[2] = {0.5f, -0.25f}, m[2] = {0}, v[2] = {0};
    wk_adamw(w, g, m, v, 2, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.01f);
    CHECK(fabsf(w[0] - (1.f * 0.999f - 0.1f)) < 1e-6f && fabsf(w[1] - (-2.f * 0.999f + 0.1f)) < 1e-6f, "adamw step 1");
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/wick_train_XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    snprintf(data, sizeof data, "%s/data.jsonl", tmp);
    FILE *f = fopen(data, "w");
    uint64_t s = 12345;
    for (int i = 0; i < 6; i++) {
        fprintf(f, "{\"input_ids\": [");
        for (int t = 0; t < 10 + i; t++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            fprintf(f, "%s%d", t ? ", " : "", (int)(3 + (s >> 33) % 600));
        }
        fprintf(f, "]}\n");
    }
    fclose(f);
    /* fork before this process starts any OpenMP threads */
    char out[512];
    snprintf(out, sizeof out, "%s/killed", tmp);
    pid_t pid = fork();
    if (pid == 0) {
        wick_set_threads(1);
        wick_train_config c = base_cfg(out);
        c.checkpoint_hook = kill_hook;
        wick_train_run(&c, NULL);
        _exit(3);
    }
    wick_set_threads(1);
    kill_during_save(pid);
    memorise();
    nan_stops();
    epochs();
    schedules();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (!t_fail && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return t_summary();
}
