/*
 * prof.c — the per-(phase, op type) time table behind prof.h. Entries are
 * atomic nanosecond counters so an op on another thread cannot tear them.
 */
#include "prof.h"
#include "wk.h"

#include <stdatomic.h>

int wk_prof_on;
static _Atomic int64_t g_ns[WK_PHASE_COUNT][WK_PROF_COUNT];
static _Atomic int64_t g_calls[WK_PHASE_COUNT][WK_PROF_COUNT];
static _Atomic int g_phase;
static double g_phase_t0;                  /* when the current phase began */
static double g_phase_wall[WK_PHASE_COUNT]; /* wall time spent in each phase */

double wk_prof_begin(void) { return wk_prof_on ? wk_now() : 0.0; }

void wk_prof_add(wk_prof_op op, double seconds) {
    if (!wk_prof_on || (unsigned)op >= WK_PROF_COUNT) return;
    int ph = atomic_load(&g_phase);
    atomic_fetch_add(&g_ns[ph][op], (int64_t)(seconds * 1e9 + 0.5));
    atomic_fetch_add(&g_calls[ph][op], 1);
}

void wk_prof_end(wk_prof_op op, double t0) {
    if (!wk_prof_on) return;
    wk_prof_add(op, wk_now() - t0);
}

wk_prof_phase wk_prof_set_phase(wk_prof_phase p) {
    if ((unsigned)p >= WK_PHASE_COUNT) p = WK_PHASE_NONE;
    wk_prof_phase old = (wk_prof_phase)atomic_exchange(&g_phase, (int)p);
    if (wk_prof_on) {
        double now = wk_now();
        g_phase_wall[old] += now - g_phase_t0;
        g_phase_t0 = now;
    }
    return old;
}

double wk_prof_phase_seconds(wk_prof_phase p) {
    return (unsigned)p < WK_PHASE_COUNT ? g_phase_wall[p] : 0;
}

void wk_prof_reset(void) {
    for (int p = 0; p < WK_PHASE_COUNT; p++)
        for (int o = 0; o < WK_PROF_COUNT; o++) {
            atomic_store(&g_ns[p][o], 0);
            atomic_store(&g_calls[p][o], 0);
        }
    atomic_store(&g_phase, WK_PHASE_NONE);
    memset(g_phase_wall, 0, sizeof g_phase_wall);
    g_phase_t0 = wk_now();
}

void wk_prof_enable(int on) {
    wk_prof_reset();
    wk_prof_on = on;
}

double wk_prof_seconds(wk_prof_phase p, wk_prof_op op, int64_t *calls) {
    if ((unsigned)p >= WK_PHASE_COUNT || (unsigned)op >= WK_PROF_COUNT) {
        if (calls) *calls = 0;
        return 0;
    }
    if (calls) *calls = atomic_load(&g_calls[p][op]);
    return 1e-9 * (double)atomic_load(&g_ns[p][op]);
}

const char *wk_prof_op_name(wk_prof_op op) {
    static const char *names[WK_PROF_COUNT] = {"matmul", "lora",   "attention", "norm", "rope",
                                               "act",    "embed",  "logits",    "loss", "optimizer",
                                               "sample", "kv",     "copy",      "other"};
    return (unsigned)op < WK_PROF_COUNT ? names[op] : "?";
}

const char *wk_prof_phase_name(wk_prof_phase p) {
    static const char *names[WK_PHASE_COUNT] = {"other", "forward", "backward", "optimizer", "sample"};
    return (unsigned)p < WK_PHASE_COUNT ? names[p] : "?";
}
