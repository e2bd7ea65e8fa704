/* test_dp.c — data-parallel training logic on CPU replicas (the multi-GPU path with the host
 * communicator): the batch sharding rule, the fixed-order all-reduce, replicas training the same
 * global batch as one trainer (within fp32 reduction order), a replica with an empty shard
 * changing nothing (bit for bit), resuming a 2-replica checkpoint with 1 replica, and errors. */
#include "t.h"
#include "train_util.h"
#include "dist/comm.h"
#include "train/train.h"
#include <math.h>
#include <stdlib.h>

static char tmp[256], data[300];

static void shards(void) {
    int cases[][2] = {{5, 2}, {1, 3}, {8, 4}, {7, 3}, {0, 2}, {64, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int nseq = cases[k][0], world = cases[k][1], next = 0, mn = 1 << 30, mx = -1;
        for (int r = 0; r < world; r++) {
            int lo, hi;
            wk_shard(nseq, world, r, &lo, &hi);
            CHECK(lo == next && hi >= lo, "shard %d of %d over %d sequences: [%d,%d) after %d", r, world, nseq, lo, hi, next);
            next = hi;
            mn = hi - lo < mn ? hi - lo : mn, mx = hi - lo > mx ? hi - lo : mx;
        }
        CHECK(next == nseq && mx - mn <= 1, "shards of %d over %d: cover %d, sizes %d..%d", nseq, world, next, mn, mx);
    }
}

static void host_allreduce(void) {
    float a[3] = {1e8f, 1, -2}, b[3] = {1, 2, 3}, c[3] = {-1e8f, 0.5f, 4};
    float *bufs[3] = {a, b, c};
    wk_comm *cm;
    CHECK_OK(wk_comm_host(3, &cm));
    CHECK_OK(cm->allreduce(cm, bufs, 3));
    float want0 = (1e8f + 1.f) + -1e8f; /* rank order, in float */
    for (int r = 0; r < 3; r++)
        CHECK(bufs[r][0] == want0 && bufs[r][1] == 3.5f && bufs[r][2] == 5.f, "rank %d got %g %g %g", r, bufs[r][0],
              bufs[r][1], bufs[r][2]);
    cm->free(cm);
    CHECK_FAILS(wk_comm_host(0, &cm), "world size 0");
#ifndef WICK_HAVE_CUDA
    int devs[2] = {0, 1};
    CHECK_FAILS(wk_comm_nccl(2, devs, &cm), "no CUDA backend");
#endif
}

static wick_train_config cfg(const char *out, int replicas, int batch, int steps) {
    wick_train_config c = wick_train_config_default();
    c.model_dir = T_PATH("golden/qwen2_tiny/model");
    c.data_path = data, c.out_dir = out;
    c.max_steps = steps, c.batch_size = batch, c.replicas = replicas;
    c.lora_r = 4, c.lora_alpha = 8, c.opt.lr = 1e-2f, c.opt.seed = 3, c.opt.lora_dropout = 0;
    return c;
}

#define st_diff tu_st_rel_diff

static double adapter_diff(const char *d1, const char *d2, int *identical) {
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s/adapter_model.safetensors", d1);
    snprintf(p2, sizeof p2, "%s/adapter_model.safetensors", d2);
    return st_diff(p1, p2, identical);
}

static void replicas_match(void) {
    char one[512], two[512], three[512], b1[512], b3[512];
    snprintf(one, sizeof one, "%s/one", tmp), snprintf(two, sizeof two, "%s/two", tmp);
    snprintf(three, sizeof three, "%s/three", tmp);
    wick_train_config c1 = cfg(one, 0, 4, 3), c2 = cfg(two, 2, 4, 3), c3 = cfg(three, 3, 4, 3);
    char g1[512], g2[512], g3[512];
    snprintf(g1, sizeof g1, "%s/g1.safetensors", tmp), snprintf(g2, sizeof g2, "%s/g2.safetensors", tmp);
    snprintf(g3, sizeof g3, "%s/g3.safetensors", tmp);
    c1.save_grads = g1, c2.save_grads = g2, c3.save_grads = g3; /* the first step's all-reduced gradients */
    wick_train_summary s1, s2;
    CHECK_OK(wick_train_run(&c1, &s1));
    CHECK_OK(wick_train_run(&c2, &s2));
    CHECK_OK(wick_train_run(&c3, NULL)); /* uneven shards: 2 + 1 + 1 */
    int same = 0;
    double q2 = st_diff(g2, g1, &same), q3 = st_diff(g3, g1, &same);
    CHECK(q2 >= 0 && q2 < 1e-5, "gradients, 2 replicas vs 1: relative L2 difference %g", q2);
    CHECK(q3 >= 0 && q3 < 1e-5, "gradients, 3 replicas vs 1: relative L2 difference %g", q3);
    /* after 3 AdamW steps (its first steps move near-zero gradients by ±lr, so rounding shows more) */
    double d2 = adapter_diff(two, one, &same), d3 = adapter_diff(three, one, &same);
    CHECK(d2 >= 0 && d2 < 1e-4, "adapter, 2 replicas vs 1: relative L2 difference %g", d2);
    CHECK(d3 >= 0 && d3 < 1e-4, "adapter, 3 replicas vs 1: relative L2 difference %g", d3);
    CHECK(fabs(s1.last_loss - s2.last_loss) < 1e-5 * fabs(s1.last_loss), "loss %g vs %g", s1.last_loss, s2.last_loss);
    /* batch 1: the other replicas have empty shards and add exact zeros */
    snprintf(b1, sizeof b1, "%s/b1", tmp), snprintf(b3, sizeof b3, "%s/b3", tmp);
    wick_train_config e1 = cfg(b1, 0, 1, 2), e3 = cfg(b3, 3, 1, 2);
    CHECK_OK(wick_train_run(&e1, NULL));
    CHECK_OK(wick_train_run(&e3, NULL));
    CHECK(adapter_diff(b3, b1, &same) == 0 && same, "replicas with empty shards changed the result");
    /* a group of one goes through the communicator and changes nothing */
    wick_train_config e1g = cfg(b3, 1, 1, 2);
    CHECK_OK(wick_train_run(&e1g, NULL));
    CHECK(adapter_diff(b3, b1, &same) == 0 && same, "a group of one replica changed the result");
}

static void resume_other_count(void) {
    char a[512], b[512], ck[600];
    snprintf(a, sizeof a, "%s/r2", tmp), snprintf(b, sizeof b, "%s/r1", tmp);
    wick_train_config c = cfg(a, 2, 4, 2);
    c.save_every = 1;
    CHECK_OK(wick_train_run(&c, NULL));
    snprintf(ck, sizeof ck, "%s/checkpoint-1", a);
    wick_train_config r = cfg(a, 0, 4, 3); /* resume the 2-replica run without replicas */
    r.resume = ck;
    wick_train_summary s;
    CHECK_OK(wick_train_run(&r, &s));
    CHECK(s.steps == 3, "resumed run ended at step %d", s.steps);
    wick_train_config u = cfg(b, 0, 4, 3);
    CHECK_OK(wick_train_run(&u, NULL));
    int same = 0;
    double d = adapter_diff(a, b, &same);
    CHECK(d >= 0 && d < 1e-4, "resume with another replica count: relative L2 difference %g", d);
}

static void errors(void) {
    char o[512];
    snprintf(o, sizeof o, "%s/err", tmp);
    wick_train_config c = cfg(o, 100, 4, 1);
    CHECK_FAILS(wick_train_run(&c, NULL), "replicas");
    c = cfg(o, 2, 4, 1);
    c.device = "cuda:1";
    CHECK_FAILS(wick_train_run(&c, NULL), "cuda");
}

int main(void) {
    wick_set_threads(1);
    snprintf(tmp, sizeof tmp, "/tmp/wick_dp_XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    snprintf(data, sizeof data, "%s/data.jsonl", tmp);
    if (tu_write_ids_jsonl(data, 12, 777ull)) return 1;
    shards();
    host_allreduce();
    replicas_match();
    resume_other_count();
    errors();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (!t_fail && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return t_summary();
}
