/*
 * train.h — internal interface of the LoRA trainer (src/train): the trainer
 * over a table of LoRA pairs (one per layer × projection, NULL = not adapted),
 * its parameter list in PEFT order, and the schedule/optimizer helpers that
 * tests check one by one.
 */
#ifndef WK_TRAIN_H
#define WK_TRAIN_H
#include "model/model.h"
#include "model/train_ops.h"

/* One trainable tensor (a LoRA A or B) with its gradient and AdamW moments. */
typedef struct {
    char name[192];  /* PEFT key: base_model.model.model.layers.L.self_attn.q_proj.lora_A.weight */
    float *w;        /* the adapter's own memory, updated in place */
    float *g, *m, *v;/* gradient, first and second moments (n each) */
    size_t n;
    int rows, cols;
} wk_tparam;

/* What the backward of one layer needs from its forward (both trainers; CPU or device memory). */
typedef struct {
    float *x;         /* (n, C) layer input */
    float *qr, *kr;   /* (n, H*D), (n, Hk*D) q/k before q/k-norm (Qwen3 only) */
    float *q, *k, *v; /* (n, H*D), (n, Hk*D) x2 after norm + rope */
    float *att;       /* (n, H*D) attention output */
    float *lse;       /* (n, H) attention log-sum-exp */
    float *h;         /* (n, C) residual after attention */
    float *g, *u;     /* (n, F) gate and up projections */
    float *xa[WK_P_COUNT]; /* (n, r) LoRA x·Aᵀ per adapted projection */
} wk_lact;

/* Creates a trainer over pairs[L*WK_P_COUNT] (borrowed; must outlive the trainer). */
wick_status wk_trainer_new_pairs(wick_model *m, const wk_lora *const *pairs, const wick_train_opts *o,
                                 wick_trainer **out);
/* Parameter list (PEFT order: per layer q,k,v,o,gate,up,down; lora_A then lora_B). */
wk_tparam *wk_trainer_params(wick_trainer *t, int *n);
/* The gradients of every parameter as one buffer (memory of the trainer's backend); the
 * data-parallel group all-reduces it. */
void wk_trainer_grad_span(wick_trainer *t, float **g, size_t *n);
/* Sets the dropout stream position (micro-batches run); tests replay one micro-batch's masks. */
void wk_trainer_set_micro(wick_trainer *t, uint64_t micro);
uint64_t wk_trainer_micro(const wick_trainer *t);
/* Bounds the LM-head chunk to `rows` rows (tests exercise several chunks on tiny vocabularies). */
void wk_trainer_set_head_rows(wick_trainer *t, int rows);
/* Selects the op implementations (ref for tests). */
void wk_trainer_set_ops(wick_trainer *t, const wk_train_ops *ops);

/* Most replicas a micro-batch is split over (data parallelism inside one step, replica.h). */
#define WK_TRAIN_MAX_REPLICAS 16
/* Replicas to use: n ≥ 1 fixed (capped by the sequences of a micro-batch), 0 automatic
 * (replicas of threads/2 threads, at most 8 each: 2 replicas up to 16 threads). Quantized base
 * weights always run one replica. */
void wk_trainer_set_replicas(wick_trainer *t, int n);
/* With one replica: 1 = matmuls split over the threads by wk_sgemm_split, 0 = OpenBLAS's threading,
 * -1 = automatic (split from 16 threads up). */
void wk_trainer_set_split(wick_trainer *t, int on);
/* Replicas a micro-batch of nseq sequences would run on now. */
int wk_trainer_replicas(const wick_trainer *t, int nseq);

/* Seconds spent so far in forward (incl. LM head + loss), backward, optimizer steps. */
void wk_trainer_times(const wick_trainer *t, double *fwd, double *bwd, double *opt);
/* Rank 0's seconds so far per class of work: base-weight matmuls of the layers (forward and input
 * gradients), the LoRA products, attention (forward and backward), the LM head with its loss, and
 * the time the step waited after rank 0's pass (other ranks still running, the gradient sum). */
enum { WK_TC_BASE, WK_TC_LORA, WK_TC_ATTN, WK_TC_HEAD, WK_TC_WAIT, WK_TC_COUNT };
void wk_trainer_breakdown(const wick_trainer *t, double sec[WK_TC_COUNT]);

/* Checks a micro-batch's sequence lengths (nseq >= 1, each >= 1, at most 2^24 tokens); *n = tokens. */
wick_status wk_batch_tokens(const int *lens, int nseq, int64_t *n);
/* Fills par[0..*n_par) in PEFT order (per layer q,k,v,o,gate,up,down; lora_A then lora_B) from
 * pairs[n_layers*WK_P_COUNT] (NULL = not adapted), with w = the adapter's A/B; par_of[i] = index of
 * pair i's A (-1); off[k] = offset of tensor k in one flat buffer, off[*n_par] = the total; raises
 * *rmax to the largest rank. par and off need 2*n_layers*WK_P_COUNT (+1) entries. (state.c) */
wick_status wk_param_list(const wick_model *m, const wk_lora *const *pairs, wk_tparam *par, int *par_of, int *n_par,
                          size_t *off, int *rmax);
/* The optimizer-state file (state.c): AdamW moments of par[0..n_par) under exp_avg./exp_avg_sq.
 * + PEFT key, and trainer.steps_micro = [steps, micro]. read fills m/v and, on success, steps/micro. */
wick_status wk_state_write(const char *path, const wk_tparam *par, int n_par, int steps, uint64_t micro);
wick_status wk_state_read(const char *path, wk_tparam *par, int n_par, int *steps, uint64_t *micro);

/* lr multiplier of HF get_{constant,linear,cosine}_schedule_with_warmup at step k (0-based). */
double wk_lr_factor(wick_scheduler s, int k, int warmup, int total);
/* One torch.optim.AdamW update of n elements at bias-correction step `step` (1-based). */
void wk_adamw(float *w, const float *g, float *m, float *v, size_t n, int step, float lr, float b1, float b2, float eps,
              float wd);
#endif
