/* test_cli_embed.c — `wick embed` as a user runs it: the CONFORMANCE --ids form against
 * tests/golden/bert_tiny (embeddings within 1e-5), --pooling cls, JSONL output equal to the
 * safetensors output, --file JSONL input, and bad input giving one stderr line and exit != 0. */
#include "t.h"
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MODEL WICK_TEST_DIR "/golden/bert_tiny/model"
enum { B = 3, T = 10, H = 64 };
static char tmp[256], ids_arg[1024];
static float ref_emb[B * H], ref_cls[B * H];

static int run(const char *fmt, const char *a, const char *b) {
    char cmd[2600], args[1800];
    snprintf(args, sizeof args, fmt, a, b);
    snprintf(cmd, sizeof cmd, "%s %s > %s/stdout 2> %s/stderr", WICK_BIN, args, tmp, tmp);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 255;
}

static int stderr_lines(char *first, size_t cap) {
    char p[300], line[2048];
    snprintf(p, sizeof p, "%s/stderr", tmp);
    FILE *f = fopen(p, "r");
    int n = 0;
    first[0] = 0;
    while (f && fgets(line, sizeof line, f))
        if (!n++) snprintf(first, cap, "%s", line);
    if (f) fclose(f);
    return n;
}

/* The golden ids as an --ids argument (padding dropped) and the reference vectors. */
static void load_golden(void) {
    wick_st *g;
    wick_tensor_view ids, mask, emb, hid;
    CHECK_OK(wick_st_open(T_PATH("golden/bert_tiny/golden.safetensors"), &g));
    wick_st_find(g, "input_ids", &ids), wick_st_find(g, "attention_mask", &mask);
    wick_st_find(g, "embeddings", &emb), wick_st_find(g, "last_hidden_state", &hid);
    char *p = ids_arg;
    for (int b = 0; b < B; b++)
        for (int t = 0, first = 1; t < T; t++)
            if (((const int64_t *)mask.data)[b * T + t]) {
                p += sprintf(p, "%s%lld", first ? (b ? ";" : "") : ",", (long long)((const int64_t *)ids.data)[b * T + t]);
                first = 0;
            }
    memcpy(ref_emb, emb.data, sizeof ref_emb);
    for (int b = 0; b < B; b++) {
        const float *h = (const float *)hid.data + (size_t)b * T * H;
        double ss = 0;
        for (int c = 0; c < H; c++) ss += (double)h[c] * h[c];
        for (int c = 0; c < H; c++) ref_cls[b * H + c] = (float)(h[c] / sqrt(ss));
    }
    wick_st_close(g);
}

static int read_st(const char *path, float *out) {
    wick_st *f;
    wick_tensor_view v;
    if (wick_st_open(path, &f)) return 0;
    int ok = !wick_st_find(f, "embeddings", &v) && v.ndim == 2 && v.shape[0] == B && v.shape[1] == H;
    if (ok) memcpy(out, v.data, sizeof(float) * B * H);
    wick_st_close(f);
    return ok;
}

static int read_jsonl(const char *path, float *out) {
    FILE *f = fopen(path, "r");
    int n = 0;
    for (int b = 0; f && b < B; b++) {
        if (fscanf(f, " {\"embedding\":[") != 0) break;
        for (int c = 0; c < H; c++) n += fscanf(f, c ? ",%f" : "%f", &out[b * H + c]);
        if (fscanf(f, "]}") != 0) break;
    }
    if (f) fclose(f);
    return n == B * H;
}

static void test_forms(void) {
    char st[300], jl[300], in[300], line[2048];
    float got[B * H], got2[B * H];
    snprintf(st, sizeof st, "%s/e.safetensors", tmp);
    snprintf(jl, sizeof jl, "%s/e.jsonl", tmp);
    CHECK(run("embed --model " MODEL " --ids \"%s\" --out %s", ids_arg, st) == 0, "embed --ids ran");
    CHECK(read_st(st, got) && t_max_abs_diff(got, ref_emb, B * H) < 1e-5f, "embeddings vs golden: %g",
          t_max_abs_diff(got, ref_emb, B * H));
    CHECK(run("embed --model " MODEL " --ids \"%s\" --out %s --pooling cls --batch-size 2", ids_arg, st) == 0, "cls ran");
    CHECK(read_st(st, got) && t_max_abs_diff(got, ref_cls, B * H) < 1e-5f, "cls embeddings vs golden");
    CHECK(run("embed --model " MODEL " --ids \"%s\" --out %s", ids_arg, jl) == 0, "jsonl ran");
    CHECK(read_jsonl(jl, got2) && t_max_abs_diff(got2, ref_emb, B * H) < 1e-6f, "jsonl output");
    snprintf(in, sizeof in, "%s/in.jsonl", tmp);
    FILE *f = fopen(in, "w");
    for (char *s = ids_arg, *e; f && s; s = e ? e + 1 : NULL) {
        e = strchr(s, ';');
        fprintf(f, "{\"input_ids\": [%.*s]}\n\n", e ? (int)(e - s) : (int)strlen(s), s);
    }
    if (f) fclose(f);
    CHECK(run("embed --model " MODEL " --file %s --out %s", in, st) == 0, "--file ran");
    CHECK(read_st(st, got) && t_max_abs_diff(got, ref_emb, B * H) < 1e-5f, "--file embeddings");
    CHECK(run("embed --model " MODEL " --ids 2,400,3 --out %s%s", st, "") == 1 && stderr_lines(line, sizeof line) == 1 &&
              strstr(line, "id 400 outside the vocabulary"), "bad id: %s", line);
    CHECK(run("embed --model " MODEL " --ids 2,4 --out %s.txt%s", st, "") == 2 && stderr_lines(line, sizeof line) == 1 &&
              strstr(line, ".safetensors or .jsonl"), "bad --out: %s", line);
    CHECK(run("embed --model " MODEL " --ids 2,4 --pooling avg --out %s%s", st, "") == 2, "bad --pooling");
    CHECK(run("embed --model %s --ids 2,4 --out %s", tmp, st) == 1 && stderr_lines(line, sizeof line) == 1 &&
              strstr(line, "config.json: file not found"), "missing model: %s", line);
    f = fopen(in, "w");
    if (f) fputs("{\"input_ids\": [2, \"x\"]}\n", f), fclose(f);
    CHECK(run("embed --model " MODEL " --file %s --out %s", in, st) != 0 && stderr_lines(line, sizeof line) == 1 &&
              strstr(line, "in.jsonl:1: input_ids[1]"), "bad jsonl: %s", line);
    CHECK(run("embed --model " MODEL " --ids 2,4 --device gpu0 --out %s%s", st, "") == 1 &&
              stderr_lines(line, sizeof line) == 1 && strstr(line, "expected cpu, cuda or cuda:N"), "bad --device: %s", line);
    /* no machine has a 100th GPU: refused with or without CUDA (tests/test_cuda_embed.c runs --device cuda) */
    CHECK(run("embed --model " MODEL " --ids 2,4 --device cuda:99 --fast-bf16 --out %s%s", st, "") == 1 &&
              stderr_lines(line, sizeof line) == 1 && strstr(line, "device 'cuda:99'"), "cuda:99: %s", line);
    CHECK(run("embed --help%s%s", "", "") == 0, "--help exits 0");
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/wick_cli_embed_XXXXXX");
    if (!mkdtemp(tmp)) return perror("mkdtemp"), 1;
    load_golden();
    test_forms();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmp);
    return t_summary();
}
