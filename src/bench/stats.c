/*
 * stats.c — robust summary statistics for benchmark samples: median, median
 * absolute deviation, and a distribution-free confidence interval of the median
 * from order statistics (the number of samples below the median is
 * Binomial(n, 1/2), so [x(j), x(n+1-j)] covers it with probability
 * 1 - 2·P(Bin(n,1/2) < j)).
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_sorted(const double *s, int n) {
    return (n & 1) ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* P(Bin(n, 1/2) <= k), summed in log space so n up to thousands is exact enough. */
static double binom_half_cdf(int n, int k) {
    if (k < 0) return 0;
    if (k >= n) return 1;
    double sum = 0, lhalf = n * log(0.5);
    for (int i = 0; i <= k; i++) sum += exp(lgamma(n + 1.0) - lgamma(i + 1.0) - lgamma(n - i + 1.0) + lhalf);
    return sum > 1 ? 1 : sum;
}

double wk_stats_median_ci_rank(int n, double level, int *j_out) {
    int best = 1;
    for (int j = 1; j <= n / 2; j++) {
        double cover = 1.0 - 2.0 * binom_half_cdf(n, j - 1);
        if (cover >= level) best = j;
        else break;
    }
    *j_out = best;
    return n >= 1 ? 1.0 - 2.0 * binom_half_cdf(n, best - 1) : 0;
}

wick_status wk_stats_compute(const double *x, int n, wk_stats *out) {
    if (n < 1) return wk_err(WICK_EINVAL, "statistics of %d samples", n);
    double *s = wk_malloc(sizeof(double) * (size_t)n * 2, "benchmark samples");
    if (!s) return WICK_ENOMEM;
    double *dev = s + n, sum = 0;
    memcpy(s, x, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    out->n = n;
    out->median = median_sorted(s, n);
    for (int i = 0; i < n; i++) {
        dev[i] = fabs(s[i] - out->median);
        sum += s[i];
    }
    qsort(dev, (size_t)n, sizeof *dev, cmp_double);
    out->mad = median_sorted(dev, n);
    out->mean = sum / n;
    out->min = s[0];
    out->max = s[n - 1];
    int j;
    out->ci_level = wk_stats_median_ci_rank(n, 0.95, &j);
    out->ci_lo = s[j - 1];
    out->ci_hi = s[n - j];
    wk_free(s);
    return WICK_OK;
}
