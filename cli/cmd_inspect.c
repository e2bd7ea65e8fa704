/*
 * cmd_inspect.c — `wick inspect --model DIR`: architecture, shapes, parameters, dtypes, bytes.
 */
#include <stdlib.h>
#include <string.h>
#include "cli.h"

int cmd_inspect(int argc, char **argv) {
    const char *cmd = "inspect", *model = NULL, *v;
    int json = 0;
    if (cli_wants_help(argc, argv)) {
        printf("usage: wick inspect --model DIR [--json]\n\nLoads and validates a model directory, then prints its "
               "architecture,\nshapes, parameter count, weight dtype and bytes in memory.\n");
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--model"))) model = v;
        else if (cli_flag(argv, i, "--json")) json = 1;
        else return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[i]);
    }
    if (!model) return cli_usage_error(cmd, "--model is required");
    wick_model *m;
    wick_status st = wick_model_load(model, NULL, &m);
    if (st) return cli_fail(cmd, NULL, st);
    wick_model_info f;
    wick_model_get_info(m, &f);
    if (json) {
        printf("{\"arch\":\"%s\",\"vocab_size\":%d,\"hidden_size\":%d,\"intermediate_size\":%d,\"num_layers\":%d,"
               "\"num_heads\":%d,\"num_kv_heads\":%d,\"head_dim\":%d,\"n_params\":%lld,\"weight_dtype\":\"%s\","
               "\"weight_bytes\":%lld,\"tie_embeddings\":%s}\n",
               f.arch, f.vocab_size, f.hidden_size, f.intermediate_size, f.num_layers, f.num_heads, f.num_kv_heads,
               f.head_dim, (long long)f.n_params, f.weight_format, (long long)f.weight_bytes,
               f.tie_embeddings ? "true" : "false");
    } else {
        printf("model        %s\narchitecture %s\n", model, f.arch);
        printf("layers       %d  hidden %d  intermediate %d  vocab %d\n", f.num_layers, f.hidden_size,
               f.intermediate_size, f.vocab_size);
        printf("attention    %d heads, %d kv heads (GQA %d:1), head_dim %d, rope_theta %g%s%s\n", f.num_heads,
               f.num_kv_heads, f.num_heads / f.num_kv_heads, f.head_dim, f.rope_theta, f.qkv_bias ? ", qkv bias" : "",
               f.qk_norm ? ", q/k norm" : "");
        printf("parameters   %lld (%.3f B)%s\n", (long long)f.n_params, f.n_params / 1e9,
               f.tie_embeddings ? ", LM head tied to embeddings" : "");
        printf("weights      %s, %.1f MiB of linear weights in memory\n", f.weight_format,
               f.weight_bytes / 1048576.0);
        printf("eos ids     ");
        for (int i = 0; i < f.n_eos; i++) printf(" %d", f.eos_ids[i]);
        printf("%s\n", f.n_eos ? "" : " (none)");
    }
    wick_model_free(m);
    return 0;
}
