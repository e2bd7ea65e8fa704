/*
 * cmd_chat.c — `wick chat`: an interactive conversation. Each line on stdin is a user
 * message; the reply is rendered with the model's chat template, generated and
 * streamed to stdout as it is produced, and kept in the conversation. "/reset"
 * starts over, "/quit" (or end of input) ends.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "gen_common.h"

static void help(void) {
    printf("usage: wick chat --model DIR [--system TEXT] [--chat-template NAME] [--adapter DIR] [options]\n\n"
           "Reads one user message per line from stdin and streams the model's reply to stdout.\n"
           "Commands: /reset (forget the conversation), /quit. --stats prints timing per reply to stderr.\n\n");
    gen_opts_help();
}

typedef struct {
    wick_chat_message *m;
    int n, cap;
} convo;

static int convo_add(convo *c, const char *role, const char *text) {
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        wick_chat_message *p = realloc(c->m, sizeof *p * (size_t)cap);
        if (!p) return 1;
        c->m = p, c->cap = cap;
    }
    char *t = strdup(text);
    if (!t) return 1;
    c->m[c->n++] = (wick_chat_message){role, t};
    return 0;
}

static void convo_clear(convo *c, int keep) {
    while (c->n > keep) free((char *)c->m[--c->n].content);
}

typedef struct {
    char *text;
    size_t len, cap;
} reply;

static int on_piece(const wick_token *t, void *user) {
    reply *r = user;
    fwrite(t->piece, 1, t->piece_len, stdout);
    fflush(stdout);
    if (r->len + t->piece_len + 1 > r->cap) {
        size_t cap = (r->len + t->piece_len + 1) * 2;
        char *p = realloc(r->text, cap);
        if (!p) return 1;
        r->text = p, r->cap = cap;
    }
    memcpy(r->text + r->len, t->piece, t->piece_len);
    r->len += t->piece_len;
    r->text[r->len] = 0;
    return 0;
}

/* One turn: generate the reply to the conversation and add it. Returns 0 or 1 (error printed). */
static int turn(const char *cmd, wick_gen_cli *g, convo *c, int stats) {
    wick_gen *gen = NULL;
    reply r = {0};
    wick_gen_stats st;
    wick_session_reset(g->s);
    wick_status s = wick_gen_start_chat(g->m, g->s, c->m, c->n, g->chat_template, &g->opts, &gen);
    if (!s) s = wick_gen_run(gen, on_piece, &r, &st);
    wick_gen_free(gen);
    printf("\n");
    if (s) {
        free(r.text);
        return cli_fail(cmd, NULL, s);
    }
    if (stats) gen_print_stats(stderr, &st);
    int bad = convo_add(c, "assistant", r.text ? r.text : "");
    free(r.text);
    return bad;
}

int cmd_chat(int argc, char **argv) {
    const char *cmd = "chat";
    if (cli_wants_help(argc, argv)) return help(), 0;
    wick_gen_cli g;
    int stats = 0, rc = gen_cli_parse(cmd, argc, argv, &g, NULL, NULL, &stats);
    if (rc) return rc;
    if (g.prompt || g.prompt_ids) return cli_usage_error(cmd, "chat reads the messages from stdin (no --prompt)");
    if ((rc = gen_cli_load(cmd, &g))) return gen_cli_free(&g), rc;
    if (!g.tok) return gen_cli_free(&g), cli_usage_error(cmd, "%s has no tokenizer.json", g.model_dir);
    convo c = {0};
    int keep = 0, tty = isatty(0);
    if (g.system && (rc = convo_add(&c, "system", g.system))) goto done;
    keep = c.n;
    char line[65536];
    for (;;) {
        if (tty) fputs("> ", stderr);
        if (!fgets(line, sizeof line, stdin)) break;
        line[strcspn(line, "\r\n")] = 0;
        if (!strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            convo_clear(&c, keep);
            continue;
        }
        if (!line[0]) continue;
        if (convo_add(&c, "user", line)) {
            rc = 1;
            break;
        }
        if (turn(cmd, &g, &c, stats)) convo_clear(&c, c.n - 1); /* drop the unanswered message */
    }
done:
    convo_clear(&c, 0);
    free(c.m);
    gen_cli_free(&g);
    return rc;
}
