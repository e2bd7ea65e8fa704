/*
 * bert_forward.c — the BERT encoder forward pass over a padded batch, written out
 * as a fixed sequence of backend op calls: every linear layer is one matmul over all
 * B*T tokens of the batch (sgemm on the CPU), attention is bidirectional and masked
 * per sequence, blocks are post-LayerNorm with erf GELU, as transformers' BertModel.
 */
#include "model/bert.h"

#include <math.h>

/* x[N,C] = LayerNorm(word[ids] + pos[t] + type[type_ids]). */
static void embed(wick_encoder *e, float *x, const int32_t *ids, const int32_t *type_ids, int B, int T) {
    wk_backend *be = e->be;
    int C = e->c.hidden, N = B * T;
    be->embed(be, x, &e->word, ids, N);
#pragma omp parallel for schedule(static) if (N > 64)
    for (int i = 0; i < N; i++) {
        const float *p = e->pos + (size_t)(i % T) * C, *ty = e->type + (size_t)(type_ids ? type_ids[i] : 0) * C;
        float *xi = x + (size_t)i * C;
        for (int c = 0; c < C; c++) xi[c] += p[c] + ty[c];
    }
    be->layernorm(be, x, x, NULL, NULL, e->emb_ln_w, e->emb_ln_b, N, C, e->c.ln_eps);
}

/* One post-LN block, in place on x[N,C]. s holds q,k,v,a,t [N,C] and f [N,F]. On a device
 * (fused q|k|v weights present) q|k|v is one [N,3C] product and every bias is added by the op
 * that reads the product (attention, LayerNorm, GELU) instead of a pass of its own. */
static void block(wick_encoder *e, const wk_bert_layer *L, float *x, const int32_t *mask, int B, int T, float *s) {
    wk_backend *be = e->be;
    const wk_bert_config *c = &e->c;
    int C = c->hidden, N = B * T, fused = L->qkv.w != NULL;
    size_t NC = (size_t)N * C;
    float *q = s, *k = q + NC, *v = k + NC, *a = v + NC, *t = a + NC, *f = t + NC;
    float scale = 1.f / sqrtf((float)c->head_dim);
    const float *const *bias = (const float *const *)L->bias;
    if (fused) {
        be->matmul(be, s, x, &L->qkv, NULL, N, 0);
        be->attention_bidir(be, a, s, s + C, s + 2 * C, L->qkv_bias, mask, B, T, c->n_heads, c->head_dim, 3 * C, C, scale);
    } else {
        be->matmul(be, q, x, &L->w[WK_B_Q], bias[WK_B_Q], N, 0);
        be->matmul(be, k, x, &L->w[WK_B_K], bias[WK_B_K], N, 0);
        be->matmul(be, v, x, &L->w[WK_B_V], bias[WK_B_V], N, 0);
        be->attention_bidir(be, a, q, k, v, NULL, mask, B, T, c->n_heads, c->head_dim, C, C, scale);
    }
    be->matmul(be, t, a, &L->w[WK_B_O], fused ? NULL : bias[WK_B_O], N, 0);
    be->layernorm(be, x, t, fused ? bias[WK_B_O] : NULL, x, L->ln1_w, L->ln1_b, N, C, c->ln_eps);
    be->matmul(be, f, x, &L->w[WK_B_UP], fused ? NULL : bias[WK_B_UP], N, 0);
    be->gelu(be, f, f, fused ? bias[WK_B_UP] : NULL, (size_t)N * c->inter, c->inter);
    be->matmul(be, t, f, &L->w[WK_B_DOWN], fused ? NULL : bias[WK_B_DOWN], N, 0);
    be->layernorm(be, x, t, fused ? bias[WK_B_DOWN] : NULL, x, L->ln2_w, L->ln2_b, N, C, c->ln_eps);
}

void wk_bert_forward_ops(wick_encoder *e, float *x, float *scratch, const int32_t *ids, const int32_t *pos,
                         const int32_t *types, const int32_t *mask, const wk_mat *pos_tab, const wk_mat *type_tab, int B,
                         int T) {
    wk_backend *be = e->be;
    int C = e->c.hidden, N = B * T;
    float *t = scratch; /* [N,C], free until the first block */
    be->embed(be, x, &e->word, ids, N);
    be->embed(be, t, pos_tab, pos, N);
    be->add(be, x, t, (size_t)N * C);
    be->embed(be, t, type_tab, types, N);
    be->layernorm(be, x, x, NULL, t, e->emb_ln_w, e->emb_ln_b, N, C, e->c.ln_eps);
    for (int l = 0; l < e->c.n_layers; l++) block(e, &e->layers[l], x, mask, B, T, scratch);
}

size_t wk_bert_scratch_floats(const wk_bert_config *c, size_t N) { return N * (5 * (size_t)c->hidden + (size_t)c->inter); }

void wk_bert_forward_with(wick_encoder *e, const int32_t *ids, const int32_t *type_ids, const int32_t *mask, int B, int T,
                          float *out, float *scratch) {
    embed(e, out, ids, type_ids, B, T);
    for (int l = 0; l < e->c.n_layers; l++) block(e, &e->layers[l], out, mask, B, T, scratch);
}

wick_status wk_bert_forward(wick_encoder *e, const int32_t *ids, const int32_t *type_ids, const int32_t *mask, int B,
                            int T, float *out) {
    size_t need = wk_bert_scratch_floats(&e->c, (size_t)B * T);
    if (need > e->scratch_cap) { /* grows only: batches after the first reuse it */
        wk_free(e->scratch);
        e->scratch_cap = 0;
        if (!(e->scratch = wk_malloc(sizeof(float) * need, "encoder activations"))) return WICK_ENOMEM;
        e->scratch_cap = need;
    }
    wk_bert_forward_with(e, ids, type_ids, mask, B, T, out, e->scratch);
    return WICK_OK;
}
