/* test_cuda_batch.c — the batched decode step on CUDA (batch_device.c over the batched ops).
 * Ops: the batched attention (every row its own caches, capacity and position; head sizes 64
 * and 128; 70 rows of 8 KV heads, more than one launch's merge counters) equals the one-row
 * decode attention run per row within 1e-5. End to end, on the f32 tiny goldens (qwen2: biases;
 * qwen3: q/k norms; llama): 14 sessions on the base, 8 different adapters (two PEFT ones and six
 * random ones of ranks 2..16, some on q/v or the MLP only) and one at scale 0.5, at unequal
 * positions, step together: every row of the batched logits equals the same session stepped
 * alone (wick_session_eval: the fused single-row step) within 1e-4, for 14 rows (cuBLAS
 * products), 5 rows in another order (the warp-per-row products), a step without logits, and
 * after the adapters are reshuffled (the captured graph of 14 rows replayed with another mix).
 * On the bf16 tiny model (several rows read the adapters' bf16 copies, the one-row step the f32
 * ones) the same for the 5 rows of warp-per-row products (14 rows go through cuBLAS, which
 * rounds the activations to bf16, unlike the one-row step) within 5e-2 (the copies' rounding of
 * rank-2..16 adapters at scale 2: 1.7e-2 measured on the H200). The f32 qwen2 case again with
 * the expand at 3 rows a block (wk_cuda_set_bexp_rb: blocks whose rows change adapter, hold the
 * base and end past the last row).
 * Ops: the batched shrink and expand over bf16 copies equal the f32 path over the same
 * rounded values within rel L2 1e-6 (dense and block-diagonal B, a row of the base); over 21
 * rows (the expand that takes several rows a block) t and e equal a host reference in double
 * within rel L2 1e-5 for every rows-a-block setting.
 * Without a GPU it skips. */
#include "t.h"
#include "batch_util.h"
#include "backend/backend.h"
#ifdef WICK_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#define CT_SEED 0x5851F42D4C957F2Dull
#include "cuda_t.h"
#endif
#include <stdint.h>

#ifdef WICK_HAVE_CUDA
/* n rows of H/Hk heads of size D over 2 layers: battention (layer 1) against attention per row. */
static void attention_case(int n, int H, int Hk, int D) {
    size_t HD = (size_t)H * D, KD = (size_t)Hk * D;
    wk_brow *rows = calloc((size_t)n, sizeof *rows);
    float *q = rvec((size_t)n * HD, 1.f), *dq = dev(q, sizeof(float) * n * HD);
    float *dout = G->alloc(G, sizeof(float) * n * HD), *dref = G->alloc(G, sizeof(float) * n * HD);
    float scale = 1.f / sqrtf((float)D);
    for (int i = 0; i < n; i++) {
        int cap = 24 + (i * 37) % 90, pos = (i * 53) % cap; /* keys 0..pos: 1..cap of them */
        size_t kv = 2 * KD * (size_t)cap;
        float *k = rvec(kv, 1.f), *v = rvec(kv, 1.f);
        rows[i] = (wk_brow){dev(k, sizeof(float) * kv), dev(v, sizeof(float) * kv), NULL, cap, pos, 1.f, 0};
        free(k), free(v);
        size_t lo = KD * (size_t)cap;
        G->attention(G, dref + i * HD, dq + i * HD, rows[i].kc + lo, rows[i].vc + lo, 1, pos, NULL, H, Hk, D, cap, scale);
    }
    wk_brow *drows = dev(rows, sizeof *rows * n);
    G->battention(G, dout, dq, n, drows, 1, H, Hk, D, scale);
    float *got = host(dout, (size_t)n * HD), *want = host(dref, (size_t)n * HD);
    no_error("battention");
    float d = t_max_abs_diff(got, want, (size_t)n * HD);
    CHECK(d <= 1e-5f, "battention n=%d H=%d Hk=%d D=%d: max |diff| %g", n, H, Hk, D, d);
    printf("battention n=%d H=%d Hk=%d D=%d: max |diff| vs per row = %.2e\n", n, H, Hk, D, d);
    for (int i = 0; i < n; i++) G->free(G, rows[i].kc), G->free(G, rows[i].vc);
    G->free(G, drows), G->free(G, dq);
    free(rows), free(q), free(got), free(want);
}

/* Entry a of a batched-LoRA op test: A (ra, in) and B (out, ra) random, rounded to bf16 values
 * so the f32 and bf16 copies hold the same numbers; entry 1 block-diagonal (rows [0, out/2)
 * read columns [0, 4), the rest [4, 12)); bf16 copies when with16. Device buffers go to
 * dbuf[*k...]; the host A and B are returned in *hA, *hB (the caller frees them). */
static void make_entry(wk_bent *e, int a, int in, int out, int ra, int with16, void **dbuf, int *k, float **hA, float **hB) {
    size_t na = (size_t)ra * in, nb = (size_t)out * ra;
    float *A = *hA = rvec(na, 1.f), *B = *hB = rvec(nb, 1.f);
    uint16_t *A16 = malloc(2 * na), *B16 = malloc(2 * nb);
    if (a == 1)
        for (int o = 0; o < out; o++)
            for (int j = 0; j < ra; j++)
                if ((o < out / 2) != (j < 4)) B[(size_t)o * ra + j] = 0.f;
    for (size_t i = 0; i < na; i++) A16[i] = wk_f32_to_bf16(A[i]), A[i] = wk_bf16_to_f32(A16[i]);
    for (size_t i = 0; i < nb; i++) B16[i] = wk_f32_to_bf16(B[i]), B[i] = wk_bf16_to_f32(B16[i]);
    memset(e, 0, sizeof *e);
    e->A = dbuf[(*k)++] = dev(A, 4 * na), e->B = dbuf[(*k)++] = dev(B, 4 * nb), e->ra = ra;
    if (with16) e->A16 = dbuf[(*k)++] = dev(A16, 2 * na), e->B16 = dbuf[(*k)++] = dev(B16, 2 * nb);
    if (a == 1) e->nblk = 2, e->brows[0] = out / 2, e->brows[1] = out - out / 2, e->bcols[0] = 4, e->bcols[1] = 8;
    free(A16), free(B16);
}

/* bmatmul's LoRA side (t and e) with the entries' bf16 copies (lo.h16) against the f32 path
 * over the same values rounded to bf16: 3 rows (a dense entry of rank 16: B's vector loads; a
 * block-diagonal one of ranks 4 + 8: B's scalar loads; the base). */
static void blora16_case(int in, int out) {
    int n = 3, R = 32, ra[2] = {16, 12};
    wk_bent he[2];
    void *dbuf[8];
    int k = 0;
    for (int a = 0; a < 2; a++) {
        float *A, *B;
        make_entry(&he[a], a, in, out, ra[a], 1, dbuf, &k, &A, &B);
        free(A), free(B);
    }
    wk_bent *dent = dev(he, sizeof he);
    wk_brow rows[3] = {{NULL, NULL, dent, 0, 0, 0.7f, 0}, {NULL, NULL, NULL, 0, 0, 1.f, 1}, {NULL, NULL, dent + 1, 0, 0, 1.3f, 2}};
    wk_brow *drows = dev(rows, sizeof rows);
    float *x = rvec((size_t)n * in, 1.f), *w = rvec((size_t)out * in, 1.f), *dx = dev(x, 4 * (size_t)n * in);
    uint16_t *wh = malloc(2 * (size_t)out * in);
    for (size_t i = 0; i < (size_t)out * in; i++) wh[i] = wk_f32_to_bf16(w[i]);
    wk_mat W = {.w = dev(wh, 2 * (size_t)out * in), .dt = WICK_DT_BF16, .rows = out, .cols = in};
    float *dy = G->alloc(G, 4 * (size_t)n * out), *got[2][2];
    for (int h = 0; h < 2; h++) {
        float *dt = G->alloc(G, 4 * (size_t)n * R), *de = G->alloc(G, 4 * (size_t)n * out);
        wk_blora lo = {drows, 0, dt, R, de, h};
        G->bmatmul(G, dy, dx, &W, NULL, n, 0, &lo);
        got[h][0] = host(dt, (size_t)n * R), got[h][1] = host(de, (size_t)n * out);
        G->free(G, dt), G->free(G, de);
    }
    no_error("bmatmul with bf16 adapter copies");
    /* t of rows 0 and 2 (row 1, the base, has none), e of every row (the base's: zeros) */
    double et = fmax(t_rel_l2(got[1][0], got[0][0], (size_t)ra[0]),
                     t_rel_l2(got[1][0] + 2 * (size_t)R, got[0][0] + 2 * (size_t)R, (size_t)ra[1]));
    double ee = t_rel_l2(got[1][1], got[0][1], (size_t)n * out);
    float base = 0.f;
    for (int o = 0; o < out; o++) base = fmaxf(base, fabsf(got[1][1][(size_t)out + o]));
    CHECK(et <= 1e-6 && ee <= 1e-6 && base == 0.f, "batched LoRA over bf16 copies in=%d out=%d: t %g, e %g, base row %g",
          in, out, et, ee, base);
    printf("batched LoRA, bf16 copies vs f32 (same values) in=%d out=%d: rel L2 t %.2e e %.2e\n", in, out, et, ee);
    for (int i = 0; i < k; i++) G->free(G, dbuf[i]);
    G->free(G, dent), G->free(G, drows), G->free(G, dx), G->free(G, (void *)W.w), G->free(G, dy);
    for (int h = 0; h < 2; h++) free(got[h][0]), free(got[h][1]);
    free(x), free(w), free(wh);
}

/* bmatmul's LoRA side over more than 4 rows (k_bexpand_rows) against a host reference in
 * double: 21 rows in runs of one adapter and out of order (3 entries: dense rank 16, block-
 * diagonal ranks 4 + 8, and rank 3 without bf16 copies: B's scalar loads), rows of the base
 * and one at scale 0, t of stride 32; with rows a block chosen by shape and forced to 1, 3, 16
 * and 32 (segments that change adapter mid-block, a partial last block), f32 and bf16 copies. */
static void expand_rows_case(int in, int out) {
    enum { N = 21, R = 32, NE = 3 };
    int ra[NE] = {16, 12, 3};
    wk_bent he[NE];
    float *hA[NE], *hB[NE];
    void *dbuf[4 * NE];
    int k = 0;
    for (int a = 0; a < NE; a++) make_entry(&he[a], a, in, out, ra[a], a < 2, dbuf, &k, &hA[a], &hB[a]);
    wk_bent *dent = dev(he, sizeof he);
    /* entry of each row (-1: the base; row 9 has entry 0 at scale 0) */
    static const int which[N] = {0, 0, 0, 1, 1, -1, 2, 2, 2, 0, 1, 1, 1, 1, 0, -1, 2, 0, 0, 1, 2};
    wk_brow rows[N];
    float sc[N];
    for (int i = 0; i < N; i++) {
        sc[i] = i == 9 ? 0.f : 0.5f + 0.1f * (float)i;
        rows[i] = (wk_brow){NULL, NULL, which[i] >= 0 ? dent + which[i] : NULL, 0, 0, sc[i], i};
    }
    wk_brow *drows = dev(rows, sizeof rows);
    float *x = rvec((size_t)N * in, 1.f), *dx = dev(x, 4 * (size_t)N * in);
    uint16_t *wh = malloc(2 * (size_t)out * in);
    for (size_t i = 0; i < (size_t)out * in; i++) wh[i] = wk_f32_to_bf16(0.01f * (float)(i % 7));
    wk_mat W = {.w = dev(wh, 2 * (size_t)out * in), .dt = WICK_DT_BF16, .rows = out, .cols = in};
    /* the reference: t over each row's entry, e over its block's columns */
    double *rt = calloc((size_t)N * R, sizeof(double)), *re = calloc((size_t)N * out, sizeof(double));
    for (int i = 0; i < N; i++) {
        int a = which[i];
        if (a < 0 || sc[i] == 0.f) continue;
        for (int c = 0; c < ra[a]; c++) {
            double v = 0;
            for (int j = 0; j < in; j++) v += (double)x[(size_t)i * in + j] * hA[a][(size_t)c * in + j];
            rt[(size_t)i * R + c] = v;
        }
        for (int o = 0; o < out; o++) {
            double v = 0;
            for (int c = 0; c < ra[a]; c++) v += (double)hB[a][(size_t)o * ra[a] + c] * rt[(size_t)i * R + c];
            re[(size_t)i * out + o] = sc[i] * v;
        }
    }
    float *dy = G->alloc(G, 4 * (size_t)N * out), *dt = G->alloc(G, 4 * (size_t)N * R), *de = G->alloc(G, 4 * (size_t)N * out);
    static const int rbs[5] = {0, 1, 3, 16, 32};
    for (int h = 0; h < 2; h++)
        for (int q = 0; q < 5; q++) {
            wk_cuda_set_bexp_rb(G, rbs[q]);
            wk_blora lo = {drows, 0, dt, R, de, h};
            G->bmatmul(G, dy, dx, &W, NULL, N, 0, &lo);
            float *gt = host(dt, (size_t)N * R), *ge = host(de, (size_t)N * out);
            no_error("bmatmul, LoRA over 21 rows");
            double tn = 0, td = 0, en = 0, ed = 0;
            for (int i = 0; i < N; i++) {
                int a = which[i];
                for (int c = 0; a >= 0 && sc[i] != 0.f && c < ra[a]; c++) {
                    double d = gt[(size_t)i * R + c] - rt[(size_t)i * R + c];
                    tn += d * d, td += rt[(size_t)i * R + c] * rt[(size_t)i * R + c];
                }
                for (int o = 0; o < out; o++) {
                    double d = ge[(size_t)i * out + o] - re[(size_t)i * out + o];
                    en += d * d, ed += re[(size_t)i * out + o] * re[(size_t)i * out + o];
                }
            }
            double et = sqrt(tn / td), ee = sqrt(en / ed);
            CHECK(et <= 1e-5 && ee <= 1e-5, "batched LoRA, 21 rows in=%d out=%d bf16=%d rows/block %d: rel L2 t %g e %g", in,
                  out, h, rbs[q], et, ee);
            if (q == 0 || q == 4)
                printf("batched LoRA, 21 rows in=%d out=%d bf16 copies %d, rows/block %d: rel L2 t %.2e e %.2e\n", in, out, h,
                       rbs[q], et, ee);
            free(gt), free(ge);
        }
    wk_cuda_set_bexp_rb(G, 0);
    for (int i = 0; i < k; i++) G->free(G, dbuf[i]);
    G->free(G, dent), G->free(G, drows), G->free(G, dx), G->free(G, (void *)W.w), G->free(G, dy), G->free(G, dt),
        G->free(G, de);
    for (int a = 0; a < NE; a++) free(hA[a]), free(hB[a]);
    free(x), free(wh), free(rt), free(re);
}

#define NS 14
#define NAD 9 /* adapters 0..7 and adapter 0 again at scale 0.5 */

typedef struct {
    wick_model *m;
    wick_adapter *ad[8];
    int V;
} fix;

static int open_fix(const char *name, const char *aname, fix *f) {
    char p[512];
    memset(f, 0, sizeof *f);
    wick_model_opts mo = wick_model_opts_default();
    mo.device = "cuda";
    snprintf(p, sizeof p, "%s/golden/%s/model", WICK_TEST_DIR, name);
    CHECK_OK(wick_model_load(p, &mo, &f->m));
    if (!f->m) return -1;
    for (int a = 0; a < 2; a++) {
        snprintf(p, sizeof p, "%s/golden/%s/adapter%d", WICK_TEST_DIR, aname, a + 1);
        CHECK_OK(wick_adapter_load(f->m, p, &f->ad[a]));
    }
    static const unsigned tg[6] = {WICK_LORA_ALL, WICK_LORA_Q | WICK_LORA_V, WICK_LORA_ALL,
                                   WICK_LORA_GATE | WICK_LORA_UP | WICK_LORA_DOWN, WICK_LORA_ALL, WICK_LORA_K | WICK_LORA_O};
    static const int rk[6] = {16, 4, 8, 2, 12, 16};
    for (int a = 0; a < 6; a++) {
        wick_lora_config c = wick_lora_config_default();
        c.r = rk[a], c.alpha = 2.f * rk[a], c.targets = tg[a], c.init = WICK_LORA_INIT_RANDOM;
        CHECK_OK(wick_adapter_new(f->m, &c, 100 + (uint64_t)a, &f->ad[2 + a]));
    }
    wick_model_info mi;
    wick_model_get_info(f->m, &mi);
    f->V = mi.vocab_size;
    for (int a = 0; a < 8; a++)
        if (!f->ad[a]) return -1;
    return 0;
}

static void close_fix(fix *f) {
    for (int a = 0; a < 8; a++) wick_adapter_free(f->ad[a]);
    wick_model_free(f->m);
}

/* Selects mix entry k on s: 0 the base, 1..8 adapter k-1, 9 adapter 0 at scale 0.5. */
static void select_mix(fix *f, wick_session *s, int k) {
    k %= NAD + 1;
    CHECK_OK(wick_session_set_adapter(s, k == 0 ? NULL : f->ad[k == 9 ? 0 : k - 1], k == 9 ? 0.5f : 1.f));
}

/* wide: also the steps of all 14 rows (cuBLAS products; not on bf16 weights, see the top);
 * tol: the most |batched - alone| allowed */
static void mixed(const char *name, const char *aname, int wide, float tol) {
    fix f;
    if (open_fix(name, aname, &f)) return close_fix(&f);
    wick_session *bs[NS], *rs[NS];
    float *lg = malloc(sizeof(float) * (size_t)f.V);
    int32_t next[NS], pr[16];
    for (int i = 0; i < NS; i++) {
        wick_session_opts so = {.max_seq = 32 + 8 * (i % 3)};
        CHECK_OK(wick_session_new(f.m, &so, &bs[i]));
        CHECK_OK(wick_session_new(f.m, &so, &rs[i]));
        select_mix(&f, bs[i], i), select_mix(&f, rs[i], i);
        int n = 1 + (5 * i) % 11; /* unequal positions */
        for (int k = 0; k < n; k++) pr[k] = (int32_t)((i * 41 + k * 13 + 7) % f.V);
        CHECK_OK(wick_session_eval(bs[i], pr, n, NULL, 0));
        CHECK_OK(wick_session_eval(rs[i], pr, n, lg, 0));
        next[i] = (int32_t)tb_argmax(lg, f.V);
    }
    int all[NS], some[5] = {9, 2, 13, 0, 6};
    for (int i = 0; i < NS; i++) all[i] = i;
    float worst = 0, d;
    for (int t = 0; t < 4 && wide; t++) { /* direct, captured, replayed twice */
        d = tb_step(f.V, bs, rs, all, NS, next, 1);
        worst = d > worst ? d : worst;
    }
    for (int t = 0; t < 3; t++) {
        d = tb_step(f.V, bs, rs, some, 5, next, 1);
        worst = d > worst ? d : worst;
    }
    tb_step(f.V, bs, rs, wide ? all : some, wide ? NS : 5, next, 0); /* no logits: the sessions advance all the same */
    for (int i = 0; i < NS; i++) select_mix(&f, bs[i], i + 3), select_mix(&f, rs[i], i + 3);
    for (int t = 0; t < 3; t++) { /* the graph of 14 (or 5) rows with another mix */
        d = wide ? tb_step(f.V, bs, rs, all, NS, next, 1) : tb_step(f.V, bs, rs, some, 5, next, 1);
        worst = d > worst ? d : worst;
    }
    CHECK(worst <= tol, "%s: batched logits differ from alone by %g", name, worst);
    printf("%s on cuda: %d sessions, 8 adapters + base, max |batched - alone| = %.2e\n", name, NS, worst);
    for (int i = 0; i < NS; i++) wick_session_free(bs[i]), wick_session_free(rs[i]);
    free(lg);
    close_fix(&f);
}
#endif

int main(void) {
    if (ct_no_device("test_cuda_batch")) return t_summary();
#ifdef WICK_HAVE_CUDA
    G = wk_backend_cuda(0);
    CHECK(G != NULL, "cuda backend: %s", wick_last_error());
    if (!G) return t_summary();
    CHECK(G->battention != NULL, "the CUDA backend has no batched ops (WICK_CUDA_BATCH=0?)");
    if (G->battention) {
        attention_case(70, 32, 8, 64);
        attention_case(5, 28, 4, 128);
        attention_case(9, 4, 2, 16);
    }
    blora16_case(896, 1152);
    blora16_case(4864, 896); /* long rows: half the components a block */
    blora16_case(98, 70);    /* in % 4 != 0: A's scalar loads */
    expand_rows_case(896, 1152);
    expand_rows_case(200, 4900); /* 20 blocks of outputs, the last partial */
    mixed("qwen2_tiny", "qwen2_tiny", 1, 1e-4f);
    mixed("qwen3_tiny", "qwen3_tiny", 1, 1e-4f);
    mixed("llama_tiny", "llama_tiny", 1, 1e-4f);
    mixed("qwen2_tiny_bf16", "qwen2_tiny", 0, 5e-2f); /* measured 1.7e-2: the bf16 copies' rounding */
    /* the expand over several rows a block (wide products over many rows take up to 16): 3
     * rows a block mix adapters, the base and a partial last block */
    wk_cuda_set_bexp_rb(G, 3);
    mixed("qwen2_tiny", "qwen2_tiny", 1, 1e-4f);
    wk_cuda_set_bexp_rb(G, 0);
#endif
    return t_summary();
}
