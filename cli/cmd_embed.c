/*
 * cmd_embed.c — `wick embed`: sentence embeddings with a BERT-family encoder.
 *   wick embed --model DIR --ids "1,2,3;4,5" --out FILE [--pooling mean|cls|max]
 *   wick embed --model DIR --text STR [--text STR ...] [--file IN] --out FILE.jsonl|.safetensors
 * Inputs keep their command-line order; the output holds one vector per input. --device cuda[:N]
 * runs the encoder on a GPU (fp32; --fast-bf16: bf16 linear layers, on a GPU or a CPU with AMX or AVX512-BF16).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static void help(void) {
    printf("usage: wick embed --model DIR (--ids \"1,2,3;4,5\" | --text STR ... | --file IN) --out FILE\n"
           "                  [--pooling mean|cls|max] [--no-normalize] [--batch-size N] [--threads N]\n"
           "                  [--device cpu|cuda[:N]] [--fast-bf16]\n\n"
           "Embeds each input with the BERT-family encoder in DIR (config.json + model.safetensors;\n"
           "sentence-transformers pooling files are honoured) and writes one vector per input, in input order.\n"
           "  --ids         ';'-separated sequences of comma-separated token ids (special tokens included)\n"
           "  --text        a text to embed (repeatable); tokenized with DIR/tokenizer.json ([CLS] ... [SEP])\n"
           "  --file        a file of inputs: plain lines (one text each), or JSONL lines {\"text\": ...} or\n"
           "                {\"input_ids\": [...]}; blank lines are skipped\n"
           "  --out         FILE.safetensors: `embeddings` F32 [B,H]; FILE.jsonl: one {\"embedding\": [...]} per line\n"
           "  --pooling     mean (over real tokens), cls or max; default: the model's 1_Pooling config, else mean\n"
           "  --no-normalize  write raw pooled vectors (default: L2-normalised)\n"
           "  --batch-size  sequences per forward pass (default 32, on cuda 128); inputs are sorted by length and padded\n"
           "                per batch\n"
           "  --device      cpu (default) or cuda[:N]\n"
           "  --fast-bf16   linear layers in bf16 with fp32 accumulation (cuda: tensor cores; cpu: AMX tiles, or\n"
           "                AVX512-BF16 on CPUs without AMX, else ignored); vectors within ~1e-2 of the exact fp32 mode\n");
}

typedef struct {
    int32_t **seqs;
    int *lens, n, cap;
    wick_encoder *enc;
    const char *model;
} inputs;

static int add_seq(inputs *in, int32_t *ids, int n) {
    if (in->n == in->cap) {
        int cap = in->cap ? 2 * in->cap : 64;
        int32_t **s = realloc(in->seqs, sizeof *s * (size_t)cap);
        int *l = s ? realloc(in->lens, sizeof *l * (size_t)cap) : NULL;
        if (s) in->seqs = s;
        if (!s || !l) return free(ids), fprintf(stderr, "wick embed: out of memory\n"), 1;
        in->lens = l;
        in->cap = cap;
    }
    in->seqs[in->n] = ids;
    in->lens[in->n++] = n;
    return 0;
}

static int add_ids(inputs *in, const char *s) {
    int32_t *ids;
    int *lens, nseq, rc = 0;
    if (cli_parse_ids("embed", s, &ids, &lens, &nseq)) return 2;
    for (int i = 0, off = 0; i < nseq && !rc; off += lens[i++]) {
        if (!lens[i]) { rc = cli_usage_error("embed", "--ids: sequence %d is empty", i); break; }
        int32_t *c = malloc(sizeof(int32_t) * (size_t)lens[i]);
        if (!c) { rc = 1; break; }
        memcpy(c, ids + off, sizeof(int32_t) * (size_t)lens[i]);
        rc = add_seq(in, c, lens[i]);
    }
    free(ids), free(lens);
    return rc;
}

static int add_text(inputs *in, const char *text, size_t len) {
    int32_t *ids = NULL, *copy;
    int n = 0;
    wick_status st = wick_encoder_tokenize(in->enc, text, len, &ids, &n);
    if (st) return cli_fail("embed", NULL, st);
    if (!(copy = malloc(sizeof(int32_t) * (size_t)n))) return wick_free(ids), 1;
    memcpy(copy, ids, sizeof(int32_t) * (size_t)n);
    wick_free(ids);
    return add_seq(in, copy, n);
}

/* One JSONL line: {"text": ...} or {"input_ids": [...]} ("ids" accepted too). */
static int add_json_line(inputs *in, const char *line, const char *path, int lineno) {
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    int rc = 0;
    json_t *t = json_object_get(o, "text"), *a = json_object_get(o, "input_ids");
    if (!a) a = json_object_get(o, "ids");
    if (!o) rc = cli_usage_error("embed", "%s:%d: invalid JSON: %s", path, lineno, je.text);
    else if (json_is_string(t)) rc = add_text(in, json_string_value(t), json_string_length(t));
    else if (json_is_array(a) && json_array_size(a) > 0) {
        size_t n = json_array_size(a), i;
        int32_t *ids = malloc(sizeof(int32_t) * n);
        json_t *v;
        json_array_foreach(a, i, v) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
                rc = cli_usage_error("embed", "%s:%d: input_ids[%zu] is not a non-negative integer", path, lineno, i);
                break;
            }
            ids[i] = (int32_t)json_integer_value(v);
        }
        rc = rc ? (free(ids), rc) : add_seq(in, ids, (int)n);
    } else rc = cli_usage_error("embed", "%s:%d: expected {\"text\": \"...\"} or {\"input_ids\": [...]}", path, lineno);
    json_decref(o);
    return rc;
}

static int add_file(inputs *in, const char *path) {
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) return fprintf(stderr, "wick embed: %s: cannot open\n", path), 1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0, lineno = 0;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) continue;
        rc = *p == '{' ? add_json_line(in, p, path, lineno) : add_text(in, line, (size_t)len);
    }
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int write_out(const char *path, const float *emb, int n, int H) {
    if (ends_with(path, ".safetensors")) {
        wick_tensor_view tv = {.name = "embeddings", .dtype = WICK_DT_F32, .ndim = 2, .shape = {n, H}, .data = emb};
        wick_status st = wick_safetensors_write(path, &tv, 1, "{\"format\":\"pt\"}");
        return st ? cli_fail("embed", "--out", st) : 0;
    }
    FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;
    if (!f) return fprintf(stderr, "wick embed: %s: cannot write\n", path), 1;
    for (int i = 0; i < n; i++) {
        fputs("{\"embedding\":[", f);
        for (int c = 0; c < H; c++) fprintf(f, c ? ",%.9g" : "%.9g", emb[(size_t)i * H + c]);
        fputs("]}\n", f);
    }
    int bad = ferror(f);
    if (f != stdout) bad |= fclose(f);
    return bad ? fprintf(stderr, "wick embed: %s: write failed\n", path), 1 : 0;
}

static int parse_pooling(const char *v, wick_pooling *p) {
    if (!strcmp(v, "mean")) *p = WICK_POOL_MEAN;
    else if (!strcmp(v, "cls")) *p = WICK_POOL_CLS;
    else if (!strcmp(v, "max")) *p = WICK_POOL_MAX;
    else return cli_usage_error("embed", "--pooling: expected mean, cls or max, got \"%s\"", v);
    return 0;
}

/* First pass: options; inputs are gathered in a second pass (they need --model). */
static int parse_opts(int argc, char **argv, inputs *in, const char **out, wick_embed_opts *o, long *threads,
                      wick_model_opts *mo) {
    const char *v;
    long bs;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--model"))) in->model = v;
        else if ((v = cli_opt(argc, argv, &i, "--out"))) *out = v;
        else if ((v = cli_opt(argc, argv, &i, "--pooling"))) { if (parse_pooling(v, &o->pooling)) return 2; }
        else if ((v = cli_opt(argc, argv, &i, "--batch-size"))) {
            if (cli_int("embed", "--batch-size", v, &bs)) return 2;
            if (bs < 1 || bs > 1000000) return cli_usage_error("embed", "--batch-size must be in [1, 1000000]");
            o->batch_size = (int)bs;
        } else if ((v = cli_opt(argc, argv, &i, "--threads"))) { if (cli_int("embed", "--threads", v, threads)) return 2; }
        else if (cli_flag(argv, i, "--no-normalize")) o->normalize = 0;
        else if (cli_flag(argv, i, "--fast-bf16")) mo->fast_bf16 = 1;
        else if ((v = cli_opt(argc, argv, &i, "--device"))) mo->device = v;
        else if ((v = cli_opt(argc, argv, &i, "--ids")) || (v = cli_opt(argc, argv, &i, "--text")) ||
                 (v = cli_opt(argc, argv, &i, "--file"))) continue;
        else return cli_usage_error("embed", "unknown or incomplete option '%s'", argv[i]);
    }
    if (!in->model || !*out) return cli_usage_error("embed", "--model and --out are required");
    if (!ends_with(*out, ".safetensors") && !ends_with(*out, ".jsonl") && strcmp(*out, "-"))
        return cli_usage_error("embed", "--out: expected a .safetensors or .jsonl file (or - for JSONL on stdout)");
    return 0;
}

static int gather(int argc, char **argv, inputs *in) {
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        if (!strcmp(argv[i], "--ids")) rc = add_ids(in, argv[++i]);
        else if (!strcmp(argv[i], "--text")) rc = add_text(in, argv[i + 1], strlen(argv[i + 1])), i++;
        else if (!strcmp(argv[i], "--file")) rc = add_file(in, argv[++i]);
        else if (strcmp(argv[i], "--no-normalize") && strcmp(argv[i], "--fast-bf16")) i++; /* an option with a value */
    }
    if (!rc && in->n == 0) rc = cli_usage_error("embed", "no inputs: give --ids, --text or --file");
    return rc;
}

int cmd_embed(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return help(), 0;
    inputs in = {0};
    const char *out = NULL;
    wick_embed_opts o = wick_embed_opts_default();
    o.normalize = 1;
    long threads = 0;
    wick_model_opts mo = wick_model_opts_default();
    int rc = parse_opts(argc, argv, &in, &out, &o, &threads, &mo);
    if (rc) return rc;
    mo.threads = (int)threads;
    wick_encoder *e = NULL;
    float *emb = NULL;
    wick_status st = wick_encoder_load(in.model, &mo, &e);
    if (st) { rc = cli_fail("embed", NULL, st); goto done; }
    in.enc = e;
    if ((rc = gather(argc, argv, &in))) goto done;
    wick_encoder_info info;
    wick_encoder_get_info(e, &info);
    if (!(emb = malloc(sizeof(float) * (size_t)in.n * info.hidden_size))) { rc = 1; goto done; }
    if ((st = wick_embed_ids(e, (const int32_t *const *)in.seqs, in.lens, in.n, &o, emb))) {
        rc = cli_fail("embed", NULL, st);
        goto done;
    }
    rc = write_out(out, emb, in.n, info.hidden_size);
done:
    for (int i = 0; i < in.n; i++) free(in.seqs[i]);
    free(in.seqs), free(in.lens), free(emb);
    wick_encoder_free(e);
    return rc;
}
