/* test_serve_route.c — the replica routing and adapter catalog of `wick serve --gpus N`
 * (src/serve/replicas.c), on CPU replicas of qwen2_tiny with real registries:
 *  - a request takes a free slot of the least busy replica, a replica without the request's
 *    adapter counting SRV_MISS_COST more busy slots; a full pool with no queue answers -1;
 *  - start-up placement on a given replica, POST placement on the one with the fewest adapters;
 *  - acquiring an adapter on a replica that lacks it copies it there once (residency bit, count);
 *  - removal takes it off every replica, is refused while a request holds it (it stays where it
 *    is held) and answers not-found afterwards; the catalog keeps its order. */
#include "t.h"
#include "serve/serve.h"
#include <stdlib.h>
#include <string.h>

#define NREP 2
#define NSLOT 4

static srv S;
static srv_rep R[NREP];

static void setup(wick_model **models) {
    memset(&S, 0, sizeof S);
    pthread_mutex_init(&S.mu, NULL), pthread_cond_init(&S.cv, NULL), pthread_mutex_init(&S.cat_mu, NULL);
    S.n_rep = NREP, S.rep = R, S.n_sess = NREP * NSLOT, S.o.max_queue = 0;
    S.busy = calloc(NREP * NSLOT, sizeof *S.busy);
    S.seq = calloc(NREP * NSLOT, sizeof *S.seq);
    for (int k = 0; k < NREP; k++) {
        R[k].s = &S, R[k].idx = k, R[k].slot0 = k * NSLOT, R[k].n_slot = NSLOT, R[k].model = models[k];
        snprintf(R[k].device, sizeof R[k].device, "cpu");
        pthread_cond_init(&R[k].sched_cv, NULL);
        CHECK_OK(wick_registry_new(models[k], &R[k].reg));
        for (int i = 0; i < NSLOT; i++) S.seq[k * NSLOT + i].rep = &R[k], S.seq[k * NSLOT + i].slot = k * NSLOT + i;
    }
}

static void set_busy(int rep, int n) {
    for (int i = 0; i < NSLOT; i++) S.busy[rep * NSLOT + i] = i < n;
}

static int rep_of(int slot) { return slot < 0 ? -1 : srv_rep_of(&S, slot)->idx; }

static void routing(void) {
    const char *a1 = T_PATH("golden/qwen2_tiny/adapter1");
    CHECK(srv_adapter_add(&S, "x", a1, 0) == SRV_OK, "start-up adapter x on replica 0: %s", wick_last_error());
    CHECK(S.cat[0].on == 1, "x is on replica 0 only (mask %llx)", (unsigned long long)S.cat[0].on);
    int sl = srv_acquire_slot(&S, NULL);
    CHECK(sl == 0, "idle pool: the base goes to replica 0's first slot, got slot %d", sl);
    sl = srv_acquire_slot(&S, NULL);
    CHECK(rep_of(sl) == 1, "replica 0 busier: the base goes to replica 1, got replica %d", rep_of(sl));
    set_busy(0, 1), set_busy(1, 1);
    sl = srv_acquire_slot(&S, "x");
    CHECK(rep_of(sl) == 0, "equal load: x goes where it is held (replica 0), got %d", rep_of(sl));
    set_busy(0, 1 + SRV_MISS_COST), set_busy(1, 0);
    sl = srv_acquire_slot(&S, "x");
    CHECK(rep_of(sl) == 1, "holder %d slots busier than the other: x goes to replica 1, got %d", 1 + SRV_MISS_COST,
          rep_of(sl));
    set_busy(0, SRV_MISS_COST), set_busy(1, 0);
    sl = srv_acquire_slot(&S, "x");
    CHECK(rep_of(sl) == 0, "holder exactly the miss cost busier: x stays on replica 0, got %d", rep_of(sl));
    set_busy(0, NSLOT), set_busy(1, NSLOT - 1);
    sl = srv_acquire_slot(&S, "x");
    CHECK(sl == 2 * NSLOT - 1, "holder full: x takes replica 1's last free slot, got %d", sl);
    sl = srv_acquire_slot(&S, "x");
    CHECK(sl == -1, "every slot busy, no queue: -1, got %d", sl);
    srv_release_slot(&S, 2);
    CHECK(S.busy[2] == 0, "release frees the slot");
    set_busy(0, 0), set_busy(1, 0);
}

static void catalog(void) {
    const char *a1 = T_PATH("golden/qwen2_tiny/adapter1"), *a2 = T_PATH("golden/qwen2_tiny/adapter2");
    CHECK(srv_adapter_add(&S, "x", a2, -1) == SRV_EXISTS, "a taken name answers SRV_EXISTS");
    CHECK(srv_adapter_add(&S, "y", a2, -1) == SRV_OK, "y added: %s", wick_last_error());
    CHECK(S.cat[1].on == 2, "y goes to replica 1, which holds fewer adapters (mask %llx)", (unsigned long long)S.cat[1].on);
    CHECK(srv_adapter_add(&S, "bad", "/nonexistent/adapter", -1) == SRV_LOAD_FAILED && S.n_cat == 2,
          "a missing directory fails and adds nothing");
    CHECK(srv_adapter_known(&S, "y") && !srv_adapter_known(&S, "z"), "known names");
    int why = -1;
    wick_adapter *h = srv_adapter_acquire(&S, &R[1], "x", &why);
    CHECK(h && why == SRV_OK, "x acquired on replica 1 (copied there)");
    CHECK(S.cat[0].on == 3 && R[1].adapter_loads == 1, "x now on both replicas (mask %llx, copies %llu)",
          (unsigned long long)S.cat[0].on, (unsigned long long)R[1].adapter_loads);
    wick_adapter *h2 = srv_adapter_acquire(&S, &R[1], "x", &why);
    CHECK(h2 == h && R[1].adapter_loads == 1, "a second acquire uses the copy (no reload)");
    wick_registry_release(R[1].reg, h2);
    CHECK(srv_rep_adapters(&S, 0) == 1 && srv_rep_adapters(&S, 1) == 2, "residency counts 1 and 2");
    CHECK(srv_adapter_acquire(&S, &R[0], "z", &why) == NULL && why == SRV_NOT_FOUND, "unknown adapter: not found");
    CHECK(srv_adapter_remove(&S, "x") == SRV_IN_USE, "remove refused while replica 1 holds x for a request");
    CHECK(S.cat[0].on == 2 && srv_adapter_known(&S, "x"), "x left replica 0, stays on replica 1 (mask %llx)",
          (unsigned long long)S.cat[0].on);
    wick_registry_release(R[1].reg, h);
    h = srv_adapter_acquire(&S, &R[0], "x", &why);
    CHECK(h && R[0].adapter_loads == 1, "x copied back to replica 0 on demand");
    wick_registry_release(R[0].reg, h);
    CHECK(srv_adapter_remove(&S, "x") == SRV_OK, "remove once released");
    CHECK(!srv_adapter_known(&S, "x") && srv_adapter_remove(&S, "x") == SRV_NOT_FOUND, "x gone");
    CHECK(wick_registry_acquire(R[0].reg, "x") == NULL && wick_registry_acquire(R[1].reg, "x") == NULL,
          "x unloaded from both registries");
    CHECK(srv_adapter_add(&S, "w", a1, -1) == SRV_OK, "w added");
    char names[4][72];
    int n = srv_adapter_names(&S, names, 4);
    CHECK(n == 2 && !strcmp(names[0], "y") && !strcmp(names[1], "w"), "catalog order y, w (got %d)", n);
}

int main(void) {
    wick_model *m[NREP];
    for (int k = 0; k < NREP; k++) CHECK_OK(wick_model_load(T_PATH("golden/qwen2_tiny/model"), NULL, &m[k]));
    setup(m);
    routing();
    catalog();
    for (int k = 0; k < NREP; k++) wick_registry_free(R[k].reg), wick_model_free(m[k]), pthread_cond_destroy(&R[k].sched_cv);
    free(S.busy), free(S.seq), free(S.cat);
    return t_summary();
}
