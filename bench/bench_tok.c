/*
 * bench_tok.c — tokenizer benchmark: tokenizer.json load time and single-thread encode
 * throughput on a generated mixed English + code + CJK corpus. Prints JSON.
 *   bench_tok [TOKENIZER (default tests/golden/tok_qwen/tokenizer.json)] [--mb N] [--corpus-out FILE]
 * --corpus-out writes the corpus (documents separated by a 0x1E byte) so that
 * bench/peer_tok.py can time Hugging Face tokenizers on exactly the same text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "wick.h"
#include "wk.h"

static const char *EN[] = {"the", "model", "learns", "a", "low-rank", "update", "of", "its", "weights", "while",
                           "base", "stays", "frozen", "and", "training", "runs", "on", "one", "GPU", "with", "data",
                           "from", "users", "who", "write", "questions", "about", "tokenizers,", "memory", "speed."};
static const char *CODE[] = {"def forward(self, x):\n    h = self.norm(x)\n    return x + self.attn(h)\n",
                             "for (int i = 0; i < n; i++) {\n    y[i] += alpha * x[i];\n}\n",
                             "if err != nil {\n\treturn fmt.Errorf(\"load %s: %w\", path, err)\n}\n",
                             "const total = items.reduce((a, b) => a + b.price * b.qty, 0);\n",
                             "SELECT id, name FROM users WHERE created_at > NOW() - INTERVAL '7 days';\n"};
static const char *CJK[] = {"机器学习模型需要大量的训练数据。", "自然言語処理の研究は急速に進んでいます。",
                            "분산 학습은 여러 장치에서 실행됩니다。", "我们使用低秩适配器来微调大型语言模型，",
                            "東京の天気は晴れのち曇りでしょう。", "这个分词器的速度非常快！🚀"};

/* CPU time of this thread: robust when other processes share the cores. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x853c49e6748fea9bull;
static uint32_t next(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

static void append(char **buf, size_t *len, size_t *cap, const char *s) {
    size_t n = strlen(s);
    while (*len + n + 1 > *cap) *cap *= 2, *buf = realloc(*buf, *cap);
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
}

/* Documents of ~2 KB: a third each English, code, CJK by bytes; 0x1E separates them. */
static char *make_corpus(size_t target, size_t *len) {
    size_t cap = target + 4096;
    char *b = malloc(cap);
    *len = 0;
    b[0] = 0;
    while (*len < target) {
        size_t doc_start = *len;
        while (*len - doc_start < 2048) {
            int k = (int)(next() % 3);
            if (k == 0) {
                int words = 8 + (int)(next() % 20);
                for (int w = 0; w < words; w++) {
                    append(&b, len, &cap, w ? " " : "");
                    append(&b, len, &cap, EN[next() % (sizeof EN / sizeof *EN)]);
                }
                append(&b, len, &cap, next() % 4 ? " " : "\n\n");
            } else if (k == 1) {
                append(&b, len, &cap, CODE[next() % (sizeof CODE / sizeof *CODE)]);
            } else {
                append(&b, len, &cap, CJK[next() % (sizeof CJK / sizeof *CJK)]);
            }
        }
        append(&b, len, &cap, "\x1e");
    }
    return b;
}

int main(int argc, char **argv) {
    const char *path = "tests/golden/tok_qwen/tokenizer.json", *corpus_out = NULL;
    double mb = 8;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mb") && i + 1 < argc) mb = atof(argv[++i]);
        else if (!strcmp(argv[i], "--corpus-out") && i + 1 < argc) corpus_out = argv[++i];
        else path = argv[i];
    }
    wick_set_threads(1);
    double load_ms = 1e9, load_cpu_ms = 1e9;
    wick_tokenizer *t = NULL;
    for (int r = 0; r < 5; r++) {
        double t0 = wk_now(), c0 = cpu_now();
        wick_tokenizer *x;
        if (wick_tokenizer_load(path, &x)) return fprintf(stderr, "bench_tok: %s\n", wick_last_error()), 1;
        double ms = (wk_now() - t0) * 1e3, cms = (cpu_now() - c0) * 1e3;
        load_ms = ms < load_ms ? ms : load_ms;
        load_cpu_ms = cms < load_cpu_ms ? cms : load_cpu_ms;
        if (t) wick_tokenizer_free(t);
        t = x;
    }
    size_t len;
    char *corpus = make_corpus((size_t)(mb * 1e6), &len);
    if (corpus_out) {
        FILE *f = fopen(corpus_out, "wb");
        if (!f) return fprintf(stderr, "bench_tok: cannot write %s\n", corpus_out), 1;
        fwrite(corpus, 1, len, f);
        fclose(f);
    }
    double best = 1e9, best_cpu = 1e9;
    long tokens = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = wk_now(), c0 = cpu_now();
        tokens = 0;
        for (char *p = corpus; p < corpus + len;) {
            char *e = memchr(p, 0x1e, (size_t)(corpus + len - p));
            int32_t *ids;
            int n;
            if (wick_tokenize(t, p, (size_t)(e - p), 0, &ids, &n)) return fprintf(stderr, "%s\n", wick_last_error()), 1;
            tokens += n;
            wick_free(ids);
            p = e + 1;
        }
        double s = wk_now() - t0, c = cpu_now() - c0;
        best = s < best ? s : best;
        best_cpu = c < best_cpu ? c : best_cpu;
    }
    printf("{\"bench\": \"tokenizer\", \"impl\": \"wick\", \"tokenizer\": \"%s\", \"load_ms\": %.1f, "
           "\"load_cpu_ms\": %.1f, \"corpus_bytes\": %zu, \"tokens\": %ld, \"encode_s\": %.4f, \"encode_mb_s\": %.2f, "
           "\"encode_cpu_mb_s\": %.2f, \"threads\": 1}\n",
           path, load_ms, load_cpu_ms, len, tokens, best, (double)len / 1e6 / best, (double)len / 1e6 / best_cpu);
    wick_tokenizer_free(t);
    free(corpus);
    return 0;
}
