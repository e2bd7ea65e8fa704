/*
 * optim.c — AdamW exactly as torch.optim.AdamW (single-tensor path, float32
 * state) and the learning-rate multipliers of Hugging Face's
 * get_{constant,linear,cosine}_schedule_with_warmup.
 */
#include "train/train.h"

#include <math.h>

double wk_lr_factor(wick_scheduler s, int k, int warmup, int total) {
    if (k < warmup) return (double)k / (double)WK_MAX(1, warmup);
    if (s == WICK_SCHED_CONSTANT) return 1.0;
    if (s == WICK_SCHED_LINEAR) return WK_MAX(0.0, (double)(total - k) / (double)WK_MAX(1, total - warmup));
    double prog = (double)(k - warmup) / (double)WK_MAX(1, total - warmup);
    return WK_MAX(0.0, 0.5 * (1.0 + cos(M_PI * prog)));
}

/* param.mul_(1 - lr*wd); exp_avg.lerp_(g, 1-b1); exp_avg_sq.mul_(b2).addcmul_(g, g, 1-b2);
 * param.addcdiv_(exp_avg, exp_avg_sq.sqrt() / sqrt(bc2) + eps, -lr/bc1) */
void wk_adamw(float *w, const float *g, float *m, float *v, size_t n, int step, float lr, float b1, float b2, float eps,
              float wd) {
    float decay = (float)(1.0 - (double)lr * (double)wd);
    float w1 = (float)(1.0 - (double)b1), w2 = (float)(1.0 - (double)b2);
    double bc1 = 1.0 - pow((double)b1, step), bc2 = 1.0 - pow((double)b2, step);
    float step_size = (float)((double)lr / bc1), bc2s = (float)sqrt(bc2);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float p = w[i] * decay;
        float mi = m[i] + w1 * (g[i] - m[i]);
        float vi = v[i] * b2 + w2 * g[i] * g[i];
        m[i] = mi;
        v[i] = vi;
        w[i] = p + (-step_size) * (mi / (sqrtf(vi) / bc2s + eps));
    }
}
