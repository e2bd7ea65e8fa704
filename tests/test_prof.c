/* test_prof.c — the profiling hook (src/core/prof.h): nothing is recorded while it is off,
 * op times and calls land in the current phase, phase wall clocks add up, reset clears. */
#include <time.h>

#include "prof.h"
#include "t.h"
#include "wk.h"

static void spin(double s) {
    double t0 = wk_now();
    while (wk_now() - t0 < s) {
    }
}

int main(void) {
    int64_t calls;
    wk_prof_enable(0);
    double t0 = wk_prof_begin();
    CHECK(t0 == 0, "begin reads no clock while off");
    wk_prof_end(WK_PROF_MATMUL, t0);
    CHECK(wk_prof_seconds(WK_PHASE_NONE, WK_PROF_MATMUL, &calls) == 0 && calls == 0, "nothing recorded while off");

    wk_prof_enable(1);
    wk_prof_set_phase(WK_PHASE_FORWARD);
    for (int i = 0; i < 3; i++) {
        t0 = wk_prof_begin();
        spin(0.002);
        wk_prof_end(WK_PROF_MATMUL, t0);
    }
    spin(0.002); /* untracked time inside the phase */
    wk_prof_phase prev = wk_prof_set_phase(WK_PHASE_BACKWARD);
    CHECK(prev == WK_PHASE_FORWARD, "set_phase returns the previous phase");
    t0 = wk_prof_begin();
    spin(0.003);
    wk_prof_end(WK_PROF_LORA, t0);
    wk_prof_add(WK_PROF_OPTIMIZER, 0.5);
    wk_prof_set_phase(WK_PHASE_NONE);

    double mm = wk_prof_seconds(WK_PHASE_FORWARD, WK_PROF_MATMUL, &calls);
    CHECK(calls == 3 && mm >= 0.006 && mm < 5, "matmul: %d calls, %g s", (int)calls, mm);
    double fw = wk_prof_phase_seconds(WK_PHASE_FORWARD);
    CHECK(fw >= mm + 0.002 && fw < 10, "forward wall %g s covers its ops (%g s) and the untracked 2 ms", fw, mm);
    double lo = wk_prof_seconds(WK_PHASE_BACKWARD, WK_PROF_LORA, &calls);
    CHECK(calls == 1 && lo >= 0.003, "lora charged to backward: %g", lo);
    CHECK(fabs(wk_prof_seconds(WK_PHASE_BACKWARD, WK_PROF_OPTIMIZER, &calls) - 0.5) < 1e-9 && calls == 1, "add");
    CHECK(wk_prof_seconds(WK_PHASE_FORWARD, WK_PROF_LORA, &calls) == 0 && calls == 0, "no cross-phase leak");
    CHECK(!strcmp(wk_prof_op_name(WK_PROF_ATTENTION), "attention") && !strcmp(wk_prof_phase_name(WK_PHASE_BACKWARD), "backward"),
          "names");

    wk_prof_enable(0);
    CHECK(wk_prof_seconds(WK_PHASE_FORWARD, WK_PROF_MATMUL, &calls) == 0 && calls == 0 &&
              wk_prof_phase_seconds(WK_PHASE_FORWARD) == 0, "enable clears the table");
    return t_summary();
}
