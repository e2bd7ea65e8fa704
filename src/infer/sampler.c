/*
 * sampler.c — logits -> next token id, with Hugging Face's semantics and order:
 * logit bias, repetition penalty (HF), presence/frequency penalties (OpenAI), then
 * temperature, top-k, top-p, min-p, and a draw from a seeded xoshiro256** generator.
 *
 * Nothing here sorts the vocabulary. Penalties touch only the ids seen so far; top-k
 * finds the k-th value with a small heap (or quickselect when k is large); top-p
 * first finds a weight threshold whose tokens already hold top_p of the mass (one
 * vectorized pass measures four thresholds), so only those few can be kept, then sorts them (or, for
 * a flat distribution, buckets them by log-weight and sorts only the bucket where
 * the mass crosses top_p); min-p is a threshold on exp(x - max). Every filter keeps
 * a prefix of the descending order, so the kept set is the one HF's full sorts give.
 */
#include "infer.h"

#include <math.h>
#include <stdlib.h>

#define TOPP_SORT_MAX 2048 /* candidate sets up to this size are sorted directly */
#define TOPP_BINS 2033     /* buckets of 1/16 octave of weight in (0, 1], and 0 */
#define HEAP_K_MAX 256     /* top-k up to this uses a heap, above it quickselect */

typedef struct {
    float w;
    int32_t id;
} wk_cand;

struct wick_sampler {
    wick_sampler_opts o;
    wick_logit_bias *bias; /* o.logit_bias copied (n_logit_bias) */
    int V;
    wk_rng rng;
    uint8_t *in_prompt; /* [V] 1 when the id is in the prompt */
    int32_t *count;     /* [V] times the id was generated */
    int32_t *touched;   /* [V] ids in the prompt or generated, each once */
    int n_touched;
    int32_t *cid;       /* [V] candidate ids */
    float *cx;          /* [V] candidate scaled logits; scratch for top-k */
    float *cw;          /* [V] candidate weights exp(x - max) */
    wk_cand *pairs;     /* [V] scratch for sorting */
    float *wf;          /* [V] weights by id (full-vocabulary paths) */
    double *bsum;       /* [V / WK_EXP_BLOCK + 1] block sums of wf */
};

/* The sampling distribution: explicit (cid, cw)[0..n), or wf by id when full. */
typedef struct {
    int n, full;
    double z; /* total weight */
} wk_dist;

/* ------------------------------------------------------------------ RNG */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void wk_rng_seed(wk_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t wk_rng_next(wk_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double wk_rng_uniform(wk_rng *r) { return (double)(wk_rng_next(r) >> 11) * 0x1.0p-53; }

/* ------------------------------------------------------- vector helpers */

void wk_top_logprobs(const float *x, int n, int k, double lse, wick_top_logprob *top) {
    float val[WICK_MAX_TOP_LOGPROBS];
    int32_t id[WICK_MAX_TOP_LOGPROBS];
    int have = 0;
    for (int i = 0; i < n; i++) {
        float v = x[i];
        if (have == k && !(v > val[k - 1])) continue;
        if (v != v) continue;
        int j = have < k ? have++ : k - 1;
        while (j > 0 && v > val[j - 1]) val[j] = val[j - 1], id[j] = id[j - 1], j--;
        val[j] = v, id[j] = i;
    }
    for (int j = 0; j < have; j++) top[j] = (wick_top_logprob){id[j], (float)((double)val[j] - lse)};
    for (int j = have; j < k; j++) top[j] = (wick_top_logprob){-1, -INFINITY};
}

static inline float no_nan(float v) { return v == v ? v : -INFINITY; }

static void sift_down(float *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l] < h[m]) m = l;
        if (r < n && h[r] < h[m]) m = r;
        if (m == i) return;
        float t = h[i];
        h[i] = h[m], h[m] = t, i = m;
    }
}

/* k-th largest through a min-heap of the k best seen so far: O(n) compares. */
static float kth_heap(const float *x, int n, int k, float *h) {
    for (int i = 0; i < k; i++) h[i] = no_nan(x[i]);
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(h, k, i);
    for (int i = k; i < n; i++)
        if (x[i] > h[0]) h[0] = x[i], sift_down(h, k, 0);
    return h[0];
}

/* k-th largest through Hoare quickselect on a copy: O(n) expected. */
static float kth_select(const float *x, int n, int k, float *a) {
    for (int i = 0; i < n; i++) a[i] = no_nan(x[i]);
    int lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        float p0 = a[lo], p1 = a[(lo + hi) / 2], p2 = a[hi];
        float pivot = fmaxf(fminf(p0, p1), fminf(fmaxf(p0, p1), p2)); /* median of three */
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) {
                float t = a[i];
                a[i++] = a[j], a[j--] = t;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else return a[want];
    }
    return a[want];
}

float wk_kth_largest(const float *x, int n, int k, float *scratch) {
    return k <= HEAP_K_MAX ? kth_heap(x, n, k, scratch) : kth_select(x, n, k, scratch);
}

/* -------------------------------------------------------------- options */

wick_sampler_opts wick_sampler_opts_default(void) {
    return (wick_sampler_opts){.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
                               .repetition_penalty = 1.0f, .presence_penalty = 0.0f,
                               .frequency_penalty = 0.0f, .logit_bias = NULL, .n_logit_bias = 0, .seed = 0};
}

static wick_status check_opts(const wick_sampler_opts *o, int V) {
    if (V < 1) return wk_err(WICK_EINVAL, "sampler: vocab size %d, expected >= 1", V);
    if (!(o->temperature == o->temperature)) return wk_err(WICK_EINVAL, "sampler: temperature is NaN");
    if (o->top_k < 0) return wk_err(WICK_EINVAL, "sampler: top_k %d, expected >= 0", o->top_k);
    if (!(o->top_p >= 0 && o->top_p <= 1))
        return wk_err(WICK_EINVAL, "sampler: top_p %g, expected in [0, 1]", (double)o->top_p);
    if (!(o->min_p >= 0 && o->min_p <= 1))
        return wk_err(WICK_EINVAL, "sampler: min_p %g, expected in [0, 1]", (double)o->min_p);
    if (!(o->repetition_penalty > 0 && isfinite(o->repetition_penalty)))
        return wk_err(WICK_EINVAL, "sampler: repetition_penalty %g, expected > 0", (double)o->repetition_penalty);
    if (!isfinite(o->presence_penalty) || !isfinite(o->frequency_penalty))
        return wk_err(WICK_EINVAL, "sampler: presence/frequency penalty must be finite");
    if (o->n_logit_bias < 0 || (o->n_logit_bias > 0 && !o->logit_bias))
        return wk_err(WICK_EINVAL, "sampler: logit_bias is NULL with n_logit_bias %d", o->n_logit_bias);
    for (int i = 0; i < o->n_logit_bias; i++) {
        if (o->logit_bias[i].id < 0 || o->logit_bias[i].id >= V)
            return wk_err(WICK_ERANGE, "sampler: logit_bias[%d] id %d outside the vocabulary [0, %d)", i,
                          (int)o->logit_bias[i].id, V);
        if (o->logit_bias[i].bias != o->logit_bias[i].bias)
            return wk_err(WICK_EINVAL, "sampler: logit_bias[%d] is NaN", i);
    }
    return WICK_OK;
}

wick_status wick_sampler_new(const wick_sampler_opts *o, int vocab, wick_sampler **out) {
    wick_sampler_opts def = wick_sampler_opts_default();
    if (!out) return wk_err(WICK_EINVAL, "wick_sampler_new: out is NULL");
    *out = NULL;
    if (!o) o = &def;
    wick_status st = check_opts(o, vocab);
    if (st) return st;
    wick_sampler *s = wk_calloc(sizeof *s, "sampler");
    if (!s) return WICK_ENOMEM;
    s->o = *o;
    s->V = vocab;
    size_t V = (size_t)vocab;
    s->in_prompt = wk_calloc(V, "sampler prompt flags");
    s->count = wk_calloc(V * sizeof(int32_t), "sampler counts");
    s->touched = wk_malloc(V * sizeof(int32_t), "sampler history");
    s->cid = wk_malloc(V * sizeof(int32_t), "sampler candidate ids");
    s->cx = wk_malloc(V * sizeof(float), "sampler candidate logits");
    s->cw = wk_malloc(V * sizeof(float), "sampler candidate weights");
    s->pairs = wk_malloc(V * sizeof(wk_cand), "sampler sort scratch");
    s->wf = wk_malloc(V * sizeof(float), "sampler weights");
    s->bsum = wk_malloc((V / WK_EXP_BLOCK + 1) * sizeof(double), "sampler block sums");
    if (o->n_logit_bias) s->bias = wk_malloc((size_t)o->n_logit_bias * sizeof *s->bias, "sampler logit bias");
    if (!s->in_prompt || !s->count || !s->touched || !s->cid || !s->cx || !s->cw || !s->pairs || !s->wf || !s->bsum ||
        (o->n_logit_bias && !s->bias)) {
        wick_sampler_free(s);
        return WICK_ENOMEM;
    }
    if (o->n_logit_bias) memcpy(s->bias, o->logit_bias, (size_t)o->n_logit_bias * sizeof *s->bias);
    s->o.logit_bias = s->bias;
    wk_rng_seed(&s->rng, o->seed);
    *out = s;
    return WICK_OK;
}

void wick_sampler_free(wick_sampler *s) {
    if (!s) return;
    wk_free(s->in_prompt);
    wk_free(s->count);
    wk_free(s->touched);
    wk_free(s->cid);
    wk_free(s->cx);
    wk_free(s->cw);
    wk_free(s->pairs);
    wk_free(s->wf);
    wk_free(s->bsum);
    wk_free(s->bias);
    wk_free(s);
}

void wick_sampler_reset(wick_sampler *s, uint64_t seed) {
    if (!s) return;
    for (int i = 0; i < s->n_touched; i++) s->in_prompt[s->touched[i]] = 0, s->count[s->touched[i]] = 0;
    s->n_touched = 0;
    wk_rng_seed(&s->rng, seed);
}

/* ------------------------------------------------------------- history */

static wick_status check_id(const wick_sampler *s, int32_t id) {
    if (id < 0 || id >= s->V) return wk_err(WICK_ERANGE, "sampler: id %d outside the vocabulary [0, %d)", (int)id, s->V);
    return WICK_OK;
}

wick_status wick_sampler_add_prompt(wick_sampler *s, const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) {
        if (check_id(s, ids[i])) return wk_err_prefix(WICK_ERANGE, "prompt id %d", i);
        int32_t id = ids[i];
        if (!s->in_prompt[id] && !s->count[id]) s->touched[s->n_touched++] = id;
        s->in_prompt[id] = 1;
    }
    return WICK_OK;
}

wick_status wick_sampler_accept(wick_sampler *s, int32_t id) {
    if (check_id(s, id)) return WICK_ERANGE;
    if (!s->in_prompt[id] && !s->count[id]) s->touched[s->n_touched++] = id;
    s->count[id]++;
    return WICK_OK;
}

/* Logit bias, then the repetition penalty and presence/frequency penalties on seen ids. */
static void apply_penalties(const wick_sampler *s, float *l) {
    for (int i = 0; i < s->o.n_logit_bias; i++) l[s->bias[i].id] += s->bias[i].bias;
    float rep = s->o.repetition_penalty, pres = s->o.presence_penalty, freq = s->o.frequency_penalty;
    if (rep == 1.0f && pres == 0.0f && freq == 0.0f) return;
    for (int i = 0; i < s->n_touched; i++) {
        int32_t t = s->touched[i];
        float x = l[t];
        if (rep != 1.0f) x = x < 0 ? x * rep : x / rep;
        int c = s->count[t];
        if (c) x -= (float)c * freq + pres;
        l[t] = x;
    }
}

/* ----------------------------------------------------------- filtering */

static int cmp_cand_desc(const void *a, const void *b) {
    float x = ((const wk_cand *)a)->w, y = ((const wk_cand *)b)->w;
    return (x < y) - (x > y);
}

/* Bucket of a weight in [0, 1]: 16 per octave, larger weights in lower buckets. */
static inline int wbin(float w) {
    uint32_t b;
    memcpy(&b, &w, sizeof b);
    return b >= 0x3F800000u ? 0 : (int)((0x3F800000u - b) >> 19);
}

/* Sorts pairs[0..np) by weight and appends to the kept set (cid, cw)[n..) those whose
 * mass ranked above is < limit, given `above` already ranked above all of them. */
static int topp_walk(wick_sampler *s, int n, int np, double above, double limit) {
    qsort(s->pairs, (size_t)np, sizeof *s->pairs, cmp_cand_desc);
    for (int j = 0; j < np && (above < limit || n == 0); j++) {
        s->cid[n] = s->pairs[j].id;
        s->cw[n++] = s->pairs[j].w;
        above += s->pairs[j].w;
    }
    return n;
}

/* Keeps the candidates (cid, cw)[0..n) whose mass ranked above them is < top_p * z
 * (at least one). Large sets: sorts only the bucket where the mass crosses. */
static int filter_top_p(wick_sampler *s, int n, double z) {
    double limit = (double)s->o.top_p * z;
    if (n <= TOPP_SORT_MAX) {
        for (int j = 0; j < n; j++) s->pairs[j] = (wk_cand){s->cw[j], s->cid[j]};
        return topp_walk(s, 0, n, 0.0, limit);
    }
    static _Thread_local double mass[TOPP_BINS];
    memset(mass, 0, sizeof mass);
    for (int j = 0; j < n; j++) mass[wbin(s->cw[j])] += s->cw[j];
    int cross = TOPP_BINS - 1;
    double above = 0;
    for (int b = 0; b < TOPP_BINS; b++) {
        if (above + mass[b] >= limit && mass[b] > 0) {
            cross = b;
            break;
        }
        above += mass[b];
    }
    int kept = 0, np = 0;
    for (int j = 0; j < n; j++) {
        int b = wbin(s->cw[j]);
        if (b < cross) s->cid[kept] = s->cid[j], s->cw[kept++] = s->cw[j];
        else if (b == cross) s->pairs[np++] = (wk_cand){s->cw[j], s->cid[j]};
    }
    above = 0;
    for (int j = 0; j < kept; j++) above += s->cw[j];
    return topp_walk(s, kept, np, above, limit);
}

static int filter_min_p(wick_sampler *s, int n) {
    float min_p = s->o.min_p;
    int kept = 0;
    for (int j = 0; j < n; j++)
        if (!(s->cw[j] < min_p) || s->cw[j] == 1.0f) s->cid[kept] = s->cid[j], s->cw[kept++] = s->cw[j];
    return kept;
}

static double sum_cw(const wick_sampler *s, int n) {
    double z = 0;
    for (int j = 0; j < n; j++) z += s->cw[j];
    return z;
}

/* top-k > 0: the k best (ties kept), scaled, weighted, then top-p and min-p. */
static wick_status topk_dist(wick_sampler *s, const float *l, wk_dist *d) {
    int V = s->V, n = 0;
    float T = s->o.temperature, kth = wk_kth_largest(l, V, s->o.top_k, s->cx);
    for (int i = 0; i < V; i++)
        if (l[i] >= kth) s->cid[n++] = i;
    for (int j = 0; j < n; j++) s->cx[j] = l[s->cid[j]] / T;
    float mx = wk_maxf(s->cx, n);
    if (!(mx > -INFINITY) || isinf(mx))
        return wk_err(WICK_EINVAL, "sampler: logits have no finite maximum (all -inf or NaN, or +inf)");
    for (int j = 0; j < n; j++) s->cw[j] = wk_exp_neg(s->cx[j] - mx), s->cw[j] = s->cw[j] == s->cw[j] ? s->cw[j] : 0;
    double z = sum_cw(s, n);
    if (s->o.top_p < 1.0f) n = filter_top_p(s, n, z);
    if (s->o.min_p > 0.0f) n = filter_min_p(s, n);
    *d = (wk_dist){n, 0, sum_cw(s, n)};
    return WICK_OK;
}

/* Gathers the ids whose weight (in wf) is >= tau into (cid, cw). */
static int gather_at_least(wick_sampler *s, float tau) {
    int n = 0;
    for (int i = 0; i < s->V; i++)
        if (s->wf[i] >= tau) s->cid[n] = i, s->cw[n++] = s->wf[i];
    return n;
}

/* Full vocabulary: top-p through a weight threshold holding top_p of the mass, min-p
 * through a logit threshold, or (neither) the whole weighted vocabulary. */
static wick_status full_dist(wick_sampler *s, const float *l, wk_dist *d) {
    int V = s->V;
    float T = s->o.temperature, m = wk_maxf(l, V);
    if (!(m > -INFINITY) || isinf(m))
        return wk_err(WICK_EINVAL, "sampler: logits have no finite maximum (all -inf or NaN, or +inf)");
    float mx = m / T; /* = max of l/T: division by T > 0 is monotone */
    if (s->o.top_p >= 1.0f && s->o.min_p > 0.0f) {
        float cut = T * (mx + logf(s->o.min_p) - 1e-3f - 1e-6f * fabsf(mx)), min_p = s->o.min_p;
        int n = 0;
        for (int i = 0; i < V; i++)
            if (l[i] >= cut) s->cid[n++] = i;
        int kept = 0;
        for (int j = 0; j < n; j++) {
            float w = wk_exp_neg(l[s->cid[j]] / T - mx);
            if (!(w < min_p) || w == 1.0f) s->cid[kept] = s->cid[j], s->cw[kept++] = w;
        }
        *d = (wk_dist){kept, 0, sum_cw(s, kept)};
        return WICK_OK;
    }
    double z = wk_exp_blocks(l, V, T, mx, s->wf, s->bsum);
    if (z != z) return wk_err(WICK_EINVAL, "sampler: logits contain NaN");
    if (s->o.top_p >= 1.0f) {
        *d = (wk_dist){V, 1, z};
        return WICK_OK;
    }
    static const float taus[5] = {0x1p-4f, 0x1p-10f, 0x1p-16f, 0x1p-24f, 0.0f};
    double mass[4];
    wk_mass_at_least4(s->wf, V, taus, mass);
    int t = 0;
    while (t < 4 && mass[t] < (double)s->o.top_p * z) t++;
    int n = filter_top_p(s, gather_at_least(s, taus[t]), z);
    if (s->o.min_p > 0.0f) n = filter_min_p(s, n);
    *d = (wk_dist){n, 0, sum_cw(s, n)};
    return WICK_OK;
}

/* ------------------------------------------------------------ sampling */

/* Draws from d: index into (cid, cw), or an id when d->full. -1 if no positive weight. */
static int draw(wick_sampler *s, const wk_dist *d, float *w_out) {
    double u = wk_rng_uniform(&s->rng) * d->z, acc = 0;
    int last = -1;
    if (!d->full) {
        for (int j = 0; j < d->n; j++) {
            if (s->cw[j] <= 0) continue;
            last = j, acc += s->cw[j];
            if (u < acc) break;
        }
        if (last >= 0) *w_out = s->cw[last];
        return last;
    }
    int nb = (s->V + WK_EXP_BLOCK - 1) / WK_EXP_BLOCK, b = 0;
    for (; b < nb - 1 && acc + s->bsum[b] <= u; b++) acc += s->bsum[b];
    for (; b < nb && last < 0; b++) /* within the block, then onwards past rounding */
        for (int i = b * WK_EXP_BLOCK, end = WK_MIN(s->V, i + WK_EXP_BLOCK); i < end; i++) {
            if (s->wf[i] <= 0) continue;
            last = i, acc += s->wf[i];
            if (u < acc) break;
        }
    if (last >= 0) *w_out = s->wf[last];
    return last;
}

static wick_status distribution(wick_sampler *s, const float *l, wk_dist *d) {
    return s->o.top_k > 0 && s->o.top_k < s->V ? topk_dist(s, l, d) : full_dist(s, l, d);
}

wick_status wick_sampler_sample(wick_sampler *s, float *logits, int32_t *id, float *prob) {
    apply_penalties(s, logits);
    if (s->o.temperature <= 0.0f) {
        int best = wk_argmax(logits, s->V);
        if (best < 0) return wk_err(WICK_EINVAL, "sampler: every logit is -inf or NaN");
        *id = best;
        if (prob) *prob = 1.0f;
        return WICK_OK;
    }
    wk_dist d;
    wick_status st = distribution(s, logits, &d);
    if (st) return st;
    float w = 0;
    int pick = draw(s, &d, &w);
    if (pick < 0) return wk_err(WICK_EINVAL, "sampler: no token has a positive probability");
    *id = d.full ? pick : s->cid[pick];
    if (prob) *prob = (float)(w / d.z);
    return WICK_OK;
}

wick_status wick_sampler_probs(wick_sampler *s, float *logits, float *probs) {
    apply_penalties(s, logits);
    if (s->o.temperature <= 0.0f) {
        int best = wk_argmax(logits, s->V);
        if (best < 0) return wk_err(WICK_EINVAL, "sampler: every logit is -inf or NaN");
        memset(probs, 0, (size_t)s->V * sizeof *probs);
        probs[best] = 1.0f;
        return WICK_OK;
    }
    wk_dist d;
    wick_status st = distribution(s, logits, &d);
    if (st) return st;
    if (d.full) {
        for (int i = 0; i < s->V; i++) probs[i] = (float)(s->wf[i] / d.z);
        return WICK_OK;
    }
    memset(probs, 0, (size_t)s->V * sizeof *probs);
    for (int j = 0; j < d.n; j++) probs[s->cid[j]] = (float)(s->cw[j] / d.z);
    return WICK_OK;
}
