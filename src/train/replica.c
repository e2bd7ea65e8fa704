/*
 * replica.c — the CPU implementation of the replica runner (replica.h):
 * persistent worker pthreads for ranks 1.., a generation counter under one mutex
 * to start a run, a count of ranks still running to end it. Each rank sets its
 * own OpenMP thread count (an OpenMP ICV is per thread), so the OpenMP regions of
 * different ranks run as separate teams of threads/n threads each.
 */
#include "train/replica.h"

#include <omp.h>
#include <pthread.h>

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    pthread_t *th;
    int n_th, started;
    uint64_t gen;
    int pending, quit, active, per;
    wk_replica_fn fn;
    void *arg;
} cpu_rep;

typedef struct {
    wk_replicas *r;
    int rank;
} worker_arg;

static void *worker(void *p) {
    worker_arg wa = *(worker_arg *)p;
    wk_free(p);
    cpu_rep *c = wa.r->impl;
    uint64_t seen = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->gen == seen && !c->quit) pthread_cond_wait(&c->go, &c->mu);
        if (c->quit) break;
        seen = c->gen;
        if (wa.rank >= c->active) continue;
        wk_replica_fn fn = c->fn;
        void *arg = c->arg;
        int per = c->per;
        pthread_mutex_unlock(&c->mu);
        omp_set_num_threads(per);
        fn(arg, wa.rank, per);
        pthread_mutex_lock(&c->mu);
        if (--c->pending == 0) pthread_cond_signal(&c->done);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void cpu_run(wk_replicas *r, wk_replica_fn fn, void *arg, int n) {
    cpu_rep *c = r->impl;
    int per = WK_MAX(1, r->threads / n), prev = omp_get_max_threads();
    pthread_mutex_lock(&c->mu);
    c->fn = fn, c->arg = arg, c->active = n, c->per = per, c->pending = n - 1;
    c->gen++;
    pthread_cond_broadcast(&c->go);
    pthread_mutex_unlock(&c->mu);
    omp_set_num_threads(per);
    fn(arg, 0, per);
    omp_set_num_threads(prev);
    pthread_mutex_lock(&c->mu);
    while (c->pending > 0) pthread_cond_wait(&c->done, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void cpu_destroy(wk_replicas *r) {
    cpu_rep *c = r->impl;
    if (c) {
        pthread_mutex_lock(&c->mu);
        c->quit = 1;
        pthread_cond_broadcast(&c->go);
        pthread_mutex_unlock(&c->mu);
        for (int i = 0; i < c->started; i++) pthread_join(c->th[i], NULL);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->go);
        pthread_cond_destroy(&c->done);
        wk_free(c->th);
        wk_free(c);
    }
    wk_free(r);
}

static const wk_replicas_ops cpu_ops = {
    .name = "cpu", .run = cpu_run, .destroy = cpu_destroy};

wick_status wk_replicas_cpu_new(int size, int threads, wk_replicas **out) {
    *out = NULL;
    if (size < 1 || threads < 1) return wk_err(WICK_EINVAL, "replicas: %d ranks on %d threads", size, threads);
    wk_replicas *r = wk_calloc(sizeof *r, "replicas");
    cpu_rep *c = r ? wk_calloc(sizeof *c, "replicas") : NULL;
    if (!c) return wk_free(r), WICK_ENOMEM;
    *r = (wk_replicas){.ops = &cpu_ops, .size = size, .threads = threads, .impl = c};
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->go, NULL);
    pthread_cond_init(&c->done, NULL);
    c->n_th = size - 1;
    c->th = wk_calloc(sizeof(pthread_t) * (size_t)WK_MAX(1, c->n_th), "replica threads");
    if (!c->th) return cpu_destroy(r), WICK_ENOMEM;
    for (int i = 0; i < c->n_th; i++) {
        worker_arg *wa = wk_malloc(sizeof *wa, "replica thread");
        if (!wa) return cpu_destroy(r), WICK_ENOMEM;
        *wa = (worker_arg){.r = r, .rank = i + 1};
        if (pthread_create(&c->th[i], NULL, worker, wa)) {
            wk_free(wa);
            cpu_destroy(r);
            return wk_err(WICK_ENOMEM, "replicas: cannot start thread %d of %d", i + 1, c->n_th);
        }
        c->started++;
    }
    *out = r;
    return WICK_OK;
}

void wk_replicas_run(wk_replicas *r, wk_replica_fn fn, void *arg, int n) {
    r->ops->run(r, fn, arg, WK_MAX(1, WK_MIN(n, r->size)));
}

void wk_replicas_free(wk_replicas *r) {
    if (r) r->ops->destroy(r);
}
