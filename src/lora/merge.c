/*
 * merge.c — merging an adapter into the base weights, in memory and on disk.
 * In memory (wick_adapter_merge): each adapted weight is replaced by a writable
 * f32 copy holding W + s·B·A (sgemm); the original wk_mat (mmap'd or owned by the
 * model) is kept, so unmerge restores it exactly. On disk (wick_merge_export):
 * every tensor of the base checkpoint is streamed to a new checkpoint in its own
 * dtype, adapted weights computed a block of rows at a time (never the whole
 * model in memory), sharded above a size limit, with the config and tokenizer
 * files copied.
 */
#include "io/safetensors.h"
#include "lora/adapter.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* W[out,in] += s · B[out,r] · A[r,in] */
static void add_delta(float *W, const wk_slot *sl, float s) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, sl->out, sl->in, sl->lp.r, s, sl->lp.B, sl->lp.r, sl->lp.A,
                sl->in, 1.f, W, sl->in);
}

static void restore(wick_model *m, wick_adapter *a) {
    for (int i = 0; i < a->n_layers * WK_P_COUNT; i++) {
        if (!a->merged_buf[i]) continue;
        m->layers[i / WK_P_COUNT].p[i % WK_P_COUNT] = a->merged_orig[i];
        wk_free(a->merged_buf[i]);
        a->merged_buf[i] = NULL;
    }
    a->merged_into = NULL;
}

wick_status wick_adapter_merge(wick_model *m, wick_adapter *a, float scale) {
    if (!m || !a) return wk_err(WICK_EINVAL, "adapter_merge: no model or adapter");
    if (a->m != m) return wk_err(WICK_EINVAL, "adapter_merge: adapter '%s' was not loaded for this model", a->name);
    if (a->merged_into) return wk_err(WICK_ESTATE, "adapter_merge: adapter '%s' is already merged", a->name);
    if (m->be->device_memory) return wk_merge_device(m, a, scale);
    size_t n = (size_t)a->n_layers * WK_P_COUNT;
    if (!a->merged_orig) a->merged_orig = wk_calloc(sizeof(wk_mat) * n, "merge state");
    if (!a->merged_buf) a->merged_buf = wk_calloc(sizeof(float *) * n, "merge state");
    if (!a->merged_orig || !a->merged_buf) return WICK_ENOMEM;
    a->merged_into = m;
    for (size_t i = 0; i < n; i++) {
        const wk_slot *sl = &a->slots[i];
        if (!sl->lp.A) continue;
        wk_mat *W = &m->layers[i / WK_P_COUNT].p[i % WK_P_COUNT];
        if (W->qtype || (W->dt != WICK_DT_F32 && W->dt != WICK_DT_BF16 && W->dt != WICK_DT_F16)) {
            restore(m, a);
            return wk_err(WICK_EUNSUPPORTED, "adapter_merge: layer %zu %s has quantized weights", i / WK_P_COUNT,
                          wk_proj_names[i % WK_P_COUNT]);
        }
        float *buf = wk_malloc(sizeof(float) * (size_t)W->rows * W->cols, "merged weight");
        if (!buf) {
            restore(m, a);
            return WICK_ENOMEM;
        }
        wk_to_f32(buf, W->w, W->dt, (size_t)W->rows * W->cols);
        add_delta(buf, sl, scale * sl->lp.scale);
        a->merged_orig[i] = *W;
        a->merged_buf[i] = buf;
        *W = (wk_mat){.w = buf, .dt = WICK_DT_F32, .rows = W->rows, .cols = W->cols};
    }
    return WICK_OK;
}

wick_status wick_adapter_unmerge(wick_model *m, wick_adapter *a) {
    if (!m || !a) return wk_err(WICK_EINVAL, "adapter_unmerge: no model or adapter");
    if (a->merged_into != m) return wk_err(WICK_ESTATE, "adapter_unmerge: adapter '%s' is not merged into this model", a->name);
    if (m->be->device_memory) return wk_unmerge_device(m, a);
    for (int i = 0; i < a->n_layers * WK_P_COUNT; i++)
        if (a->merged_buf[i] && m->layers[i / WK_P_COUNT].p[i % WK_P_COUNT].w != a->merged_buf[i])
            return wk_err(WICK_ESTATE, "adapter_unmerge: another adapter was merged over '%s' later; unmerge it first", a->name);
    restore(m, a);
    return WICK_OK;
}

/* ---- export */
typedef struct {
    const wick_tensor_view *v; /* the base tensor (in the model's files) */
    const wk_slot *sl;         /* the adapter pair merged into it, or NULL */
    int shard;
} exp_tensor;

typedef struct {
    exp_tensor *t;   /* this shard's tensors */
    float s;         /* scale multiplier */
    float *tmp;      /* delta rows */
    size_t tmp_cap;
} exp_ctx;

/* Elements [off, off+n) of W + s·B·A in W's dtype, rows computed by one sgemm. */
static wick_status fill_merged(exp_ctx *c, const exp_tensor *e, uint8_t *buf, size_t off, size_t n) {
    const wk_slot *sl = e->sl;
    size_t in = (size_t)sl->in, r0 = off / in, r1 = (off + n - 1) / in + 1;
    if ((r1 - r0) * in > c->tmp_cap) {
        wk_free(c->tmp);
        c->tmp_cap = (r1 - r0) * in;
        if (!(c->tmp = wk_malloc(sizeof(float) * c->tmp_cap, "merge rows"))) return c->tmp_cap = 0, WICK_ENOMEM;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), sl->in, sl->lp.r, c->s * sl->lp.scale,
                sl->lp.B + r0 * (size_t)sl->lp.r, sl->lp.r, sl->lp.A, sl->in, 0.f, c->tmp, sl->in);
    const float *d = c->tmp - r0 * in;
    const void *src = e->v->data;
    wick_dtype dt = e->v->dtype;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t k = off; k < off + n; k++) {
        if (dt == WICK_DT_F32) ((float *)buf)[k - off] = ((const float *)src)[k] + d[k];
        else if (dt == WICK_DT_BF16)
            ((uint16_t *)buf)[k - off] = wk_f32_to_bf16(wk_bf16_to_f32(((const uint16_t *)src)[k]) + d[k]);
        else ((uint16_t *)buf)[k - off] = wk_f32_to_f16(wk_f16_to_f32(((const uint16_t *)src)[k]) + d[k]);
    }
    return WICK_OK;
}

static wick_status fill_tensor(void *user, int i, void *buf, size_t off, size_t n) {
    exp_ctx *c = user;
    const exp_tensor *e = &c->t[i];
    if (e->sl) return fill_merged(c, e, buf, off, n);
    size_t es = wick_dtype_size(e->v->dtype);
    memcpy(buf, (const uint8_t *)e->v->data + off * es, n * es);
    return WICK_OK;
}

/* The adapter pair merged into tensor name ("model.layers.L.<parent>.<proj>.weight"), or NULL. */
static const wk_slot *slot_for(const wick_adapter *a, const char *name) {
    int l;
    if (!a || sscanf(name, "model.layers.%d.", &l) != 1 || l < 0 || l >= a->n_layers) return NULL;
    for (int p = 0; p < WK_P_COUNT; p++) {
        char want[160];
        wk_module_name(want, sizeof want, l, p);
        size_t wl = strlen(want);
        if (!strncmp(name, want, wl) && !strcmp(name + wl, ".weight")) {
            const wk_slot *s = wk_adapter_slot(a, l, p);
            return s->lp.A ? s : NULL;
        }
    }
    return NULL;
}

static void shard_name(char *buf, size_t cap, int i, int n) {
    if (n == 1) snprintf(buf, cap, "model.safetensors");
    else snprintf(buf, cap, "model-%05d-of-%05d.safetensors", i + 1, n);
}

static wick_status write_index(const char *out_dir, const exp_tensor *t, int n, int n_shards, int64_t total) {
    json_t *map = json_object();
    char nm[64], path[4096];
    for (int i = 0; i < n; i++) {
        shard_name(nm, sizeof nm, t[i].shard, n_shards);
        json_object_set_new(map, t[i].v->name, json_string(nm));
    }
    json_t *root = json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)total, "weight_map", map);
    char *s = root ? json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    if (!s) return wk_err(WICK_ENOMEM, "merge: cannot build the shard index");
    wick_status st = wk_write_text_atomic(wk_path_join(path, sizeof path, out_dir, "model.safetensors.index.json"), s, strlen(s));
    free(s);
    return st;
}

static wick_status copy_side_files(const char *src_dir, const char *out_dir) {
    static const char *const files[] = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model",
                                        "added_tokens.json", "chat_template.jinja", "chat_template.json"};
    for (size_t i = 0; i < WK_ARRAY_LEN(files); i++) {
        char sp[4096], dp[4096], *text;
        size_t len;
        if (!wk_file_exists(wk_path_join(sp, sizeof sp, src_dir, files[i]))) continue;
        wick_status st = wk_read_file(sp, &text, &len);
        if (!st) st = wk_write_text_atomic(wk_path_join(dp, sizeof dp, out_dir, files[i]), text, len);
        wk_free(text);
        if (st) return st;
    }
    return WICK_OK;
}

/* Lists every tensor of the model's files and assigns shards; returns the count. */
static wick_status plan_export(const wick_model *m, const wick_adapter *a, int64_t max_bytes, exp_tensor **out, int *n,
                               int *n_shards, int64_t *total) {
    int cap = 0;
    for (int f = 0; f < m->n_files; f++) cap += wick_st_count(m->files[f]);
    exp_tensor *t = wk_calloc(sizeof *t * (size_t)(cap ? cap : 1), "merge plan");
    if (!t) return WICK_ENOMEM;
    int k = 0, shard = 0, pairs = 0;
    int64_t cur = 0;
    *total = 0;
    for (int f = 0; f < m->n_files; f++)
        for (int i = 0; i < wick_st_count(m->files[f]); i++, k++) {
            wick_tensor_view tmp;
            wick_st_get(m->files[f], i, &tmp);
            t[k].v = wk_st_lookup(m->files[f], tmp.name);
            t[k].sl = slot_for(a, tmp.name);
            pairs += t[k].sl != NULL;
            int64_t b = wk_numel(t[k].v) * (int64_t)wick_dtype_size(t[k].v->dtype);
            if (cur > 0 && cur + b > max_bytes) shard++, cur = 0;
            cur += b;
            *total += b;
            t[k].shard = shard;
        }
    int want = 0;
    for (int i = 0; a && i < a->n_layers * WK_P_COUNT; i++) want += a->slots[i].lp.A != NULL;
    if (pairs != want) {
        wk_free(t);
        return wk_err(WICK_EFORMAT, "merge: %d of the adapter's %d weights were found in %s", pairs, want, m->dir);
    }
    *out = t;
    *n = k;
    *n_shards = shard + 1;
    return WICK_OK;
}

static wick_status write_shards(exp_tensor *t, int n, int n_shards, float s, const char *out_dir) {
    wick_status st = WICK_OK;
    exp_ctx c = {.s = s};
    for (int sh = 0, i0 = 0; sh < n_shards && !st; sh++) {
        int i1 = i0;
        while (i1 < n && t[i1].shard == sh) i1++;
        wick_tensor_view *v = wk_malloc(sizeof *v * (size_t)(i1 - i0 ? i1 - i0 : 1), "shard list");
        if (!v) return WICK_ENOMEM;
        for (int i = i0; i < i1; i++) v[i - i0] = *t[i].v;
        char nm[64], path[4096];
        shard_name(nm, sizeof nm, sh, n_shards);
        c.t = t + i0;
        st = wk_st_write_stream(wk_path_join(path, sizeof path, out_dir, nm), v, i1 - i0, "{\"format\":\"pt\"}", fill_tensor, &c);
        wk_free(v);
        i0 = i1;
    }
    wk_free(c.tmp);
    return st;
}

static int same_dir(const char *a, const char *b) {
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb);
}

wick_status wick_merge_export(const wick_model *m, const wick_adapter *a, const wick_merge_opts *o, const char *out_dir) {
    wick_merge_opts opt = o ? *o : (wick_merge_opts){.scale = 1};
    int64_t max_bytes = opt.max_shard_bytes > 0 ? opt.max_shard_bytes : (int64_t)2 << 30;
    if (!m || !out_dir) return wk_err(WICK_EINVAL, "merge: no model or output directory");
    if (a && a->m != m) return wk_err(WICK_EINVAL, "merge: adapter '%s' was not loaded for this model", a->name);
    if (a && a->merged_into) return wk_err(WICK_ESTATE, "merge: adapter '%s' is merged in memory; unmerge it first", a->name);
    if (m->n_files == 0) return wk_err(WICK_EUNSUPPORTED, "merge: the model was not loaded from safetensors");
    wick_status st = wk_make_dirs(out_dir);
    if (st) return st;
    if (same_dir(out_dir, m->dir)) return wk_err(WICK_EINVAL, "merge: --out %s is the model's own directory", out_dir);
    exp_tensor *t = NULL;
    int n = 0, n_shards = 0;
    int64_t total = 0;
    if ((st = plan_export(m, a, max_bytes, &t, &n, &n_shards, &total))) return st;
    st = write_shards(t, n, n_shards, opt.scale, out_dir);
    char stale[4096];
    if (!st && n_shards > 1) st = write_index(out_dir, t, n, n_shards, total);
    if (!st) unlink(wk_path_join(stale, sizeof stale, out_dir, n_shards > 1 ? "model.safetensors" : "model.safetensors.index.json"));
    if (!st) st = copy_side_files(m->dir, out_dir);
    wk_free(t);
    return st;
}
