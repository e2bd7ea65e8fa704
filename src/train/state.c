/*
 * state.c — what the CPU and CUDA trainers share: the PEFT-ordered list of
 * trainable tensors, and the optimizer-state file of a checkpoint
 * (optimizer.safetensors): exp_avg.<PEFT key> and exp_avg_sq.<PEFT
 * key> for every trainable tensor, plus trainer.steps_micro = [steps, micro]
 * (optimizer steps taken, micro-batches run: the dropout stream position).
 */
#include "train/train.h"

#include <stdio.h>

wick_status wk_batch_tokens(const int *lens, int nseq, int64_t *n) {
    *n = 0;
    if (nseq <= 0) return wk_err(WICK_EINVAL, "trainer: empty micro-batch");
    for (int s = 0; s < nseq; s++) {
        if (lens[s] <= 0) return wk_err(WICK_EINVAL, "trainer: sequence %d is empty", s);
        *n += lens[s];
    }
    if (*n > (1 << 24)) return wk_err(WICK_EINVAL, "trainer: micro-batch of %lld tokens is too large", (long long)*n);
    return WICK_OK;
}

wick_status wk_param_list(const wick_model *m, const wk_lora *const *pairs, wk_tparam *par, int *par_of, int *n_par,
                          size_t *off, int *rmax) {
    const wk_config *c = &m->c;
    size_t total = 0;
    *n_par = 0;
    for (int i = 0; i < c->n_layers * WK_P_COUNT; i++) {
        par_of[i] = -1;
        const wk_lora *lp = pairs[i];
        if (!lp) continue;
        int l = i / WK_P_COUNT, p = i % WK_P_COUNT;
        const wk_mat *W = &m->layers[l].p[p];
        if (!lp->A || !lp->B || lp->r <= 0)
            return wk_err(WICK_EINVAL, "trainer: layer %d %s: LoRA pair without A/B", l, wk_proj_names[p]);
        par_of[i] = *n_par;
        for (int ab = 0; ab < 2; ab++) {
            wk_tparam *q = &par[*n_par];
            q->rows = ab ? W->rows : lp->r;
            q->cols = ab ? lp->r : W->cols;
            q->n = (size_t)q->rows * q->cols;
            q->w = ab ? lp->B : lp->A;
            snprintf(q->name, sizeof q->name, "base_model.model.model.layers.%d.%s.%s.lora_%c.weight", l,
                     wk_proj_parent[p], wk_proj_names[p], ab ? 'B' : 'A');
            off[(*n_par)++] = total;
            total += q->n;
        }
        *rmax = WK_MAX(*rmax, lp->r);
    }
    if (!*n_par) return wk_err(WICK_EINVAL, "trainer: the adapter adapts no projection");
    off[*n_par] = total;
    return WICK_OK;
}

wick_status wk_state_write(const char *path, const wk_tparam *par, int n_par, int steps, uint64_t micro) {
    int n = 2 * n_par + 1;
    wick_tensor_view *v = wk_calloc(sizeof(*v) * n, "state list");
    char(*names)[224] = wk_calloc(sizeof(*names) * n, "state names");
    int64_t hdr[2] = {steps, (int64_t)micro};
    wick_status st = WICK_ENOMEM;
    if (v && names) {
        for (int i = 0; i < n_par; i++)
            for (int mv = 0; mv < 2; mv++) {
                int k = 2 * i + mv;
                snprintf(names[k], sizeof names[k], "%s.%s", mv ? "exp_avg_sq" : "exp_avg", par[i].name);
                v[k] = (wick_tensor_view){.name = names[k], .dtype = WICK_DT_F32, .ndim = 2,
                                          .shape = {par[i].rows, par[i].cols}, .data = mv ? par[i].v : par[i].m};
            }
        v[n - 1] = (wick_tensor_view){.name = "trainer.steps_micro", .dtype = WICK_DT_I64, .ndim = 1, .shape = {2},
                                      .data = hdr};
        st = wick_safetensors_write(path, v, n, "{\"format\":\"wick-trainer\"}");
    }
    wk_free(v);
    wk_free(names);
    return st;
}

static wick_status load_tensor(wick_st *f, const char *path, const char *name, wick_dtype dt, size_t n, void *dst) {
    wick_tensor_view v;
    if (wick_st_find(f, name, &v) != WICK_OK) return wk_err(WICK_EFORMAT, "%s: missing tensor '%s'", path, name);
    size_t cnt = 1;
    for (int d = 0; d < v.ndim; d++) cnt *= (size_t)v.shape[d];
    if (v.dtype != dt || cnt != n)
        return wk_err(WICK_EFORMAT, "%s: tensor '%s' has %zu %s elements, expected %zu %s", path, name, cnt,
                      wick_dtype_name(v.dtype), n, wick_dtype_name(dt));
    memcpy(dst, v.data, n * wick_dtype_size(dt));
    return WICK_OK;
}

wick_status wk_state_read(const char *path, wk_tparam *par, int n_par, int *steps, uint64_t *micro) {
    wick_st *f;
    wick_status st = wick_st_open(path, &f);
    if (st) return st;
    char name[220];
    int64_t hdr[2];
    for (int i = 0; i < n_par && !st; i++) {
        snprintf(name, sizeof name, "exp_avg.%s", par[i].name);
        st = load_tensor(f, path, name, WICK_DT_F32, par[i].n, par[i].m);
        snprintf(name, sizeof name, "exp_avg_sq.%s", par[i].name);
        if (!st) st = load_tensor(f, path, name, WICK_DT_F32, par[i].n, par[i].v);
    }
    if (!st) st = load_tensor(f, path, "trainer.steps_micro", WICK_DT_I64, 2, hdr);
    wick_st_close(f);
    if (!st) *steps = (int)hdr[0], *micro = (uint64_t)hdr[1];
    return st;
}
