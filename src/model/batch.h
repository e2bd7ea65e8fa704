/*
 * batch.h — the batched decode step's device path (batch_device.c), which batch.c tries
 * first: one forward of the backend's batched ops for all rows, graph-captured per row count.
 */
#ifndef WK_BATCH_H
#define WK_BATCH_H
#include "model/session.h"

typedef struct wk_bstate wk_bstate; /* a model's batched-step buffers, tables and graphs (m->bst) */

/* Runs one step of n checked sessions (one id each) on the batched ops and sets *done = 1, or
 * sets *done = 0 and does nothing when they do not apply (host backend, a shape or adapter
 * they do not take, n outside [2, WK_SESSION_CHUNK_HOST]): the caller runs the per-row path.
 * logits: NULL, or (n, V) host memory in the sessions' order. */
wick_status wk_batch_device(wick_session *const *ss, const int32_t *ids, int n, float *logits, int *done);

/* Frees the model's batched-step state (m->bst); NULL state is fine. */
void wk_bstate_free(wick_model *m);
#endif
