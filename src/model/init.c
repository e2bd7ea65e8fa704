/*
 * init.c — writes random-weight models in Hugging Face layout (config.json,
 * generation_config.json, model.safetensors) from a preset with the real shapes
 * of public checkpoints, or from a given config.json. Weights are N(0, initializer_range)
 * (norm weights 1 + small noise, biases small), seeded per tensor name so the
 * result does not depend on the write order. The file is streamed: a 7B model
 * never needs to fit in memory.
 */
#include "io/safetensors.h"
#include "model/config.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

typedef struct {
    const char *name, *arch, *json;
} preset;

static const preset presets[] = {
    {"qwen2.5-0.5b", "qwen2",
     "{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\",\"vocab_size\":151936,\"hidden_size\":896,"
     "\"intermediate_size\":4864,\"num_hidden_layers\":24,\"num_attention_heads\":14,\"num_key_value_heads\":2,"
     "\"max_position_embeddings\":32768,\"rope_theta\":1000000.0,\"rms_norm_eps\":1e-06,\"tie_word_embeddings\":true,"
     "\"hidden_act\":\"silu\",\"bos_token_id\":151643,\"eos_token_id\":151645}"},
    {"qwen2.5-1.5b", "qwen2",
     "{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\",\"vocab_size\":151936,\"hidden_size\":1536,"
     "\"intermediate_size\":8960,\"num_hidden_layers\":28,\"num_attention_heads\":12,\"num_key_value_heads\":2,"
     "\"max_position_embeddings\":32768,\"rope_theta\":1000000.0,\"rms_norm_eps\":1e-06,\"tie_word_embeddings\":true,"
     "\"hidden_act\":\"silu\",\"bos_token_id\":151643,\"eos_token_id\":151645}"},
    {"qwen2.5-7b", "qwen2",
     "{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\",\"vocab_size\":152064,\"hidden_size\":3584,"
     "\"intermediate_size\":18944,\"num_hidden_layers\":28,\"num_attention_heads\":28,\"num_key_value_heads\":4,"
     "\"max_position_embeddings\":32768,\"rope_theta\":1000000.0,\"rms_norm_eps\":1e-06,\"tie_word_embeddings\":false,"
     "\"hidden_act\":\"silu\",\"bos_token_id\":151643,\"eos_token_id\":151645}"},
    {"qwen3-0.6b", "qwen3",
     "{\"architectures\":[\"Qwen3ForCausalLM\"],\"model_type\":\"qwen3\",\"vocab_size\":151936,\"hidden_size\":1024,"
     "\"intermediate_size\":3072,\"num_hidden_layers\":28,\"num_attention_heads\":16,\"num_key_value_heads\":8,"
     "\"head_dim\":128,\"max_position_embeddings\":40960,\"rope_theta\":1000000,\"rms_norm_eps\":1e-06,"
     "\"tie_word_embeddings\":true,\"hidden_act\":\"silu\",\"attention_bias\":false,\"bos_token_id\":151643,"
     "\"eos_token_id\":151645}"},
    {"llama-3.2-1b", "llama",
     "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":128256,\"hidden_size\":2048,"
     "\"intermediate_size\":8192,\"num_hidden_layers\":16,\"num_attention_heads\":32,\"num_key_value_heads\":8,"
     "\"head_dim\":64,\"max_position_embeddings\":131072,\"rope_theta\":500000.0,\"rope_scaling\":{\"factor\":32.0,"
     "\"high_freq_factor\":4.0,\"low_freq_factor\":1.0,\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"},"
     "\"rms_norm_eps\":1e-05,\"tie_word_embeddings\":true,\"hidden_act\":\"silu\",\"attention_bias\":false,"
     "\"mlp_bias\":false,\"bos_token_id\":128000,\"eos_token_id\":[128001,128008,128009]}"},
    {"tiny", "qwen2",
     "{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\",\"vocab_size\":512,\"hidden_size\":64,"
     "\"intermediate_size\":176,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
     "\"max_position_embeddings\":1024,\"rope_theta\":1000000.0,\"rms_norm_eps\":1e-06,\"tie_word_embeddings\":true,"
     "\"hidden_act\":\"silu\"}"},
    {"wick-demo", "qwen2",
     "{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\",\"vocab_size\":512,\"hidden_size\":256,"
     "\"intermediate_size\":768,\"num_hidden_layers\":4,\"num_attention_heads\":8,\"num_key_value_heads\":2,"
     "\"max_position_embeddings\":2048,\"rope_theta\":10000.0,\"rms_norm_eps\":1e-06,\"tie_word_embeddings\":true,"
     "\"hidden_act\":\"silu\",\"eos_token_id\":258,\"initializer_range\":0.08}"},
    {"e5-small", "bert",
     "{\"architectures\":[\"BertModel\"],\"model_type\":\"bert\",\"vocab_size\":30522,\"hidden_size\":384,"
     "\"intermediate_size\":1536,\"num_hidden_layers\":12,\"num_attention_heads\":12,\"max_position_embeddings\":512,"
     "\"type_vocab_size\":2,\"layer_norm_eps\":1e-12,\"hidden_act\":\"gelu\",\"pad_token_id\":0,"
     "\"position_embedding_type\":\"absolute\"}"},
    {"bert-tiny", "bert",
     "{\"architectures\":[\"BertModel\"],\"model_type\":\"bert\",\"vocab_size\":300,\"hidden_size\":64,"
     "\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"max_position_embeddings\":64,"
     "\"type_vocab_size\":2,\"layer_norm_eps\":1e-12,\"hidden_act\":\"gelu\",\"pad_token_id\":0}"},
};

typedef struct {
    char name[128];
    int64_t d0, d1; /* d1 < 0: vector */
    int kind;       /* 0 weight N(0,σ), 1 norm weight ~1, 2 bias / small */
} spec;

typedef struct {
    spec *s;
    int n, cap;
    wick_dtype dt;
    uint64_t seed;
    float std; /* weights ~ N(0, std): the config's initializer_range (default 0.02, as HF) */
} plan;

static wick_status add(plan *p, int kind, int64_t d0, int64_t d1, const char *fmt, int l, const char *a, const char *b) {
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 256;
        spec *ns = wk_realloc(p->s, sizeof(spec) * (size_t)cap, "init plan");
        if (!ns) return WICK_ENOMEM;
        p->s = ns;
        p->cap = cap;
    }
    spec *s = &p->s[p->n++];
    snprintf(s->name, sizeof s->name, fmt, l, a, b);
    s->d0 = d0;
    s->d1 = d1;
    s->kind = kind;
    return WICK_OK;
}

static wick_status plan_decoder(plan *p, const wk_config *c) {
    int qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    int rows[7] = {qd, kd, kd, c->hidden, c->inter, c->inter, c->hidden};
    int cols[7] = {c->hidden, c->hidden, c->hidden, qd, c->hidden, c->hidden, c->inter};
    static const char *par[7] = {"self_attn", "self_attn", "self_attn", "self_attn", "mlp", "mlp", "mlp"};
    static const char *nm[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    wick_status st = add(p, 0, c->vocab, c->hidden, "model.embed_tokens.weight%.0d%s%s", 0, "", "");
    for (int l = 0; l < c->n_layers && !st; l++) {
        st = add(p, 1, c->hidden, -1, "model.layers.%d.input_layernorm.weight%s%s", l, "", "");
        if (!st) st = add(p, 1, c->hidden, -1, "model.layers.%d.post_attention_layernorm.weight%s%s", l, "", "");
        for (int j = 0; j < 7 && !st; j++) {
            st = add(p, 0, rows[j], cols[j], "model.layers.%d.%s.%s.weight", l, par[j], nm[j]);
            int bias = j < 3 ? c->qkv_bias : j == 3 ? c->o_bias : c->mlp_bias;
            if (!st && bias) st = add(p, 2, rows[j], -1, "model.layers.%d.%s.%s.bias", l, par[j], nm[j]);
        }
        if (!st && c->qk_norm) st = add(p, 1, c->head_dim, -1, "model.layers.%d.self_attn.q_norm.weight%s%s", l, "", "");
        if (!st && c->qk_norm) st = add(p, 1, c->head_dim, -1, "model.layers.%d.self_attn.k_norm.weight%s%s", l, "", "");
    }
    if (!st) st = add(p, 1, c->hidden, -1, "model.norm.weight%.0d%s%s", 0, "", "");
    if (!st && !c->tie_embeddings) st = add(p, 0, c->vocab, c->hidden, "lm_head.weight%.0d%s%s", 0, "", "");
    return st;
}

static wick_status bert_int(json_t *r, const char *k, int *v) {
    json_t *j = json_object_get(r, k);
    if (!json_is_integer(j) || json_integer_value(j) <= 0) return wk_err(WICK_EFORMAT, "bert config: field '%s' must be a positive integer", k);
    *v = (int)json_integer_value(j);
    return WICK_OK;
}

static wick_status plan_bert(plan *p, const char *json_text) {
    json_t *r = json_loads(json_text, 0, NULL);
    int V = 0, C = 0, F = 0, L = 0, P = 0, TV = 2;
    wick_status st = r ? WICK_OK : wk_err(WICK_EFORMAT, "bert config: invalid JSON");
    if (!st) st = bert_int(r, "vocab_size", &V);
    if (!st) st = bert_int(r, "hidden_size", &C);
    if (!st) st = bert_int(r, "intermediate_size", &F);
    if (!st) st = bert_int(r, "num_hidden_layers", &L);
    if (!st) st = bert_int(r, "max_position_embeddings", &P);
    if (!st && json_object_get(r, "type_vocab_size")) st = bert_int(r, "type_vocab_size", &TV);
    json_decref(r);
    if (st) return st;
    static const char *emb[3] = {"word", "position", "token_type"};
    int64_t rows[3] = {V, P, TV};
    for (int i = 0; i < 3 && !st; i++) st = add(p, 0, rows[i], C, "embeddings.%.0d%s_embeddings.weight%s", 0, emb[i], "");
    if (!st) st = add(p, 1, C, -1, "embeddings.LayerNorm.weight%.0d%s%s", 0, "", "");
    if (!st) st = add(p, 2, C, -1, "embeddings.LayerNorm.bias%.0d%s%s", 0, "", "");
    static const char *lin[6] = {"attention.self.query", "attention.self.key", "attention.self.value",
                                 "attention.output.dense", "intermediate.dense", "output.dense"};
    for (int l = 0; l < L && !st; l++) {
        for (int j = 0; j < 6 && !st; j++) {
            int64_t o = j == 4 ? F : C, in = j == 5 ? F : C;
            st = add(p, 0, o, in, "encoder.layer.%d.%s.weight%s", l, lin[j], "");
            if (!st) st = add(p, 2, o, -1, "encoder.layer.%d.%s.bias%s", l, lin[j], "");
        }
        static const char *ln[2] = {"attention.output.LayerNorm", "output.LayerNorm"};
        for (int j = 0; j < 2 && !st; j++) {
            st = add(p, 1, C, -1, "encoder.layer.%d.%s.weight%s", l, ln[j], "");
            if (!st) st = add(p, 2, C, -1, "encoder.layer.%d.%s.bias%s", l, ln[j], "");
        }
    }
    return st;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Deterministic standard normal for element k of a tensor (Box-Muller on a counter hash). */
static float normal_at(uint64_t key, size_t k) {
    uint64_t x = key ^ ((uint64_t)k * 0x2545f4914f6cdd1dull);
    uint64_t a = splitmix(&x), b = splitmix(&x);
    double u1 = ((a >> 11) + 1.0) * (1.0 / 9007199254740993.0), u2 = (b >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2 * M_PI * u2));
}

static wick_status fill(void *user, int i, void *buf, size_t off, size_t n) {
    plan *p = user;
    const spec *s = &p->s[i];
    uint64_t key = hash_str(s->name) ^ (p->seed * 0x9e3779b97f4a7c15ull);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t k = 0; k < n; k++) {
        float z = normal_at(key, off + k);
        float v = s->kind == 0 ? p->std * z : s->kind == 1 ? 1.f + 0.1f * z : 0.02f * z;
        if (p->dt == WICK_DT_BF16) ((uint16_t *)buf)[k] = wk_f32_to_bf16(v);
        else if (p->dt == WICK_DT_F16) ((uint16_t *)buf)[k] = wk_f32_to_f16(v);
        else ((float *)buf)[k] = v;
    }
    return WICK_OK;
}

static wick_status write_text(const char *dir, const char *name, const char *text) {
    char path[4096], tmp[4200];
    wk_path_join(path, sizeof path, dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return wk_err(WICK_EIO, "%s: %s", tmp, strerror(errno));
    int ok = fputs(text, f) >= 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) return wk_err(WICK_EIO, "%s: write failed: %s", path, strerror(errno));
    return WICK_OK;
}

/* config.json as written: the preset/config fields plus dtype. */
static wick_status write_config(const char *dir, const char *json_text, wick_dtype dt) {
    json_t *r = json_loads(json_text, 0, NULL);
    if (!r) return wk_err(WICK_EFORMAT, "config: invalid JSON");
    json_object_set_new(r, "torch_dtype", json_string(dt == WICK_DT_BF16 ? "bfloat16" : dt == WICK_DT_F16 ? "float16" : "float32"));
    char *s = json_dumps(r, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_t *gen = json_object();
    json_t *eos = json_object_get(r, "eos_token_id"), *bos = json_object_get(r, "bos_token_id");
    if (eos) json_object_set(gen, "eos_token_id", eos);
    if (bos) json_object_set(gen, "bos_token_id", bos);
    char *g = json_dumps(gen, JSON_INDENT(2));
    json_decref(r);
    json_decref(gen);
    wick_status st = (s && g) ? write_text(dir, "config.json", s) : WICK_ENOMEM;
    if (!st) st = write_text(dir, "generation_config.json", g);
    free(s);
    free(g);
    return st;
}

wick_status wick_init_model(const char *arch, const char *preset_name, const char *config_path, wick_dtype dt,
                            uint64_t seed, const char *out_dir) {
    if (dt != WICK_DT_F32 && dt != WICK_DT_BF16 && dt != WICK_DT_F16)
        return wk_err(WICK_EINVAL, "init-model: dtype must be f32, bf16 or f16");
    char *text = NULL;
    const char *json_text = NULL;
    wick_status st = WICK_OK;
    if (preset_name) {
        for (size_t i = 0; i < WK_ARRAY_LEN(presets); i++)
            if (!strcmp(presets[i].name, preset_name)) {
                json_text = presets[i].json;
                if (arch && strcmp(arch, presets[i].arch))
                    return wk_err(WICK_EINVAL, "init-model: preset '%s' is a %s model, not %s", preset_name, presets[i].arch, arch);
                arch = presets[i].arch;
            }
        if (!json_text) {
            char list[512] = "";
            for (size_t i = 0; i < WK_ARRAY_LEN(presets); i++) strcat(strcat(list, i ? ", " : ""), presets[i].name);
            return wk_err(WICK_EINVAL, "init-model: unknown preset '%s' (known: %s)", preset_name, list);
        }
    } else if (config_path) {
        if ((st = wk_read_file(config_path, &text, NULL))) return st;
        json_text = text;
    } else {
        return wk_err(WICK_EINVAL, "init-model: give a preset or a config file");
    }
    if (!arch) arch = "qwen2";
    plan p = {.dt = dt, .seed = seed, .std = 0.02f};
    json_t *jr = json_loads(json_text, 0, NULL);
    json_t *ir = json_object_get(jr, "initializer_range");
    if (json_is_number(ir) && json_number_value(ir) > 0) p.std = (float)json_number_value(ir);
    json_decref(jr);
    if (!strcmp(arch, "bert")) {
        st = plan_bert(&p, json_text);
    } else {
        wk_config c;
        st = wk_config_parse(json_text, config_path ? config_path : preset_name, &c);
        if (!st && strcmp(c.arch_name, arch) && !(strcmp(arch, "llama") == 0 && c.arch == WK_ARCH_MISTRAL))
            st = wk_err(WICK_EINVAL, "init-model: --arch %s but the config describes a %s model", arch, c.arch_name);
        if (!st) st = plan_decoder(&p, &c);
    }
    if (!st && mkdir(out_dir, 0755) != 0 && errno != EEXIST) st = wk_err(WICK_EIO, "%s: %s", out_dir, strerror(errno));
    if (!st) st = write_config(out_dir, json_text, dt);
    wick_tensor_view *views = st ? NULL : wk_calloc(sizeof *views * (size_t)p.n, "init views");
    if (!st && !views) st = WICK_ENOMEM;
    for (int i = 0; !st && i < p.n; i++) {
        views[i].name = p.s[i].name;
        views[i].dtype = dt;
        views[i].ndim = p.s[i].d1 < 0 ? 1 : 2;
        views[i].shape[0] = p.s[i].d0;
        views[i].shape[1] = p.s[i].d1;
    }
    if (!st) {
        char path[4096];
        wk_path_join(path, sizeof path, out_dir, "model.safetensors");
        st = wk_st_write_stream(path, views, p.n, "{\"format\":\"pt\"}", fill, &p);
    }
    wk_free(views);
    wk_free(p.s);
    wk_free(text);
    return st;
}

/* ------------------------------------------------------------ byte tokenizer */

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100.. */
static int byte_char(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return b;
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) n++;
    return 256 + n;
}

static const char chatml_template[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

static json_t *added(int id, const char *content) {
    return json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", id, "content", content, "single_word", 0, "lstrip", 0,
                     "rstrip", 0, "normalized", 0, "special", 1);
}

wick_status wick_write_byte_tokenizer(const char *dir) {
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        char u[8];
        int c = byte_char(b), n = 0;
        if (c < 0x80) u[n++] = (char)c;
        else u[n++] = (char)(0xc0 | (c >> 6)), u[n++] = (char)(0x80 | (c & 0x3f));
        u[n] = 0;
        json_object_set_new(vocab, u, json_integer(b));
    }
    static const char *specials[3] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    json_t *add = json_array();
    for (int i = 0; i < 3; i++) {
        json_object_set_new(vocab, specials[i], json_integer(256 + i));
        json_array_append_new(add, added(256 + i, specials[i]));
    }
    json_t *bl = json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 1);
    json_t *tok = json_pack("{s:s,s:n,s:n,s:o,s:n,s:O,s:O,s:O,s:{s:s,s:n,s:n,s:n,s:n,s:b,s:b,s:b,s:o,s:[]}}",
                            "version", "1.0", "truncation", "padding", "added_tokens", add, "normalizer",
                            "pre_tokenizer", bl, "post_processor", bl, "decoder", bl, "model", "type", "BPE",
                            "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0,
                            "byte_fallback", 0, "ignore_merges", 0, "vocab", vocab, "merges");
    json_decref(bl);
    json_t *cfg = json_pack("{s:s,s:s,s:s,s:n,s:b,s:s}", "chat_template", chatml_template, "eos_token", "<|im_end|>",
                            "pad_token", "<|endoftext|>", "bos_token", "add_bos_token", 0, "tokenizer_class",
                            "PreTrainedTokenizerFast");
    char *a = tok ? json_dumps(tok, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
    char *b = cfg ? json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(tok);
    json_decref(cfg);
    wick_status st = (a && b) ? write_text(dir, "tokenizer.json", a) : wk_err(WICK_ENOMEM, "tokenizer: cannot build JSON");
    if (!st) st = write_text(dir, "tokenizer_config.json", b);
    free(a);
    free(b);
    return st;
}
