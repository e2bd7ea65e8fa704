/*
 * prof.h — the profiling hook: a global table of time per (phase, op type) that
 * ops add to while profiling is on. `wick bench profile` turns it on, runs one
 * training step or one decode step, and prints the table.
 *
 * Use in an op (leaf ops only, called from the orchestrating thread, never from
 * inside an OpenMP region, so times are wall time and are not counted twice):
 *
 *     double t0 = wk_prof_begin();
 *     ... the op ...
 *     wk_prof_end(WK_PROF_MATMUL, t0);
 *
 * and around a phase of a step (forward, backward, optimizer, sample):
 *
 *     wk_prof_phase prev = wk_prof_set_phase(WK_PHASE_BACKWARD);
 *     ...
 *     wk_prof_set_phase(prev);
 *
 * When profiling is off each call is one load of a global and a branch.
 */
#ifndef WK_PROF_H
#define WK_PROF_H

#include <stdint.h>

typedef enum {
    WK_PROF_MATMUL = 0, /* base-weight linear layers (x·Wᵀ) */
    WK_PROF_LORA,       /* the adapter path s·(x·Aᵀ)·Bᵀ and its gradients */
    WK_PROF_ATTENTION,  /* scores, softmax over keys, weighted values */
    WK_PROF_NORM,       /* rms_norm / layer_norm */
    WK_PROF_ROPE,
    WK_PROF_ACT,        /* swiglu / gelu and other elementwise activations */
    WK_PROF_EMBED,      /* embedding lookup and its gradient */
    WK_PROF_LOGITS,     /* the output head (x·Eᵀ) */
    WK_PROF_LOSS,       /* softmax cross-entropy and its gradient */
    WK_PROF_OPTIMIZER,  /* AdamW, gradient clipping */
    WK_PROF_SAMPLE,     /* sampler: penalties, top-k/top-p, draw */
    WK_PROF_KV,         /* KV cache writes and reads */
    WK_PROF_COPY,       /* host/device copies, dtype conversions */
    WK_PROF_OTHER,
    WK_PROF_COUNT
} wk_prof_op;

typedef enum {
    WK_PHASE_NONE = 0,
    WK_PHASE_FORWARD,
    WK_PHASE_BACKWARD,
    WK_PHASE_OPTIMIZER,
    WK_PHASE_SAMPLE,
    WK_PHASE_COUNT
} wk_prof_phase;

extern int wk_prof_on; /* nonzero while profiling; read by the inline helpers */

/* Returns a start time for wk_prof_end (0 when profiling is off). */
double wk_prof_begin(void);
/* Adds the time since t0 to op's entry in the current phase, and counts one call. */
void wk_prof_end(wk_prof_op op, double t0);
/* Adds seconds directly (for times measured elsewhere, e.g. CUDA events). */
void wk_prof_add(wk_prof_op op, double seconds);
/* Sets the phase later ops are charged to; returns the previous phase. While profiling
 * is on it also accounts the wall time spent in each phase (wk_prof_phase_seconds), so
 * code that switches phase (a trainer entering its backward) needs nothing else. */
wk_prof_phase wk_prof_set_phase(wk_prof_phase p);
double wk_prof_phase_seconds(wk_prof_phase p);

/* Clears the table (phase back to none, phase clocks restarted) and turns profiling on (1) or off (0). */
void wk_prof_enable(int on);
void wk_prof_reset(void);
/* Reads one entry: seconds and call count. */
double wk_prof_seconds(wk_prof_phase p, wk_prof_op op, int64_t *calls);
const char *wk_prof_op_name(wk_prof_op op);
const char *wk_prof_phase_name(wk_prof_phase p);

#endif
