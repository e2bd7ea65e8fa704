/*
 * main.c — `wick` entry point: dispatches to one file per subcommand (cli/cmd_*.c).
 * A subcommand whose file is not part of this build is declared weak and reported
 * as unavailable instead of failing the link.
 */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include "cli.h"

#define CMD(name) int cmd_##name(int argc, char **argv) __attribute__((weak));
CMD(logits) CMD(generate) CMD(chat) CMD(train) CMD(embed) CMD(tokenize) CMD(detokenize)
CMD(chat_template) CMD(init_model) CMD(inspect) CMD(adapters) CMD(merge) CMD(bench)
CMD(quantize) CMD(serve)
#undef CMD

#define E(n, f, h) {n, f, h}
static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} cmds[] = {
    E("logits", cmd_logits, "full-sequence logits of token ids, written to safetensors"),
    E("generate", cmd_generate, "generate text or ids from a prompt, streamed"),
    E("chat", cmd_chat, "interactive conversation with a chat model"),
    E("train", cmd_train, "fine-tune a LoRA adapter on a JSONL file"),
    E("embed", cmd_embed, "sentence embeddings with a BERT-family encoder"),
    E("tokenize", cmd_tokenize, "text to token ids with a tokenizer.json"),
    E("detokenize", cmd_detokenize, "token ids to text"),
    E("chat-template", cmd_chat_template, "render a conversation with the model's chat template"),
    E("init-model", cmd_init_model, "write a random-weight model in Hugging Face layout"),
    E("inspect", cmd_inspect, "describe a model directory (architecture, parameters, dtypes)"),
    E("adapters", cmd_adapters, "inspect LoRA adapters (PEFT format)"),
    E("merge", cmd_merge, "merge a LoRA adapter into the base and write a checkpoint"),
    E("bench", cmd_bench, "run benchmarks, compare results, profile"),
    E("quantize", cmd_quantize, "write a quantized GGUF from a checkpoint"),
    E("serve", cmd_serve, "OpenAI-compatible HTTP server with per-request adapters"),
};
#undef E

static void usage(FILE *f) {
    fprintf(f, "wick %s — LoRA fine-tuning and inference for transformer language models\n\n"
               "usage: wick COMMAND [options]   (wick COMMAND --help for its options)\n\ncommands:\n",
            WICK_VERSION);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (cmds[i].fn) fprintf(f, "  %-14s %s\n", cmds[i].name, cmds[i].help);
    fprintf(f, "\nerrors go to stderr as one line naming the file, field or tensor at fault.\n");
}

/* Older OpenBLAS builds do not recognise recent CPUs (a Sapphire Rapids VM reads as
 * "Prescott") and fall back to generic kernels 3x slower; the core type can only be chosen
 * before the library initialises, so the tool restarts itself once with it set. */
static void fix_blas_core(char **argv) {
    const char *core = wick_blas_suggested_core();
    if (!core || getenv("OPENBLAS_CORETYPE") || getenv("WICK_NO_BLAS_FIX")) return;
    setenv("OPENBLAS_CORETYPE", core, 1);
    setenv("WICK_NO_BLAS_FIX", "1", 1);
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv) {
    fix_blas_core(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("wick %s\n", WICK_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(argv[1], cmds[i].name) != 0) continue;
        if (!cmds[i].fn) {
            fprintf(stderr, "wick: command '%s' is not available in this build\n", argv[1]);
            return 2;
        }
        return cmds[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "wick: unknown command '%s' (see wick --help)\n", argv[1]);
    return 2;
}
