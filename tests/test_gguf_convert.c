/*
 * test_gguf_convert.c — GGUF files written by wick_gguf_quantize from the golden
 * Hugging Face checkpoints read back as the same model: the config from GGUF
 * metadata equals config.json's, and every weight fetched through
 * wk_gguf_hf_tensor (q/k permutation undone for llama) equals the safetensors
 * weight: exactly for f32, and for q8_0/q4_0 exactly what quantizing the original
 * rows gives (quantization is per row, so it commutes with the row permutation).
 * Re-quantizing a GGUF keeps its metadata; bad inputs give errors naming the file.
 */
#include "t.h"
#include "backend/cpu/quant.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include <unistd.h>

static void check_config(const char *model, const wk_gguf *g) {
    wk_config a, b;
    CHECK_OK(wk_config_load(model, &a));
    CHECK_OK(wk_gguf_to_config(g, &b));
    CHECK(a.arch == b.arch || (a.arch == WK_ARCH_MISTRAL && b.arch == WK_ARCH_LLAMA), "%s: arch", model);
    CHECK(a.vocab == b.vocab && a.hidden == b.hidden && a.inter == b.inter && a.n_layers == b.n_layers &&
          a.n_heads == b.n_heads && a.n_kv_heads == b.n_kv_heads && a.head_dim == b.head_dim && a.max_pos == b.max_pos,
          "%s: shapes differ", model);
    CHECK(a.rope_theta == b.rope_theta && a.rms_eps == b.rms_eps && a.tie_embeddings == b.tie_embeddings &&
          a.qkv_bias == b.qkv_bias && a.qk_norm == b.qk_norm && a.bos == b.bos && (a.n_eos > 0) == (b.n_eos > 0) && (!a.n_eos || a.eos[0] == b.eos[0]),
          "%s: rope %g/%g eps %g/%g tie %d/%d bias %d/%d norm %d/%d bos %d/%d eos %d/%d", model, a.rope_theta, b.rope_theta,
          a.rms_eps, b.rms_eps, a.tie_embeddings, b.tie_embeddings, a.qkv_bias, b.qkv_bias, a.qk_norm, b.qk_norm, a.bos, b.bos,
          a.eos[0], b.eos[0]);
}

/* Compares every safetensors weight with the GGUF one (type: the requested ggml type). */
static void check_weights(const char *model, const wk_gguf *g, int type) {
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", model);
    wick_st *st;
    CHECK_OK(wick_st_open(path, &st));
    wk_gguf_config gc;
    CHECK_OK(wk_gguf_read_config(g, &gc));
    int bad = 0, seen = 0;
    for (int i = 0; i < wick_st_count(st); i++) {
        wick_tensor_view v;
        wick_st_get(st, i, &v);
        if (gc.tie_embeddings && !strcmp(v.name, "lm_head.weight")) continue;
        const wk_gguf_tensor *t;
        const void *data;
        void *owned;
        if (wk_gguf_hf_tensor(g, &gc, v.name, &t, &data, &owned)) { bad++; fprintf(stderr, "%s\n", wick_last_error()); continue; }
        seen++;
        int64_t n = 1, in = v.shape[v.ndim - 1];
        for (int d = 0; d < v.ndim; d++) n *= v.shape[d];
        float *orig = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * n);
        wk_to_f32(orig, v.data, v.dtype, (size_t)n);
        int tt = v.ndim == 1 ? WK_Q_F32 : wk_qtype_row_bytes(type, in) ? type : wk_qtype_row_bytes(WK_Q_Q8_0, in) ? WK_Q_Q8_0 : WK_Q_F16;
        void *q = malloc(wk_qtype_row_bytes(tt, in) * (size_t)(n / in));
        wk_quantize_row(tt, orig, q, n);
        wk_dequant_row(tt, q, want, n);
        if (t->type != tt || wk_dequant_row(t->type, data, got, n) || memcmp(got, want, sizeof(float) * n)) {
            if (bad++ < 3) fprintf(stderr, "%s: %s (%s) differs from the safetensors weight\n", model, v.name, wk_qtype_name(t->type));
        }
        free(q); free(orig); free(got); free(want);
        wk_free(owned);
    }
    CHECK(bad == 0 && seen > 0, "%s as %s: %d of %d weights differ", model, wk_qtype_name(type), bad, seen);
    wick_st_close(st);
}

int main(void) {
    char out[64] = "/tmp/wick_ggufc_XXXXXX";
    int fd = mkstemp(out);
    if (fd < 0) return 1;
    close(fd);
    const char *models[] = {"golden/llama_tiny/model", "golden/qwen2_tiny/model", "golden/qwen3_tiny/model",
                            "golden/qwen2_tiny_bf16/model"};
    const char *types[] = {"f32", "q8_0", "q4_0"};
    const int qt[] = {WK_Q_F32, WK_Q_Q8_0, WK_Q_Q4_0};
    for (size_t m = 0; m < WK_ARRAY_LEN(models); m++)
        for (size_t k = 0; k < WK_ARRAY_LEN(types); k++) {
            char model[512];
            snprintf(model, sizeof model, "%s/%s", WICK_TEST_DIR, models[m]);
            CHECK_OK(wick_gguf_quantize(model, types[k], out));
            wk_gguf *g = NULL;
            CHECK_OK(wk_gguf_open(out, &g));
            if (!g) continue;
            const char *arch;
            CHECK(!wk_gguf_get_str(g, "general.architecture", &arch) && strstr(models[m], arch), "%s: architecture", model);
            if (k == 0) check_config(model, g);
            check_weights(model, g, qt[k]);
            wk_gguf_close(g);
        }
    /* re-quantizing a GGUF keeps its metadata and shapes */
    char out2[80];
    snprintf(out2, sizeof out2, "%s.2", out);
    CHECK_OK(wick_gguf_quantize(T_PATH("golden/llama_tiny/model"), "f32", out));
    CHECK_OK(wick_gguf_quantize(out, "q4_k", out2));
    wk_gguf *a, *b;
    CHECK_OK(wk_gguf_open(out, &a));
    CHECK_OK(wk_gguf_open(out2, &b));
    CHECK(wk_gguf_kv_count(a) == wk_gguf_kv_count(b) && wk_gguf_tensor_count(a) == wk_gguf_tensor_count(b), "re-quantized counts");
    const wk_gguf_tensor *t = wk_gguf_find_tensor(b, "blk.0.ffn_down.weight"); /* rows of 256: Q4_K */
    CHECK(t && t->type == WK_Q_Q4_K && t->ne[0] == 256, "ffn_down is Q4_K");
    t = wk_gguf_find_tensor(b, "blk.0.attn_q.weight"); /* rows of 96: Q8_0 fallback */
    CHECK(t && t->type == WK_Q_Q8_0, "attn_q falls back to Q8_0");
    wk_gguf_close(a);
    wk_gguf_close(b);
    CHECK_FAILS(wick_gguf_quantize(T_PATH("golden/nonexistent"), "q8_0", out2), "golden/nonexistent");
    CHECK_FAILS(wick_gguf_quantize(T_PATH("golden/llama_tiny/model"), "q6_k", out2), "--type 'q6_k' not supported");
    FILE *f = fopen(out, "r+b");
    fseek(f, 8, SEEK_SET);
    fputc(0xff, f); fputc(0xff, f); fputc(0xff, f);
    fclose(f);
    CHECK_FAILS(wick_gguf_quantize(out, "q8_0", out2), "tensor count");
    unlink(out);
    unlink(out2);
    return t_summary();
}
