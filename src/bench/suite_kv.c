/*
 * suite_kv.c — benchmark group kv_cache on a plain KV cache buffer shaped like
 * Qwen2.5-0.5B's (24 layers, 14 query heads, 2 KV heads, head_dim 64), in the
 * session's layout K/V[layer][kv_head][pos][head_dim] f32, written and read with
 * the backend's kv_store and attention ops (the library's own).
 *   kv_cache_update/{single_layer,all_layers}   append one token's K and V
 *   kv_cache_retrieval/seq_N                    copy one layer's first N positions out
 *   kv_cache_scaling/seq_N                      one decode step of attention over N cached positions
 *   kv_cache_memory/seq_N                       allocate and touch a whole cache; metric = bytes held
 */
#include "bench.h"
#include "backend/backend.h"

#include <math.h>
#include <stdio.h>

enum { KV_LAYERS = 24, KV_QHEADS = 14, KV_HEADS = 2, KV_HDIM = 64, KV_DIM = KV_HEADS * KV_HDIM, KV_MAXSEQ = 4096 };

typedef struct {
    wk_backend *be;
    float *k, *v;       /* (layers, KV_HEADS, max_seq, KV_HDIM) each: the session's layout */
    int max_seq, pos, len;
    float *newk, *newv; /* (KV_HEADS, KV_HDIM) one token */
    float *q, *out, *copy;
} kv_state;

static size_t kv_bytes(int max_seq) { return 2 * (size_t)KV_LAYERS * max_seq * KV_DIM * sizeof(float); }
static size_t layer_off(const kv_state *s, int layer) { return (size_t)layer * KV_HEADS * s->max_seq * KV_HDIM; }

static void kv_write(kv_state *s, int layer) {
    size_t lo = layer_off(s, layer);
    s->be->kv_store(s->be, s->k + lo, s->v + lo, s->newk, s->newv, 1, s->pos, NULL, KV_HEADS, KV_HDIM, s->max_seq);
}

static void it_update_single(void *p) {
    kv_state *s = p;
    kv_write(s, 0);
    s->pos = (s->pos + 1) % s->max_seq;
}

static void it_update_all(void *p) {
    kv_state *s = p;
    for (int l = 0; l < KV_LAYERS; l++) kv_write(s, l);
    s->pos = (s->pos + 1) % s->max_seq;
}

/* Copies layer 0's K and V for positions [0, len) of every KV head out, contiguous. */
static void it_retrieve(void *p) {
    kv_state *s = p;
    size_t seg = (size_t)s->len * KV_HDIM, stride = (size_t)s->max_seq * KV_HDIM;
    for (int h = 0; h < KV_HEADS; h++) {
        memcpy(s->copy + h * seg, s->k + h * stride, seg * sizeof(float));
        memcpy(s->copy + (KV_HEADS + h) * seg, s->v + h * stride, seg * sizeof(float));
    }
    wk_bench_sink(s->copy);
}

/* One decode step on layer 0: store the token at position len-1, attend over [0, len). */
static void it_attend(void *p) {
    kv_state *s = p;
    s->pos = s->len - 1;
    kv_write(s, 0);
    s->be->attention(s->be, s->out, s->q, s->k, s->v, 1, s->pos, NULL, KV_QHEADS, KV_HEADS, KV_HDIM, s->max_seq,
                     1.0f / sqrtf((float)KV_HDIM));
    wk_bench_sink(s->out);
}

typedef struct {
    wk_backend *be;
    int max_seq;
} mem_state;

static void it_memory(void *p) {
    mem_state *m = p;
    float *c = m->be->alloc(m->be, kv_bytes(m->max_seq));
    if (!c) return;
    memset(c, 0, kv_bytes(m->max_seq)); /* touch every page, as a cache that is really held */
    wk_bench_sink(c);
    m->be->free(m->be, c);
}

static wick_status kv_alloc(kv_state *s, wk_backend *be) {
    size_t scratch = 2 * KV_DIM + KV_QHEADS * KV_HDIM * 2 + 2 * (size_t)KV_MAXSEQ * KV_DIM;
    s->be = be;
    s->max_seq = KV_MAXSEQ;
    s->k = wk_calloc(kv_bytes(KV_MAXSEQ) + scratch * sizeof(float), "KV cache benchmark");
    if (!s->k) return WICK_ENOMEM;
    s->v = s->k + (size_t)KV_LAYERS * KV_MAXSEQ * KV_DIM;
    s->newk = s->v + (size_t)KV_LAYERS * KV_MAXSEQ * KV_DIM;
    s->newv = s->newk + KV_DIM;
    s->q = s->newv + KV_DIM;
    s->out = s->q + KV_QHEADS * KV_HDIM;
    s->copy = s->out + KV_QHEADS * KV_HDIM;
    wk_bench_fill(s->k, 2 * (size_t)KV_LAYERS * KV_MAXSEQ * KV_DIM, 41, 1.0f);
    wk_bench_fill(s->newk, 2 * KV_DIM + KV_QHEADS * KV_HDIM, 42, 1.0f);
    return WICK_OK;
}

static wick_status kv_seq_cases(wk_bench *b, kv_state *s, const char *group, const int *lens, int n,
                                wk_bench_iter_fn fn) {
    char name[128];
    wick_status rc = WICK_OK;
    for (int i = 0; i < n && rc == WICK_OK; i++) {
        snprintf(name, sizeof name, "%s/seq_%d", group, lens[i]);
        if (!wk_bench_selected(b, name)) continue;
        s->len = lens[i];
        int retrieval = fn == it_retrieve;
        wk_bench_case c = {.name = name,
                           .work = retrieval ? 2.0 * lens[i] * KV_DIM * sizeof(float) : (double)lens[i],
                           .unit = retrieval ? "B/s" : "pos/s"};
        rc = wk_bench_measure(b, &c, fn, s);
    }
    return rc;
}

static wick_status kv_memory_cases(wk_bench *b) {
    static const int lens[] = {512, 1024, 2048};
    char name[128];
    wick_status rc = WICK_OK;
    for (size_t i = 0; i < WK_ARRAY_LEN(lens) && rc == WICK_OK; i++) {
        snprintf(name, sizeof name, "kv_cache_memory/seq_%d", lens[i]);
        if (!wk_bench_selected(b, name)) continue;
        mem_state m = {wk_bench_backend(b), lens[i]};
        wk_bench_case c = {.name = name, .work = (double)kv_bytes(lens[i]), .unit = "B/s",
                           .metric = (double)kv_bytes(lens[i]), .metric_name = "bytes"};
        rc = wk_bench_measure(b, &c, it_memory, &m);
    }
    return rc;
}

wick_status wk_bench_kv_cache(wk_bench *b) {
    static const char *upd[] = {"kv_cache_update/single_layer", "kv_cache_update/all_layers"};
    static const int ret_lens[] = {128, 512, 2048}, scale_lens[] = {128, 512, 1024, 2048, 4096};
    int need = 0;
    char name[128];
    for (size_t i = 0; i < WK_ARRAY_LEN(upd); i++) need |= wk_bench_selected(b, upd[i]);
    for (size_t i = 0; i < WK_ARRAY_LEN(ret_lens); i++)
        need |= wk_bench_selected(b, (snprintf(name, sizeof name, "kv_cache_retrieval/seq_%d", ret_lens[i]), name));
    for (size_t i = 0; i < WK_ARRAY_LEN(scale_lens); i++)
        need |= wk_bench_selected(b, (snprintf(name, sizeof name, "kv_cache_scaling/seq_%d", scale_lens[i]), name));
    kv_state s = {0};
    wick_status rc = need ? kv_alloc(&s, wk_bench_backend(b)) : WICK_OK;
    for (size_t i = 0; i < WK_ARRAY_LEN(upd) && need && rc == WICK_OK; i++) {
        wk_bench_case c = {.name = upd[i], .work = (double)(i ? KV_LAYERS : 1), .unit = "layer/s"};
        if (wk_bench_selected(b, upd[i])) rc = wk_bench_measure(b, &c, i ? it_update_all : it_update_single, &s);
    }
    if (need && rc == WICK_OK)
        rc = kv_seq_cases(b, &s, "kv_cache_retrieval", ret_lens, (int)WK_ARRAY_LEN(ret_lens), it_retrieve);
    if (need && rc == WICK_OK)
        rc = kv_seq_cases(b, &s, "kv_cache_scaling", scale_lens, (int)WK_ARRAY_LEN(scale_lens), it_attend);
    wk_free(s.k);
    return rc == WICK_OK ? kv_memory_cases(b) : rc;
}
