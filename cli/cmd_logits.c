/*
 * cmd_logits.c — `wick logits --model DIR [--adapter DIR] --ids "1,2;3,4" --out FILE`:
 * full-sequence float32 logits [B,T,V] written to a safetensors file.
 */
#include <stdlib.h>
#include <string.h>
#include "cli.h"


static void help(void) {
    printf("usage: wick logits --model DIR [--adapter DIR] [--adapter-scale S] --ids \"1,2,3;4,5,6\" --out FILE\n"
           "                   [--threads N] [--device cpu|cuda|cuda:N]\n\n"
           "Computes full-sequence logits in float32 for each ';'-separated sequence (all the same\n"
           "length T) and writes a safetensors file holding `logits` F32 [B,T,V].\n");
}

int cmd_logits(int argc, char **argv) {
    const char *cmd = "logits", *model = NULL, *adapter = NULL, *ids_s = NULL, *out = NULL, *device = NULL, *v;
    double ascale = 1;
    long threads = 0;
    if (cli_wants_help(argc, argv)) return help(), 0;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--model"))) model = v;
        else if ((v = cli_opt(argc, argv, &i, "--adapter"))) adapter = v;
        else if ((v = cli_opt(argc, argv, &i, "--ids"))) ids_s = v;
        else if ((v = cli_opt(argc, argv, &i, "--out"))) out = v;
        else if ((v = cli_opt(argc, argv, &i, "--device"))) device = v;
        else if ((v = cli_opt(argc, argv, &i, "--adapter-scale"))) { if (cli_float(cmd, "--adapter-scale", v, &ascale)) return 2; }
        else if ((v = cli_opt(argc, argv, &i, "--threads"))) { if (cli_int(cmd, "--threads", v, &threads)) return 2; }
        else return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[i]);
    }
    if (!model || !ids_s || !out) return cli_usage_error(cmd, "--model, --ids and --out are required");
    int32_t *ids;
    int *lens, B;
    if (cli_parse_ids(cmd, ids_s, &ids, &lens, &B)) return 2;
    int T = lens[0];
    for (int b = 1; b < B; b++)
        if (lens[b] != T) {
            int nb = lens[b];
            free(ids), free(lens);
            return cli_usage_error(cmd, "--ids: sequence %d has %d ids but sequence 0 has %d (all must be equal)", b, nb, T);
        }
    if (T == 0) return free(ids), free(lens), cli_usage_error(cmd, "--ids: empty sequence");
    wick_model_opts mo = wick_model_opts_default();
    mo.threads = (int)threads;
    mo.keep_bf16 = 1;
    if (device) mo.device = device;
    wick_model *m = NULL;
    wick_adapter *a = NULL;
    float *logits = NULL;
    int rc = 1;
    wick_status st = wick_model_load(model, &mo, &m);
    if (st) { rc = cli_fail(cmd, NULL, st); goto done; }
    if (adapter) {
        if ((st = wick_adapter_load(m, adapter, &a))) { rc = cli_fail(cmd, NULL, st); goto done; }
    }
    wick_model_info info;
    wick_model_get_info(m, &info);
    logits = malloc(sizeof(float) * (size_t)B * T * info.vocab_size);
    if (!logits) { fprintf(stderr, "wick logits: out of memory for [%d,%d,%d] logits\n", B, T, info.vocab_size); goto done; }
    if ((st = wick_model_logits(m, a, (float)ascale, ids, B, T, logits))) { rc = cli_fail(cmd, NULL, st); goto done; }
    wick_tensor_view tv = {.name = "logits", .dtype = WICK_DT_F32, .ndim = 3, .shape = {B, T, info.vocab_size}, .data = logits};
    if ((st = wick_safetensors_write(out, &tv, 1, "{\"format\":\"pt\"}"))) { rc = cli_fail(cmd, NULL, st); goto done; }
    rc = 0;
done:
    free(logits);
    free(ids);
    free(lens);
    wick_adapter_free(a);
    wick_model_free(m);
    return rc;
}
