/* test_train_replicas.c — data parallelism inside one training step (src/train/replica.c): a micro-batch
 * of four sequences of unequal length split over 2, 3 and 4 replicas gives the loss and the adapter
 * gradients of one replica within fp32 reduction error (relative L2 <= 1e-5), and the same bits on a
 * second run with the same replica count; also with LoRA dropout (the masks follow the batch row, not
 * the shard), activation recomputation with several LM-head chunks, two accumulated micro-batches,
 * bf16 base weights, evaluation, and the split matmuls on one replica; the runner gives each rank its
 * share of the threads and the gradient sum (dist/comm.h, host) runs in rank order. */
#include "t.h"
#include "dist/comm.h"
#include "train/replica.h"
#include "train_util.h"

typedef struct {
    int replicas, split, recompute, head_rows, micro_batches, eval;
    float dropout;
} run_cfg;

typedef struct {
    double loss;
    int64_t nt;
    int np;
    float **g;  /* (np) gradient copies */
    size_t *n;  /* (np) their sizes */
} run_out;

static const int LENS[4] = {9, 7, 11, 5}; /* 32 tokens: the golden batch cut into four sequences */

static int run(wick_model *m, const tu_adapter *ad, const int32_t *ids, const int32_t *lab, run_cfg c, run_out *r) {
    wick_train_opts o = wick_train_opts_default();
    o.lora_dropout = c.dropout, o.recompute = c.recompute;
    wick_trainer *t = NULL;
    memset(r, 0, sizeof *r);
    CHECK_OK(wk_trainer_new_pairs(m, ad->ptrs, &o, &t));
    if (!t) return -1;
    wk_trainer_set_replicas(t, c.replicas);
    wk_trainer_set_split(t, c.split);
    if (c.head_rows) wk_trainer_set_head_rows(t, c.head_rows);
    CHECK(wk_trainer_replicas(t, 4) == c.replicas, "trainer runs %d replicas, asked for %d", wk_trainer_replicas(t, 4),
          c.replicas);
    int lens[4];
    memcpy(lens, LENS, sizeof lens);
    for (int k = 0; k < (c.micro_batches > 0 ? c.micro_batches : 1); k++) {
        wick_status st = c.eval ? wick_trainer_eval(t, ids, lab, lens, 4, &r->loss, &r->nt)
                                : wick_trainer_accumulate(t, ids, lab, lens, 4, &r->loss, &r->nt);
        CHECK_OK(st);
    }
    wk_tparam *par = wk_trainer_params(t, &r->np);
    r->g = calloc(r->np, sizeof(float *));
    r->n = calloc(r->np, sizeof(size_t));
    for (int i = 0; i < r->np; i++) {
        r->n[i] = par[i].n;
        r->g[i] = malloc(sizeof(float) * par[i].n);
        memcpy(r->g[i], par[i].g, sizeof(float) * par[i].n);
    }
    wick_trainer_free(t);
    return 0;
}

static void out_free(run_out *r) {
    for (int i = 0; i < r->np; i++) free(r->g[i]);
    free(r->g), free(r->n);
}

/* Worst relative L2 difference of the gradients (-1 when they do not match up); *same: every bit equal. */
static double compare(const run_out *a, const run_out *b, int *same) {
    if (a->np != b->np || a->np == 0 || a->nt != b->nt) return -1;
    double worst = 0;
    *same = a->loss == b->loss;
    for (int i = 0; i < a->np; i++) {
        if (a->n[i] != b->n[i]) return -1;
        double e = t_rel_l2(b->g[i], a->g[i], a->n[i]);
        worst = e > worst ? e : worst;
        if (memcmp(a->g[i], b->g[i], sizeof(float) * a->n[i])) *same = 0;
    }
    return worst;
}

/* Runs cfg and compares it with base: loss within 1e-6 (relative), gradients within tol. */
static void expect_close(const char *what, wick_model *m, const tu_adapter *ad, const int32_t *ids, const int32_t *lab,
                         run_cfg base, run_cfg cfg, double tol) {
    run_out a, b;
    if (run(m, ad, ids, lab, base, &a) || run(m, ad, ids, lab, cfg, &b)) return;
    int same;
    double e = compare(&a, &b, &same);
    CHECK(a.nt > 0 && fabs(a.loss - b.loss) <= 1e-6 * fabs(a.loss), "%s: loss %.9g vs %.9g", what, b.loss, a.loss);
    CHECK(e >= 0 && e <= tol, "%s: gradient relative L2 %g (tolerance %g)", what, e, tol);
    printf("%s: loss %.9g vs %.9g, gradient rel L2 %.3g%s\n", what, b.loss, a.loss, e, same ? " (bit-identical)" : "");
    out_free(&a), out_free(&b);
}

static void model_cases(const char *name) {
    wick_model *m = NULL;
    wick_st *g = NULL;
    tu_adapter ad;
    if (tu_golden_case(name, &m, &g, &ad)) return;
    size_t n;
    int32_t *ids = tu_i64(g, "train_input_ids", &n), *lab = tu_i64(g, "train_labels", NULL);
    CHECK(n == 32, "%s: golden batch of %zu tokens, expected 32", name, n);
    run_cfg one = {.replicas = 1};
    char what[128];
    for (int k = 2; k <= 4; k++) {
        snprintf(what, sizeof what, "%s: %d replicas vs 1", name, k);
        expect_close(what, m, &ad, ids, lab, one, (run_cfg){.replicas = k}, 1e-5);
    }
    snprintf(what, sizeof what, "%s: split matmuls on 1 replica", name);
    expect_close(what, m, &ad, ids, lab, one, (run_cfg){.replicas = 1, .split = 1}, 1e-5);
    snprintf(what, sizeof what, "%s: 3 replicas, dropout 0.3", name);
    expect_close(what, m, &ad, ids, lab, (run_cfg){.replicas = 1, .dropout = 0.3f},
                 (run_cfg){.replicas = 3, .dropout = 0.3f}, 1e-5);
    snprintf(what, sizeof what, "%s: 2 replicas, recompute, 3-row head chunks", name);
    expect_close(what, m, &ad, ids, lab, one, (run_cfg){.replicas = 2, .recompute = 1, .head_rows = 3}, 1e-5);
    snprintf(what, sizeof what, "%s: 4 replicas, two micro-batches", name);
    expect_close(what, m, &ad, ids, lab, (run_cfg){.replicas = 1, .micro_batches = 2},
                 (run_cfg){.replicas = 4, .micro_batches = 2}, 1e-5);
    snprintf(what, sizeof what, "%s: 3 replicas, eval", name);
    expect_close(what, m, &ad, ids, lab, (run_cfg){.replicas = 1, .eval = 1}, (run_cfg){.replicas = 3, .eval = 1}, 0);
    /* a fixed replica count gives the same bits */
    run_out a, b;
    if (!run(m, &ad, ids, lab, (run_cfg){.replicas = 3, .dropout = 0.1f}, &a) &&
        !run(m, &ad, ids, lab, (run_cfg){.replicas = 3, .dropout = 0.1f}, &b)) {
        int same = 0;
        compare(&a, &b, &same);
        CHECK(same, "%s: two runs on 3 replicas differ", name);
        out_free(&a), out_free(&b);
    }
    free(ids), free(lab);
    tu_adapter_free(&ad);
    wick_st_close(g);
    wick_model_free(m);
}

/* bf16 base weights on 2 replicas (split matmuls widen tiles) against the f32 weights on 1. */
static void bf16_case(void) {
    wick_model *mb = NULL, *mf = NULL;
    wick_st *g = NULL;
    tu_adapter ad;
    if (tu_bf16_pair(&mb, &mf, &g, &ad)) return;
    int32_t *ids = tu_i64(g, "train_input_ids", NULL), *lab = tu_i64(g, "train_labels", NULL);
    run_out a, b;
    if (!run(mf, &ad, ids, lab, (run_cfg){.replicas = 1}, &a) && !run(mb, &ad, ids, lab, (run_cfg){.replicas = 2}, &b)) {
        int same;
        double e = compare(&a, &b, &same);
        CHECK(fabs(a.loss - b.loss) <= 1e-5 * fabs(a.loss), "bf16 on 2 replicas: loss %g vs f32 %g", b.loss, a.loss);
        CHECK(e >= 0 && e <= 1e-5, "bf16 on 2 replicas vs f32 on 1: gradient rel L2 %g", e);
        out_free(&a), out_free(&b);
    }
    free(ids), free(lab);
    tu_adapter_free(&ad);
    wick_st_close(g);
    wick_model_free(mb), wick_model_free(mf);
}

static void rank_fn(void *arg, int rank, int threads) {
    int *seen = arg;
    seen[rank] = threads;
}

/* The CPU communicator: every rank runs with its share of the threads; the sum goes in rank order. */
static void comm_case(void) {
    wk_replicas *r = NULL;
    CHECK_OK(wk_replicas_cpu_new(3, 6, &r));
    if (!r) return;
    int seen[3] = {0, 0, 0};
    wk_replicas_run(r, rank_fn, seen, 3);
    CHECK(seen[0] == 2 && seen[1] == 2 && seen[2] == 2, "threads per rank %d %d %d, expected 2", seen[0], seen[1],
          seen[2]);
    memset(seen, 0, sizeof seen);
    wk_replicas_run(r, rank_fn, seen, 2);
    CHECK(seen[0] == 3 && seen[1] == 3 && seen[2] == 0, "2 of 3 ranks: threads %d %d %d", seen[0], seen[1], seen[2]);
    wk_replicas_free(r);
    wk_comm *c = NULL; /* the sum the trainer uses for the replicas' gradients goes in rank order */
    CHECK_OK(wk_comm_host(3, &c));
    float a[2] = {1e8f, 1}, b[2] = {-1e8f, 2}, d[2] = {1, 3};
    float *bufs[3] = {a, b, d};
    if (c) {
        CHECK_OK(c->allreduce(c, bufs, 2));
        c->free(c);
    }
    CHECK(a[0] == 1 && a[1] == 6, "allreduce (1e8 - 1e8) + 1 = %g, 1+2+3 = %g", a[0], a[1]);
    CHECK_FAILS(wk_replicas_cpu_new(0, 4, &r), "0 ranks");
}

int main(void) {
    wick_set_threads(4);
    comm_case();
    model_cases("qwen2_tiny");
    model_cases("qwen3_tiny");
    bf16_case();
    return t_summary();
}
