/*
 * suite_embed.c — sentence-embedding throughput of the BERT encoder (inference suite):
 *   embed_throughput/PRESET/docs_NxT   wick_embed_ids on N docs of T tokens ([CLS] random
 *                                      ids [SEP]; mean pooling + L2 normalisation); docs/s
 * PRESET is e5-small (random f32 weights, written once to the benchmark cache) with the
 * cases 1x16, 100x32 and 1000x64; --quick uses bert-tiny with 1x16 and 100x32.
 * bench/bench_embed.c is the stand-alone twin, bench/peer_embed_hf.py the transformers peer.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    wick_encoder *e;
    const int32_t **seqs;
    int *lens, n, hidden;
    int32_t *flat;
    float *out;
} embed_state;

static void it_embed(void *p) {
    embed_state *s = p;
    wick_embed_ids(s->e, s->seqs, s->lens, s->n, NULL, s->out);
    wk_bench_sink(s->out);
}

/* The preset written once, in f32 (the peer's precision), under the benchmark cache. */
static wick_status preset_f32(const char *preset, char *out, size_t cap) {
    const char *root = getenv("WICK_BENCH_CACHE");
    char base[512], st_path[1200], tmp[1100];
    if (root && *root) snprintf(base, sizeof base, "%s", root);
    else snprintf(base, sizeof base, "%s/wick-bench-models", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdir(base, 0755) != 0 && errno != EEXIST) return wk_err(WICK_EIO, "%s: %s", base, strerror(errno));
    snprintf(out, cap, "%s/%s-f32", base, preset);
    if (wk_file_exists(wk_path_join(st_path, sizeof st_path, out, "model.safetensors"))) return WICK_OK;
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", out, (long)getpid());
    wick_status st = wick_init_model("bert", preset, NULL, WICK_DT_F32, 1, tmp);
    if (st != WICK_OK) return wk_err_prefix(st, "bench: preset '%s'", preset);
    if (rename(tmp, out) != 0 && !wk_file_exists(st_path))
        return wk_err(WICK_EIO, "%s: cannot rename to %s: %s", tmp, out, strerror(errno));
    return WICK_OK;
}

static wick_status embed_case(wk_bench *b, wick_encoder *e, const char *name, int n, int len) {
    wick_encoder_info info;
    wick_encoder_get_info(e, &info);
    embed_state s = {.e = e, .n = n, .hidden = info.hidden_size};
    s.seqs = malloc(sizeof *s.seqs * (size_t)n);
    s.lens = malloc(sizeof(int) * (size_t)n);
    s.flat = malloc(sizeof(int32_t) * (size_t)n * len);
    s.out = malloc(sizeof(float) * (size_t)n * info.hidden_size);
    wick_status rc = s.seqs && s.lens && s.flat && s.out ? WICK_OK : wk_err(WICK_ENOMEM, "bench: embed inputs");
    for (int i = 0; i < n && !rc; i++) {
        s.seqs[i] = s.flat + (size_t)i * len;
        s.lens[i] = len;
        for (int t = 0; t < len; t++)
            s.flat[(size_t)i * len + t] = t == 0 ? 1 : t == len - 1 ? 2 : (int32_t)(3 + (i * 7919u + t * 31u) % (unsigned)(info.vocab_size - 3));
    }
    wk_bench_case c = {.name = name, .work = n, .unit = "docs/s"};
    if (!rc) rc = wk_bench_measure(b, &c, it_embed, &s);
    free(s.seqs), free(s.lens), free(s.flat), free(s.out);
    return rc;
}

wick_status wk_bench_embed(wk_bench *b) {
    int quick = wk_bench_quick(b);
    const char *preset = quick ? "bert-tiny" : "e5-small";
    int cases[3][2] = {{1, 16}, {100, 32}, {1000, 64}}, nc = quick ? 2 : 3, want = 0;
    char names[3][160], dir[1024];
    for (int i = 0; i < nc; i++) {
        snprintf(names[i], sizeof names[i], "embed_throughput/%s/docs_%dx%d", preset, cases[i][0], cases[i][1]);
        want |= wk_bench_selected(b, names[i]) << i;
    }
    if (!want) return WICK_OK;
    wick_encoder *e = NULL;
    wick_status rc = preset_f32(preset, dir, sizeof dir);
    if (!rc) rc = wick_encoder_load(dir, NULL, &e);
    for (int i = 0; i < nc && !rc; i++)
        if (want >> i & 1) rc = embed_case(b, e, names[i], cases[i][0], cases[i][1]);
    wick_encoder_free(e);
    return rc;
}
