/*
 * adapter.c — the wick_adapter object: allocation (every A and B carved from
 * one f32 buffer), PEFT's initialisations for new adapters, lookup of a
 * (layer, projection) pair for the decoder, and descriptions.
 */
#include "lora/adapter.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

const char *wick_lora_target_name(int p) { return p >= 0 && p < WK_P_COUNT ? wk_proj_names[p] : NULL; }

const wk_lora *wk_adapter_pair(const wick_adapter *a, int l, wk_proj p) {
    if (l >= a->n_layers) return NULL;
    const wk_slot *s = wk_adapter_slot(a, l, p);
    return s->lp.A ? &s->lp : NULL;
}

const wick_model *wk_adapter_model(const wick_adapter *a) { return a->m; }

wick_lora_config wick_lora_config_default(void) {
    wick_lora_config c = {.r = 8, .alpha = 16, .dropout = 0, .use_rslora = 0, .targets = WICK_LORA_ALL,
                          .init = WICK_LORA_INIT_KAIMING, .name = NULL};
    return c;
}

wick_adapter *wk_adapter_alloc(const char *name, int n_layers) {
    wick_adapter *a = wk_calloc(sizeof *a, "adapter");
    if (!a) return NULL;
    a->name = wk_strdup(name ? name : "default");
    a->n_layers = n_layers;
    a->slots = wk_calloc(sizeof(wk_slot) * (size_t)(n_layers > 0 ? n_layers : 1) * WK_P_COUNT, "adapter slots");
    if (!a->name || !a->slots) {
        wick_adapter_free(a);
        return NULL;
    }
    return a;
}

/* Asks for transparent huge pages on the 2 MB-aligned interior of a fresh buffer: a large
 * adapter then takes a few dozen page faults instead of tens of thousands. */
static void advise_huge(void *p, size_t n) {
#ifdef MADV_HUGEPAGE
    const uintptr_t H = (uintptr_t)2 << 20;
    uintptr_t b = ((uintptr_t)p + H - 1) & ~(H - 1), e = ((uintptr_t)p + n) & ~(H - 1);
    if (e > b) madvise((void *)b, e - b, MADV_HUGEPAGE);
#endif
}

wick_status wk_adapter_alloc_data(wick_adapter *a) {
    size_t n = 0;
    for (int i = 0; i < a->n_layers * WK_P_COUNT; i++) {
        const wk_slot *s = &a->slots[i];
        if (s->lp.r > 0) n += (size_t)s->lp.r * ((size_t)s->in + (size_t)s->out);
    }
    a->data = wk_malloc(sizeof(float) * (n ? n : 1), "adapter weights");
    if (!a->data) return WICK_ENOMEM;
    advise_huge(a->data, sizeof(float) * n);
    a->n_floats = n;
    float *p = a->data;
    a->targets = 0;
    for (int i = 0; i < a->n_layers * WK_P_COUNT; i++) {
        wk_slot *s = &a->slots[i];
        if (s->lp.r <= 0) continue;
        s->lp.A = p;
        p += (size_t)s->lp.r * s->in;
        s->lp.B = p;
        p += (size_t)s->lp.r * s->out;
        a->targets |= 1u << (i % WK_P_COUNT);
    }
    return WICK_OK;
}

extern wick_status wick_adapter_unmerge(wick_model *m, wick_adapter *a);

void wick_adapter_free(wick_adapter *a) {
    if (!a) return;
    if (a->merged_into) wick_adapter_unmerge(a->merged_into, a);
    wk_adapter_free_device(a);
    wk_free(a->merged_layers);
    wk_free(a->merged_dev);
    wk_free(a->merged_orig);
    wk_free(a->merged_buf);
    wk_free(a->data);
    wk_free(a->data16);
    wk_free(a->slots);
    wk_free(a->config_json);
    wk_free(a->name);
    wk_free(a);
}

/* ---- initialisation (splitmix64 counter stream: deterministic for a seed and tensor) */
static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double unif01(uint64_t *x) { return (double)(splitmix(x) >> 11) * (1.0 / 9007199254740992.0); }

static void fill_uniform(float *p, size_t n, double bound, uint64_t *rs) {
    for (size_t i = 0; i < n; i++) p[i] = (float)((2 * unif01(rs) - 1) * bound);
}

static void fill_normal(float *p, size_t n, double std, uint64_t *rs) {
    for (size_t i = 0; i < n; i++) {
        double u1 = unif01(rs), u2 = unif01(rs);
        p[i] = (float)(std * sqrt(-2.0 * log(1.0 - u1)) * cos(2 * M_PI * u2));
    }
}

/* PEFT reset_lora_parameters: kaiming_uniform_(a=sqrt(5)) gives U(±1/sqrt(fan_in)). */
static void init_pair(wk_slot *s, wick_lora_init init, uint64_t seed, int idx) {
    uint64_t rs = seed * 0x2545f4914f6cdd1dull + (uint64_t)idx * 0x9e3779b97f4a7c15ull + 1;
    size_t na = (size_t)s->lp.r * s->in, nb = (size_t)s->lp.r * s->out;
    if (init == WICK_LORA_INIT_GAUSSIAN) fill_normal(s->lp.A, na, 1.0 / s->lp.r, &rs);
    else fill_uniform(s->lp.A, na, 1.0 / sqrt((double)s->in), &rs);
    if (init == WICK_LORA_INIT_RANDOM) fill_uniform(s->lp.B, nb, 1.0 / sqrt((double)s->lp.r), &rs);
    else memset(s->lp.B, 0, nb * sizeof(float));
}

wick_status wick_adapter_new(wick_model *m, const wick_lora_config *cfg, uint64_t seed, wick_adapter **out) {
    *out = NULL;
    wick_lora_config c = cfg ? *cfg : wick_lora_config_default();
    if (!m) return wk_err(WICK_EINVAL, "adapter_new: no model");
    if (c.r <= 0 || c.r > 65536) return wk_err(WICK_EINVAL, "adapter_new: rank r=%d must be positive", c.r);
    if (!isfinite(c.alpha) || !isfinite(c.dropout) || c.dropout < 0 || c.dropout >= 1)
        return wk_err(WICK_EINVAL, "adapter_new: alpha %g and dropout %g must be finite, dropout in [0,1)", c.alpha, c.dropout);
    if (c.targets == 0) c.targets = WICK_LORA_ALL;
    if (c.targets & ~(unsigned)WICK_LORA_ALL) return wk_err(WICK_EINVAL, "adapter_new: targets mask 0x%x has unknown bits", c.targets);
    if ((unsigned)c.init > WICK_LORA_INIT_RANDOM) return wk_err(WICK_EINVAL, "adapter_new: unknown init %d", (int)c.init);
    wick_adapter *a = wk_adapter_alloc(c.name, m->c.n_layers);
    if (!a) return WICK_ENOMEM;
    a->m = m;
    a->r = c.r;
    a->alpha = c.alpha;
    a->dropout = c.dropout;
    a->use_rslora = c.use_rslora;
    static const char *const init_json[] = {"true", "\"gaussian\"", "false"};
    a->init_name = init_json[c.init];
    for (int l = 0; l < m->c.n_layers; l++)
        for (int p = 0; p < WK_P_COUNT; p++) {
            if (!(c.targets & (1u << p))) continue;
            wk_slot *s = wk_adapter_slot(a, l, p);
            s->lp.r = c.r;
            s->lp.scale = wk_lora_scale(c.alpha, c.r, c.use_rslora);
            s->alpha = c.alpha;
            s->in = m->layers[l].p[p].cols;
            s->out = m->layers[l].p[p].rows;
        }
    wick_status st = wk_adapter_alloc_data(a);
    if (st) {
        wick_adapter_free(a);
        return st;
    }
    for (int i = 0; i < a->n_layers * WK_P_COUNT; i++)
        if (a->slots[i].lp.A) init_pair(&a->slots[i], c.init, seed, i);
    *out = a;
    return WICK_OK;
}

wick_status wick_adapter_get_info(const wick_adapter *a, wick_adapter_info *o) {
    memset(o, 0, sizeof *o);
    if (!a) return wk_err(WICK_EINVAL, "adapter_get_info: no adapter");
    o->name = a->name;
    o->r = a->r;
    o->alpha = (float)a->alpha;
    o->scale = wk_lora_scale(a->alpha, a->r, a->use_rslora);
    o->use_rslora = a->use_rslora;
    o->targets = a->targets;
    o->n_layers = a->n_layers;
    for (int i = 0; i < a->n_layers * WK_P_COUNT; i++) o->n_pairs += a->slots[i].lp.A != NULL;
    o->n_params = (int64_t)a->n_floats;
    o->bytes = (int64_t)(a->n_floats * sizeof(float));
    o->bound = a->m != NULL;
    return WICK_OK;
}

wick_status wick_adapter_pair_info(const wick_adapter *a, int layer, int proj, wick_lora_pair_info *o) {
    memset(o, 0, sizeof *o);
    if (layer < 0 || layer >= a->n_layers || proj < 0 || proj >= WK_P_COUNT)
        return wk_err(WICK_ERANGE, "adapter '%s': no layer %d / projection %d", a->name, layer, proj);
    const wk_slot *s = wk_adapter_slot(a, layer, proj);
    if (!s->lp.A) return wk_err(WICK_ERANGE, "adapter '%s': layer %d %s is not adapted", a->name, layer, wk_proj_names[proj]);
    *o = (wick_lora_pair_info){.r = s->lp.r, .in = s->in, .out = s->out, .alpha = (float)s->alpha, .scale = s->lp.scale};
    return WICK_OK;
}

wick_status wk_adapter_clone(const wick_adapter *a, wick_model *m, wick_adapter **out) {
    *out = NULL;
    if (a->m && m->c.n_layers != a->m->c.n_layers)
        return wk_err(WICK_EINVAL, "adapter clone: model has %d layers, the adapter %d", m->c.n_layers, a->n_layers);
    wick_adapter *b = wk_adapter_alloc(a->name, a->n_layers);
    if (!b) return WICK_ENOMEM;
    memcpy(b->slots, a->slots, sizeof(wk_slot) * (size_t)a->n_layers * WK_P_COUNT);
    b->m = m;
    b->r = a->r, b->alpha = a->alpha, b->dropout = a->dropout, b->use_rslora = a->use_rslora;
    b->init_name = a->init_name;
    wick_status st = wk_adapter_alloc_data(b);
    if (!st && a->config_json && !(b->config_json = wk_strdup(a->config_json))) st = WICK_ENOMEM;
    if (st) {
        wick_adapter_free(b);
        return st;
    }
    memcpy(b->data, a->data, sizeof(float) * a->n_floats);
    *out = b;
    return WICK_OK;
}
