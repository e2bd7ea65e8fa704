/* test_train_cli.c — `wick train` through the real CLI in the CONFORMANCE forms:
 *  - llama_tiny/multistep: 10 steps (accumulation, warmup + cosine, clipping, AdamW) against PyTorch:
 *    per-step loss 1e-5, grad norm relative 1e-4, lr, final adapter max |diff| 1e-4;
 *  - the one-step form with --save-grads on qwen3_tiny: gradients and the updated adapter against the goldens;
 *  - resume from a checkpoint gives a bit-identical final adapter; a malformed data line names its line. */
#include "t.h"
#include <jansson.h>
#include <stdlib.h>

static char tmpdir[256];

static int run(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s train %s --threads 1 >/dev/null 2>%s/stderr.txt", WICK_BIN, args, tmpdir);
    return system(cmd);
}

static float max_diff_files(const char *a, const char *b, const char *prefix_b, int *n_checked) {
    wick_st *fa = NULL, *fb = NULL;
    float worst = INFINITY;
    *n_checked = 0;
    if (wick_st_open(a, &fa) || wick_st_open(b, &fb)) goto done;
    worst = 0;
    for (int i = 0; i < wick_st_count(fa); i++) {
        wick_tensor_view va, vb;
        char key[300];
        wick_st_get(fa, i, &va);
        snprintf(key, sizeof key, "%s%s", prefix_b, va.name);
        if (wick_st_find(fb, key, &vb)) {
            worst = INFINITY;
            continue;
        }
        size_t n = 1;
        for (int d = 0; d < va.ndim; d++) n *= (size_t)va.shape[d];
        float d = t_max_abs_diff(va.data, vb.data, n);
        worst = d > worst ? d : worst;
        (*n_checked)++;
    }
done:
    wick_st_close(fa), wick_st_close(fb);
    return worst;
}

static void multistep(void) {
    char args[2048], path[512];
    snprintf(args, sizeof args,
             "--model %s --data %s --out %s/ms --init-adapter %s --batch-size 2 --grad-accum 2 --max-steps 10 "
             "--lr 5e-3 --scheduler cosine --warmup-steps 3 --max-grad-norm 1 --weight-decay 0.01 --adam-beta1 0.9 "
             "--adam-beta2 0.999 --adam-eps 1e-8 --no-shuffle --save-every 3",
             T_PATH("golden/llama_tiny/model"), T_PATH("golden/llama_tiny/multistep/train.jsonl"), tmpdir,
             T_PATH("golden/llama_tiny/adapter1"));
    CHECK(run(args) == 0, "multistep run failed (see %s/stderr.txt)", tmpdir);
    json_t *g = json_load_file(T_PATH("golden/llama_tiny/multistep/golden.json"), 0, NULL);
    json_t *steps = json_object_get(g, "steps");
    snprintf(path, sizeof path, "%s/ms/metrics.jsonl", tmpdir);
    FILE *f = fopen(path, "r");
    char line[4096];
    size_t k = 0;
    while (f && fgets(line, sizeof line, f) && k < json_array_size(steps)) {
        json_t *m = json_loads(line, 0, NULL), *e = json_array_get(steps, k++);
        double loss = json_real_value(json_object_get(m, "loss")), gl = json_real_value(json_object_get(e, "loss"));
        double gn = json_real_value(json_object_get(m, "grad_norm")), ggn = json_real_value(json_object_get(e, "grad_norm"));
        double lr = json_number_value(json_object_get(m, "lr")), glr = json_number_value(json_object_get(e, "lr"));
        CHECK(json_integer_value(json_object_get(m, "step")) == (json_int_t)k, "metrics step %zu", k);
        CHECK(fabs(loss - gl) <= 1e-5, "step %zu loss %.8f vs %.8f", k, loss, gl);
        CHECK(fabs(gn - ggn) <= 1e-4 * ggn, "step %zu grad norm %.8f vs %.8f", k, gn, ggn);
        CHECK(fabs(lr - glr) <= 1e-9 + 1e-6 * glr, "step %zu lr %.10g vs %.10g", k, lr, glr);
        json_decref(m);
    }
    if (f) fclose(f);
    CHECK(k == 10, "metrics has %zu of 10 steps", k);
    json_decref(g);
    int n;
    snprintf(path, sizeof path, "%s/ms/adapter_model.safetensors", tmpdir);
    float d = max_diff_files(T_PATH("golden/llama_tiny/multistep/final_adapter.safetensors"), path, "", &n);
    CHECK(d <= 1e-4f && n == 42, "final adapter max |diff| %g over %d tensors", d, n);

    /* resume from checkpoint-6 (the last two are kept: 6 and 9): the final adapter is bit-identical */
    char resumed[512];
    snprintf(args + strlen(args), sizeof args - strlen(args), " --resume %s/ms/checkpoint-6", tmpdir);
    char *o = strstr(args, "/ms ");
    memcpy(o, "/rs ", 4);
    CHECK(run(args) == 0, "resumed run failed (see %s/stderr.txt)", tmpdir);
    snprintf(resumed, sizeof resumed, "%s/rs/adapter_model.safetensors", tmpdir);
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    FILE *fa = fopen(path, "rb"), *fb = fopen(resumed, "rb");
    if (fa && fb) {
        fseek(fa, 0, SEEK_END), fseek(fb, 0, SEEK_END);
        la = ftell(fa), lb = ftell(fb);
        rewind(fa), rewind(fb);
        a = malloc(la), b = malloc(lb);
        CHECK(fread(a, 1, la, fa) == la && fread(b, 1, lb, fb) == lb, "read adapters");
    }
    CHECK(a && b && la == lb && memcmp(a, b, la) == 0, "resumed final adapter is not bit-identical");
    free(a), free(b);
    if (fa) fclose(fa);
    if (fb) fclose(fb);
}

static void one_step_save_grads(const char *name) {
    char args[2048], path[512], gpath[512];
    snprintf(args, sizeof args,
             "--model %s/golden/%s/model --data %s/one.jsonl --out %s/one_%s --init-adapter %s/golden/%s/adapter1 "
             "--batch-size 2 --max-steps 1 --lr 1e-2 --weight-decay 0.01 --adam-beta1 0.9 --adam-beta2 0.999 "
             "--adam-eps 1e-8 --scheduler constant --warmup-steps 0 --max-grad-norm 0 --no-shuffle --save-grads %s/g_%s.st",
             WICK_TEST_DIR, name, tmpdir, tmpdir, name, WICK_TEST_DIR, name, tmpdir, name);
    /* the golden batch as a JSONL file */
    wick_st *g;
    snprintf(gpath, sizeof gpath, "%s/golden/%s/golden.safetensors", WICK_TEST_DIR, name);
    if (wick_st_open(gpath, &g)) return;
    wick_tensor_view vi, vl;
    wick_st_find(g, "train_input_ids", &vi), wick_st_find(g, "train_labels", &vl);
    snprintf(path, sizeof path, "%s/one.jsonl", tmpdir);
    FILE *f = fopen(path, "w");
    for (int b = 0; b < vi.shape[0]; b++) {
        const int64_t *ids = (const int64_t *)vi.data + b * vi.shape[1], *lab = (const int64_t *)vl.data + b * vl.shape[1];
        fprintf(f, "{\"input_ids\": [");
        for (int t = 0; t < vi.shape[1]; t++) fprintf(f, "%s%lld", t ? ", " : "", (long long)ids[t]);
        fprintf(f, "], \"labels\": [");
        for (int t = 0; t < vl.shape[1]; t++) fprintf(f, "%s%lld", t ? ", " : "", (long long)lab[t]);
        fprintf(f, "]}\n");
    }
    fclose(f);
    wick_st_close(g);
    CHECK(run(args) == 0, "%s: one-step run failed", name);
    wick_st *fg = NULL, *gg = NULL;
    snprintf(path, sizeof path, "%s/g_%s.st", tmpdir, name);
    CHECK_OK(wick_st_open(path, &fg));
    CHECK_OK(wick_st_open(gpath, &gg));
    int n = fg ? wick_st_count(fg) : 0;
    for (int i = 0; i < n; i++) {
        wick_tensor_view a, r;
        char key[300];
        wick_st_get(fg, i, &a);
        snprintf(key, sizeof key, "grad.%s", a.name);
        CHECK_OK(wick_st_find(gg, key, &r));
        size_t cnt = (size_t)a.shape[0] * a.shape[1];
        CHECK(t_rel_l2(a.data, r.data, cnt) <= 1e-4, "%s: %s", name, key);
    }
    CHECK(n > 0, "%s: no gradients written", name);
    wick_st_close(fg), wick_st_close(gg);
    int k;
    snprintf(path, sizeof path, "%s/one_%s/adapter_model.safetensors", tmpdir, name);
    float d = max_diff_files(path, gpath, "after_step.", &k);
    CHECK(d <= 1e-4f && k == n, "%s: adapter after one step max |diff| %g (%d tensors)", name, d, k);
}

static void bad_line(void) {
    char path[512], args[1024], err[1024] = "";
    snprintf(path, sizeof path, "%s/bad.jsonl", tmpdir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"input_ids\": [1, 2, 3]}\n\n{\"input_ids\": [1, 2,]}\n");
    fclose(f);
    snprintf(args, sizeof args, "--model %s --data %s --out %s/bad --max-steps 1", T_PATH("golden/llama_tiny/model"),
             path, tmpdir);
    CHECK(run(args) != 0, "malformed data accepted");
    snprintf(path, sizeof path, "%s/stderr.txt", tmpdir);
    f = fopen(path, "r");
    if (f) {
        size_t k = fread(err, 1, sizeof err - 1, f);
        err[k] = 0;
        fclose(f);
    }
    CHECK(strstr(err, "bad.jsonl:3") != NULL, "error does not name line 3: %s", err);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/wick_train_cli_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    multistep();
    one_step_save_grads("qwen3_tiny");
    one_step_save_grads("qwen2_tiny");
    bad_line();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (!t_fail && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return t_summary();
}
