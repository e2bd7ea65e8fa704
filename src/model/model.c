/*
 * model.c — loads a Hugging Face decoder checkpoint: config, single-file or
 * sharded safetensors (mmap'd), every weight checked for name, shape and dtype.
 * Linear weights in f32/bf16 stay in the mapping (bf16 stays bf16 unless
 * keep_bf16 is 0); f16 is widened to f32 once; norms and biases become f32.
 */
#include "model/model.h"
#include "model/batch.h"
#include "io/safetensors.h"
#include "backend/cpu/gemm_bf16.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

const char *const wk_proj_names[WK_P_COUNT] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
const char *const wk_proj_parent[WK_P_COUNT] = {"self_attn", "self_attn", "self_attn", "self_attn", "mlp", "mlp", "mlp"};

wick_model_opts wick_model_opts_default(void) {
    wick_model_opts o = {.threads = 0, .keep_bf16 = 1, .device = "cpu"};
    return o;
}

wick_status wk_model_own(wick_model *m, void *p) {
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **n = wk_realloc(m->owned, sizeof(void *) * (size_t)cap, "model buffers");
        if (!n) return WICK_ENOMEM;
        m->owned = n;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return WICK_OK;
}

const wick_tensor_view *wk_model_tensor(const wick_model *m, const char *name) {
    for (int i = 0; i < m->n_files; i++) {
        const wick_tensor_view *v = wk_st_lookup(m->files[i], name);
        if (v) return v;
    }
    return NULL;
}

/* Opens model.safetensors, or every shard listed in model.safetensors.index.json. */
static wick_status open_files(wick_model *m) {
    char path[4096];
    wk_path_join(path, sizeof path, m->dir, "model.safetensors");
    if (wk_file_exists(path)) {
        m->n_files = 1;
        return wick_st_open(path, &m->files[0]);
    }
    wk_path_join(path, sizeof path, m->dir, "model.safetensors.index.json");
    if (!wk_file_exists(path))
        return wk_err(WICK_EIO, "%s: no model.safetensors or model.safetensors.index.json", m->dir);
    json_error_t e;
    json_t *root = json_load_file(path, 0, &e);
    if (!root) return wk_err(WICK_EFORMAT, "%s: invalid JSON: %s (line %d)", path, e.text, e.line);
    json_t *map = json_object_get(root, "weight_map");
    wick_status st = WICK_OK;
    if (!json_is_object(map)) st = wk_err(WICK_EFORMAT, "%s: missing object 'weight_map'", path);
    const char *key;
    json_t *val;
    json_object_foreach(map, key, val) {
        if (st) break;
        const char *shard = json_string_value(val);
        if (!shard || strchr(shard, '/')) {
            st = wk_err(WICK_EFORMAT, "%s: weight_map['%s'] must be a file name in the same directory", path, key);
            break;
        }
        char sp[4096];
        wk_path_join(sp, sizeof sp, m->dir, shard);
        int seen = 0;
        for (int i = 0; i < m->n_files; i++) seen |= !strcmp(wk_st_path(m->files[i]), sp);
        if (seen) continue;
        if (m->n_files == WK_MAX_SHARDS) st = wk_err(WICK_EUNSUPPORTED, "%s: more than %d shards", path, WK_MAX_SHARDS);
        else st = wick_st_open(sp, &m->files[m->n_files++]);
        if (st) m->n_files -= m->files[m->n_files - 1] == NULL;
    }
    json_decref(root);
    return st;
}

/* A weight as found in the checkpoint: safetensors view or GGUF tensor (qtype != 0). */
typedef struct {
    const void *data;
    wick_dtype dt;    /* F32/BF16/F16 when qtype == 0 */
    int qtype;        /* GGUF block-quantized type, 0 = plain */
    int ndim;
    int64_t shape[2]; /* PyTorch order: [out, in] */
    size_t bytes;
} wk_src;

static wick_status need(wick_model *m, const char *name, wk_src *out) {
    memset(out, 0, sizeof *out);
    if (m->gguf) return wk_model_gguf_tensor(m, name, out->shape, &out->ndim, &out->data, &out->dt, &out->qtype, &out->bytes);
    const wick_tensor_view *v = wk_model_tensor(m, name);
    if (!v) return wk_err(WICK_EFORMAT, "%s: missing tensor '%s'", m->dir, name);
    if (v->dtype != WICK_DT_F32 && v->dtype != WICK_DT_BF16 && v->dtype != WICK_DT_F16)
        return wk_err(WICK_EFORMAT, "%s: tensor '%s': dtype %s, expected F32, BF16 or F16", m->dir, name, wick_dtype_name(v->dtype));
    if (v->ndim > 2) return wk_err(WICK_EFORMAT, "%s: tensor '%s': %d dims, expected 1 or 2", m->dir, name, v->ndim);
    out->data = v->data;
    out->dt = v->dtype;
    out->ndim = v->ndim;
    out->shape[0] = v->ndim > 0 ? v->shape[0] : 1;
    out->shape[1] = v->ndim > 1 ? v->shape[1] : 1;
    out->bytes = (size_t)wk_numel(v) * wick_dtype_size(v->dtype);
    return WICK_OK;
}

static wick_status check_shape(wick_model *m, const wk_src *v, int64_t d0, int64_t d1, const char *name) {
    int ok = d1 < 0 ? (v->ndim == 1 && v->shape[0] == d0) : (v->ndim == 2 && v->shape[0] == d0 && v->shape[1] == d1);
    if (ok) return WICK_OK;
    char got[64];
    if (v->ndim == 1) snprintf(got, sizeof got, "%lld", (long long)v->shape[0]);
    else snprintf(got, sizeof got, "%lld,%lld", (long long)v->shape[0], (long long)v->shape[1]);
    if (d1 < 0) return wk_err(WICK_EFORMAT, "%s: tensor '%s': shape [%s], expected [%lld]", m->dir, name, got, (long long)d0);
    return wk_err(WICK_EFORMAT, "%s: tensor '%s': shape [%s], expected [%lld,%lld]", m->dir, name, got, (long long)d0,
                  (long long)d1);
}

/* A 1-D f32 copy of a vector tensor (norm weight, bias). */
static wick_status load_vec(wick_model *m, const char *name, int64_t n, float **out) {
    wk_src v;
    wick_status st = need(m, name, &v);
    if (!st) st = check_shape(m, &v, n, -1, name);
    if (st) return st;
    float *f = wk_malloc(sizeof(float) * (size_t)n, name);
    if (!f) return WICK_ENOMEM;
    st = v.qtype ? wk_model_dequant(v.qtype, v.data, f, n) : wk_to_f32(f, v.data, v.dt, (size_t)n);
    if (!st) st = wk_model_own(m, f);
    else wk_free(f);
    m->n_params += n;
    *out = f;
    return st;
}

/* q/k rows of llama-arch GGUF files are permuted by llama.cpp's converter: undo it. */
static wick_status unpermute(wick_model *m, const char *name, wk_src *v) {
    int is_q = strstr(name, "q_proj.") != NULL;
    if (!m->gguf || (!is_q && !strstr(name, "k_proj.")) || !wk_model_gguf_permuted(m)) return WICK_OK;
    int heads = is_q ? m->c.n_heads : m->c.n_kv_heads;
    void *dst = wk_malloc(v->bytes, name);
    if (!dst) return WICK_ENOMEM;
    wk_model_gguf_unpermute(dst, v->data, heads, v->shape[0], v->bytes / (size_t)v->shape[0]);
    v->data = dst;
    return wk_model_own(m, dst);
}

static wick_status load_mat(wick_model *m, const char *name, int rows, int cols, int keep_bf16, wk_mat *out) {
    wk_src v;
    wick_status st = need(m, name, &v);
    if (!st) st = check_shape(m, &v, rows, cols, name);
    if (!st) st = unpermute(m, name, &v);
    if (st) return st;
    size_t n = (size_t)rows * cols;
    *out = (wk_mat){.w = v.data, .dt = v.dt, .rows = rows, .cols = cols, .qtype = v.qtype};
    m->n_params += (int64_t)n;
    if (m->wdt == WICK_DT_COUNT) m->wdt = v.qtype ? WICK_DT_U8 : v.dt;
    if (m->qtype == 0 && v.qtype && strstr(name, "layers.")) m->qtype = v.qtype;
    if (v.qtype) { /* block-quantized: stays in the mapping, dequantized inside the kernels */
        m->weight_bytes += (int64_t)v.bytes;
        return WICK_OK;
    }
    size_t es = wick_dtype_size(v.dt);
    int keep = (v.dt == WICK_DT_F32 || (v.dt == WICK_DT_BF16 && keep_bf16)) && ((uintptr_t)v.data % es) == 0;
    if (!keep) {
        float *f = wk_malloc(n * sizeof(float), name);
        if (!f) return WICK_ENOMEM;
        wk_to_f32(f, v.data, v.dt, n);
        if ((st = wk_model_own(m, f))) return st;
        out->w = f;
        out->dt = WICK_DT_F32;
    }
    m->weight_bytes += (int64_t)(n * wick_dtype_size(out->dt));
    return WICK_OK;
}

static wick_status load_layer(wick_model *m, int l, int keep) {
    const wk_config *c = &m->c;
    wk_layer *L = &m->layers[l];
    int qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    int rows[WK_P_COUNT] = {qd, kd, kd, c->hidden, c->inter, c->inter, c->hidden};
    int cols[WK_P_COUNT] = {c->hidden, c->hidden, c->hidden, qd, c->hidden, c->hidden, c->inter};
    int has_bias[WK_P_COUNT] = {c->qkv_bias, c->qkv_bias, c->qkv_bias, c->o_bias, c->mlp_bias, c->mlp_bias, c->mlp_bias};
    char name[256];
    wick_status st;
    for (int p = 0; p < WK_P_COUNT; p++) {
        snprintf(name, sizeof name, "model.layers.%d.%s.%s.weight", l, wk_proj_parent[p], wk_proj_names[p]);
        if ((st = load_mat(m, name, rows[p], cols[p], keep, &L->p[p]))) return st;
        if (has_bias[p]) {
            snprintf(name, sizeof name, "model.layers.%d.%s.%s.bias", l, wk_proj_parent[p], wk_proj_names[p]);
            if ((st = load_vec(m, name, rows[p], &L->bias[p]))) return st;
        }
    }
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
    if ((st = load_vec(m, name, c->hidden, &L->attn_norm))) return st;
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
    if ((st = load_vec(m, name, c->hidden, &L->mlp_norm))) return st;
    if (c->qk_norm) {
        snprintf(name, sizeof name, "model.layers.%d.self_attn.q_norm.weight", l);
        if ((st = load_vec(m, name, c->head_dim, &L->q_norm))) return st;
        snprintf(name, sizeof name, "model.layers.%d.self_attn.k_norm.weight", l);
        if ((st = load_vec(m, name, c->head_dim, &L->k_norm))) return st;
    }
    return WICK_OK;
}

/* Loads every weight named by the config. Tensors the config does not use are reported. */
wick_status wk_model_load_weights(wick_model *m, int keep_bf16) {
    const wk_config *c = &m->c;
    wick_status st;
    m->wdt = WICK_DT_COUNT;
    m->layers = wk_calloc(sizeof(wk_layer) * (size_t)c->n_layers, "layers");
    m->inv_freq = wk_malloc(sizeof(float) * (size_t)(c->head_dim / 2), "rope");
    if (!m->layers || !m->inv_freq) return WICK_ENOMEM;
    wk_rope_inv_freq(c, m->inv_freq);
    if ((st = load_mat(m, "model.embed_tokens.weight", c->vocab, c->hidden, keep_bf16, &m->embed))) return st;
    for (int l = 0; l < c->n_layers; l++)
        if ((st = load_layer(m, l, keep_bf16))) return st;
    if ((st = load_vec(m, "model.norm.weight", c->hidden, &m->final_norm))) return st;
    int has_head = m->gguf ? wk_model_gguf_has(m, "lm_head.weight") : wk_model_tensor(m, "lm_head.weight") != NULL;
    if (c->tie_embeddings || !has_head) {
        if (!c->tie_embeddings)
            return wk_err(WICK_EFORMAT, "%s: missing tensor 'lm_head.weight' (tie_word_embeddings is false)", m->dir);
        m->lm_head = m->embed;
    } else if ((st = load_mat(m, "lm_head.weight", c->vocab, c->hidden, keep_bf16, &m->lm_head))) {
        return st;
    }
    return WICK_OK;
}

static wick_status model_finish(wick_model *m, const wick_model_opts *o) {
    if (o->threads > 0) wick_set_threads(o->threads);
    static int warned;
    const char *core = wick_blas_suggested_core();
    if (core && !warned++)
        wk_log(WICK_LOG_WARN, "OpenBLAS uses its generic '%s' kernels on this CPU; start the process with "
               "OPENBLAS_CORETYPE=%s for several times faster matrix products", wick_blas_core(), core);
    return wk_model_to_device(m, o->device);
}

extern wick_status wk_model_attach_tokenizer(wick_model *m);

/* Opts the linear weights (and the head) into the bf16-activation prefill kernel. */
static void mark_fast_bf16(wick_model *m) {
    m->fast_bf16 = 1;
    for (int l = 0; l < m->c.n_layers; l++) {
        wk_layer *L = &m->layers[l];
        for (int p = 0; p < WK_P_COUNT; p++) L->p[p].fast_bf16 = 1;
        L->qkv.fast_bf16 = L->gate_up.fast_bf16 = 1;
    }
    m->lm_head.fast_bf16 = 1;
}

wick_status wick_model_load(const char *dir, const wick_model_opts *opts, wick_model **out) {
    *out = NULL;
    wick_model_opts o = opts ? *opts : wick_model_opts_default();
    if (!dir) return wk_err(WICK_EINVAL, "model: no directory given");
    wick_model *m = wk_calloc(sizeof *m, "model");
    if (!m) return WICK_ENOMEM;
    m->dir = wk_strdup(dir);
    wick_status st = wk_model_is_gguf(dir) ? wk_model_gguf_open(m, dir) : wk_config_load(dir, &m->c);
    if (!st && !m->gguf) st = open_files(m);
    if (!st) st = wk_model_load_weights(m, o.keep_bf16);
    if (!st && o.fast_bf16) mark_fast_bf16(m);
    if (!st && o.fast_bf16 && (!o.device || !strcmp(o.device, "cpu")) && !wk_gemm_bf16_native())
        wk_log(WICK_LOG_INFO, "model: no bf16 kernel for this CPU (AMX or AVX512-BF16); --fast-bf16 keeps exact fp32 products");
    if (!st) st = model_finish(m, &o);
    if (!st) st = wk_model_attach_tokenizer(m);
    if (st) {
        wick_model_free(m);
        return st;
    }
    *out = m;
    return WICK_OK;
}

extern void wk_model_free_extra(wick_model *m);

void wick_model_free(wick_model *m) {
    if (!m) return;
    wk_model_free_extra(m);
    wk_bstate_free(m);
    wk_model_free_device(m);
    wk_model_gguf_close(m);
    for (int i = 0; i < m->n_files; i++) wick_st_close(m->files[i]);
    for (int i = 0; i < m->n_owned; i++) wk_free(m->owned[i]);
    wk_free(m->owned);
    wk_free(m->layers);
    wk_free(m->inv_freq);
    wk_free(m->dir);
    wk_free(m);
}

wick_status wick_model_get_info(const wick_model *m, wick_model_info *o) {
    const wk_config *c = &m->c;
    memset(o, 0, sizeof *o);
    o->arch = c->arch_name;
    o->vocab_size = c->vocab;
    o->hidden_size = c->hidden;
    o->intermediate_size = c->inter;
    o->num_layers = c->n_layers;
    o->num_heads = c->n_heads;
    o->num_kv_heads = c->n_kv_heads;
    o->head_dim = c->head_dim;
    o->max_position = c->max_pos;
    o->rope_theta = c->rope_theta;
    o->rms_eps = c->rms_eps;
    o->tie_embeddings = c->tie_embeddings;
    o->qkv_bias = c->qkv_bias;
    o->qk_norm = c->qk_norm;
    o->weight_dtype = m->wdt == WICK_DT_COUNT ? WICK_DT_F32 : m->wdt;
    o->weight_format = m->qtype ? wk_model_qtype_name(m->qtype) : wick_dtype_name(o->weight_dtype);
    o->n_params = m->n_params;
    o->weight_bytes = m->weight_bytes;
    o->n_eos = c->n_eos;
    memcpy(o->eos_ids, c->eos, sizeof o->eos_ids);
    o->bos_id = c->bos;
    return WICK_OK;
}

wick_tokenizer *wick_model_tokenizer(wick_model *m) { return m ? m->tok : NULL; }
