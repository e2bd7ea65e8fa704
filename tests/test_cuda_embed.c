/* test_cuda_embed.c — the encoder on CUDA: each encoder op (LayerNorm with and without a
 * residual and bias, GELU with and without bias, masked bidirectional attention over padded
 * batches with fused q|k|v strides and biases, pooling) against the CPU reference / wick_pool; the bert_tiny golden (transformers) on "cuda" in the fp32 mode
 * within 1e-5 (hidden states and embeddings, every batch size, each sequence alone = inside
 * the batch, graph replays = first run), and the bf16 mode (--fast-bf16) within its
 * documented bounds: hidden states relative L2 < 2e-2, embeddings max |diff| < 1e-2. The device
 * path (uploads, fused q|k|v, biases inside the ops, staged batches, pooled rows) also runs on a
 * host-memory backend against the golden, GPU or not. Without the CUDA backend or a GPU it checks that "cuda" is refused with a clear
 * message and skips the rest. */
#include "t.h"
#include "backend/backend.h"
#ifdef WICK_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include "io/safetensors.h"
#include "model/bert.h"
#include <math.h>
#include <stdlib.h>

#define MODEL T_PATH("golden/bert_tiny/model")
enum { B = 3, T = 10, H = 64 };

static int32_t ids[B * T], mask[B * T], lens[B];
static const float *ref_hidden, *ref_emb;

static void load_golden(wick_st **gold) {
    wick_tensor_view v;
    CHECK_OK(wick_st_open(T_PATH("golden/bert_tiny/golden.safetensors"), gold));
    CHECK_OK(wick_st_find(*gold, "input_ids", &v));
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((const int64_t *)v.data)[i];
    CHECK_OK(wick_st_find(*gold, "attention_mask", &v));
    for (int i = 0; i < B * T; i++) lens[i / T] += mask[i] = (int32_t)((const int64_t *)v.data)[i];
    CHECK_OK(wick_st_find(*gold, "last_hidden_state", &v));
    ref_hidden = v.data;
    CHECK_OK(wick_st_find(*gold, "embeddings", &v));
    ref_emb = v.data;
}

/* A "device" in host memory: the fast CPU ops, malloc/memcpy for memory, wick_pool for the
 * pool op. The encoder's device path (uploads, fused q|k|v, biases inside the ops, staged
 * batches, pooled rows, one download) runs on it without a GPU. */
static void *h_alloc(wk_backend *be, size_t n) { return malloc(n); }
static void h_free(wk_backend *be, void *p) { free(p); }
static void h_copy(wk_backend *be, void *d, const void *s, size_t n) { memcpy(d, s, n); }
static void h_sync(wk_backend *be) {}
static wick_status h_check(wk_backend *be) { return WICK_OK; }
static void h_pool(wk_backend *be, float *out, const float *h, const int32_t *mask, const int32_t *rows, int Bn, int Tn,
                   int C, int mode, int norm) {
    for (int b = 0; b < Bn; b++)
        wick_pool(h + (size_t)b * Tn * C, mask + (size_t)b * Tn, Tn, C, (wick_pooling)mode, norm, out + (size_t)rows[b] * C);
}

static void test_device_path_on_host(int bf16) {
    static wk_backend hb;
    hb = *wk_backend_cpu();
    hb.device_memory = 1, hb.alloc = h_alloc, hb.free = h_free, hb.upload = h_copy, hb.download = h_copy;
    hb.sync = h_sync, hb.check = h_check, hb.pool = h_pool, hb.graph_capture = NULL;
    wick_encoder *e = NULL;
    CHECK_OK(wick_encoder_load(MODEL, NULL, &e));
    if (!e) return;
    CHECK_OK(wk_bert_to_backend(e, &hb, bf16));
    CHECK(e->layers[0].qkv.w != NULL && e->layers[0].qkv.rows == 3 * H, "fused q|k|v on the device");
    float hid[B * T * H], emb[B * H];
    CHECK_OK(wick_encoder_forward(e, ids, NULL, mask, B, T, hid));
    double rel = t_rel_l2(hid, ref_hidden, B * T * H);
    float d = t_max_abs_diff(hid, ref_hidden, B * T * H);
    CHECK(bf16 ? rel < 2e-2 : d < 1e-5f, "device path on the host (bf16 %d): hidden max |diff| %g, rel L2 %g", bf16, d, rel);
    const int32_t *seqs[B] = {ids, ids + T, ids + 2 * T};
    for (int bs = 1; bs <= 4; bs++) {
        wick_embed_opts o = wick_embed_opts_default();
        o.batch_size = bs;
        CHECK_OK(wick_embed_ids(e, seqs, lens, B, &o, emb));
        d = t_max_abs_diff(emb, ref_emb, B * H);
        CHECK(d < (bf16 ? 1e-2f : 1e-5f), "device path on the host (bf16 %d, batch size %d): embeddings %g", bf16, bs, d);
    }
    wick_encoder_free(e);
}

static void check_unavailable(void) {
    wick_model_opts o = wick_model_opts_default();
    o.device = "cuda";
    wick_encoder *e = NULL;
    CHECK_FAILS(wick_encoder_load(MODEL, &o, &e), "cuda");
    CHECK(e == NULL, "no encoder on failure");
    o.device = "gpu0";
    CHECK_FAILS(wick_encoder_load(MODEL, &o, &e), "expected cpu, cuda or cuda:N");
}

#ifdef WICK_HAVE_CUDA
#define CT_SEED 0x2545F4914F6CDD1Dull
#include "cuda_t.h"

static wk_backend *R; /* the cpu reference (G, the cuda backend: cuda_t.h) */


static void test_layernorm_gelu(void) {
    int dims[] = {64, 384, 100, 1024, 37};
    for (int di = 0; di < 5; di++)
        for (int res = 0; res < 4; res++) { /* bit 0: a residual, bit 1: the product's bias */
            int n = 19, dim = dims[di];
            size_t cnt = (size_t)n * dim;
            float *x = rvec(cnt, 3.f), *r = rvec(cnt, 1.f), *w = rvec(dim, 1.f), *b = rvec(dim, 1.f), *y = malloc(cnt * 4);
            for (size_t i = 0; i < cnt; i++) x[i] += 2.f; /* a mean far from 0 */
            float *dx = dev(x, cnt * 4), *dr = dev(r, cnt * 4), *dw = dev(w, dim * 4), *db = dev(b, dim * 4);
            R->layernorm(R, y, x, res & 2 ? b : NULL, res & 1 ? r : NULL, w, b, n, dim, 1e-12f);
            G->layernorm(G, dx, dx, res & 2 ? db : NULL, res & 1 ? dr : NULL, dw, db, n, dim, 1e-12f); /* in place */
            float *got = host(dx, cnt);
            no_error("layernorm");
            double e = t_rel_l2(got, y, cnt);
            CHECK(e < 3e-6, "layernorm dim %d residual %d: rel L2 %g", dim, res, e);
            G->free(G, dr), G->free(G, dw), G->free(G, db);
            free(x), free(r), free(w), free(b), free(y), free(got);
        }
    size_t n = 100003;
    float *x = rvec(n, 6.f), *y = malloc(n * 4), *dx = dev(x, n * 4), *xb = rvec(1536, 1.f), *dxb = dev(xb, 1536 * 4);
    for (int wb = 0; wb < 2; wb++) {
        float *dy = G->alloc(G, n * 4);
        R->gelu(R, y, x, wb ? xb : NULL, n, 1536);
        G->gelu(G, dy, dx, wb ? dxb : NULL, n, 1536);
        float *got = host(dy, n);
        no_error("gelu");
        float d = t_max_abs_diff(got, y, n);
        CHECK(d < 2e-6f, "gelu (bias %d) max |diff| %g", wb, d);
        free(got);
    }
    G->free(G, dx), G->free(G, dxb);
    free(x), free(y), free(xb);
}

/* B sequences of Tn rows (lengths len[b], the rest masked), H heads of D, row strides ld, ldo >= H*D. */
static void attention_case(int Bn, int Tn, int Hn, int D, int ld, int ldo, const int *len, int use_mask, int use_bias) {
    size_t cnt = (size_t)Bn * Tn * ld, cnto = (size_t)Bn * Tn * ldo;
    float *q = rvec(cnt, 1.f), *k = rvec(cnt, 1.f), *v = rvec(cnt, 1.f), *o = calloc(cnto, 4);
    int32_t *m = malloc(sizeof(int32_t) * (size_t)Bn * Tn);
    for (int b = 0; b < Bn; b++)
        for (int t = 0; t < Tn; t++) m[b * Tn + t] = !use_mask || t < len[b];
    if (use_mask && Tn > 100) /* a whole tile of keys masked in the middle of a real sequence */
        for (int t = 64; t < 128; t++) m[t] = 0;
    float *dq = dev(q, cnt * 4), *dk = dev(k, cnt * 4), *dv = dev(v, cnt * 4), *dout = dev(o, cnto * 4);
    float *bias = rvec((size_t)3 * Hn * D, 1.f), *dbias = dev(bias, sizeof(float) * 3 * Hn * D);
    int32_t *dm = dev(m, sizeof(int32_t) * (size_t)Bn * Tn);
    float scale = 1.f / sqrtf((float)D);
    R->attention_bidir(R, o, q, k, v, use_bias ? bias : NULL, use_mask ? m : NULL, Bn, Tn, Hn, D, ld, ldo, scale);
    G->attention_bidir(G, dout, dq, dk, dv, use_bias ? dbias : NULL, use_mask ? dm : NULL, Bn, Tn, Hn, D, ld, ldo, scale);
    float *got = host(dout, cnto);
    no_error("attention_bidir");
    double e = t_rel_l2(got, o, cnto);
    CHECK(e < 1e-5, "attention_bidir B%d T%d H%d D%d ld%d ldo%d mask %d bias %d: rel L2 %g", Bn, Tn, Hn, D, ld, ldo,
          use_mask, use_bias, e);
    G->free(G, dq), G->free(G, dk), G->free(G, dv), G->free(G, dm), G->free(G, dbias);
    free(q), free(k), free(v), free(o), free(m), free(got), free(bias);
}

static void test_attention(void) {
    int l1[1] = {1}, l3[3] = {7, 3, 1}, l4[4] = {33, 33, 20, 2}, l2[2] = {130, 90};
    attention_case(1, 1, 2, 32, 64, 64, l1, 1, 0);
    attention_case(3, 7, 4, 16, 64, 70, l3, 1, 1);
    attention_case(4, 33, 12, 64, 3 * 768, 768, l4, 1, 1); /* a fused q|k|v buffer + biases, as the encoder runs it */
    attention_case(4, 33, 12, 64, 768, 768, l4, 0, 0);
    attention_case(2, 130, 3, 80, 240, 240, l2, 1, 1);
    attention_case(2, 70, 2, 128, 300, 256, l2, 0, 1);
    float x[1] = {0};
    G->attention_bidir(G, x, x, x, x, NULL, NULL, 1, 1, 1, 160, 160, 160, 1.f);
    CHECK_FAILS(G->check(G), "head_dim 160");
}

static void test_pool(void) {
    enum { PB = 4, PT = 9, PC = 48 };
    int len[PB] = {9, 4, 1, 6}, rows[PB] = {2, 0, 3, 1};
    float *h = rvec((size_t)PB * PT * PC, 2.f), want[PB * PC], *dh = dev(h, sizeof(float) * PB * PT * PC);
    int32_t m[PB * PT];
    for (int i = 0; i < PB * PT; i++) m[i] = i % PT < len[i / PT];
    int32_t *dm = dev(m, sizeof m), *drows = dev(rows, sizeof rows);
    float *dout = G->alloc(G, sizeof want);
    for (int mode = 1; mode <= 3; mode++)
        for (int norm = 0; norm < 2; norm++) {
            for (int b = 0; b < PB; b++)
                wick_pool(h + (size_t)b * PT * PC, m + b * PT, PT, PC, (wick_pooling)mode, norm, want + rows[b] * PC);
            float got[PB * PC];
            G->pool(G, dout, dh, dm, drows, PB, PT, PC, mode, norm);
            G->download(G, got, dout, sizeof got);
            no_error("pool");
            float d = t_max_abs_diff(got, want, PB * PC);
            CHECK(d < 1e-6f, "pool mode %d normalize %d: max |diff| %g", mode, norm, d);
        }
    G->free(G, dh), G->free(G, dm), G->free(G, drows), G->free(G, dout);
    free(h);
}

static wick_encoder *load(int bf16) {
    wick_model_opts o = wick_model_opts_default();
    o.device = "cuda";
    o.fast_bf16 = bf16;
    wick_encoder *e = NULL;
    CHECK_OK(wick_encoder_load(MODEL, &o, &e));
    return e;
}

static void test_golden_fp32(void) {
    wick_encoder *e = load(0);
    if (!e) return;
    float hid[B * T * H], emb[B * H], again[B * H];
    CHECK_OK(wick_encoder_forward(e, ids, NULL, mask, B, T, hid));
    float d = t_max_abs_diff(hid, ref_hidden, B * T * H);
    printf("cuda fp32: bert_tiny last_hidden_state max |diff| %g\n", d);
    CHECK(d < 1e-5f, "cuda last_hidden_state max |diff| %g", d);
    const int32_t *seqs[B] = {ids, ids + T, ids + 2 * T};
    for (int bs = 1; bs <= 4; bs++) {
        wick_embed_opts o = wick_embed_opts_default();
        o.batch_size = bs;
        for (int rep = 0; rep < 3; rep++) { /* capture, then graph replays */
            CHECK_OK(wick_embed_ids(e, seqs, lens, B, &o, rep ? again : emb));
            if (rep) CHECK(t_max_abs_diff(again, emb, B * H) == 0, "batch size %d: replay %d = first run", bs, rep);
        }
        d = t_max_abs_diff(emb, ref_emb, B * H);
        CHECK(d < 1e-5f, "cuda embeddings (batch size %d) max |diff| %g", bs, d);
    }
    for (int b = 0; b < B; b++) {
        float one[H];
        CHECK_OK(wick_embed_ids(e, &seqs[b], &lens[b], 1, NULL, one));
        d = t_max_abs_diff(one, emb + b * H, H);
        CHECK(d < 1e-6f, "cuda: sequence %d alone vs in batch: %g", b, d);
    }
    wick_embed_opts o = {.pooling = WICK_POOL_CLS, .normalize = 0};
    CHECK_OK(wick_embed_ids(e, seqs, lens, B, &o, emb));
    for (int b = 0; b < B; b++)
        CHECK(t_max_abs_diff(emb + b * H, ref_hidden + (size_t)b * T * H, H) < 1e-5f, "cuda cls pooling seq %d", b);
    int32_t bad[3] = {2, 300, 3};
    const int32_t *s = bad;
    int l = 3;
    CHECK_FAILS(wick_embed_ids(e, &s, &l, 1, NULL, emb), "outside the vocabulary");
    wick_encoder_free(e);
}

static void test_golden_bf16(void) {
    wick_encoder *e = load(1);
    if (!e) return;
    float hid[B * T * H], emb[B * H];
    CHECK_OK(wick_encoder_forward(e, ids, NULL, mask, B, T, hid));
    double rel = t_rel_l2(hid, ref_hidden, B * T * H);
    const int32_t *seqs[B] = {ids, ids + T, ids + 2 * T};
    CHECK_OK(wick_embed_ids(e, seqs, lens, B, NULL, emb));
    float d = t_max_abs_diff(emb, ref_emb, B * H);
    printf("cuda bf16: bert_tiny last_hidden_state rel L2 %g, embeddings max |diff| %g\n", rel, d);
    CHECK(rel < 2e-2, "cuda bf16 last_hidden_state rel L2 %g", rel);
    CHECK(d < 1e-2f, "cuda bf16 embeddings max |diff| %g", d);
    wick_encoder_free(e);
}
#endif

int main(void) {
    wick_st *gold = NULL;
    load_golden(&gold);
    test_device_path_on_host(0);
    test_device_path_on_host(1);
    if (ct_no_device("test_cuda_embed")) {
        check_unavailable();
        wick_st_close(gold);
        return t_summary();
    }
#ifdef WICK_HAVE_CUDA
    G = wk_backend_cuda(0);
    R = wk_backend_cpu_ref();
    CHECK(G != NULL, "cuda backend: %s", wick_last_error());
    if (G) {
        test_layernorm_gelu();
        test_attention();
        test_pool();
        test_golden_fp32();
        test_golden_bf16();
    }
#endif
    wick_st_close(gold);
    return t_summary();
}
