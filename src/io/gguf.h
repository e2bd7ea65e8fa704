/*
 * gguf.h — GGUF files (llama.cpp's model format), internal API.
 *
 * File layout (all little-endian; spec: ggml/docs/gguf.md):
 *   u32 magic "GGUF" | u32 version (2 or 3) | u64 tensor_count | u64 kv_count
 *   kv_count × { string key; u32 value_type; value }
 *   tensor_count × { string name; u32 n_dims; u64 ne[n_dims]; u32 ggml_type; u64 offset }
 *   padding to general.alignment (default 32) | tensor data (offsets relative to here)
 *   string = u64 length + bytes (no NUL); array value = u32 elem_type, u64 n, n elements
 *   (elements may themselves be strings or arrays).
 * ne[0] is the contiguous (innermost) dimension: a PyTorch weight [out,in] has ne = {in, out}.
 *
 * The reader mmaps the file, validates everything before returning (counts, string
 * lengths, value types, nesting, alignment, tensor types, sizes, offsets inside the
 * file and non-overlapping; all arithmetic overflow-checked) and copies metadata into
 * one allocation; tensor data stays in the read-only mapping.
 */
#ifndef WK_GGUF_H
#define WK_GGUF_H
#include "wk.h"
#include "model/config.h"

typedef enum {
    WK_GGUF_U8 = 0, WK_GGUF_I8 = 1, WK_GGUF_U16 = 2, WK_GGUF_I16 = 3, WK_GGUF_U32 = 4,
    WK_GGUF_I32 = 5, WK_GGUF_F32 = 6, WK_GGUF_BOOL = 7, WK_GGUF_STRING = 8, WK_GGUF_ARRAY = 9,
    WK_GGUF_U64 = 10, WK_GGUF_I64 = 11, WK_GGUF_F64 = 12, WK_GGUF_NTYPES
} wk_gguf_type;

#define WK_GGUF_DEFAULT_ALIGNMENT 32

/* One metadata value. Strings are NUL-terminated copies (len excludes the NUL). */
typedef struct wk_gguf_val {
    wk_gguf_type type;
    wk_gguf_type elem;          /* ARRAY: element type */
    uint64_t n;                 /* ARRAY: element count; else 1 */
    const uint8_t *raw;         /* scalar or array of fixed-size elements: the bytes in the file */
    const char **str;           /* STRING: str[0]; ARRAY of STRING: str[0..n) */
    const uint64_t *str_len;    /* lengths matching str */
    struct wk_gguf_val *items;  /* ARRAY of ARRAY: n nested values */
} wk_gguf_val;

typedef struct {
    const char *key;
    wk_gguf_val val;
} wk_gguf_kv;

typedef struct {
    const char *name;
    int type;          /* ggml type (wk_qtype) */
    int ndim;          /* 1..4 */
    int64_t ne[4];     /* ne[0] innermost; unused dims are 1 */
    int64_t nelem;
    uint64_t offset;   /* from the start of the data section */
    size_t nbytes;
    const void *data;  /* in the read-only mapping */
} wk_gguf_tensor;

typedef struct wk_gguf wk_gguf;

/* Opens, mmaps and fully validates a GGUF file. */
wick_status wk_gguf_open(const char *path, wk_gguf **out);
void wk_gguf_close(wk_gguf *g); /* NULL is fine */

const char *wk_gguf_path(const wk_gguf *g);
uint32_t wk_gguf_version(const wk_gguf *g);
uint32_t wk_gguf_alignment(const wk_gguf *g);
int64_t wk_gguf_kv_count(const wk_gguf *g);
const wk_gguf_kv *wk_gguf_kv_at(const wk_gguf *g, int64_t i);
int64_t wk_gguf_tensor_count(const wk_gguf *g);
const wk_gguf_tensor *wk_gguf_tensor_at(const wk_gguf *g, int64_t i);

/* Lookup; NULL when absent (no error set). */
const wk_gguf_val *wk_gguf_find(const wk_gguf *g, const char *key);
const wk_gguf_tensor *wk_gguf_find_tensor(const wk_gguf *g, const char *name);

/* Typed getters. Missing key or an incompatible type -> WICK_EFORMAT naming file and key.
 * get_int accepts every integer type (and bool); get_uint additionally rejects negatives;
 * get_float accepts F32/F64 and integers. */
wick_status wk_gguf_get_int(const wk_gguf *g, const char *key, int64_t *out);
wick_status wk_gguf_get_uint(const wk_gguf *g, const char *key, uint64_t *out);
wick_status wk_gguf_get_float(const wk_gguf *g, const char *key, double *out);
wick_status wk_gguf_get_bool(const wk_gguf *g, const char *key, bool *out);
wick_status wk_gguf_get_str(const wk_gguf *g, const char *key, const char **out);
/* An ARRAY value whose elements have type elem (WK_GGUF_NTYPES = any). */
wick_status wk_gguf_get_arr(const wk_gguf *g, const char *key, wk_gguf_type elem, const wk_gguf_val **out);

/* Element i of a numeric array (or the scalar when v is not an array) as int64 / double. */
int64_t wk_gguf_val_int(const wk_gguf_val *v, uint64_t i);
double wk_gguf_val_float(const wk_gguf_val *v, uint64_t i);
/* Bytes of one element of a fixed-size type; 0 for STRING/ARRAY or unknown. */
size_t wk_gguf_type_size(int t);
const char *wk_gguf_type_name(int t);

/* ---- writer (gguf_write.c): builds metadata + tensor list, writes atomically */
typedef struct wk_gguf_writer wk_gguf_writer;

/* New writer; alignment 0 = 32. A non-default alignment is also recorded as general.alignment. */
wick_status wk_gguf_writer_new(uint32_t alignment, wk_gguf_writer **out);
void wk_gguf_writer_free(wk_gguf_writer *w);
/* Adds a scalar of fixed-size type t read from *val (native little-endian). Duplicate keys -> EINVAL. */
wick_status wk_gguf_w_scalar(wk_gguf_writer *w, const char *key, wk_gguf_type t, const void *val);
wick_status wk_gguf_w_u32(wk_gguf_writer *w, const char *key, uint32_t v);
wick_status wk_gguf_w_f32(wk_gguf_writer *w, const char *key, float v);
wick_status wk_gguf_w_bool(wk_gguf_writer *w, const char *key, bool v);
wick_status wk_gguf_w_str(wk_gguf_writer *w, const char *key, const char *s);
/* Array of n fixed-size elements of type elem. */
wick_status wk_gguf_w_arr(wk_gguf_writer *w, const char *key, wk_gguf_type elem, const void *data, uint64_t n);
wick_status wk_gguf_w_arr_str(wk_gguf_writer *w, const char *key, const char *const *s, uint64_t n);
/* Array of n arrays of strings: inner i has lens[i] strings s[i][0..lens[i]). */
wick_status wk_gguf_w_arr_arr_str(wk_gguf_writer *w, const char *key, const char *const *const *s,
                                  const uint64_t *lens, uint64_t n);
/* Copies a value read from another file (any type, nested arrays included). */
wick_status wk_gguf_w_val(wk_gguf_writer *w, const char *key, const wk_gguf_val *v);
/* Adds a tensor; ne in ggml order (ne[0] innermost). data (nbytes, which must match the
 * type and shape) is borrowed until wk_gguf_writer_write returns. */
wick_status wk_gguf_w_tensor(wk_gguf_writer *w, const char *name, int type, int ndim, const int64_t *ne,
                             const void *data, size_t nbytes);
/* Writes the file atomically (temp file in the same directory, fsync, rename). */
wick_status wk_gguf_writer_write(wk_gguf_writer *w, const char *path);

/* ---- architectures (gguf_arch.c) */
typedef struct {
    char arch[16];          /* "llama", "qwen2", "qwen3" */
    int vocab_size, hidden_size, intermediate_size, num_layers;
    int num_heads, num_kv_heads, head_dim, max_position;
    float rope_theta, rms_eps;
    int tie_embeddings;     /* no output.weight tensor */
    int qkv_bias;           /* blk.0.attn_q.bias present */
    int qk_norm;            /* blk.0.attn_q_norm.weight present */
    int bos_id, eos_id;     /* -1 when absent */
} wk_gguf_config;

/* Reads {arch}.* metadata (and the token list for the vocabulary size) into cfg. */
wick_status wk_gguf_read_config(const wk_gguf *g, wk_gguf_config *cfg);

/* Fills the decoder's wk_config (model/config.h) from a GGUF file: wk_gguf_read_config
 * plus o/mlp biases, eos (+ eot) ids and linear rope scaling; llama3/yarn scaling
 * -> WICK_EUNSUPPORTED. */
wick_status wk_gguf_to_config(const wk_gguf *g, wk_config *c);

/* True when llama.cpp's converter permutes the rows of q/k weights for this architecture
 * (convert_hf_to_gguf.py LlamaModel.permute: "llama" and "mistral"; not Qwen2/Qwen3). */
bool wk_gguf_arch_permutes_qk(const char *arch);

/* Maps a GGUF tensor name to the Hugging Face name ("blk.3.attn_q.weight" ->
 * "model.layers.3.self_attn.q_proj.weight"). Returns false for unknown names. */
bool wk_gguf_name_to_hf(const char *gguf, char *buf, size_t cap);
/* The inverse mapping. Returns false for unknown names. */
bool wk_gguf_name_from_hf(const char *hf, char *buf, size_t cap);

/* Row permutation of llama.cpp's converter for q (n_head) or k (n_head_kv) weights or
 * biases of rows = n_head·head_dim rows of row_bytes each: within each head, HF's
 * [first half | second half] rotary layout becomes interleaved pairs. to_gguf=true
 * applies it (HF -> GGUF), false undoes it (GGUF -> HF). dst and src must not alias. */
void wk_gguf_permute_rows(void *dst, const void *src, int n_head, int64_t rows, size_t row_bytes, bool to_gguf);

/* The GGUF tensor holding HF tensor hf, and its data in HF row order, still in its
 * stored (possibly quantized) type: for q/k weights and biases of archs whose
 * converter permutes them, *data is an un-permuted copy owned by the caller (*owned,
 * free with wk_free); otherwise *data points into the mapping and *owned is NULL. */
wick_status wk_gguf_hf_tensor(const wk_gguf *g, const wk_gguf_config *c, const char *hf, const wk_gguf_tensor **t,
                              const void **data, void **owned);
#endif
