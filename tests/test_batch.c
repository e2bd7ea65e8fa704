/* test_batch.c — wick_session_eval_batch: on the f32 tiny goldens (qwen2: biases; qwen3: q/k
 * norms; llama), sessions with mixed adapters (none, two PEFT adapters, one at scale 0.5, one
 * targeting q/v only) and different prompt lengths advance together for several steps; every
 * row of the batched logits equals the same session run alone (wick_session_eval) within 1e-5,
 * for the whole batch, a subset in another order and a batch of one. Errors: sessions of two
 * models, a full cache, a repeated or NULL session, a bad id, n = 0 — and none of them moves
 * any session. The fast CPU backend's lora_seg (fused small segments, sgemm for large ones)
 * equals the generic op on the reference backend: empty segments, a NULL pair, scale 0, ranks
 * 4..70 (several rank tiles), a large segment, outputs not a multiple of 16; its lora_seg16
 * over bf16 copies (B's in tiles of 16 outputs) equals lora_seg over the same rounded values within 1e-6. On the bf16 tiny
 * model (several rows read the adapters' bf16 copies; bf16 products over many rows) the batch
 * stays within 2e-2 of the sessions run alone. */
#include "t.h"
#include "batch_util.h"
#include "backend/backend.h"

#include <stdint.h>

#define NS 12 /* more than the CPU's few-row (gemv) limit: the multi-row products run too */
#define STEPS 5

typedef struct {
    wick_model *m;
    wick_adapter *ad[3];
    int V;
} fix;

static int open_fix(const char *name, const char *aname, fix *f) {
    char p[512];
    memset(f, 0, sizeof *f);
    snprintf(p, sizeof p, "%s/golden/%s/model", WICK_TEST_DIR, name);
    CHECK_OK(wick_model_load(p, NULL, &f->m));
    if (!f->m) return -1;
    for (int a = 0; a < 2; a++) {
        snprintf(p, sizeof p, "%s/golden/%s/adapter%d", WICK_TEST_DIR, aname, a + 1);
        CHECK_OK(wick_adapter_load(f->m, p, &f->ad[a]));
    }
    wick_lora_config c = wick_lora_config_default();
    c.r = 4, c.targets = WICK_LORA_Q | WICK_LORA_V, c.init = WICK_LORA_INIT_RANDOM;
    CHECK_OK(wick_adapter_new(f->m, &c, 11, &f->ad[2]));
    wick_model_info mi;
    wick_model_get_info(f->m, &mi);
    f->V = mi.vocab_size;
    return f->ad[0] && f->ad[1] && f->ad[2] ? 0 : -1;
}

static void close_fix(fix *f) {
    for (int a = 0; a < 3; a++) wick_adapter_free(f->ad[a]);
    wick_model_free(f->m);
}

/* Session i: adapter / scale i % 7 of the mix, prompt of length 1 + 3*i % 8 (different positions). */
static void setup(fix *f, wick_session **s, int i, float *lg) {
    const wick_adapter *ads[7] = {NULL, f->ad[0], f->ad[1], f->ad[0], NULL, f->ad[2], f->ad[0]};
    const float sc[7] = {1, 1, 1, 1, 1, 1, 0.5f};
    wick_session_opts so = {.max_seq = 64};
    CHECK_OK(wick_session_new(f->m, &so, s));
    CHECK_OK(wick_session_set_adapter(*s, ads[i % 7], sc[i % 7]));
    int32_t ids[16];
    int n = 1 + (3 * i) % 8;
    for (int k = 0; k < n; k++) ids[k] = (int32_t)((i * 37 + k * 11 + 5) % f->V);
    CHECK_OK(wick_session_eval(*s, ids, n, lg, 0));
}

static void mixed(const char *name, const char *aname, float tol) {
    fix f;
    if (open_fix(name, aname, &f)) return close_fix(&f);
    wick_session *bs[NS], *rs[NS];
    float *lg = malloc(sizeof(float) * (size_t)f.V);
    int32_t next[NS];
    for (int i = 0; i < NS; i++) {
        setup(&f, &bs[i], i, lg);
        setup(&f, &rs[i], i, lg);
        next[i] = (int32_t)tb_argmax(lg, f.V);
    }
    int all[NS] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, some[4] = {6, 2, 0, 5}, one[1] = {3};
    float worst = 0, d;
    for (int t = 0; t < STEPS; t++) {
        d = tb_step(f.V, bs, rs, all, NS, next, 1);
        worst = d > worst ? d : worst;
    }
    d = tb_step(f.V, bs, rs, some, 4, next, 1);
    worst = d > worst ? d : worst;
    d = tb_step(f.V, bs, rs, one, 1, next, 1);
    worst = d > worst ? d : worst;
    CHECK(worst <= tol, "%s: batched logits differ from alone by %g", name, worst);
    printf("%s: %d sessions x %d steps, max |batched - alone| = %.2e\n", name, NS, STEPS, worst);
    for (int i = 0; i < NS; i++) wick_session_free(bs[i]), wick_session_free(rs[i]);
    free(lg);
    close_fix(&f);
}

static void errors(void) {
    fix f;
    wick_model *m2 = NULL;
    char p[512];
    if (open_fix("qwen2_tiny", "qwen2_tiny", &f)) return close_fix(&f);
    snprintf(p, sizeof p, "%s/golden/qwen2_tiny/model", WICK_TEST_DIR);
    CHECK_OK(wick_model_load(p, NULL, &m2));
    wick_session *a, *b, *full, *other;
    wick_session_opts so = {.max_seq = 8}, tiny = {.max_seq = 2};
    CHECK_OK(wick_session_new(f.m, &so, &a));
    CHECK_OK(wick_session_new(f.m, &so, &b));
    CHECK_OK(wick_session_new(f.m, &tiny, &full));
    CHECK_OK(wick_session_new(m2, &so, &other));
    int32_t ids[3] = {1, 2, 3};
    float *lg = malloc(sizeof(float) * 3 * (size_t)f.V);
    CHECK_OK(wick_session_eval(full, ids, 2, NULL, 0));
    CHECK_OK(wick_session_set_adapter(a, f.ad[0], 1));
    wick_session *mix[2] = {a, other}, *fl[3] = {a, b, full}, *rep[2] = {a, a}, *nul[2] = {a, NULL}, *ok[2] = {a, b};
    int32_t bad[2] = {1, f.V};
    CHECK_FAILS(wick_session_eval_batch(mix, ids, 2, lg), "another model");
    CHECK_FAILS(wick_session_eval_batch(fl, ids, 3, lg), "session 2: context full");
    CHECK_FAILS(wick_session_eval_batch(rep, ids, 2, lg), "the same");
    CHECK_FAILS(wick_session_eval_batch(nul, ids, 2, lg), "session 1 is NULL");
    CHECK_FAILS(wick_session_eval_batch(ok, bad, 2, lg), "outside the vocabulary");
    CHECK_FAILS(wick_session_eval_batch(ok, ids, 0, lg), "no sessions");
    CHECK(wick_session_pos(a) == 0 && wick_session_pos(b) == 0 && wick_session_pos(full) == 2,
          "a failed batch moved a session (%d %d %d)", wick_session_pos(a), wick_session_pos(b), wick_session_pos(full));
    CHECK_OK(wick_session_eval_batch(ok, ids, 2, NULL)); /* no logits: the sessions still advance */
    CHECK(wick_session_pos(a) == 1 && wick_session_pos(b) == 1, "positions %d %d", wick_session_pos(a),
          wick_session_pos(b));
    free(lg);
    wick_session_free(a), wick_session_free(b), wick_session_free(full), wick_session_free(other);
    wick_model_free(m2);
    close_fix(&f);
}

static float frand(uint64_t *st) {
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*st >> 40) & 0xffff) / 32768.f - 1.f;
}

static void lora_seg_op(void) {
    enum { N = 64, IN = 200, OUT = 131, NSEG = 7 };
    const int seg[NSEG + 1] = {0, 3, 3, 5, 6, 36, 40, 64}; /* an empty one, a 30-row one */
    const int r[NSEG] = {16, 8, 4, 70, 16, 5, 16};
    const float scale[NSEG] = {0.5f, 1, 2, 0.25f, 1.5f, 0, 1};
    float *A[NSEG], *B[NSEG], *x = malloc(sizeof(float) * N * IN), *tmp = malloc(sizeof(float) * N * 70);
    float *y0 = malloc(sizeof(float) * N * OUT), *y1 = malloc(sizeof(float) * N * OUT), *yi = malloc(sizeof(float) * N * OUT);
    uint64_t st = 42;
    for (int i = 0; i < N * IN; i++) x[i] = frand(&st);
    for (int i = 0; i < N * OUT; i++) y0[i] = y1[i] = yi[i] = frand(&st);
    for (int g = 0; g < NSEG; g++) {
        A[g] = malloc(sizeof(float) * (size_t)r[g] * IN), B[g] = malloc(sizeof(float) * (size_t)r[g] * OUT);
        for (int i = 0; i < r[g] * IN; i++) A[g][i] = frand(&st) * 0.1f;
        for (int i = 0; i < r[g] * OUT; i++) B[g][i] = frand(&st) * 0.1f;
    }
    float *keep = A[6];
    A[6] = NULL; /* a projection the segment's adapter does not target */
    wk_backend *ref = wk_backend_cpu_ref(), *cpu = wk_backend_cpu();
    wk_lora_seg_generic(ref, y0, x, N, IN, OUT, NSEG, seg, (const float *const *)A, (const float *const *)B, r, scale, tmp);
    cpu->lora_seg(cpu, y1, x, N, IN, OUT, NSEG, seg, (const float *const *)A, (const float *const *)B, r, scale, tmp);
    float d = t_max_abs_diff(y0, y1, (size_t)N * OUT);
    CHECK(d < 1e-5f, "cpu lora_seg differs from the generic op by %g", d);
    float moved = t_max_abs_diff(yi + 36 * OUT, y1 + 36 * OUT, 28 * OUT), changed = t_max_abs_diff(yi, y1, 36 * OUT);
    CHECK(moved == 0.f && changed > 0.01f, "rows of scale 0 / the NULL pair changed (%g), the others by %g", moved, changed);
    printf("lora_seg: cpu vs generic on ref: max |diff| = %.2e\n", d);
    /* lora_seg16: the same over bf16 copies (A, B rounded in place: both read the same values) */
    uint16_t *A16[NSEG], *B16[NSEG];
    for (int g = 0; g < NSEG; g++) {
        A16[g] = g == 3 ? NULL : malloc(2 * (size_t)r[g] * IN), B16[g] = malloc(2 * (size_t)r[g] * OUT); /* 3: f32 A */
        for (int i = 0; i < r[g] * IN && A[g]; i++) {
            uint16_t h = wk_f32_to_bf16(A[g][i]);
            A[g][i] = wk_bf16_to_f32(h);
            if (A16[g]) A16[g][i] = h;
        }
        for (int i = 0; i < r[g] * OUT; i++) B[g][i] = wk_bf16_to_f32(wk_f32_to_bf16(B[g][i]));
        wk_lora_tiles16(B16[g], B[g], OUT, r[g]); /* lora_seg16's layout of B's copy */
    }
    memcpy(y0, yi, sizeof(float) * N * OUT), memcpy(y1, yi, sizeof(float) * N * OUT);
    cpu->lora_seg(cpu, y0, x, N, IN, OUT, NSEG, seg, (const float *const *)A, (const float *const *)B, r, scale, tmp);
    cpu->lora_seg16(cpu, y1, x, N, IN, OUT, NSEG, seg, (const float *const *)A, (const float *const *)B,
                    (const uint16_t *const *)A16, (const uint16_t *const *)B16, r, scale, tmp);
    d = t_max_abs_diff(y0, y1, (size_t)N * OUT);
    CHECK(d <= 1e-6f && t_max_abs_diff(yi, y1, 36 * OUT) > 0.01f, "cpu lora_seg16 differs from lora_seg by %g", d);
    printf("lora_seg16: bf16 copies vs f32 of the same values: max |diff| = %.2e\n", d);
    for (int g = 0; g < NSEG; g++) free(A16[g]), free(B16[g]);
    A[6] = keep;
    for (int g = 0; g < NSEG; g++) free(A[g]), free(B[g]);
    free(x), free(tmp), free(y0), free(y1), free(yi);
}

int main(void) {
    lora_seg_op();
    mixed("qwen2_tiny", "qwen2_tiny", 1e-5f);
    mixed("qwen3_tiny", "qwen3_tiny", 1e-5f);
    mixed("llama_tiny", "llama_tiny", 1e-5f);
    mixed("qwen2_tiny_bf16", "qwen2_tiny", 2e-2f); /* measured 4.1e-3 */
    errors();
    return t_summary();
}
