/*
 * replicas.c — the replicas of `wick serve --gpus N` and what a request is routed by:
 *   - the session pool: every replica (one per GPU; one without --gpus) has --parallel slots;
 *     a request takes a free slot of the replica with the fewest busy slots, where a replica
 *     that does not hold the request's adapter counts SRV_MISS_COST more — so requests go
 *     where their adapter already is unless that GPU is clearly the busier one;
 *   - the adapter catalog: name -> directory and the set of replicas holding it. An adapter is
 *     loaded on one replica (round-robin at start, the one with the fewest adapters on POST
 *     /v1/adapters) and copied to another when a request is routed there (milliseconds: the
 *     registry loads the PEFT files onto that GPU). Unloading removes it from every replica.
 * Loads, unloads and on-demand copies hold cat_mu (so an unload never races a copy); the
 * residency bits also change under mu, which routing holds. Registry loads, unloads and
 * releases may upload or free an adapter's device copy: they hold the replica's device lock.
 * Lock order: cat_mu, dev_mu, mu.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "serve.h"
#include "wk.h"

srv_rep *srv_rep_of(srv *s, int slot) { return s->seq[slot].rep; }

void srv_dev_lock(srv_rep *r) {
    if (r->dev_mu) pthread_mutex_lock(r->dev_mu);
}

void srv_dev_unlock(srv_rep *r) {
    if (r->dev_mu) pthread_mutex_unlock(r->dev_mu);
}

/* Catalog index of name, -1 if none (under cat_mu or mu). */
static int cat_find(srv *s, const char *name) {
    for (int i = 0; i < s->n_cat; i++)
        if (!strcmp(s->cat[i].name, name)) return i;
    return -1;
}

int srv_rep_busy(const srv *s, const srv_rep *r) {
    int n = 0;
    for (int i = 0; i < r->n_slot; i++) n += s->busy[r->slot0 + i];
    return n;
}

/* The free slot of the best replica for adapter `ad` (NULL: base); -1 if every slot is busy. Under mu. */
static int route(srv *s, const char *ad) {
    int ci = ad ? cat_find(s, ad) : -1, best = -1, best_score = 0;
    for (int k = 0; k < s->n_rep; k++) {
        srv_rep *r = &s->rep[k];
        int free_slot = -1;
        for (int i = 0; i < r->n_slot && free_slot < 0; i++)
            if (!s->busy[r->slot0 + i]) free_slot = r->slot0 + i;
        if (free_slot < 0) continue;
        int score = srv_rep_busy(s, r) + (ci >= 0 && !(s->cat[ci].on >> k & 1) ? SRV_MISS_COST : 0);
        if (best < 0 || score < best_score) best = free_slot, best_score = score;
    }
    return best;
}

int srv_acquire_slot(srv *s, const char *adapter) {
    pthread_mutex_lock(&s->mu);
    int slot = -1;
    for (;;) {
        slot = route(s, adapter);
        if (slot >= 0 || s->stopping) break;
        if (s->waiting >= s->o.max_queue) break;
        s->waiting++;
        pthread_cond_wait(&s->cv, &s->mu);
        s->waiting--;
    }
    if (slot >= 0 && s->stopping) slot = -1;
    if (slot >= 0) s->busy[slot] = 1;
    pthread_mutex_unlock(&s->mu);
    return slot;
}

void srv_release_slot(srv *s, int slot) {
    pthread_mutex_lock(&s->mu);
    s->busy[slot] = 0;
    s->seq[slot].live = 0;
    pthread_cond_broadcast(&s->cv); /* waiters re-route: any of them may fit this replica best */
    pthread_cond_signal(&s->seq[slot].rep->sched_cv);
    pthread_mutex_unlock(&s->mu);
}

int srv_adapter_known(srv *s, const char *name) {
    pthread_mutex_lock(&s->mu);
    int k = cat_find(s, name) >= 0;
    pthread_mutex_unlock(&s->mu);
    return k;
}

/* The replica a new adapter goes to: the fewest adapters, then the fewest busy slots. Under cat_mu. */
static int place(srv *s) {
    int best = 0, best_n = 0, best_busy = 0;
    pthread_mutex_lock(&s->mu);
    for (int k = 0; k < s->n_rep; k++) {
        int n = 0, busy = srv_rep_busy(s, &s->rep[k]);
        for (int i = 0; i < s->n_cat; i++) n += (int)(s->cat[i].on >> k & 1);
        if (k == 0 || n < best_n || (n == best_n && busy < best_busy)) best = k, best_n = n, best_busy = busy;
    }
    pthread_mutex_unlock(&s->mu);
    return best;
}

int srv_adapter_add(srv *s, const char *name, const char *dir, int rep) {
    if (strlen(name) >= sizeof s->cat[0].name || strlen(dir) >= sizeof s->cat[0].dir) {
        wk_err(WICK_EINVAL, "adapter name or directory too long");
        return SRV_LOAD_FAILED;
    }
    pthread_mutex_lock(&s->cat_mu);
    int ret = SRV_OK;
    if (cat_find(s, name) >= 0) {
        ret = SRV_EXISTS;
        wk_err(WICK_EINVAL, "adapter '%s' is already loaded", name);
    } else if (s->n_cat == s->cap_cat && !(s->cat = realloc(s->cat, sizeof *s->cat * (size_t)(s->cap_cat = s->cap_cat * 2 + 8)))) {
        ret = SRV_LOAD_FAILED, s->cap_cat = s->n_cat = 0;
        wk_err(WICK_ENOMEM, "serve: out of memory for the adapter catalog");
    } else {
        int k = rep >= 0 ? rep % s->n_rep : place(s);
        srv_dev_lock(&s->rep[k]);
        wick_status st = wick_registry_load(s->rep[k].reg, name, dir);
        srv_dev_unlock(&s->rep[k]);
        if (st) ret = SRV_LOAD_FAILED;
        else {
            srv_adapter a = {.on = 1ull << k};
            snprintf(a.name, sizeof a.name, "%s", name), snprintf(a.dir, sizeof a.dir, "%s", dir);
            pthread_mutex_lock(&s->mu);
            s->cat[s->n_cat++] = a;
            pthread_mutex_unlock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->cat_mu);
    return ret;
}

int srv_adapter_remove(srv *s, const char *name) {
    pthread_mutex_lock(&s->cat_mu);
    int ci = cat_find(s, name), ret = ci < 0 ? SRV_NOT_FOUND : SRV_OK;
    for (int k = 0; ci >= 0 && k < s->n_rep; k++) {
        if (!(s->cat[ci].on >> k & 1)) continue;
        srv_dev_lock(&s->rep[k]);
        wick_status st = wick_registry_unload(s->rep[k].reg, name);
        srv_dev_unlock(&s->rep[k]);
        if (st == WICK_ESTATE) {
            ret = SRV_IN_USE; /* it stays on this replica (and is served from it) */
            continue;
        }
        pthread_mutex_lock(&s->mu);
        s->cat[ci].on &= ~(1ull << k);
        pthread_mutex_unlock(&s->mu);
    }
    if (ci >= 0 && ret == SRV_OK) {
        pthread_mutex_lock(&s->mu);
        memmove(&s->cat[ci], &s->cat[ci + 1], sizeof *s->cat * (size_t)(--s->n_cat - ci)); /* keeps the order */
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&s->cat_mu);
    return ret;
}

wick_adapter *srv_adapter_acquire(srv *s, srv_rep *r, const char *name, int *why) {
    wick_adapter *a = wick_registry_acquire(r->reg, name);
    *why = SRV_OK;
    if (a) return a;
    pthread_mutex_lock(&s->cat_mu); /* copy it here from the catalog's directory */
    int ci = cat_find(s, name);
    a = ci >= 0 ? wick_registry_acquire(r->reg, name) : NULL; /* another request may have copied it */
    wick_status st = WICK_OK;
    if (ci >= 0 && !a) {
        srv_dev_lock(r);
        st = wick_registry_load(r->reg, name, s->cat[ci].dir);
        srv_dev_unlock(r);
    }
    if (ci < 0) *why = SRV_NOT_FOUND;
    else if (!a && st) *why = SRV_LOAD_FAILED;
    else if (!a) {
        pthread_mutex_lock(&s->mu);
        s->cat[ci].on |= 1ull << r->idx;
        r->adapter_loads++;
        pthread_mutex_unlock(&s->mu);
        a = wick_registry_acquire(r->reg, name);
        if (!a) *why = SRV_NOT_FOUND;
    }
    pthread_mutex_unlock(&s->cat_mu);
    return a;
}

int srv_adapter_names(srv *s, char (*names)[72], int cap) {
    pthread_mutex_lock(&s->mu);
    int n = 0;
    for (; n < s->n_cat && n < cap; n++) memcpy(names[n], s->cat[n].name, sizeof names[n]);
    pthread_mutex_unlock(&s->mu);
    return n;
}

int srv_rep_adapters(srv *s, int k) {
    int n = 0;
    for (int i = 0; i < s->n_cat; i++) n += (int)(s->cat[i].on >> k & 1);
    return n;
}
