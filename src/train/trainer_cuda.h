/*
 * trainer_cuda.h — the LoRA trainer on a device backend (trainer_cuda.c), behind
 * the public wick_trainer functions: trainer.c hands every call to it when the
 * model lives on a device. Same semantics as the CPU trainer; the adapter's
 * A/B, gradients and AdamW moments live on the device, and the host adapter is
 * brought up to date by wk_ctrainer_sync (called before saving and on free).
 */
#ifndef WK_TRAINER_CUDA_H
#define WK_TRAINER_CUDA_H
#include "train/train.h"

typedef struct wk_ctrainer wk_ctrainer;

/* Creates a device trainer over pairs[L*WK_P_COUNT] (host A/B, borrowed, updated by sync). */
wick_status wk_ctrainer_new(wick_model *m, const wk_lora *const *pairs, const wick_train_opts *o, wk_ctrainer **out);
/* Copies the trained A/B back to the host adapter, then frees everything. NULL is fine. */
void wk_ctrainer_free(wk_ctrainer *t);
/* One micro-batch (as wick_trainer_accumulate / _eval with backward = 0). */
wick_status wk_ctrainer_run(wk_ctrainer *t, const int32_t *ids, const int32_t *labels, const int *lens, int nseq,
                            double *loss_sum, int64_t *n_targets, int backward);
/* As wick_trainer_step. */
wick_status wk_ctrainer_step(wk_ctrainer *t, int64_t n_targets, const char *grads_path, wick_step_info *info);
/* Copies the device A/B into the host adapter's A/B. */
wick_status wk_ctrainer_sync(wk_ctrainer *t);
/* Parameter list with host snapshots of the gradient and moments (w = the host adapter, synced). */
wk_tparam *wk_ctrainer_params(wk_ctrainer *t, int *n);
wick_status wk_ctrainer_save_state(wk_ctrainer *t, const char *path);
wick_status wk_ctrainer_load_state(wk_ctrainer *t, const char *path);
int wk_ctrainer_steps(const wk_ctrainer *t);
void wk_ctrainer_set_micro(wk_ctrainer *t, uint64_t micro);
uint64_t wk_ctrainer_micro(const wk_ctrainer *t);
/* The gradient of every parameter as one device buffer (data-parallel all-reduce). */
void wk_ctrainer_grad_span(wk_ctrainer *t, float **g, size_t *n);
void wk_ctrainer_set_head_rows(wk_ctrainer *t, int rows);
void wk_ctrainer_times(const wk_ctrainer *t, double *fwd, double *bwd, double *opt);
#endif
