/*
 * bert.h — the BERT encoder's internal layout (BertModel checkpoints: E5, MiniLM,
 * BGE): config, weights (mmap'd where possible), pooling defaults, and the forward
 * pass over a padded batch. bert.c loads, bert_forward.c runs, bert_embed.c pools,
 * batches and exposes the public embeddings API.
 */
#ifndef WK_BERT_H
#define WK_BERT_H
#include "backend/backend.h"

typedef struct {
    int vocab, hidden, inter;      /* V, C, F */
    int n_layers, n_heads, head_dim;
    int max_pos, type_vocab;       /* P, TV */
    int pad_id;
    float ln_eps;
    int max_seq;                   /* truncation length: sentence_bert_config max_seq_length, else P */
} wk_bert_config;

enum { WK_B_Q, WK_B_K, WK_B_V, WK_B_O, WK_B_UP, WK_B_DOWN, WK_B_COUNT };

typedef struct {
    wk_mat w[WK_B_COUNT];          /* q/k/v/o (C, C), up = intermediate (F, C), down = output (C, F) */
    float *bias[WK_B_COUNT];       /* (C) or (F) for up */
    float *ln1_w, *ln1_b;          /* (C) attention.output.LayerNorm */
    float *ln2_w, *ln2_b;          /* (C) output.LayerNorm */
    wk_mat qkv;                    /* on a device: q|k|v rows back to back (3C, C), one product; w NULL on the CPU */
    float *qkv_bias;               /* (3C) */
} wk_bert_layer;

typedef struct wk_bert_dev wk_bert_dev; /* device buffers and graphs (bert_device.c) */

struct wick_encoder {
    wk_bert_config c;
    char *dir;
    wk_backend *be;
    wick_st *file;
    wk_mat word;                   /* (V, C) */
    float *pos;                    /* (P, C) */
    float *type;                   /* (TV, C) */
    float *emb_ln_w, *emb_ln_b;    /* (C) */
    wk_bert_layer *layers;         /* (L) */
    void **owned;                  /* f32 copies made at load */
    int n_owned, cap_owned;
    int pool;                      /* wick_pooling default from 1_Pooling/config.json (mean without it) */
    int normalize;                 /* default: 2_Normalize module present (1 without modules.json) */
    wick_tokenizer *tok;           /* DIR/tokenizer.json, loaded on first text input (bert_text.c) */
    int64_t n_params;
    float *scratch;                /* activations q,k,v,a,t [N,C] + f [N,F] of the largest batch so far */
    size_t scratch_cap;            /* floats */
    wk_bert_dev *dev;              /* NULL on the CPU; else weights above point into device memory */
    int bf16;                      /* on a device: linear weights in bf16 (the fast mode) */
};

/* Reads DIR/config.json into c (errors name the file and field). */
wick_status wk_bert_config_load(const char *dir, wk_bert_config *c);
/* Reads modules.json / 1_Pooling/config.json / sentence_bert_config.json when present. */
wick_status wk_bert_read_st_config(wick_encoder *e);
/* Loads and checks every weight the config names (with or without the "bert." prefix). */
wick_status wk_bert_load_weights(wick_encoder *e);

/* Last hidden state out[B*T, C] for ids/type_ids/mask [B,T] (type_ids, mask may be NULL).
 * Ids, types and masks are checked by the caller. */
wick_status wk_bert_forward(wick_encoder *e, const int32_t *ids, const int32_t *type_ids, const int32_t *mask, int B,
                            int T, float *out);
/* Floats of activation scratch a forward pass over N tokens needs. */
size_t wk_bert_scratch_floats(const wk_bert_config *c, size_t N);
/* The host forward pass with caller-owned scratch (wk_bert_scratch_floats(B*T) floats): workers
 * running batches side by side each bring their own. CPU backends only. */
void wk_bert_forward_with(wick_encoder *e, const int32_t *ids, const int32_t *type_ids, const int32_t *mask, int B, int T,
                          float *out, float *scratch);
/* The forward pass on backend memory only (device backends): x [B*T,C] from ids, positions,
 * token types and mask [B*T] each; pos / type are the position and type tables as matrices. */
void wk_bert_forward_ops(wick_encoder *e, float *x, float *scratch, const int32_t *ids, const int32_t *pos,
                         const int32_t *types, const int32_t *mask, const wk_mat *pos_tab, const wk_mat *type_tab, int B,
                         int T);

/* CPU fast mode (fast_bf16): linear weights in bf16 multiplying bf16-rounded activations (AMX tiles,
 * weights packed here once, or AVX512-BF16); a no-op where the CPU has neither. */
wick_status wk_bert_cpu_fast_bf16(wick_encoder *e);
/* Device encoder (bert_device.c). Uploads the weights to "cuda[:N]" (bf16: linear weights in bf16). */
wick_status wk_bert_to_device(wick_encoder *e, const char *device, int bf16);
/* The same on a given backend (alloc/upload/download/sync/check and pool needed): wk_bert_to_device
 * after creating the CUDA backend; tests bring a host-memory backend to run the device path anywhere. */
wick_status wk_bert_to_backend(wick_encoder *e, wk_backend *be, int bf16);
void wk_bert_free_device(wick_encoder *e);
/* Hidden states of a checked [B,T] batch into host out [B*T,C]. */
wick_status wk_bert_dev_forward(wick_encoder *e, const int32_t *ids, const int32_t *types, const int32_t *mask, int B,
                                int T, float *out);
/* A call of n sequences in batches of at most bs x T0: begin, one dev_batch per batch (pooled
 * vector of sequence b goes to row rows[b]), finish downloads the n pooled vectors. */
wick_status wk_bert_dev_begin(wick_encoder *e, int n, int bs, int T0);
wick_status wk_bert_dev_batch(wick_encoder *e, const int32_t *ids, const int32_t *mask, const int *rows, int B, int T,
                              int pool, int norm);
wick_status wk_bert_dev_finish(wick_encoder *e, int n, float *out);
#endif
