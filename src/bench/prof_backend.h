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
#endif
