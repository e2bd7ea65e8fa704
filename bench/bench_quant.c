/*
 * bench_quant.c — quantized matvec/matmul throughput (wk_qmatmul) for Q8_0, Q4_1,
 * Q4_K, Q4_0 and BF16 weights at Qwen2.5-0.5B MLP shapes (896 x 4864 and 4864 x 896),
 * 1 and 2 threads, n = 1 (decode) and n = 64 (prefill). Prints one JSON object:
 * GB/s counts the weight bytes read per call, GFLOP/s counts 2·n·in·out (both from the
 * best wall time of 5); cpu_ms is the process CPU time of that run per call (all threads),
 * a steadier figure on a shared machine.
 * Usage: bench_quant [--quick]
 */
#include "wk.h"
#include "backend/cpu/quant.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best of 5 wall times per call; *cpu gets the matching process CPU time per call. */
static double time_call(float *y, const float *x, int n, int in, const void *w, int t, int out, int reps, double *cpu) {
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = wk_now(), c0 = cpu_now();
        for (int k = 0; k < reps; k++) wk_qmatmul(y, x, n, in, w, t, out);
        double dt = (wk_now() - t0) / reps, dc = (cpu_now() - c0) / reps;
        if (dt < best) { best = dt; *cpu = dc; }
    }
    return best;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    const int types[] = {WK_Q_Q8_0, WK_Q_Q4_1, WK_Q_Q4_K, WK_Q_Q4_0, WK_Q_BF16};
    const int shapes[2][2] = {{4864, 896}, {896, 4864}}; /* {out, in} */
    const int ns[] = {1, 64}, threads[] = {1, 2};
    float *x = malloc(sizeof(float) * 64 * 4864), *y = malloc(sizeof(float) * 64 * 4864);
    float *wf = malloc(sizeof(float) * 4864 * 896);
    for (int i = 0; i < 64 * 4864; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.f - 1.f;
    for (int i = 0; i < 4864 * 896; i++) wf[i] = (float)((i * 40503u) % 997) / 9970.f - 0.05f;
    printf("{\"bench\":\"quant_matmul\",\"results\":[");
    int first = 1;
    for (size_t s = 0; s < 2; s++)
        for (size_t k = 0; k < WK_ARRAY_LEN(types); k++) {
            int out = shapes[s][0], in = shapes[s][1], t = types[k];
            size_t rb = wk_qtype_row_bytes(t, in);
            if (!rb) continue; /* Q4_K needs in % 256 == 0: 896 is not */
            uint8_t *w = malloc(rb * (size_t)out);
            for (int r = 0; r < out; r++) wk_quantize_row(t, wf + (size_t)r * in, w + (size_t)r * rb, in);
            for (size_t a = 0; a < 2; a++)
                for (size_t b = 0; b < 2; b++) {
                    wick_set_threads(threads[b]);
                    int n = ns[a], reps = quick ? 2 : (n == 1 ? 50 : 10);
                    double cpu = 0, dt = time_call(y, x, n, in, w, t, out, reps, &cpu);
                    printf("%s\n{\"type\":\"%s\",\"out\":%d,\"in\":%d,\"n\":%d,\"threads\":%d,\"ms\":%.4f,\"cpu_ms\":%.4f,"
                           "\"GBps\":%.2f,\"GFLOPs\":%.2f}",
                           first ? "" : ",", wk_qtype_name(t), out, in, n, threads[b], dt * 1e3, cpu * 1e3,
                           rb * (double)out / dt / 1e9, 2.0 * n * in * out / dt / 1e9);
                    first = 0;
                }
            free(w);
        }
    printf("\n]}\n");
    free(x); free(y); free(wf);
    return 0;
}
