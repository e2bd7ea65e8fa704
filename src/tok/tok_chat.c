/*
 * tok_chat.c — chat templates. Real models ship Jinja templates; wick recognises the
 * families they come from by distinctive text in tokenizer_config.json's
 * chat_template and renders them with a built-in renderer that reproduces the Jinja
 * output byte for byte (ChatML; Qwen2/2.5 default system prompts; Qwen3's thinking
 * block rules; Llama 3; Llama 3.1/3.2 with the dated system header; Mistral [INST]). The renderer also records the byte span of
 * each assistant reply: the reply text as the model generates it, including the
 * end-of-turn marker (<|im_end|>, <|eot_id|>, </s>), for training masks.
 */
#include "tok.h"
#include <stdio.h>
#include <time.h>

typedef enum { CT_CHATML, CT_QWEN2, CT_QWEN25, CT_QWEN3, CT_LLAMA3, CT_LLAMA31, CT_MISTRAL, CT_COUNT } ct_kind;
static const char *ct_names[CT_COUNT] = {"chatml", "qwen2", "qwen2.5", "qwen3", "llama3", "llama3.1", "mistral"};
#define CT_LIST "chatml, qwen2, qwen2.5, qwen3, llama3, llama3.1, mistral"

typedef struct {
    tk_buf out;
    tk_ids spans; /* start, end pairs (byte offsets; fit in int32 for any sane prompt) */
    const wick_tokenizer *t;
    int always_gen; /* the template adds the assistant header regardless of add_generation_prompt */
    int today;      /* llama3.1: the template dates the system header with strftime_now (Llama 3.2) */
} render;

static void put(render *r, const char *s) { tk_buf_put(&r->out, s, strlen(s)); }
static void putn(render *r, const char *s, size_t n) { tk_buf_put(&r->out, s, n); }

static wick_status recognise(const char *tpl, ct_kind *k, int *always_gen, int *today) {
    *always_gen = 0;
    *today = 0;
    if (!tpl)
        return wk_err(WICK_EUNSUPPORTED, "tokenizer_config.json has no chat_template; pass --chat-template NAME (%s)",
                      CT_LIST);
    if (strstr(tpl, "<|im_start|>")) {
        if (strstr(tpl, "<think>") || strstr(tpl, "reasoning_content")) *k = CT_QWEN3;
        else if (strstr(tpl, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")) *k = CT_QWEN25;
        else if (strstr(tpl, "You are a helpful assistant.")) *k = CT_QWEN2;
        else *k = CT_CHATML;
        return WICK_OK;
    }
    if (strstr(tpl, "<|start_header_id|>") && !strstr(tpl, "Cutting Knowledge Date")) {
        *k = CT_LLAMA3;
        *always_gen = !strstr(tpl, "add_generation_prompt");
        return WICK_OK;
    }
    if (strstr(tpl, "<|start_header_id|>") && strstr(tpl, "Cutting Knowledge Date: December 2023")) {
        *k = CT_LLAMA31;
        *today = strstr(tpl, "strftime_now") != NULL;
        return WICK_OK;
    }
    if (strstr(tpl, "[INST]") && !strstr(tpl, "<<SYS>>") && !strstr(tpl, "[SYSTEM_PROMPT]") &&
        !strstr(tpl, "[AVAILABLE_TOOLS]")) {
        *k = CT_MISTRAL;
        return WICK_OK;
    }
    return wk_err(WICK_EUNSUPPORTED,
                  "tokenizer_config.json: chat_template is not one wick recognises; pass --chat-template NAME (%s)",
                  CT_LIST);
}

static void span_begin(render *r) { tk_ids_push(&r->spans, (int32_t)r->out.len); }
static void span_end(render *r) { tk_ids_push(&r->spans, (int32_t)r->out.len); }

int tk_is_ws(uint32_t c);

/* Python's str.isspace for one code point. */
static int py_space(uint32_t c) { return tk_is_ws(c) || (c >= 0x1c && c <= 0x1f); }

/* Python's str.strip family on a byte range: mode bit 1 = left, 2 = right; chars = NULL
 * for whitespace (str.isspace), else a set of ASCII characters. */
static void pystrip(const char **s, size_t *n, int mode, const char *chars) {
    const char *p = *s;
    size_t len = *n;
    uint32_t cp;
    int k;
    while ((mode & 1) && len) {
        if (chars) {
            if (!strchr(chars, p[0])) break;
            k = 1;
        } else if ((k = tk_utf8_next((const uint8_t *)p, len, &cp)) <= 0 || !py_space(cp)) {
            break;
        }
        p += k, len -= (size_t)k;
    }
    while ((mode & 2) && len) {
        size_t j = len - 1;
        while (!chars && j > 0 && ((uint8_t)p[j] & 0xC0) == 0x80) j--;
        if (chars ? !strchr(chars, p[j]) : (tk_utf8_next((const uint8_t *)p + j, len - j, &cp) <= 0 || !py_space(cp)))
            break;
        len = j;
    }
    *s = p, *n = len;
}

static const char *memfind(const char *h, size_t hn, const char *needle) {
    size_t nn = strlen(needle);
    for (size_t i = 0; i + nn <= hn; i++)
        if (!memcmp(h + i, needle, nn)) return h + i;
    return NULL;
}
static const char *memfind_last(const char *h, size_t hn, const char *needle) {
    size_t nn = strlen(needle);
    for (size_t i = hn + 1; i-- > 0;)
        if (i + nn <= hn && !memcmp(h + i, needle, nn)) return h + i;
    return NULL;
}

static void chatml_msg(render *r, const char *role, const char *content) {
    put(r, "<|im_start|>"), put(r, role), put(r, "\n");
    int asst = !strcmp(role, "assistant");
    if (asst) span_begin(r);
    put(r, content), put(r, "<|im_end|>");
    if (asst) span_end(r);
    put(r, "\n");
}

static wick_status render_chatml(render *r, ct_kind k, const wick_chat_message *m, int n, int gen) {
    const char *def = k == CT_QWEN25 ? "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
                      : k == CT_QWEN2 ? "You are a helpful assistant." : NULL;
    if (def && (n == 0 || strcmp(m[0].role, "system"))) chatml_msg(r, "system", def);
    for (int i = 0; i < n; i++) chatml_msg(r, m[i].role, m[i].content);
    if (gen) put(r, "<|im_start|>assistant\n");
    return WICK_OK;
}

static int is_tool_response(const char *c) {
    size_t n = strlen(c);
    return n >= 15 && !strncmp(c, "<tool_response>", 15) && n >= 16 && !strcmp(c + n - 16, "</tool_response>");
}

static void qwen3_assistant(render *r, const char *c, int after_query, int last) {
    size_t n = strlen(c);
    const char *content = c, *reason = "";
    size_t cn = n, rn = 0;
    const char *end = memfind(c, n, "</think>");
    if (end) {
        const char *lastend = memfind_last(c, n, "</think>");
        content = lastend + 8, cn = n - (size_t)(content - c);
        pystrip(&content, &cn, 1, "\n");
        reason = c, rn = (size_t)(end - c);
        pystrip(&reason, &rn, 2, "\n");
        const char *st = memfind_last(reason, rn, "<think>");
        if (st) rn -= (size_t)(st + 7 - reason), reason = st + 7;
        pystrip(&reason, &rn, 1, "\n");
    }
    put(r, "<|im_start|>assistant\n");
    span_begin(r);
    if (after_query && (last || rn)) {
        const char *rs = reason, *cs = content;
        size_t rsn = rn, csn = cn;
        pystrip(&rs, &rsn, 3, "\n");
        pystrip(&cs, &csn, 1, "\n");
        put(r, "<think>\n"), putn(r, rs, rsn), put(r, "\n</think>\n\n"), putn(r, cs, csn);
    } else {
        putn(r, content, cn);
    }
    put(r, "<|im_end|>");
    span_end(r);
    put(r, "\n");
}

static wick_status render_qwen3(render *r, const wick_chat_message *m, int n, int gen) {
    if (n && !strcmp(m[0].role, "system")) put(r, "<|im_start|>system\n"), put(r, m[0].content), put(r, "<|im_end|>\n");
    int last_query = n - 1;
    for (int i = n - 1; i >= 0; i--)
        if (!strcmp(m[i].role, "user") && !is_tool_response(m[i].content)) {
            last_query = i;
            break;
        }
    for (int i = 0; i < n; i++) {
        const char *role = m[i].role;
        if (!strcmp(role, "user") || (!strcmp(role, "system") && i > 0)) {
            put(r, "<|im_start|>"), put(r, role), put(r, "\n"), put(r, m[i].content), put(r, "<|im_end|>\n");
        } else if (!strcmp(role, "assistant")) {
            qwen3_assistant(r, m[i].content, i > last_query, i == n - 1);
        } else if (!strcmp(role, "tool")) {
            if (i == 0 || strcmp(m[i - 1].role, "tool")) put(r, "<|im_start|>user");
            put(r, "\n<tool_response>\n"), put(r, m[i].content), put(r, "\n</tool_response>");
            if (i == n - 1 || strcmp(m[i + 1].role, "tool")) put(r, "<|im_end|>\n");
        }
    }
    if (gen) put(r, "<|im_start|>assistant\n");
    return WICK_OK;
}

/* transformers' tojson on a string: json.dumps(s, ensure_ascii=False). */
static void put_json_string(render *r, const char *s) {
    put(r, "\"");
    for (; *s; s++) {
        uint8_t c = (uint8_t)*s;
        const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t"
                          : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
        char u[8];
        if (!esc && c < 0x20) snprintf(u, sizeof u, "\\u%04x", c), esc = u;
        if (esc) put(r, esc);
        else putn(r, s, 1);
    }
    put(r, "\"");
}

static void llama_turn(render *r, const char *role, const char *content) {
    put(r, "<|start_header_id|>"), put(r, role), put(r, "<|end_header_id|>\n\n");
    size_t cn = strlen(content);
    pystrip(&content, &cn, 3, NULL);
    int asst = !strcmp(role, "assistant");
    if (asst) span_begin(r);
    putn(r, content, cn), put(r, "<|eot_id|>");
    if (asst) span_end(r);
}

static wick_status render_llama3(render *r, const wick_chat_message *m, int n, int gen) {
    const char *bos = r->t->bos_token ? r->t->bos_token : "";
    for (int i = 0; i < n; i++) {
        if (i == 0) put(r, bos);
        llama_turn(r, m[i].role, m[i].content);
    }
    if (gen || r->always_gen) put(r, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return WICK_OK;
}

/* Llama 3.1 / 3.2 without tools: a system header with the knowledge cutoff and a date,
 * the (trimmed) system message, then the turns; tool results go under "ipython". */
static wick_status render_llama31(render *r, const wick_chat_message *m, int n, int gen) {
    char date[32] = "26 Jul 2024";
    if (r->today) {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(date, sizeof date, "%d %b %Y", &tm);
    }
    const char *sys = "";
    size_t sn = 0;
    int first = 0;
    if (n && !strcmp(m[0].role, "system")) {
        sys = m[0].content, sn = strlen(sys), first = 1;
        pystrip(&sys, &sn, 3, NULL);
    }
    put(r, r->t->bos_token ? r->t->bos_token : "");
    put(r, "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: ");
    put(r, date), put(r, "\n\n"), putn(r, sys, sn), put(r, "<|eot_id|>");
    for (int i = first; i < n; i++) {
        if (!strcmp(m[i].role, "tool") || !strcmp(m[i].role, "ipython")) {
            /* the template's `content is iterable` holds for strings: it prints content | tojson */
            put(r, "<|start_header_id|>ipython<|end_header_id|>\n\n"), put_json_string(r, m[i].content);
            put(r, "<|eot_id|>");
        } else {
            llama_turn(r, m[i].role, m[i].content);
        }
    }
    if (gen) put(r, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return WICK_OK;
}

static wick_status render_mistral(render *r, const wick_chat_message *m, int n) {
    put(r, r->t->bos_token ? r->t->bos_token : "");
    for (int i = 0; i < n; i++) {
        int user = !strcmp(m[i].role, "user");
        if (user != (i % 2 == 0))
            return wk_err(WICK_EINVAL, "chat template mistral: message %d: conversation roles must alternate "
                                       "user/assistant/user/assistant/...", i);
        if (user) {
            put(r, "[INST] "), put(r, m[i].content), put(r, " [/INST]");
        } else if (!strcmp(m[i].role, "assistant")) {
            span_begin(r);
            put(r, m[i].content), put(r, r->t->eos_token ? r->t->eos_token : "");
            span_end(r);
        } else {
            return wk_err(WICK_EINVAL, "chat template mistral: message %d: only user and assistant roles are supported",
                          i);
        }
    }
    return WICK_OK;
}

const char *wick_chat_template_name(const wick_tokenizer *t) {
    ct_kind k = 0;
    int always, today;
    if (!t) return NULL;
    return recognise(t->chat_template, &k, &always, &today) ? NULL : ct_names[k];
}

static wick_status pick(const wick_tokenizer *t, const char *name, ct_kind *k, int *always, int *today) {
    *always = 0;
    *today = 0;
    if (!name) return recognise(t->chat_template, k, always, today);
    for (int i = 0; i < CT_COUNT; i++)
        if (!strcmp(name, ct_names[i])) {
            *k = (ct_kind)i;
            return WICK_OK;
        }
    return wk_err(WICK_EINVAL, "--chat-template \"%s\" is not a known template (%s)", name, CT_LIST);
}

wick_status wick_chat_render(const wick_tokenizer *t, const wick_chat_message *msgs, int n, int add_generation_prompt,
                             const char *template_name, char **out, size_t **spans, int *n_spans) {
    if (!t || (!msgs && n) || n < 0 || !out) return wk_err(WICK_EINVAL, "wick_chat_render: bad argument");
    *out = NULL;
    if (spans) *spans = NULL;
    if (n_spans) *n_spans = 0;
    for (int i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content) return wk_err(WICK_EINVAL, "message %d: role and content are required", i);
    render r = {{0}, {0}, t, 0, 0};
    ct_kind k = 0;
    wick_status st = pick(t, template_name, &k, &r.always_gen, &r.today);
    if (!st) {
        if (k == CT_QWEN3) st = render_qwen3(&r, msgs, n, add_generation_prompt);
        else if (k == CT_LLAMA3) st = render_llama3(&r, msgs, n, add_generation_prompt);
        else if (k == CT_LLAMA31) st = render_llama31(&r, msgs, n, add_generation_prompt);
        else if (k == CT_MISTRAL) st = render_mistral(&r, msgs, n);
        else st = render_chatml(&r, k, msgs, n, add_generation_prompt);
    }
    if (!st) st = tk_buf_put(&r.out, "", 0);
    if (!st && spans && r.spans.len) {
        *spans = wk_malloc((size_t)r.spans.len * sizeof(size_t), "chat spans");
        if (!*spans) st = WICK_ENOMEM;
        for (int i = 0; !st && i < r.spans.len; i++) (*spans)[i] = (size_t)r.spans.p[i];
    }
    if (!st && n_spans) *n_spans = r.spans.len / 2;
    wk_free(r.spans.p);
    if (st) {
        tk_buf_free(&r.out);
        return st;
    }
    *out = r.out.p;
    return WICK_OK;
}
