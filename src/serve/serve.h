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
#define SRV_MAX_REPLICAS 64  /* replicas are a bit mask in srv_adapter.on */
#define SRV_MISS_COST 2      /* routing: a replica without the request's adapter counts as this many more busy slots */

/* One sequence slot of the scheduler (sched.c): the generation of the request holding
 * the slot hands its model steps here and waits for the scheduler thread to run them. */
typedef enum { SEQ_IDLE, SEQ_PENDING, SEQ_DONE } srv_seq_state;
typedef struct srv_seq {
    struct srv *s;
    struct srv_rep *rep;          /* the replica whose scheduler runs this slot */
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

/* One replica of the base model: `wick serve --gpus N` has one per GPU, otherwise there is
 * one. It owns a model, the registry of the adapters it holds, and the slots
 * [slot0, slot0 + n_slot) of srv.sess/busy/seq, whose forwards its scheduler thread runs. */
typedef struct srv_rep {
    struct srv *s;
    int idx;
    char device[32];
    wick_model *model;
    wick_registry *reg;
    pthread_mutex_t *dev_mu;      /* the device's lock (shared by replicas on one GPU; NULL on the CPU): a GPU's
                                     ops table is not for two threads at once (one stream, scratch, graph
                                     capture), so the scheduler's rounds and the request threads' adapter
                                     uploads and frees take turns */
    int slot0, n_slot;
    pthread_t sched;
    int sched_started;
    pthread_cond_t sched_cv;      /* the scheduler waits here for steps */
    float *blogits;               /* (n_slot, vocab) logits of a batched decode step */
    double step_s;                /* duration of the last decode step */
    /* metrics (under srv.mu) */
    uint64_t decode_steps, decode_rows, prefill_chunks, adapter_loads;
} srv_rep;

/* An adapter the server serves: its name, directory and the replicas holding it (bit r). */
typedef struct {
    char name[72];
    char dir[PATH_MAX];
    uint64_t on;                  /* changed under cat_mu and mu; routing reads it under mu */
} srv_adapter;

typedef struct srv {
    wick_serve_opts o;
    wick_tokenizer *tok;          /* the model's (NULL: prompts as token ids only) */
    srv_rep *rep;                 /* (n_rep) */
    int n_rep;
    /* the adapter catalog: loads, unloads and on-demand copies hold cat_mu */
    srv_adapter *cat;
    int n_cat, cap_cat;
    pthread_mutex_t cat_mu;
    pthread_mutex_t dev_mu[SRV_MAX_REPLICAS]; /* per distinct device (srv_rep.dev_mu) */
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
    int sched_quit;
    pthread_cond_t done_cv;       /* requests wait here for their step */
    volatile int stopping;
    long created;
    /* metrics (under mu) */
    uint64_t req_total, req_errors, req_cancelled, prompt_tokens, gen_tokens;
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

/* Session pool (replicas.c): takes a free slot for a request on the adapter `adapter`
 * (NULL: the base), routed to the replica with a free slot and the fewest busy slots, where a
 * replica not holding the adapter counts SRV_MISS_COST more; blocks in the queue while every
 * slot is busy; -1 when the queue is full (or stopping). */
int srv_acquire_slot(srv *s, const char *adapter);
void srv_release_slot(srv *s, int slot);
/* The replica running a slot. */
srv_rep *srv_rep_of(srv *s, int slot);
/* Adapter catalog (replicas.c); the calls answer SRV_* (the error message is wick_last_error's). */
enum { SRV_OK = 0, SRV_NOT_FOUND = 1, SRV_EXISTS = 2, SRV_IN_USE = 3, SRV_LOAD_FAILED = 4 };
int srv_adapter_known(srv *s, const char *name);
/* Loads dir as `name` on replica `rep` (-1: the one holding the fewest adapters, then the least
 * busy) and adds it to the catalog: SRV_EXISTS when the name is taken. */
int srv_adapter_add(srv *s, const char *name, const char *dir, int rep);
/* Unloads `name` from every replica: SRV_NOT_FOUND, SRV_IN_USE while a request holds it. */
int srv_adapter_remove(srv *s, const char *name);
/* The adapter `name` on replica r for a request (release with wick_registry_release(r->reg)),
 * loaded there from the catalog's directory first when only other replicas hold it; NULL with
 * *why = SRV_NOT_FOUND when the catalog has no such adapter, SRV_LOAD_FAILED when loading failed. */
wick_adapter *srv_adapter_acquire(srv *s, srv_rep *r, const char *name, int *why);
/* Copies of the catalog's names (at most cap) into names; returns the count. */
int srv_adapter_names(srv *s, char (*names)[72], int cap);
/* Takes / gives back replica r's device lock (no-op on the CPU). Lock order: cat_mu, dev_mu, mu. */
void srv_dev_lock(srv_rep *r);
void srv_dev_unlock(srv_rep *r);
/* Busy slots of replica r (under mu). */
int srv_rep_busy(const srv *s, const srv_rep *r);
/* How many adapters replica k holds (under mu). */
int srv_rep_adapters(srv *s, int k);
/* The scheduler (sched.c): sched_start creates the slots' state and runs one thread per
 * replica, which owns that replica's sessions; sched_stop ends them (after every request is gone). */
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
