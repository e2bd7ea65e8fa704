/*
 * sched.c — continuous batching for `wick serve`: one scheduler thread per replica (one
 * per GPU with --gpus N) owns that replica's sessions and runs every forward on them. A request's generator (sampling, stop strings,
 * streaming: unchanged, on the connection's thread) hands each model step to sched_eval,
 * which queues it on the request's slot and waits. Each round the scheduler
 *   - runs one chunk (SCHED_PREFILL_CHUNK ids) of one waiting prompt, round-robin, so a
 *     long prompt never stalls the streams in flight for more than a chunk;
 *   - runs one batched decode step (wick_session_eval_batch) over every slot waiting with
 *     its next id — all adapters and the base together, base weights read once.
 * A decoding slot whose next id is not in yet (its thread is still sampling) is waited for
 * briefly (half the last step, 1..50 ms), so batches stay full without a slow client
 * holding the others back; a slot joins whichever step is next. Slots, the queue and the
 * 429 beyond it are server.c's (srv_acquire_slot): --parallel N slots decode at once.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "serve.h"
#include "wk.h"

#define SCHED_PREFILL_CHUNK 64

wick_status sched_eval(void *ctx, const int32_t *ids, int n, float *logits) {
    srv_seq *q = ctx;
    srv *s = q->s;
    pthread_mutex_lock(&s->mu);
    q->ids = ids, q->n = n, q->done = 0, q->logits = logits;
    q->t_pending = wk_now();
    q->state = SEQ_PENDING;
    if (n == 1) q->live = 1;
    pthread_cond_signal(&q->rep->sched_cv);
    while (q->state != SEQ_DONE) pthread_cond_wait(&s->done_cv, &s->mu);
    q->state = SEQ_IDLE;
    wick_status st = q->st;
    char err[sizeof q->err];
    memcpy(err, q->err, sizeof err);
    pthread_mutex_unlock(&s->mu);
    return st ? wk_err(st, "%s", err) : WICK_OK;
}

void sched_seq_end(srv *s, int slot) {
    pthread_mutex_lock(&s->mu);
    s->seq[slot].live = 0;
    pthread_cond_signal(&s->seq[slot].rep->sched_cv); /* a step may be waiting for this slot */
    pthread_mutex_unlock(&s->mu);
}

/* What one round runs, gathered under the lock. */
typedef struct {
    int pre;                  /* slot of the prompt chunk (-1: none) */
    int n;                    /* decode rows */
    int *slot;                /* (n_slot) */
    wick_session **ss;        /* (n_slot) */
    int32_t *ids;             /* (n_slot) */
} round_plan;

/* Fills p from the replica's pending slots; returns the seconds to wait for stragglers first (0: run now, <0: nothing). */
static double plan_round(srv_rep *r, round_plan *p, int *rr) {
    srv *s = r->s;
    int live = 0, npre = 0;
    double oldest = INFINITY;
    p->pre = -1, p->n = 0;
    for (int k = 0; k < r->n_slot; k++) {
        int i = r->slot0 + (*rr + k) % r->n_slot;
        srv_seq *q = &s->seq[i];
        live += q->live && s->busy[i];
        if (q->state != SEQ_PENDING) continue;
        if (q->n > 1 && p->pre < 0) p->pre = i;
        npre += q->n > 1;
        if (q->n == 1) p->slot[p->n] = i, p->ss[p->n] = s->sess[i], p->ids[p->n] = q->ids[0], p->n++;
        if (q->n == 1 && q->t_pending < oldest) oldest = q->t_pending;
    }
    if (p->pre < 0 && p->n == 0) return -1;
    if (p->pre >= 0) *rr = (p->pre - r->slot0 + 1) % r->n_slot;
    if (npre || p->n >= live) return 0;
    double wait = WK_MIN(0.05, WK_MAX(0.001, 0.5 * r->step_s)), left = oldest + wait - wk_now();
    return left > 0 ? left : 0;
}

/* One chunk of slot i's prompt; returns whether the prompt is done (q->st, q->err set). */
static int run_prefill(srv *s, int i) {
    srv_seq *q = &s->seq[i];
    int k = WK_MIN(SCHED_PREFILL_CHUNK, q->n - q->done), last = q->done + k == q->n;
    q->st = wick_session_eval(s->sess[i], q->ids + q->done, k, last ? q->logits : NULL, 0);
    if (q->st) snprintf(q->err, sizeof q->err, "%s", wick_last_error());
    q->done += k;
    return last || q->st;
}

/* The batched decode step; a failed batch is retried row by row so only a bad row fails. */
static void run_decode(srv_rep *r, const round_plan *p, wick_status *st) {
    srv *s = r->s;
    double t0 = wk_now();
    wick_status bst = wick_session_eval_batch(p->ss, p->ids, p->n, r->blogits);
    for (int j = 0; j < p->n; j++) {
        srv_seq *q = &s->seq[p->slot[j]];
        if (!bst) memcpy(q->logits, r->blogits + (size_t)j * s->vocab, sizeof(float) * (size_t)s->vocab);
        st[j] = bst ? wick_session_eval(p->ss[j], &p->ids[j], 1, q->logits, 0) : WICK_OK;
        if (st[j]) snprintf(q->err, sizeof q->err, "%s", wick_last_error());
    }
    r->step_s = wk_now() - t0;
}

static void *sched_main(void *arg) {
    srv_rep *r = arg;
    srv *s = r->s;
#ifdef _OPENMP
    omp_set_num_threads(s->o.threads);
#endif
    int n = r->n_slot, rr = 0;
    round_plan p = {-1, 0, calloc((size_t)n, sizeof(int)), calloc((size_t)n, sizeof(wick_session *)),
                    calloc((size_t)n, sizeof(int32_t))};
    wick_status *st = calloc((size_t)n, sizeof *st);
    pthread_mutex_lock(&s->mu);
    while (!s->sched_quit) {
        double wait = plan_round(r, &p, &rr);
        if (wait < 0) { /* nothing pending */
            pthread_cond_wait(&r->sched_cv, &s->mu);
            continue;
        }
        if (wait > 0) { /* a decoding slot is still sampling: wait for it (or anything new), then re-plan */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            long ns = ts.tv_nsec + (long)(wait * 1e9);
            ts.tv_sec += ns / 1000000000L, ts.tv_nsec = ns % 1000000000L;
            pthread_cond_timedwait(&r->sched_cv, &s->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        srv_dev_lock(r);
        int pre_done = p.pre >= 0 ? run_prefill(s, p.pre) : 0;
        if (p.n) run_decode(r, &p, st);
        srv_dev_unlock(r);
        pthread_mutex_lock(&s->mu);
        if (pre_done) s->seq[p.pre].state = SEQ_DONE;
        for (int j = 0; j < p.n; j++) s->seq[p.slot[j]].st = st[j], s->seq[p.slot[j]].state = SEQ_DONE;
        r->prefill_chunks += p.pre >= 0;
        r->decode_steps += p.n > 0;
        r->decode_rows += (uint64_t)p.n;
        if (pre_done || p.n) pthread_cond_broadcast(&s->done_cv);
    }
    pthread_mutex_unlock(&s->mu);
    free(p.slot), free(p.ss), free(p.ids), free(st);
    return NULL;
}

wick_status sched_start(srv *s) {
    s->seq = calloc((size_t)s->n_sess, sizeof *s->seq);
    if (!s->seq) return wk_err(WICK_ENOMEM, "serve: out of memory for %d slots", s->n_sess);
    pthread_cond_init(&s->done_cv, NULL);
    for (int k = 0; k < s->n_rep; k++) {
        srv_rep *r = &s->rep[k];
        for (int i = r->slot0; i < r->slot0 + r->n_slot; i++) s->seq[i].s = s, s->seq[i].rep = r, s->seq[i].slot = i;
        r->blogits = wk_malloc(sizeof(float) * (size_t)r->n_slot * (size_t)s->vocab, "serve: batch logits");
        if (!r->blogits) return WICK_ENOMEM;
        pthread_cond_init(&r->sched_cv, NULL);
        if (pthread_create(&r->sched, NULL, sched_main, r)) return wk_err(WICK_ENOMEM, "serve: cannot start a scheduler");
        r->sched_started = 1;
    }
    return WICK_OK;
}

void sched_stop(srv *s) {
    if (!s->rep) return;
    pthread_mutex_lock(&s->mu);
    s->sched_quit = 1;
    for (int k = 0; k < s->n_rep; k++)
        if (s->rep[k].sched_started) pthread_cond_signal(&s->rep[k].sched_cv);
    pthread_mutex_unlock(&s->mu);
    for (int k = 0; k < s->n_rep; k++) {
        srv_rep *r = &s->rep[k];
        if (r->sched_started) pthread_join(r->sched, NULL), pthread_cond_destroy(&r->sched_cv);
        r->sched_started = 0;
        wk_free(r->blogits);
        r->blogits = NULL;
    }
    if (s->seq) pthread_cond_destroy(&s->done_cv);
    free(s->seq);
    s->seq = NULL;
}
