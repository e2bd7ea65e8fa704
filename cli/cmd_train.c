/*
 * cmd_train.c — `wick train`: LoRA fine-tuning from a JSONL file. Parses the
 * options into a wick_train_config, shows a live progress line on a terminal
 * (quiet otherwise) and prints a summary; the loop itself is wick_train_run.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"

static void help(void) {
    printf("usage: wick train --model DIR --data FILE.jsonl --out DIR [options]\n\n"
           "Fine-tunes a LoRA adapter (base frozen). Data lines (JSONL): {\"input_ids\":[..],\"labels\":[..]} (label\n"
           "-100 = ignored; the one-position shift happens inside), or with the model's tokenizer {\"text\":..},\n"
           "{\"prompt\":..,\"completion\":..} (prompt masked) and {\"messages\":[{\"role\",\"content\"},..]} (chat\n"
           "template; only assistant replies trained). --out receives the PEFT adapter, metrics.jsonl (one line\n"
           "per optimizer step) and checkpoint-N directories.\n\n"
           "adapter:   --init-adapter DIR | --lora-r 8 --lora-alpha 16 --targets all|q_proj,v_proj,.. --rslora\n"
           "           --lora-dropout P (default: the adapter's lora_dropout, 0 for a new one)\n"
           "data:      --epochs 1 | --max-steps N, --batch-size 1, --grad-accum 1, --seq-len 0 (no cut),\n"
           "           --no-shuffle, --seed 42, --eval-data FILE, --eval-every N\n"
           "optimizer: --lr 1e-4 --scheduler constant|linear|cosine --warmup-steps 0 --weight-decay 0\n"
           "           --max-grad-norm 1 (0 = off) --adam-beta1 0.9 --adam-beta2 0.999 --adam-eps 1e-8\n"
           "           --label-smoothing 0\n"
           "run:       --save-every N --keep-checkpoints 2 --resume DIR (checkpoint or --out dir)\n"
           "           --save-grads FILE (first step's gradients) --recompute (activation checkpointing)\n"
           "           --threads N\n"
           "device:    --device cpu|cuda|cuda:N (default cpu)\n"
           "           --gpus N|all: data parallel over GPUs 0..N-1 (one replica each, every micro-batch split by\n"
           "           sequences, LoRA gradients all-reduced with NCCL once per step; --batch-size is the global\n"
           "           batch, so results equal one GPU with the same batch; checkpoints resume on any GPU count)\n");
}

static int parse_targets(const char *s, unsigned *mask) {
    static const char *names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    *mask = 0;
    if (!strcmp(s, "all") || !strcmp(s, "all-linear")) return *mask = 0x7f, 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int found = -1;
        for (int p = 0; p < 7; p++) /* "q_proj" or "q" */
            if (!strcmp(tok, names[p]) || (strlen(tok) + 5 == strlen(names[p]) && !strncmp(tok, names[p], strlen(tok))))
                found = p;
        if (found < 0) return 1;
        *mask |= 1u << found;
    }
    return *mask ? 0 : 1;
}

static int progress(const wick_train_progress *p, void *user) {
    (void)user;
    int eta = (int)p->eta_s;
    fprintf(stderr, "\r\033[Kstep %d/%d  loss %.4f  lr %.3g  grad %.3f  %.0f tok/s  ETA %d:%02d:%02d", p->step,
            p->total_steps, p->loss, p->lr, p->grad_norm, p->tokens_per_s, eta / 3600, eta / 60 % 60, eta % 60);
    if (!isnan(p->eval_loss)) fprintf(stderr, "  eval %.4f", p->eval_loss);
    fflush(stderr);
    return 0;
}

/* Numeric options: name, kind (i = int, f = float), destination. */
typedef struct {
    const char *name;
    char kind;
    void *dst;
} num_opt;

static int parse_num(const char *cmd, const num_opt *o, const char *v) {
    if (o->kind == 'i') {
        long x;
        if (cli_int(cmd, o->name, v, &x)) return 1;
        *(int *)o->dst = (int)x;
    } else {
        double x;
        if (cli_float(cmd, o->name, v, &x)) return 1;
        *(float *)o->dst = (float)x;
    }
    return 0;
}

int cmd_train(int argc, char **argv) {
    const char *cmd = "train", *v;
    if (cli_wants_help(argc, argv)) return help(), 0;
    wick_train_config c = wick_train_config_default();
    int threads = 0, gpus_given = 0;
    const num_opt nums[] = {
        {"--lora-r", 'i', &c.lora_r},         {"--lora-alpha", 'f', &c.lora_alpha},
        {"--lora-dropout", 'f', &c.opt.lora_dropout}, {"--epochs", 'i', &c.epochs},
        {"--max-steps", 'i', &c.max_steps},   {"--batch-size", 'i', &c.batch_size},
        {"--grad-accum", 'i', &c.grad_accum}, {"--seq-len", 'i', &c.seq_len},
        {"--lr", 'f', &c.opt.lr},             {"--warmup-steps", 'i', &c.opt.warmup_steps},
        {"--weight-decay", 'f', &c.opt.weight_decay}, {"--max-grad-norm", 'f', &c.opt.max_grad_norm},
        {"--adam-beta1", 'f', &c.opt.beta1},  {"--adam-beta2", 'f', &c.opt.beta2},
        {"--adam-eps", 'f', &c.opt.eps},      {"--label-smoothing", 'f', &c.opt.label_smoothing},
        {"--save-every", 'i', &c.save_every}, {"--keep-checkpoints", 'i', &c.keep_checkpoints},
        {"--eval-every", 'i', &c.eval_every}, {"--threads", 'i', &threads},
    };
    for (int i = 1; i < argc; i++) {
        int done = 0;
        for (size_t k = 0; k < sizeof nums / sizeof nums[0] && !done; k++)
            if ((v = cli_opt(argc, argv, &i, nums[k].name))) {
                if (parse_num(cmd, &nums[k], v)) return 2;
                done = 1;
            }
        if (done) continue;
        if ((v = cli_opt(argc, argv, &i, "--model"))) c.model_dir = v;
        else if ((v = cli_opt(argc, argv, &i, "--data"))) c.data_path = v;
        else if ((v = cli_opt(argc, argv, &i, "--out"))) c.out_dir = v;
        else if ((v = cli_opt(argc, argv, &i, "--eval-data"))) c.eval_path = v;
        else if ((v = cli_opt(argc, argv, &i, "--init-adapter"))) c.init_adapter = v;
        else if ((v = cli_opt(argc, argv, &i, "--resume"))) c.resume = v;
        else if ((v = cli_opt(argc, argv, &i, "--save-grads"))) c.save_grads = v;
        else if ((v = cli_opt(argc, argv, &i, "--device"))) c.device = v;
        else if ((v = cli_opt(argc, argv, &i, "--gpus"))) {
            long n = 0;
            if (!strcmp(v, "all")) {
                if ((n = wick_cuda_device_count()) < 1) return cli_usage_error(cmd, "--gpus all: no CUDA device found");
            } else if (cli_int(cmd, "--gpus", v, &n) || n < 1) {
                return cli_usage_error(cmd, "--gpus: '%s' is not a GPU count >= 1 or 'all'", v);
            }
            c.replicas = n > 1000000 ? 1000000 : (int)n;
            if (!c.device || !strncmp(c.device, "cuda", 4)) c.device = "cuda";
            gpus_given = 1;
        }
        else if ((v = cli_opt(argc, argv, &i, "--seed"))) {
            long x;
            if (cli_int(cmd, "--seed", v, &x)) return 2;
            c.opt.seed = (uint64_t)x;
        } else if ((v = cli_opt(argc, argv, &i, "--targets"))) {
            if (parse_targets(v, &c.targets))
                return cli_usage_error(cmd, "--targets: '%s' is not 'all' or a list of q_proj,k_proj,v_proj,o_proj,"
                                       "gate_proj,up_proj,down_proj", v);
        } else if ((v = cli_opt(argc, argv, &i, "--scheduler"))) {
            if (!strcmp(v, "constant")) c.opt.scheduler = WICK_SCHED_CONSTANT;
            else if (!strcmp(v, "linear")) c.opt.scheduler = WICK_SCHED_LINEAR;
            else if (!strcmp(v, "cosine")) c.opt.scheduler = WICK_SCHED_COSINE;
            else return cli_usage_error(cmd, "--scheduler: '%s' is not constant, linear or cosine", v);
        } else if (cli_flag(argv, i, "--no-shuffle")) c.shuffle = 0;
        else if (cli_flag(argv, i, "--rslora")) c.use_rslora = 1;
        else if (cli_flag(argv, i, "--recompute")) c.opt.recompute = 1;
        else return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[i]);
    }
    if (!c.model_dir || !c.data_path || !c.out_dir) return cli_usage_error(cmd, "--model, --data and --out are required");
    if (gpus_given && c.device && strcmp(c.device, "cuda") != 0)
        return cli_usage_error(cmd, "--gpus uses GPUs 0..N-1; it does not combine with --device %s", c.device);
    if (threads > 0) wick_set_threads(threads);
    int tty = isatty(2);
    if (tty) c.progress = progress;
    wick_train_summary s;
    wick_status st = wick_train_run(&c, &s);
    if (tty) fprintf(stderr, "\n");
    if (st) return cli_fail(cmd, NULL, st);
    printf("trained %d steps in %.1f s: loss %.4f -> %.4f, %.0f tok/s", s.steps, s.seconds, s.first_loss, s.last_loss,
           s.tokens_per_s);
    if (!isnan(s.eval_loss)) printf(", eval loss %.4f", s.eval_loss);
    printf("; adapter in %s\n", c.out_dir);
    return 0;
}
