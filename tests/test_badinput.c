/* test_badinput.c — a corpus of broken checkpoints: each must fail with a status and a
 * message naming the file and the problem (and, under ASan/UBSan, without a report). */
#include "t.h"
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

/* A safetensors file from a raw header string and `data` zero bytes. */
static const char *st_file(const char *name, const char *hdr, size_t data, int64_t fake_len) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    size_t hl = strlen(hdr);
    uint64_t L = fake_len >= 0 ? (uint64_t)fake_len : hl;
    unsigned char *buf = calloc(1, 8 + hl + data);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(L >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    write_bytes(path, buf, 8 + hl + data);
    free(buf);
    return path;
}

static void st_corpus(void) {
    wick_st *f = NULL;
    char sp[512];
    snprintf(sp, sizeof sp, "%s/short.st", tmpdir);
    write_bytes(sp, "abcd", 4);
    CHECK_FAILS(wick_st_open(sp, &f), "too short");
    CHECK_FAILS(wick_st_open(st_file("pasteof.st", "{}", 0, 1000), &f), "past the end of the file");
    CHECK_FAILS(wick_st_open(st_file("huge.st", "{}", 0, (int64_t)1 << 40), &f), "exceeds");
    CHECK_FAILS(wick_st_open(st_file("badjson.st", "{\"a\":", 0, -1), &f), "header JSON");
    CHECK_FAILS(wick_st_open(st_file("notobj.st", "[1,2]", 0, -1), &f), "not a JSON object");
    CHECK_FAILS(wick_st_open(st_file("dtype.st", "{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1), &f),
                "unknown dtype 'F33'");
    CHECK_FAILS(wick_st_open(st_file("bytes.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24, -1), &f),
                "needs 24 bytes");
    CHECK_FAILS(wick_st_open(st_file("oob.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, -1), &f),
                "past the end of the data");
    CHECK_FAILS(wick_st_open(st_file("overlap.st",
                                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, -1), &f),
                "overlapping");
    CHECK_FAILS(wick_st_open(st_file("dup.st",
                                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, -1), &f),
                "duplicate");
    CHECK_FAILS(wick_st_open(st_file("negshape.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, -1), &f),
                "shape[0]");
    CHECK_FAILS(wick_st_open(st_file("offs.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, -1), &f),
                "data_offsets");
    CHECK_FAILS(wick_st_open("/nonexistent/x.safetensors", &f), "/nonexistent/x.safetensors");
    CHECK(f == NULL, "no handle on failure");
    /* a valid one still opens */
    CHECK_OK(wick_st_open(st_file("ok.st", "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, -1), &f));
    wick_st_close(f);
}

/* A model dir: the golden qwen2_tiny weights with a config.json we write. */
static const char *model_dir(const char *name, const char *config, int truncate_weights) {
    static char dir[512];
    char path[600], src[600];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_bytes(path, config, strlen(config));
    snprintf(src, sizeof src, "%s/golden/qwen2_tiny/model/model.safetensors", WICK_TEST_DIR);
    FILE *f = fopen(src, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n, "read golden");
    fclose(f);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_bytes(path, buf, truncate_weights ? (size_t)n / 2 : (size_t)n);
    free(buf);
    return dir;
}

#define QWEN2_CFG(extra)                                                                                          \
    "{\"model_type\":\"qwen2\",\"vocab_size\":512,\"hidden_size\":64,\"intermediate_size\":176,"                  \
    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"rms_norm_eps\":1e-6,"          \
    "\"tie_word_embeddings\":true" extra "}"

static void model_corpus(void) {
    wick_model *m = NULL;
    CHECK_OK(wick_model_load(model_dir("good", QWEN2_CFG(""), 0), NULL, &m));
    wick_model_free(m);
    m = NULL;
    CHECK_FAILS(wick_model_load(model_dir("trunc", QWEN2_CFG(""), 1), NULL, &m), "model.safetensors");
    CHECK_FAILS(wick_model_load(model_dir("nolayers",
        "{\"model_type\":\"qwen2\",\"vocab_size\":512,\"hidden_size\":64,\"intermediate_size\":176,"
        "\"num_attention_heads\":4}", 0), NULL, &m), "missing field 'num_hidden_layers'");
    CHECK_FAILS(wick_model_load(model_dir("rope", QWEN2_CFG(",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}"), 0), NULL, &m),
                "rope_scaling type 'yarn' is not supported");
    CHECK_FAILS(wick_model_load(model_dir("badjson", "{\"model_type\": qwen2}", 0), NULL, &m), "config.json: invalid JSON");
    CHECK_FAILS(wick_model_load(model_dir("arch", "{\"model_type\":\"gpt2\"}", 0), NULL, &m), "model_type 'gpt2'");
    CHECK_FAILS(wick_model_load(model_dir("shape", QWEN2_CFG(",\"intermediate_size\":170"), 0), NULL, &m),
                "/shape: tensor 'model.layers.0.mlp.gate_proj.weight': shape [176,64], expected [170,64]");
    CHECK_FAILS(wick_model_load(model_dir("act", QWEN2_CFG(",\"hidden_act\":\"gelu\""), 0), NULL, &m), "hidden_act 'gelu'");
    CHECK_FAILS(wick_model_load(model_dir("type", QWEN2_CFG(",\"vocab_size\":\"512\""), 0), NULL, &m), "'vocab_size' must be");
    CHECK_FAILS(wick_model_load(model_dir("head", QWEN2_CFG(",\"tie_word_embeddings\":false"), 0), NULL, &m), "lm_head.weight");
    CHECK_FAILS(wick_model_load(model_dir("gqa", QWEN2_CFG(",\"num_key_value_heads\":3"), 0), NULL, &m), "num_key_value_heads");
    CHECK_FAILS(wick_model_load(model_dir("layers", QWEN2_CFG(",\"num_hidden_layers\":3"), 0), NULL, &m),
                "missing tensor 'model.layers.2");
    CHECK_FAILS(wick_model_load("/nonexistent-dir", NULL, &m), "/nonexistent-dir/config.json");
    CHECK(m == NULL, "no model on failure");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/wick-badinput-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp");
    wick_set_log(NULL, NULL, WICK_LOG_ERROR);
    st_corpus();
    model_corpus();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    CHECK(system(cmd) == 0, "cleanup");
    return t_summary();
}
