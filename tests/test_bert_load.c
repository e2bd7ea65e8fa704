/* test_bert_load.c — encoder checkpoint variants and bad checkpoints: the "bert." key
 * prefix with a pooler (ignored), sentence-transformers modules.json / 1_Pooling /
 * sentence_bert_config.json defaults, and config or tensor errors whose messages name
 * the field or tensor. Works on copies of tests/golden/bert_tiny in a temp dir. */
#include "t.h"
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define SRC T_PATH("golden/bert_tiny/model")
static char tmp[256];

static void write_text(const char *dir, const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f) fputs(text, f), fclose(f);
}

static char *config_text(void) {
    FILE *f = fopen(T_PATH("golden/bert_tiny/model/config.json"), "r");
    static char buf[4096];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return buf;
}

/* A config with `from` replaced by `to`. */
static void write_config(const char *dir, const char *from, const char *to) {
    char out[4096], *c = config_text(), *p = strstr(c, from);
    if (!p) snprintf(out, sizeof out, "%s", c);
    else snprintf(out, sizeof out, "%.*s%s%s", (int)(p - c), c, to, p + strlen(from));
    write_text(dir, "config.json", out);
}

/* Copies the tiny model's tensors with a prefix, dropping `skip`, retyping `as_i64`, adding a pooler. */
static void write_model(const char *dir, const char *prefix, const char *skip, const char *as_i64, int pooler) {
    wick_st *f;
    if (wick_st_open(T_PATH("golden/bert_tiny/model/model.safetensors"), &f)) return;
    int n = wick_st_count(f), m = 0;
    wick_tensor_view *t = calloc((size_t)n + 3, sizeof *t);
    char (*names)[128] = calloc((size_t)n + 3, 128);
    static float pw[64 * 64];
    static int64_t pos_ids[64];
    for (int i = 0; i < n; i++) {
        wick_st_get(f, i, &t[m]);
        if (skip && !strcmp(t[m].name, skip)) continue;
        if (as_i64 && !strcmp(t[m].name, as_i64)) t[m].dtype = WICK_DT_I64, t[m].shape[0] /= 2;
        snprintf(names[m], 128, "%s%s", prefix, t[m].name);
        t[m].name = names[m];
        m++;
    }
    if (pooler) {
        snprintf(names[m], 128, "%spooler.dense.weight", prefix);
        t[m++] = (wick_tensor_view){.name = names[m - 1], .dtype = WICK_DT_F32, .ndim = 2, .shape = {64, 64}, .data = pw};
        snprintf(names[m], 128, "%sembeddings.position_ids", prefix);
        t[m++] = (wick_tensor_view){.name = names[m - 1], .dtype = WICK_DT_I64, .ndim = 2, .shape = {1, 64}, .data = pos_ids};
    }
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK_OK(wick_safetensors_write(p, t, m, NULL));
    wick_st_close(f);
    free(t), free(names);
}

static void embed3(const char *dir, float *out, wick_status *st) {
    wick_encoder *e = NULL;
    *st = wick_encoder_load(dir, NULL, &e);
    if (*st) return;
    int32_t a[5] = {2, 17, 99, 150, 3}, b[3] = {2, 42, 3};
    const int32_t *s[2] = {a, b};
    int l[2] = {5, 3};
    *st = wick_embed_ids(e, s, l, 2, NULL, out);
    wick_encoder_free(e);
}

static void test_prefix(void) {
    float ref[128], got[128];
    wick_status st;
    embed3(SRC, ref, &st);
    CHECK_OK(st);
    write_config(tmp, "", "");
    write_model(tmp, "bert.", NULL, NULL, 1);
    embed3(tmp, got, &st);
    CHECK_OK(st);
    CHECK(t_max_abs_diff(ref, got, 128) == 0, "bert. prefix + pooler: same embeddings");
}

static void test_st_files(void) {
    char sub[512];
    snprintf(sub, sizeof sub, "%s/1_Pooling", tmp);
    mkdir(sub, 0755);
    write_text(tmp, "modules.json",
               "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
               "{\"idx\":1,\"name\":\"1\",\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"}]");
    write_text(sub, "config.json", "{\"word_embedding_dimension\":64,\"pooling_mode_cls_token\":true,"
                                   "\"pooling_mode_mean_tokens\":false,\"pooling_mode_max_tokens\":false}");
    write_text(tmp, "sentence_bert_config.json", "{\"max_seq_length\": 8, \"do_lower_case\": false}");
    wick_encoder *e = NULL;
    CHECK_OK(wick_encoder_load(tmp, NULL, &e));
    wick_encoder_info info = {0};
    if (e) wick_encoder_get_info(e, &info);
    CHECK(info.pooling == WICK_POOL_CLS && info.normalize == 0 && info.max_seq_len == 8, "st defaults: pool %d norm %d max %d",
          info.pooling, info.normalize, info.max_seq_len);
    wick_encoder_free(e);
    write_text(sub, "config.json", "{\"pooling_mode_cls_token\":true,\"pooling_mode_mean_tokens\":true}");
    CHECK_FAILS(wick_encoder_load(tmp, NULL, &e), "exactly one of pooling_mode_mean_tokens");
    char p[600];
    snprintf(p, sizeof p, "%s/modules.json", tmp), unlink(p);
    snprintf(p, sizeof p, "%s/sentence_bert_config.json", tmp), unlink(p);
    snprintf(p, sizeof p, "%s/config.json", sub), unlink(p);
    rmdir(sub);
}

static void test_bad(void) {
    wick_encoder *e = NULL;
    write_model(tmp, "", NULL, NULL, 0);
    write_config(tmp, "\"gelu\"", "\"relu\"");
    CHECK_FAILS(wick_encoder_load(tmp, NULL, &e), "hidden_act relu is not supported");
    write_config(tmp, "\"num_attention_heads\": 4,", "");
    CHECK_FAILS(wick_encoder_load(tmp, NULL, &e), "missing field 'num_attention_heads'");
    write_config(tmp, "\"num_attention_heads\": 4", "\"num_attention_heads\": 5");
    CHECK_FAILS(wick_encoder_load(tmp, NULL, &e), "not a multiple of num_attention_heads 5");
    write_config(tmp, "\"model_type\": \"bert\"", "\"model_type\": \"roberta\"");
    CHECK_FAILS(wick_encoder_load(tmp, NULL, &e), "model_type \"roberta\"");
    write_config(tmp, "\"intermediate_size\": 128", "\"intermediate_size\": 100");
    CHECK_FAILS(wick_encoder_load(tmp, NULL, &e), "tensor 'encoder.layer.0.intermediate.dense.weight': shape [128,64], expected [100,64]");
    write_config(tmp, "", "");
    write_model(tmp, "", "encoder.layer.1.output.LayerNorm.bias", NULL, 0);
    CHECK_FAILS(wick_encoder_load(tmp, NULL, &e), "missing tensor 'encoder.layer.1.output.LayerNorm.bias'");
    write_model(tmp, "", NULL, "encoder.layer.0.attention.self.key.bias", 0);
    CHECK_FAILS(wick_encoder_load(tmp, NULL, &e), "'encoder.layer.0.attention.self.key.bias': dtype I64");
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors", tmp), unlink(p);
    CHECK_FAILS(wick_encoder_load(tmp, NULL, &e), "model.safetensors: file not found");
    snprintf(p, sizeof p, "%s/config.json", tmp), unlink(p);
    CHECK_FAILS(wick_encoder_load(tmp, NULL, &e), "config.json: file not found");
    CHECK(e == NULL, "no handle on failure");
}

/* Text input through a small WordPiece tokenizer.json equals the ids path. */
static void test_text(void) {
    write_config(tmp, "", "");
    write_model(tmp, "", NULL, NULL, 0);
    wick_encoder *e = NULL;
    CHECK_OK(wick_encoder_load(tmp, NULL, &e));
    if (!e) return;
    const char *texts[2] = {"Hello WORLD.", "hello"};
    float a[128], b[128];
    CHECK_FAILS(wick_embed_texts(e, texts, 2, NULL, a), "tokenizer.json: file not found");
    write_text(tmp, "tokenizer.json",
               "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":0,\"content\":\"[PAD]\",\"special\":true},"
               "{\"id\":1,\"content\":\"[UNK]\",\"special\":true},{\"id\":2,\"content\":\"[CLS]\",\"special\":true},"
               "{\"id\":3,\"content\":\"[SEP]\",\"special\":true}],"
               "\"normalizer\":{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,"
               "\"strip_accents\":null,\"lowercase\":true},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},"
               "\"post_processor\":{\"type\":\"BertProcessing\",\"sep\":[\"[SEP]\",3],\"cls\":[\"[CLS]\",2]},"
               "\"decoder\":{\"type\":\"WordPiece\",\"prefix\":\"##\",\"cleanup\":true},"
               "\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\","
               "\"max_input_chars_per_word\":100,\"vocab\":{\"[PAD]\":0,\"[UNK]\":1,\"[CLS]\":2,\"[SEP]\":3,"
               "\"hello\":4,\"wor\":5,\"##ld\":6,\".\":7}}}");
    CHECK_OK(wick_embed_texts(e, texts, 2, NULL, a));
    int32_t s0[6] = {2, 4, 5, 6, 7, 3}, s1[3] = {2, 4, 3};
    const int32_t *s[2] = {s0, s1};
    int l[2] = {6, 3};
    CHECK_OK(wick_embed_ids(e, s, l, 2, NULL, b));
    CHECK(t_max_abs_diff(a, b, 128) == 0, "texts == ids [CLS] hello wor ##ld . [SEP]");
    int32_t *ids = NULL;
    int n = 0;
    CHECK_OK(wick_encoder_tokenize(e, "", 0, &ids, &n));
    CHECK(n == 2 && ids && ids[0] == 2 && ids[1] == 3, "empty text -> [CLS] [SEP] (n=%d)", n);
    wick_free(ids);
    wick_encoder_free(e);
    char p[600];
    snprintf(p, sizeof p, "%s/tokenizer.json", tmp), unlink(p);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/wick_bert_load_XXXXXX");
    if (!mkdtemp(tmp)) return perror("mkdtemp"), 1;
    test_prefix();
    test_st_files();
    test_text();
    test_bad();
    rmdir(tmp);
    return t_summary();
}
