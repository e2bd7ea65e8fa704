/*
 * suite_adapters.c — benchmark groups adapter_loading and adapter_switching on the
 * run's models (init-model presets or --model DIR), with LoRA adapters on all seven
 * projections of every layer (alpha = 2r, random A and B), written to a temporary
 * directory in PEFT format first:
 *   adapter_loading/MODEL/rank_R        wick_adapter_load + free, R in 4..64; metric = bytes held
 *   adapter_switching/MODEL/switch      wick_session_set_adapter between two adapters
 *   adapter_switching/MODEL/switch_registry   acquire by name from a registry, select, release
 *   adapter_switching/MODEL/switch_then_decode  select the other adapter, then decode one token
 */
#define _GNU_SOURCE
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const int k_ranks[] = {4, 8, 16, 32, 64};

typedef struct {
    wick_model *m;
    const char *dir;
} load_state;

static void it_load(void *p) {
    load_state *s = p;
    wick_adapter *a = NULL;
    if (wick_adapter_load(s->m, s->dir, &a) == WICK_OK) wick_adapter_free(a);
}

static void remove_adapter_dir(const char *dir) {
    char f[1200];
    unlink(wk_path_join(f, sizeof f, dir, "adapter_config.json"));
    unlink(wk_path_join(f, sizeof f, dir, "adapter_model.safetensors"));
    rmdir(dir);
}

/* Creates an adapter of rank r over m, saves it under tmp/rank_R, returns it in *out (and its dir). */
static wick_status make_adapter(wick_model *m, int r, const char *tmp, char *dir, size_t cap, wick_adapter **out) {
    wick_lora_config cfg = wick_lora_config_default();
    cfg.r = r;
    cfg.alpha = 2.0f * (float)r;
    cfg.init = WICK_LORA_INIT_RANDOM;
    snprintf(dir, cap, "%s/rank_%d", tmp, r);
    wick_status rc = wick_adapter_new(m, &cfg, (uint64_t)r, out);
    if (rc == WICK_OK) rc = wick_adapter_save(*out, dir);
    return rc;
}

static wick_status loading_cases(wk_bench *b, const char *label, wick_model *m, const char *tmp) {
    wick_status rc = WICK_OK;
    char name[1200], dir[1200];
    for (size_t i = 0; i < WK_ARRAY_LEN(k_ranks) && rc == WICK_OK; i++) {
        snprintf(name, sizeof name, "adapter_loading/%s/rank_%d", label, k_ranks[i]);
        if (!wk_bench_selected(b, name)) continue;
        wick_adapter *a = NULL;
        wick_adapter_info info = {0};
        rc = make_adapter(m, k_ranks[i], tmp, dir, sizeof dir, &a);
        if (rc == WICK_OK) rc = wick_adapter_get_info(a, &info);
        wick_adapter_free(a);
        load_state s = {m, dir};
        wk_bench_case c = {.name = name, .metric = (double)info.bytes, .metric_name = "bytes"};
        if (rc == WICK_OK) rc = wk_bench_measure(b, &c, it_load, &s);
        remove_adapter_dir(dir);
    }
    return rc;
}

typedef struct {
    wick_session *s;
    wick_registry *reg;
    wick_adapter *a[2];
    int which;
    int32_t next;
    int vocab;
} switch_state;

static void it_switch(void *p) {
    switch_state *s = p;
    s->which ^= 1;
    wick_session_set_adapter(s->s, s->a[s->which], 1.0f);
}

static void it_switch_registry(void *p) {
    static const char *const names[2] = {"a", "b"};
    switch_state *s = p;
    s->which ^= 1;
    wick_adapter *a = wick_registry_acquire(s->reg, names[s->which]);
    wick_session_set_adapter(s->s, a, 1.0f);
    wick_session_set_adapter(s->s, NULL, 1.0f);
    wick_registry_release(s->reg, a);
}

static void prep_decode(void *p) {
    switch_state *s = p;
    int32_t prompt[16];
    for (int i = 0; i < 16; i++) prompt[i] = (int32_t)((i * 7919u + 13) % (unsigned)s->vocab);
    wick_session_reset(s->s);
    wick_session_eval(s->s, prompt, 16, NULL, 0);
}

static void it_switch_decode(void *p) {
    switch_state *s = p;
    it_switch(s);
    wick_session_eval(s->s, &s->next, 1, NULL, 0);
    s->next = (s->next * 31 + 7) % s->vocab;
}

static wick_status switching_cases(wk_bench *b, const char *label, wick_model *m, const char *tmp) {
    char n_sw[1200], n_reg[1200], n_dec[1200], d0[1200], d1[1200];
    snprintf(n_sw, sizeof n_sw, "adapter_switching/%s/switch", label);
    snprintf(n_reg, sizeof n_reg, "adapter_switching/%s/switch_registry", label);
    snprintf(n_dec, sizeof n_dec, "adapter_switching/%s/switch_then_decode", label);
    int w_sw = wk_bench_selected(b, n_sw), w_reg = wk_bench_selected(b, n_reg), w_dec = wk_bench_selected(b, n_dec);
    if (!w_sw && !w_reg && !w_dec) return WICK_OK;
    switch_state s = {.next = 1};
    wick_model_info info;
    wick_session_opts so = {.max_seq = 16 + 64 + 1};
    wick_status rc = wick_model_get_info(m, &info);
    s.vocab = info.vocab_size;
    if (rc == WICK_OK) rc = make_adapter(m, 8, tmp, d0, sizeof d0, &s.a[0]);
    if (rc == WICK_OK) rc = make_adapter(m, 16, tmp, d1, sizeof d1, &s.a[1]);
    if (rc == WICK_OK) rc = wick_session_new(m, &so, &s.s);
    if (rc == WICK_OK) rc = wick_registry_new(m, &s.reg);
    if (rc == WICK_OK) rc = wick_registry_load(s.reg, "a", d0);
    if (rc == WICK_OK) rc = wick_registry_load(s.reg, "b", d1);
    wk_bench_case c_sw = {.name = n_sw}, c_reg = {.name = n_reg};
    wk_bench_case c_dec = {.name = n_dec, .work = 1, .unit = "tok/s", .before_sample = prep_decode, .max_iters = 64};
    if (rc == WICK_OK && w_sw) rc = wk_bench_measure(b, &c_sw, it_switch, &s);
    if (rc == WICK_OK && w_reg) rc = wk_bench_measure(b, &c_reg, it_switch_registry, &s);
    if (rc == WICK_OK && w_dec) rc = wk_bench_measure(b, &c_dec, it_switch_decode, &s);
    wick_session_free(s.s);
    wick_registry_free(s.reg);
    wick_adapter_free(s.a[0]);
    wick_adapter_free(s.a[1]);
    remove_adapter_dir(d0);
    remove_adapter_dir(d1);
    return rc;
}

/* Whether any benchmark of this model is selected (in listing mode: records the names). */
static int any_selected(wk_bench *b, const char *label) {
    char name[1200];
    int any = 0;
    for (size_t i = 0; i < WK_ARRAY_LEN(k_ranks); i++) {
        snprintf(name, sizeof name, "adapter_loading/%s/rank_%d", label, k_ranks[i]);
        any |= wk_bench_selected(b, name);
    }
    static const char *const sw[] = {"switch", "switch_registry", "switch_then_decode"};
    for (size_t i = 0; i < WK_ARRAY_LEN(sw); i++) {
        snprintf(name, sizeof name, "adapter_switching/%s/%s", label, sw[i]);
        any |= wk_bench_selected(b, name);
    }
    return any;
}

wick_status wk_bench_adapters(wk_bench *b) {
    char labels[8][128], dir[1024], tmp[256];
    int n = wk_bench_model_labels(b, labels, 8);
    wick_status rc = WICK_OK;
    for (int i = 0; i < n && rc == WICK_OK; i++) {
        if (!any_selected(b, labels[i])) continue;
        wick_model *m = NULL;
        snprintf(tmp, sizeof tmp, "%s/wick-bench-adapters-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        rc = wk_bench_model_dir(b, labels[i], dir, sizeof dir);
        if (rc == WICK_OK) rc = wk_bench_model_load(b, dir, &m);
        if (rc == WICK_OK && !mkdtemp(tmp)) rc = wk_err(WICK_EIO, "%s: cannot create a temporary directory", tmp);
        if (rc == WICK_OK) rc = loading_cases(b, labels[i], m, tmp);
        if (rc == WICK_OK) rc = switching_cases(b, labels[i], m, tmp);
        if (m) rmdir(tmp);
        wick_model_free(m);
    }
    return rc;
}
