/*
 * adapter.h — internal layout of a LoRA adapter (wick_adapter) and of the PEFT
 * adapter_config.json it comes from. One adapter holds, for every (layer,
 * projection) it adapts, A (r,in) and B (out,r) in f32, all carved from one
 * allocation, plus the per-pair rank and scale (rank_pattern/alpha_pattern and
 * rsLoRA resolved at load). The training code reads and writes A/B in place.
 */
#ifndef WK_LORA_ADAPTER_H
#define WK_LORA_ADAPTER_H
#include "model/model.h"

#include <jansson.h>

/* One adapted projection. lp.A == NULL: this (layer, projection) is not adapted. */
typedef struct {
    wk_lora lp;      /* A (r,in), B (out,r), r, scale = alpha/r or alpha/sqrt(r) */
    int in, out;     /* the base weight's [out,in] */
    double alpha;    /* lora_alpha for this pair (alpha_pattern applied) */
} wk_slot;

typedef struct wk_adapter_dev wk_adapter_dev; /* a device copy of A/B (adapter_device.c) */

struct wick_adapter {
    char *name;
    const wick_model *m;   /* the model it is bound to; NULL: opened without one (inspection only) */
    int n_layers;
    wk_slot *slots;        /* (n_layers, WK_P_COUNT) */
    float *data;           /* (n_floats) every A and B, one allocation */
    size_t n_floats;
    int r;                 /* config r (pairs may differ through rank_pattern) */
    double alpha, dropout;
    int use_rslora;
    unsigned targets;      /* bit p set when some layer adapts projection p */
    char *config_json;     /* adapter_config.json as loaded (saved back verbatim); NULL when generated */
    const char *init_name; /* init_lora_weights for a generated config (JSON literal, static) */
    /* merge state (wick_adapter_merge): original weights while merged into m */
    wick_model *merged_into;
    wk_mat *merged_orig;   /* (n_layers, WK_P_COUNT) */
    float **merged_buf;    /* (n_layers, WK_P_COUNT) the writable f32 copies installed in the model */
    int refs;              /* registry: holders (wick_registry_acquire) */
    /* device merge (merge_device.c): layers as they were and as installed, and the buffers installed */
    wk_layer *merged_layers;  /* (2 * n_layers): [0, n) before the merge, [n, 2n) after it */
    void **merged_dev;        /* (n_layers, WK_P_COUNT) device buffers to free (a fused group's at its first projection) */
    unsigned gen;            /* bumped when a trainer changes A/B (device copies refresh) */
    uint16_t *data16;        /* (n_floats) bf16 copies of data for batched CPU steps, or NULL (adapter_device.c) */
    unsigned gen16;          /* gen when data16 was made */
    wk_adapter_dev *dev;     /* device copies of A/B, one per backend (adapter_device.c) */
};

/* Frees every device copy of a's A/B (adapter_device.c). */
void wk_adapter_free_device(wick_adapter *a);
/* Merges a into the device-resident weights of m / restores them exactly (merge_device.c). */
wick_status wk_merge_device(wick_model *m, wick_adapter *a, float scale);
wick_status wk_unmerge_device(wick_model *m, wick_adapter *a);

/* The slot of layer l / projection p (l < n_layers). */
static inline wk_slot *wk_adapter_slot(const wick_adapter *a, int l, int p) {
    return &a->slots[(size_t)l * WK_P_COUNT + (size_t)p];
}

/* ---- PEFT adapter_config.json */
typedef struct {
    int r;
    double alpha, dropout;
    int rslora;
    int all_linear;              /* target_modules == "all-linear" */
    json_t *targets;             /* list of strings, or NULL when target_re is used */
    void *target_re;             /* pcre2_code_8* for a regex target_modules string */
    json_t *exclude;             /* list, or NULL */
    void *exclude_re;            /* pcre2_code_8* */
    json_t *layers;              /* layers_to_transform: NULL, integer or list of integers */
    json_t *rank_pattern, *alpha_pattern; /* objects (may be NULL) */
    json_t *root;
} wk_peft_cfg;

/* Parses and validates adapter_config.json text; unsupported features are errors naming the field. */
wick_status wk_peft_parse(const char *path, const char *text, wk_peft_cfg *c);
void wk_peft_free(wk_peft_cfg *c);
/* 1 when the config adapts layer l / projection p (target_modules, exclude_modules, layers_to_transform). */
int wk_peft_is_target(const wk_peft_cfg *c, int l, int p);
/* Rank and alpha for layer l / projection p (rank_pattern / alpha_pattern). */
void wk_peft_rank_alpha(const wk_peft_cfg *c, int l, int p, int *r, double *alpha);
/* The module name PEFT matches against: "model.layers.L.self_attn.q_proj". */
void wk_module_name(char *buf, size_t cap, int l, int p);
/* Scale of a pair: alpha/r, or alpha/sqrt(r) with rsLoRA (computed in double, as PEFT). */
float wk_lora_scale(double alpha, int r, int rslora);

/* Allocates an adapter with empty slots for n_layers (no data yet). NULL + error on failure. */
wick_adapter *wk_adapter_alloc(const char *name, int n_layers);
/* Carves A/B of every slot with lp.r > 0 from one allocation (uninitialised). */
wick_status wk_adapter_alloc_data(wick_adapter *a);
/* A copy of adapter a (same pairs, values and config) bound to model m (a replica of a's model). */
wick_status wk_adapter_clone(const wick_adapter *a, wick_model *m, wick_adapter **out);
/* Writes text to path atomically (temp file, fsync, rename). Defined in peft_io.c. */
wick_status wk_write_text_atomic(const char *path, const char *text, size_t len);
/* Creates dir and its parents (mkdir -p). */
wick_status wk_make_dirs(const char *dir);
#endif
