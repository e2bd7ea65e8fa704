/*
 * model_gguf.c — decoder models from GGUF files (llama.cpp's format): the GGUF
 * architecture metadata becomes the same wk_config as config.json, tensors are
 * found under their Hugging Face names, llama.cpp's q/k row permutation is undone,
 * and block-quantized weights stay quantized in the mapping (the backend's matmul
 * dequantizes inside its kernels).
 */
#include "backend/cpu/quant.h"
#include "io/gguf.h"
#include "model/model.h"

#include <stdio.h>
#include <sys/stat.h>

int wk_model_is_gguf(const char *path) {
    size_t n = strlen(path);
    struct stat sb;
    return n > 5 && !strcmp(path + n - 5, ".gguf") && stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

wick_status wk_model_gguf_open(wick_model *m, const char *path) {
    wk_gguf *g;
    wick_status st = wk_gguf_open(path, &g);
    if (st) return st;
    m->gguf = g;
    return wk_gguf_to_config(g, &m->c);
}

void wk_model_gguf_close(wick_model *m) {
    wk_gguf_close(m->gguf);
    m->gguf = NULL;
}

static const wk_gguf_tensor *find(const wick_model *m, const char *hf) {
    char gname[256];
    if (!wk_gguf_name_from_hf(hf, gname, sizeof gname)) return NULL;
    return wk_gguf_find_tensor(m->gguf, gname);
}

int wk_model_gguf_has(const wick_model *m, const char *hf) { return find(m, hf) != NULL; }

int wk_model_gguf_permuted(const wick_model *m) {
    const char *arch = NULL;
    return wk_gguf_get_str(m->gguf, "general.architecture", &arch) == WICK_OK && wk_gguf_arch_permutes_qk(arch);
}

void wk_model_gguf_unpermute(void *dst, const void *src, int heads, int64_t rows, size_t row_bytes) {
    wk_gguf_permute_rows(dst, src, heads, rows, row_bytes, false);
}

wick_status wk_model_gguf_tensor(const wick_model *m, const char *hf, int64_t shape[2], int *ndim, const void **data,
                                 wick_dtype *dt, int *qtype, size_t *bytes) {
    const wk_gguf_tensor *t = find(m, hf);
    char gname[256] = "?";
    wk_gguf_name_from_hf(hf, gname, sizeof gname);
    if (!t) return wk_err(WICK_EFORMAT, "%s: missing tensor '%s' (HF '%s')", wk_gguf_path(m->gguf), gname, hf);
    if (t->ndim > 2) return wk_err(WICK_EFORMAT, "%s: tensor '%s': %d dims, expected 1 or 2", wk_gguf_path(m->gguf), gname, t->ndim);
    *ndim = t->ndim;
    shape[0] = t->ndim == 2 ? t->ne[1] : t->ne[0];
    shape[1] = t->ndim == 2 ? t->ne[0] : 1;
    *data = t->data;
    *bytes = t->nbytes;
    *qtype = 0;
    switch (t->type) {
    case WK_Q_F32: *dt = WICK_DT_F32; break;
    case WK_Q_F16: *dt = WICK_DT_F16; break;
    case WK_Q_BF16: *dt = WICK_DT_BF16; break;
    default:
        if (!wk_qtype_can_dequant(t->type))
            return wk_err(WICK_EUNSUPPORTED, "%s: tensor '%s': type %s is not supported", wk_gguf_path(m->gguf), gname,
                          wk_qtype_name(t->type) ? wk_qtype_name(t->type) : "unknown");
        *dt = WICK_DT_F32;
        *qtype = t->type;
    }
    return WICK_OK;
}

wick_status wk_model_dequant(int qtype, const void *src, float *dst, int64_t n) { return wk_dequant_row(qtype, src, dst, n); }

const char *wk_model_qtype_name(int qtype) { return wk_qtype_name(qtype) ? wk_qtype_name(qtype) : "?"; }

int wk_gguf_has_tokenizer(const void *g) { return wk_gguf_find(g, "tokenizer.ggml.model") != NULL; }

size_t wk_model_qrow_bytes(int qtype, int64_t n) { return wk_qtype_row_bytes(qtype, n); }
