/* test_cli_model.c — the CLI forms of CONFORMANCE.md for logits/init-model/inspect, run as a
 * user would (the real binary), plus sharded checkpoints (model.safetensors.index.json). */
#include "t.h"
#include "io/safetensors.h"
#include <stdlib.h>
#include <sys/stat.h>

static char tmp[256];

static int run(const char *fmt, const char *a, const char *b) {
    char cmd[2600], args[1800];
    snprintf(args, sizeof args, fmt, a, b);
    snprintf(cmd, sizeof cmd, "%s %s > %s/stdout 2> %s/stderr", WICK_BIN, args, tmp, tmp);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 255;
}

static int stderr_lines(char *first, size_t cap) {
    char p[300];
    snprintf(p, sizeof p, "%s/stderr", tmp);
    FILE *f = fopen(p, "r");
    int n = 0;
    char line[2048];
    first[0] = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (!n) snprintf(first, cap, "%s", line);
        n++;
    }
    if (f) fclose(f);
    return n;
}

static void golden_logits_cli(void) {
    char out[300], line[2048];
    snprintf(out, sizeof out, "%s/l.safetensors", tmp);
    wick_st *g;
    CHECK_OK(wick_st_open(T_PATH("golden/llama_tiny/golden.safetensors"), &g));
    wick_tensor_view ids, ref;
    wick_st_find(g, "input_ids", &ids);
    wick_st_find(g, "logits", &ref);
    char list[1024] = "", *p = list;
    const int64_t *iv = ids.data;
    for (int b = 0; b < ids.shape[0]; b++)
        for (int t = 0; t < ids.shape[1]; t++)
            p += sprintf(p, "%s%lld", t ? "," : (b ? ";" : ""), (long long)iv[b * ids.shape[1] + t]);
    CHECK(run("logits --model " WICK_TEST_DIR "/golden/llama_tiny/model --ids \"%s\" --out %s", list, out) == 0, "logits ran");
    wick_st *o;
    CHECK_OK(wick_st_open(out, &o));
    wick_tensor_view lv;
    CHECK_OK(wick_st_find(o, "logits", &lv));
    CHECK(lv.dtype == WICK_DT_F32 && lv.ndim == 3 && lv.shape[0] == ref.shape[0] && lv.shape[2] == ref.shape[2], "logits shape");
    CHECK(t_max_abs_diff(lv.data, ref.data, (size_t)wk_numel(&ref)) <= 1e-4f, "CLI logits match golden");
    wick_st_close(o);
    wick_st_close(g);
    /* errors: exit non-zero, one line on stderr naming the problem */
    CHECK(run("logits --model " WICK_TEST_DIR "/golden/llama_tiny/model --ids \"%s\" --out %s", "1,2;3", out) != 0, "ragged ids");
    CHECK(stderr_lines(line, sizeof line) == 1 && strstr(line, "sequence 1 has 1 ids"), "ragged message: %s", line);
    CHECK(run("logits --model " WICK_TEST_DIR "/golden/llama_tiny/model --ids \"%s\" --out %s", "1,99999", out) != 0, "id out of range");
    CHECK(stderr_lines(line, sizeof line) == 1 && strstr(line, "99999"), "range message: %s", line);
    CHECK(run("logits --model %s/nothing --ids 1 --out %s", tmp, out) != 0, "missing model");
    CHECK(stderr_lines(line, sizeof line) == 1 && strstr(line, "config.json"), "missing model message: %s", line);
    CHECK(run("logits --bogus%s%s", "", "") == 2, "unknown option");
    CHECK(run("logits --help%s%s", "", "") == 0, "help");
}

/* Splits the qwen3 golden model into two shards + index; logits must not change. */
static void sharded(void) {
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/sharded", tmp);
    mkdir(dir, 0755);
    wick_st *src;
    CHECK_OK(wick_st_open(T_PATH("golden/qwen3_tiny/model/model.safetensors"), &src));
    int n = wick_st_count(src), h = n / 2;
    wick_tensor_view *v = calloc((size_t)n, sizeof *v);
    for (int i = 0; i < n; i++) wick_st_get(src, i, &v[i]);
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    CHECK_OK(wick_safetensors_write(path, v, h, NULL));
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    CHECK_OK(wick_safetensors_write(path, v + h, n - h, NULL));
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"metadata\":{},\"weight_map\":{");
    for (int i = 0; i < n; i++) fprintf(f, "%s\"%s\":\"model-0000%d-of-00002.safetensors\"", i ? "," : "", v[i].name, i < h ? 1 : 2);
    fprintf(f, "}}");
    fclose(f);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "cp %s/golden/qwen3_tiny/model/config.json %s/", WICK_TEST_DIR, dir);
    CHECK(system(cmd) == 0, "copy config");
    wick_model *a, *b;
    CHECK_OK(wick_model_load(dir, NULL, &a));
    CHECK_OK(wick_model_load(T_PATH("golden/qwen3_tiny/model"), NULL, &b));
    int32_t ids[6] = {1, 5, 9, 200, 3, 7};
    float *la = malloc(sizeof(float) * 6 * 512), *lb = malloc(sizeof(float) * 6 * 512);
    CHECK_OK(wick_model_logits(a, NULL, 1, ids, 1, 6, la));
    CHECK_OK(wick_model_logits(b, NULL, 1, ids, 1, 6, lb));
    CHECK(t_max_abs_diff(la, lb, 6 * 512) == 0, "sharded logits identical");
    free(la), free(lb), free(v);
    wick_model_free(a), wick_model_free(b);
    wick_st_close(src);
}

static void init_inspect(void) {
    char d[300];
    snprintf(d, sizeof d, "%s/tiny", tmp);
    CHECK(run("init-model --arch qwen2 --preset tiny --dtype bf16 --seed 3 --out %s%s", d, "") == 0, "init-model");
    CHECK(run("inspect --model %s --json%s", d, "") == 0, "inspect");
    wick_model *m;
    CHECK_OK(wick_model_load(d, NULL, &m));
    wick_model_info f;
    wick_model_get_info(m, &f);
    CHECK(f.weight_dtype == WICK_DT_BF16 && f.hidden_size == 64 && f.vocab_size == 512, "tiny preset shapes");
    wick_model_free(m);
    CHECK(run("init-model --arch llama --preset tiny --dtype f32 --seed 3 --out %s%s", d, "") != 0, "arch mismatch rejected");
    CHECK(run("init-model --preset nope --dtype f32 --seed 3 --out %s%s", d, "") != 0, "unknown preset rejected");
    /* same seed → same bytes; bert preset writes the BertModel layout */
    snprintf(d, sizeof d, "%s/bert", tmp);
    CHECK(run("init-model --arch bert --preset bert-tiny --dtype f32 --seed 1 --out %s%s", d, "") == 0, "bert init");
    char p[400];
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    wick_st *f2;
    CHECK_OK(wick_st_open(p, &f2));
    wick_tensor_view tv;
    CHECK_OK(wick_st_find(f2, "encoder.layer.1.output.LayerNorm.bias", &tv));
    wick_st_close(f2);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/wick-cli-XXXXXX");
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    golden_logits_cli();
    sharded();
    init_inspect();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0, "cleanup");
    return t_summary();
}
