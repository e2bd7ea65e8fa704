/*
 * cmd_adapters.c — `wick adapters inspect DIR [--model DIR] [--json]`: a PEFT
 * adapter's rank, alpha, scale, targets, per-layer shapes and bytes, and whether
 * it fits a base model.
 */
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static void help(void) {
    printf("usage: wick adapters inspect DIR [--model DIR] [--layers] [--json]\n\n"
           "Reads and validates a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors)\n"
           "and prints r, lora_alpha, the scale (alpha/r, or alpha/sqrt(r) with rsLoRA), the target\n"
           "projections, the shapes of layer 0 (every layer with --layers) and the bytes it takes.\n"
           "With --model, also checks that every tensor fits that base model (exit 1 if not).\n");
}

static void targets_str(unsigned t, char *buf, size_t cap) {
    buf[0] = 0;
    for (int p = 0; p < WICK_LORA_NPROJ; p++)
        if (t & (1u << p)) snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", buf[0] ? "," : "", wick_lora_target_name(p));
}

static void print_layer(const wick_adapter *a, int l, int json, int *first) {
    for (int p = 0; p < WICK_LORA_NPROJ; p++) {
        wick_lora_pair_info pi;
        if (wick_adapter_pair_info(a, l, p, &pi) != WICK_OK) continue;
        if (json)
            printf("%s{\"layer\":%d,\"target\":\"%s\",\"r\":%d,\"A\":[%d,%d],\"B\":[%d,%d],\"scale\":%.9g}", *first ? "" : ",",
                   l, wick_lora_target_name(p), pi.r, pi.r, pi.in, pi.out, pi.r, pi.scale);
        else
            printf("  layer %-3d %-10s r=%-4d A [%d,%d]  B [%d,%d]  scale %g\n", l, wick_lora_target_name(p), pi.r, pi.r,
                   pi.in, pi.out, pi.r, pi.scale);
        *first = 0;
    }
}

static int inspect(const char *dir, const char *model, int all_layers, int json) {
    const char *cmd = "adapters";
    wick_adapter *a;
    wick_status st = wick_adapter_open(dir, &a);
    if (st) return cli_fail(cmd, NULL, st);
    wick_adapter_info f;
    wick_adapter_get_info(a, &f);
    char t[128];
    targets_str(f.targets, t, sizeof t);
    int first = 1, n_show = all_layers ? f.n_layers : 1;
    if (json) {
        printf("{\"adapter\":\"%s\",\"r\":%d,\"lora_alpha\":%g,\"use_rslora\":%s,\"scale\":%.9g,\"targets\":\"%s\","
               "\"layers\":%d,\"pairs\":%d,\"params\":%lld,\"bytes\":%lld,\"shapes\":[", dir, f.r, f.alpha,
               f.use_rslora ? "true" : "false", f.scale, t, f.n_layers, f.n_pairs, (long long)f.n_params, (long long)f.bytes);
        for (int l = 0; l < n_show; l++) print_layer(a, l, 1, &first);
        printf("]");
    } else {
        printf("adapter   %s\nrank      r=%d  lora_alpha=%g  %s  scale %g\ntargets   %s\n", dir, f.r, f.alpha,
               f.use_rslora ? "rsLoRA (alpha/sqrt(r))" : "alpha/r", f.scale, t);
        printf("size      %d layers, %d adapted projections, %lld parameters, %.2f MiB as f32\n", f.n_layers, f.n_pairs,
               (long long)f.n_params, (double)f.bytes / (1 << 20));
        printf("shapes%s\n", all_layers ? "" : " (layer 0; --layers for all)");
        for (int l = 0; l < n_show; l++) print_layer(a, l, 0, &first);
    }
    wick_adapter_free(a);
    int rc = 0;
    if (model) {
        wick_model *m = NULL;
        wick_adapter *b = NULL;
        st = wick_model_load(model, NULL, &m);
        if (!st) st = wick_adapter_load(m, dir, &b);
        if (json) printf(",\"compatible\":%s", st ? "false" : "true");
        else if (!st) printf("base      %s: compatible\n", model);
        if (st) rc = cli_fail(cmd, "not compatible with the model", st);
        wick_adapter_free(b);
        wick_model_free(m);
    }
    if (json) printf("}\n");
    return rc;
}

int cmd_adapters(int argc, char **argv) {
    const char *cmd = "adapters", *model = NULL, *dir = NULL, *v;
    int json = 0, layers = 0;
    if (cli_wants_help(argc, argv) || argc < 2) return help(), argc < 2 ? 2 : 0;
    if (strcmp(argv[1], "inspect")) return cli_usage_error(cmd, "unknown action '%s' (want: inspect)", argv[1]);
    for (int i = 2; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--model"))) model = v;
        else if (cli_flag(argv, i, "--json")) json = 1;
        else if (cli_flag(argv, i, "--layers")) layers = 1;
        else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[i]);
    }
    if (!dir) return cli_usage_error(cmd, "inspect needs an adapter directory");
    return inspect(dir, model, layers, json);
}
