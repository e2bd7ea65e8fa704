/* test_gguf_model.c — decoder models loaded from GGUF files written by `wick quantize` from the
 * golden safetensors checkpoints: F32 gives the golden logits (1e-4; llama's q/k permutation is
 * undone), F16 within 1e-2, Q8_0 within 5% of the logit range (weights and activations are 8-bit). */
#include "t.h"
#include <stdlib.h>

static char tmp[256];

static float max_abs(const float *a, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(a[i]));
    return m;
}

static void check(const char *name, const char *type, float tol, int relative) {
    char gguf[512], cmd[1400], gpath[512];
    snprintf(gguf, sizeof gguf, "%s/%s-%s.gguf", tmp, name, type);
    snprintf(cmd, sizeof cmd, "%s quantize --model %s/golden/%s/model --type %s --out %s", WICK_BIN, WICK_TEST_DIR, name, type, gguf);
    CHECK(system(cmd) == 0, "%s", cmd);
    snprintf(gpath, sizeof gpath, "%s/golden/%s/golden.safetensors", WICK_TEST_DIR, name);
    wick_st *g;
    wick_model *m = NULL;
    CHECK_OK(wick_st_open(gpath, &g));
    CHECK_OK(wick_model_load(gguf, NULL, &m));
    if (!m) return wick_st_close(g);
    wick_tensor_view iv, lv;
    wick_st_find(g, "input_ids", &iv);
    wick_st_find(g, "logits", &lv);
    int B = (int)iv.shape[0], T = (int)iv.shape[1], V = (int)lv.shape[2];
    int32_t *ids = malloc(sizeof(int32_t) * B * T);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((const int64_t *)iv.data)[i];
    float *out = malloc(sizeof(float) * (size_t)B * T * V);
    CHECK_OK(wick_model_logits(m, NULL, 1, ids, B, T, out));
    size_t n = (size_t)B * T * V;
    float d = t_max_abs_diff(out, lv.data, n), lim = relative ? tol * max_abs(lv.data, n) : tol;
    CHECK(d <= lim, "%s %s: max |logits - golden| = %g > %g", name, type, d, lim);
    free(ids), free(out);
    wick_model_free(m);
    wick_st_close(g);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/wick-gguf-model-XXXXXX");
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    const char *models[] = {"llama_tiny", "qwen2_tiny", "qwen3_tiny"};
    for (int i = 0; i < 3; i++) {
        check(models[i], "f32", 1e-4f, 0);
        check(models[i], "f16", 1e-2f, 0);
        check(models[i], "q8_0", 0.05f, 1);
    }
    wick_model *m = NULL;
    char bad[300];
    snprintf(bad, sizeof bad, "%s/bad.gguf", tmp);
    FILE *f = fopen(bad, "wb");
    fwrite("GGUF\3\0\0\0", 1, 8, f);
    fclose(f);
    CHECK_FAILS(wick_model_load(bad, NULL, &m), "bad.gguf");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0, "cleanup");
    return t_summary();
}
