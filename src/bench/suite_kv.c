/*
 * suite_kv.c — benchmark group kv_cache on a plain KV cache buffer shaped like
 * Qwen2.5-0.5B's (24 layers, 14 query heads, 2 KV heads, head_dim 64):
 * layout K/V[layer][pos][kv_head·head_dim], f32.
 *   kv_cache_update/{single_layer,all_layers}   append one token's K and V
 *   kv_cache_retrieval/seq_N                    copy one layer's first N positions out
 *   kv_cache_scaling/seq_N                      one decode step of attention over N cached positions
 *   kv_cache_memory/seq_N                       allocate and touch a whole cache; metric = bytes held
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>

enum { KV_LAYERS = 24, KV_QHEADS = 14, KV_HEADS = 2, KV_HDIM = 64, KV_DIM = KV_HEADS * KV_HDIM, KV_MAXSEQ = 4096 };

typedef struct {
    float *k, *v;       /* (layers, max_seq, KV_DIM) each */
    int max_seq, pos, len;
    float *newk, *newv; /* (KV_DIM) one token */
    float *q, *scores, *out, *copy;
} kv_state;

static size_t kv_bytes(int max_seq) { return 2 * (size_t)KV_LAYERS * max_seq * KV_DIM * sizeof(float); }

static void kv_write(kv_state *s, int layer) {
    size_t off = ((size_t)layer * s->max_seq + s->pos) * KV_DIM;
    memcpy(s->k + off, s->newk, KV_DIM * sizeof(float));
    memcpy(s->v + off, s->newv, KV_DIM * sizeof(float));
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

static void it_retrieve(void *p) {
    kv_state *s = p;
    memcpy(s->copy, s->k, (size_t)s->len * KV_DIM * sizeof(float));
    memcpy(s->copy + (size_t)s->len * KV_DIM, s->v, (size_t)s->len * KV_DIM * sizeof(float));
    wk_bench_sink(s->copy);
}

/* Appends a token at position len-1 of layer 0 and attends over positions [0, len). */
static void it_attend(void *p) {
    kv_state *s = p;
    s->pos = s->len - 1;
    kv_write(s, 0);
    const float scale = 1.0f / sqrtf((float)KV_HDIM);
    for (int h = 0; h < KV_QHEADS; h++) {
        int kvh = h / (KV_QHEADS / KV_HEADS);
        const float *q = s->q + h * KV_HDIM;
        float mx = -INFINITY, sum = 0, *o = s->out + h * KV_HDIM;
        for (int t = 0; t < s->len; t++) {
            const float *k = s->k + (size_t)t * KV_DIM + kvh * KV_HDIM;
            float d = 0;
            for (int i = 0; i < KV_HDIM; i++) d += q[i] * k[i];
            s->scores[t] = d * scale;
            mx = s->scores[t] > mx ? s->scores[t] : mx;
        }
        memset(o, 0, KV_HDIM * sizeof(float));
        for (int t = 0; t < s->len; t++) sum += (s->scores[t] = expf(s->scores[t] - mx));
        for (int t = 0; t < s->len; t++) {
            const float *v = s->v + (size_t)t * KV_DIM + kvh * KV_HDIM;
            float w = s->scores[t] / sum;
            for (int i = 0; i < KV_HDIM; i++) o[i] += w * v[i];
        }
    }
    wk_bench_sink(s->out);
}

typedef struct {
    int max_seq;
} mem_state;

static void it_memory(void *p) {
    mem_state *m = p;
    float *c = wk_malloc(kv_bytes(m->max_seq), "KV cache");
    if (!c) return;
    memset(c, 0, kv_bytes(m->max_seq)); /* touch every page, as a cache that is really held */
    wk_bench_sink(c);
    wk_free(c);
}

static wick_status kv_alloc(kv_state *s) {
    size_t scratch = 4 * KV_DIM + KV_QHEADS * KV_HDIM * 2 + KV_MAXSEQ + 2 * (size_t)KV_MAXSEQ * KV_DIM;
    s->max_seq = KV_MAXSEQ;
    s->k = wk_calloc(kv_bytes(KV_MAXSEQ) + scratch * sizeof(float), "KV cache benchmark");
    if (!s->k) return WICK_ENOMEM;
    s->v = s->k + (size_t)KV_LAYERS * KV_MAXSEQ * KV_DIM;
    s->newk = s->v + (size_t)KV_LAYERS * KV_MAXSEQ * KV_DIM;
    s->newv = s->newk + KV_DIM;
    s->q = s->newv + KV_DIM;
    s->out = s->q + KV_QHEADS * KV_HDIM;
    s->scores = s->out + KV_QHEADS * KV_HDIM;
    s->copy = s->scores + KV_MAXSEQ;
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
        mem_state m = {lens[i]};
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
    wick_status rc = need ? kv_alloc(&s) : WICK_OK;
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
