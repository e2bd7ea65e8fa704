/* test_bench_kernels.c — the ops the self-contained benchmarks time are right: layer ops
 * against double-precision references, the three LoRA forward variants against a naive
 * loop, LoRA + cross-entropy gradients against central finite differences, and AdamW
 * against torch.optim.AdamW's update written out in double. */
#include <cblas.h>

#include "bench/bench.h"
#include "bench/kernels.h"
#include "t.h"

static void test_layer_ops(void) {
    enum { R = 3, N = 37 };
    float x[R * N], y[R * N];
    wk_bench_fill(x, R * N, 5, 4.0f);
    double err_s = 0, err_l = 0, err_r = 0;
    wk_bk_softmax(y, x, R, N);
    for (int i = 0; i < R; i++) {
        double mx = -1e30, sum = 0, mean = 0, var = 0, ss = 0;
        for (int j = 0; j < N; j++) mx = fmax(mx, x[i * N + j]), mean += x[i * N + j], ss += (double)x[i * N + j] * x[i * N + j];
        for (int j = 0; j < N; j++) sum += exp(x[i * N + j] - mx);
        mean /= N;
        for (int j = 0; j < N; j++) var += (x[i * N + j] - mean) * (x[i * N + j] - mean);
        for (int j = 0; j < N; j++) err_s = fmax(err_s, fabs(y[i * N + j] - exp(x[i * N + j] - mx) / sum));
        float yl[N], yr[N];
        wk_bk_layer_norm(yl, x + i * N, 1, N, 1e-5f);
        wk_bk_rms_norm(yr, x + i * N, 1, N, 1e-5f);
        for (int j = 0; j < N; j++) {
            err_l = fmax(err_l, fabs(yl[j] - (x[i * N + j] - mean) / sqrt(var / N + 1e-5)));
            err_r = fmax(err_r, fabs(yr[j] - x[i * N + j] / sqrt(ss / N + 1e-5)));
        }
    }
    CHECK(err_s < 1e-6 && err_l < 1e-5 && err_r < 1e-5, "softmax %g layer_norm %g rms_norm %g", err_s, err_l, err_r);
}

enum { M = 4, D = 6, RK = 2 };

static void setup(wk_bk_lora *l, float *W, float *A, float *B, float *x) {
    wk_bench_fill(W, D * D, 1, 0.5f);
    wk_bench_fill(A, RK * D, 2, 0.5f);
    wk_bench_fill(B, D * RK, 3, 0.5f);
    wk_bench_fill(x, M * D, 4, 1.0f);
    *l = (wk_bk_lora){.M = M, .in = D, .out = D, .r = RK, .s = 1.5f, .W = W, .A = A, .B = B};
}

static void test_lora_forward(void) {
    float W[D * D], A[RK * D], B[D * RK], x[M * D], t[M * RK], d[M * D], y1[M * D], y2[M * D], y3[M * D], Wm[D * D];
    wk_bk_lora l;
    setup(&l, W, A, B, x);
    wk_bk_lora_forward(&l, x, t, y1);
    wk_bk_lora_forward_unfused(&l, x, t, d, y2);
    memcpy(Wm, W, sizeof W);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, D, D, RK, l.s, B, RK, A, D, 1.0f, Wm, D);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, D, D, 1.0f, x, D, Wm, D, 0.0f, y3, D);
    double err = 0;
    for (int i = 0; i < M; i++)
        for (int o = 0; o < D; o++) {
            double ref = 0;
            for (int k = 0; k < D; k++) ref += (double)x[i * D + k] * W[o * D + k];
            for (int q = 0; q < RK; q++) {
                double tq = 0;
                for (int k = 0; k < D; k++) tq += (double)x[i * D + k] * A[q * D + k];
                ref += l.s * tq * B[o * RK + q];
            }
            err = fmax(err, fmax(fabs(y1[i * D + o] - ref), fmax(fabs(y2[i * D + o] - ref), fabs(y3[i * D + o] - ref))));
        }
    CHECK(err < 1e-5, "fused/unfused/merged vs naive: max error %g", err);
}

static float loss_of(wk_bk_lora *l, const float *x, const int32_t *lab) {
    float t[M * RK], y[M * D], g[M * D];
    wk_bk_lora_forward(l, x, t, y);
    return wk_bk_xent(y, lab, M, D, g);
}

static void test_gradients(void) {
    float W[D * D], A[RK * D], B[D * RK], x[M * D], t[M * RK], y[M * D], dy[M * D], dt[M * RK], dA[RK * D], dB[D * RK];
    int32_t lab[M] = {1, 5, 0, 3};
    wk_bk_lora l;
    setup(&l, W, A, B, x);
    wk_bk_lora_forward(&l, x, t, y);
    float loss = wk_bk_xent(y, lab, M, D, dy);
    double ref_loss = 0;
    for (int i = 0; i < M; i++) {
        double s = 0;
        for (int j = 0; j < D; j++) s += exp(y[i * D + j]);
        ref_loss += log(s) - y[i * D + lab[i]];
    }
    CHECK(fabs(loss - ref_loss / M) < 1e-5, "loss %g vs %g", loss, ref_loss / M);
    wk_bk_lora_backward(&l, x, t, dy, dt, dA, dB);
    float *params[2] = {A, B}, *grads[2] = {dA, dB};
    int sizes[2] = {RK * D, D * RK};
    double worst = 0;
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < sizes[p]; i++) {
            float keep = params[p][i], h = 1e-2f;
            params[p][i] = keep + h;
            double lp = loss_of(&l, x, lab);
            params[p][i] = keep - h;
            double lm = loss_of(&l, x, lab);
            params[p][i] = keep;
            double fd = (lp - lm) / (2 * h);
            worst = fmax(worst, fabs(fd - grads[p][i]) / fmax(1e-2, fabs(fd)));
        }
    CHECK(worst < 2e-2, "dA, dB vs central differences: worst relative error %g", worst);
}

static void test_adamw(void) {
    wk_bk_adamw_cfg c = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
    float p[3] = {1.0f, -2.0f, 0.5f}, g[3] = {0.5f, -0.25f, 2.0f}, m[3] = {0}, v[3] = {0};
    double P[3] = {1.0, -2.0, 0.5}, Mm[3] = {0}, V[3] = {0};
    for (int t = 1; t <= 3; t++) {
        wk_bk_adamw(p, g, m, v, 3, t, &c);
        for (int i = 0; i < 3; i++) { /* torch.optim.AdamW, written out */
            P[i] *= 1 - 0.1 * 0.01;
            Mm[i] = 0.9 * Mm[i] + 0.1 * g[i];
            V[i] = 0.999 * V[i] + 0.001 * (double)g[i] * g[i];
            double bc1 = 1 - pow(0.9, t), bc2 = 1 - pow(0.999, t);
            P[i] -= 0.1 / bc1 * Mm[i] / (sqrt(V[i]) / sqrt(bc2) + 1e-8);
        }
    }
    CHECK(fabs(p[0] - P[0]) < 1e-5 && fabs(p[1] - P[1]) < 1e-5 && fabs(p[2] - P[2]) < 1e-5,
          "adamw after 3 steps: %g %g %g vs %g %g %g", p[0], p[1], p[2], P[0], P[1], P[2]);
    CHECK(fabs(P[0] - (0.999 * 0.999 * 0.999 - 0.3)) < 2e-3, "first coordinate moved by ~lr per step: %g", P[0]);
}

int main(void) {
    test_layer_ops();
    test_lora_forward();
    test_gradients();
    test_adamw();
    return t_summary();
}
