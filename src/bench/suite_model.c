/*
 * suite_model.c — whole-model figures on init-model presets (or a model directory):
 *   model_prefill/NAME/prompt_128   reset + a 128-token prompt; throughput tok/s
 *   model_decode/NAME/ctx_128       one token at a time after a 128-token prompt (the
 *                                   context grows to at most 256; the prompt is re-run,
 *                                   untimed, before each sample); throughput tok/s
 *   model_training/NAME/step_4x64   one LoRA training step (r8, alpha 16, all seven
 *                                   projections): forward + backward of 4 sequences of 64
 *                                   tokens, then AdamW; throughput tok/s
 * Presets are written once (bf16, seed 1) under $WICK_BENCH_CACHE, else
 * $TMPDIR/wick-bench-models, else /tmp/wick-bench-models, and reused.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

enum { PROMPT = 128, DECODE_WINDOW = 128, TRAIN_B = 4, TRAIN_T = 64 };

wick_status wk_bench_preset_dir(const char *preset, char *out, size_t cap) {
    const char *root = getenv("WICK_BENCH_CACHE");
    char base[512], cfg[1200], tmp[1100];
    if (root && *root) snprintf(base, sizeof base, "%s", root);
    else snprintf(base, sizeof base, "%s/wick-bench-models", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdir(base, 0755) != 0 && errno != EEXIST) return wk_err(WICK_EIO, "%s: %s", base, strerror(errno));
    snprintf(out, cap, "%s/%s-bf16", base, preset);
    if (wk_file_exists(wk_path_join(cfg, sizeof cfg, out, "model.safetensors"))) return WICK_OK;
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", out, (long)getpid());
    wk_log(WICK_LOG_INFO, "bench: writing preset %s to %s", preset, out);
    wick_status st = wick_init_model(NULL, preset, NULL, WICK_DT_BF16, 1, tmp);
    if (st != WICK_OK) return wk_err_prefix(st, "bench: preset '%s'", preset);
    if (rename(tmp, out) != 0 && !wk_file_exists(cfg)) /* a concurrent run may have won the rename */
        return wk_err(WICK_EIO, "%s: cannot rename to %s: %s", tmp, out, strerror(errno));
    return WICK_OK;
}

typedef struct {
    wick_model *m;
    wick_session *s;
    int32_t ids[PROMPT];
    int32_t next;
    int vocab;
} model_state;

static void it_prefill(void *p) {
    model_state *st = p;
    wick_session_reset(st->s);
    wick_session_eval(st->s, st->ids, PROMPT, NULL, 0);
}

static void prep_decode(void *p) {
    model_state *st = p;
    wick_session_reset(st->s);
    wick_session_eval(st->s, st->ids, PROMPT, NULL, 0);
}

static void it_decode(void *p) {
    model_state *st = p;
    if (wick_session_pos(st->s) >= PROMPT + DECODE_WINDOW) prep_decode(st); /* only when a caller overruns */
    wick_session_eval(st->s, &st->next, 1, NULL, 0);
    st->next = (st->next * 31 + 7) % st->vocab;
}

typedef struct {
    wick_trainer *t;
    int32_t ids[TRAIN_B * TRAIN_T];
    int lens[TRAIN_B];
} train_state;

static void it_train_step(void *p) {
    train_state *st = p;
    double loss = 0;
    int64_t n = 0;
    if (wick_trainer_accumulate(st->t, st->ids, st->ids, st->lens, TRAIN_B, &loss, &n) == WICK_OK)
        wick_trainer_step(st->t, n, NULL, NULL);
}

/* model_training/NAME/step_4x64 on an already loaded model. */
static wick_status training_case(wk_bench *b, const char *name, wick_model *m, int vocab) {
    train_state st = {0};
    wick_adapter *a = NULL;
    wick_lora_config cfg = wick_lora_config_default();
    wick_train_opts to = wick_train_opts_default();
    to.lr = 1e-5f;
    wick_status rc = wick_adapter_new(m, &cfg, 1, &a);
    if (rc == WICK_OK) rc = wick_trainer_new(m, a, &to, &st.t);
    for (int i = 0; i < TRAIN_B * TRAIN_T; i++) st.ids[i] = (int32_t)((i * 7919u + 13) % (unsigned)vocab);
    for (int i = 0; i < TRAIN_B; i++) st.lens[i] = TRAIN_T;
    wk_bench_case c = {.name = name, .work = TRAIN_B * TRAIN_T, .unit = "tok/s"};
    if (rc == WICK_OK) rc = wk_bench_measure(b, &c, it_train_step, &st);
    wick_trainer_free(st.t);
    wick_adapter_free(a);
    return rc;
}

static wick_status model_cases(wk_bench *b, const char *label, const char *dir) {
    char pre[1200], dec[1200], trn[1200];
    snprintf(pre, sizeof pre, "model_prefill/%s/prompt_%d", label, PROMPT);
    snprintf(dec, sizeof dec, "model_decode/%s/ctx_%d", label, PROMPT);
    snprintf(trn, sizeof trn, "model_training/%s/step_%dx%d", label, TRAIN_B, TRAIN_T);
    int want_pre = wk_bench_selected(b, pre), want_dec = wk_bench_selected(b, dec);
    int want_trn = wk_bench_selected(b, trn);
    if (!want_pre && !want_dec && !want_trn) return WICK_OK;
    model_state st = {0};
    wick_status rc = wk_bench_model_load(b, dir, &st.m);
    wick_model_info info;
    wick_session_opts so = {.max_seq = PROMPT + DECODE_WINDOW + 1};
    if (rc == WICK_OK) rc = wick_model_get_info(st.m, &info);
    if (rc == WICK_OK) rc = wick_session_new(st.m, &so, &st.s);
    if (rc == WICK_OK) {
        st.vocab = info.vocab_size;
        for (int i = 0; i < PROMPT; i++) st.ids[i] = (int32_t)((i * 7919u + 13) % (unsigned)info.vocab_size);
        st.next = 1;
        wk_bench_case cp = {.name = pre, .work = PROMPT, .unit = "tok/s"};
        wk_bench_case cd = {.name = dec, .work = 1, .unit = "tok/s", .before_sample = prep_decode,
                            .max_iters = DECODE_WINDOW};
        if (want_pre) rc = wk_bench_measure(b, &cp, it_prefill, &st);
        if (rc == WICK_OK && want_dec) rc = wk_bench_measure(b, &cd, it_decode, &st);
        if (rc == WICK_OK && want_trn) rc = training_case(b, trn, st.m, info.vocab_size);
    }
    wick_session_free(st.s);
    wick_model_free(st.m);
    return rc;
}

int wk_bench_model_labels(wk_bench *b, char labels[][128], int max) {
    const wick_bench_opts *o = wk_bench_opts(b);
    if (o->model && *o->model) {
        const char *slash = strrchr(o->model, '/');
        snprintf(labels[0], 128, "%s", slash && slash[1] ? slash + 1 : o->model);
        return 1;
    }
    char list[512], *save = NULL;
    int n = 0;
    snprintf(list, sizeof list, "%s", o->presets && *o->presets ? o->presets : o->quick ? "tiny" : "qwen2.5-0.5b");
    for (char *p = strtok_r(list, ",", &save); p && n < max; p = strtok_r(NULL, ",", &save))
        snprintf(labels[n++], 128, "%s", p);
    return n;
}

wick_status wk_bench_model_dir(wk_bench *b, const char *label, char *dir, size_t cap) {
    const wick_bench_opts *o = wk_bench_opts(b);
    if (o->model && *o->model) {
        snprintf(dir, cap, "%s", o->model);
        return WICK_OK;
    }
    return wk_bench_preset_dir(label, dir, cap);
}

wick_status wk_bench_model_load(wk_bench *b, const char *dir, wick_model **out) {
    wick_model_opts mo = wick_model_opts_default();
    mo.device = wk_bench_opts(b)->device; /* model-level groups run on the device asked for */
    wick_status rc = wick_model_load(dir, &mo, out);
    return rc == WICK_OK ? rc : wk_err_prefix(rc, "%s", dir);
}

wick_status wk_bench_model(wk_bench *b) {
    char labels[8][128], dir[1024];
    int n = wk_bench_model_labels(b, labels, 8);
    wick_status rc = WICK_OK;
    for (int i = 0; i < n && rc == WICK_OK; i++) {
        char pre[1200], dec[1200], trn[1200];
        snprintf(pre, sizeof pre, "model_prefill/%s/prompt_%d", labels[i], PROMPT);
        snprintf(dec, sizeof dec, "model_decode/%s/ctx_%d", labels[i], PROMPT);
        snprintf(trn, sizeof trn, "model_training/%s/step_%dx%d", labels[i], TRAIN_B, TRAIN_T);
        int any = wk_bench_selected(b, pre) | wk_bench_selected(b, dec) | wk_bench_selected(b, trn);
        if (!any) continue; /* lists names, writes nothing */
        rc = wk_bench_model_dir(b, labels[i], dir, sizeof dir);
        if (rc == WICK_OK) rc = model_cases(b, labels[i], dir);
    }
    return rc;
}
