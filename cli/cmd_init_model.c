/*
 * cmd_init_model.c — `wick init-model`: a random-weight model in Hugging Face layout.
 */
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static void help(void) {
    printf("usage: wick init-model --arch qwen2|qwen3|llama|mistral|bert (--preset NAME | --config FILE.json)\n"
           "                       --dtype f32|bf16|f16 --seed S --out DIR [--tokenizer bytes]\n\n"
           "Writes config.json, generation_config.json and model.safetensors with random weights\n"
           "(N(0, 0.02), seeded per tensor) in the exact Hugging Face layout.\n\n"
           "presets (real shapes): qwen2.5-0.5b qwen2.5-1.5b qwen2.5-7b qwen3-0.6b llama-3.2-1b e5-small;\n"
           "small: tiny (qwen2), wick-demo (qwen2, used by make demo), bert-tiny\n\n"
           "--tokenizer bytes also writes a byte-level BPE tokenizer.json (ids 0-255 = bytes,\n"
           "256-258 = <|endoftext|> <|im_start|> <|im_end|>) and a ChatML chat template.\n");
}

int cmd_init_model(int argc, char **argv) {
    const char *cmd = "init-model", *tokenizer = NULL, *arch = NULL, *preset = NULL, *config = NULL, *out = NULL, *dts = "f32", *v;
    long seed = 0;
    if (cli_wants_help(argc, argv)) return help(), 0;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--arch"))) arch = v;
        else if ((v = cli_opt(argc, argv, &i, "--preset"))) preset = v;
        else if ((v = cli_opt(argc, argv, &i, "--config"))) config = v;
        else if ((v = cli_opt(argc, argv, &i, "--out"))) out = v;
        else if ((v = cli_opt(argc, argv, &i, "--dtype"))) dts = v;
        else if ((v = cli_opt(argc, argv, &i, "--tokenizer"))) tokenizer = v;
        else if ((v = cli_opt(argc, argv, &i, "--seed"))) { if (cli_int(cmd, "--seed", v, &seed)) return 2; }
        else return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[i]);
    }
    if (!out) return cli_usage_error(cmd, "--out is required");
    if (!preset == !config) return cli_usage_error(cmd, "give exactly one of --preset and --config");
    if (arch && strcmp(arch, "qwen2") && strcmp(arch, "qwen3") && strcmp(arch, "llama") && strcmp(arch, "mistral") &&
        strcmp(arch, "bert"))
        return cli_usage_error(cmd, "--arch must be qwen2, qwen3, llama, mistral or bert, not '%s'", arch);
    wick_dtype dt;
    if (!strcmp(dts, "f32")) dt = WICK_DT_F32;
    else if (!strcmp(dts, "bf16")) dt = WICK_DT_BF16;
    else if (!strcmp(dts, "f16")) dt = WICK_DT_F16;
    else return cli_usage_error(cmd, "--dtype must be f32, bf16 or f16, not '%s'", dts);
    if (tokenizer && strcmp(tokenizer, "bytes")) return cli_usage_error(cmd, "--tokenizer must be 'bytes'");
    wick_status st = wick_init_model(arch, preset, config, dt, (uint64_t)seed, out);
    if (!st && tokenizer) st = wick_write_byte_tokenizer(out);
    if (st) return cli_fail(cmd, NULL, st);
    return 0;
}
