/*
 * prof_backend.h — a profiling wrapper around a backend ops table (prof_backend.c).
 */
#ifndef WK_PROF_BACKEND_H
#define WK_PROF_BACKEND_H
#include "backend/backend.h"

typedef struct {
    wk_backend base;   /* first: the decoder calls through this table */
    wk_backend *in;    /* the wrapped backend */
    const void *head;  /* weights of the output head: matmuls on it count as "logits" */
} wk_prof_backend;

/* Fills p so that p->base runs every op of `in`, timed into the profiling table. */
void wk_prof_backend_init(wk_prof_backend *p, wk_backend *in, const void *head);

/* The trainer's op table (model/train_ops.h) timed the same way; wraps `in` (one at a time). */
#include "model/train_ops.h"
const wk_train_ops *wk_prof_train_ops(const wk_train_ops *in);
#endif
