/* test_cuda_dp.c — data-parallel training on GPUs (src/train/dp.c with the NCCL communicator):
 *  - a group of one GPU (NCCL all-reduce over one rank) gives exactly the adapter of plain
 *    one-GPU training, bit for bit;
 *  - with two or more GPUs: 2 replicas on the same global batch match one GPU (gradients of the
 *    first step within rel L2 1e-5, the adapter after 3 steps within 1e-4), and a checkpoint of
 *    the 2-GPU run resumes on one GPU.
 * Without the CUDA backend, a GPU or NCCL (libnccl.so.2, or WICK_NCCL_LIB) it reports a skip. */
#include "t.h"
#include "train_util.h"
#include "dist/comm.h"
#include <math.h>
#include <stdlib.h>

static char tmp[256], data[300];

#define st_diff tu_st_rel_diff

static wick_train_config cfg(const char *out, int replicas, int steps) {
    wick_train_config c = wick_train_config_default();
    c.model_dir = T_PATH("golden/qwen2_tiny/model");
    c.data_path = data, c.out_dir = out, c.device = "cuda";
    c.max_steps = steps, c.batch_size = 4, c.replicas = replicas;
    c.lora_r = 4, c.lora_alpha = 8, c.opt.lr = 1e-2f, c.opt.seed = 3;
    return c;
}

static void path(char *buf, const char *dir, const char *file) {
    if (snprintf(buf, 1024, "%s/%s", dir, file) >= 1024) buf[0] = 0;
}

static void group_of_one(void) {
    char a[1024], b[1024], fa[1024], fb[1024];
    path(a, tmp, "single"), path(b, tmp, "group1");
    wick_train_config c0 = cfg(a, 0, 3), c1 = cfg(b, 1, 3);
    CHECK_OK(wick_train_run(&c0, NULL));
    CHECK_OK(wick_train_run(&c1, NULL));
    path(fa, a, "adapter_model.safetensors"), path(fb, b, "adapter_model.safetensors");
    int same = 0;
    double d = st_diff(fb, fa, &same);
    CHECK(d == 0 && same, "a one-GPU NCCL group differs from plain one-GPU training (rel L2 %g)", d);
}

static void two_gpus(void) {
    char a[1024], b[1024], g1[1024], g2[1024], fa[1024], fb[1024], ck[1100];
    path(a, tmp, "one"), path(b, tmp, "two"), path(g1, tmp, "g1.safetensors"), path(g2, tmp, "g2.safetensors");
    wick_train_config c1 = cfg(a, 0, 3), c2 = cfg(b, 2, 3);
    c1.save_grads = g1, c2.save_grads = g2, c2.save_every = 1;
    CHECK_OK(wick_train_run(&c1, NULL));
    CHECK_OK(wick_train_run(&c2, NULL));
    int same = 0;
    double dg = st_diff(g2, g1, &same);
    path(fa, a, "adapter_model.safetensors"), path(fb, b, "adapter_model.safetensors");
    double da = st_diff(fb, fa, &same);
    CHECK(dg >= 0 && dg < 1e-5, "2 GPUs vs 1: first-step gradients rel L2 %g", dg);
    CHECK(da >= 0 && da < 1e-4, "2 GPUs vs 1: adapter after 3 steps rel L2 %g", da);
    snprintf(ck, sizeof ck, "%s/checkpoint-1", b);
    wick_train_config r = cfg(b, 0, 3);
    r.resume = ck;
    CHECK_OK(wick_train_run(&r, NULL));
    double dr = st_diff(fb, fa, &same);
    CHECK(dr >= 0 && dr < 1e-4, "2-GPU checkpoint resumed on 1 GPU: adapter rel L2 %g", dr);
}

int main(void) {
    int n = wick_cuda_device_count();
    if (n < 1) {
        printf("test_cuda_dp: skipped: no CUDA device (or built without CUDA)\n");
        return 0;
    }
    int devs[1] = {0};
    wk_comm *cm = NULL;
    if (wk_comm_nccl(1, devs, &cm) != WICK_OK) {
        printf("test_cuda_dp: skipped: %s\n", wick_last_error());
        return 0;
    }
    cm->free(cm);
    snprintf(tmp, sizeof tmp, "/tmp/wick_cdp_XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    snprintf(data, sizeof data, "%s/data.jsonl", tmp);
    if (tu_write_ids_jsonl(data, 12, 99ull)) return 1;
    group_of_one();
    if (n >= 2) two_gpus();
    else printf("test_cuda_dp: one GPU visible: the 2-GPU comparison did not run\n");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (!t_fail && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return t_summary();
}
