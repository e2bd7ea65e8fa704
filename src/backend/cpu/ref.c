/*
 * ref.c — the reference CPU backend: naive, single-threaded, written to be read
 * and never optimised. Tests compare every fast op against these.
 */
#include "backend/backend.h"
#include "backend/cpu/cpu_common.h"
#include "backend/cpu/quant.h"
#include "backend/cpu/enc_ops.h"

#include <math.h>
#include <stdlib.h>

static float w_at(const wk_mat *W, int r, int c) {
    size_t i = (size_t)r * (size_t)W->cols + (size_t)c;
    switch (W->dt) {
    case WICK_DT_F32: return ((const float *)W->w)[i];
    case WICK_DT_BF16: return wk_bf16_to_f32(((const uint16_t *)W->w)[i]);
    case WICK_DT_F16: return wk_f16_to_f32(((const uint16_t *)W->w)[i]);
    default: return NAN;
    }
}

static void ref_matmul(wk_backend *be, float *y, const float *x, const wk_mat *W, const float *bias, int n, int acc) {
    if (W->qtype) { /* dequantize each row, then the same double-accumulated dot */
        float *t = malloc(sizeof(float) * (size_t)n * W->rows);
        wk_qmatmul_ref(t, x, n, W->cols, W->w, W->qtype, W->rows);
        for (size_t i = 0; i < (size_t)n * W->rows; i++) {
            float v = t[i] + (bias ? bias[i % (size_t)W->rows] : 0.f);
            y[i] = acc ? y[i] + v : v;
        }
        free(t);
        return;
    }
    for (int i = 0; i < n; i++)
        for (int o = 0; o < W->rows; o++) {
            double s = bias ? bias[o] : 0;
            for (int k = 0; k < W->cols; k++) s += (double)x[(size_t)i * W->cols + k] * w_at(W, o, k);
            float *d = &y[(size_t)i * W->rows + o];
            *d = acc ? *d + (float)s : (float)s;
        }
}

static void ref_matmul_f32(wk_backend *be, float *y, const float *x, const float *B, int n, int m, int k, float s, int acc) {
    for (int i = 0; i < n; i++)
        for (int o = 0; o < k; o++) {
            double t = 0;
            for (int j = 0; j < m; j++) t += (double)x[(size_t)i * m + j] * B[(size_t)o * m + j];
            float *d = &y[(size_t)i * k + o];
            *d = acc ? *d + s * (float)t : s * (float)t;
        }
}

static void ref_rmsnorm(wk_backend *be, float *y, const float *x, const float *w, int n, int dim, float eps) {
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim;
        double ss = 0;
        for (int j = 0; j < dim; j++) ss += (double)xi[j] * xi[j];
        float r = (float)(1.0 / sqrt(ss / dim + eps));
        for (int j = 0; j < dim; j++) y[(size_t)i * dim + j] = xi[j] * r * (w ? w[j] : 1.f);
    }
}

static void ref_rope(wk_backend *be, float *x, const int32_t *pos, int n, int nh, int D, const float *inv_freq) {
    int half = D / 2;
    for (int i = 0; i < n; i++)
        for (int h = 0; h < nh; h++) {
            float *v = x + ((size_t)i * nh + h) * D;
            for (int j = 0; j < half; j++) {
                float ang = (float)pos[i] * inv_freq[j];
                float c = cosf(ang), s = sinf(ang);
                float a = v[j], b = v[j + half];
                v[j] = a * c - b * s;
                v[j + half] = b * c + a * s;
            }
        }
}

static void ref_attention(wk_backend *be, float *out, const float *q, const float *k, const float *v, int n, int pos0,
                          const int32_t *pos, int H, int Hk, int D, int cap, float scale) {
    int T = pos0 + n, grp = H / Hk;
    double *sc = malloc(sizeof(double) * (size_t)T);
    for (int i = 0; i < n; i++)
        for (int h = 0; h < H; h++) {
            const float *qi = q + ((size_t)i * H + h) * D;
            const float *kh = k + (size_t)(h / grp) * cap * D, *vh = v + (size_t)(h / grp) * cap * D;
            int last = pos0 + i;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j <= last; j++) {
                double s = 0;
                for (int d = 0; d < D; d++) s += (double)qi[d] * kh[(size_t)j * D + d];
                sc[j] = s * scale;
                if (sc[j] > mx) mx = sc[j];
            }
            for (int j = 0; j <= last; j++) sum += (sc[j] = exp(sc[j] - mx));
            float *o = out + ((size_t)i * H + h) * D;
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int j = 0; j <= last; j++) acc += sc[j] * vh[(size_t)j * D + d];
                o[d] = (float)(acc / sum);
            }
        }
    free(sc);
}

static void ref_swiglu(wk_backend *be, float *out, const float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = g[i] / (1.f + expf(-g[i])) * u[i];
}

static void ref_add(wk_backend *be, float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static void ref_embed(wk_backend *be, float *out, const wk_mat *E, const int32_t *ids, int n) {
    if (E->qtype) {
        for (int i = 0; i < n; i++)
            wk_dequant_row(E->qtype, (const uint8_t *)E->w + (size_t)ids[i] * wk_qtype_row_bytes(E->qtype, E->cols),
                           out + (size_t)i * E->cols, E->cols);
        return;
    }
    for (int i = 0; i < n; i++)
        for (int c = 0; c < E->cols; c++) out[(size_t)i * E->cols + c] = w_at(E, ids[i], c);
}

wk_backend *wk_backend_cpu_ref(void) {
    static wk_backend be = {
        .name = "cpu-ref",
        .alloc = wk_cpu_alloc,
        .free = wk_cpu_free,
        .upload = wk_cpu_copy,
        .download = wk_cpu_copy,
        .sync = wk_cpu_sync,
        .matmul = ref_matmul,
        .matmul_f32 = ref_matmul_f32,
        .lora_seg = wk_lora_seg_generic,
        .rmsnorm = ref_rmsnorm,
        .rope = ref_rope,
        .attention = ref_attention,
        .swiglu = ref_swiglu,
        .add = ref_add,
        .embed = ref_embed,
        .kv_store = wk_cpu_kv_store,
        .layernorm = wk_ref_layernorm,
        .gelu = wk_ref_gelu,
        .attention_bidir = wk_ref_attention_bidir,
    };
    return &be;
}
