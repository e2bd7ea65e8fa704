/*
 * admin.c — the non-generation endpoints of `wick serve`: GET /v1/models (base + loaded
 * adapters), POST /v1/adapters (load a directory under the adapter root: relative paths
 * only, no "..", and a realpath check against symlinks that leave the root), DELETE
 * /v1/adapters/NAME (refused while a request holds it), POST /v1/embeddings and the
 * Prometheus text of GET /metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "serve.h"
#include "wk.h"

#define MAX_LIST 1024

void admin_models(srv *s, srv_reply *r) {
    json_t *data = json_array();
    json_array_append_new(data, json_pack("{s:s,s:s,s:I,s:s,s:s}", "id", s->base_name, "object", "model", "created",
                                          (json_int_t)s->created, "owned_by", "wick", "root", s->o.model_dir));
    char(*names)[72] = calloc(MAX_LIST, sizeof *names);
    int n = names ? srv_adapter_names(s, names, MAX_LIST) : 0; /* copies: an unload in parallel may remove one */
    for (int i = 0; i < n; i++)
        json_array_append_new(data, json_pack("{s:s,s:s,s:I,s:s,s:s}", "id", names[i], "object", "model", "created",
                                              (json_int_t)s->created, "owned_by", "wick", "parent", s->base_name));
    free(names);
    srv_json(r, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

static int name_ok(const char *n) {
    size_t l = strlen(n);
    if (!l || l > 64) return 0;
    for (size_t i = 0; i < l; i++)
        if (!(n[i] == '-' || n[i] == '_' || n[i] == '.' || (n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'z') ||
              (n[i] >= 'A' && n[i] <= 'Z')))
            return 0;
    return strcmp(n, ".") && strcmp(n, "..");
}

/* Resolves rel under the root into out; 0 ok, else the reply is set. */
static int resolve_under_root(srv *s, const char *rel, char *out, srv_reply *r) {
    if (!rel[0] || rel[0] == '/' || strstr(rel, "..")) {
        srv_error(r, 400, "invalid_request_error", "path", "invalid_path",
                  "'path' must be relative to the adapter root, without '..'");
        return 1;
    }
    char joined[PATH_MAX * 2];
    snprintf(joined, sizeof joined, "%s/%s", s->root_real, rel);
    if (!realpath(joined, out)) {
        srv_error(r, 404, "invalid_request_error", "path", "not_found", "adapter directory '%s' does not exist", rel);
        return 1;
    }
    size_t rl = strlen(s->root_real);
    if (strncmp(out, s->root_real, rl) || out[rl] != '/') {
        srv_error(r, 400, "invalid_request_error", "path", "invalid_path", "'%s' leaves the adapter root", rel);
        return 1;
    }
    return 0;
}

void admin_adapter_load(srv *s, const char *body, size_t len, srv_reply *r) {
    json_t *req = json_loadb(body ? body : "", len, 0, NULL);
    json_t *name = json_object_get(req, "name"), *path = json_object_get(req, "path");
    char real[PATH_MAX];
    if (!json_is_object(req) || !json_is_string(name) || !json_is_string(path))
        srv_error(r, 400, "invalid_request_error", NULL, "invalid_value", "the body must be {\"name\": ..., \"path\": ...}");
    else if (!s->root_real[0])
        srv_error(r, 403, "invalid_request_error", NULL, "adapters_disabled", "start the server with --adapter-root DIR");
    else if (!name_ok(json_string_value(name)) || !strcmp(json_string_value(name), s->base_name))
        srv_error(r, 400, "invalid_request_error", "name", "invalid_value",
                  "'name' must be 1-64 characters of [A-Za-z0-9._-] and not the base model's name");
    else if (!resolve_under_root(s, json_string_value(path), real, r)) {
        int ret = srv_adapter_add(s, json_string_value(name), real, -1);
        if (ret == SRV_EXISTS)
            srv_error(r, 409, "invalid_request_error", "name", "already_exists", "adapter '%s' is already loaded",
                      json_string_value(name));
        else if (ret)
            srv_error(r, 400, "invalid_request_error", "path", "load_failed", "%s", wick_last_error());
        else
            srv_json(r, json_pack("{s:s,s:s,s:s}", "id", json_string_value(name), "object", "model", "parent", s->base_name));
    }
    json_decref(req);
}

void admin_adapter_unload(srv *s, const char *name, srv_reply *r) {
    int st = srv_adapter_remove(s, name);
    if (st == SRV_IN_USE)
        srv_error(r, 409, "invalid_request_error", "name", "adapter_in_use", "adapter '%s' is in use by a request; retry",
                  name);
    else if (st)
        srv_error(r, 404, "invalid_request_error", "name", "model_not_found", "no adapter named '%s'", name);
    else
        srv_json(r, json_pack("{s:s,s:s,s:b}", "id", name, "object", "model", "deleted", 1));
}

/* input[i] (a string, or token ids) -> *ids; 0 ok. Strings are tokenized with [CLS] ... [SEP]. */
static int embed_input(srv *s, json_t *e, int32_t **ids, int *n) {
    if (json_is_string(e))
        return wick_encoder_tokenize(s->enc, json_string_value(e), json_string_length(e), ids, n) != WICK_OK;
    wick_encoder_info ei;
    wick_encoder_get_info(s->enc, &ei);
    *n = (int)json_array_size(e);
    if (!json_is_array(e) || *n < 1) return 1;
    *ids = wk_malloc(sizeof(int32_t) * (size_t)*n, "embedding ids");
    for (int k = 0; k < *n; k++) {
        json_t *v = json_array_get(e, (size_t)k);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= ei.vocab_size) return 1;
        (*ids)[k] = (int32_t)json_integer_value(v);
    }
    return 0;
}

static json_t *embed_reply(json_t *req, const float *v, int n, int H, long ntok) {
    json_t *data = json_array();
    for (int i = 0; i < n; i++) {
        json_t *e = json_array();
        for (int k = 0; k < H; k++) json_array_append_new(e, json_real(v[(size_t)i * (size_t)H + (size_t)k]));
        json_array_append_new(data, json_pack("{s:s,s:i,s:o}", "object", "embedding", "index", i, "embedding", e));
    }
    json_t *m = json_object_get(req, "model");
    return json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model",
                     json_is_string(m) ? json_string_value(m) : "embed", "usage", "prompt_tokens", (json_int_t)ntok,
                     "total_tokens", (json_int_t)ntok);
}

void admin_embeddings(srv *s, const char *body, size_t len, srv_reply *r) {
    if (!s->enc) {
        srv_error(r, 404, "invalid_request_error", NULL, "not_found", "no embedding model (start with --embed-model DIR)");
        return;
    }
    json_t *req = json_loadb(body ? body : "", len, 0, NULL), *in = json_object_get(req, "input");
    /* a string, [strings], [ids] or [[ids]] */
    int one = json_is_string(in) || (json_is_array(in) && json_is_integer(json_array_get(in, 0)));
    int n = one ? 1 : json_is_array(in) ? (int)json_array_size(in) : 0, bad = !json_is_object(req) || n < 1 || n > 256;
    int32_t **seqs = calloc((size_t)n + 1, sizeof *seqs);
    int *lens = calloc((size_t)n + 1, sizeof *lens);
    long ntok = 0;
    pthread_mutex_lock(&s->enc_mu);
    for (int i = 0; i < n && !bad; i++) bad = embed_input(s, one ? in : json_array_get(in, (size_t)i), &seqs[i], &lens[i]);
    wick_encoder_info ei;
    wick_encoder_get_info(s->enc, &ei);
    float *v = bad ? NULL : malloc(sizeof(float) * (size_t)n * (size_t)ei.hidden_size);
    wick_status st = bad ? WICK_EINVAL : wick_embed_ids(s->enc, (const int32_t *const *)seqs, lens, n, NULL, v);
    pthread_mutex_unlock(&s->enc_mu);
    for (int i = 0; i < n; i++) ntok += lens[i];
    if (bad)
        srv_error(r, 400, "invalid_request_error", "input", "invalid_value",
                  "'input' must be a string, 1-256 strings, or token ids in the encoder's vocabulary");
    else if (st) srv_error(r, 500, "server_error", NULL, "embedding_failed", "%s", wick_last_error());
    else srv_json(r, embed_reply(req, v, n, ei.hidden_size, ntok));
    for (int i = 0; i < n; i++) wick_free(seqs[i]);
    free(seqs), free(lens), free(v);
    json_decref(req);
}

void admin_metrics(srv *s, srv_reply *r) {
    static const char *le[SRV_LAT_BUCKETS] = {"0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"};
    size_t cap = 4096, o = 0;
    char *b = malloc(cap);
    pthread_mutex_lock(&s->mu);
    int busy = 0;
    for (int i = 0; i < s->n_sess; i++) busy += s->busy[i];
    o += (size_t)snprintf(b + o, cap - o,
                          "# HELP wick_requests_total HTTP requests received.\n# TYPE wick_requests_total counter\n"
                          "wick_requests_total %llu\n"
                          "# HELP wick_request_errors_total Requests answered with a 4xx/5xx status.\n"
                          "# TYPE wick_request_errors_total counter\nwick_request_errors_total %llu\n"
                          "# HELP wick_requests_cancelled_total Generations cancelled by a client disconnect or shutdown.\n"
                          "# TYPE wick_requests_cancelled_total counter\nwick_requests_cancelled_total %llu\n"
                          "# TYPE wick_prompt_tokens_total counter\nwick_prompt_tokens_total %llu\n"
                          "# TYPE wick_generation_tokens_total counter\nwick_generation_tokens_total %llu\n"
                          "# HELP wick_queue_length Requests waiting for a session.\n# TYPE wick_queue_length gauge\n"
                          "wick_queue_length %d\n# TYPE wick_sessions_busy gauge\nwick_sessions_busy %d\n"
                          "# TYPE wick_sessions_total gauge\nwick_sessions_total %d\n"
                          "# HELP wick_request_latency_seconds Generation request latency.\n"
                          "# TYPE wick_request_latency_seconds histogram\n",
                          (unsigned long long)s->req_total, (unsigned long long)s->req_errors,
                          (unsigned long long)s->req_cancelled, (unsigned long long)s->prompt_tokens,
                          (unsigned long long)s->gen_tokens, s->waiting, busy, s->n_sess);
    for (int i = 0; i < SRV_LAT_BUCKETS; i++)
        o += (size_t)snprintf(b + o, cap - o, "wick_request_latency_seconds_bucket{le=\"%s\"} %llu\n", le[i],
                              (unsigned long long)s->lat_bucket[i]);
    o += (size_t)snprintf(b + o, cap - o,
                          "wick_request_latency_seconds_bucket{le=\"+Inf\"} %llu\nwick_request_latency_seconds_sum %.6f\n"
                          "wick_request_latency_seconds_count %llu\n# HELP wick_adapters_loaded Adapters served.\n"
                          "# TYPE wick_adapters_loaded gauge\nwick_adapters_loaded %d\n"
                          "# TYPE wick_replicas gauge\nwick_replicas %d\n",
                          (unsigned long long)s->lat_count, s->lat_sum, (unsigned long long)s->lat_count, s->n_cat,
                          s->n_rep);
    uint64_t steps = 0, rows = 0, chunks = 0;
    for (int k = 0; k < s->n_rep; k++)
        steps += s->rep[k].decode_steps, rows += s->rep[k].decode_rows, chunks += s->rep[k].prefill_chunks;
    o += (size_t)snprintf(b + o, cap - o,
                          "# HELP wick_decode_steps_total Batched decode steps (one forward each).\n"
                          "# TYPE wick_decode_steps_total counter\nwick_decode_steps_total %llu\n"
                          "# HELP wick_decode_rows_total Sequences advanced by the decode steps (rows / steps = mean batch).\n"
                          "# TYPE wick_decode_rows_total counter\nwick_decode_rows_total %llu\n"
                          "# HELP wick_prefill_chunks_total Prompt chunks run between decode steps.\n"
                          "# TYPE wick_prefill_chunks_total counter\nwick_prefill_chunks_total %llu\n",
                          (unsigned long long)steps, (unsigned long long)rows, (unsigned long long)chunks);
    static const char *per[][2] = {
        {"wick_replica_sessions_busy", "gauge"}, {"wick_replica_adapters", "gauge"},
        {"wick_replica_decode_rows_total", "counter"}, {"wick_replica_adapter_copies_total", "counter"}};
    for (int m = 0; m < 4; m++) {
        size_t need = o + 256 + 192 * (size_t)s->n_rep; /* a line: name, replica, device (< 32), value */
        if (need > cap) {
            char *nb = realloc(b, need * 2);
            if (!nb) break;
            b = nb, cap = need * 2;
        }
        o += (size_t)snprintf(b + o, cap - o, "# TYPE %s %s\n", per[m][0], per[m][1]);
        for (int k = 0; k < s->n_rep; k++) {
            const srv_rep *rp = &s->rep[k];
            unsigned long long v = m == 0 ? (unsigned long long)srv_rep_busy(s, rp) : m == 1 ? (unsigned long long)srv_rep_adapters(s, k)
                                   : m == 2 ? (unsigned long long)rp->decode_rows : (unsigned long long)rp->adapter_loads;
            o += (size_t)snprintf(b + o, cap - o, "%s{replica=\"%d\",device=\"%s\"} %llu\n", per[m][0], k, rp->device, v);
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(r->body);
    r->body = b, r->status = 200, r->content_type = "text/plain; version=0.0.4";
}
