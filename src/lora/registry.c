/*
 * registry.c — many adapters over one base model, by name. Sessions select one
 * with wick_session_set_adapter (a pointer swap: O(1), base weights untouched).
 * A mutex guards the table; acquire/release count holders so an adapter in use
 * cannot be unloaded under a running session.
 */
#include "lora/adapter.h"

#include <pthread.h>
#include <stdio.h>

struct wick_registry {
    wick_model *m;
    pthread_mutex_t mu;
    wick_adapter **a;
    int n, cap;
};

wick_status wick_registry_new(wick_model *m, wick_registry **out) {
    *out = NULL;
    if (!m) return wk_err(WICK_EINVAL, "registry: no model");
    wick_registry *r = wk_calloc(sizeof *r, "registry");
    if (!r) return WICK_ENOMEM;
    r->m = m;
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return WICK_OK;
}

void wick_registry_free(wick_registry *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) wick_adapter_free(r->a[i]);
    wk_free(r->a);
    pthread_mutex_destroy(&r->mu);
    wk_free(r);
}

static int find(const wick_registry *r, const char *name) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->a[i]->name, name)) return i;
    return -1;
}

wick_status wick_registry_add(wick_registry *r, const char *name, wick_adapter *a) {
    if (!r || !a) return wick_adapter_free(a), wk_err(WICK_EINVAL, "registry_add: no registry or adapter");
    if (a->m != r->m) return wick_adapter_free(a), wk_err(WICK_EINVAL, "registry_add: adapter is for another model");
    if (name && strcmp(name, a->name)) {
        char *nn = wk_strdup(name);
        if (!nn) return wick_adapter_free(a), WICK_ENOMEM;
        wk_free(a->name);
        a->name = nn;
    }
    wick_status st = WICK_OK;
    pthread_mutex_lock(&r->mu);
    if (find(r, a->name) >= 0) st = wk_err(WICK_EINVAL, "registry: an adapter named '%s' is already loaded", a->name);
    if (!st && r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 8;
        wick_adapter **na = wk_realloc(r->a, sizeof *na * (size_t)cap, "registry");
        if (!na) st = WICK_ENOMEM;
        else r->a = na, r->cap = cap;
    }
    if (!st) r->a[r->n++] = a;
    pthread_mutex_unlock(&r->mu);
    if (st) wick_adapter_free(a);
    return st;
}

wick_status wick_registry_load(wick_registry *r, const char *name, const char *dir) {
    if (!r) return wk_err(WICK_EINVAL, "registry_load: no registry");
    wick_adapter *a;
    wick_status st = wick_adapter_load(r->m, dir, &a);
    return st ? st : wick_registry_add(r, name, a);
}

wick_adapter *wick_registry_acquire(wick_registry *r, const char *name) {
    pthread_mutex_lock(&r->mu);
    int i = find(r, name);
    wick_adapter *a = i >= 0 ? r->a[i] : NULL;
    if (a) a->refs++;
    pthread_mutex_unlock(&r->mu);
    if (!a) wk_err(WICK_EINVAL, "registry: no adapter named '%s'", name);
    return a;
}

void wick_registry_release(wick_registry *r, wick_adapter *a) {
    if (!r || !a) return;
    pthread_mutex_lock(&r->mu);
    if (a->refs > 0) a->refs--;
    pthread_mutex_unlock(&r->mu);
}

wick_status wick_registry_unload(wick_registry *r, const char *name) {
    wick_status st = WICK_OK;
    wick_adapter *gone = NULL;
    pthread_mutex_lock(&r->mu);
    int i = find(r, name);
    if (i < 0) st = wk_err(WICK_EINVAL, "registry: no adapter named '%s'", name);
    else if (r->a[i]->refs > 0) st = wk_err(WICK_ESTATE, "registry: adapter '%s' is in use (%d holders)", name, r->a[i]->refs);
    else {
        gone = r->a[i];
        memmove(r->a + i, r->a + i + 1, sizeof *r->a * (size_t)(r->n - i - 1));
        r->n--;
    }
    pthread_mutex_unlock(&r->mu);
    wick_adapter_free(gone);
    return st;
}

int wick_registry_count(wick_registry *r) {
    pthread_mutex_lock(&r->mu);
    int n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

wick_status wick_registry_list(wick_registry *r, wick_adapter_info *out, int cap, int *n) {
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n && i < cap; i++) wick_adapter_get_info(r->a[i], &out[i]);
    *n = r->n;
    pthread_mutex_unlock(&r->mu);
    return WICK_OK;
}
