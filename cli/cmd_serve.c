/*
 * cmd_serve.c — `wick serve`: the OpenAI-compatible HTTP server of src/serve, with
 * adapters named in the request's `model` field, SSE streaming and graceful shutdown on
 * SIGTERM/SIGINT.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

#define MAX_ADAPTERS 256

static void help(void) {
    printf("usage: wick serve --model DIR [options]\n\n"
           "OpenAI-compatible server: POST /v1/completions, /v1/chat/completions (\"stream\": true = SSE),\n"
           "/v1/embeddings (with --embed-model), GET /v1/models, /health, /metrics (Prometheus),\n"
           "POST /v1/adapters {\"name\",\"path\"} and DELETE /v1/adapters/NAME. The request's \"model\"\n"
           "field names the base (--served-name) or a loaded adapter.\n\n"
           "  --host ADDR            IPv4 address to bind (default 127.0.0.1)\n"
           "  --port N               port (default 8000; 0 = any free port, printed at start)\n"
           "  --served-name NAME     the base model's name (default: the model directory's name)\n"
           "  --adapter NAME=DIR     load a PEFT LoRA adapter at start (repeatable)\n"
           "  --adapter-root DIR     directory POST /v1/adapters may load from (default: refused)\n"
           "  --embed-model DIR      BERT encoder for /v1/embeddings\n"
           "  --api-key KEY          require \"Authorization: Bearer KEY\" on /v1/ (also $WICK_API_KEY)\n"
           "  --parallel N           sequences decoding at the same time per replica, batched into shared steps\n"
           "                         (default 4)\n"
           "  --gpus N|all           one replica of the base on each of GPUs 0..N-1 (with --device cuda:K: K..K+N-1);\n"
           "                         a request goes to the least busy GPU, preferring one that holds its adapter\n"
           "                         (an adapter is copied to another GPU when a request is sent there)\n"
           "  --replicas N           N replicas of the base on --device (on one device they share it)\n"
           "  --max-queue N          requests waiting for a session before 429 (default 64)\n"
           "  --context N            positions per session (default min(model max, 4096))\n"
           "  --max-tokens N         largest max_tokens a request may ask (default 2048)\n"
           "  --max-prompt-tokens N  longest prompt (default context - 1)\n"
           "  --max-body BYTES       request body limit, 413 beyond (default 1048576)\n"
           "  --threads N            compute threads  --device cpu|cuda[:N]\n");
}

static void on_ready(const char *host, int port, void *user) {
    (void)user;
    printf("wick serve: listening on http://%s:%d\n", host, port);
    fflush(stdout);
}

static void on_signal(int sig) {
    (void)sig;
    wick_serve_stop();
}

int cmd_serve(int argc, char **argv) {
    const char *cmd = "serve";
    if (cli_wants_help(argc, argv)) return help(), 0;
    wick_serve_opts o = wick_serve_opts_default();
    static const char *names[MAX_ADAPTERS], *dirs[MAX_ADAPTERS];
    long v;
    int gpus = 0, device_given = 0;
    o.api_key = getenv("WICK_API_KEY");
    for (int i = 1; i < argc; i++) {
        const char *s;
        if ((s = cli_opt(argc, argv, &i, "--model"))) o.model_dir = s;
        else if ((s = cli_opt(argc, argv, &i, "--host"))) o.host = s;
        else if ((s = cli_opt(argc, argv, &i, "--served-name"))) o.model_name = s;
        else if ((s = cli_opt(argc, argv, &i, "--adapter-root"))) o.adapter_root = s;
        else if ((s = cli_opt(argc, argv, &i, "--embed-model"))) o.embed_model_dir = s;
        else if ((s = cli_opt(argc, argv, &i, "--api-key"))) o.api_key = s;
        else if ((s = cli_opt(argc, argv, &i, "--device"))) o.device = s, device_given = 1;
        else if ((s = cli_opt(argc, argv, &i, "--gpus"))) {
            if (!strcmp(s, "all")) {
                if ((v = wick_cuda_device_count()) < 1) return cli_usage_error(cmd, "--gpus all: no CUDA device found");
            } else if (cli_int(cmd, "--gpus", s, &v) || v < 1 || v > 64)
                return cli_usage_error(cmd, "--gpus: '%s' is not a GPU count 1..64 or 'all'", s);
            o.replicas = (int)v, gpus = 1;
        } else if ((s = cli_opt(argc, argv, &i, "--replicas"))) {
            if (cli_int(cmd, "--replicas", s, &v) || v < 1 || v > 64) return cli_usage_error(cmd, "--replicas must be 1..64");
            o.replicas = (int)v;
        }
        else if ((s = cli_opt(argc, argv, &i, "--adapter"))) {
            const char *eq = strchr(s, '=');
            if (!eq || eq == s || !eq[1]) return cli_usage_error(cmd, "--adapter wants NAME=DIR, not '%s'", s);
            if (o.n_adapters == MAX_ADAPTERS) return cli_usage_error(cmd, "at most %d --adapter options", MAX_ADAPTERS);
            names[o.n_adapters] = strndup(s, (size_t)(eq - s));
            dirs[o.n_adapters++] = eq + 1;
        } else if ((s = cli_opt(argc, argv, &i, "--port"))) {
            if (cli_int(cmd, "--port", s, &v)) return 2;
            if (v < 0 || v > 65535) return cli_usage_error(cmd, "--port must be 0..65535, not %ld", v);
            o.port = (int)v;
        } else if ((s = cli_opt(argc, argv, &i, "--parallel"))) {
            if (cli_int(cmd, "--parallel", s, &v) || v < 1 || v > 1024) return cli_usage_error(cmd, "--parallel must be 1..1024");
            o.parallel = (int)v;
        } else if ((s = cli_opt(argc, argv, &i, "--max-queue"))) {
            if (cli_int(cmd, "--max-queue", s, &v) || v < 0 || v > 100000) return cli_usage_error(cmd, "--max-queue must be 0..100000");
            o.max_queue = (int)v;
        } else if ((s = cli_opt(argc, argv, &i, "--context"))) {
            if (cli_int(cmd, "--context", s, &v) || v < 2) return cli_usage_error(cmd, "--context must be >= 2");
            o.context = (int)v;
        } else if ((s = cli_opt(argc, argv, &i, "--max-tokens"))) {
            if (cli_int(cmd, "--max-tokens", s, &v) || v < 1 || v > 1 << 20) return cli_usage_error(cmd, "--max-tokens must be >= 1");
            o.max_tokens = (int)v;
        } else if ((s = cli_opt(argc, argv, &i, "--max-prompt-tokens"))) {
            if (cli_int(cmd, "--max-prompt-tokens", s, &v) || v < 1) return cli_usage_error(cmd, "--max-prompt-tokens must be >= 1");
            o.max_prompt_tokens = (int)v;
        } else if ((s = cli_opt(argc, argv, &i, "--max-body"))) {
            if (cli_int(cmd, "--max-body", s, &v) || v < 16) return cli_usage_error(cmd, "--max-body must be >= 16");
            o.max_body = (size_t)v;
        } else if ((s = cli_opt(argc, argv, &i, "--threads"))) {
            if (cli_int(cmd, "--threads", s, &v) || v < 1) return cli_usage_error(cmd, "--threads must be >= 1");
            o.threads = (int)v;
        } else return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[i]);
    }
    if (!o.model_dir) return cli_usage_error(cmd, "--model is required");
    static char devs[64 * 12];
    if (gpus && device_given && strncmp(o.device, "cuda", 4))
        return cli_usage_error(cmd, "--gpus runs on CUDA devices, not --device %s", o.device);
    if (gpus) { /* --gpus N [--device cuda:K]: replicas on cuda:K .. cuda:K+N-1 */
        int first = device_given && o.device[4] == ':' ? atoi(o.device + 5) : 0;
        size_t off = 0;
        for (int k = 0; k < o.replicas; k++)
            off += (size_t)snprintf(devs + off, sizeof devs - off, "%scuda:%d", k ? "," : "", first + k);
        o.device = devs;
    }
    o.adapter_names = names, o.adapter_dirs = dirs;
    o.on_ready = on_ready;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    wick_status st = wick_serve_run(&o);
    for (int i = 0; i < o.n_adapters; i++) free((char *)names[i]);
    if (st) return cli_fail(cmd, "serve", st);
    fprintf(stderr, "wick serve: stopped\n");
    return 0;
}
