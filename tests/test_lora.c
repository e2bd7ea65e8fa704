/* test_lora.c — LoRA adapters against PEFT goldens: logits_adapter1 / logits_adapter2 (rsLoRA) of the
 * three tiny models within 1e-4; scale 0 = base exactly; save → load bit-identical; new adapters (PEFT
 * inits, seeded); rank/alpha patterns, regex targets, layers_to_transform; merge = unmerged logits and
 * unmerge restores the base exactly; exported checkpoints (sharded and not, library and `wick merge`)
 * give the adapter's logits; A→B→A swaps; a registry; two threads with different adapters at once. */
#include "t.h"
#include "lora/adapter.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[256];

typedef struct {
    wick_model *m;
    int32_t *ids;
    int B, T, V;
    float *base;  /* [B,T,V] base logits */
    wick_st *g;
} fixture;

static int open_fixture(const char *name, fixture *f) {
    char p[512];
    memset(f, 0, sizeof *f);
    snprintf(p, sizeof p, "%s/golden/%s/model", WICK_TEST_DIR, name);
    CHECK_OK(wick_model_load(p, NULL, &f->m));
    snprintf(p, sizeof p, "%s/golden/%s/golden.safetensors", WICK_TEST_DIR, name);
    CHECK_OK(wick_st_open(p, &f->g));
    if (!f->m || !f->g) return -1;
    wick_tensor_view v;
    CHECK_OK(wick_st_find(f->g, "input_ids", &v));
    f->B = (int)v.shape[0], f->T = (int)v.shape[1];
    f->ids = malloc(sizeof(int32_t) * (size_t)f->B * f->T);
    for (int i = 0; i < f->B * f->T; i++) f->ids[i] = (int32_t)((const int64_t *)v.data)[i];
    wick_model_info info;
    wick_model_get_info(f->m, &info);
    f->V = info.vocab_size;
    f->base = malloc(sizeof(float) * (size_t)f->B * f->T * f->V);
    CHECK_OK(wick_model_logits(f->m, NULL, 1.f, f->ids, f->B, f->T, f->base));
    return 0;
}

static void close_fixture(fixture *f) {
    free(f->ids), free(f->base);
    wick_st_close(f->g);
    wick_model_free(f->m);
}

static size_t nlog(const fixture *f) { return (size_t)f->B * f->T * f->V; }

static float *logits_with(fixture *f, const wick_model *m, const wick_adapter *a, float s) {
    float *out = malloc(sizeof(float) * nlog(f));
    CHECK_OK(wick_model_logits((wick_model *)m, a, s, f->ids, f->B, f->T, out));
    return out;
}

static void check_golden(fixture *f, const char *name, const char *which) {
    char dir[512], key[64];
    snprintf(dir, sizeof dir, "%s/golden/%s/%s", WICK_TEST_DIR, name, which);
    snprintf(key, sizeof key, "logits_%s", which);
    wick_adapter *a = NULL;
    CHECK_OK(wick_adapter_load(f->m, dir, &a));
    wick_tensor_view g;
    CHECK_OK(wick_st_find(f->g, key, &g));
    if (!a) return;
    float *out = logits_with(f, f->m, a, 1.f);
    float d = t_max_abs_diff(out, g.data, nlog(f));
    CHECK(d <= 1e-4f, "%s %s: max |logits - PEFT| = %g", name, which, d);
    /* decoding one id at a time through the KV cache (the few-row LoRA kernels) = the full sequence */
    wick_session *s = NULL;
    CHECK_OK(wick_session_new(f->m, NULL, &s));
    float *row = malloc(sizeof(float) * f->V), worst = 0;
    CHECK_OK(wick_session_set_adapter(s, a, 1.f));
    for (int t = 0; s && t < f->T; t++) {
        CHECK_OK(wick_session_eval(s, f->ids + t, 1, row, 0));
        worst = fmaxf(worst, t_max_abs_diff(row, out + (size_t)t * f->V, f->V));
    }
    CHECK(worst <= 1e-5f, "%s %s: KV-cache decode vs full sequence differs by %g", name, which, worst);
    free(row);
    wick_session_free(s);
    float *zero = logits_with(f, f->m, a, 0.f);
    CHECK(!memcmp(zero, f->base, sizeof(float) * nlog(f)), "%s %s: scale 0 is not exactly the base", name, which);
    free(out), free(zero);
    wick_adapter_free(a);
}

/* Save → load gives the same bits; saving again gives the same file. */
static void check_round_trip(fixture *f, const char *name) {
    char dir[512], d1[512], d2[512];
    snprintf(dir, sizeof dir, "%s/golden/%s/adapter2", WICK_TEST_DIR, name);
    snprintf(d1, sizeof d1, "%s/%s_rt1", tmpdir, name);
    snprintf(d2, sizeof d2, "%s/%s_rt2", tmpdir, name);
    wick_adapter *a = NULL, *b = NULL;
    CHECK_OK(wick_adapter_load(f->m, dir, &a));
    CHECK_OK(wick_adapter_save(a, d1));
    CHECK_OK(wick_adapter_load(f->m, d1, &b));
    if (!a || !b) return;
    CHECK(a->n_floats == b->n_floats && !memcmp(a->data, b->data, a->n_floats * sizeof(float)), "%s: round trip", name);
    for (int i = 0; i < a->n_layers * WK_P_COUNT; i++)
        CHECK(a->slots[i].lp.r == b->slots[i].lp.r && a->slots[i].lp.scale == b->slots[i].lp.scale, "slot %d", i);
    CHECK_OK(wick_adapter_save(b, d2));
    char *x, *y;
    size_t nx, ny;
    char p1[600], p2[600];
    snprintf(p1, sizeof p1, "%s/adapter_model.safetensors", d1);
    snprintf(p2, sizeof p2, "%s/adapter_model.safetensors", d2);
    wick_status s1 = wk_read_file(p1, &x, &nx), s2 = wk_read_file(p2, &y, &ny);
    CHECK(!s1 && !s2 && nx == ny && !memcmp(x, y, nx), "%s: second save differs", name);
    wk_free(x), wk_free(y);
    wick_adapter_free(a), wick_adapter_free(b);
}

/* New adapters: Kaiming A within ±1/sqrt(in) and B = 0 (logits = base); seeded; random-B saved/loaded. */
static void check_new(fixture *f) {
    wick_lora_config c = wick_lora_config_default();
    c.r = 4, c.alpha = 8, c.targets = WICK_LORA_Q | WICK_LORA_DOWN;
    wick_adapter *a = NULL, *b = NULL, *g = NULL;
    CHECK_OK(wick_adapter_new(f->m, &c, 7, &a));
    CHECK_OK(wick_adapter_new(f->m, &c, 7, &b));
    if (!a || !b) return;
    CHECK(!memcmp(a->data, b->data, a->n_floats * 4), "same seed, same adapter");
    const wk_slot *s = wk_adapter_slot(a, 0, WK_P_DOWN);
    float bound = 1.f / sqrtf((float)s->in), mx = 0;
    for (int i = 0; i < s->lp.r * s->in; i++) mx = fmaxf(mx, fabsf(s->lp.A[i]));
    CHECK(mx <= bound && mx > 0.5f * bound, "Kaiming bound: max |A| %g vs %g", mx, bound);
    CHECK(wk_adapter_slot(a, 0, WK_P_K)->lp.A == NULL, "k_proj not targeted");
    float *out = logits_with(f, f->m, a, 1.f);
    CHECK(!memcmp(out, f->base, sizeof(float) * nlog(f)), "B = 0 gives the base");
    free(out);
    c.init = WICK_LORA_INIT_GAUSSIAN;
    c.use_rslora = 1;
    CHECK_OK(wick_adapter_new(f->m, &c, 7, &g));
    double ss = 0;
    const wk_slot *gs = wk_adapter_slot(g, 0, WK_P_Q);
    for (int i = 0; i < gs->lp.r * gs->in; i++) ss += (double)gs->lp.A[i] * gs->lp.A[i];
    double sd = sqrt(ss / (gs->lp.r * gs->in));
    CHECK(fabs(sd - 0.25) < 0.05, "Gaussian init std %g, want 1/r", sd);
    CHECK(fabsf(gs->lp.scale - 4.f) < 1e-6f, "rsLoRA scale 8/sqrt(4)");
    wick_adapter_free(g);
    c.init = WICK_LORA_INIT_RANDOM;
    wick_adapter_free(b);
    CHECK_OK(wick_adapter_new(f->m, &c, 9, &b));
    char d[512];
    snprintf(d, sizeof d, "%s/new_random", tmpdir);
    CHECK_OK(wick_adapter_save(b, d));
    wick_adapter *r = NULL;
    CHECK_OK(wick_adapter_load(f->m, d, &r));
    if (r) {
        float *x = logits_with(f, f->m, b, 1.f), *y = logits_with(f, f->m, r, 1.f);
        CHECK(!memcmp(x, y, sizeof(float) * nlog(f)) && t_max_abs_diff(x, f->base, nlog(f)) > 1e-3f, "random init round trip");
        free(x), free(y);
        wick_adapter_info in;
        wick_adapter_get_info(r, &in);
        CHECK(in.r == 4 && in.use_rslora && in.targets == (WICK_LORA_Q | WICK_LORA_DOWN) && in.n_pairs == 2 * f->m->c.n_layers,
              "info of the reloaded adapter");
    }
    wick_adapter_free(r);
    wick_adapter_free(a), wick_adapter_free(b);
}

/* Writes adapter_config.json text into dir (created). */
static void write_config(const char *dir, const char *json) {
    char p[600];
    wk_make_dirs(dir);
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    FILE *fp = fopen(p, "w");
    fputs(json, fp);
    fclose(fp);
}

/* rank_pattern / alpha_pattern, a regex target_modules and layers_to_transform. */
static void check_patterns(fixture *f) {
    wick_lora_config c = wick_lora_config_default();
    c.r = 4, c.alpha = 8, c.targets = WICK_LORA_Q | WICK_LORA_V | WICK_LORA_UP;
    wick_adapter *a = NULL, *b = NULL;
    CHECK_OK(wick_adapter_new(f->m, &c, 3, &a));
    if (!a) return;
    /* layer 1 q_proj gets rank 2 (first rows of A / columns of B), v_proj alpha 32 */
    wk_slot *q1 = wk_adapter_slot(a, 1, WK_P_Q);
    for (int o = 0; o < q1->out; o++)
        for (int k = 0; k < 2; k++) q1->lp.B[o * 2 + k] = q1->lp.B[o * 4 + k];
    q1->lp.r = 2;
    char d[512];
    snprintf(d, sizeof d, "%s/pattern", tmpdir);
    CHECK_OK(wick_adapter_save(a, d));
    write_config(d, "{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"target_modules\":\"model\\\\.layers\\\\.\\\\d+\\\\."
                    "(self_attn\\\\.(q|v)_proj|mlp\\\\.up_proj)\",\"rank_pattern\":{\"layers.1.self_attn.q_proj\":2},"
                    "\"alpha_pattern\":{\"v_proj\":32}}");
    CHECK_OK(wick_adapter_load(f->m, d, &b));
    wick_lora_pair_info pi;
    if (b) {
        CHECK_OK(wick_adapter_pair_info(b, 1, 0, &pi));
        CHECK(pi.r == 2 && pi.scale == 4.f, "rank_pattern: r %d scale %g", pi.r, pi.scale);
        CHECK_OK(wick_adapter_pair_info(b, 0, 0, &pi));
        CHECK(pi.r == 4 && pi.scale == 2.f, "default rank: r %d scale %g", pi.r, pi.scale);
        CHECK_OK(wick_adapter_pair_info(b, 0, 2, &pi));
        CHECK(pi.scale == 8.f, "alpha_pattern: scale %g", pi.scale);
        CHECK(wick_adapter_pair_info(b, 0, 1, &pi) == WICK_ERANGE, "k_proj not adapted");
    }
    wick_adapter_free(b);
    b = NULL;
    /* layers_to_transform [0]: the layer-1 tensors become unexpected */
    write_config(d, "{\"r\":4,\"lora_alpha\":8,\"target_modules\":[\"q_proj\",\"v_proj\",\"up_proj\"],"
                    "\"layers_to_transform\":[0],\"layers_pattern\":\"layers\"}");
    CHECK_FAILS(wick_adapter_load(f->m, d, &b), "unexpected key 'base_model.model.model.layers.1.");
    wick_adapter_free(a);
}

/* In-memory merge equals the unmerged adapter; unmerge restores the base bit for bit. */
static void check_merge(fixture *f, const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/golden/%s/adapter1", WICK_TEST_DIR, name);
    wick_adapter *a = NULL;
    CHECK_OK(wick_adapter_load(f->m, dir, &a));
    if (!a) return;
    float *un = logits_with(f, f->m, a, 0.5f);
    CHECK_OK(wick_adapter_merge(f->m, a, 0.5f));
    CHECK_FAILS(wick_adapter_merge(f->m, a, 1.f), "already merged");
    float *mg = logits_with(f, f->m, NULL, 1.f);
    float d = t_max_abs_diff(mg, un, nlog(f));
    CHECK(d <= 1e-4f, "%s: merged vs unmerged logits differ by %g", name, d);
    CHECK_OK(wick_adapter_unmerge(f->m, a));
    float *back = logits_with(f, f->m, NULL, 1.f);
    CHECK(!memcmp(back, f->base, sizeof(float) * nlog(f)), "%s: unmerge is not exact", name);
    CHECK_FAILS(wick_adapter_unmerge(f->m, a), "is not merged");
    free(un), free(mg), free(back);
    wick_adapter_free(a);
}

static void check_export(fixture *f, const char *name, int64_t shard, int via_cli) {
    char ad[512], out[512];
    snprintf(ad, sizeof ad, "%s/golden/%s/adapter1", WICK_TEST_DIR, name);
    snprintf(out, sizeof out, "%s/%s_merged_%lld_%d", tmpdir, name, (long long)shard, via_cli);
    wick_adapter *a = NULL;
    CHECK_OK(wick_adapter_load(f->m, ad, &a));
    if (!a) return;
    if (via_cli) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "%s merge --model %s/golden/%s/model --adapter %s --out %s", WICK_BIN, WICK_TEST_DIR,
                 name, ad, out);
        CHECK(system(cmd) == 0, "%s", cmd);
    } else {
        wick_merge_opts o = {.scale = 1, .max_shard_bytes = shard};
        CHECK_OK(wick_merge_export(f->m, a, &o, out));
    }
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", out);
    CHECK(wk_file_exists(p) == (shard > 0), "%s: index.json presence (shard %lld)", name, (long long)shard);
    snprintf(p, sizeof p, "%s/config.json", out);
    CHECK(wk_file_exists(p), "config.json copied");
    wick_model *mm = NULL;
    CHECK_OK(wick_model_load(out, NULL, &mm));
    if (mm) {
        float *x = logits_with(f, f->m, a, 1.f), *y = logits_with(f, mm, NULL, 1.f);
        float d = t_max_abs_diff(x, y, nlog(f));
        CHECK(d <= 1e-4f, "%s: merged checkpoint logits differ from the adapter's by %g", name, d);
        free(x), free(y);
    }
    wick_model_free(mm);
    wick_adapter_free(a);
}

/* ---- two sessions, two adapters, two threads */
typedef struct {
    wick_model *m;
    const wick_adapter *a;
    const int32_t *ids;
    int T, V, reps;
    float *out;  /* [T,V] last run */
    int ok;
} job;

static void *run_job(void *p) {
    job *j = p;
    wick_session *s;
    if (wick_session_new(j->m, NULL, &s)) return NULL;
    j->ok = 1;
    for (int r = 0; r < j->reps; r++) {
        wick_session_reset(s);
        j->ok &= wick_session_set_adapter(s, r % 3 == 2 ? NULL : j->a, 1.f) == WICK_OK;
        if (r % 3 == 2) j->ok &= wick_session_set_adapter(s, j->a, 1.f) == WICK_OK; /* A→none→A */
        j->ok &= wick_session_eval(s, j->ids, j->T, j->out, 1) == WICK_OK;
    }
    wick_session_free(s);
    return NULL;
}

static void check_concurrent(fixture *f, const char *name) {
    wick_registry *reg = NULL;
    char d1[512], d2[512];
    snprintf(d1, sizeof d1, "%s/golden/%s/adapter1", WICK_TEST_DIR, name);
    snprintf(d2, sizeof d2, "%s/golden/%s/adapter2", WICK_TEST_DIR, name);
    CHECK_OK(wick_registry_new(f->m, &reg));
    CHECK_OK(wick_registry_load(reg, "one", d1));
    CHECK_OK(wick_registry_load(reg, NULL, d2));
    CHECK_FAILS(wick_registry_load(reg, "one", d2), "already loaded");
    wick_adapter_info inf[4];
    int n = 0;
    CHECK_OK(wick_registry_list(reg, inf, 4, &n));
    CHECK(n == 2 && !strcmp(inf[0].name, "one") && !strcmp(inf[1].name, "adapter2") && inf[0].r == 8 && inf[1].r == 4 &&
              inf[1].targets == (WICK_LORA_Q | WICK_LORA_V) && inf[0].bytes > 0,
          "registry list");
    wick_adapter *a1 = wick_registry_acquire(reg, "one"), *a2 = wick_registry_acquire(reg, "adapter2");
    CHECK(a1 && a2 && !wick_registry_acquire(reg, "nope"), "acquire");
    CHECK_FAILS(wick_registry_unload(reg, "one"), "in use");
    int T = f->T, V = f->V;
    job j[2] = {{f->m, a1, f->ids, T, V, 3, malloc(sizeof(float) * T * V), 0},
                {f->m, a2, f->ids + T, T, V, 3, malloc(sizeof(float) * T * V), 0}};
    float *solo1 = malloc(sizeof(float) * T * V), *solo2 = malloc(sizeof(float) * T * V);
    job s1 = j[0], s2 = j[1];
    s1.out = solo1, s1.reps = 1, s2.out = solo2, s2.reps = 1;
    run_job(&s1), run_job(&s2);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, run_job, &j[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECK(j[0].ok && j[1].ok && s1.ok && s2.ok, "sessions ran");
    /* A → B → A in one session: the second A run is bit-identical to the first */
    float *again = malloc(sizeof(float) * T * V), *other = malloc(sizeof(float) * T * V);
    wick_session *ss = NULL;
    CHECK_OK(wick_session_new(f->m, NULL, &ss));
    if (ss) {
        CHECK_OK(wick_session_set_adapter(ss, a2, 1.f));
        CHECK_OK(wick_session_eval(ss, f->ids, T, other, 1));
        wick_session_reset(ss);
        CHECK_OK(wick_session_set_adapter(ss, a1, 1.f));
        CHECK_OK(wick_session_eval(ss, f->ids, T, again, 1));
        CHECK(!memcmp(again, solo1, sizeof(float) * T * V) && memcmp(other, solo1, sizeof(float) * T * V),
              "%s: A→B→A does not give A's logits again", name);
    }
    wick_session_free(ss);
    free(again), free(other);
    /* Bit-identical on a 2-core machine; with many cores OpenBLAS may block a product differently while
     * another thread holds the OpenMP pool, so allow float rounding (an adapter mix-up differs by ~1e-1). */
    float e1 = t_max_abs_diff(j[0].out, solo1, (size_t)T * V), e2 = t_max_abs_diff(j[1].out, solo2, (size_t)T * V);
    CHECK(e1 <= 1e-5f, "%s: thread with adapter1 differs from running alone by %g", name, e1);
    CHECK(e2 <= 1e-5f, "%s: thread with adapter2 differs from running alone by %g", name, e2);
    CHECK(t_max_abs_diff(solo1, solo2, (size_t)T * V) > 1e-3f, "%s: the two adapters give different logits", name);
    CHECK(memcmp(solo1, f->base, sizeof(float) * T * V) != 0, "adapter1 changes the logits");
    wick_registry_release(reg, a1);
    wick_registry_release(reg, a2);
    CHECK_OK(wick_registry_unload(reg, "one"));
    CHECK(wick_registry_count(reg) == 1, "count after unload");
    free(j[0].out), free(j[1].out), free(solo1), free(solo2);
    wick_registry_free(reg);
}

/* A bf16 base: the merged checkpoint stays bf16 and is the adapter up to bf16 rounding of W + s·B·A. */
static void check_bf16_export(void) {
    fixture f;
    if (open_fixture("qwen2_tiny_bf16", &f)) return;
    char ad[512], out[512], p[600];
    snprintf(ad, sizeof ad, "%s/golden/qwen2_tiny/adapter1", WICK_TEST_DIR);
    snprintf(out, sizeof out, "%s/bf16_merged", tmpdir);
    wick_adapter *a = NULL;
    wick_model *mm = NULL;
    wick_st *st = NULL;
    CHECK_OK(wick_adapter_load(f.m, ad, &a));
    CHECK_OK(wick_merge_export(f.m, a, NULL, out));
    CHECK_OK(wick_model_load(out, NULL, &mm));
    CHECK_OK(wick_st_open(wk_path_join(p, sizeof p, out, "model.safetensors"), &st));
    wick_tensor_view v;
    CHECK(st && wick_st_find(st, "model.layers.0.mlp.down_proj.weight", &v) == WICK_OK && v.dtype == WICK_DT_BF16,
          "merged weights keep the base's bf16");
    if (a && mm) {
        float *x = logits_with(&f, f.m, a, 1.f), *y = logits_with(&f, mm, NULL, 1.f);
        float d = t_max_abs_diff(x, y, nlog(&f)), eff = t_max_abs_diff(x, f.base, nlog(&f));
        CHECK(d < 0.05f * eff, "bf16 merged logits differ by %g (adapter effect %g)", d, eff);
        free(x), free(y);
    }
    wick_st_close(st);
    wick_model_free(mm);
    wick_adapter_free(a);
    close_fixture(&f);
}

static void check_model(const char *name) {
    fixture f;
    if (open_fixture(name, &f)) return;
    check_golden(&f, name, "adapter1");
    check_golden(&f, name, "adapter2");
    check_round_trip(&f, name);
    check_merge(&f, name);
    check_concurrent(&f, name);
    if (!strcmp(name, "llama_tiny")) {
        check_new(&f);
        check_patterns(&f);
        check_export(&f, name, 0, 1);
        check_export(&f, name, 200000, 0);
    }
    if (!strcmp(name, "qwen2_tiny")) check_export(&f, name, 0, 0);
    close_fixture(&f);
}

int main(void) {
    wick_set_threads(2);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/wick_test_lora_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    check_model("qwen2_tiny");
    check_model("llama_tiny");
    check_model("qwen3_tiny");
    check_bf16_export();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (!t_fail && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return t_summary();
}
