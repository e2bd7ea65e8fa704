/*
 * config.h — decoder model configuration read from a Hugging Face config.json
 * (+ generation_config.json): Qwen2, Qwen3, Llama, Mistral.
 */
#ifndef WK_CONFIG_H
#define WK_CONFIG_H
#include "wk.h"

typedef enum { WK_ARCH_QWEN2, WK_ARCH_QWEN3, WK_ARCH_LLAMA, WK_ARCH_MISTRAL } wk_arch;
typedef enum { WK_ROPE_DEFAULT, WK_ROPE_LINEAR, WK_ROPE_LLAMA3 } wk_rope_type;

#define WK_MAX_EOS 8

typedef struct {
    wk_arch arch;
    const char *arch_name;    /* "qwen2", ... (static string) */
    int vocab, hidden, inter; /* V, C, F */
    int n_layers, n_heads, n_kv_heads, head_dim;
    int max_pos;
    float rope_theta, rms_eps;
    wk_rope_type rope_type;
    float rope_factor, rope_low_freq, rope_high_freq;
    int rope_orig_max_pos;
    int tie_embeddings; /* no lm_head.weight: the head is embed_tokens */
    int qkv_bias;       /* q/k/v projections carry biases (Qwen2, attention_bias) */
    int o_bias;         /* o_proj bias (attention_bias on Llama) */
    int mlp_bias;
    int qk_norm;        /* per-head RMSNorm on q and k (Qwen3) */
    int sliding_window; /* Mistral: attention window (0 = none); sessions never exceed it */
    int n_eos, eos[WK_MAX_EOS];
    int bos;            /* -1 when unknown */
} wk_config;

/* Reads DIR/config.json and DIR/generation_config.json (optional) into c.
 * Errors name the file and field. */
wick_status wk_config_load(const char *dir, wk_config *c);

/* Parses a config.json text (path is used in messages only). */
wick_status wk_config_parse(const char *json_text, const char *path, wk_config *c);

/* Fills inv_freq[head_dim/2] with the RoPE inverse frequencies, scaling applied. */
void wk_rope_inv_freq(const wk_config *c, float *inv_freq);
#endif
