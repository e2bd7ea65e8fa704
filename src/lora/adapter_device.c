/*
 * adapter_device.c — an adapter's A/B in a device backend's memory. The first
 * session that selects an adapter on a device backend uploads every A and B in
 * one copy (the same layout as the host buffer); the copy is kept for that
 * (adapter, backend) until the adapter is freed, so switching adapters later is
 * a pointer switch. A process-wide mutex makes the lazy upload safe for sessions
 * on several threads sharing an adapter (the registry). The host A/B stay the
 * source of truth: nothing on a device backend writes them (training on device
 * backends is refused), so a copy never goes stale.
 */
#include "lora/adapter.h"

#include <pthread.h>

/* One adapter's device copy for one backend. */
struct wk_adapter_dev {
    wk_backend *be;
    float *data;             /* (n_floats) every A and B, device memory */
    wk_lora *pairs;          /* (n_layers, WK_P_COUNT) host array of device pointers; A == NULL: not adapted */
    struct wk_adapter_dev *next;
};

static pthread_mutex_t g_dev_mu = PTHREAD_MUTEX_INITIALIZER;

/* The device copy of a for be, or NULL with the error set. */
static wk_adapter_dev *upload(wick_adapter *a, wk_backend *be) {
    size_t np = (size_t)a->n_layers * WK_P_COUNT;
    wk_adapter_dev *d = wk_calloc(sizeof *d, "adapter device copy");
    if (!d) return NULL;
    d->be = be;
    d->pairs = wk_calloc(sizeof(wk_lora) * (np ? np : 1), "adapter device pairs");
    d->data = d->pairs ? be->alloc(be, sizeof(float) * (a->n_floats ? a->n_floats : 1)) : NULL;
    if (!d->data) {
        if (d->pairs) wk_err_prefix(WICK_ENOMEM, "adapter '%s': device copy of %zu bytes", a->name, sizeof(float) * a->n_floats);
        wk_free(d->pairs);
        wk_free(d);
        return NULL;
    }
    be->upload(be, d->data, a->data, sizeof(float) * a->n_floats);
    for (size_t i = 0; i < np; i++) {
        const wk_lora *h = &a->slots[i].lp;
        if (!h->A) continue;
        d->pairs[i] = *h;
        d->pairs[i].A = d->data + (h->A - a->data);
        d->pairs[i].B = d->data + (h->B - a->data);
    }
    be->sync(be);
    wick_status st = be->check ? be->check(be) : WICK_OK;
    if (st) {
        be->free(be, d->data);
        wk_free(d->pairs);
        wk_free(d);
        wk_err_prefix(st, "adapter '%s': uploading to %s", a->name, be->name);
        return NULL;
    }
    return d;
}

wick_status wk_adapter_pairs_on(const wick_adapter *ca, wk_backend *be, const wk_lora **pairs) {
    wick_adapter *a = (wick_adapter *)ca; /* the device cache is not part of the adapter's value */
    *pairs = NULL;
    if (!be->device_memory) return WICK_OK;
    pthread_mutex_lock(&g_dev_mu);
    wk_adapter_dev *d = a->dev;
    while (d && d->be != be) d = d->next;
    if (!d && (d = upload(a, be))) {
        d->next = a->dev;
        a->dev = d;
    }
    pthread_mutex_unlock(&g_dev_mu);
    if (!d) return wk_err_prefix(WICK_ENOMEM, "session: adapter '%s' on %s", a->name, be->name);
    *pairs = d->pairs;
    return WICK_OK;
}

void wk_adapter_free_device(wick_adapter *a) {
    pthread_mutex_lock(&g_dev_mu);
    wk_adapter_dev *d = a->dev;
    a->dev = NULL;
    pthread_mutex_unlock(&g_dev_mu);
    while (d) {
        wk_adapter_dev *n = d->next;
        d->be->free(d->be, d->data);
        wk_free(d->pairs);
        wk_free(d);
        d = n;
    }
}
