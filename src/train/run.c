/*
 * run.c — the training run behind `wick train`: builds the adapter (new, from
 * --init-adapter, or from a checkpoint), feeds micro-batches in data order,
 * ends each optimizer step (metrics line, progress callback, eval, checkpoint)
 * and saves the final adapter. A step takes batch_size × grad_accum lines from
 * data position step × batch_size × grad_accum (epochs wrap, seeded shuffle per
 * epoch), so a resumed run sees exactly the batches the uninterrupted one saw.
 */
#include "train/run.h"
#include "lora/adapter.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

wick_train_config wick_train_config_default(void) {
    wick_train_config c = {.lora_r = 8, .lora_alpha = 16, .epochs = 1, .batch_size = 1, .grad_accum = 1,
                           .shuffle = 1, .keep_checkpoints = 2, .opt = wick_train_opts_default()};
    c.opt.lora_dropout = -1; /* the adapter config's lora_dropout (0 for a new adapter) */
    return c;
}

static wick_status check_config(const wick_train_config *c) {
    if (!c->model_dir || !c->data_path || !c->out_dir)
        return wk_err(WICK_EINVAL, "train: model, data and out directories are required");
    if (c->replicas < 0 || c->replicas > WK_DP_MAX)
        return wk_err(WICK_EINVAL, "train: %d replicas (GPUs) requested; 1..%d", c->replicas, WK_DP_MAX);
    if (c->batch_size < 1 || c->grad_accum < 1)
        return wk_err(WICK_EINVAL, "train: batch size %d and gradient accumulation %d must be >= 1", c->batch_size,
                      c->grad_accum);
    if (c->max_steps < 0 || (c->max_steps == 0 && c->epochs < 1))
        return wk_err(WICK_EINVAL, "train: need max_steps > 0 or epochs >= 1");
    if (c->opt.lr < 0 || c->opt.warmup_steps < 0 || c->seq_len < 0 || c->save_every < 0 || c->eval_every < 0)
        return wk_err(WICK_EINVAL, "train: learning rate, warmup, seq_len, save_every and eval_every must be >= 0");
    if (!c->init_adapter && !c->resume && c->lora_r < 1) return wk_err(WICK_EINVAL, "train: lora_r %d must be >= 1", c->lora_r);
    return WICK_OK;
}

/* Packs micro-batch `mb` of step `step` into r->ids/labels/lens. Returns tokens. */
static int64_t pack_micro(wk_run *r, int step, int mb) {
    const wick_train_config *c = r->c;
    int64_t pos = ((int64_t)step * c->grad_accum + mb) * c->batch_size, ntok = 0;
    for (int b = 0; b < c->batch_size; b++) {
        const wk_example *e = &r->data.ex[wk_data_index(&r->data, pos + b, c->shuffle, c->opt.seed)];
        memcpy(r->ids + ntok, e->ids, sizeof(int32_t) * e->len);
        memcpy(r->labels + ntok, e->labels, sizeof(int32_t) * e->len);
        r->lens[b] = e->len;
        ntok += e->len;
    }
    return ntok;
}

static wick_status eval_loss(wk_run *r, double *out) {
    double sum = 0;
    int64_t nt = 0;
    wick_status st = WICK_OK;
    for (int i = 0; i < r->eval.n && !st; i++) {
        const wk_example *e = &r->eval.ex[i];
        st = wick_trainer_eval(r->t, e->ids, e->labels, &e->len, 1, &sum, &nt);
    }
    *out = nt ? sum / (double)nt : NAN;
    return st;
}

static void write_metrics(wk_run *r, const wick_train_progress *p) {
    if (!r->metrics) return;
    fprintf(r->metrics, "{\"step\": %d, \"loss\": %.17g, \"lr\": %.17g, \"grad_norm\": %.17g, \"tokens_per_s\": %.1f",
            p->step, p->loss, p->lr, p->grad_norm, p->tokens_per_s);
    if (!isnan(p->eval_loss)) fprintf(r->metrics, ", \"eval_loss\": %.17g", p->eval_loss);
    fprintf(r->metrics, "}\n");
    fflush(r->metrics);
}

/* One optimizer step: grad_accum micro-batches, the AdamW step, metrics, eval. */
static wick_status one_step(wk_run *r, wick_train_progress *p) {
    const wick_train_config *c = r->c;
    int step = wick_trainer_steps(r->t);
    double t0 = wk_now(), loss = 0, td = 0;
    int64_t nt = 0, tokens = 0;
    wick_status st = WICK_OK;
    for (int mb = 0; mb < c->grad_accum && !st; mb++) {
        double d0 = wk_now();
        int64_t k = pack_micro(r, step, mb);
        td += wk_now() - d0;
        tokens += k;
        st = r->dp.world ? wk_dp_accumulate(&r->dp, r->ids, r->labels, r->lens, c->batch_size, &loss, &nt)
                             : wick_trainer_accumulate(r->t, r->ids, r->labels, r->lens, c->batch_size, &loss, &nt);
    }
    if (st) return wk_err_prefix(st, "step %d", step + 1);
    if (!isfinite(loss))
        return wk_err(WICK_ESTATE, "step %d: the loss is %s; stopping (the last checkpoint is kept)", step + 1,
                      isnan(loss) ? "NaN" : "infinite");
    wick_step_info info;
    const char *gp = (c->save_grads && step == r->first_step) ? c->save_grads : NULL;
    st = r->dp.world ? wk_dp_step(&r->dp, nt, gp, &info) : wick_trainer_step(r->t, nt, gp, &info);
    if (st) return wk_err_prefix(st, "step %d", step + 1);
    double dt = wk_now() - t0;
    r->sum.t_data += td;
    r->sum.tokens += tokens;
    *p = (wick_train_progress){.step = info.step, .total_steps = r->total, .loss = nt ? loss / nt : NAN, .lr = info.lr,
                               .grad_norm = info.grad_norm, .eval_loss = NAN, .tokens_per_s = tokens / dt,
                               .elapsed_s = wk_now() - r->t_start};
    int done = info.step - r->first_step;
    p->eta_s = done > 0 ? p->elapsed_s / done * (r->total - info.step) : 0;
    if (r->eval.n && c->eval_every > 0 && info.step % c->eval_every == 0 && (st = eval_loss(r, &p->eval_loss)))
        return st;
    return WICK_OK;
}

/* Opens out/metrics.jsonl: truncated for a new run; on resume, lines after the resumed step are dropped. */
static wick_status metrics_open(wk_run *r) {
    char path[4096], *old = NULL;
    size_t len;
    wk_path_join(path, sizeof path, r->c->out_dir, "metrics.jsonl");
    if (r->first_step > 0 && wk_file_exists(path) && wk_read_file(path, &old, &len)) old = NULL;
    r->metrics = fopen(path, "w");
    if (!r->metrics) return wk_free(old), wk_err(WICK_EIO, "%s: cannot write", path);
    for (char *p = old; p && *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        int step;
        if (sscanf(p, "{\"step\": %d", &step) == 1 && step <= r->first_step) fprintf(r->metrics, "%s\n", p);
        p = nl ? nl + 1 : NULL;
    }
    wk_free(old);
    return WICK_OK;
}

/* The adapter to train: from a checkpoint, from --init-adapter, or new. */
static wick_status make_adapter(wk_run *r, char *ckpt, size_t cap) {
    const wick_train_config *c = r->c;
    wick_status st;
    if (c->resume) {
        if ((st = wk_ckpt_find(c->resume, ckpt, cap))) return st;
        return wick_adapter_load(r->m, ckpt, &r->a);
    }
    if (c->init_adapter) return wick_adapter_load(r->m, c->init_adapter, &r->a);
    wick_lora_config lc = wick_lora_config_default();
    lc.r = c->lora_r, lc.alpha = c->lora_alpha, lc.dropout = WK_MAX(c->opt.lora_dropout, 0.f), lc.use_rslora = c->use_rslora;
    lc.targets = c->targets;
    return wick_adapter_new(r->m, &lc, c->opt.seed, &r->a);
}

static wick_status setup(wk_run *r) {
    const wick_train_config *c = r->c;
    char ckpt[4096];
    wick_model_opts mo = wick_model_opts_default();
    mo.device = c->device;
    wick_status st = wick_model_load(c->model_dir, &mo, &r->m);
    if (!st) st = wk_data_load(c->data_path, r->m, c->seq_len, &r->data);
    if (!st && c->eval_path) st = wk_data_load(c->eval_path, r->m, c->seq_len, &r->eval);
    if (st) return st;
    int64_t per = (int64_t)c->batch_size * c->grad_accum;
    r->total = c->max_steps > 0 ? c->max_steps : (int)(((int64_t)c->epochs * r->data.n + per - 1) / per);
    int longest = 0;
    for (int i = 0; i < r->data.n; i++) longest = WK_MAX(longest, r->data.ex[i].len);
    r->ids = wk_malloc(sizeof(int32_t) * c->batch_size * longest, "batch ids");
    r->labels = wk_malloc(sizeof(int32_t) * c->batch_size * longest, "batch labels");
    r->lens = wk_malloc(sizeof(int) * c->batch_size, "batch lengths");
    if (!r->ids || !r->labels || !r->lens) return WICK_ENOMEM;
    mkdir(c->out_dir, 0777);
    if ((st = make_adapter(r, ckpt, sizeof ckpt))) return st;
    wick_train_opts o = c->opt;
    o.total_steps = r->total;
    if (o.lora_dropout < 0) o.lora_dropout = (float)r->a->dropout;
    if ((st = wick_trainer_new(r->m, r->a, &o, &r->t))) return st;
    if (c->replicas > 0 && (st = wk_dp_open(&r->dp, c->replicas, c->model_dir, c->device, r->m, r->a, r->t, &o)))
        return st;
    if (c->resume && (st = wk_ckpt_load_state(r, ckpt))) return st;
    r->first_step = wick_trainer_steps(r->t);
    return metrics_open(r);
}

static void teardown(wk_run *r) {
    if (r->metrics) fclose(r->metrics);
    if (r->dp.world) wk_dp_close(&r->dp);
    wick_trainer_free(r->t);
    wick_adapter_free(r->a);
    wk_data_free(&r->data);
    wk_data_free(&r->eval);
    wk_free(r->ids), wk_free(r->labels), wk_free(r->lens);
    wick_model_free(r->m);
}

static wick_status loop(wk_run *r) {
    const wick_train_config *c = r->c;
    wick_status st = WICK_OK;
    while (wick_trainer_steps(r->t) < r->total) {
        wick_train_progress p;
        if ((st = one_step(r, &p))) return st;
        if (r->sum.steps == 0 && p.step == r->first_step + 1) r->sum.first_loss = p.loss;
        r->sum.last_loss = p.loss;
        r->sum.steps = p.step;
        write_metrics(r, &p);
        if (c->save_every > 0 && p.step % c->save_every == 0 && p.step < r->total &&
            ((st = wick_trainer_sync_adapter(r->t)) || (st = wk_ckpt_save(r))))
            return st;
        if (c->progress && c->progress(&p, c->user)) return wk_err(WICK_ECANCELLED, "training stopped at step %d", p.step);
    }
    return WICK_OK;
}

wick_status wick_train_run(const wick_train_config *c, wick_train_summary *out) {
    wick_status st = check_config(c);
    if (st) return st;
    wk_run r = {.c = c, .t_start = wk_now()};
    r.sum.eval_loss = NAN;
    r.sum.first_loss = r.sum.last_loss = NAN;
    if (!(st = setup(&r))) st = loop(&r);
    if (!st && r.eval.n) st = eval_loss(&r, &r.sum.eval_loss);
    if (!st) st = wick_trainer_sync_adapter(r.t);
    if (!st) st = wick_adapter_save(r.a, c->out_dir);
    if (r.t) {
        r.sum.steps = wick_trainer_steps(r.t);
        wk_trainer_times(r.t, &r.sum.t_forward, &r.sum.t_backward, &r.sum.t_optimizer);
    }
    r.sum.seconds = wk_now() - r.t_start;
    r.sum.tokens_per_s = r.sum.seconds > 0 ? r.sum.tokens / r.sum.seconds : 0;
    if (out) *out = r.sum;
    teardown(&r);
    return st;
}
