/*
 * session.h — the session's internal layout (decoder.c owns it): the per-sequence
 * KV cache and the scratch of one forward chunk. The batched decode step (batch.c)
 * runs several sessions in one forward and borrows the first one's scratch.
 */
#ifndef WK_SESSION_H
#define WK_SESSION_H
#include "model/model.h"

#define WK_SESSION_CHUNK 2048     /* most tokens per forward chunk (device backends); posv/hio stride */
#define WK_SESSION_CHUNK_HOST 512 /* tokens per forward chunk on host backends: bounds the scratch arena */
struct wick_session {
    wick_model *m;
    wk_backend *be;
    int cap, pos;
    int chunk;                /* tokens per forward chunk: WK_SESSION_CHUNK on device backends (their
                               * prefill attention materialises no scores; larger products), else _HOST */
    float *kc, *vc;           /* (L, Hk, cap, D) */
    /* scratch for one chunk of up to `chunk` tokens (rows below): one backend allocation carved up */
    void *scr;
    float *x;                 /* (WK_SESSION_CHUNK, C) residual stream */
    float *xn;                /* (WK_SESSION_CHUNK, C) normed input */
    float *q;                 /* (WK_SESSION_CHUNK, H*D) */
    float *k, *v;             /* (WK_SESSION_CHUNK, Hk*D) */
    float *att;               /* (WK_SESSION_CHUNK, H*D) */
    float *g, *u;             /* (WK_SESSION_CHUNK, F) */
    float *tmp;               /* (WK_SESSION_CHUNK, max(C,F,H*D)) LoRA rank / o_proj out */
    int32_t *posv;            /* (WK_SESSION_CHUNK) positions, backend memory; ids follow at posv + WK_SESSION_CHUNK */
    int32_t *idv;             /* (WK_SESSION_CHUNK) ids, backend memory */
    int32_t hio[2 * WK_SESSION_CHUNK];   /* host staging of positions and ids (one upload) */
    float *dlogits;           /* (dlogits_rows, V) device-side logits (device backends only) */
    int dlogits_rows;
    void *graph;              /* the captured decode step (graph backends), NULL until captured */
    int graph_warm;           /* a direct decode step ran (the backend's scratch is sized) */
    const wick_adapter *g_ad; /* the adapter, scale and weights generation the graph was captured with */
    float g_scale;
    unsigned g_gen;
    const wick_adapter *ad;
    const wk_lora *adp;       /* device backends: ad's pairs in backend memory (n_layers, WK_P_COUNT) */
    const wk_lora_group *adg; /* device backends: ad's grouped layout (n_layers, WK_G_COUNT) */
    float ad_scale;
};

/* Device backends: makes room for `rows` rows of device-side logits in s->dlogits
 * (drops a captured graph that wrote to the old buffer); WICK_OK on host backends. */
wick_status wk_session_reserve_logits(wick_session *s, int rows);
/* 1 when s's backend can pick the greedy id on the device (device memory and a pick op). */
int wk_session_can_pick(const wick_session *s);
/* wick_session_eval of ids without downloading logits: the greedy id of the last row (the
 * first index of the max) and its log-probability, from the backend's pick op. */
wick_status wk_session_eval_pick(wick_session *s, const int32_t *ids, int n, int32_t *id, float *logprob);
#endif
