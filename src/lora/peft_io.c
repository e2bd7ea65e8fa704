/*
 * peft_io.c — PEFT adapter directories both ways.
 * Load: adapter_config.json + adapter_model.safetensors (mmap'd, validated),
 * keys "base_model.model.model.layers.N.<self_attn|mlp>.<proj>.lora_A.weight"
 * (A [r,in]) and "...lora_B.weight" (B [out,r]); every tensor converted from
 * F32/BF16/F16 straight into the adapter's one f32 allocation, in parallel.
 * Everything is checked against the config and the base before any data moves.
 * Save: the same layout in F32 and a LoraConfig PEFT loads, each file atomic.
 */
#include "io/safetensors.h"
#include "lora/adapter.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_PREFIX "base_model.model.model.layers."

static void peft_key(char *buf, size_t cap, int l, int p, int isB) {
    snprintf(buf, cap, KEY_PREFIX "%d.%s.%s.lora_%c.weight", l, wk_proj_parent[p], wk_proj_names[p], isB ? 'B' : 'A');
}

/* Parses a PEFT LoRA key; returns 0 and fills l, p, isB, or -1. */
static int parse_key(const char *k, int *l, int *p, int *isB) {
    size_t pl = strlen(KEY_PREFIX);
    if (strncmp(k, KEY_PREFIX, pl) != 0 || k[pl] < '0' || k[pl] > '9') return -1;
    char *end;
    long v = strtol(k + pl, &end, 10);
    if (*end != '.' || v > 100000 || (k[pl] == '0' && end != k + pl + 1)) return -1;
    for (int j = 0; j < WK_P_COUNT; j++)
        for (int b = 0; b < 2; b++) {
            char rest[96];
            snprintf(rest, sizeof rest, ".%s.%s.lora_%c.weight", wk_proj_parent[j], wk_proj_names[j], b ? 'B' : 'A');
            if (!strcmp(end, rest)) return *l = (int)v, *p = j, *isB = b, 0;
        }
    return -1;
}

static wick_status unexpected_key(const char *path, const char *k, const char *why) {
    if (strstr(k, "lora_magnitude_vector"))
        return wk_err(WICK_EUNSUPPORTED, "%s: tensor '%s': DoRA is not supported", path, k);
    if (strstr(k, "lora_embedding") || strstr(k, "embed_tokens") || strstr(k, "lm_head"))
        return wk_err(WICK_EUNSUPPORTED, "%s: tensor '%s': LoRA on the embedding or LM head is not supported", path, k);
    if (strstr(k, "lora_") && strstr(k, ".bias"))
        return wk_err(WICK_EUNSUPPORTED, "%s: tensor '%s': LoRA biases (lora_bias) are not supported", path, k);
    return wk_err(WICK_EFORMAT, "%s: unexpected key '%s'%s", path, k, why);
}

typedef struct {
    const char *path;
    const wk_peft_cfg *cfg;
    const wick_st *f;
    int *idx;  /* (n_layers, WK_P_COUNT, 2) tensor index of A / B, -1 when absent */
} load_ctx;

/* Maps every tensor of the file to its (layer, projection, A|B); anything else is an error. */
static wick_status index_tensors(load_ctx *c, int n_layers) {
    int n = wick_st_count(c->f);
    for (int i = 0; i < n; i++) {
        wick_tensor_view v;
        wick_st_get(c->f, i, &v);
        int l, p, b;
        if (parse_key(v.name, &l, &p, &b)) return unexpected_key(c->path, v.name, "");
        if (l >= n_layers) {
            char why[96];
            snprintf(why, sizeof why, " (layer %d, but the model has %d layers)", l, n_layers);
            return unexpected_key(c->path, v.name, why);
        }
        if (!wk_peft_is_target(c->cfg, l, p))
            return unexpected_key(c->path, v.name, " (not selected by target_modules/layers_to_transform)");
        c->idx[((size_t)l * WK_P_COUNT + p) * 2 + b] = i;
    }
    return WICK_OK;
}

static wick_status check_2d(const char *path, const wick_tensor_view *v) {
    if (v->dtype != WICK_DT_F32 && v->dtype != WICK_DT_BF16 && v->dtype != WICK_DT_F16)
        return wk_err(WICK_EFORMAT, "%s: tensor '%s': dtype %s, expected F32, BF16 or F16", path, v->name, wick_dtype_name(v->dtype));
    if (v->ndim != 2 || v->shape[0] <= 0 || v->shape[1] <= 0 || v->shape[0] > INT32_MAX || v->shape[1] > INT32_MAX)
        return wk_err(WICK_EFORMAT, "%s: tensor '%s': expected a 2-D matrix, got %d dims", path, v->name, v->ndim);
    return WICK_OK;
}

/* Checks A/B of one targeted pair and records its shapes in the slot. */
static wick_status check_pair(load_ctx *c, const wick_model *m, int l, int p, wk_slot *s) {
    int ia = c->idx[((size_t)l * WK_P_COUNT + p) * 2], ib = c->idx[((size_t)l * WK_P_COUNT + p) * 2 + 1];
    char key[200];
    if (ia < 0 || ib < 0) {
        peft_key(key, sizeof key, l, p, ia >= 0);
        return wk_err(WICK_EFORMAT, "%s: missing key '%s' (the config targets layer %d %s)", c->path, key, l, wk_proj_names[p]);
    }
    wick_tensor_view A, B;
    wick_st_get(c->f, ia, &A);
    wick_st_get(c->f, ib, &B);
    wick_status st = check_2d(c->path, &A);
    if (!st) st = check_2d(c->path, &B);
    if (st) return st;
    int r;
    double alpha;
    wk_peft_rank_alpha(c->cfg, l, p, &r, &alpha);
    int in = m ? m->layers[l].p[p].cols : (int)A.shape[1], out = m ? m->layers[l].p[p].rows : (int)B.shape[0];
    if (A.shape[0] != r)
        return wk_err(WICK_EFORMAT, "%s: tensor '%s': rank %lld does not match the config's r=%d", c->path, A.name,
                      (long long)A.shape[0], r);
    if (A.shape[1] != in)
        return wk_err(WICK_EFORMAT, "%s: tensor '%s': shape [%lld,%lld], expected [%d,%d] (the base's %s has %d inputs)",
                      c->path, A.name, (long long)A.shape[0], (long long)A.shape[1], r, in, wk_proj_names[p], in);
    if (B.shape[0] != out || B.shape[1] != r)
        return wk_err(WICK_EFORMAT, "%s: tensor '%s': shape [%lld,%lld], expected [%d,%d] (%s outputs %d, rank %d)", c->path,
                      B.name, (long long)B.shape[0], (long long)B.shape[1], out, r, wk_proj_names[p], out, r);
    s->lp.r = r;
    s->alpha = alpha;
    s->lp.scale = wk_lora_scale(alpha, r, c->cfg->rslora);
    s->in = in;
    s->out = out;
    return WICK_OK;
}

static int max_layer(const wick_st *f) {
    int mx = -1;
    for (int i = 0; i < wick_st_count(f); i++) {
        wick_tensor_view v;
        wick_st_get(f, i, &v);
        int l, p, b;
        if (!parse_key(v.name, &l, &p, &b) && l > mx) mx = l;
    }
    return mx;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
/* Maps a tensor's file pages in one call (instead of a fault per 4 KB); errors are harmless. */
static void prefault(const void *p, size_t n) {
    uintptr_t b = (uintptr_t)p & ~(uintptr_t)4095, e = ((uintptr_t)p + n + 4095) & ~(uintptr_t)4095;
    madvise((void *)b, e - b, MADV_POPULATE_READ);
}

/* Converts every pair's tensors into the adapter's buffer (threads over tensors). */
static void convert_all(wick_adapter *a, const load_ctx *c) {
    int n = a->n_layers * WK_P_COUNT * 2;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; i++) {
        wk_slot *s = &a->slots[i / 2];
        if (!s->lp.A) continue;
        wick_tensor_view v;
        wick_st_get(c->f, c->idx[i], &v);
        float *dst = (i & 1) ? s->lp.B : s->lp.A;
        prefault(v.data, (size_t)wk_numel(&v) * wick_dtype_size(v.dtype));
        wk_to_f32(dst, v.data, v.dtype, (size_t)wk_numel(&v));
    }
}

static const char *base_name(const char *dir, char *buf, size_t cap) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && dir[s - 1] != '/') s--;
    snprintf(buf, cap, "%.*s", (int)(n - s), dir + s);
    return buf[0] ? buf : "default";
}

static wick_status build(const wick_model *m, const char *dir, load_ctx *c, wick_adapter **out) {
    int L = m ? m->c.n_layers : max_layer(c->f) + 1;
    if (L <= 0) return wk_err(WICK_EFORMAT, "%s: no LoRA tensors", c->path);
    c->idx = wk_malloc(sizeof(int) * (size_t)L * WK_P_COUNT * 2, "adapter index");
    if (!c->idx) return WICK_ENOMEM;
    for (size_t i = 0; i < (size_t)L * WK_P_COUNT * 2; i++) c->idx[i] = -1;
    wick_status st = index_tensors(c, L);
    char nm[256];
    wick_adapter *a = st ? NULL : wk_adapter_alloc(base_name(dir, nm, sizeof nm), L);
    if (!st && !a) st = WICK_ENOMEM;
    for (int l = 0; l < L && !st; l++)
        for (int p = 0; p < WK_P_COUNT && !st; p++)
            if (wk_peft_is_target(c->cfg, l, p)) st = check_pair(c, m, l, p, wk_adapter_slot(a, l, p));
    if (!st) st = wk_adapter_alloc_data(a);
    if (!st && a->n_floats == 0) st = wk_err(WICK_EFORMAT, "%s: the config targets no layer of the model", c->path);
    if (st) {
        wick_adapter_free(a);
        return st;
    }
    convert_all(a, c);
    a->m = m;
    a->r = c->cfg->r;
    a->alpha = c->cfg->alpha;
    a->dropout = c->cfg->dropout;
    a->use_rslora = c->cfg->rslora;
    *out = a;
    return WICK_OK;
}

static wick_status load_dir(const wick_model *m, const char *dir, wick_adapter **out) {
    *out = NULL;
    if (!dir) return wk_err(WICK_EINVAL, "adapter: no directory given");
    char cpath[4096], wpath[4096];
    wk_path_join(cpath, sizeof cpath, dir, "adapter_config.json");
    wk_path_join(wpath, sizeof wpath, dir, "adapter_model.safetensors");
    if (!wk_file_exists(wpath)) {
        char bin[4096];
        wk_path_join(bin, sizeof bin, dir, "adapter_model.bin");
        if (wk_file_exists(bin))
            return wk_err(WICK_EUNSUPPORTED, "%s: pickled adapters are not read; save with safe_serialization=True", bin);
        return wk_err(WICK_EIO, "%s: no such file", wpath);
    }
    char *text;
    size_t len;
    wick_status st = wk_read_file(cpath, &text, &len);
    if (st) return st;
    wk_peft_cfg cfg;
    wick_st *f = NULL;
    if ((st = wk_peft_parse(cpath, text, &cfg))) {
        wk_free(text);
        return st;
    }
    load_ctx c = {.path = wpath, .cfg = &cfg};
    st = wick_st_open(wpath, &f);
    c.f = f;
    if (!st) st = build(m, dir, &c, out);
    if (!st) (*out)->config_json = text;
    else wk_free(text);
    wk_free(c.idx);
    wick_st_close(f);
    wk_peft_free(&cfg);
    return st;
}

wick_status wick_adapter_load(wick_model *m, const char *dir, wick_adapter **out) {
    if (!m) return *out = NULL, wk_err(WICK_EINVAL, "adapter_load: no model (use wick_adapter_open to inspect)");
    return load_dir(m, dir, out);
}

wick_status wick_adapter_open(const char *dir, wick_adapter **out) { return load_dir(NULL, dir, out); }

/* ---- save */
wick_status wk_make_dirs(const char *dir) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return wk_err(WICK_EIO, "%s: mkdir: %s", buf, strerror(errno));
            if (!(*p = c)) break;
        }
    }
    return WICK_OK;
}

wick_status wk_write_text_atomic(const char *path, const char *text, size_t len) {
    char tmp[4200];
    int fd;
    wick_status st = wk_atomic_write_begin(path, tmp, sizeof tmp, &fd);
    if (st) return st;
    size_t done = 0;
    while (done < len && !st) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno != EINTR) st = wk_err(WICK_EIO, "%s: write: %s", tmp, strerror(errno));
        else if (w > 0) done += (size_t)w;
    }
    return wk_atomic_write_end(path, tmp, fd, st);
}

/* A LoraConfig with every field PEFT 0.21 writes, so PEFT loads it as its own. */
static char *generated_config(const wick_adapter *a) {
    json_t *t = json_array();
    for (int p = 0; p < WK_P_COUNT; p++)
        if (a->targets & (1u << p)) json_array_append_new(t, json_string(wk_proj_names[p]));
    json_t *init = json_loads(a->init_name ? a->init_name : "true", JSON_DECODE_ANY, NULL);
    json_t *o = json_pack("{s:n,s:{},s:n,s:n,s:n,s:s,s:n,s:b,s:n,s:n,s:b,s:b,s:o,s:n,s:n,s:n,s:n,s:{},s:f,s:b,s:f}",
                          "alora_invocation_tokens", "alpha_pattern", "arrow_config", "auto_mapping",
                          "base_model_name_or_path", "bias", "none", "corda_config", "ensure_weight_tying", 0,
                          "eva_config", "exclude_modules", "fan_in_fan_out", 0, "inference_mode", 1,
                          "init_lora_weights", init, "kasa_config", "layer_replication", "layers_pattern",
                          "layers_to_transform", "loftq_config", "lora_alpha", a->alpha, "lora_bias", 0,
                          "lora_dropout", a->dropout);
    json_t *o2 = json_pack("{s:n,s:n,s:s,s:n,s:n,s:s,s:s,s:i,s:i,s:{},s:n,s:o,s:n,s:s,s:n,s:n,s:b,s:b,s:b,s:n}",
                           "lora_ga_config", "megatron_config", "megatron_core", "megatron.core", "modules_to_save",
                           "monteclora_config", "peft_type", "LORA", "peft_version", "0.21.0", "qalora_group_size", 16,
                           "r", a->r, "rank_pattern", "revision", "target_modules", t, "target_parameters",
                           "task_type", "CAUSAL_LM", "trainable_token_indices", "use_bdlora", "use_dora", 0,
                           "use_qalora", 0, "use_rslora", a->use_rslora, "velora_config");
    if (o && fabs(a->alpha) < 1e15 && a->alpha == (double)(json_int_t)a->alpha) json_object_set_new(o, "lora_alpha", json_integer((json_int_t)a->alpha));
    char *s = NULL;
    if (o && o2 && !json_object_update(o, o2)) s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(o);
    json_decref(o2);
    return s;
}

wick_status wick_adapter_save(const wick_adapter *a, const char *dir) {
    if (!a || !dir) return wk_err(WICK_EINVAL, "adapter_save: no adapter or directory");
    wick_status st = wk_make_dirs(dir);
    if (st) return st;
    int n = 0, cap = a->n_layers * WK_P_COUNT * 2;
    wick_tensor_view *t = wk_calloc(sizeof *t * (size_t)cap, "save list");
    char (*names)[200] = wk_malloc(sizeof *names * (size_t)cap, "save names");
    if (!t || !names) st = WICK_ENOMEM;
    for (int l = 0; l < a->n_layers && !st; l++)
        for (int p = 0; p < WK_P_COUNT; p++) {
            const wk_slot *s = wk_adapter_slot(a, l, p);
            if (!s->lp.A) continue;
            for (int b = 0; b < 2; b++, n++) {
                peft_key(names[n], sizeof names[n], l, p, b);
                t[n] = (wick_tensor_view){.name = names[n], .dtype = WICK_DT_F32, .ndim = 2,
                                          .shape = {b ? s->out : s->lp.r, b ? s->lp.r : s->in}, .data = b ? s->lp.B : s->lp.A};
            }
        }
    char path[4096];
    if (!st) st = wick_safetensors_write(wk_path_join(path, sizeof path, dir, "adapter_model.safetensors"), t, n, "{\"format\":\"pt\"}");
    wk_free(t);
    wk_free(names);
    if (st) return st;
    char *gen = a->config_json ? NULL : generated_config(a);
    const char *cfg = a->config_json ? a->config_json : gen;
    if (!cfg) return wk_err(WICK_ENOMEM, "adapter_save: cannot build adapter_config.json");
    st = wk_write_text_atomic(wk_path_join(path, sizeof path, dir, "adapter_config.json"), cfg, strlen(cfg));
    free(gen);
    return st;
}
