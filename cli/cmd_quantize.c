/*
 * cmd_quantize.c — `wick quantize --model DIR|FILE.gguf --type T --out FILE.gguf`:
 * writes a llama.cpp-compatible GGUF file from a Hugging Face checkpoint, or
 * re-quantizes a GGUF file.
 */
#include "cli.h"

int cmd_quantize(int argc, char **argv) {
    const char *cmd = "quantize", *model = NULL, *type = NULL, *out = NULL, *v;
    if (cli_wants_help(argc, argv)) {
        printf("usage: wick quantize --model DIR|FILE.gguf --type q8_0|q4_0|q4_1|q5_0|q5_1|q4_k|f16|bf16|f32 --out FILE.gguf\n\n"
               "Writes a GGUF file (llama.cpp names and metadata; q/k rows permuted for llama) from a\n"
               "Hugging Face checkpoint directory (config.json + safetensors), or re-quantizes a GGUF\n"
               "file keeping all its metadata (tokenizer included). 2-D weights get --type; norms and\n"
               "biases stay f32; rows that --type's block does not divide fall back to q8_0, then f16.\n"
               "The file is written atomically.\n");
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--model"))) model = v;
        else if ((v = cli_opt(argc, argv, &i, "--type"))) type = v;
        else if ((v = cli_opt(argc, argv, &i, "--out"))) out = v;
        else return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[i]);
    }
    if (!model || !type || !out) return cli_usage_error(cmd, "--model, --type and --out are required (see --help)");
    wick_status st = wick_gguf_quantize(model, type, out);
    if (st) return cli_fail(cmd, NULL, st);
    return 0;
}
