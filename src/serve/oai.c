/*
 * oai.c — POST /v1/completions and /v1/chat/completions with OpenAI semantics: request
 * parsing and validation (sampling options, max_tokens, stop, seed, logprobs), a job that
 * holds a slot of the scheduler (sched.c: its session's forward steps are batched with
 * the other requests') and the request's adapter, and the two ways of answering: one
 * JSON object, or Server-Sent Events chunks ending with "data: [DONE]" (pulled token by
 * token by the HTTP layer, so a client that goes away stops its generation).
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "infer/infer.h"
#include "serve.h"
#include "wk.h"

typedef struct job {
    srv *s;
    int slot, chat, stream, top_n, want_lp;
    wick_adapter *ad;             /* held on the slot's replica */
    wick_gen *gen;
    char id[48], model[256];
    char *stops[4];
    int n_stop, n_prompt, n_gen, finished, sent_role, sent_done;
    wick_stop_reason stop;
    double t0;
    /* non-stream accumulation */
    char *text;
    size_t text_len, text_cap;
    json_t *lp;                 /* completions: {tokens,...}; chat: [content entries] */
    json_t *ids;                /* vLLM's return_token_ids: the generated ids (NULL = not asked) */
    size_t text_off;
    /* stream output buffer */
    char *out;
    size_t out_len, out_off;
} job;

static json_t *jget(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_null(v) ? NULL : v;
}

static const char *finish_str(wick_stop_reason r) {
    return (r == WICK_STOP_MAX_TOKENS || r == WICK_STOP_CONTEXT) ? "length" : "stop";
}

/* Reads an optional number field into *out within [lo, hi]; 0 ok, 1 error (reply set). */
static int num_field(json_t *req, const char *k, double lo, double hi, double *out, srv_reply *r) {
    json_t *v = jget(req, k);
    if (!v) return 0;
    if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi || isnan(json_number_value(v))) {
        srv_error(r, 400, "invalid_request_error", k, "invalid_value", "'%s' must be a number in [%g, %g]", k, lo, hi);
        return 1;
    }
    *out = json_number_value(v);
    return 0;
}

/* The text of one token for logprobs (raw bytes, as OpenAI's "bytes"). */
static char *tok_text(srv *s, int32_t id, size_t *len) {
    char *t = NULL;
    *len = 0;
    if (!s->tok || wick_detokenize(s->tok, &id, 1, 0, &t, len)) return NULL;
    return t;
}

static json_t *bytes_arr(const char *p, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer((unsigned char)p[i]));
    return a;
}

/* One token's logprobs entry: chat {token,logprob,bytes,top_logprobs:[..]} or a completions dict row. */
static json_t *chat_lp_entry(srv *s, int32_t id, float lp, const wick_top_logprob *top, int n_top) {
    size_t n;
    char *t = tok_text(s, id, &n);
    json_t *e = json_pack("{s:o,s:f,s:o}", "token", srv_jstr(t ? t : "", n), "logprob", (double)lp, "bytes",
                          bytes_arr(t ? t : "", n));
    wick_free(t);
    json_t *arr = json_array();
    for (int i = 0; i < n_top; i++) {
        char *u = tok_text(s, top[i].id, &n);
        json_array_append_new(arr, json_pack("{s:o,s:f,s:o}", "token", srv_jstr(u ? u : "", n), "logprob",
                                             (double)top[i].logprob, "bytes", bytes_arr(u ? u : "", n)));
        wick_free(u);
    }
    json_object_set_new(e, "top_logprobs", arr);
    return e;
}

static json_t *cmpl_lp_new(void) {
    return json_pack("{s:[],s:[],s:[],s:[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
}

static void cmpl_lp_add(srv *s, json_t *lp, const wick_token *t, size_t *off) {
    size_t n;
    char *u = tok_text(s, t->id, &n);
    json_t *tt = srv_jstr(u ? u : "", n);
    json_array_append_new(json_object_get(lp, "token_logprobs"), json_real(t->logprob));
    json_array_append_new(json_object_get(lp, "text_offset"), json_integer((json_int_t)*off));
    for (const char *c = json_string_value(tt); *c; c++) *off += ((unsigned char)*c & 0xC0) != 0x80; /* characters */
    json_array_append_new(json_object_get(lp, "tokens"), tt);
    wick_free(u);
    json_t *d = json_object();
    for (int i = 0; i < t->n_top; i++) {
        char *v = tok_text(s, t->top[i].id, &n);
        json_t *k = srv_jstr(v ? v : "", n);
        json_object_set_new(d, json_string_value(k), json_real(t->top[i].logprob));
        json_decref(k);
        wick_free(v);
    }
    json_array_append_new(json_object_get(lp, "top_logprobs"), d);
}

/* Parses the sampling and length options of req into o; 0 ok. */
static int parse_opts(srv *s, job *j, json_t *req, wick_gen_opts *o, srv_reply *r) {
    *o = wick_gen_opts_default();
    double temp = 1, top_p = 1, top_k = 0, min_p = 0, pres = 0, freq = 0, rep = 1;
    double mt = j->chat ? s->o.max_tokens : 16, seed = -1, lpn = 0;
    if (num_field(req, "temperature", 0, 2, &temp, r) || num_field(req, "top_p", 0, 1, &top_p, r) ||
        num_field(req, "top_k", -1, 1e9, &top_k, r) || num_field(req, "min_p", 0, 1, &min_p, r) ||
        num_field(req, "presence_penalty", -2, 2, &pres, r) || num_field(req, "frequency_penalty", -2, 2, &freq, r) ||
        num_field(req, "repetition_penalty", 1e-3, 100, &rep, r) || num_field(req, "seed", -1e18, 1e18, &seed, r) ||
        num_field(req, "max_tokens", 1, 1e9, &mt, r) || num_field(req, "max_completion_tokens", 1, 1e9, &mt, r))
        return 1;
    if (mt > s->o.max_tokens) {
        srv_error(r, 400, "invalid_request_error", "max_tokens", "invalid_value",
                  "max_tokens %.0f exceeds this server's limit of %d", mt, s->o.max_tokens);
        return 1;
    }
    json_t *n = jget(req, "n");
    if (n && (!json_is_integer(n) || json_integer_value(n) != 1)) {
        srv_error(r, 400, "invalid_request_error", "n", "unsupported", "only n = 1 is supported");
        return 1;
    }
    if (j->chat) {
        json_t *lp = jget(req, "logprobs");
        if (lp && !json_is_boolean(lp)) {
            srv_error(r, 400, "invalid_request_error", "logprobs", "invalid_value", "'logprobs' must be a boolean");
            return 1;
        }
        j->want_lp = lp && json_is_true(lp);
        if (num_field(req, "top_logprobs", 0, WICK_MAX_TOP_LOGPROBS, &lpn, r)) return 1;
    } else {
        if (num_field(req, "logprobs", 0, WICK_MAX_TOP_LOGPROBS, &lpn, r)) return 1;
        j->want_lp = jget(req, "logprobs") != NULL;
    }
    j->top_n = j->want_lp ? (int)lpn : 0;
    json_t *st = jget(req, "stop");
    if (st) {
        json_t *one = json_is_string(st) ? st : NULL;
        size_t cnt = one ? 1 : json_is_array(st) ? json_array_size(st) : 99;
        if (cnt > 4) {
            srv_error(r, 400, "invalid_request_error", "stop", "invalid_value", "'stop' must be a string or up to 4 strings");
            return 1;
        }
        for (size_t i = 0; i < cnt; i++) {
            json_t *e = one ? one : json_array_get(st, i);
            if (!json_is_string(e) || !json_string_length(e)) {
                srv_error(r, 400, "invalid_request_error", "stop", "invalid_value", "stop strings must be non-empty strings");
                return 1;
            }
            j->stops[j->n_stop++] = strdup(json_string_value(e));
        }
    }
    o->sampling.temperature = (float)temp;
    o->sampling.top_p = (float)top_p;
    o->sampling.top_k = top_k < 0 ? 0 : (int)top_k;
    o->sampling.min_p = (float)min_p;
    o->sampling.presence_penalty = (float)pres;
    o->sampling.frequency_penalty = (float)freq;
    o->sampling.repetition_penalty = (float)rep;
    o->sampling.seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL) * 2654435761u + s->id_seq;
    o->max_tokens = (int)mt;
    o->ignore_eos = json_is_true(jget(req, "ignore_eos"));
    o->stop = (const char *const *)j->stops;
    o->n_stop = j->n_stop;
    o->top_logprobs = j->top_n;
    o->max_context = s->context;
    return 0;
}

void oai_job_free(job *j) {
    if (!j) return;
    srv *s = j->s;
    int cancelled = (j->gen && !j->finished) || j->stop == WICK_STOP_CANCELLED;
    if (j->gen) wick_gen_free(j->gen);
    if (j->ad) { /* the last reference of an unloaded adapter frees its device copy */
        srv_rep *rep = srv_rep_of(s, j->slot);
        srv_dev_lock(rep);
        wick_registry_release(rep->reg, j->ad);
        srv_dev_unlock(rep);
    }
    if (j->slot >= 0) {
        srv_record(s, wk_now() - j->t0, j->n_prompt, j->n_gen, 0, cancelled);
        srv_release_slot(s, j->slot);
    }
    for (int i = 0; i < j->n_stop; i++) free(j->stops[i]);
    free(j->text);
    free(j->out);
    json_decref(j->lp);
    json_decref(j->ids);
    free(j);
}

/* Chat messages -> wick_chat_message array (content strings or text parts joined). */
static int parse_messages(json_t *msgs, wick_chat_message **out, char ***bufs, int *n, srv_reply *r) {
    if (!json_is_array(msgs) || !json_array_size(msgs)) {
        srv_error(r, 400, "invalid_request_error", "messages", "invalid_value", "'messages' must be a non-empty array");
        return 1;
    }
    *n = (int)json_array_size(msgs);
    *out = calloc((size_t)*n, sizeof **out);
    *bufs = calloc((size_t)*n, sizeof **bufs);
    for (int i = 0; i < *n; i++) {
        json_t *m = json_array_get(msgs, (size_t)i), *role = json_object_get(m, "role"), *c = json_object_get(m, "content");
        if (!json_is_string(role) || !(json_is_string(c) || json_is_array(c) || json_is_null(c))) {
            srv_error(r, 400, "invalid_request_error", "messages", "invalid_value",
                      "messages[%d] needs a string 'role' and a string or parts 'content'", i);
            return 1;
        }
        size_t cap = 1, len = 0;
        char *b = calloc(1, 1);
        for (size_t k = 0; json_is_array(c) && k < json_array_size(c); k++) {
            json_t *t = json_object_get(json_array_get(c, k), "text");
            if (!json_is_string(t)) continue;
            size_t tl = json_string_length(t);
            if (len + tl + 1 > cap) b = realloc(b, cap = (len + tl + 1) * 2);
            memcpy(b + len, json_string_value(t), tl), len += tl, b[len] = 0;
        }
        (*bufs)[i] = b;
        (*out)[i].role = json_string_value(role);
        (*out)[i].content = json_is_string(c) ? json_string_value(c) : b;
    }
    return 0;
}

/* Tokenizes the prompt (for its length and, for completions, the generation itself). */
static int prompt_ids(srv *s, job *j, json_t *req, int32_t **ids, int *n, srv_reply *r) {
    const char *field = j->chat ? "messages" : "prompt";
    char *text = NULL;
    json_t *p = json_object_get(req, field);
    if (!j->chat && json_is_array(p) && json_array_size(p) && json_is_integer(json_array_get(p, 0))) {
        *n = (int)json_array_size(p);
        *ids = wk_malloc(sizeof(int32_t) * (size_t)*n, "prompt ids");
        for (int i = 0; i < *n; i++) {
            json_t *v = json_array_get(p, (size_t)i);
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= s->vocab) {
                srv_error(r, 400, "invalid_request_error", "prompt", "invalid_value",
                          "prompt[%d] is not a token id in [0, %d)", i, s->vocab);
                return 1;
            }
            (*ids)[i] = (int32_t)json_integer_value(v);
        }
        return 0;
    }
    if (!s->tok) {
        srv_error(r, 400, "invalid_request_error", field, "no_tokenizer",
                  "the model has no tokenizer.json: give 'prompt' as an array of token ids");
        return 1;
    }
    if (j->chat) {
        wick_chat_message *m = NULL;
        char **bufs = NULL;
        int nm = 0, bad = parse_messages(p, &m, &bufs, &nm, r);
        if (!bad && wick_chat_render(s->tok, m, nm, 1, NULL, &text, NULL, NULL)) {
            srv_error(r, 400, "invalid_request_error", "messages", "invalid_value", "chat template: %s", wick_last_error());
            bad = 1;
        }
        for (int i = 0; i < nm; i++) free(bufs[i]);
        free(bufs), free(m);
        if (bad) return 1;
    } else if (!json_is_string(p)) {
        srv_error(r, 400, "invalid_request_error", "prompt", "invalid_value",
                  "'prompt' must be a string or an array of token ids");
        return 1;
    }
    const char *t = text ? text : json_string_value(p);
    wick_status st = wick_tokenize(s->tok, t, strlen(t), j->chat ? 0 : WICK_TOK_ADD_SPECIAL, ids, n);
    wick_free(text);
    if (st) srv_error(r, 400, "invalid_request_error", field, "invalid_value", "tokenizing: %s", wick_last_error());
    return st ? 1 : 0;
}

/* Validates req, takes a session and the adapter, and starts the generation; NULL + reply on error. */
static job *job_start(srv *s, json_t *req, int chat, srv_reply *r) {
    job *j = calloc(1, sizeof *j);
    j->s = s, j->slot = -1, j->chat = chat, j->t0 = wk_now();
    json_t *model = json_object_get(req, "model"), *stream = jget(req, "stream");
    if (!json_is_string(model)) {
        srv_error(r, 400, "invalid_request_error", "model", "invalid_value", "'model' (a string) is required");
        return oai_job_free(j), NULL;
    }
    snprintf(j->model, sizeof j->model, "%s", json_string_value(model));
    j->stream = stream && json_is_true(stream);
    wick_gen_opts o;
    int32_t *ids = NULL;
    int n = 0;
    if (parse_opts(s, j, req, &o, r) || prompt_ids(s, j, req, &ids, &n, r)) return wick_free(ids), oai_job_free(j), NULL;
    if (n < 1 || n > s->max_prompt) {
        srv_error(r, 400, "invalid_request_error", chat ? "messages" : "prompt", "context_length_exceeded",
                  "the prompt has %d tokens; this server accepts 1 to %d", n, s->max_prompt);
        return wick_free(ids), oai_job_free(j), NULL;
    }
    j->n_prompt = n;
    int base = !strcmp(j->model, s->base_name), why = SRV_OK;
    if (!base && !srv_adapter_known(s, j->model)) {
        srv_error(r, 404, "invalid_request_error", "model", "model_not_found", "the model '%s' does not exist", j->model);
        return wick_free(ids), oai_job_free(j), NULL;
    }
    if ((j->slot = srv_acquire_slot(s, base ? NULL : j->model)) < 0) {
        srv_error(r, s->stopping ? 503 : 429, "server_error", NULL, s->stopping ? "shutting_down" : "queue_full",
                  s->stopping ? "the server is shutting down" : "too many requests are waiting (queue limit %d)",
                  s->o.max_queue);
        return wick_free(ids), oai_job_free(j), NULL;
    }
    srv_rep *rep = srv_rep_of(s, j->slot);
    if (!base && !(j->ad = srv_adapter_acquire(s, rep, j->model, &why))) { /* unloaded meanwhile, or the copy failed */
        if (why == SRV_NOT_FOUND)
            srv_error(r, 404, "invalid_request_error", "model", "model_not_found", "the model '%s' does not exist", j->model);
        else
            srv_error(r, 500, "server_error", "model", "adapter_load_failed", "loading adapter '%s' on %s: %s", j->model,
                      rep->device, wick_last_error());
        srv_release_slot(s, j->slot);
        j->slot = -1;
        return wick_free(ids), oai_job_free(j), NULL;
    }
    /* the slot's session is idle (the scheduler runs it only on a pending step): set it up here */
    wick_session *ss = s->sess[j->slot];
    srv_dev_lock(rep); /* the adapter's device copy may be uploaded here */
    wick_session_reset(ss);
    wick_status st = wick_session_set_adapter(ss, j->ad, 1.0f);
    srv_dev_unlock(rep);
    if (!st) {
        /* chat: the template's end of turn also stops (prompt_ids rendered and tokenized it) */
        const char *eot = chat ? wick_tokenizer_eos(s->tok) : NULL;
        int32_t extra = eot ? wick_tokenizer_find(s->tok, eot) : -1;
        st = wk_gen_start_via(rep->model, ss, ids, n, &o, extra, sched_eval, &s->seq[j->slot], &j->gen);
    }
    wick_free(ids);
    if (st) {
        srv_error(r, 500, "server_error", NULL, "generation_failed", "starting the generation: %s", wick_last_error());
        return oai_job_free(j), NULL;
    }
    __atomic_fetch_add(&s->id_seq, 1, __ATOMIC_RELAXED);
    snprintf(j->id, sizeof j->id, "%s-%lx%llx", chat ? "chatcmpl" : "cmpl", (long)time(NULL),
             (unsigned long long)s->id_seq);
    if (j->want_lp) j->lp = chat ? json_array() : cmpl_lp_new();
    if (json_is_true(json_object_get(req, "return_token_ids"))) j->ids = json_array();
    return j;
}

/* Advances the generation one token; 1 = got *t, 0 = finished. */
static int job_step(job *j, wick_token *t) {
    int done = 0;
    if (j->finished) return 0;
    if (j->s->stopping) wick_gen_cancel(j->gen);
    wick_status st = wick_gen_next(j->gen, t, &done);
    if (st || done) {
        wick_gen_stats gs;
        wick_gen_get_stats(j->gen, &gs);
        j->stop = st ? WICK_STOP_ERROR : gs.stop;
        if (gs.n_prompt > 0) j->n_prompt = gs.n_prompt; /* as the generation tokenized it (chat template) */
        j->finished = 1;
        sched_seq_end(j->s, j->slot);
        return 0;
    }
    j->n_gen++;
    if (j->ids) json_array_append_new(j->ids, json_integer(t->id));
    return 1;
}

static json_t *usage(job *j) {
    return json_pack("{s:i,s:i,s:i}", "prompt_tokens", j->n_prompt, "completion_tokens", j->n_gen, "total_tokens",
                     j->n_prompt + j->n_gen);
}

/* True when the client closed its end of the connection (checked without blocking). */
static int client_gone(int fd) {
    struct pollfd p = {fd, POLLRDHUP, 0};
    return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static void run_to_end(job *j, int fd) {
    wick_token t;
    while (job_step(j, &t)) {
        if (t.index % 8 == 7 && client_gone(fd)) wick_gen_cancel(j->gen); /* a disconnect cancels */
        if (j->text_len + t.piece_len + 1 > j->text_cap)
            j->text = realloc(j->text, j->text_cap = (j->text_len + t.piece_len + 1) * 2);
        memcpy(j->text + j->text_len, t.piece, t.piece_len);
        j->text_len += t.piece_len;
        j->text[j->text_len] = 0;
        if (j->lp && j->chat) json_array_append_new(j->lp, chat_lp_entry(j->s, t.id, t.logprob, t.top, t.n_top));
        else if (j->lp) cmpl_lp_add(j->s, j->lp, &t, &j->text_off);
    }
}

static json_t *full_response(job *j) {
    json_t *txt = srv_jstr(j->text ? j->text : "", j->text_len);
    json_t *lp = j->lp ? (j->chat ? json_pack("{s:O}", "content", j->lp) : json_incref(j->lp)) : json_null();
    json_t *choice = j->chat ? json_pack("{s:i,s:{s:s,s:o},s:o,s:s}", "index", 0, "message", "role", "assistant",
                                         "content", txt, "logprobs", lp, "finish_reason", finish_str(j->stop))
                             : json_pack("{s:i,s:o,s:o,s:s}", "index", 0, "text", txt, "logprobs", lp,
                                         "finish_reason", finish_str(j->stop));
    if (j->ids) json_object_set(choice, "token_ids", j->ids);
    return json_pack("{s:s,s:s,s:I,s:s,s:[o],s:o}", "id", j->id, "object", j->chat ? "chat.completion" : "text_completion",
                     "created", (json_int_t)time(NULL), "model", j->model, "choices", choice, "usage", usage(j));
}

void oai_completions(srv *s, const char *body, size_t len, int chat, srv_reply *r) {
    json_error_t e;
    json_t *req = json_loadb(body ? body : "", len, 0, &e);
    if (!json_is_object(req)) {
        srv_error(r, 400, "invalid_request_error", NULL, "invalid_json",
                  req ? "the body must be a JSON object" : "malformed JSON at line %d column %d: %s", e.line, e.column,
                  e.text);
        json_decref(req);
        return;
    }
    job *j = job_start(s, req, chat, r);
    json_decref(req);
    if (!j) return;
    if (j->stream) {
        r->status = 200, r->stream = j, r->content_type = "text/event-stream";
        return;
    }
    run_to_end(j, r->client_fd);
    if (j->stop == WICK_STOP_ERROR) srv_error(r, 500, "server_error", NULL, "generation_failed", "%s", wick_last_error());
    else srv_json(r, full_response(j));
    oai_job_free(j);
}

/* Appends "data: <json>\n\n" to the job's output buffer (consumes c). */
static void emit(job *j, json_t *c) {
    char *t = c ? json_dumps(c, JSON_COMPACT) : strdup("[DONE]");
    json_decref(c);
    size_t n = strlen(t) + 8;
    if (j->out_len + n + 1 > (size_t)-1 / 2) return free(t);
    j->out = realloc(j->out, j->out_len + n + 1);
    j->out_len += (size_t)sprintf(j->out + j->out_len, "data: %s\n\n", t);
    free(t);
}

static json_t *chunk(job *j, json_t *choice) {
    return json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", j->id, "object",
                     j->chat ? "chat.completion.chunk" : "text_completion", "created", (json_int_t)time(NULL), "model",
                     j->model, "choices", choice);
}

/* Produces the next SSE events into j->out. */
static void stream_fill(job *j) {
    wick_token t;
    if (j->chat && !j->sent_role) {
        j->sent_role = 1;
        emit(j, chunk(j, json_pack("{s:i,s:{s:s,s:s},s:n,s:n}", "index", 0, "delta", "role", "assistant", "content", "",
                                   "logprobs", "finish_reason")));
        return;
    }
    if (job_step(j, &t)) {
        json_t *lp = json_null();
        if (j->lp && j->chat) lp = json_pack("{s:[o]}", "content", chat_lp_entry(j->s, t.id, t.logprob, t.top, t.n_top));
        else if (j->lp) cmpl_lp_add(j->s, lp = cmpl_lp_new(), &t, &j->text_off);
        json_t *txt = srv_jstr(t.piece, t.piece_len);
        json_t *c = j->chat ? json_pack("{s:i,s:{s:o},s:o,s:n}", "index", 0, "delta", "content", txt, "logprobs", lp,
                                        "finish_reason")
                            : json_pack("{s:i,s:o,s:o,s:n}", "index", 0, "text", txt, "logprobs", lp, "finish_reason");
        if (j->ids) json_object_set_new(c, "token_ids", json_pack("[i]", (int)t.id));
        emit(j, chunk(j, c));
        return;
    }
    if (j->sent_done) return;
    j->sent_done = 1;
    if (j->stop == WICK_STOP_ERROR) {
        emit(j, json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", wick_last_error(), "type", "server_error", "param",
                          "code", "generation_failed"));
    } else {
        json_t *c = chunk(j, j->chat ? json_pack("{s:i,s:{},s:n,s:s}", "index", 0, "delta", "logprobs", "finish_reason",
                                                 finish_str(j->stop))
                                     : json_pack("{s:i,s:s,s:n,s:s}", "index", 0, "text", "", "logprobs",
                                                 "finish_reason", finish_str(j->stop)));
        json_object_set_new(c, "usage", usage(j));
        emit(j, c);
    }
    emit(j, NULL);
}

long oai_stream_read(job *j, char *buf, size_t max) {
    while (j->out_off == j->out_len) {
        if (j->sent_done) return -1;
        j->out_len = j->out_off = 0;
        stream_fill(j);
    }
    size_t n = j->out_len - j->out_off;
    if (n > max) n = max;
    memcpy(buf, j->out + j->out_off, n);
    j->out_off += n;
    return (long)n;
}
