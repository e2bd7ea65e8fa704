/*
 * suite_train.c — benchmark groups gradient_computation/forward_backward (one
 * LoRA layer 512², r8, input (2, 16, 512)), optimizer_step/adamw_step (one
 * 512×512 parameter, torch AdamW defaults, the trainer's own wk_adamw) and
 * full_training_step/complete_iteration (LoRA layer 512², r8, input (4, 64, 512):
 * forward, cross-entropy over the 512 outputs, backward for A and B, AdamW on both).
 * The single-layer forward/backward is src/bench/kernels.c (the seed's benchmark
 * definition); whole-model training is model_training in suite_model.c.
 */
#include "bench.h"
#include "kernels.h"
#include "train/train.h"

typedef struct {
    wk_bk_lora l;
    float *mem, *x, *t, *y, *dy, *dt, *dA, *dB, *mA, *vA, *mB, *vB;
    int32_t *labels;
    wk_bk_adamw_cfg opt;
    int step;
    float loss;
} train_state;

static wick_status train_setup(train_state *s, int M, int d, int r) {
    size_t n = (size_t)d * d + 3 * (size_t)r * d + 3 * (size_t)d * r + (size_t)M * d + 2 * (size_t)M * r +
               2 * (size_t)M * d + 2 * (size_t)r * d;
    memset(s, 0, sizeof *s);
    s->mem = wk_calloc(n * sizeof(float) + (size_t)M * sizeof(int32_t), "training benchmark buffers");
    if (!s->mem) return WICK_ENOMEM;
    float *p = s->mem, *W = p;
    p += (size_t)d * d;
    s->l = (wk_bk_lora){.M = M, .in = d, .out = d, .r = r, .s = 2.0f, .W = W, .A = p, .B = p + (size_t)r * d};
    p += 2 * (size_t)r * d;
    s->mA = p, p += (size_t)r * d;
    s->vA = p, p += (size_t)r * d;
    s->dA = p, p += (size_t)r * d;
    s->mB = p, p += (size_t)d * r;
    s->vB = p, p += (size_t)d * r;
    s->dB = p, p += (size_t)d * r;
    s->x = p, p += (size_t)M * d;
    s->t = p, p += (size_t)M * r;
    s->dt = p, p += (size_t)M * r;
    s->y = p, p += (size_t)M * d;
    s->dy = p, p += (size_t)M * d;
    s->labels = (int32_t *)p;
    wk_bench_fill(W, (size_t)d * d, 21, 0.05f);
    wk_bench_fill(s->l.A, (size_t)r * d, 22, 0.05f);
    wk_bench_fill(s->l.B, (size_t)d * r, 23, 0.05f); /* nonzero so both gradients carry signal */
    wk_bench_fill(s->x, (size_t)M * d, 24, 1.0f);
    for (int i = 0; i < M; i++) s->labels[i] = (int32_t)((i * 7919) % d);
    s->opt = (wk_bk_adamw_cfg){.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
    return WICK_OK;
}

static void forward_backward(train_state *s) {
    wk_bk_lora_forward(&s->l, s->x, s->t, s->y);
    s->loss = wk_bk_xent(s->y, s->labels, s->l.M, s->l.out, s->dy);
    wk_bk_lora_backward(&s->l, s->x, s->t, s->dy, s->dt, s->dA, s->dB);
}

static void it_forward_backward(void *p) {
    train_state *s = p;
    forward_backward(s);
    wk_bench_sink(s->dA);
}

static void it_complete_iteration(void *p) {
    train_state *s = p;
    forward_backward(s);
    s->step++;
    wk_bk_adamw(s->l.A, s->dA, s->mA, s->vA, (size_t)s->l.r * s->l.in, s->step, &s->opt);
    wk_bk_adamw(s->l.B, s->dB, s->mB, s->vB, (size_t)s->l.out * s->l.r, s->step, &s->opt);
    wk_bench_sink(s->l.A);
}

static wick_status train_case(wk_bench *b, const char *name, int M, wk_bench_iter_fn fn, double work) {
    if (!wk_bench_selected(b, name)) return WICK_OK;
    train_state s;
    wick_status rc = train_setup(&s, M, 512, 8);
    if (rc != WICK_OK) return rc;
    wk_bench_case c = {.name = name, .work = work, .unit = work > 0 ? "elem/s" : ""};
    rc = wk_bench_measure(b, &c, fn, &s);
    wk_free(s.mem);
    return rc;
}

wick_status wk_bench_gradient_computation(wk_bench *b) {
    return train_case(b, "gradient_computation/forward_backward", 2 * 16, it_forward_backward, 0);
}

wick_status wk_bench_full_training_step(wk_bench *b) {
    return train_case(b, "full_training_step/complete_iteration", 4 * 64, it_complete_iteration, 4.0 * 64 * 512);
}

/* ---- optimizer_step/adamw_step */
typedef struct {
    float *p, *g, *m, *v;
    size_t n;
    int t;
    wk_bk_adamw_cfg c;
} adamw_state;

static void it_adamw(void *q) {
    adamw_state *s = q;
    wk_adamw(s->p, s->g, s->m, s->v, s->n, ++s->t, s->c.lr, s->c.beta1, s->c.beta2, s->c.eps, s->c.weight_decay);
    wk_bench_sink(s->p);
}

wick_status wk_bench_optimizer_step(wk_bench *b) {
    const char *name = "optimizer_step/adamw_step";
    if (!wk_bench_selected(b, name)) return WICK_OK;
    adamw_state s = {.n = 512 * 512, .c = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                                           .weight_decay = 0.01f}};
    s.p = wk_calloc(4 * s.n * sizeof(float), "AdamW benchmark buffers");
    if (!s.p) return WICK_ENOMEM;
    s.g = s.p + s.n, s.m = s.g + s.n, s.v = s.m + s.n;
    wk_bench_fill(s.p, s.n, 31, 1.0f);
    wk_bench_fill(s.g, s.n, 32, 1.0f);
    wk_bench_case c = {.name = name, .work = (double)s.n, .unit = "param/s"};
    wick_status rc = wk_bench_measure(b, &c, it_adamw, &s);
    wk_free(s.p);
    return rc;
}
