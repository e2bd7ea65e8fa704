/*
 * profile.c — `wick bench profile`: runs a prompt and then decode steps of a model
 * on the profiling backend wrapper and reports, per phase, the time of each op
 * type per step, its share of the step and its calls per step; the time of a
 * phase not spent in any timed op is "untracked". The tool to explain a
 * regression such as a step that became 4x slower: which op grew.
 * The training step (LoRA r8 on all projections, 4 sequences of 64 tokens) runs on
 * the same backend wrapper plus a wrapper of the trainer's op table; the trainer's
 * LoRA matmuls are direct cblas calls and show as untracked. Forward and backward
 * are told apart when the trainer marks its phases (wk_prof_set_phase); its own
 * clocks (wk_trainer_times) are reported beside the table either way.
 */
#define _GNU_SOURCE
#include "bench.h"
#include "model/model.h"
#include "prof.h"
#include "prof_backend.h"
#include "train/train.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Snapshot of the profiling table as rows {phase, op, seconds_per_step, share, calls_per_step};
 * each phase's wall time comes from the phase clock, "(untracked)" is what no op accounts for. */
static json_t *section_json(const char *name, int steps) {
    json_t *rows = json_array();
    double wall[WK_PHASE_COUNT], total = 0;
    for (int p = 0; p < WK_PHASE_COUNT; p++) {
        double ops = 0;
        for (int o = 0; o < WK_PROF_COUNT; o++) ops += wk_prof_seconds((wk_prof_phase)p, (wk_prof_op)o, NULL);
        /* time outside any phase counts only through its ops */
        wall[p] = p == WK_PHASE_NONE ? ops : fmax(wk_prof_phase_seconds((wk_prof_phase)p), ops);
        total += wall[p];
    }
    for (int p = 0; p < WK_PHASE_COUNT; p++) {
        if (wall[p] <= 0) continue;
        double tracked = 0;
        for (int o = 0; o < WK_PROF_COUNT; o++) {
            int64_t calls;
            double sec = wk_prof_seconds((wk_prof_phase)p, (wk_prof_op)o, &calls);
            if (!calls) continue;
            tracked += sec;
            json_array_append_new(rows, json_pack("{s:s, s:s, s:f, s:f, s:f}", "phase", wk_prof_phase_name(p), "op",
                                                  wk_prof_op_name(o), "seconds_per_step", sec / steps, "share",
                                                  total > 0 ? sec / total : 0, "calls_per_step",
                                                  (double)calls / steps));
        }
        double rest = fmax(wall[p] - tracked, 0);
        if (p != WK_PHASE_NONE)
            json_array_append_new(rows, json_pack("{s:s, s:s, s:f, s:f, s:f}", "phase", wk_prof_phase_name(p), "op",
                                                  "(untracked)", "seconds_per_step", rest / steps, "share",
                                                  total > 0 ? rest / total : 0, "calls_per_step", 0.0));
    }
    return json_pack("{s:s, s:i, s:f, s:o}", "name", name, "steps", steps, "seconds_per_step", total / steps, "rows",
                     rows);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) best = x[i] > x[best] ? i : best;
    return best;
}

typedef struct {
    wick_model *m;
    wick_session *s;
    float *logits;
    int vocab, prompt, steps, training;
} prof_run;

/* Profiles the prompt (one forward of `prompt` tokens). */
static json_t *profile_prefill(prof_run *r, int32_t *ids) {
    wk_prof_enable(1);
    wk_prof_set_phase(WK_PHASE_FORWARD);
    wick_status st = wick_session_eval(r->s, ids, r->prompt, r->logits, 0);
    wk_prof_set_phase(WK_PHASE_NONE);
    json_t *j = st == WICK_OK ? section_json("prefill", 1) : NULL;
    wk_prof_enable(0);
    return j;
}

/* Profiles decode steps: forward of one token, then greedy sampling. */
static json_t *profile_decode(prof_run *r) {
    int32_t next = argmax(r->logits, r->vocab);
    wick_status st = WICK_OK;
    wk_prof_enable(1);
    for (int i = 0; i < r->steps && st == WICK_OK; i++) {
        wk_prof_set_phase(WK_PHASE_FORWARD);
        st = wick_session_eval(r->s, &next, 1, r->logits, 0);
        wk_prof_set_phase(WK_PHASE_SAMPLE);
        double t0 = wk_prof_begin();
        next = argmax(r->logits, r->vocab);
        wk_prof_end(WK_PROF_SAMPLE, t0);
    }
    wk_prof_set_phase(WK_PHASE_NONE);
    json_t *j = st == WICK_OK ? section_json("decode", r->steps) : NULL;
    wk_prof_enable(0);
    return j;
}

enum { TRAIN_B = 4, TRAIN_T = 64, TRAIN_STEPS = 2 };

/* Accumulate + step on the trainer; phases as the caller asks (the trainer may refine them). */
static wick_status train_step(wick_trainer *t, const int32_t *ids, const int *lens, int profiled) {
    double loss = 0;
    int64_t n = 0;
    if (profiled) wk_prof_set_phase(WK_PHASE_FORWARD);
    wick_status st = wick_trainer_accumulate(t, ids, ids, lens, TRAIN_B, &loss, &n);
    if (profiled) wk_prof_set_phase(WK_PHASE_OPTIMIZER);
    if (st == WICK_OK) st = wick_trainer_step(t, n, NULL, NULL);
    if (profiled) wk_prof_set_phase(WK_PHASE_NONE);
    return st;
}

/* Profiles TRAIN_STEPS training steps after one unprofiled warm-up step. */
static json_t *profile_training(prof_run *r, wk_prof_backend *pb) {
    wick_adapter *a = NULL;
    wick_trainer *t = NULL;
    wick_lora_config cfg = wick_lora_config_default();
    wick_train_opts to = wick_train_opts_default();
    int32_t ids[TRAIN_B * TRAIN_T];
    int lens[TRAIN_B];
    json_t *j = NULL;
    for (int i = 0; i < TRAIN_B * TRAIN_T; i++) ids[i] = (int32_t)((i * 7919u + 13) % (unsigned)r->vocab);
    for (int i = 0; i < TRAIN_B; i++) lens[i] = TRAIN_T;
    to.lr = 1e-5f;
    wk_backend *orig = r->m->be;
    r->m->be = &pb->base; /* the trainer reads the model's backend on every call */
    wick_status st = wick_adapter_new(r->m, &cfg, 1, &a);
    if (st == WICK_OK) st = wick_trainer_new(r->m, a, &to, &t);
    if (st == WICK_OK) wk_trainer_set_ops(t, wk_prof_train_ops(wk_train_ops_fast()));
    if (st == WICK_OK) wk_trainer_set_replicas(t, 1); /* the profile table is filled from one thread */
    if (st == WICK_OK) st = train_step(t, ids, lens, 0);
    double f0 = 0, b0 = 0, o0 = 0, f1, b1, o1;
    if (st == WICK_OK) wk_trainer_times(t, &f0, &b0, &o0);
    wk_prof_enable(1);
    for (int i = 0; i < TRAIN_STEPS && st == WICK_OK; i++) st = train_step(t, ids, lens, 1);
    if (st == WICK_OK) {
        wk_trainer_times(t, &f1, &b1, &o1);
        j = section_json("training", TRAIN_STEPS);
        json_object_set_new(j, "trainer_clocks", json_pack("{s:f, s:f, s:f}", "forward_s", (f1 - f0) / TRAIN_STEPS,
                                                           "backward_s", (b1 - b0) / TRAIN_STEPS, "optimizer_s",
                                                           (o1 - o0) / TRAIN_STEPS));
    }
    wk_prof_enable(0);
    r->m->be = orig;
    wick_trainer_free(t);
    wick_adapter_free(a);
    return j;
}

static void fmt_time(double s, char *buf, size_t cap) {
    if (s < 1e-3) snprintf(buf, cap, "%.1f us", s * 1e6);
    else if (s < 1) snprintf(buf, cap, "%.3f ms", s * 1e3);
    else snprintf(buf, cap, "%.3f s", s);
}

static int by_time_desc(const void *a, const void *b) {
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int px = strcmp(json_string_value(json_object_get(x, "phase")), json_string_value(json_object_get(y, "phase")));
    if (px) return px;
    double tx = json_number_value(json_object_get(x, "seconds_per_step"));
    double ty = json_number_value(json_object_get(y, "seconds_per_step"));
    return (tx < ty) - (tx > ty);
}

static void section_md(FILE *f, const json_t *sec, int prompt) {
    char t[32];
    const json_t *rows = json_object_get(sec, "rows");
    size_t n = json_array_size(rows);
    fmt_time(json_number_value(json_object_get(sec, "seconds_per_step")), t, sizeof t);
    const char *name = json_string_value(json_object_get(sec, "name"));
    if (!strcmp(name, "prefill"))
        fprintf(f, "\n## Prefill: one forward of %d tokens, %s\n\n", prompt, t);
    else if (!strcmp(name, "training"))
        fprintf(f, "\n## Training step: LoRA r8 on all projections, %d×%d tokens, mean of %lld steps, %s per step\n\n",
                TRAIN_B, TRAIN_T, (long long)json_integer_value(json_object_get(sec, "steps")), t);
    else
        fprintf(f, "\n## Decode step: one token, mean of %lld steps, %s per step\n\n",
                (long long)json_integer_value(json_object_get(sec, "steps")), t);
    fputs("| phase | op | time per step | share | calls per step |\n| --- | --- | --- | --- | --- |\n", f);
    json_t **v = malloc(sizeof *v * (n ? n : 1));
    for (size_t i = 0; i < n; i++) v[i] = json_array_get(rows, i);
    qsort(v, n, sizeof *v, by_time_desc);
    for (size_t i = 0; i < n; i++) {
        fmt_time(json_number_value(json_object_get(v[i], "seconds_per_step")), t, sizeof t);
        fprintf(f, "| %s | %s | %s | %.1f%% | %.0f |\n", json_string_value(json_object_get(v[i], "phase")),
                json_string_value(json_object_get(v[i], "op")), t,
                100 * json_number_value(json_object_get(v[i], "share")),
                json_number_value(json_object_get(v[i], "calls_per_step")));
    }
    free(v);
    const json_t *clk = json_object_get(sec, "trainer_clocks");
    if (clk) {
        char a[32], b[32], c[32];
        fmt_time(json_number_value(json_object_get(clk, "forward_s")), a, sizeof a);
        fmt_time(json_number_value(json_object_get(clk, "backward_s")), b, sizeof b);
        fmt_time(json_number_value(json_object_get(clk, "optimizer_s")), c, sizeof c);
        fprintf(f, "\nThe trainer's own clocks per step: forward %s, backward %s, optimizer %s. Unless the trainer "
                   "marks its phases, \"forward\" above holds forward and backward; its LoRA matmuls are direct "
                   "cblas calls (untracked).\n", a, b, c);
    }
}

static char *report_md(const json_t *rep) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    fprintf(f, "# Profile: %s\n\n`%s`: %s, %lld parameters, %s weights; backend %s, %lld threads.\n",
            json_string_value(json_object_get(rep, "label")), json_string_value(json_object_get(rep, "model")),
            json_string_value(json_object_get(rep, "arch")), (long long)json_integer_value(json_object_get(rep, "params")),
            json_string_value(json_object_get(rep, "weight_dtype")), json_string_value(json_object_get(rep, "backend")),
            (long long)json_integer_value(json_object_get(rep, "threads")));
    fputs("Each op is synced before its time is taken; \"(untracked)\" is the rest of its phase.\n", f);
    size_t i;
    json_t *sec;
    int prompt = (int)json_integer_value(json_object_get(rep, "prompt"));
    json_array_foreach(json_object_get(rep, "sections"), i, sec) section_md(f, sec, prompt);
    fclose(f);
    return buf;
}

static wick_status run_profile(prof_run *r, const char *dir, const char *label, json_t **out) {
    wick_model_info info;
    wick_session_opts so = {.max_seq = r->prompt + r->steps + 1};
    wick_status st = wick_model_get_info(r->m, &info);
    if (st != WICK_OK) return st;
    r->vocab = info.vocab_size;
    r->logits = wk_malloc(sizeof(float) * (size_t)r->vocab, "profile logits");
    int32_t *ids = wk_malloc(sizeof(int32_t) * (size_t)r->prompt, "profile prompt");
    wk_prof_backend pb;
    wk_backend *orig = r->m->be;
    wk_prof_backend_init(&pb, orig, r->m->lm_head.w);
    r->m->be = &pb.base; /* the session takes the model's backend at creation */
    st = (r->logits && ids) ? wick_session_new(r->m, &so, &r->s) : WICK_ENOMEM;
    r->m->be = orig;
    json_t *secs = json_array(), *sec;
    for (int i = 0; st == WICK_OK && i < r->prompt; i++) ids[i] = (int32_t)((i * 7919u + 13) % (unsigned)r->vocab);
    if (st == WICK_OK) st = (sec = profile_prefill(r, ids)) ? json_array_append_new(secs, sec), WICK_OK : WICK_EINVAL;
    if (st == WICK_OK) st = (sec = profile_decode(r)) ? json_array_append_new(secs, sec), WICK_OK : WICK_EINVAL;
    wick_session_free(r->s);
    r->s = NULL;
    if (st == WICK_OK && r->training)
        st = (sec = profile_training(r, &pb)) ? json_array_append_new(secs, sec), WICK_OK : wk_err_prefix(WICK_EINVAL, "training step");
    wk_free(ids);
    if (st == WICK_OK)
        *out = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:i, s:i, s:i, s:o}", "label", label, "model", dir, "arch",
                         info.arch, "params", (json_int_t)info.n_params, "weight_dtype",
                         wick_dtype_name(info.weight_dtype), "backend", orig->name, "threads", wick_get_threads(),
                         "prompt", r->prompt, "steps", r->steps, "sections", secs);
    else json_decref(secs);
    return st;
}

wick_status wick_bench_profile(const wick_bench_profile_opts *o, char **report_out) {
    if (!report_out) return wk_err(WICK_EINVAL, "wick_bench_profile: report_out is NULL");
    *report_out = NULL;
    wick_bench_profile_opts d = {0};
    if (!o) o = &d;
    prof_run r = {.prompt = o->prompt > 0 ? o->prompt : 128, .steps = o->steps > 0 ? o->steps : 16,
                  .training = !o->no_training};
    if (r.prompt > 100000 || r.steps > 100000)
        return wk_err(WICK_EINVAL, "profile: prompt %d / steps %d: at most 100000 each", r.prompt, r.steps);
    if (o->threads > 0) wick_set_threads(o->threads);
    char dir[1024];
    const char *label = o->model ? o->model : (o->preset ? o->preset : "qwen2.5-0.5b");
    wick_status st = o->model ? (snprintf(dir, sizeof dir, "%s", o->model), WICK_OK)
                              : wk_bench_preset_dir(label, dir, sizeof dir);
    if (st == WICK_OK) st = wick_model_load(dir, NULL, &r.m);
    json_t *rep = NULL;
    if (st == WICK_OK) st = run_profile(&r, dir, label, &rep);
    if (st == WICK_OK) {
        char *text = o->format_json ? json_dumps(rep, JSON_INDENT(1) | JSON_REAL_PRECISION(9)) : report_md(rep);
        *report_out = text ? wk_strdup(text) : NULL;
        free(text);
        if (!*report_out) st = wk_err(WICK_ENOMEM, "profile report: out of memory");
    }
    json_decref(rep);
    wk_free(r.logits);
    wick_model_free(r.m);
    return st;
}
