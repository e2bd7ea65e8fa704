/*
 * gguf_convert.c — wick_gguf_quantize: writes a llama.cpp-compatible GGUF file
 * from a Hugging Face checkpoint (config.json + model.safetensors or a sharded
 * index) or re-quantizes an existing GGUF file (metadata, tokenizer included, is
 * copied).
 *
 * Names and metadata follow convert_hf_to_gguf.py: general.architecture ("llama"
 * for Llama and Mistral checkpoints, "qwen2", "qwen3"), {arch}.* hyperparameters,
 * llama.cpp tensor names, q_proj/k_proj rows permuted for "llama" (see gguf_arch.c).
 * 2-D weights get the requested type; 1-D tensors (norms, biases) stay F32 as in
 * llama.cpp. A row length that the type's block does not divide falls back to Q8_0
 * (Q4_K needs multiples of 256), then to F16, and the fallback is logged.
 * No tokenizer metadata is written for HF input.
 */
#include "gguf.h"
#include "backend/cpu/quant.h"
#include "io/safetensors.h"
#include "model/config.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_FILES 64

typedef struct {
    wk_gguf_writer *w;
    int type;            /* target ggml type for 2-D weights */
    void **bufs;         /* converted tensor data, freed after writing */
    int n_bufs, cap_bufs;
} conv;

static wick_status keep_buf(conv *c, void *p) {
    if (c->n_bufs == c->cap_bufs) {
        int cap = c->cap_bufs ? 2 * c->cap_bufs : 64;
        void **n = wk_realloc(c->bufs, (size_t)cap * sizeof *n, "converted tensors");
        if (!n) { wk_free(p); return WICK_ENOMEM; }
        c->bufs = n;
        c->cap_bufs = cap;
    }
    c->bufs[c->n_bufs++] = p;
    return WICK_OK;
}

/* Type for a 2-D weight with rows of `in` elements. */
static int pick_type(int want, int64_t in, const char *name) {
    int t = want;
    if (!wk_qtype_row_bytes(t, in)) t = WK_Q_Q8_0;
    if (!wk_qtype_row_bytes(t, in)) t = WK_Q_F16;
    if (t != want) wk_log(WICK_LOG_INFO, "%s: row length %lld not a multiple of %s's block; stored as %s", name,
                          (long long)in, wk_qtype_name(want), wk_qtype_name(t));
    return t;
}

/* Quantizes f32 data [rows, in] (or keeps F32 for 1-D) and adds it as a tensor. Takes f. */
static wick_status add_f32(conv *c, const char *name, float *f, int ndim, int64_t rows, int64_t in) {
    int t = ndim == 1 ? WK_Q_F32 : pick_type(c->type, in, name);
    size_t rb = wk_qtype_row_bytes(t, in), nb = rb * (size_t)rows;
    uint8_t *q = t == WK_Q_F32 ? (uint8_t *)f : wk_malloc(nb ? nb : 1, name);
    wick_status st = q ? WICK_OK : WICK_ENOMEM;
    if (!st && t != WK_Q_F32) { /* rows are independent: quantize them in parallel (sizes were checked above) */
#pragma omp parallel for schedule(dynamic, 16)
        for (int64_t r = 0; r < rows; r++) wk_quantize_row(t, f + r * in, q + r * rb, in);
    }
    if (q != (uint8_t *)f) wk_free(f);
    if (st) { if (q != (uint8_t *)f) wk_free(q); return st; }
    if ((st = keep_buf(c, q))) return st;
    int64_t ne[2] = {in, rows};
    return wk_gguf_w_tensor(c->w, name, t, ndim, ne, q, nb);
}

/* ---------------------------------------------------------- HF checkpoint */
static wick_status open_shards(const char *dir, wick_st **files, int *n) {
    char path[4096];
    wk_path_join(path, sizeof path, dir, "model.safetensors");
    if (wk_file_exists(path)) { *n = 1; return wick_st_open(path, &files[0]); }
    wk_path_join(path, sizeof path, dir, "model.safetensors.index.json");
    json_error_t e;
    json_t *root = json_load_file(path, 0, &e), *map = json_object_get(root, "weight_map"), *val;
    if (!json_is_object(map)) {
        json_decref(root);
        return wk_err(WICK_EIO, "%s: no model.safetensors, nor an index with a 'weight_map'", dir);
    }
    const char *key;
    wick_status st = WICK_OK;
    json_object_foreach(map, key, val) {
        const char *shard = json_string_value(val);
        char sp[4096];
        if (!shard || strchr(shard, '/')) { st = wk_err(WICK_EFORMAT, "%s: weight_map['%s'] is not a file name", path, key); break; }
        wk_path_join(sp, sizeof sp, dir, shard);
        bool seen = false;
        for (int i = 0; i < *n; i++) seen |= !strcmp(wk_st_path(files[i]), sp);
        if (seen) continue;
        if (*n == MAX_FILES) { st = wk_err(WICK_EUNSUPPORTED, "%s: more than %d shards", path, MAX_FILES); break; }
        if ((st = wick_st_open(sp, &files[*n]))) break;
        (*n)++;
    }
    json_decref(root);
    return st;
}

/* llama.cpp's llama_ftype for a file whose main weight type is t. */
static uint32_t llama_ftype(int t) {
    return t == WK_Q_F32 ? 0 : t == WK_Q_F16 ? 1 : t == WK_Q_Q4_0 ? 2 : t == WK_Q_Q4_1 ? 3 : t == WK_Q_Q8_0 ? 7
         : t == WK_Q_Q5_0 ? 8 : t == WK_Q_Q5_1 ? 9 : t == WK_Q_Q4_K ? 14 : 32;
}

static wick_status write_hf_meta(wk_gguf_writer *w, const wk_config *cf, const char *arch, const char *dir, int type) {
    char k[128];
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    wick_status st = wk_gguf_w_str(w, "general.architecture", arch);
    if (!st) st = wk_gguf_w_str(w, "general.name", base);
    if (!st) st = wk_gguf_w_u32(w, "general.file_type", llama_ftype(type));
    if (!st) st = wk_gguf_w_u32(w, "general.quantization_version", 2);
    struct { const char *s; int v; } ints[] = {
        {"context_length", cf->max_pos}, {"embedding_length", cf->hidden}, {"block_count", cf->n_layers},
        {"feed_forward_length", cf->inter}, {"attention.head_count", cf->n_heads}, {"attention.head_count_kv", cf->n_kv_heads},
        {"attention.key_length", cf->head_dim}, {"attention.value_length", cf->head_dim}, {"rope.dimension_count", cf->head_dim},
        {"vocab_size", cf->vocab}};
    for (size_t i = 0; i < WK_ARRAY_LEN(ints) && !st; i++) {
        snprintf(k, sizeof k, "%s.%s", arch, ints[i].s);
        st = wk_gguf_w_u32(w, k, (uint32_t)ints[i].v);
    }
    snprintf(k, sizeof k, "%s.rope.freq_base", arch);
    if (!st) st = wk_gguf_w_f32(w, k, cf->rope_theta);
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", arch);
    if (!st) st = wk_gguf_w_f32(w, k, cf->rms_eps);
    if (!st && cf->rope_type == WK_ROPE_LINEAR) {
        snprintf(k, sizeof k, "%s.rope.scaling.type", arch);
        st = wk_gguf_w_str(w, k, "linear");
        snprintf(k, sizeof k, "%s.rope.scaling.factor", arch);
        if (!st) st = wk_gguf_w_f32(w, k, cf->rope_factor);
    }
    if (!st && cf->bos >= 0) st = wk_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)cf->bos);
    if (!st && cf->n_eos > 0) st = wk_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)cf->eos[0]);
    return st;
}

/* Converts one HF tensor (name already mapped to gguf). */
static wick_status convert_hf_tensor(conv *c, const wk_config *cf, const char *arch, const char *gname,
                                     const wick_tensor_view *v) {
    if (v->ndim != 1 && v->ndim != 2)
        return wk_err(WICK_EUNSUPPORTED, "tensor '%s': %d dimensions (1 or 2 expected)", v->name, v->ndim);
    int64_t rows = v->ndim == 2 ? v->shape[0] : 1, in = v->shape[v->ndim - 1], n = rows * in;
    float *f = wk_malloc((size_t)n * sizeof(float), v->name);
    if (!f) return WICK_ENOMEM;
    wick_status st = wk_to_f32(f, v->data, v->dtype, (size_t)n);
    if (st) { wk_free(f); return wk_err_prefix(st, "tensor '%s'", v->name); }
    const char *suffix = strchr(gname, '.') ? strchr(strchr(gname, '.') + 1, '.') : NULL;
    bool is_q = suffix && !strncmp(suffix, ".attn_q.", 8), is_k = suffix && !strncmp(suffix, ".attn_k.", 8);
    if ((is_q || is_k) && wk_gguf_arch_permutes_qk(arch)) {
        int heads = is_q ? cf->n_heads : cf->n_kv_heads;
        int64_t prow = v->ndim == 2 ? rows : in; /* biases: one element per row */
        if (prow != (int64_t)heads * cf->head_dim) {
            wk_free(f);
            return wk_err(WICK_EFORMAT, "tensor '%s': %lld rows, expected %d heads x %d", v->name, (long long)prow, heads, cf->head_dim);
        }
        float *p = wk_malloc((size_t)n * sizeof(float), v->name);
        if (!p) { wk_free(f); return WICK_ENOMEM; }
        wk_gguf_permute_rows(p, f, heads, prow, (size_t)(n / prow) * sizeof(float), true);
        wk_free(f);
        f = p;
    }
    return add_f32(c, gname, f, v->ndim, rows, in);
}

static wick_status convert_hf(conv *c, const char *dir) {
    wk_config cf;
    wick_status st = wk_config_load(dir, &cf);
    if (st) return st;
    if (cf.rope_type == WK_ROPE_LLAMA3 || cf.o_bias || cf.mlp_bias)
        return wk_err(WICK_EUNSUPPORTED, "%s: llama3 rope scaling and o_proj/mlp biases are not supported by the GGUF converter", dir);
    const char *arch = cf.arch == WK_ARCH_QWEN2 ? "qwen2" : cf.arch == WK_ARCH_QWEN3 ? "qwen3" : "llama";
    if ((st = write_hf_meta(c->w, &cf, arch, dir, c->type))) return st;
    wick_st *files[MAX_FILES] = {0};
    int nf = 0;
    st = open_shards(dir, files, &nf);
    for (int i = 0; i < nf && !st; i++) {
        for (int j = 0; j < wick_st_count(files[i]) && !st; j++) {
            wick_tensor_view v;
            if ((st = wick_st_get(files[i], j, &v))) break;
            char gname[256];
            if (strstr(v.name, "rotary_emb.inv_freq") || (cf.tie_embeddings && !strcmp(v.name, "lm_head.weight"))) continue;
            if (!wk_gguf_name_from_hf(v.name, gname, sizeof gname))
                st = wk_err(WICK_EUNSUPPORTED, "%s: tensor '%s' has no GGUF name", wk_st_path(files[i]), v.name);
            else
                st = convert_hf_tensor(c, &cf, arch, gname, &v);
        }
    }
    for (int i = 0; i < nf; i++) wick_st_close(files[i]);
    return st;
}

/* ---------------------------------------------------------- GGUF input */
static wick_status convert_gguf(conv *c, const char *path, const char *out_path) {
    wk_gguf *g;
    wick_status st = wk_gguf_open(path, &g);
    if (st) return st;
    for (int64_t i = 0; i < wk_gguf_kv_count(g) && !st; i++) {
        const wk_gguf_kv *kv = wk_gguf_kv_at(g, i);
        if (!strcmp(kv->key, "general.alignment")) continue;
        if (!strcmp(kv->key, "general.file_type")) st = wk_gguf_w_u32(c->w, kv->key, llama_ftype(c->type));
        else st = wk_gguf_w_val(c->w, kv->key, &kv->val);
    }
    for (int64_t i = 0; i < wk_gguf_tensor_count(g) && !st; i++) {
        const wk_gguf_tensor *t = wk_gguf_tensor_at(g, i);
        if (t->ndim > 2 || !wk_qtype_can_dequant(t->type) || (t->ndim == 1 && t->type == WK_Q_F32)) {
            st = wk_gguf_w_tensor(c->w, t->name, t->type, t->ndim, t->ne, t->data, t->nbytes);
            continue;
        }
        float *f = wk_malloc((size_t)t->nelem * sizeof(float), t->name);
        if (!f) { st = WICK_ENOMEM; break; }
        if ((st = wk_dequant_row(t->type, t->data, f, t->nelem))) { wk_free(f); break; }
        st = add_f32(c, t->name, f, t->ndim, t->ndim == 2 ? t->ne[1] : 1, t->ne[0]);
    }
    /* the writer borrows tensors copied as they are from the mapping: write before closing */
    if (!st) st = wk_gguf_writer_write(c->w, out_path);
    wk_gguf_close(g);
    return st;
}

static bool is_gguf_file(const char *path) {
    FILE *f = fopen(path, "rb");
    char m[4] = {0};
    bool yes = f && fread(m, 1, 4, f) == 4 && !memcmp(m, "GGUF", 4);
    if (f) fclose(f);
    return yes;
}

wick_status wick_gguf_quantize(const char *src, const char *type, const char *out_path) {
    wk_qtype t;
    if (!src || !type || !out_path) return wk_err(WICK_EINVAL, "gguf quantize: src, type and output path are required");
    if (!wk_qtype_parse(type, &t) || !wk_qtype_can_quantize(t))
        return wk_err(WICK_EINVAL, "--type '%s' not supported (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k)", type);
    conv c = {.type = t};
    wick_status st = wk_gguf_writer_new(0, &c.w);
    if (!st) {
        if (is_gguf_file(src)) st = convert_gguf(&c, src, out_path);
        else if ((st = convert_hf(&c, src)) == WICK_OK) st = wk_gguf_writer_write(c.w, out_path);
    }
    wk_gguf_writer_free(c.w);
    for (int i = 0; i < c.n_bufs; i++) wk_free(c.bufs[i]);
    wk_free(c.bufs);
    return st;
}
