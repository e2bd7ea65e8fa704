/*
 * t.h — the test harness: CHECK macros that count, and a summary line
 * "N passed, N failed" that makes the test exit non-zero on any failure.
 * Include once per test program (it defines the counters).
 */
#ifndef WICK_T_H
#define WICK_T_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "wick.h"

static int t_pass, t_fail;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (cond) {                                                               \
            t_pass++;                                                             \
        } else {                                                                  \
            t_fail++;                                                             \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                         \
            fprintf(stderr, "\n");                                                \
        }                                                                         \
    } while (0)

/* Checks a wick call returned WICK_OK, printing wick_last_error() otherwise. */
#define CHECK_OK(call)                                                                        \
    do {                                                                                      \
        wick_status st_ = (call);                                                             \
        CHECK(st_ == WICK_OK, "%s -> %s: %s", #call, wick_status_str(st_), wick_last_error()); \
    } while (0)

/* Checks a wick call failed and its message contains `needle`. */
#define CHECK_FAILS(call, needle)                                                          \
    do {                                                                                   \
        wick_status st_ = (call);                                                          \
        CHECK(st_ != WICK_OK && strstr(wick_last_error(), (needle)) != NULL,               \
              "%s -> %s, message \"%s\", wanted one containing \"%s\"", #call,             \
              wick_status_str(st_), wick_last_error(), (needle));                          \
    } while (0)

static inline float t_max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (d > m || d != d) m = (d != d) ? INFINITY : d;
    }
    return m;
}

static inline double t_rel_l2(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static inline int t_summary(void) {
    printf("%d passed, %d failed\n", t_pass, t_fail);
    return t_fail ? 1 : 0;
}

#define T_PATH(rel) (WICK_TEST_DIR "/" rel)

/* For the CUDA tests: 1, with the reason printed, when there is no CUDA device to test on. */
static inline int ct_no_device(const char *test) {
    if (wick_cuda_device_count() > 0) return 0;
    printf("%s: skipped: %s\n", test,
#ifdef WICK_HAVE_CUDA
           "built with CUDA, but no CUDA device is available"
#else
           "built without the CUDA backend"
#endif
    );
    return 1;
}
#endif
