/* test_train_data.c — training data lines: {"input_ids","labels"} as given (truncated to seq_len);
 * with a tokenizer (the byte-level one init-model writes: one id per byte): {"text"} trains every
 * token, {"prompt","completion"} masks the prompt and appends eos, {"messages"} trains only the
 * assistant replies and their <|im_end|>; malformed lines are errors naming the line. */
#include "t.h"
#include "train/data.h"
#include <stdlib.h>
#include <unistd.h>

static char tmp[256];

static wk_dataset load(wick_model *m, const char *text, int seq_len, wick_status *st) {
    char p[512];
    snprintf(p, sizeof p, "%s/d.jsonl", tmp);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    wk_dataset d;
    *st = wk_data_load(p, m, seq_len, &d);
    return d;
}

static int count_trained(const wk_example *e) {
    int n = 0;
    for (int i = 0; i < e->len; i++) n += e->labels[i] != -100;
    return n;
}

int main(void) {
    wick_set_threads(1);
    snprintf(tmp, sizeof tmp, "/tmp/wick_train_data_XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    char cmd[2048], mdir[300];
    snprintf(mdir, sizeof mdir, "%s/model", tmp);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/config.json %s/model.safetensors %s/", mdir,
             T_PATH("golden/llama_tiny/model"), T_PATH("golden/llama_tiny/model"), mdir);
    CHECK(system(cmd) == 0, "copy model");
    wick_model *plain = NULL, *m = NULL;
    CHECK_OK(wick_model_load(mdir, NULL, &plain));
    CHECK_OK(wick_write_byte_tokenizer(mdir));
    CHECK_OK(wick_model_load(mdir, NULL, &m));
    if (!m || !plain) return t_summary();
    wick_status st;
    wk_dataset d = load(m, "{\"input_ids\": [5, 6, 7, 8], \"labels\": [-100, 6, -100, 8]}\n\n{\"input_ids\": [9, 10]}\n", 3, &st);
    CHECK(st == WICK_OK && d.n == 2, "pretokenized: %s", wick_last_error());
    if (!st) {
        CHECK(d.ex[0].len == 3 && d.ex[0].labels[0] == -100 && d.ex[0].labels[1] == 6 && d.ex[0].ids[2] == 7, "truncated");
        CHECK(d.ex[1].len == 2 && d.ex[1].labels[1] == 10 && d.ex[1].line == 3, "labels default to ids; line 3");
    }
    wk_data_free(&d);
    d = load(m, "{\"text\": \"hello\"}\n{\"prompt\": \"ab\", \"completion\": \"cd\"}\n"
                "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}\n",
             0, &st);
    CHECK(st == WICK_OK && d.n == 3, "text formats: %s", wick_last_error());
    if (!st) {
        CHECK(d.ex[0].len == 5 && count_trained(&d.ex[0]) == 5 && d.ex[0].ids[0] == 'h', "text");
        const int32_t want_ids[5] = {'a', 'b', 'c', 'd', 258}, want_lab[5] = {-100, -100, 'c', 'd', 258};
        CHECK(d.ex[1].len == 5 && !memcmp(d.ex[1].ids, want_ids, sizeof want_ids) &&
              !memcmp(d.ex[1].labels, want_lab, sizeof want_lab), "prompt/completion");
        const wk_example *e = &d.ex[2];
        CHECK(e->len == 25 && count_trained(e) == 3, "messages: %d tokens, %d trained", e->len, count_trained(e));
        CHECK(e->len == 25 && e->labels[21] == 'y' && e->labels[22] == 'o' && e->labels[23] == 258 && e->labels[24] == -100,
              "messages: the reply and <|im_end|> are trained, the rest masked");
    }
    wk_data_free(&d);
    load(m, "{\"input_ids\": [1]}\n{\"input_ids\": [1], \"labels\": [1, 2]}\n", 0, &st);
    CHECK(st && strstr(wick_last_error(), "d.jsonl:2"), "labels length: %s", wick_last_error());
    load(m, "{\"input_ids\": [1]}\n{\"input_ids\": [999999]}\n", 0, &st);
    CHECK(st && strstr(wick_last_error(), "d.jsonl:2") && strstr(wick_last_error(), "vocabulary"), "range: %s", wick_last_error());
    load(m, "{\"prompt\": \"a\"}\n", 0, &st);
    CHECK(st && strstr(wick_last_error(), "d.jsonl:1") && strstr(wick_last_error(), "completion"), "prompt only: %s", wick_last_error());
    load(m, "{\"messages\": [{\"role\": \"user\"}]}\n", 0, &st);
    CHECK(st && strstr(wick_last_error(), "d.jsonl:1"), "message without content: %s", wick_last_error());
    load(m, "[1, 2]\n", 0, &st);
    CHECK(st && strstr(wick_last_error(), "d.jsonl:1"), "not an object: %s", wick_last_error());
    load(plain, "{\"text\": \"hi\"}\n", 0, &st);
    CHECK(st && strstr(wick_last_error(), "tokenizer"), "no tokenizer: %s", wick_last_error());
    wick_model_free(m);
    wick_model_free(plain);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (!t_fail && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return t_summary();
}
