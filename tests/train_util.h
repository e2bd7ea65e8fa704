/*
 * train_util.h — test-only helpers for the trainer tests: a minimal PEFT reader
 * that fills a wk_lora table (layer × projection) from adapter_model.safetensors
 * and adapter_config.json (r, lora_alpha, use_rslora), and golden tensor access.
 */
#ifndef WICK_TRAIN_UTIL_H
#define WICK_TRAIN_UTIL_H
#include "train/train.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    wk_lora *pairs;         /* (L*P) */
    const wk_lora **ptrs;   /* (L*P) NULL = not adapted */
    int L;
} tu_adapter;

static inline float *tu_copy_f32(wick_st *f, const char *name, size_t *n) {
    wick_tensor_view v;
    if (wick_st_find(f, name, &v) != WICK_OK || v.dtype != WICK_DT_F32) return NULL;
    size_t cnt = 1;
    for (int d = 0; d < v.ndim; d++) cnt *= (size_t)v.shape[d];
    float *p = malloc(sizeof(float) * cnt);
    memcpy(p, v.data, sizeof(float) * cnt);
    if (n) *n = cnt;
    return p;
}

static inline int tu_adapter_load(const wick_model *m, const char *dir, tu_adapter *a) {
    char path[1024];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    if (!cfg) return -1;
    int r = (int)json_integer_value(json_object_get(cfg, "r"));
    double alpha = json_number_value(json_object_get(cfg, "lora_alpha"));
    float scale = json_is_true(json_object_get(cfg, "use_rslora")) ? (float)(alpha / sqrt(r)) : (float)(alpha / r);
    json_decref(cfg);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    wick_st *f;
    if (wick_st_open(path, &f) != WICK_OK) return -1;
    a->L = m->c.n_layers;
    a->pairs = calloc((size_t)a->L * WK_P_COUNT, sizeof(wk_lora));
    a->ptrs = calloc((size_t)a->L * WK_P_COUNT, sizeof(wk_lora *));
    for (int l = 0; l < a->L; l++)
        for (int p = 0; p < WK_P_COUNT; p++) {
            char key[256];
            wk_lora *lp = &a->pairs[l * WK_P_COUNT + p];
            snprintf(key, sizeof key, "base_model.model.model.layers.%d.%s.%s.lora_A.weight", l, wk_proj_parent[p], wk_proj_names[p]);
            lp->A = tu_copy_f32(f, key, NULL);
            snprintf(key, sizeof key, "base_model.model.model.layers.%d.%s.%s.lora_B.weight", l, wk_proj_parent[p], wk_proj_names[p]);
            lp->B = tu_copy_f32(f, key, NULL);
            lp->r = r;
            lp->scale = scale;
            if (lp->A && lp->B) a->ptrs[l * WK_P_COUNT + p] = lp;
        }
    wick_st_close(f);
    return 0;
}

static inline void tu_adapter_free(tu_adapter *a) {
    for (int i = 0; i < a->L * WK_P_COUNT; i++) free(a->pairs[i].A), free(a->pairs[i].B);
    free(a->pairs);
    free(a->ptrs);
}

/* Golden I64 tensor as int32 (n elements). */
static inline int32_t *tu_i64(wick_st *g, const char *name, size_t *n) {
    wick_tensor_view v;
    if (wick_st_find(g, name, &v) != WICK_OK || v.dtype != WICK_DT_I64) return NULL;
    size_t cnt = 1;
    for (int d = 0; d < v.ndim; d++) cnt *= (size_t)v.shape[d];
    int32_t *p = malloc(sizeof(int32_t) * cnt);
    for (size_t i = 0; i < cnt; i++) p[i] = (int32_t)((const int64_t *)v.data)[i];
    if (n) *n = cnt;
    return p;
}
/* ‖x − y‖ / ‖y‖ over every f32 tensor of two safetensors files (matched by name); -1 when one is
 * unreadable or lacks a tensor. *identical: 1 when every element is equal bit for bit. */
static inline double tu_st_rel_diff(const char *p1, const char *p2, int *identical) {
    wick_st *f1, *f2;
    if (wick_st_open(p1, &f1)) return -1;
    if (wick_st_open(p2, &f2)) return wick_st_close(f1), -1;
    double num = 0, den = 0;
    int same = 1;
    for (int i = 0; i < wick_st_count(f1); i++) {
        wick_tensor_view a, b;
        wick_st_get(f1, i, &a);
        if (wick_st_find(f2, a.name, &b)) return wick_st_close(f1), wick_st_close(f2), -1;
        size_t cnt = 1;
        for (int d = 0; d < a.ndim; d++) cnt *= (size_t)a.shape[d];
        const float *x = a.data, *y = b.data;
        for (size_t j = 0; j < cnt; j++) {
            num += ((double)x[j] - y[j]) * ((double)x[j] - y[j]);
            den += (double)y[j] * y[j];
            same &= x[j] == y[j];
        }
    }
    wick_st_close(f1), wick_st_close(f2);
    *identical = same;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
/* After one AdamW step: each parameter par[i] within 1e-4 of the golden "after_step.<name>"
 * (2·lr where its gradient gc[i] was about 0, so Adam's first step is ±lr); frees gc. */
static inline void tu_check_after_step(wick_st *g, const wk_tparam *par, int np, float **gc, float lr, const char *name) {
    for (int i = 0; i < np; i++) {
        char key[300];
        size_t cnt = 0;
        snprintf(key, sizeof key, "after_step.%s", par[i].name);
        float *ga = tu_copy_f32(g, key, &cnt);
        if (!ga || !gc[i]) {
            free(ga), free(gc[i]);
            continue;
        }
        float worst = 0;
        for (size_t j = 0; j < cnt; j++) {
            float d = fabsf(par[i].w[j] - ga[j]), tol = fabsf(gc[i][j]) < 1e-7f ? 2 * lr : 1e-4f;
            if (d > tol || d != d) worst = d > worst ? d : worst + (d != d);
        }
        CHECK(worst == 0, "%s: %s after one AdamW step off by %g", name, key, worst);
        free(ga), free(gc[i]);
    }
    free(gc);
}

/* The loss over the golden batch after the step against "train_loss_after_step" (1e-5);
 * returns the mean loss. */
static inline double tu_check_loss_after(wick_trainer *t, wick_st *g, const int32_t *ids, const int32_t *lab,
                                         const int *lens, int B, const char *name) {
    double loss = 0;
    int64_t nt = 0;
    CHECK_OK(wick_trainer_eval(t, ids, lab, lens, B, &loss, &nt));
    float *gl = tu_copy_f32(g, "train_loss_after_step", NULL);
    double mean = nt ? loss / (double)nt : 0;
    CHECK(gl && fabs(mean - gl[0]) <= 1e-5, "%s: loss after step %.7f vs golden %.7f", name, mean, gl ? gl[0] : 0.f);
    free(gl);
    return mean;
}

/* Writes n sequences of pseudo-random ids (lengths 6..10, ids 3..202, from seed) as
 * {"input_ids": [...]} lines to path; 0, or -1 when the file cannot be written. */
static inline int tu_write_ids_jsonl(const char *path, int n, uint64_t seed) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    for (int i = 0; i < n; i++) {
        fprintf(f, "{\"input_ids\": [");
        for (int t = 0; t < 6 + i % 5; t++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            fprintf(f, "%s%d", t ? ", " : "", (int)(3 + (seed >> 33) % 200));
        }
        fprintf(f, "]}\n");
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* The qwen2_tiny bf16 checkpoint loaded twice (bf16 kept, and widened to f32), the qwen2_tiny
 * golden file and its adapter1 (on the bf16 model); 0, or -1 when any failed (checked). */
static inline int tu_bf16_pair(wick_model **mb, wick_model **mf, wick_st **g, tu_adapter *ad) {
    wick_model_opts o = wick_model_opts_default();
    o.keep_bf16 = 1;
    CHECK_OK(wick_model_load(T_PATH("golden/qwen2_tiny_bf16/model"), &o, mb));
    o.keep_bf16 = 0;
    CHECK_OK(wick_model_load(T_PATH("golden/qwen2_tiny_bf16/model"), &o, mf));
    CHECK_OK(wick_st_open(T_PATH("golden/qwen2_tiny/golden.safetensors"), g));
    if (!*mb || !*mf || !*g) return -1;
    int bad = tu_adapter_load(*mb, T_PATH("golden/qwen2_tiny/adapter1"), ad);
    CHECK(bad == 0, "adapter1 did not load");
    return bad ? -1 : 0;
}

/* golden/NAME: its model (on the CPU), golden file and adapter1; 0, or -1 when any failed (checked). */
static inline int tu_golden_case(const char *name, wick_model **m, wick_st **g, tu_adapter *ad) {
    char mdir[512], adir[512], gpath[512];
    snprintf(mdir, sizeof mdir, "%s/golden/%s/model", WICK_TEST_DIR, name);
    snprintf(adir, sizeof adir, "%s/golden/%s/adapter1", WICK_TEST_DIR, name);
    snprintf(gpath, sizeof gpath, "%s/golden/%s/golden.safetensors", WICK_TEST_DIR, name);
    CHECK_OK(wick_model_load(mdir, NULL, m));
    CHECK_OK(wick_st_open(gpath, g));
    if (!*m || !*g) return -1;
    int bad = tu_adapter_load(*m, adir, ad);
    CHECK(bad == 0, "%s: adapter1 did not load", name);
    return bad ? -1 : 0;
}

/* The accumulated gradients of par[0..np) over nt tokens against the golden "grad.<name>"
 * (rel L2 1e-4, every tensor present); returns their copies scaled by 1/nt as the step will
 * (for tu_check_after_step). expect: how many tensors must be checked. */
static inline float **tu_check_grads(wick_st *g, const wk_tparam *par, int np, int64_t nt, int expect, const char *name) {
    float **gc = calloc((size_t)np, sizeof(float *));
    int checked = 0;
    for (int i = 0; gc && i < np; i++) {
        char key[300];
        size_t cnt = 0;
        snprintf(key, sizeof key, "grad.%s", par[i].name);
        float *gg = tu_copy_f32(g, key, &cnt);
        CHECK(gg && cnt == par[i].n, "%s: golden %s missing or wrong size", name, key);
        if (!gg || cnt != par[i].n) {
            free(gg);
            continue;
        }
        gc[i] = malloc(sizeof(float) * cnt);
        for (size_t j = 0; j < cnt; j++) gc[i][j] = par[i].g[j] / (float)nt;
        double e = t_rel_l2(gc[i], gg, cnt);
        CHECK(e <= 1e-4, "%s: %s relative L2 error %g", name, key, e);
        checked++;
        free(gg);
    }
    CHECK(checked == expect, "%s: %d gradient tensors checked, want %d", name, checked, expect);
    return gc;
}

#endif
