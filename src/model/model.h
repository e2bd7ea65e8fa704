/*
 * model.h — the decoder model's internal layout: config, weights (mmap'd where
 * possible), the backend that runs it, and the per-sequence session state.
 */
#ifndef WK_MODEL_H
#define WK_MODEL_H
#include "backend/backend.h"
#include "model/config.h"

#define WK_MAX_SHARDS 256

typedef enum { WK_P_Q, WK_P_K, WK_P_V, WK_P_O, WK_P_GATE, WK_P_UP, WK_P_DOWN, WK_P_COUNT } wk_proj;
extern const char *const wk_proj_names[WK_P_COUNT];   /* "q_proj", ... */
extern const char *const wk_proj_parent[WK_P_COUNT];  /* "self_attn" or "mlp" */

typedef struct {
    float *attn_norm, *mlp_norm;   /* (C) */
    float *q_norm, *k_norm;        /* (D) Qwen3 only */
    wk_mat p[WK_P_COUNT];          /* q (H*D, C), k/v (Hk*D, C), o (C, H*D), gate/up (F, C), down (C, F) */
    float *bias[WK_P_COUNT];       /* q/k/v biases (Qwen2), o (attention_bias), mlp biases; NULL when absent */
    /* Device backends: q/k/v rows and gate/up rows uploaded back to back, so one product
     * serves a decode step (p[] point into these). w == NULL when not fused. */
    wk_mat qkv;                    /* (H*D + 2*Hk*D, C) */
    float *qkv_bias;               /* (H*D + 2*Hk*D) or NULL */
    wk_mat gate_up;                /* (2F, C) */
    float *gate_up_bias;           /* (2F) or NULL */
} wk_layer;

struct wick_model {
    wk_config c;
    char *dir;
    wk_backend *be;
    wick_st *files[WK_MAX_SHARDS];
    int n_files;
    wk_mat embed;        /* (V, C) */
    wk_mat lm_head;      /* (V, C); equals embed when tied */
    float *final_norm;   /* (C) */
    wk_layer *layers;    /* (L) */
    void **owned;        /* buffers converted at load (f16 → f32, norms, misaligned data) */
    int n_owned, cap_owned;
    float *inv_freq;     /* (D/2) RoPE inverse frequencies */
    wick_tokenizer *tok;
    int64_t n_params, weight_bytes;
    wick_dtype wdt;
    int fast_bf16;       /* wick_model_opts.fast_bf16: the weights' wk_mat.fast_bf16 are set */
    void *gguf;          /* the GGUF file when loaded from one (owned) */
    int qtype;           /* GGUF quant type of the linear weights (0 = none) */
    void **dev;          /* (n_dev) device buffers of the uploaded weights (owned, freed via be) */
    int n_dev, cap_dev;
    float *host_inv_freq; /* the host inv_freq while m->inv_freq names the device copy */
    unsigned weights_gen; /* bumped when weight pointers change (device merge/unmerge): captured graphs go stale */
    struct wk_bstate *bst; /* the batched decode step's device buffers and graphs (batch_device.c), NULL until used */
};

/* One LoRA pair for a projection: y += scale * (x·Aᵀ)·Bᵀ. A == NULL: not adapted. */
typedef struct {
    float *A;   /* (r, in) */
    float *B;   /* (out, r) */
    int r;
    float scale;
} wk_lora;

/* Returns the adapter's pair for layer l / projection p, or NULL. Defined in src/lora. */
const wk_lora *wk_adapter_pair(const wick_adapter *a, int l, wk_proj p);
/* A layer's LoRA for a group of projections that read the same input and write one row
 * back to back (device decode: q|k|v, o, gate|up, down): A (ra, in) = the adapted pairs'
 * A stacked; B (sum of the group's out, ra) block-diagonal, each pair's rows times its
 * scale. ra == 0: nothing in the group is adapted. A16, B16: the same rounded to bf16 on a
 * bf16 model (the batched step's rows read half the bytes), else NULL. */
typedef struct {
    const float *A, *B;
    const void *A16, *B16;
    int ra;
} wk_lora_group;
enum { WK_G_QKV, WK_G_O, WK_G_GU, WK_G_DOWN, WK_G_COUNT };

/* The adapter in a device backend's memory: *pairs = (n_layers, WK_P_COUNT) entries (A == NULL:
 * not adapted) and *groups = (n_layers, WK_G_COUNT), uploaded at the first call for that
 * (adapter, backend) and kept until the adapter is freed; thread-safe. Host backends: both
 * NULL (use wk_adapter_pair). groups may be NULL. Defined in src/lora/adapter_device.c. */
wick_status wk_adapter_pairs_on(const wick_adapter *a, wk_backend *be, const wk_lora **pairs,
                                const wk_lora_group **groups);
/* The batched step's entries of a on be (backend.h: wk_bent; (n_layers, WK_G_COUNT) of them in
 * be's memory, from the grouped layout), made at the first call and kept with the device copy,
 * which a refresh rewrites in place: a row of any step points at them. NULL on host backends.
 * Thread-safe. Defined in src/lora/adapter_device.c. */
wick_status wk_adapter_bents_on(const wick_adapter *a, wk_backend *be, const wk_bent **bents);
/* 1 unless WICK_LORA_F32=1 (for comparisons): batched decode rows on a bf16 model may read bf16
 * copies of the adapters (wk_adapter_bf16, the device groups' A16/B16). adapter_device.c. */
int wk_lora16_enabled(void);
/* The bf16 copy of a's A/B values from p on (p: in a host pair of a, wk_adapter_pair): A (r, in)
 * as it is, B in tiles of 16 outputs (backend.h: lora_seg16, wk_lora_tiles16). The copies of every A and B are made
 * at the first call and remade when a trainer changed them since; NULL when out of memory (read
 * the f32 ones). Thread-safe. Defined in src/lora/adapter_device.c. */
const uint16_t *wk_adapter_bf16(const wick_adapter *a, const float *p);
/* Marks a's host A/B as changed (a trainer stepped or synced): device copies are refreshed
 * at the next wk_adapter_pairs_on. NULL is fine. Defined in src/lora/adapter_device.c. */
void wk_adapter_touch(wick_adapter *a);
/* The model an adapter is bound to (NULL for one opened for inspection only). Defined in src/lora. */
const wick_model *wk_adapter_model(const wick_adapter *a);

/* Adds an owned buffer to the model (freed with it). */
wick_status wk_model_own(wick_model *m, void *p);

/* Chooses the backend for device "cpu", "cuda" or "cuda:N" and uploads the weights
 * for a device backend (model_device.c). */
wick_status wk_model_to_device(wick_model *m, const char *device);
/* Frees the device copies (before the host buffers). */
void wk_model_free_device(wick_model *m);

/* Finds a tensor by name in the model's files (NULL when absent). */
const wick_tensor_view *wk_model_tensor(const wick_model *m, const char *name);
/* GGUF checkpoints (model_gguf.c). */
int wk_model_is_gguf(const char *path);                       /* a .gguf file */
wick_status wk_model_gguf_open(wick_model *m, const char *path); /* opens, fills m->c */
void wk_model_gguf_close(wick_model *m);
int wk_model_gguf_has(const wick_model *m, const char *hf_name);
int wk_model_gguf_permuted(const wick_model *m);
void wk_model_gguf_unpermute(void *dst, const void *src, int heads, int64_t rows, size_t row_bytes);
/* Looks up the tensor for an HF name: shape in PyTorch order, plain dtype or qtype. */
wick_status wk_model_gguf_tensor(const wick_model *m, const char *hf_name, int64_t shape[2], int *ndim,
                                 const void **data, wick_dtype *dt, int *qtype, size_t *bytes);
wick_status wk_model_dequant(int qtype, const void *src, float *dst, int64_t n);
const char *wk_model_qtype_name(int qtype);
size_t wk_model_qrow_bytes(int qtype, int64_t n); /* bytes of a quantized row of n elements */
int wk_gguf_has_tokenizer(const void *gguf);
#endif
