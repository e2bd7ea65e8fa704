/*
 * suite_lora.c — benchmark groups lora_forward (512/1024/2048 square layers,
 * r8/r16, input (4, 16, in)), lora_rank_scaling (1024², r4..r64, input
 * (2, 32, 1024)) and lora_fused_vs_unfused (adapter product accumulated inside
 * the GEMM, vs a separate buffer and add, vs weights merged ahead of time).
 * Each times y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ; the fused variant (and lora_forward,
 * lora_rank_scaling) runs the library's path: the backend's matmul for the base
 * weight, then matmul_f32 twice for the adapter, accumulating into y — the
 * sequence the decoder's linear layers call.
 */
#include "bench.h"
#include "backend/backend.h"
#include "kernels.h"

#include <cblas.h>
#include <stdio.h>

typedef struct {
    wk_backend *be;
    wk_mat Wmat;
    wk_bk_lora l;
    float *mem, *x, *t, *d, *y, *Wm; /* Wm: W + s·B·A for the merged variant */
} lora_state;

static void lora_free(lora_state *s) { wk_free(s->mem); }

static wick_status lora_setup(lora_state *s, int M, int in, int out, int r, int merged) {
    size_t n = (size_t)out * in * (merged ? 2 : 1) + (size_t)r * in + (size_t)out * r + (size_t)M * in +
               (size_t)M * r + 2 * (size_t)M * out;
    memset(s, 0, sizeof *s);
    s->mem = wk_malloc(n * sizeof(float), "LoRA benchmark buffers");
    if (!s->mem) return WICK_ENOMEM;
    float *p = s->mem, *W = p;
    p += (size_t)out * in;
    s->l = (wk_bk_lora){.M = M, .in = in, .out = out, .r = r, .s = 2.0f, .W = W, .A = p, .B = p + (size_t)r * in};
    p += (size_t)r * in + (size_t)out * r;
    s->x = p, p += (size_t)M * in;
    s->t = p, p += (size_t)M * r;
    s->d = p, p += (size_t)M * out;
    s->y = p, p += (size_t)M * out;
    wk_bench_fill(W, (size_t)out * in, 11, 0.05f);
    wk_bench_fill(s->l.A, (size_t)r * in, 12, 0.05f);
    wk_bench_fill(s->l.B, (size_t)out * r, 13, 0.05f);
    wk_bench_fill(s->x, (size_t)M * in, 14, 1.0f);
    if (merged) {
        s->Wm = p;
        memcpy(s->Wm, W, sizeof(float) * (size_t)out * in);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, r, s->l.s, s->l.B, r, s->l.A, in, 1.0f,
                    s->Wm, in);
    }
    return WICK_OK;
}

static void it_fused(void *p) {
    lora_state *s = p;
    const wk_bk_lora *l = &s->l;
    s->be->matmul(s->be, s->y, s->x, &s->Wmat, NULL, l->M, 0);
    s->be->matmul_f32(s->be, s->t, s->x, l->A, l->M, l->in, l->r, 1.0f, 0);
    s->be->matmul_f32(s->be, s->y, s->t, l->B, l->M, l->r, l->out, l->s, 1);
    wk_bench_sink(s->y);
}
static void it_unfused(void *p) {
    lora_state *s = p;
    wk_bk_lora_forward_unfused(&s->l, s->x, s->t, s->d, s->y);
    wk_bench_sink(s->y);
}
static void it_merged(void *p) {
    lora_state *s = p;
    const wk_bk_lora *l = &s->l;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l->M, l->out, l->in, 1.0f, s->x, l->in, s->Wm, l->in,
                0.0f, s->y, l->out);
    wk_bench_sink(s->y);
}

/* Sets up one case, measures it with fn, frees it. */
static wick_status lora_case(wk_bench *b, const char *name, int M, int d, int r, int merged, wk_bench_iter_fn fn) {
    if (!wk_bench_selected(b, name)) return WICK_OK;
    lora_state s;
    wick_status rc = lora_setup(&s, M, d, d, r, merged);
    if (rc != WICK_OK) return rc;
    s.be = wk_bench_backend(b);
    s.Wmat = (wk_mat){.w = s.l.W, .dt = WICK_DT_F32, .rows = d, .cols = d};
    wk_bench_case c = {.name = name, .work = (double)M * d, .unit = "elem/s"};
    rc = wk_bench_measure(b, &c, fn, &s);
    lora_free(&s);
    return rc;
}

wick_status wk_bench_lora_forward(wk_bench *b) {
    static const struct {
        const char *label;
        int d, r;
    } cfg[] = {{"small_512x512_r8", 512, 8},      {"medium_1024x1024_r8", 1024, 8},
               {"large_2048x2048_r8", 2048, 8},   {"small_512x512_r16", 512, 16},
               {"medium_1024x1024_r16", 1024, 16}, {"large_2048x2048_r16", 2048, 16}};
    wick_status rc = WICK_OK;
    char name[128];
    for (size_t i = 0; i < WK_ARRAY_LEN(cfg) && rc == WICK_OK; i++) {
        snprintf(name, sizeof name, "lora_forward/forward/%s", cfg[i].label);
        rc = lora_case(b, name, 4 * 16, cfg[i].d, cfg[i].r, 0, it_fused);
    }
    return rc;
}

wick_status wk_bench_lora_rank_scaling(wk_bench *b) {
    static const int ranks[] = {4, 8, 16, 32, 64};
    wick_status rc = WICK_OK;
    char name[128];
    for (size_t i = 0; i < WK_ARRAY_LEN(ranks) && rc == WICK_OK; i++) {
        snprintf(name, sizeof name, "lora_rank_scaling/forward/rank_%d", ranks[i]);
        rc = lora_case(b, name, 2 * 32, 1024, ranks[i], 0, it_fused);
    }
    return rc;
}

wick_status wk_bench_lora_fused(wk_bench *b) {
    static const struct {
        const char *label;
        int M;
    } shapes[] = {{"batch_64x1024x1024_r16", 64}, {"decode_1x1024x1024_r16", 1}};
    static const struct {
        const char *variant;
        int merged;
        wk_bench_iter_fn fn;
    } variants[] = {{"fused", 0, it_fused}, {"unfused", 0, it_unfused}, {"merged", 1, it_merged}};
    wick_status rc = WICK_OK;
    char name[128];
    for (size_t i = 0; i < WK_ARRAY_LEN(shapes); i++)
        for (size_t v = 0; v < WK_ARRAY_LEN(variants) && rc == WICK_OK; v++) {
            snprintf(name, sizeof name, "lora_fused_vs_unfused/%s/%s", variants[v].variant, shapes[i].label);
            rc = lora_case(b, name, shapes[i].M, 1024, 16, variants[v].merged, variants[v].fn);
        }
    return rc;
}
