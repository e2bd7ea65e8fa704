/*
 * server.c — the HTTP layer of `wick serve` on libmicrohttpd (one thread per connection):
 * routing, API-key check, body collection with a size limit, JSON replies and SSE streams
 * (pulled token by token through MHD's content reader; a closed connection frees the job,
 * which cancels its generation and returns its session), the start-up of the replicas
 * (one model, registry and --parallel sessions each; one replica per GPU with --gpus N,
 * routing in replicas.c, forwards in sched.c) and the graceful shutdown of wick_serve_run.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "serve.h"
#include "wk.h"
#ifdef WICK_HAVE_MHD
#include <arpa/inet.h>
#include <microhttpd.h>
#endif

static volatile sig_atomic_t g_stop;

void wick_serve_stop(void) { g_stop = 1; }

wick_serve_opts wick_serve_opts_default(void) {
    wick_serve_opts o;
    memset(&o, 0, sizeof o);
    o.host = "127.0.0.1", o.port = 8000, o.parallel = 4, o.max_queue = 64, o.max_tokens = 2048;
    o.max_body = 1u << 20;
    o.device = "cpu";
    return o;
}

json_t *srv_jstr(const char *p, size_t len) {
    json_t *j = json_stringn(p, len);
    if (j) return j;
    char *b = malloc(len * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)p + i, (utf8proc_ssize_t)(len - i), &c);
        if (k > 0 && c != 0) memcpy(b + o, p + i, (size_t)k), o += (size_t)k, i += (size_t)k;
        else memcpy(b + o, "\xef\xbf\xbd", 3), o += 3, i++;
    }
    j = json_stringn(b, o);
    free(b);
    return j ? j : json_string("");
}

void srv_error(srv_reply *r, int status, const char *type, const char *param, const char *code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = json_pack("{s:{s:o,s:s,s:s?,s:s?}}", "error", "message", srv_jstr(msg, strlen(msg)), "type", type,
                          "param", param, "code", code);
    free(r->body);
    r->body = json_dumps(e, JSON_COMPACT);
    r->status = status;
    json_decref(e);
}

void srv_json(srv_reply *r, json_t *j) {
    free(r->body);
    r->body = json_dumps(j, JSON_COMPACT);
    r->status = 200;
    json_decref(j);
}

void srv_record(srv *s, double lat, int n_prompt, int n_gen, int error, int cancelled) {
    static const double le[SRV_LAT_BUCKETS] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    pthread_mutex_lock(&s->mu);
    s->req_errors += error != 0;
    s->req_cancelled += cancelled != 0;
    s->prompt_tokens += (uint64_t)n_prompt;
    s->gen_tokens += (uint64_t)n_gen;
    if (!error) {
        for (int i = 0; i < SRV_LAT_BUCKETS; i++) s->lat_bucket[i] += lat <= le[i];
        s->lat_count++, s->lat_sum += lat;
    }
    pthread_mutex_unlock(&s->mu);
}

#ifdef WICK_HAVE_MHD
typedef struct {
    char *body;
    size_t len, cap;
    int too_large;
} conn_ctx;

static enum MHD_Result send_reply(struct MHD_Connection *c, srv_reply *r) {
    const char *b = r->body ? r->body : "{}";
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(b), (void *)b, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, "Content-Type", r->content_type ? r->content_type : "application/json");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    free(r->body);
    r->body = NULL;
    return ret;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    long n = oai_stream_read(cls, buf, max);
    return n < 0 ? (ssize_t)MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

static void stream_free(void *cls) { oai_job_free(cls); }

static int auth_ok(srv *s, struct MHD_Connection *c, const char *url) {
    if (!s->o.api_key || strncmp(url, "/v1/", 4)) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    char want[512];
    snprintf(want, sizeof want, "Bearer %s", s->o.api_key);
    if (!h || strlen(h) != strlen(want)) return 0;
    unsigned char d = 0;
    for (size_t i = 0; want[i]; i++) d |= (unsigned char)(h[i] ^ want[i]);
    return d == 0;
}

static void route(srv *s, const char *method, const char *url, conn_ctx *cc, srv_reply *r) {
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (get && !strcmp(url, "/health")) {
        free(r->body), r->body = strdup(s->stopping ? "{\"status\":\"stopping\"}" : "{\"status\":\"ok\"}");
        r->status = s->stopping ? 503 : 200;
    } else if (get && !strcmp(url, "/metrics")) admin_metrics(s, r);
    else if (get && !strcmp(url, "/v1/models")) admin_models(s, r);
    else if (post && !strcmp(url, "/v1/completions")) oai_completions(s, cc->body, cc->len, 0, r);
    else if (post && !strcmp(url, "/v1/chat/completions")) oai_completions(s, cc->body, cc->len, 1, r);
    else if (post && !strcmp(url, "/v1/embeddings")) admin_embeddings(s, cc->body, cc->len, r);
    else if (post && !strcmp(url, "/v1/adapters")) admin_adapter_load(s, cc->body, cc->len, r);
    else if (!strcmp(method, "DELETE") && !strncmp(url, "/v1/adapters/", 13)) admin_adapter_unload(s, url + 13, r);
    else srv_error(r, 404, "invalid_request_error", NULL, "not_found", "no route for %s %s", method, url);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    srv *s = cls;
    srv_reply r = {0};
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    r.client_fd = ci ? (int)ci->connect_fd : -1;
    conn_ctx *cc = *con_cls;
    if (!cc) {
        *con_cls = cc = calloc(1, sizeof *cc);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->o.max_body) cc->too_large = 1;
        if (!cc->too_large) return MHD_YES;
    }
    if (*upload_size) {
        if (cc->len + *upload_size > s->o.max_body) cc->too_large = 1;
        if (!cc->too_large) {
            if (cc->len + *upload_size + 1 > cc->cap) cc->body = realloc(cc->body, cc->cap = (cc->len + *upload_size + 1) * 2);
            memcpy(cc->body + cc->len, upload, *upload_size);
            cc->len += *upload_size;
            cc->body[cc->len] = 0;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    /* the thread count is a per-thread OpenMP setting: connection threads take the server's */
#ifdef _OPENMP
    if (omp_get_max_threads() != s->o.threads) omp_set_num_threads(s->o.threads);
#endif
    pthread_mutex_lock(&s->mu);
    s->req_total++;
    pthread_mutex_unlock(&s->mu);
    if (cc->too_large)
        srv_error(&r, 413, "invalid_request_error", NULL, "body_too_large", "the request body exceeds %zu bytes",
                  s->o.max_body);
    else if (!auth_ok(s, c, url))
        srv_error(&r, 401, "invalid_request_error", NULL, "invalid_api_key", "missing or wrong API key (Authorization: Bearer)");
    else route(s, method, url, cc, &r);
    if (r.status >= 400) srv_record(s, 0, 0, 0, 1, 0);
    if (r.stream) {
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, r.stream,
                                                                      stream_free);
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    return send_reply(c, &r);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)c, (void)toe;
    conn_ctx *cc = *con_cls;
    if (cc) free(cc->body), free(cc);
    *con_cls = NULL;
}
#endif

static void base_name_of(const char *dir, char *out, size_t cap) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/') b--;
    snprintf(out, cap, "%.*s", (int)(n - b), dir + b);
}

/* Number of devices in o->device, a comma-separated list ("cuda:0,cuda:1"; `--gpus N`). */
static int n_devices(const wick_serve_opts *o) {
    int n = 1;
    for (const char *p = o->device ? o->device : "cpu"; *p; p++) n += *p == ',';
    return n;
}

/* The device of replica k: entry k % n of the device list. */
static wick_status rep_device(const wick_serve_opts *o, int k, char *out, size_t cap) {
    const char *d = o->device ? o->device : "cpu";
    for (int i = k % n_devices(o); i > 0; i--) d = strchr(d, ',') + 1;
    size_t len = strcspn(d, ",");
    if (len == 0 || len >= cap) return wk_err(WICK_EINVAL, "serve: device %d of '%s' is empty or too long", k, o->device);
    snprintf(out, cap, "%.*s", (int)len, d);
    return WICK_OK;
}

/* Loads replica k's model on its device and makes its registry. */
static wick_status rep_load(srv *s, int k) {
    srv_rep *r = &s->rep[k];
    r->s = s, r->idx = k, r->slot0 = k * s->o.parallel, r->n_slot = s->o.parallel;
    wick_status st = rep_device(&s->o, k, r->device, sizeof r->device);
    if (st) return st;
    wick_model_opts mo = wick_model_opts_default();
    mo.device = r->device;
    st = wick_model_load(s->o.model_dir, &mo, &r->model);
    if (st) return s->n_rep > 1 ? wk_err_prefix(st, "replica %d (%s): ", k, r->device) : st;
    return wick_registry_new(r->model, &r->reg);
}

/* The --parallel sessions of replica k (after s->context is known). */
static wick_status rep_sessions(srv *s, int k) {
    srv_rep *r = &s->rep[k];
    wick_session_opts so = {.max_seq = s->context, .chunk = 512}; /* prompts go in 64-id chunks: keep scratch small */
    wick_status st = WICK_OK;
    for (int i = r->slot0; i < r->slot0 + r->n_slot && !st; i++) st = wick_session_new(r->model, &so, &s->sess[i]);
    return st;
}

/* Start-up adapters: adapter i on replica i % n_rep (others copy it when requests go there). */
static wick_status load_adapters(srv *s, const wick_serve_opts *o) {
    for (int i = 0; i < o->n_adapters; i++) {
        char real[PATH_MAX];
        const char *dir = realpath(o->adapter_dirs[i], real) ? real : o->adapter_dirs[i];
        int ret = srv_adapter_add(s, o->adapter_names[i], dir, i % s->n_rep);
        if (ret == SRV_EXISTS) return wk_err(WICK_EINVAL, "adapter '%s' is given twice", o->adapter_names[i]);
        if (ret) return wk_err_prefix(WICK_EINVAL, "adapter '%s' (%s): ", o->adapter_names[i], o->adapter_dirs[i]);
    }
    return WICK_OK;
}

static wick_status srv_open(srv *s, const wick_serve_opts *o) {
    s->o = *o;
    if (!o->model_dir) return wk_err(WICK_EINVAL, "serve: model_dir is required");
    if (o->parallel < 1 || o->max_queue < 0 || o->max_tokens < 1)
        return wk_err(WICK_EINVAL, "serve: parallel must be >= 1, max_queue >= 0 and max_tokens >= 1");
    if (o->replicas < 0 || o->replicas > SRV_MAX_REPLICAS)
        return wk_err(WICK_EINVAL, "serve: replicas must be 0..%d, not %d", SRV_MAX_REPLICAS, o->replicas);
    s->n_rep = WK_MAX(o->replicas, n_devices(o));
    if (s->n_rep > SRV_MAX_REPLICAS) return wk_err(WICK_EINVAL, "serve: at most %d replicas", SRV_MAX_REPLICAS);
    s->n_sess = s->n_rep * o->parallel;
    s->rep = calloc((size_t)s->n_rep, sizeof *s->rep);
    s->sess = calloc((size_t)s->n_sess, sizeof *s->sess);
    s->busy = calloc((size_t)s->n_sess, sizeof *s->busy);
    if (!s->rep || !s->sess || !s->busy) return wk_err(WICK_ENOMEM, "serve: out of memory for %d slots", s->n_sess);
    wick_status st = WICK_OK;
    for (int k = 0; k < s->n_rep && !st; k++) st = rep_load(s, k);
    if (st) return st;
    for (int k = 0; k < s->n_rep; k++) { /* one lock per distinct device; none on the CPU */
        int first = 0;
        while (strcmp(s->rep[first].device, s->rep[k].device)) first++;
        s->rep[k].dev_mu = strncmp(s->rep[k].device, "cpu", 3) ? &s->dev_mu[first] : NULL;
    }
    wick_model_info mi;
    wick_model_get_info(s->rep[0].model, &mi);
    s->vocab = mi.vocab_size;
    s->tok = wick_model_tokenizer(s->rep[0].model);
    s->context = o->context > 0 ? o->context : (mi.max_position < 4096 ? mi.max_position : 4096);
    s->max_prompt = o->max_prompt_tokens > 0 && o->max_prompt_tokens < s->context ? o->max_prompt_tokens : s->context - 1;
    if (o->model_name) snprintf(s->base_name, sizeof s->base_name, "%s", o->model_name);
    else base_name_of(o->model_dir, s->base_name, sizeof s->base_name);
    if ((st = load_adapters(s, o))) return st;
    if (o->adapter_root && !realpath(o->adapter_root, s->root_real))
        return wk_err(WICK_EIO, "adapter root '%s' does not exist", o->adapter_root);
    if (o->embed_model_dir && (st = wick_encoder_load(o->embed_model_dir, NULL, &s->enc))) return st;
    for (int k = 0; k < s->n_rep && !st; k++) st = rep_sessions(s, k);
    if (st) return st;
    int threads = o->threads > 0 ? wick_set_threads(o->threads) : wick_get_threads();
    /* replicas on the CPU share its cores */
    s->o.threads = s->n_rep > 1 && !strncmp(s->rep[0].device, "cpu", 3) ? WK_MAX(1, threads / s->n_rep) : threads;
    s->created = (long)time(NULL);
    return sched_start(s);
}

static void srv_close(srv *s) {
    sched_stop(s); /* every connection thread has ended: no step is pending */
    for (int i = 0; s->sess && i < s->n_sess; i++) wick_session_free(s->sess[i]);
    free(s->sess), free(s->busy);
    wick_encoder_free(s->enc);
    for (int k = 0; s->rep && k < s->n_rep; k++) wick_registry_free(s->rep[k].reg), wick_model_free(s->rep[k].model);
    free(s->rep), free(s->cat);
}

wick_status wick_serve_run(const wick_serve_opts *o) {
#ifndef WICK_HAVE_MHD
    (void)o;
    return wk_err(WICK_EUNSUPPORTED, "serve: wick was built without libmicrohttpd (scripts/install-deps.sh)");
#else
    srv *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL), pthread_cond_init(&s->cv, NULL), pthread_mutex_init(&s->enc_mu, NULL);
    pthread_mutex_init(&s->cat_mu, NULL);
    for (int k = 0; k < SRV_MAX_REPLICAS; k++) pthread_mutex_init(&s->dev_mu[k], NULL);
    wick_status st = srv_open(s, o);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o->port);
    if (!st && inet_pton(AF_INET, o->host ? o->host : "127.0.0.1", &addr.sin_addr) != 1)
        st = wk_err(WICK_EINVAL, "serve: host '%s' is not an IPv4 address", o->host);
    struct MHD_Daemon *d = NULL;
    if (!st) {
        g_stop = 0;
        d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG,
                             0, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_NOTIFY_COMPLETED,
                             completed, s, MHD_OPTION_CONNECTION_LIMIT,
                             (unsigned)(s->n_sess + o->max_queue + 32), MHD_OPTION_CONNECTION_TIMEOUT,
                             (unsigned)120, MHD_OPTION_END);
        if (!d) st = wk_err(WICK_EIO, "serve: cannot listen on %s:%d (in use or not permitted)", o->host, o->port);
    }
    if (!st) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        if (o->on_ready) o->on_ready(o->host ? o->host : "127.0.0.1", di ? di->port : o->port, o->user);
        while (!g_stop) usleep(20000);
        MHD_socket ls = MHD_quiesce_daemon(d); /* stop accepting; connections in flight go on */
        if (ls != MHD_INVALID_SOCKET) close(ls);
        pthread_mutex_lock(&s->mu);
        s->stopping = 1; /* streams end at their next token; waiting requests get 503 */
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        MHD_stop_daemon(d); /* joins the connection threads */
    }
    srv_close(s);
    pthread_mutex_destroy(&s->mu), pthread_cond_destroy(&s->cv), pthread_mutex_destroy(&s->enc_mu);
    pthread_mutex_destroy(&s->cat_mu);
    for (int k = 0; k < SRV_MAX_REPLICAS; k++) pthread_mutex_destroy(&s->dev_mu[k]);
    free(s);
    return st;
#endif
}
