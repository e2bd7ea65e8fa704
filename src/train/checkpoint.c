/*
 * checkpoint.c — training checkpoints: out/checkpoint-N holds the adapter (PEFT),
 * optimizer.safetensors (AdamW moments, step, dropout stream position) and
 * trainer_state.json (step, data position, seed). A checkpoint is written to
 * out/.checkpoint-N.tmp, every file fsync'd, then renamed into place, so a
 * process killed at any moment leaves either the whole checkpoint or none; only
 * directories named checkpoint-N with a trainer_state.json count as complete.
 */
#include "train/run.h"

#include <dirent.h>
#include <jansson.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Removes a flat directory (files only) and the directory itself. */
static void rm_flat(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(wk_path_join(p, sizeof p, dir, e->d_name));
    closedir(d);
    rmdir(dir);
}

static void fsync_path(const char *path, int is_dir) {
    int fd = open(path, is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd >= 0) fsync(fd), close(fd);
}

/* Step numbers of complete checkpoints in dir, ascending (caller frees). */
static int list_ckpts(const char *dir, int **out) {
    DIR *d = opendir(dir);
    int n = 0, cap = 0, *v = NULL;
    struct dirent *e;
    char p[4096], q[4096];
    while (d && (e = readdir(d))) {
        int step;
        char tail;
        if (sscanf(e->d_name, "checkpoint-%d%c", &step, &tail) != 1) continue;
        wk_path_join(q, sizeof q, wk_path_join(p, sizeof p, dir, e->d_name), "trainer_state.json");
        if (!wk_file_exists(q)) continue;
        if (n == cap) v = realloc(v, sizeof(int) * (cap = cap ? 2 * cap : 16));
        v[n++] = step;
    }
    if (d) closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            int t = v[j];
            v[j] = v[j - 1], v[j - 1] = t;
        }
    *out = v;
    return n;
}

static wick_status write_state_json(wk_run *r, const char *dir) {
    char path[4096];
    wk_path_join(path, sizeof path, dir, "trainer_state.json");
    FILE *f = fopen(path, "w");
    if (!f) return wk_err(WICK_EIO, "%s: %s", path, strerror(errno));
    int step = wick_trainer_steps(r->t);
    fprintf(f, "{\"step\": %d, \"total_steps\": %d, \"data_position\": %lld, \"seed\": %llu}\n", step, r->total,
            (long long)step * r->c->batch_size * r->c->grad_accum, (unsigned long long)r->c->opt.seed);
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    return bad ? wk_err(WICK_EIO, "%s: write failed", path) : WICK_OK;
}

static void prune(wk_run *r) {
    int *v, n = list_ckpts(r->c->out_dir, &v), keep = WK_MAX(1, r->c->keep_checkpoints);
    char name[64], p[4096];
    for (int i = 0; i < n - keep; i++) {
        snprintf(name, sizeof name, "checkpoint-%d", v[i]);
        rm_flat(wk_path_join(p, sizeof p, r->c->out_dir, name));
    }
    free(v);
}

wick_status wk_ckpt_save(wk_run *r) {
    const wick_train_config *c = r->c;
    int step = wick_trainer_steps(r->t);
    char tmp[4096], fin[4096], name[64], p[4096];
    snprintf(name, sizeof name, ".checkpoint-%d.tmp", step);
    wk_path_join(tmp, sizeof tmp, c->out_dir, name);
    snprintf(name, sizeof name, "checkpoint-%d", step);
    wk_path_join(fin, sizeof fin, c->out_dir, name);
    rm_flat(tmp);
    if (mkdir(tmp, 0777) != 0) return wk_err(WICK_EIO, "%s: %s", tmp, strerror(errno));
    wick_status st = wick_adapter_save(r->a, tmp);
    if (!st && c->checkpoint_hook) c->checkpoint_hook(wk_path_join(p, sizeof p, tmp, "adapter_model.safetensors"), c->user);
    if (!st) st = wick_trainer_save_state(r->t, wk_path_join(p, sizeof p, tmp, "optimizer.safetensors"));
    if (!st && c->checkpoint_hook) c->checkpoint_hook(p, c->user);
    if (!st) st = write_state_json(r, tmp);
    if (!st && c->checkpoint_hook) c->checkpoint_hook(wk_path_join(p, sizeof p, tmp, "trainer_state.json"), c->user);
    if (st) return wk_err_prefix(st, "checkpoint %d", step);
    fsync_path(wk_path_join(p, sizeof p, tmp, "adapter_config.json"), 0);
    fsync_path(tmp, 1);
    rm_flat(fin);
    if (rename(tmp, fin) != 0) return wk_err(WICK_EIO, "checkpoint %d: rename to %s: %s", step, fin, strerror(errno));
    fsync_path(c->out_dir, 1);
    prune(r);
    return WICK_OK;
}

wick_status wk_ckpt_find(const char *resume, char *path, size_t cap) {
    char p[4096];
    if (wk_file_exists(wk_path_join(p, sizeof p, resume, "trainer_state.json"))) {
        snprintf(path, cap, "%s", resume);
        return WICK_OK;
    }
    int *v, n = list_ckpts(resume, &v);
    if (n == 0) {
        free(v);
        return wk_err(WICK_EIO, "--resume %s: not a checkpoint and holds no complete checkpoint-N directory", resume);
    }
    char name[64];
    snprintf(name, sizeof name, "checkpoint-%d", v[n - 1]);
    free(v);
    wk_path_join(path, cap, resume, name);
    return WICK_OK;
}

/* The checkpoint's data position and seed must be the ones this run would have at that step. */
static wick_status check_state_json(wk_run *r, const char *dir) {
    char p[4096];
    json_error_t e;
    json_t *j = json_load_file(wk_path_join(p, sizeof p, dir, "trainer_state.json"), 0, &e);
    if (!j) return wk_err(WICK_EFORMAT, "%s: invalid JSON: %s", p, e.text);
    long long step = json_integer_value(json_object_get(j, "step"));
    long long pos = json_integer_value(json_object_get(j, "data_position"));
    unsigned long long seed = (unsigned long long)json_integer_value(json_object_get(j, "seed"));
    json_decref(j);
    long long want = (long long)wick_trainer_steps(r->t) * r->c->batch_size * r->c->grad_accum;
    if (step != wick_trainer_steps(r->t) || pos != want)
        return wk_err(WICK_EINVAL, "%s: step %lld at data position %lld, but this run's batch size x grad-accum gives %lld;"
                      " resume with the settings of the original run", p, step, pos, want);
    if (r->c->shuffle && seed != (unsigned long long)r->c->opt.seed)
        return wk_err(WICK_EINVAL, "%s: made with --seed %llu, this run has %llu", p, seed,
                      (unsigned long long)r->c->opt.seed);
    return WICK_OK;
}

wick_status wk_ckpt_load_state(wk_run *r, const char *dir) {
    char p[4096];
    wick_status st = wick_trainer_load_state(r->t, wk_path_join(p, sizeof p, dir, "optimizer.safetensors"));
    if (!st && r->dp.world) st = wk_dp_load_state(&r->dp, p);
    if (!st) st = check_state_json(r, dir);
    return st ? wk_err_prefix(st, "--resume %s", dir) : WICK_OK;
}
