/*
 * gguf_arch.c — what GGUF files of decoder LMs mean in Hugging Face terms:
 * architecture metadata -> config fields, llama.cpp tensor names <-> HF names, and
 * the Q/K row permutation of llama.cpp's converter.
 *
 * Permutation: convert_hf_to_gguf.py's LlamaModel (arch "llama", also used for
 * Mistral checkpoints) reorders the rows of q_proj (n_head heads) and k_proj
 * (n_head_kv heads) so that, within each head of head_dim rows, HF row a·hd/2 + b
 * (a ∈ {0,1}: first/second rotary half) becomes GGUF row 2b + a — interleaved pairs
 * for ggml's "normal" RoPE. Qwen2Model and Qwen3Model do not permute (ggml uses
 * NEOX-style RoPE for them), so their weights are stored in HF row order.
 */
#include "gguf.h"
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    const char *gguf, *hf;
} name_pair;

static const name_pair g_global[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};
/* Per-layer suffixes after "blk.N." / "model.layers.N.". */
static const name_pair g_layer[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};

/* Parses "<prefix><digits>." at the start of s; returns the rest or NULL. */
static const char *layer_prefix(const char *s, const char *prefix, long *layer) {
    size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) != 0 || s[n] < '0' || s[n] > '9') return NULL;
    char *end;
    *layer = strtol(s + n, &end, 10);
    if (*end != '.' || *layer > 1000000) return NULL;
    return end + 1;
}

static bool map_name(const char *in, char *buf, size_t cap, bool to_hf) {
    for (size_t i = 0; i < WK_ARRAY_LEN(g_global); i++)
        if (strcmp(in, to_hf ? g_global[i].gguf : g_global[i].hf) == 0)
            return (size_t)snprintf(buf, cap, "%s", to_hf ? g_global[i].hf : g_global[i].gguf) < cap;
    long l;
    const char *rest = layer_prefix(in, to_hf ? "blk." : "model.layers.", &l);
    if (!rest) return false;
    for (size_t i = 0; i < WK_ARRAY_LEN(g_layer); i++)
        if (strcmp(rest, to_hf ? g_layer[i].gguf : g_layer[i].hf) == 0)
            return (size_t)snprintf(buf, cap, "%s%ld.%s", to_hf ? "model.layers." : "blk.", l,
                                    to_hf ? g_layer[i].hf : g_layer[i].gguf) < cap;
    return false;
}

bool wk_gguf_name_to_hf(const char *gguf, char *buf, size_t cap) { return map_name(gguf, buf, cap, true); }
bool wk_gguf_name_from_hf(const char *hf, char *buf, size_t cap) { return map_name(hf, buf, cap, false); }

bool wk_gguf_arch_permutes_qk(const char *arch) { return strcmp(arch, "llama") == 0 || strcmp(arch, "mistral") == 0; }

void wk_gguf_permute_rows(void *dst, const void *src, int n_head, int64_t rows, size_t row_bytes, bool to_gguf) {
    int64_t hd = rows / n_head, half = hd / 2;
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t a = 0; a < 2; a++)
            for (int64_t b = 0; b < half; b++) {
                int64_t g = h * hd + 2 * b + a, f = h * hd + a * half + b;
                int64_t d = to_gguf ? g : f, s = to_gguf ? f : g;
                memcpy((uint8_t *)dst + (size_t)d * row_bytes, (const uint8_t *)src + (size_t)s * row_bytes, row_bytes);
            }
}

/* Reads "{arch}.{suffix}" as a positive int (optional: keeps *out when absent). */
static wick_status arch_int(const wk_gguf *g, const char *arch, const char *suffix, int *out, bool optional) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (optional && !wk_gguf_find(g, key)) return WICK_OK;
    int64_t v;
    wick_status st = wk_gguf_get_int(g, key, &v);
    if (st) return st;
    if (v <= 0 || v > INT32_MAX)
        return wk_err(WICK_EFORMAT, "%s: metadata key '%s' = %lld, expected a positive 32-bit integer", wk_gguf_path(g), key, (long long)v);
    *out = (int)v;
    return WICK_OK;
}
static wick_status arch_float(const wk_gguf *g, const char *arch, const char *suffix, float *out, bool optional) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (optional && !wk_gguf_find(g, key)) return WICK_OK;
    double v;
    wick_status st = wk_gguf_get_float(g, key, &v);
    if (st) return st;
    if (!(v > 0)) return wk_err(WICK_EFORMAT, "%s: metadata key '%s' = %g, expected a positive number", wk_gguf_path(g), key, v);
    *out = (float)v;
    return WICK_OK;
}

/* Vocabulary size: {arch}.vocab_size, else the token list, else token_embd.weight's rows. */
static wick_status read_vocab(const wk_gguf *g, wk_gguf_config *c) {
    wick_status st = arch_int(g, c->arch, "vocab_size", &c->vocab_size, true);
    if (st || c->vocab_size) return st;
    const wk_gguf_val *v = wk_gguf_find(g, "tokenizer.ggml.tokens");
    if (v && v->type == WK_GGUF_ARRAY && v->n > 0 && v->n <= INT32_MAX) c->vocab_size = (int)v->n;
    const wk_gguf_tensor *e = wk_gguf_find_tensor(g, "token_embd.weight");
    if (!c->vocab_size && e && e->ndim == 2 && e->ne[1] <= INT32_MAX) c->vocab_size = (int)e->ne[1];
    if (!c->vocab_size)
        return wk_err(WICK_EFORMAT, "%s: no vocabulary size (%s.vocab_size, tokenizer.ggml.tokens and token_embd.weight all missing)",
                      wk_gguf_path(g), c->arch);
    return WICK_OK;
}

static int opt_token_id(const wk_gguf *g, const char *key) {
    int64_t v;
    if (!wk_gguf_find(g, key) || wk_gguf_get_int(g, key, &v) || v < 0 || v > INT32_MAX) return -1;
    return (int)v;
}

static wick_status check_config(const wk_gguf *g, const wk_gguf_config *c) {
    const char *p = wk_gguf_path(g);
    if (c->num_heads % c->num_kv_heads)
        return wk_err(WICK_EFORMAT, "%s: %s.attention.head_count = %d is not a multiple of head_count_kv = %d", p, c->arch,
                      c->num_heads, c->num_kv_heads);
    if (wk_gguf_arch_permutes_qk(c->arch) && c->head_dim % 2)
        return wk_err(WICK_EFORMAT, "%s: head dimension %d is odd (RoPE needs it even)", p, c->head_dim);
    const wk_gguf_tensor *e = wk_gguf_find_tensor(g, "token_embd.weight");
    if (!e) return wk_err(WICK_EFORMAT, "%s: tensor 'token_embd.weight' missing", p);
    if (e->ndim != 2 || e->ne[0] != c->hidden_size || e->ne[1] != c->vocab_size)
        return wk_err(WICK_EFORMAT, "%s: tensor 'token_embd.weight' has ne [%lld, %lld], expected [%d, %d] (hidden, vocab)", p,
                      (long long)e->ne[0], (long long)e->ne[1], c->hidden_size, c->vocab_size);
    return WICK_OK;
}

wick_status wk_gguf_read_config(const wk_gguf *g, wk_gguf_config *c) {
    memset(c, 0, sizeof *c);
    const char *arch;
    wick_status st = wk_gguf_get_str(g, "general.architecture", &arch);
    if (st) return st;
    if (strcmp(arch, "llama") && strcmp(arch, "qwen2") && strcmp(arch, "qwen3"))
        return wk_err(WICK_EUNSUPPORTED, "%s: general.architecture '%s' not supported (llama, qwen2, qwen3)", wk_gguf_path(g), arch);
    snprintf(c->arch, sizeof c->arch, "%s", arch);
    c->rope_theta = 10000.f;
    c->max_position = 2048;
    if ((st = arch_int(g, arch, "block_count", &c->num_layers, false)) ||
        (st = arch_int(g, arch, "embedding_length", &c->hidden_size, false)) ||
        (st = arch_int(g, arch, "feed_forward_length", &c->intermediate_size, false)) ||
        (st = arch_int(g, arch, "attention.head_count", &c->num_heads, false)) ||
        (st = arch_int(g, arch, "context_length", &c->max_position, true)) ||
        (st = arch_float(g, arch, "attention.layer_norm_rms_epsilon", &c->rms_eps, false)) ||
        (st = arch_float(g, arch, "rope.freq_base", &c->rope_theta, true)))
        return st;
    c->num_kv_heads = c->num_heads;
    c->head_dim = c->hidden_size / c->num_heads;
    if ((st = arch_int(g, arch, "attention.head_count_kv", &c->num_kv_heads, true)) ||
        (st = arch_int(g, arch, "attention.key_length", &c->head_dim, true)) || (st = read_vocab(g, c)))
        return st;
    c->tie_embeddings = wk_gguf_find_tensor(g, "output.weight") == NULL;
    c->qkv_bias = wk_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
    c->qk_norm = wk_gguf_find_tensor(g, "blk.0.attn_q_norm.weight") != NULL;
    c->bos_id = opt_token_id(g, "tokenizer.ggml.bos_token_id");
    c->eos_id = opt_token_id(g, "tokenizer.ggml.eos_token_id");
    return check_config(g, c);
}

wick_status wk_gguf_hf_tensor(const wk_gguf *g, const wk_gguf_config *c, const char *hf, const wk_gguf_tensor **t,
                              const void **data, void **owned) {
    char name[256];
    *t = NULL;
    *data = *owned = NULL;
    if (!wk_gguf_name_from_hf(hf, name, sizeof name))
        return wk_err(WICK_EINVAL, "%s: no GGUF name for tensor '%s'", wk_gguf_path(g), hf);
    if (!(*t = wk_gguf_find_tensor(g, name)))
        return wk_err(WICK_EFORMAT, "%s: tensor '%s' (%s) missing", wk_gguf_path(g), name, hf);
    *data = (*t)->data;
    bool q = strstr(name, ".attn_q.") != NULL, k = strstr(name, ".attn_k.") != NULL;
    if (!(q || k) || !wk_gguf_arch_permutes_qk(c->arch)) return WICK_OK;
    int heads = q ? c->num_heads : c->num_kv_heads;
    int64_t rows = (*t)->ndim == 2 ? (*t)->ne[1] : (*t)->ne[0];
    if (rows != (int64_t)heads * c->head_dim || ((*t)->ndim == 1 && (*t)->type != 0))
        return wk_err(WICK_EFORMAT, "%s: tensor '%s' has %lld rows, expected %d heads x %d", wk_gguf_path(g), name,
                      (long long)rows, heads, c->head_dim);
    void *p = wk_malloc((*t)->nbytes, name);
    if (!p) return WICK_ENOMEM;
    wk_gguf_permute_rows(p, (*t)->data, heads, rows, (*t)->nbytes / (size_t)rows, false);
    *data = *owned = p;
    return WICK_OK;
}

/* Rope scaling keys: "linear" maps to WK_ROPE_LINEAR; llama3-style (rope_freqs.weight) and yarn are refused. */
static wick_status read_rope_scaling(const wk_gguf *g, const char *arch, wk_config *c) {
    char key[128];
    const char *type = "none";
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (wk_gguf_find(g, key) && wk_gguf_get_str(g, key, &type)) return WICK_EFORMAT;
    if (wk_gguf_find_tensor(g, "rope_freqs.weight") || (strcmp(type, "none") && strcmp(type, "linear")))
        return wk_err(WICK_EUNSUPPORTED, "%s: rope scaling '%s'%s not supported (none, linear)", wk_gguf_path(g), type,
                      wk_gguf_find_tensor(g, "rope_freqs.weight") ? " with rope_freqs.weight" : "");
    if (!strcmp(type, "linear")) {
        double f;
        snprintf(key, sizeof key, "%s.rope.scaling.factor", arch);
        if (wk_gguf_get_float(g, key, &f)) return WICK_EFORMAT;
        c->rope_type = WK_ROPE_LINEAR;
        c->rope_factor = (float)f;
    }
    return WICK_OK;
}

wick_status wk_gguf_to_config(const wk_gguf *g, wk_config *c) {
    wk_gguf_config gc;
    wick_status st = wk_gguf_read_config(g, &gc);
    if (st) return st;
    memset(c, 0, sizeof *c);
    c->arch = !strcmp(gc.arch, "qwen2") ? WK_ARCH_QWEN2 : !strcmp(gc.arch, "qwen3") ? WK_ARCH_QWEN3 : WK_ARCH_LLAMA;
    c->arch_name = c->arch == WK_ARCH_QWEN2 ? "qwen2" : c->arch == WK_ARCH_QWEN3 ? "qwen3" : "llama";
    c->vocab = gc.vocab_size;
    c->hidden = gc.hidden_size;
    c->inter = gc.intermediate_size;
    c->n_layers = gc.num_layers;
    c->n_heads = gc.num_heads;
    c->n_kv_heads = gc.num_kv_heads;
    c->head_dim = gc.head_dim;
    c->max_pos = gc.max_position;
    c->rope_theta = gc.rope_theta;
    c->rms_eps = gc.rms_eps;
    c->rope_type = WK_ROPE_DEFAULT;
    c->rope_factor = 1.f;
    c->tie_embeddings = gc.tie_embeddings;
    c->qkv_bias = gc.qkv_bias;
    c->o_bias = wk_gguf_find_tensor(g, "blk.0.attn_output.bias") != NULL;
    c->mlp_bias = wk_gguf_find_tensor(g, "blk.0.ffn_up.bias") != NULL;
    c->qk_norm = gc.qk_norm;
    c->bos = gc.bos_id;
    if (gc.eos_id >= 0) c->eos[c->n_eos++] = gc.eos_id;
    int64_t eot;
    if (wk_gguf_find(g, "tokenizer.ggml.eot_token_id") && !wk_gguf_get_int(g, "tokenizer.ggml.eot_token_id", &eot) &&
        eot >= 0 && eot <= INT32_MAX && eot != gc.eos_id)
        c->eos[c->n_eos++] = (int)eot;
    return read_rope_scaling(g, gc.arch, c);
}
