/*
 * serve.h — internals of `wick serve` (src/serve): the server state shared by the HTTP
 * layer (server.c), the OpenAI generation endpoints (oai.c) and the admin endpoints
 * (admin.c: models, adapters, embeddings, metrics).
 */
#ifndef WICK_SERVE_H
#define WICK_SERVE_H
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <jansson.h>
#include "wick.h"

#define SRV_LAT_BUCKETS 10

/* One sequence slot of the scheduler (sched.c): the generation of the request holding
 * the slot hands its model steps here and waits for the scheduler thread to run them. */
typedef enum { SEQ_IDLE, SEQ_PENDING, SEQ_DONE } srv_seq_state;
typedef struct srv_seq {
    struct srv *s;
    int slot;
    srv_seq_state state;          /* under srv.mu */
    int live;                     /* decoding: the step waits briefly for its next id */
    const int32_t *ids;           /* the pending step: n ids (n > 1: a prompt, run in chunks) */
    int n, done;
    float *logits;                /* [vocab] of the last id (the generator's buffer) */
    double t_pending;
    wick_status st;
    char err[512];
} srv_seq;

typedef struct srv {
    wick_serve_opts o;
    wick_model *model;
    wick_tokenizer *tok;          /* the model's (NULL: prompts as token ids only) */
    wick_registry *reg;
    wick_encoder *enc;            /* NULL without --embed-model */
    pthread_mutex_t enc_mu;       /* encoder calls must not overlap */
    char base_name[256];
    char root_real[PATH_MAX];     /* realpath of adapter_root ("" = none) */
    int vocab, context, max_prompt;
    /* session pool: the sessions belong to the scheduler thread (sched.c) */
    wick_session **sess;
    int *busy, n_sess, waiting;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    srv_seq *seq;                 /* (n_sess) */
    pthread_t sched;
    int sched_started, sched_quit;
    pthread_cond_t sched_cv;      /* the scheduler waits here for steps */
    pthread_cond_t done_cv;       /* requests wait here for their step */
    float *blogits;               /* (n_sess, vocab) logits of a batched decode step */
    double step_s;                /* duration of the last decode step */
    volatile int stopping;
    long created;
    /* metrics (under mu) */
    uint64_t req_total, req_errors, req_cancelled, prompt_tokens, gen_tokens;
    uint64_t decode_steps, decode_rows, prefill_chunks; /* scheduler work */
    uint64_t lat_bucket[SRV_LAT_BUCKETS], lat_count;
    double lat_sum;
    uint64_t id_seq;
} srv;

/* An HTTP reply built by a handler: status + body (owned), or a streaming job. */
typedef struct {
    int status;
    char *body;                   /* JSON text (malloc'd) */
    const char *content_type;     /* NULL = application/json */
    struct job *stream;           /* != NULL: an SSE stream served by serve_stream_read */
    int client_fd;                /* input: the connection's socket (-1 = unknown), watched for a hang-up */
} srv_reply;

/* Sets r to an OpenAI-shaped error {"error":{"message","type","param","code"}}. */
void srv_error(srv_reply *r, int status, const char *type, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Sets r to 200 with the JSON value j (consumed). */
void srv_json(srv_reply *r, json_t *j);

/* Session pool: blocks until a session is free; -1 when the queue is full (or stopping). */
int srv_acquire_slot(srv *s);
void srv_release_slot(srv *s, int slot);
/* The scheduler (sched.c): sched_start creates the slots' state and runs the thread that
 * owns the sessions; sched_stop ends it (after every request is gone). */
wick_status sched_start(srv *s);
void sched_stop(srv *s);
/* The generator's step function for a slot's session (ctx = &s->seq[slot]): queues the
 * ids and blocks until the scheduler ran them (prompts a chunk at a time between decode
 * steps; single ids batched with every other decoding slot). */
wick_status sched_eval(void *ctx, const int32_t *ids, int n, float *logits);
/* The slot's generation ended (or the slot was released): the steps no longer wait for it. */
void sched_seq_end(srv *s, int slot);

/* Records a finished request: latency, tokens; error != 0 counts a failure. */
void srv_record(srv *s, double latency_s, int n_prompt, int n_gen, int error, int cancelled);

/* JSON string of len bytes, invalid UTF-8 replaced by U+FFFD. */
json_t *srv_jstr(const char *p, size_t len);

/* Endpoints: parse the body (may be NULL) and fill the reply. */
void oai_completions(srv *s, const char *body, size_t len, int chat, srv_reply *r);
void admin_models(srv *s, srv_reply *r);
void admin_adapter_load(srv *s, const char *body, size_t len, srv_reply *r);
void admin_adapter_unload(srv *s, const char *name, srv_reply *r);
void admin_embeddings(srv *s, const char *body, size_t len, srv_reply *r);
void admin_metrics(srv *s, srv_reply *r);

/* Streaming: fills up to max bytes of SSE text; returns bytes, 0 never, -1 at the end. */
long oai_stream_read(struct job *j, char *buf, size_t max);
void oai_job_free(struct job *j);
#endif
