/* test_lora_malformed.c — a corpus of broken PEFT adapters, written here from the llama_tiny adapter1:
 * each one must fail to load with a message naming the key or field at fault (wrong shape, missing key,
 * extra key, rank mismatch, DoRA, bad JSON, truncated file, unsupported features, ...). BF16/F16
 * tensors are accepted; an adapter opened without a model cannot be used in a session. */
#include "t.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[256], mdir[512], gdir[512];
static wick_model *M;
static wick_st *G; /* the good adapter's tensors */
static char *good_cfg;

#define KEY(l, par, proj, ab) "base_model.model.model.layers." #l "." par "." proj ".lora_" ab ".weight"

static void put(const char *dir, const char *name, const char *text, size_t n) {
    char p[700];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    fwrite(text, 1, n, f);
    fclose(f);
}

/* Replaces "from" by "to" once in the good config. */
static char *cfg_with(const char *from, const char *to) {
    const char *at = strstr(good_cfg, from);
    if (!at) return strdup(good_cfg);
    size_t a = (size_t)(at - good_cfg), n = strlen(good_cfg) - strlen(from) + strlen(to) + 1;
    char *s = malloc(n);
    snprintf(s, n, "%.*s%s%s", (int)a, good_cfg, to, at + strlen(from));
    return s;
}

typedef struct {
    const char *drop;      /* key left out */
    const char *bad_shape; /* key written with one more column */
    const char *extra;     /* extra key (a copy of layer 0 q_proj A) */
    wick_dtype as;         /* write every tensor in this dtype (F32 = as is) */
} variant;

/* Writes a case directory: config text + the good tensors changed by v. Returns the dir. */
static const char *make_case(const char *name, const char *cfg, const variant *v) {
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    put(dir, "adapter_config.json", cfg, strlen(cfg));
    int n = wick_st_count(G), k = 0;
    wick_tensor_view *t = calloc((size_t)n + 1, sizeof *t);
    void *bufs[256] = {0};
    for (int i = 0; i < n; i++) {
        wick_tensor_view x;
        wick_st_get(G, i, &x);
        if (v && v->drop && !strcmp(x.name, v->drop)) continue;
        if (v && v->bad_shape && !strcmp(x.name, v->bad_shape)) {
            x.shape[1] += 1;
            x.data = bufs[i] = calloc((size_t)(x.shape[0] * x.shape[1]), 4);
        }
        if (v && v->as != WICK_DT_F32) {
            size_t cnt = (size_t)(x.shape[0] * x.shape[1]);
            uint16_t *h = bufs[i] = malloc(cnt * 2);
            for (size_t e = 0; e < cnt; e++) {
                float f = ((const float *)x.data)[e];
                uint32_t u;
                memcpy(&u, &f, 4);
                h[e] = v->as == WICK_DT_BF16 ? (uint16_t)(u >> 16) : 0x3c00; /* f16: 1.0 */
            }
            x.dtype = v->as;
            x.data = h;
        }
        t[k++] = x;
    }
    if (v && v->extra) {
        wick_st_find(G, KEY(0, "self_attn", "q_proj", "A"), &t[k]);
        t[k++].name = v->extra;
    }
    char p[700];
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    if (wick_safetensors_write(p, t, k, NULL)) fprintf(stderr, "write %s: %s\n", p, wick_last_error());
    for (int i = 0; i < 256; i++) free(bufs[i]);
    free(t);
    return dir;
}

static void expect_fail(const char *name, const char *cfg, const variant *v, const char *needle) {
    const char *dir = make_case(name, cfg, v);
    wick_adapter *a = NULL;
    wick_status st = wick_adapter_load(M, dir, &a);
    if (getenv("WICK_TEST_VERBOSE")) fprintf(stderr, "%-16s %s\n", name, wick_last_error());
    CHECK(st != WICK_OK && a == NULL && strstr(wick_last_error(), needle),
          "case %s: status %s, message \"%s\", wanted one containing \"%s\"", name, wick_status_str(st), wick_last_error(), needle);
    wick_adapter_free(a);
}

static void config_cases(void) {
    struct { const char *name, *from, *to, *needle; } c[] = {
        {"dora", "\"use_dora\": false", "\"use_dora\": true", "'use_dora'"},
        {"rank", "\"r\": 8", "\"r\": 4", "rank 8 does not match the config's r=4"},
        {"no_r", "\"r\": 8,", "", "field 'r'"},
        {"modules_to_save", "\"modules_to_save\": null", "\"modules_to_save\": [\"lm_head\"]", "'modules_to_save'"},
        {"bias", "\"bias\": \"none\"", "\"bias\": \"all\"", "'bias'"},
        {"fan_in", "\"fan_in_fan_out\": false", "\"fan_in_fan_out\": true", "'fan_in_fan_out'"},
        {"lora_bias", "\"lora_bias\": false", "\"lora_bias\": true", "'lora_bias'"},
        {"head", "\"q_proj\",", "\"q_proj\", \"lm_head\",", "'lm_head': LoRA on the embedding or LM head"},
        {"unknown_target", "\"q_proj\",", "\"q_proj\", \"foo\",", "'foo' names no linear layer"},
        {"fewer_targets", "\"k_proj\",", "", "unexpected key '" KEY(0, "self_attn", "k_proj", "A") "' (not selected"},
        {"regex", "\"target_modules\": [", "\"target_modules\": \"([\", \"x\": [", "does not compile"},
        {"peft_type", "\"peft_type\": \"LORA\"", "\"peft_type\": \"IA3\"", "'peft_type'"},
        {"alpha", "\"lora_alpha\": 16", "\"lora_alpha\": \"16\"", "'lora_alpha'"},
        {"layers_pattern", "\"layers_pattern\": null", "\"layers_pattern\": \"h\"", "'layers_pattern'"},
        {"replication", "\"layer_replication\": null", "\"layer_replication\": [[0,1]]", "'layer_replication'"},
        {"bad_json", "\"r\": 8,", "\"r\": 8,,", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char *cfg = cfg_with(c[i].from, c[i].to);
        CHECK(strcmp(cfg, good_cfg) != 0, "case %s: config edit did not apply", c[i].name);
        expect_fail(c[i].name, cfg, NULL, c[i].needle);
        free(cfg);
    }
}

static void tensor_cases(void) {
    variant v1 = {.bad_shape = KEY(1, "mlp", "down_proj", "A")};
    expect_fail("shape", good_cfg, &v1, "tensor '" KEY(1, "mlp", "down_proj", "A") "': shape [8,257], expected [8,256]");
    variant v2 = {.drop = KEY(1, "self_attn", "v_proj", "B")};
    expect_fail("missing", good_cfg, &v2, "missing key '" KEY(1, "self_attn", "v_proj", "B") "'");
    variant v3 = {.extra = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"};
    expect_fail("extra", good_cfg, &v3, "unexpected key 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight'");
    variant v4 = {.extra = "base_model.model.lm_head.lora_A.weight"};
    expect_fail("extra_head", good_cfg, &v4, "LM head");
    variant v5 = {.extra = "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector"};
    expect_fail("dora_tensor", good_cfg, &v5, "DoRA");
    variant v6 = {.extra = KEY(7, "self_attn", "q_proj", "A")};
    expect_fail("layer_range", good_cfg, &v6, "(layer 7, but the model has 3 layers)");
    /* truncated safetensors */
    const char *dir = make_case("truncated", good_cfg, NULL);
    char p[700];
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    struct stat sb;
    stat(p, &sb);
    CHECK(truncate(p, sb.st_size - 100) == 0, "truncate");
    wick_adapter *a = NULL;
    CHECK_FAILS(wick_adapter_load(M, dir, &a), "adapter_model.safetensors");
    /* no config */
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    unlink(p);
    CHECK_FAILS(wick_adapter_load(M, dir, &a), "adapter_config.json");
}

static void accepted_cases(void) {
    variant b = {.as = WICK_DT_BF16}, h = {.as = WICK_DT_F16};
    wick_adapter *a = NULL;
    CHECK_OK(wick_adapter_load(M, make_case("bf16", good_cfg, &b), &a));
    wick_adapter_free(a), a = NULL;
    CHECK_OK(wick_adapter_load(M, make_case("f16", good_cfg, &h), &a));
    wick_lora_pair_info pi;
    CHECK(a && wick_adapter_pair_info(a, 0, 0, &pi) == WICK_OK, "f16 adapter pair");
    wick_adapter_free(a), a = NULL;
    /* "all-linear" selects the same seven projections as the explicit list */
    char *all = cfg_with("\"target_modules\": [", "\"target_modules\": \"all-linear\", \"x\": [");
    CHECK_OK(wick_adapter_load(M, make_case("all_linear", all, NULL), &a));
    wick_adapter_info inf;
    CHECK(a && wick_adapter_get_info(a, &inf) == WICK_OK && inf.targets == WICK_LORA_ALL && inf.n_pairs == 21, "all-linear");
    wick_adapter_free(a), a = NULL;
    free(all);
    /* exclude_modules removes k_proj: its tensors become unexpected */
    char *ex = cfg_with("\"exclude_modules\": null", "\"exclude_modules\": [\"k_proj\"]");
    expect_fail("exclude", ex, NULL, "unexpected key '" KEY(0, "self_attn", "k_proj", "A") "'");
    free(ex);
    /* opened without a model: inspectable, not usable in a session */
    CHECK_OK(wick_adapter_open(gdir, &a));
    wick_session *s = NULL;
    CHECK_OK(wick_session_new(M, NULL, &s));
    if (a && s) CHECK_FAILS(wick_session_set_adapter(s, a, 1.f), "another model");
    float out[4];
    int32_t id = 1;
    if (a) CHECK_FAILS(wick_model_logits(M, a, 1.f, &id, 1, 1, out), "another model");
    wick_session_free(s);
    wick_adapter_free(a);
    /* the CLI reports a broken adapter on stderr with a non-zero exit */
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "%s adapters inspect %s/dora 2>/dev/null >/dev/null", WICK_BIN, tmp);
    CHECK(system(cmd) != 0, "wick adapters inspect of a DoRA adapter must fail");
    snprintf(cmd, sizeof cmd, "%s adapters inspect %s --model %s >/dev/null", WICK_BIN, gdir, mdir);
    CHECK(system(cmd) == 0, "wick adapters inspect of the good adapter");
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/wick_test_lora_bad_XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    snprintf(mdir, sizeof mdir, "%s/golden/llama_tiny/model", WICK_TEST_DIR);
    snprintf(gdir, sizeof gdir, "%s/golden/llama_tiny/adapter1", WICK_TEST_DIR);
    char p[700];
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", gdir);
    CHECK_OK(wick_model_load(mdir, NULL, &M));
    CHECK_OK(wick_st_open(p, &G));
    snprintf(p, sizeof p, "%s/adapter_config.json", gdir);
    FILE *f = fopen(p, "rb");
    good_cfg = calloc(1, 1 << 16);
    if (f) fread(good_cfg, 1, (1 << 16) - 1, f), fclose(f);
    if (M && G && good_cfg[0]) {
        config_cases();
        tensor_cases();
        accepted_cases();
    }
    wick_st_close(G);
    wick_model_free(M);
    free(good_cfg);
    snprintf(p, sizeof p, "rm -rf %s", tmp);
    if (!t_fail && system(p) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return t_summary();
}
