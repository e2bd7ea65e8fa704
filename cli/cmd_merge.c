/*
 * cmd_merge.c — `wick merge --model DIR --adapter DIR --out DIR`: writes a full
 * Hugging Face checkpoint with the adapter merged into the weights (base dtypes
 * kept, sharded above --max-shard-size, config and tokenizer files copied).
 */
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static void help(void) {
    printf("usage: wick merge --model DIR --adapter DIR --out DIR [--scale S] [--max-shard-size BYTES]\n\n"
           "Merges the LoRA adapter into the base weights (W + S*scale*B*A, default S = 1) and writes\n"
           "a complete checkpoint to --out: safetensors in the base's dtypes (sharded with\n"
           "model.safetensors.index.json above --max-shard-size, default 2 GB), plus config.json,\n"
           "generation_config.json and the tokenizer files. Its logits equal the base + adapter.\n");
}

int cmd_merge(int argc, char **argv) {
    const char *cmd = "merge", *model = NULL, *adapter = NULL, *out = NULL, *v;
    double scale = 1;
    long shard = 0;
    if (cli_wants_help(argc, argv)) return help(), 0;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--model"))) model = v;
        else if ((v = cli_opt(argc, argv, &i, "--adapter"))) adapter = v;
        else if ((v = cli_opt(argc, argv, &i, "--out"))) out = v;
        else if ((v = cli_opt(argc, argv, &i, "--scale"))) { if (cli_float(cmd, "--scale", v, &scale)) return 2; }
        else if ((v = cli_opt(argc, argv, &i, "--max-shard-size"))) { if (cli_int(cmd, "--max-shard-size", v, &shard)) return 2; }
        else return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[i]);
    }
    if (!model || !adapter || !out) return cli_usage_error(cmd, "--model, --adapter and --out are required");
    if (shard < 0) return cli_usage_error(cmd, "--max-shard-size must be positive");
    wick_model *m = NULL;
    wick_adapter *a = NULL;
    int rc = 1;
    wick_status st = wick_model_load(model, NULL, &m);
    if (st) rc = cli_fail(cmd, NULL, st);
    else if ((st = wick_adapter_load(m, adapter, &a))) rc = cli_fail(cmd, NULL, st);
    else {
        wick_merge_opts o = {.scale = (float)scale, .max_shard_bytes = shard};
        if ((st = wick_merge_export(m, a, &o, out))) rc = cli_fail(cmd, NULL, st);
        else rc = 0;
    }
    wick_adapter_free(a);
    wick_model_free(m);
    return rc;
}
