/* test_train_golden.c — one LoRA training step on the tiny golden models against PyTorch + PEFT:
 * loss (1e-5), every adapter gradient (relative L2 <= 1e-4), every tensor after one AdamW step
 * (1e-4; elements with |grad| < 1e-7 may differ by 2*lr) and the loss after the step; also with
 * activation recomputation and with the reference ops; with LoRA dropout, the gradient of the
 * largest entries of every A and B against central differences under the same dropout masks;
 * bf16 base weights against the same weights widened to f32. */
#include "t.h"
#include "train_util.h"

static void check_case(const char *name, int recompute, int ref_ops) {
    wick_model *m = NULL;
    wick_st *g = NULL;
    tu_adapter ad;
    if (tu_golden_case(name, &m, &g, &ad)) return;
    size_t n;
    int32_t *ids = tu_i64(g, "train_input_ids", &n), *lab = tu_i64(g, "train_labels", NULL);
    wick_tensor_view iv;
    wick_st_find(g, "train_input_ids", &iv);
    int B = (int)iv.shape[0], T = (int)iv.shape[1], lens[8];
    for (int b = 0; b < B; b++) lens[b] = T;
    wick_train_opts o = wick_train_opts_default();
    o.lr = 1e-2f, o.weight_decay = 0.01f, o.max_grad_norm = 0, o.recompute = recompute;
    wick_trainer *t = NULL;
    CHECK_OK(wk_trainer_new_pairs(m, ad.ptrs, &o, &t));
    if (!t) return;
    if (ref_ops) wk_trainer_set_ops(t, wk_train_ops_ref());
    if (recompute) wk_trainer_set_head_rows(t, 7); /* several LM-head chunks (the last one partial) */
    double loss = 0;
    int64_t nt = 0;
    CHECK_OK(wick_trainer_accumulate(t, ids, lab, lens, B, &loss, &nt));
    size_t cnt;
    float *gl = tu_copy_f32(g, "train_loss", &cnt);
    CHECK(fabs(loss / nt - gl[0]) <= 1e-5, "%s: loss %.7f vs golden %.7f", name, loss / nt, gl[0]);
    int np;
    wk_tparam *par = wk_trainer_params(t, &np);
    float **gcopy = tu_check_grads(g, par, np, nt, 14 * m->c.n_layers, name);
    wick_step_info info;
    CHECK_OK(wick_trainer_step(t, nt, NULL, &info));
    tu_check_after_step(g, par, np, gcopy, o.lr, name);
    double loss2 = tu_check_loss_after(t, g, ids, lab, lens, B, name);
    printf("%s recompute=%d ref=%d: loss %.6f -> %.6f, grad norm %.6f\n", name, recompute, ref_ops, loss / nt, loss2,
           info.grad_norm);
    free(gl), free(ids), free(lab);
    wick_trainer_free(t);
    tu_adapter_free(&ad);
    wick_st_close(g);
    wick_model_free(m);
}

/* Loss of one micro-batch with the dropout masks of micro-batch 0. */
static double loss_at(wick_trainer *t, const int32_t *ids, const int32_t *lab, const int *lens, int B) {
    double l = 0;
    int64_t nt = 0;
    wk_trainer_set_micro(t, 0);
    wick_trainer_accumulate(t, ids, lab, lens, B, &l, &nt);
    return l / nt;
}

static void dropout_fd(void) {
    wick_model *m = NULL;
    wick_st *g = NULL;
    tu_adapter ad;
    CHECK_OK(wick_model_load(T_PATH("golden/qwen2_tiny/model"), NULL, &m));
    CHECK_OK(wick_st_open(T_PATH("golden/qwen2_tiny/golden.safetensors"), &g));
    if (!m || !g || tu_adapter_load(m, T_PATH("golden/qwen2_tiny/adapter1"), &ad)) return;
    int32_t *ids = tu_i64(g, "train_input_ids", NULL), *lab = tu_i64(g, "train_labels", NULL);
    int lens[2] = {16, 16};
    wick_train_opts o = wick_train_opts_default();
    o.lora_dropout = 0.3f;
    wick_trainer *t = NULL;
    CHECK_OK(wk_trainer_new_pairs(m, ad.ptrs, &o, &t));
    if (!t) return;
    double l0 = 0;
    int64_t nt = 0;
    wk_trainer_set_micro(t, 0);
    CHECK_OK(wick_trainer_accumulate(t, ids, lab, lens, 2, &l0, &nt));
    int np;
    wk_tparam *par = wk_trainer_params(t, &np);
    float **gc = calloc(np, sizeof(float *)); /* the gradient before the loss_at calls add to it */
    for (int i = 0; i < np; i++) gc[i] = malloc(sizeof(float) * par[i].n), memcpy(gc[i], par[i].g, sizeof(float) * par[i].n);
    int bad = 0, checked = 0;
    for (int i = 0; i < np; i += 3) { /* every third tensor: A and B of all projections over the layers */
        size_t jm = 0;
        for (size_t j = 0; j < par[i].n; j++)
            if (fabsf(gc[i][j]) > fabsf(gc[i][jm])) jm = j;
        double an = gc[i][jm] / nt, h = 1e-2, w0 = par[i].w[jm];
        par[i].w[jm] = (float)(w0 + h);
        double lp = loss_at(t, ids, lab, lens, 2);
        par[i].w[jm] = (float)(w0 - h);
        double lm = loss_at(t, ids, lab, lens, 2);
        par[i].w[jm] = (float)w0;
        double fd = (lp - lm) / (2 * h);
        if (fabs(fd - an) > 2e-3 * fabs(an) + 1e-5) {
            bad++;
            fprintf(stderr, "dropout FD %s[%zu]: analytic %g, central difference %g\n", par[i].name, jm, an, fd);
        }
        checked++;
    }
    CHECK(bad == 0 && checked > 5, "dropout gradient: %d of %d entries off", bad, checked);
    /* the masks are not all-ones: dropout changes the loss */
    double l1 = 0;
    int64_t nt1 = 0;
    CHECK_OK(wick_trainer_eval(t, ids, lab, lens, 2, &l1, &nt1));
    CHECK(fabs(l1 / nt1 - l0 / nt) > 1e-4, "dropout has no effect on the loss");
    for (int i = 0; i < np; i++) free(gc[i]);
    free(gc), free(ids), free(lab);
    wick_trainer_free(t);
    tu_adapter_free(&ad);
    wick_st_close(g);
    wick_model_free(m);
}

/* bf16 base weights kept as bf16 (tile-widened in the backward) give the gradients of the same weights widened to f32. */
static void bf16_weights(void) {
    wick_model *mb = NULL, *mf = NULL;
    wick_st *g = NULL;
    tu_adapter ad;
    if (tu_bf16_pair(&mb, &mf, &g, &ad)) return;
    int32_t *ids = tu_i64(g, "train_input_ids", NULL), *lab = tu_i64(g, "train_labels", NULL);
    int lens[2] = {16, 16}, np1, np2;
    wick_trainer *tb = NULL, *tf = NULL;
    CHECK_OK(wk_trainer_new_pairs(mb, ad.ptrs, NULL, &tb));
    CHECK_OK(wk_trainer_new_pairs(mf, ad.ptrs, NULL, &tf));
    double lb = 0, lf = 0;
    int64_t nb = 0, nf = 0;
    if (tb && tf) {
        CHECK_OK(wick_trainer_accumulate(tb, ids, lab, lens, 2, &lb, &nb));
        CHECK_OK(wick_trainer_accumulate(tf, ids, lab, lens, 2, &lf, &nf));
        CHECK(fabs(lb - lf) <= 1e-5 * fabs(lf), "bf16 loss %g vs f32 %g", lb, lf);
        wk_tparam *pb = wk_trainer_params(tb, &np1), *pf = wk_trainer_params(tf, &np2);
        double worst = 0;
        for (int i = 0; i < np1 && np1 == np2; i++) {
            double e = t_rel_l2(pb[i].g, pf[i].g, pb[i].n);
            worst = e > worst ? e : worst;
        }
        CHECK(np1 == np2 && np1 > 0 && worst <= 1e-5, "bf16 vs f32 weights: gradient rel L2 %g", worst);
    }
    wick_trainer_free(tb), wick_trainer_free(tf);
    free(ids), free(lab);
    tu_adapter_free(&ad);
    wick_st_close(g);
    wick_model_free(mb), wick_model_free(mf);
}

int main(void) {
    wick_set_threads(1);
    check_case("qwen2_tiny", 0, 0);
    check_case("llama_tiny", 0, 0);
    check_case("qwen3_tiny", 0, 0);
    check_case("qwen3_tiny", 1, 0);
    check_case("llama_tiny", 1, 1);
    dropout_fd();
    bf16_weights();
    return t_summary();
}
