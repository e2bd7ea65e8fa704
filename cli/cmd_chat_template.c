/*
 * cmd_chat_template.c — `wick chat-template --model DIR --messages FILE.json
 * [--add-generation-prompt] [--chat-template NAME]`: prints the rendered prompt
 * exactly (no newline added). FILE.json is a list of {"role", "content"} objects.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static const char *USAGE =
    "usage: wick chat-template --model DIR --messages FILE.json [--add-generation-prompt] [--chat-template NAME]\n"
    "  renders the conversation with the model's chat template (tokenizer_config.json) and prints it exactly\n"
    "  --messages        a JSON list of {\"role\": ..., \"content\": ...} (or {\"messages\": [...]})\n"
    "  --chat-template   chatml | qwen2 | qwen2.5 | qwen3 | llama3 | llama3.1 | mistral (default: recognised from the model)\n"
    "  --spans           also print the assistant reply byte spans as JSON on stderr\n";

static int load_messages(const char *path, json_t **root, wick_chat_message **msgs, int *n) {
    json_error_t e;
    *root = json_load_file(path, 0, &e);
    if (!*root) return fprintf(stderr, "wick chat-template: %s: line %d: %s\n", path, e.line, e.text), 1;
    json_t *arr = json_is_array(*root) ? *root : json_object_get(*root, "messages");
    if (!json_is_array(arr)) return fprintf(stderr, "wick chat-template: %s: expected a list of messages\n", path), 1;
    *n = (int)json_array_size(arr);
    *msgs = calloc((size_t)*n + 1, sizeof **msgs);
    for (int i = 0; i < *n; i++) {
        json_t *m = json_array_get(arr, (size_t)i);
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *content = json_string_value(json_object_get(m, "content"));
        if (!role || !content)
            return fprintf(stderr, "wick chat-template: %s: message %d needs string \"role\" and \"content\"\n", path,
                           i),
                   1;
        (*msgs)[i] = (wick_chat_message){role, content};
    }
    return 0;
}

int cmd_chat_template(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return fputs(USAGE, stdout), 0;
    const char *model = NULL, *mfile = NULL, *name = NULL, *v;
    int gen = 0, want_spans = 0;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--model"))) model = v;
        else if ((v = cli_opt(argc, argv, &i, "--messages"))) mfile = v;
        else if ((v = cli_opt(argc, argv, &i, "--chat-template"))) name = v;
        else if (cli_flag(argv, i, "--add-generation-prompt")) gen = 1;
        else if (cli_flag(argv, i, "--spans")) want_spans = 1;
        else return cli_usage_error("chat-template", "unknown or incomplete option '%s'", argv[i]);
    }
    if (!model || !mfile) return cli_usage_error("chat-template", "--model and --messages are required");
    json_t *root = NULL;
    wick_chat_message *msgs = NULL;
    int n = 0, rc = load_messages(mfile, &root, &msgs, &n);
    wick_tokenizer *t = NULL;
    if (!rc) {
        wick_status st = wick_tokenizer_load(model, &t);
        char *out;
        size_t *spans;
        int ns;
        if (!st) st = wick_chat_render(t, msgs, n, gen, name, &out, &spans, &ns);
        if (st) {
            rc = cli_fail("chat-template", NULL, st);
        } else {
            fputs(out, stdout);
            if (want_spans) {
                fputs("[", stderr);
                for (int i = 0; i < ns; i++) fprintf(stderr, "%s[%zu,%zu]", i ? "," : "", spans[2 * i], spans[2 * i + 1]);
                fputs("]\n", stderr);
            }
            wick_free(out), wick_free(spans);
        }
    }
    wick_tokenizer_free(t);
    free(msgs);
    json_decref(root);
    return rc;
}
