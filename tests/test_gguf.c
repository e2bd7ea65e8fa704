/*
 * test_gguf.c — the GGUF reader and writer: metadata round trip of every value type
 * (nested string arrays included), tensors and alignment, typed getters, the
 * architecture config and HF name mapping, the llama Q/K permutation, and a corpus
 * of corrupt files (built byte by byte here, independent of the writer) that must
 * each fail with a message naming the problem; plus every truncation and random
 * byte flips of a valid file, which must fail cleanly or open.
 */
#include "t.h"
#include "backend/cpu/quant.h"
#include "io/gguf.h"
#include <unistd.h>

static char g_dir[64];
static char *tmp_path(const char *name) {
    static char buf[4][256];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, 256, "%s/%s", g_dir, name);
    return b;
}

/* ---- byte builder for hand-made files */
typedef struct { uint8_t p[8192]; size_t n; } bb;
static void b_raw(bb *b, const void *p, size_t n) { memcpy(b->p + b->n, p, n); b->n += n; }
static void b_u32(bb *b, uint32_t v) { b_raw(b, &v, 4); }
static void b_u64(bb *b, uint64_t v) { b_raw(b, &v, 8); }
static void b_str(bb *b, const char *s) { b_u64(b, strlen(s)); b_raw(b, s, strlen(s)); }
static void b_pad(bb *b, size_t a) { while (b->n % a) b->p[b->n++] = 0; }
static void b_header(bb *b, uint32_t version, uint64_t nt, uint64_t nkv) {
    b->n = 0;
    b_raw(b, "GGUF", 4); b_u32(b, version); b_u64(b, nt); b_u64(b, nkv);
}
static void b_tensor(bb *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type, uint64_t off) {
    b_str(b, name); b_u32(b, nd);
    for (uint32_t i = 0; i < nd; i++) b_u64(b, ne[i]);
    b_u32(b, type); b_u64(b, off);
}
static void b_save(const bb *b, const char *path) {
    FILE *f = fopen(path, "wb");
    fwrite(b->p, 1, b->n, f);
    fclose(f);
}
static wick_status open_bytes(const bb *b) {
    b_save(b, tmp_path("c.gguf"));
    wk_gguf *g = NULL;
    wick_status st = wk_gguf_open(tmp_path("c.gguf"), &g);
    wk_gguf_close(g);
    return st;
}
/* A valid file: one u32 key, two F32 tensors [4] and [2,3] at offsets 0 and 32. */
static void b_valid(bb *b) {
    uint64_t ne1[1] = {4}, ne2[2] = {2, 3};
    b_header(b, 3, 2, 1);
    b_str(b, "k"); b_u32(b, WK_GGUF_U32); b_u32(b, 7);
    b_tensor(b, "a", 1, ne1, WK_Q_F32, 0);
    b_tensor(b, "b", 2, ne2, WK_Q_F32, 32);
    b_pad(b, 32);
    for (int i = 0; i < 14; i++) { float f = (float)i; b_raw(b, &f, 4); }
}

static void test_corrupt(void) {
    bb b;
    b_valid(&b);
    CHECK_OK(open_bytes(&b));
    bb c = b;
    memcpy(c.p, "GGML", 4);
    CHECK_FAILS(open_bytes(&c), "bad magic");
    c = b; c.p[4] = 1; CHECK_FAILS(open_bytes(&c), "version 1 not supported");
    c = b; c.p[4] = 4; CHECK_FAILS(open_bytes(&c), "version 4 not supported");
    c = b; c.p[4] = 0; c.p[7] = 3; CHECK_FAILS(open_bytes(&c), "big-endian");
    c = b; memset(c.p + 8, 0xff, 7); CHECK_FAILS(open_bytes(&c), "tensor count");
    c = b; memset(c.p + 16, 0x7f, 7); CHECK_FAILS(open_bytes(&c), "metadata count");
    c = b; c.n = 20; CHECK_FAILS(open_bytes(&c), "too short");
    b_header(&c, 3, 0, 1); b_str(&c, "key"); b_u32(&c, WK_GGUF_U64); b_u32(&c, 0);
    CHECK_FAILS(open_bytes(&c), "metadata key 'key': 8 bytes needed at offset 39 but the file has 43 bytes (truncated?)");
    c = b; c.p[24] = 0xff; c.p[29] = 0x10; CHECK_FAILS(open_bytes(&c), "runs past the end of the file");
    c = b; c.p[24 + 9] = 13; CHECK_FAILS(open_bytes(&c), "unknown value type 13");
    c = b; c.n -= 4; CHECK_FAILS(open_bytes(&c), "tensor 'b': data");
    /* tensor-level problems, built from scratch */
    uint64_t ne1[1] = {4}, ne0[1] = {0}, ne33[1] = {33};
    struct { uint32_t nd; const uint64_t *ne; uint32_t type; uint64_t off; const char *want; } bad[] = {
        {1, ne1, WK_Q_F32, 8, "not a multiple of the alignment"},
        {1, ne1, 4, 0, "unknown ggml type 4"},
        {1, ne1, 77, 0, "unknown ggml type 77"},
        {0, ne1, WK_Q_F32, 0, "number of dimensions"},
        {5, ne1, WK_Q_F32, 0, "number of dimensions"},
        {1, ne0, WK_Q_F32, 0, "is zero"},
        {1, ne33, WK_Q_Q4_0, 0, "not a multiple of Q4_0's block size 32"},
        {1, ne1, WK_Q_F32, 1u << 20, "runs past the end"},
    };
    for (size_t i = 0; i < WK_ARRAY_LEN(bad); i++) {
        uint64_t ne5[5] = {4, 1, 1, 1, 1};
        b_header(&c, 3, 1, 0);
        b_tensor(&c, "t", bad[i].nd, bad[i].nd == 5 ? ne5 : bad[i].ne, bad[i].type, bad[i].off);
        b_pad(&c, 32);
        memset(c.p + c.n, 0, 64); c.n += 64;
        CHECK_FAILS(open_bytes(&c), bad[i].want);
    }
    /* overlapping tensors and duplicates */
    b_header(&c, 3, 2, 0);
    b_tensor(&c, "x", 1, ne1, WK_Q_F32, 0); b_tensor(&c, "y", 1, ne1, WK_Q_F32, 0);
    b_pad(&c, 32); memset(c.p + c.n, 0, 64); c.n += 64;
    CHECK_FAILS(open_bytes(&c), "overlap");
    b_header(&c, 3, 2, 0);
    b_tensor(&c, "x", 1, ne1, WK_Q_F32, 0); b_tensor(&c, "x", 1, ne1, WK_Q_F32, 32);
    b_pad(&c, 32); memset(c.p + c.n, 0, 64); c.n += 64;
    CHECK_FAILS(open_bytes(&c), "tensor name 'x' appears twice");
    b_header(&c, 2, 0, 2);
    b_str(&c, "dup"); b_u32(&c, WK_GGUF_U8); c.p[c.n++] = 1;
    b_str(&c, "dup"); b_u32(&c, WK_GGUF_U8); c.p[c.n++] = 1;
    CHECK_FAILS(open_bytes(&c), "'dup' appears twice");
    /* metadata values */
    b_header(&c, 3, 0, 1); b_str(&c, "general.alignment"); b_u32(&c, WK_GGUF_U32); b_u32(&c, 24);
    CHECK_FAILS(open_bytes(&c), "not a power of two");
    b_header(&c, 3, 0, 1); b_str(&c, "general.alignment"); b_u32(&c, WK_GGUF_U64); b_u64(&c, 64);
    CHECK_FAILS(open_bytes(&c), "expected UINT32");
    b_header(&c, 3, 0, 1); b_str(&c, "flag"); b_u32(&c, WK_GGUF_BOOL); c.p[c.n++] = 2;
    CHECK_FAILS(open_bytes(&c), "bool has value 2");
    b_header(&c, 3, 0, 1); b_str(&c, "arr"); b_u32(&c, WK_GGUF_ARRAY); b_u32(&c, 42); b_u64(&c, 1);
    CHECK_FAILS(open_bytes(&c), "'arr': unknown array element type 42");
    b_header(&c, 3, 0, 1); b_str(&c, "arr"); b_u32(&c, WK_GGUF_ARRAY); b_u32(&c, WK_GGUF_U32); b_u64(&c, 1ull << 40);
    CHECK_FAILS(open_bytes(&c), "array of 1099511627776 UINT32 elements runs past");
    b_header(&c, 3, 0, 1); b_str(&c, "strs"); b_u32(&c, WK_GGUF_ARRAY); b_u32(&c, WK_GGUF_STRING); b_u64(&c, 2);
    b_str(&c, "ok"); b_u64(&c, 1000); b_raw(&c, "abc", 3);
    CHECK_FAILS(open_bytes(&c), "'strs': string length 1000");
    b_header(&c, 3, 0, 1); b_str(&c, "deep"); b_u32(&c, WK_GGUF_ARRAY);
    for (int i = 0; i < 12; i++) { b_u32(&c, WK_GGUF_ARRAY); b_u64(&c, 1); }
    b_u32(&c, WK_GGUF_U8); b_u64(&c, 0);
    CHECK_FAILS(open_bytes(&c), "nested deeper");
    b_header(&c, 3, 0, 1); b_u64(&c, 0); b_u32(&c, WK_GGUF_U8); c.p[c.n++] = 0;
    CHECK_FAILS(open_bytes(&c), "key is empty");
    wk_gguf *g = NULL;
    CHECK_FAILS(wk_gguf_open(tmp_path("does-not-exist.gguf"), &g), "cannot open");
    CHECK(g == NULL, "no handle on failure");
}

/* Every prefix of a valid file fails (until the last tensor's data is complete); byte flips never crash. */
static void test_truncations_and_flips(void) {
    bb b, c;
    b_valid(&b);
    size_t data_end = b.n;
    int bad = 0;
    for (size_t n = 0; n < data_end; n++) {
        c = b; c.n = n;
        wick_status st = open_bytes(&c);
        if (st == WICK_OK || !*wick_last_error()) bad++;
    }
    CHECK(bad == 0, "%d truncated prefixes opened or failed without a message", bad);
    uint64_t s = 99;
    int opened = 0, failed = 0;
    for (int i = 0; i < 400; i++) {
        c = b;
        for (int k = 0; k < 3; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            c.p[(s >> 33) % c.n] ^= (uint8_t)(1u << ((s >> 20) % 8));
        }
        if (open_bytes(&c) == WICK_OK) opened++;
        else failed += *wick_last_error() != 0;
    }
    CHECK(opened + failed == 400, "every flipped file opened or failed with a message (%d + %d)", opened, failed);
}

static void test_roundtrip(void) {
    wk_gguf_writer *w;
    CHECK_OK(wk_gguf_writer_new(64, &w));
    uint8_t u8 = 200; int8_t i8 = -100; uint16_t u16 = 60000; int16_t i16 = -30000; int32_t i32 = -2000000000;
    uint64_t u64 = 18000000000000000000ull; int64_t i64 = -9000000000000000000ll; double f64 = 3.141592653589793;
    CHECK_OK(wk_gguf_w_scalar(w, "v.u8", WK_GGUF_U8, &u8));
    CHECK_OK(wk_gguf_w_scalar(w, "v.i8", WK_GGUF_I8, &i8));
    CHECK_OK(wk_gguf_w_scalar(w, "v.u16", WK_GGUF_U16, &u16));
    CHECK_OK(wk_gguf_w_scalar(w, "v.i16", WK_GGUF_I16, &i16));
    CHECK_OK(wk_gguf_w_u32(w, "v.u32", 4000000000u));
    CHECK_OK(wk_gguf_w_scalar(w, "v.i32", WK_GGUF_I32, &i32));
    CHECK_OK(wk_gguf_w_f32(w, "v.f32", 0.1f));
    CHECK_OK(wk_gguf_w_bool(w, "v.bool", true));
    CHECK_OK(wk_gguf_w_str(w, "v.str", "héllo"));
    CHECK_OK(wk_gguf_w_str(w, "v.empty", ""));
    CHECK_OK(wk_gguf_w_scalar(w, "v.u64", WK_GGUF_U64, &u64));
    CHECK_OK(wk_gguf_w_scalar(w, "v.i64", WK_GGUF_I64, &i64));
    CHECK_OK(wk_gguf_w_scalar(w, "v.f64", WK_GGUF_F64, &f64));
    int32_t arr[5] = {1, -2, 3, -4, 5};
    float farr[3] = {0.5f, -1.5f, 2.25f};
    CHECK_OK(wk_gguf_w_arr(w, "a.i32", WK_GGUF_I32, arr, 5));
    CHECK_OK(wk_gguf_w_arr(w, "a.f32", WK_GGUF_F32, farr, 3));
    CHECK_OK(wk_gguf_w_arr(w, "a.empty", WK_GGUF_U8, NULL, 0));
    const char *strs[3] = {"a b", "", "Ġthe"};
    CHECK_OK(wk_gguf_w_arr_str(w, "a.str", strs, 3));
    const char *in0[2] = {"x", "yy"}, *in1[1] = {"zzz"};
    const char *const *nested[2] = {in0, in1};
    uint64_t lens[2] = {2, 1};
    CHECK_OK(wk_gguf_w_arr_arr_str(w, "a.nested", nested, lens, 2));
    CHECK_FAILS(wk_gguf_w_u32(w, "v.u32", 1), "added twice");
    /* tensors: F32 [3,2], Q8_0 [64,2], Q4_K [256] */
    float t0[6] = {1, 2, 3, 4, 5, 6};
    static float src[256];
    static uint8_t q8[2 * 68], q4k[144];
    for (int i = 0; i < 256; i++) src[i] = sinf((float)i);
    wk_quantize_row(WK_Q_Q8_0, src, q8, 128);
    wk_quantize_row(WK_Q_Q4_K, src, q4k, 256);
    int64_t ne0[2] = {3, 2}, ne1[2] = {64, 2}, ne2[1] = {256};
    CHECK_OK(wk_gguf_w_tensor(w, "t.f32", WK_Q_F32, 2, ne0, t0, sizeof t0));
    CHECK_OK(wk_gguf_w_tensor(w, "t.q8", WK_Q_Q8_0, 2, ne1, q8, sizeof q8));
    CHECK_OK(wk_gguf_w_tensor(w, "t.q4k", WK_Q_Q4_K, 1, ne2, q4k, sizeof q4k));
    CHECK_FAILS(wk_gguf_w_tensor(w, "t.bad", WK_Q_Q8_0, 1, ne1, q8, 10), "needs 68");
    CHECK_OK(wk_gguf_writer_write(w, tmp_path("rt.gguf")));
    wk_gguf_writer_free(w);

    wk_gguf *g;
    CHECK_OK(wk_gguf_open(tmp_path("rt.gguf"), &g));
    if (!g) return;
    CHECK(wk_gguf_version(g) == 3 && wk_gguf_alignment(g) == 64, "version %u alignment %u", wk_gguf_version(g), wk_gguf_alignment(g));
    CHECK(wk_gguf_kv_count(g) == 19, "kv count %lld", (long long)wk_gguf_kv_count(g));
    int64_t iv; uint64_t uv; double dv; bool bv; const char *sv; const wk_gguf_val *av;
    CHECK(!wk_gguf_get_int(g, "v.u8", &iv) && iv == 200, "u8");
    CHECK(!wk_gguf_get_int(g, "v.i8", &iv) && iv == -100, "i8");
    CHECK(!wk_gguf_get_int(g, "v.u16", &iv) && iv == 60000, "u16");
    CHECK(!wk_gguf_get_int(g, "v.i16", &iv) && iv == -30000, "i16");
    CHECK(!wk_gguf_get_uint(g, "v.u32", &uv) && uv == 4000000000u, "u32");
    CHECK(!wk_gguf_get_int(g, "v.i32", &iv) && iv == -2000000000, "i32");
    CHECK(!wk_gguf_get_float(g, "v.f32", &dv) && (float)dv == 0.1f, "f32");
    CHECK(!wk_gguf_get_bool(g, "v.bool", &bv) && bv, "bool");
    CHECK(!wk_gguf_get_str(g, "v.str", &sv) && strcmp(sv, "héllo") == 0, "str");
    CHECK(!wk_gguf_get_str(g, "v.empty", &sv) && sv[0] == 0, "empty str");
    CHECK(!wk_gguf_get_uint(g, "v.u64", &uv) && uv == u64, "u64");
    CHECK(!wk_gguf_get_int(g, "v.i64", &iv) && iv == i64, "i64");
    CHECK(!wk_gguf_get_float(g, "v.f64", &dv) && dv == f64, "f64");
    CHECK_FAILS(wk_gguf_get_int(g, "v.u64", &iv), "out of range");
    CHECK_FAILS(wk_gguf_get_uint(g, "v.i8", &uv), "'v.i8' = -100 is negative");
    CHECK_FAILS(wk_gguf_get_str(g, "v.u8", &sv), "'v.u8' is UINT8, expected STRING");
    CHECK_FAILS(wk_gguf_get_int(g, "nope", &iv), "metadata key 'nope' missing");
    CHECK_FAILS(wk_gguf_get_arr(g, "a.i32", WK_GGUF_STRING, &av), "array of INT32, expected an array of STRING");
    CHECK(!wk_gguf_get_arr(g, "a.i32", WK_GGUF_I32, &av) && av->n == 5 && wk_gguf_val_int(av, 3) == -4, "i32 array");
    CHECK(!wk_gguf_get_arr(g, "a.f32", WK_GGUF_F32, &av) && wk_gguf_val_float(av, 2) == 2.25, "f32 array");
    CHECK(!wk_gguf_get_arr(g, "a.empty", WK_GGUF_U8, &av) && av->n == 0, "empty array");
    CHECK(!wk_gguf_get_arr(g, "a.str", WK_GGUF_STRING, &av) && av->n == 3 && !strcmp(av->str[0], "a b") &&
          av->str[1][0] == 0 && !strcmp(av->str[2], "Ġthe") && av->str_len[2] == strlen("Ġthe"), "string array");
    CHECK(!wk_gguf_get_arr(g, "a.nested", WK_GGUF_ARRAY, &av) && av->n == 2 && av->items[0].n == 2 &&
          !strcmp(av->items[0].str[1], "yy") && av->items[1].n == 1 && !strcmp(av->items[1].str[0], "zzz"), "nested arrays");
    CHECK(wk_gguf_tensor_count(g) == 3, "tensor count");
    const wk_gguf_tensor *t = wk_gguf_find_tensor(g, "t.f32");
    CHECK(t && t->ndim == 2 && t->ne[0] == 3 && t->ne[1] == 2 && !memcmp(t->data, t0, sizeof t0), "f32 tensor");
    t = wk_gguf_find_tensor(g, "t.q8");
    CHECK(t && t->type == WK_Q_Q8_0 && t->nbytes == sizeof q8 && !memcmp(t->data, q8, sizeof q8) &&
          ((uintptr_t)t->data % 64) == 0 && t->offset % 64 == 0, "q8 tensor aligned");
    t = wk_gguf_find_tensor(g, "t.q4k");
    CHECK(t && t->type == WK_Q_Q4_K && !memcmp(t->data, q4k, sizeof q4k), "q4_k tensor");
    CHECK(wk_gguf_find_tensor(g, "none") == NULL, "absent tensor");
    /* copy every value into a second file through wk_gguf_w_val and compare the metadata bytes */
    wk_gguf_writer *w2;
    CHECK_OK(wk_gguf_writer_new(64, &w2));
    for (int64_t i = 0; i < wk_gguf_kv_count(g); i++) {
        const wk_gguf_kv *kv = wk_gguf_kv_at(g, i);
        if (strcmp(kv->key, "general.alignment")) CHECK_OK(wk_gguf_w_val(w2, kv->key, &kv->val));
    }
    CHECK_OK(wk_gguf_writer_write(w2, tmp_path("rt2.gguf")));
    wk_gguf_writer_free(w2);
    char *a = NULL, *b = NULL; size_t la = 0, lb = 0;
    wk_read_file(tmp_path("rt.gguf"), &a, &la);
    wk_read_file(tmp_path("rt2.gguf"), &b, &lb);
    /* same kv count and metadata bytes (the copy has no tensors: strip its zero padding) */
    while (b && lb > 24 && b[lb - 1] == 0) lb--;
    CHECK(a && b && lb > 24 && lb <= la && memcmp(a + 16, b + 16, lb - 16) == 0, "metadata copied byte for byte");
    wk_free(a); wk_free(b);
    wk_gguf_close(g);
}

/* A llama-style file with architecture metadata and a token embedding. */
static void write_arch_file(const char *path, const char *arch, bool with_bias) {
    wk_gguf_writer *w;
    wk_gguf_writer_new(0, &w);
    char k[64];
    wk_gguf_w_str(w, "general.architecture", arch);
    struct { const char *s; uint32_t v; } ints[] = {{"block_count", 2}, {"embedding_length", 64}, {"feed_forward_length", 96},
                                                    {"attention.head_count", 4}, {"attention.head_count_kv", 2}, {"context_length", 512}};
    for (size_t i = 0; i < WK_ARRAY_LEN(ints); i++) { snprintf(k, sizeof k, "%s.%s", arch, ints[i].s); wk_gguf_w_u32(w, k, ints[i].v); }
    snprintf(k, sizeof k, "%s.rope.freq_base", arch); wk_gguf_w_f32(w, k, 1e6f);
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", arch); wk_gguf_w_f32(w, k, 1e-6f);
    const char *toks[40];
    for (int i = 0; i < 40; i++) toks[i] = "t";
    wk_gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 40);
    wk_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 2);
    static float emb[64 * 40], bias[64];
    int64_t ne[2] = {64, 40}, nb[1] = {64};
    wk_gguf_w_tensor(w, "token_embd.weight", WK_Q_F32, 2, ne, emb, sizeof emb);
    if (with_bias) wk_gguf_w_tensor(w, "blk.0.attn_q.bias", WK_Q_F32, 1, nb, bias, sizeof bias);
    wk_gguf_writer_write(w, path);
    wk_gguf_writer_free(w);
}

static void test_arch(void) {
    wk_gguf *g;
    wk_gguf_config c;
    write_arch_file(tmp_path("llama.gguf"), "llama", false);
    CHECK_OK(wk_gguf_open(tmp_path("llama.gguf"), &g));
    CHECK_OK(wk_gguf_read_config(g, &c));
    CHECK(!strcmp(c.arch, "llama") && c.num_layers == 2 && c.hidden_size == 64 && c.intermediate_size == 96 &&
          c.num_heads == 4 && c.num_kv_heads == 2 && c.head_dim == 16 && c.max_position == 512 && c.vocab_size == 40 &&
          c.rope_theta == 1e6f && c.rms_eps == 1e-6f && c.tie_embeddings && !c.qkv_bias && !c.qk_norm &&
          c.eos_id == 2 && c.bos_id == -1, "llama config");
    wk_gguf_close(g);
    write_arch_file(tmp_path("qwen2.gguf"), "qwen2", true);
    CHECK_OK(wk_gguf_open(tmp_path("qwen2.gguf"), &g));
    CHECK_OK(wk_gguf_read_config(g, &c));
    CHECK(!strcmp(c.arch, "qwen2") && c.qkv_bias, "qwen2 config");
    wk_gguf_close(g);
    write_arch_file(tmp_path("gpt2.gguf"), "gpt2", false);
    CHECK_OK(wk_gguf_open(tmp_path("gpt2.gguf"), &g));
    CHECK_FAILS(wk_gguf_read_config(g, &c), "general.architecture 'gpt2' not supported");
    wk_gguf_close(g);
    CHECK(wk_gguf_arch_permutes_qk("llama") && !wk_gguf_arch_permutes_qk("qwen2") && !wk_gguf_arch_permutes_qk("qwen3"), "permuting archs");

    char buf[128];
    struct { const char *g, *h; } names[] = {
        {"token_embd.weight", "model.embed_tokens.weight"}, {"output.weight", "lm_head.weight"},
        {"output_norm.weight", "model.norm.weight"}, {"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"},
        {"blk.12.attn_k.bias", "model.layers.12.self_attn.k_proj.bias"}, {"blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"},
        {"blk.29.ffn_down.weight", "model.layers.29.mlp.down_proj.weight"}, {"blk.1.ffn_norm.weight", "model.layers.1.post_attention_layernorm.weight"},
        {"blk.7.attn_k_norm.weight", "model.layers.7.self_attn.k_norm.weight"}, {"blk.2.attn_norm.weight", "model.layers.2.input_layernorm.weight"},
    };
    for (size_t i = 0; i < WK_ARRAY_LEN(names); i++) {
        CHECK(wk_gguf_name_to_hf(names[i].g, buf, sizeof buf) && !strcmp(buf, names[i].h), "%s -> %s", names[i].g, buf);
        CHECK(wk_gguf_name_from_hf(names[i].h, buf, sizeof buf) && !strcmp(buf, names[i].g), "%s -> %s", names[i].h, buf);
    }
    CHECK(!wk_gguf_name_to_hf("blk.x.attn_q.weight", buf, sizeof buf) && !wk_gguf_name_to_hf("rope_freqs.weight", buf, sizeof buf),
          "unknown names");
    /* permutation: 2 heads of head_dim 4; HF rows within a head [0 1 | 2 3] -> GGUF [0 2 1 3] */
    int32_t hf[8] = {0, 1, 2, 3, 4, 5, 6, 7}, gg[8], back[8];
    wk_gguf_permute_rows(gg, hf, 2, 8, 4, true);
    int32_t want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    CHECK(!memcmp(gg, want, sizeof want), "permute to gguf: %d %d %d %d", gg[0], gg[1], gg[2], gg[3]);
    int32_t hf2[12], g2[12], b2[12];
    for (int i = 0; i < 12; i++) hf2[i] = i;
    wk_gguf_permute_rows(g2, hf2, 1, 12, 4, true); /* head_dim 12: row 2b+a <- a*6+b */
    CHECK(g2[1] == 6 && g2[2] == 1 && g2[11] == 11 && g2[10] == 5, "permute hd=12: %d %d %d %d", g2[1], g2[2], g2[10], g2[11]);
    wk_gguf_permute_rows(b2, g2, 1, 12, 4, false);
    wk_gguf_permute_rows(back, gg, 2, 8, 4, false);
    CHECK(!memcmp(back, hf, sizeof hf) && !memcmp(b2, hf2, sizeof hf2), "permutation undone");
}

/* Byte flips and truncations of a writer-made file with every value type: open or fail with a message. */
static void test_flips_rich(void) {
    char *orig = NULL;
    size_t n = 0;
    CHECK_OK(wk_read_file(tmp_path("rt.gguf"), &orig, &n));
    if (!orig) return;
    uint64_t s = 7;
    int quiet = 0;
    for (int i = 0; i < 600; i++) {
        char *c = malloc(n);
        memcpy(c, orig, n);
        size_t len = n;
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        size_t at = (s >> 33) % WK_MIN(n, (size_t)900); /* header, metadata and tensor infos */
        if (i % 3 == 0) c[at] = (char)(s >> 13);
        else if (i % 3 == 1) c[at] ^= (char)(1u << ((s >> 20) % 8));
        else len = at;
        FILE *f = fopen(tmp_path("c.gguf"), "wb");
        fwrite(c, 1, len, f);
        fclose(f);
        wk_gguf *g = NULL;
        wk_err_clear();
        if (wk_gguf_open(tmp_path("c.gguf"), &g) != WICK_OK && !*wick_last_error()) quiet++;
        wk_gguf_close(g);
        free(c);
    }
    CHECK(quiet == 0, "%d damaged files failed without a message", quiet);
    wk_free(orig);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/wick_gguf_XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    test_corrupt();
    test_truncations_and_flips();
    test_roundtrip();
    test_flips_rich();
    test_arch();
    const char *names[] = {"c.gguf", "rt.gguf", "rt2.gguf", "llama.gguf", "qwen2.gguf", "gpt2.gguf"};
    for (size_t i = 0; i < WK_ARRAY_LEN(names); i++) unlink(tmp_path(names[i]));
    rmdir(g_dir);
    return t_summary();
}
