/*
 * wick.h — the one public header of wick: LoRA fine-tuning and inference for
 * transformer language models on CPU (and CUDA when built with it).
 *
 * Conventions
 *  - Every fallible call returns a wick_status; WICK_OK (0) is success. On failure
 *    wick_last_error() returns a thread-local message naming the file, tensor or
 *    field at fault and what was expected.
 *  - Handles are opaque and owned by the library; every *_free(NULL) is a no-op.
 *  - A pointer returned by a getter is borrowed: valid until the next call on the
 *    same handle or until the handle is freed, whichever comes first.
 *  - The library never calls exit() or abort() on bad input.
 *
 * The file is divided in sections (core, safetensors, model, session, tokenizer,
 * sampling/generation, adapters, training, embeddings, benchmarks). Each section
 * is self-contained.
 */
#ifndef WICK_H
#define WICK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WICK_VERSION "0.1.0"

/* ===================================================================== core */

typedef enum {
    WICK_OK = 0,
    WICK_EINVAL = -1,       /* bad argument or malformed input */
    WICK_EIO = -2,          /* file system error */
    WICK_EFORMAT = -3,      /* a file's contents are not what its format requires */
    WICK_ENOMEM = -4,       /* allocation failed (message gives the byte count) */
    WICK_EUNSUPPORTED = -5, /* valid input that uses a feature wick does not implement */
    WICK_ECANCELLED = -6,   /* a callback asked to stop */
    WICK_ERANGE = -7,       /* an index or id outside its valid range */
    WICK_ESTATE = -8,       /* call not valid in the object's current state */
} wick_status;

/* Returns a static English name for a status ("invalid argument", ...). */
const char *wick_status_str(wick_status s);

/* Returns the calling thread's last error message ("" when none). Borrowed. */
const char *wick_last_error(void);

typedef enum { WICK_LOG_ERROR = 0, WICK_LOG_WARN = 1, WICK_LOG_INFO = 2, WICK_LOG_DEBUG = 3 } wick_log_level;
typedef void (*wick_log_fn)(wick_log_level level, const char *msg, void *user);

/* Installs a log callback (NULL restores the default: warnings and errors to stderr). */
void wick_set_log(wick_log_fn fn, void *user, wick_log_level max_level);

/* Sets the number of CPU threads for compute (0 = all cores). Returns the count in effect. */
int wick_set_threads(int n);
int wick_get_threads(void);

/* The name of the kernel set OpenBLAS picked for this CPU ("SkylakeX", "Haswell", ...).
 * OpenBLAS builds that do not know a CPU fall back to "Prescott" kernels, several times
 * slower; wick_blas_suggested_core() then names the set to request with the environment
 * variable OPENBLAS_CORETYPE before the process starts (NULL when nothing is to be gained). */
const char *wick_blas_core(void);
const char *wick_blas_suggested_core(void);

/* Bytes currently allocated by the library (model weights that are mmap'd do not count). */
size_t wick_mem_allocated(void);
size_t wick_mem_peak(void);

/* Frees a buffer that a wick call returned to the caller (ids, text, ...). NULL is fine. */
void wick_free(void *p);

/* ============================================================== safetensors */

typedef enum {
    WICK_DT_F32 = 0,
    WICK_DT_BF16 = 1,
    WICK_DT_F16 = 2,
    WICK_DT_I64 = 3,
    WICK_DT_I32 = 4,
    WICK_DT_I8 = 5,
    WICK_DT_U8 = 6,
    WICK_DT_F64 = 7,
    WICK_DT_BOOL = 8,
    WICK_DT_I16 = 9,
    WICK_DT_U16 = 10,
    WICK_DT_U32 = 11,
    WICK_DT_U64 = 12,
    WICK_DT_COUNT
} wick_dtype;

const char *wick_dtype_name(wick_dtype t);  /* "F32", "BF16", ... (safetensors spelling) */
size_t wick_dtype_size(wick_dtype t);       /* bytes per element */

#define WICK_MAX_DIMS 8

/* A tensor to write, or one described by a reader. data is borrowed. */
typedef struct {
    const char *name;
    wick_dtype dtype;
    int ndim;
    int64_t shape[WICK_MAX_DIMS];
    const void *data;
} wick_tensor_view;

/* Writes tensors to path atomically (temp file, fsync, rename). metadata may be
 * NULL or a flat JSON object of string values ("{\"format\":\"pt\"}"). */
wick_status wick_safetensors_write(const char *path, const wick_tensor_view *t, int n, const char *metadata_json);

typedef struct wick_st wick_st; /* a validated, mmap'd safetensors file */

/* Opens and fully validates a safetensors file. */
wick_status wick_st_open(const char *path, wick_st **out);
void wick_st_close(wick_st *f);
int wick_st_count(const wick_st *f);
/* Returns tensor i (0 <= i < count), or by name; WICK_ERANGE/WICK_EINVAL if absent. */
wick_status wick_st_get(const wick_st *f, int i, wick_tensor_view *out);
wick_status wick_st_find(const wick_st *f, const char *name, wick_tensor_view *out);

/* ==================================================================== model */

typedef struct wick_model wick_model;
typedef struct wick_adapter wick_adapter;
typedef struct wick_session wick_session;
typedef struct wick_tokenizer wick_tokenizer;

typedef struct {
    int threads;          /* 0 = keep the current setting */
    int keep_bf16;        /* 1 (default via wick_model_opts_default): bf16 weights stay bf16 in memory */
    const char *device;   /* "cpu" (default) or "cuda[:N]" */
    int fast_bf16;        /* 0 (default): exact. 1: bf16 weights multiply bf16-rounded activations in prompt
                           * processing (CPU with AVX512-BF16): matrix products about 2x faster (qwen2.5-0.5b
                           * pp512 ~150 -> ~250 tok/s on 2 cores), logits within ~1e-2 of the exact path;
                           * decode is unchanged */
} wick_model_opts;

wick_model_opts wick_model_opts_default(void);

/* Loads a Hugging Face checkpoint directory (config.json + model.safetensors or a
 * sharded index), and tokenizer.json when present. */
wick_status wick_model_load(const char *dir, const wick_model_opts *opts, wick_model **out);
void wick_model_free(wick_model *m);

typedef struct {
    const char *arch;        /* "qwen2", "qwen3", "llama", "mistral" */
    int vocab_size, hidden_size, intermediate_size, num_layers;
    int num_heads, num_kv_heads, head_dim, max_position;
    float rope_theta, rms_eps;
    int tie_embeddings, qkv_bias, qk_norm;
    wick_dtype weight_dtype;  /* dtype of the linear weights as stored (U8 for block-quantized GGUF) */
    const char *weight_format;/* "F32", "BF16", "F16", or the GGUF quant type ("Q4_1", ...) */
    int64_t n_params;         /* total parameter count (tied head counted once) */
    int64_t weight_bytes;     /* bytes of weights as held in memory */
    int n_eos;
    int eos_ids[8];
    int bos_id;               /* -1 when unknown */
} wick_model_info;

wick_status wick_model_get_info(const wick_model *m, wick_model_info *out);

/* The tokenizer loaded with the model (NULL if the directory had none). Borrowed. */
wick_tokenizer *wick_model_tokenizer(wick_model *m);

/* Full-sequence logits for B sequences of T ids each: out is float [B,T,V].
 * adapter may be NULL (base model). */
wick_status wick_model_logits(wick_model *m, const wick_adapter *adapter, float adapter_scale,
                              const int32_t *ids, int B, int T, float *out);

/* Writes a random-weight model in Hugging Face layout to out_dir (created if needed):
 * config.json, generation_config.json, model.safetensors. arch is "qwen2", "qwen3",
 * "llama", "mistral" or "bert" (may be NULL with a preset); give a preset name
 * ("qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b", "qwen3-0.6b", "llama-3.2-1b", "tiny",
 * "e5-small", "bert-tiny") or a config.json path. dtype: F32, BF16 or F16. */
wick_status wick_init_model(const char *arch, const char *preset, const char *config_path, wick_dtype dtype,
                            uint64_t seed, const char *out_dir);

/* Writes a byte-level BPE tokenizer.json (256 byte tokens, no merges, specials
 * <|endoftext|>=256 <|im_start|>=257 <|im_end|>=258) and a tokenizer_config.json with a
 * ChatML chat template to dir. For models made with init-model (vocab >= 259). */
wick_status wick_write_byte_tokenizer(const char *dir);

/* ================================================================== session */

typedef struct {
    int max_seq;     /* KV cache length (0 = min(model max_position, 4096)) */
    int chunk;       /* on a GPU: ids per forward pass of a prompt, which sizes the session's scratch
                        memory (0 = 2048, at most max_seq; else clamped to [512, 2048]; a server with
                        many sessions may want 512). The CPU always uses 512. */
} wick_session_opts;

/* A session owns a KV cache and scratch for one sequence; no weights. */
wick_status wick_session_new(wick_model *m, const wick_session_opts *opts, wick_session **out);
void wick_session_free(wick_session *s);

/* Selects the adapter for following calls (NULL = base) and its scale multiplier. O(1), except
 * the first selection of an adapter on a device model, which uploads its A/B (kept until the
 * adapter is freed); a device session re-captures its decode graph at the next step. */
wick_status wick_session_set_adapter(wick_session *s, const wick_adapter *a, float scale);

/* Forgets the cached tokens (position back to 0). */
void wick_session_reset(wick_session *s);
int wick_session_pos(const wick_session *s);

/* Appends n ids to the sequence, running them through the model. logits (may be
 * NULL) receives [n,V] when all_logits, else [V] for the last id only. */
wick_status wick_session_eval(wick_session *s, const int32_t *ids, int n, float *logits, int all_logits);

/* ========== section: tokenizer — tokenizers and chat templates (src/tok) */

/* A Hugging Face tokenizer.json: byte-level BPE (GPT-2, Qwen2/2.5/3, Llama 3),
 * SentencePiece-style BPE with byte_fallback (Llama 2, Mistral) and WordPiece (BERT).
 * A loaded tokenizer is read-only and may be used from several threads at once.
 * Encoding input that is not valid UTF-8 is not an error: each invalid sequence is
 * replaced by U+FFFD (Rust's from_utf8_lossy rule) before tokenizing. */

/* Loads path = a tokenizer.json file, or a directory holding tokenizer.json; a
 * tokenizer_config.json (and chat_template.jinja) beside it is read when present. */
wick_status wick_tokenizer_load(const char *path, wick_tokenizer **out);
void wick_tokenizer_free(wick_tokenizer *t);

#define WICK_TOK_ADD_SPECIAL 1     /* add the post-processor's tokens ([CLS] ... [SEP], BOS ...) */
#define WICK_TOK_SPECIAL_AS_TEXT 2 /* do not match special tokens in the text; tokenize them as text */

/* Encodes len bytes of UTF-8 text. *ids (free with wick_free) receives *n ids. */
wick_status wick_tokenize(const wick_tokenizer *t, const char *text, size_t len, int flags, int32_t **ids, int *n);
/* Decodes n ids to UTF-8 text (*text NUL-terminated, free with wick_free; *len may be NULL).
 * An id outside the vocabulary is WICK_ERANGE. skip_special drops special tokens. */
wick_status wick_detokenize(const wick_tokenizer *t, const int32_t *ids, int n, int skip_special, char **text,
                            size_t *len);
/* Number of ids (max id + 1 over the model vocabulary and added tokens). */
int wick_tokenizer_vocab_size(const wick_tokenizer *t);
/* Id of a token string exactly as stored in the vocabulary or added tokens; -1 if absent. */
int32_t wick_tokenizer_find(const wick_tokenizer *t, const char *token);
/* The stored string of an id (not NUL-terminated; *len its length), NULL if unknown. Borrowed. */
const char *wick_tokenizer_token(const wick_tokenizer *t, int32_t id, size_t *len);
/* bos_token / eos_token / chat_template of tokenizer_config.json; NULL when absent. Borrowed. */
const char *wick_tokenizer_bos(const wick_tokenizer *t);
const char *wick_tokenizer_eos(const wick_tokenizer *t);
const char *wick_tokenizer_chat_template(const wick_tokenizer *t);

/* Streaming detokenizer: push ids one at a time; *piece is the newly completed UTF-8
 * text (possibly empty, never a partial character), borrowed until the next call.
 * The concatenation of all pieces and the final flush equals wick_detokenize(all ids). */
typedef struct wick_detok wick_detok;
wick_detok *wick_detok_new(const wick_tokenizer *t); /* NULL on allocation failure */
wick_status wick_detok_push(wick_detok *d, int32_t id, const char **piece, size_t *len);
wick_status wick_detok_flush(wick_detok *d, const char **piece, size_t *len);
void wick_detok_free(wick_detok *d);

/* Chat templates. Built-in renderers for the templates real models ship: "chatml",
 * "qwen2.5" (ChatML with Qwen's default system prompt), "qwen3" (ChatML with the
 * thinking block rules), "llama3", "llama3.1" (Llama 3.1/3.2: system header with the knowledge
 * cutoff and "Today Date", today's when the template uses strftime_now; no tools),
 * "mistral" ([INST], strictly alternating user/assistant). template_name NULL = recognise tokenizer_config.json's
 * chat_template; an unrecognised template is WICK_EUNSUPPORTED naming --chat-template. */
typedef struct {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
} wick_chat_message;

/* Renders msgs into *out (free with wick_free). When spans is not NULL it receives
 * 2 * *n_spans byte offsets (start, end) of the assistant replies in *out (free with
 * wick_free): the text the model generates for that turn, i.e. the reply (with the
 * think block where the template renders one) and the end-of-turn marker
 * (<|im_end|>, <|eot_id|>, </s>), for masking everything else in training. */
wick_status wick_chat_render(const wick_tokenizer *t, const wick_chat_message *msgs, int n,
                             int add_generation_prompt, const char *template_name, char **out, size_t **spans,
                             int *n_spans);
/* The name the renderer would use for this tokenizer's template (NULL + error if unrecognised). */
const char *wick_chat_template_name(const wick_tokenizer *t);

/* ---------- end of section: tokenizer */



/* ========== section: generation — sampling and generation (src/infer) */

/* --- sampler: logits -> token id, with Hugging Face semantics and order:
 *   logit bias, repetition penalty (HF: over prompt + generated ids, once per distinct id:
 *   x<0 ? x*p : x/p), presence/frequency penalties (OpenAI: over generated ids,
 *   x -= count*frequency + (count>0)*presence), then temperature, top-k (ties with the
 *   k-th value kept), top-p (keep a token while the mass ranked above it is < top_p),
 *   min-p (drop p < min_p * p_max). temperature <= 0 is greedy (first argmax). */
typedef struct wick_sampler wick_sampler;

typedef struct {
    int32_t id;
    float bias;               /* added to the logit; -INFINITY bans the token */
} wick_logit_bias;

typedef struct {
    float temperature;        /* <= 0: greedy. default 1 */
    int top_k;                /* 0 = off */
    float top_p;              /* 1 = off */
    float min_p;              /* 0 = off */
    float repetition_penalty; /* 1 = off; must be > 0 */
    float presence_penalty;   /* 0 = off */
    float frequency_penalty;  /* 0 = off */
    const wick_logit_bias *logit_bias; /* copied by wick_sampler_new */
    int n_logit_bias;
    uint64_t seed;            /* same seed + same logits -> same samples */
} wick_sampler_opts;

wick_sampler_opts wick_sampler_opts_default(void);

/* Creates a sampler for a vocabulary of `vocab` ids. Errors name the bad option. */
wick_status wick_sampler_new(const wick_sampler_opts *o, int vocab, wick_sampler **out);
void wick_sampler_free(wick_sampler *s);
/* Forgets the history (prompt and generated ids) and reseeds the generator. */
void wick_sampler_reset(wick_sampler *s, uint64_t seed);
/* Records prompt ids (they count for the repetition penalty only). */
wick_status wick_sampler_add_prompt(wick_sampler *s, const int32_t *ids, int n);
/* Records a generated id (it counts for all penalties). */
wick_status wick_sampler_accept(wick_sampler *s, int32_t id);
/* Picks the next id from logits [vocab] (modified in place: penalties and bias applied).
 * prob (may be NULL) receives the id's probability under the final sampling distribution
 * (1 for greedy). Does not record the id: call wick_sampler_accept. */
wick_status wick_sampler_sample(wick_sampler *s, float *logits, int32_t *id, float *prob);
/* Writes the final sampling distribution [vocab] for logits (modified in place as above);
 * for greedy, a one-hot vector. */
wick_status wick_sampler_probs(wick_sampler *s, float *logits, float *probs);

/* --- generation: prefill, then KV-cache decode on a session, with streaming. */

typedef enum {
    WICK_STOP_NONE = 0,       /* still running */
    WICK_STOP_EOS = 1,        /* an EOS id of the model was generated (it is the last id) */
    WICK_STOP_STRING = 2,     /* a stop string appeared in the text (not emitted) */
    WICK_STOP_MAX_TOKENS = 3, /* max_tokens ids were generated */
    WICK_STOP_CONTEXT = 4,    /* the session's context is full (documented truncation) */
    WICK_STOP_CANCELLED = 5,  /* the callback returned nonzero, or wick_gen_cancel */
    WICK_STOP_ERROR = 6,      /* a step failed (its status was returned; wick_last_error says why) */
} wick_stop_reason;

/* "none", "eos", "stop", "length", "context", "cancelled", "error" */
const char *wick_stop_reason_str(wick_stop_reason r);

#define WICK_MAX_TOP_LOGPROBS 20

typedef struct {
    wick_sampler_opts sampling;
    int max_tokens;           /* default 256; must be >= 1 */
    int ignore_eos;           /* 1: do not stop on EOS ids */
    const char *const *stop;  /* stop strings (borrowed for the generation's lifetime) */
    int n_stop;
    int top_logprobs;         /* alternatives per token, 0..WICK_MAX_TOP_LOGPROBS */
    int max_context;          /* positions the session holds (0 = the session's default:
                                 min(model max_position, 4096), within a sliding window) */
    const wick_tokenizer *tokenizer; /* for text pieces and stop strings; NULL = the model's */
} wick_gen_opts;

wick_gen_opts wick_gen_opts_default(void);

typedef struct {
    int32_t id;
    float logprob;            /* log-softmax of the model's raw logits */
} wick_top_logprob;

/* One generated token, as a callback or the iterator sees it. Pointers are borrowed
 * until the next token. */
typedef struct {
    int32_t id;
    const char *piece;        /* UTF-8-complete text released with this token (NUL-terminated;
                                 may be "" while a character or a possible stop string is pending;
                                 never includes stop-string text). "" without a tokenizer. */
    size_t piece_len;
    float logprob;            /* log-probability under the model's raw distribution */
    float prob;               /* probability under the sampling distribution actually used */
    const wick_top_logprob *top; /* top_logprobs best alternatives, most likely first */
    int n_top;
    int pos;                  /* position of the token in the session (0-based) */
    int index;                /* 0-based index among generated tokens */
    double t_ms;              /* milliseconds from the start of the generation */
    double dt_ms;             /* milliseconds spent on this token (forward + sampling) */
    wick_stop_reason stop;    /* != WICK_STOP_NONE on the last token */
} wick_token;

/* Return nonzero to stop (the generation ends with WICK_STOP_CANCELLED). */
typedef int (*wick_token_fn)(const wick_token *t, void *user);

typedef struct {
    int n_prompt, n_generated;
    wick_stop_reason stop;
    double ttft_ms;           /* start -> first token sampled (prefill included) */
    double prefill_tok_s;     /* prompt ids per second of prefill */
    double decode_tok_s;      /* (n_generated - 1) / time after the first token */
    double total_ms;
} wick_gen_stats;

typedef struct wick_gen wick_gen;

/* Pull-style iterator. The prompt ids are appended to what the session holds (call
 * wick_session_reset first for a fresh sequence); m must be the session's model. */
wick_status wick_gen_start(wick_model *m, wick_session *s, const int32_t *prompt, int n_prompt,
                           const wick_gen_opts *o, wick_gen **out);
/* The same from text: tokenized with the tokenizer (tok_flags: WICK_TOK_* of the tokenizer
 * section, e.g. WICK_TOK_ADD_SPECIAL for a BOS the model expects). */
wick_status wick_gen_start_text(wick_model *m, wick_session *s, const char *text, int tok_flags,
                                const wick_gen_opts *o, wick_gen **out);
/* The same from a conversation rendered with the chat template (template_name NULL = the
 * tokenizer's own) and a generation prompt; the tokenizer's eos_token (end of turn) also stops. */
wick_status wick_gen_start_chat(wick_model *m, wick_session *s, const wick_chat_message *msgs, int n_msgs,
                                const char *template_name, const wick_gen_opts *o, wick_gen **out);
/* Produces the next token into *t and returns WICK_OK, or returns WICK_OK with *done = 1
 * (and *t untouched) once the generation has stopped. */
wick_status wick_gen_next(wick_gen *g, wick_token *t, int *done);
/* Ends the generation early (the next wick_gen_next reports done) with reason CANCELLED. */
void wick_gen_cancel(wick_gen *g);
void wick_gen_get_stats(const wick_gen *g, wick_gen_stats *st);
/* Drives g to its end calling fn for every token (fn may be NULL). WICK_ECANCELLED when fn
 * returned nonzero. stats may be NULL. */
wick_status wick_gen_run(wick_gen *g, wick_token_fn fn, void *user, wick_gen_stats *stats);
void wick_gen_free(wick_gen *g);

/* Streaming: calls fn for every generated token. stats may be NULL. */
wick_status wick_generate_stream(wick_model *m, wick_session *s, const int32_t *prompt, int n_prompt,
                                 const wick_gen_opts *o, wick_token_fn fn, void *user,
                                 wick_gen_stats *stats);

/* Non-streaming: the same tokens as wick_generate_stream. *ids (free with wick_free)
 * receives *n ids; text (may be NULL) receives the text without stop strings
 * (free with wick_free; "" without a tokenizer). stats may be NULL. */
wick_status wick_generate(wick_model *m, wick_session *s, const int32_t *prompt, int n_prompt,
                          const wick_gen_opts *o, int32_t **ids, int *n, char **text,
                          wick_gen_stats *stats);

/* Several prompts in one call, one after the other on the session (reset before each):
 * ids[i]/n[i] as wick_generate; prompt i uses seed + i. */
wick_status wick_generate_batch(wick_model *m, wick_session *s, const int32_t *const *prompts,
                                const int *n_prompts, int n_seqs, const wick_gen_opts *o,
                                int32_t **ids, int *n, wick_gen_stats *stats);

/* ---------- end of section: generation */



/* ========== section: adapters — LoRA adapters (src/lora) */

/* The seven linear projections of a decoder layer, as bits of a target mask. */
enum {
    WICK_LORA_Q = 1 << 0, WICK_LORA_K = 1 << 1, WICK_LORA_V = 1 << 2, WICK_LORA_O = 1 << 3,
    WICK_LORA_GATE = 1 << 4, WICK_LORA_UP = 1 << 5, WICK_LORA_DOWN = 1 << 6,
    WICK_LORA_ALL = 0x7f, WICK_LORA_NPROJ = 7
};
/* "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj" for 0..6; NULL otherwise. */
const char *wick_lora_target_name(int proj);

typedef enum {
    WICK_LORA_INIT_KAIMING = 0,  /* PEFT default (init_lora_weights=true): A ~ U(±1/sqrt(in)), B = 0 */
    WICK_LORA_INIT_GAUSSIAN = 1, /* init_lora_weights="gaussian": A ~ N(0, 1/r), B = 0 */
    WICK_LORA_INIT_RANDOM = 2,   /* init_lora_weights=false (nn.Linear init of both): B ~ U(±1/sqrt(r)) too */
} wick_lora_init;

/* A new adapter's hyper-parameters (PEFT LoraConfig). */
typedef struct {
    int r;               /* rank > 0 */
    float alpha;         /* lora_alpha: scale = alpha/r, or alpha/sqrt(r) with use_rslora */
    float dropout;       /* lora_dropout (used by training only) */
    int use_rslora;
    unsigned targets;    /* WICK_LORA_* mask; 0 = WICK_LORA_ALL */
    wick_lora_init init;
    const char *name;    /* NULL = "default" */
} wick_lora_config;

/* r 8, alpha 16, dropout 0, all seven projections, Kaiming init. */
wick_lora_config wick_lora_config_default(void);

/* Creates an adapter over m's shapes with PEFT's initialisation, seeded (same seed, same weights). */
wick_status wick_adapter_new(wick_model *m, const wick_lora_config *cfg, uint64_t seed, wick_adapter **out);

/* Loads a PEFT adapter directory (adapter_config.json + adapter_model.safetensors; F32, BF16 or F16
 * tensors) bound to m. Strict: a missing or unexpected tensor, a shape that does not fit the base, a rank
 * that differs from the config, or a PEFT feature wick does not implement (DoRA, modules_to_save, biases,
 * fan_in_fan_out, embedding/head targets, ...) is an error naming the key or field. */
wick_status wick_adapter_load(wick_model *m, const char *dir, wick_adapter **out);

/* Reads and validates an adapter without a base model (shapes taken from the files), for inspection.
 * Such an adapter cannot be selected in a session or merged. */
wick_status wick_adapter_open(const char *dir, wick_adapter **out);

/* Writes dir/adapter_config.json (PEFT LoraConfig, loadable by PEFT) and dir/adapter_model.safetensors
 * (F32), each atomically; dir is created if needed. An adapter that was loaded keeps its config verbatim. */
wick_status wick_adapter_save(const wick_adapter *a, const char *dir);

/* Frees an adapter (unmerging it first if it is merged). Free adapters before their model. NULL is fine. */
void wick_adapter_free(wick_adapter *a);

typedef struct {
    const char *name;      /* borrowed */
    int r;                 /* config rank (pairs may differ through rank_pattern) */
    float alpha, scale;    /* config lora_alpha and the resulting scale */
    int use_rslora;
    unsigned targets;      /* WICK_LORA_* mask of the projections adapted in some layer */
    int n_layers;          /* layers the adapter spans */
    int n_pairs;           /* adapted (layer, projection) pairs */
    int64_t n_params;      /* elements of every A and B */
    int64_t bytes;         /* bytes held (f32) */
    int bound;             /* 1 when bound to a model (wick_adapter_load/new) */
} wick_adapter_info;

wick_status wick_adapter_get_info(const wick_adapter *a, wick_adapter_info *out);

typedef struct {
    int r, in, out;        /* A is [r,in], B is [out,r] */
    float alpha, scale;
} wick_lora_pair_info;

/* Describes the pair of layer / proj (0..6); WICK_ERANGE when that projection is not adapted. */
wick_status wick_adapter_pair_info(const wick_adapter *a, int layer, int proj, wick_lora_pair_info *out);

/* Merges s·scale·B·A into m's weights (the affected weights become writable f32 copies; the originals
 * are kept, so unmerge restores them bit for bit). On a device model the merged copies are device
 * buffers in the weights' own dtype (bf16 weights: W + ΔW rounded once to bf16), the originals are
 * kept likewise. Not safe while sessions on m are running. */
wick_status wick_adapter_merge(wick_model *m, wick_adapter *a, float scale);
/* Restores the weights a merge replaced. WICK_ESTATE when a is not merged or a later merge covers it. */
wick_status wick_adapter_unmerge(wick_model *m, wick_adapter *a);

typedef struct {
    float scale;             /* adapter scale multiplier (1 = as trained) */
    int64_t max_shard_bytes; /* shard size limit; 0 = 2 GB. Larger checkpoints get model.safetensors.index.json */
} wick_merge_opts;

/* Writes a full Hugging Face checkpoint of m with a merged in (a may be NULL: a plain copy) to out_dir:
 * safetensors in the base's dtypes (sharded above max_shard_bytes), config.json, generation_config.json
 * and the tokenizer files copied. out_dir must not be the model's directory. */
wick_status wick_merge_export(const wick_model *m, const wick_adapter *a, const wick_merge_opts *o, const char *out_dir);

/* An adapter registry: many adapters over one base, looked up by name; thread-safe. */
typedef struct wick_registry wick_registry;

wick_status wick_registry_new(wick_model *m, wick_registry **out);
/* Frees the registry and every adapter it holds. NULL is fine. */
void wick_registry_free(wick_registry *r);
/* Loads dir as adapter `name` (NULL = the directory's base name). WICK_EINVAL when the name is taken. */
wick_status wick_registry_load(wick_registry *r, const char *name, const char *dir);
/* Adds an adapter the caller made (the registry takes ownership, also on failure). */
wick_status wick_registry_add(wick_registry *r, const char *name, wick_adapter *a);
/* Returns the adapter named name with a hold on it (NULL + WICK_EINVAL error when absent); pair with release.
 * Pass it to wick_session_set_adapter; switching is O(1) and never touches the base weights. */
wick_adapter *wick_registry_acquire(wick_registry *r, const char *name);
void wick_registry_release(wick_registry *r, wick_adapter *a);
/* Unloads and frees name. WICK_ESTATE while it is held, WICK_EINVAL when absent. */
wick_status wick_registry_unload(wick_registry *r, const char *name);
int wick_registry_count(wick_registry *r);
/* Fills up to cap infos (names borrowed until the adapter is unloaded); *n gets the total count. */
wick_status wick_registry_list(wick_registry *r, wick_adapter_info *out, int cap, int *n);

/* ---------- end of section: adapters */



/* ========== section: training — training (src/train) */

/* LoRA training with the base model frozen. A trainer holds the gradients and
 * AdamW state of one adapter (updated in place), and scratch sized from the
 * model config and the largest micro-batch seen. Losses follow Hugging Face:
 * position t of a sequence predicts labels[t+1]; label -100 is ignored. */
typedef struct wick_trainer wick_trainer;

typedef enum { WICK_SCHED_CONSTANT = 0, WICK_SCHED_LINEAR = 1, WICK_SCHED_COSINE = 2 } wick_scheduler;

typedef struct {
    float lr;                /* peak learning rate (1e-4) */
    float beta1, beta2, eps; /* AdamW moments (0.9, 0.999, 1e-8) */
    float weight_decay;      /* decoupled: p -= lr*wd*p (0) */
    float max_grad_norm;     /* global L2 clip as torch clip_grad_norm_; 0 = off (1.0) */
    wick_scheduler scheduler;/* HF get_*_schedule_with_warmup (constant) */
    int warmup_steps;        /* (0) */
    int total_steps;         /* N of the linear/cosine decay (1) */
    float label_smoothing;   /* torch cross_entropy label_smoothing (0) */
    float lora_dropout;      /* dropout on the LoRA branch input (0) */
    int recompute;           /* 1: keep layer inputs only, recompute activations in backward (0) */
    uint64_t seed;           /* dropout masks (42) */
} wick_train_opts;

wick_train_opts wick_train_opts_default(void);

/* Creates a trainer that updates adapter `a` (bound to m) in place. Both must outlive it.
 * On a model loaded on a device (wick_model_opts.device "cuda[:N]") the trainer runs there:
 * f32 weights train in fp32 (same results as the CPU within float rounding), bf16/f16 weights
 * on 16-bit tensor cores with fp32 accumulation; the adapter's A/B are copied back to `a` by
 * wick_trainer_sync_adapter and by wick_trainer_free, not after every step. */
wick_status wick_trainer_new(wick_model *m, wick_adapter *a, const wick_train_opts *o, wick_trainer **out);
void wick_trainer_free(wick_trainer *t);

/* Forward + backward of one micro-batch: nseq sequences of lens[i] ids laid end to end
 * (ids, labels). Adds the gradient of the summed token losses to the trainer's
 * gradient, the summed loss to *loss_sum and the number of scored positions to *n_targets. */
wick_status wick_trainer_accumulate(wick_trainer *t, const int32_t *ids, const int32_t *labels, const int *lens,
                                    int nseq, double *loss_sum, int64_t *n_targets);
/* The same forward without gradients (evaluation). */
wick_status wick_trainer_eval(wick_trainer *t, const int32_t *ids, const int32_t *labels, const int *lens, int nseq,
                              double *loss_sum, int64_t *n_targets);

typedef struct {
    int step;          /* optimizer steps done after this one (1-based) */
    double lr;         /* learning rate used */
    double grad_norm;  /* global norm before clipping */
} wick_step_info;

/* Ends an optimizer step: divides the gradient by n_targets, writes it to grads_path
 * (PEFT keys, safetensors; NULL = no file), clips, applies AdamW at the scheduled lr,
 * zeroes the gradient. Non-finite gradients fail with WICK_ESTATE and leave the adapter unchanged. */
wick_status wick_trainer_step(wick_trainer *t, int64_t n_targets, const char *grads_path, wick_step_info *info);

/* Optimizer steps taken so far. */
int wick_trainer_steps(const wick_trainer *t);

/* Brings the adapter's host A/B up to date with the trainer (device trainers keep them on
 * the device; call before saving or using the adapter). A no-op on the CPU. */
wick_status wick_trainer_sync_adapter(wick_trainer *t);

/* Saves / restores AdamW moments, step count and RNG state (safetensors). */
wick_status wick_trainer_save_state(const wick_trainer *t, const char *path);
wick_status wick_trainer_load_state(wick_trainer *t, const char *path);


/* ---- the training run behind `wick train`: data, loop, metrics, checkpoints */

typedef struct {
    int step, total_steps;     /* optimizer steps done / planned */
    double loss, lr, grad_norm;/* of this step (loss before the update) */
    double eval_loss;          /* NaN unless evaluated at this step */
    double tokens_per_s;       /* this step's tokens over its time */
    double elapsed_s, eta_s;
} wick_train_progress;

/* Called after every optimizer step; a nonzero return stops training (WICK_ECANCELLED). */
typedef int (*wick_train_progress_fn)(const wick_train_progress *p, void *user);

typedef struct {
    const char *model_dir, *data_path, *out_dir; /* required */
    const char *eval_path;      /* validation JSONL (NULL = none) */
    const char *init_adapter;   /* PEFT dir to start from (NULL = a new adapter from the lora_* fields) */
    const char *resume;         /* a checkpoint-N dir, or an --out dir (its latest checkpoint) */
    const char *save_grads;     /* safetensors file for the first step's gradients (NULL = none) */
    int lora_r;                 /* new adapters: rank (8), alpha (16), targets mask (0 = all 7), rsLoRA */
    float lora_alpha;
    unsigned targets;
    int use_rslora;
    int epochs;                 /* used when max_steps == 0 (1) */
    int max_steps;              /* 0 = from epochs */
    int batch_size, grad_accum; /* lines per micro-batch (1), micro-batches per step (1) */
    int seq_len;                /* truncation (0 = none) */
    int shuffle;                /* seeded shuffle per epoch (1) */
    int save_every;             /* checkpoint every N steps (0 = never) */
    int keep_checkpoints;       /* keep the last K checkpoints (2) */
    int eval_every;             /* eval loss every N steps (0 = only at the end when eval_path) */
    const char *device;         /* "cpu" (NULL), "cuda" or "cuda:N": where the model and training run */
    int replicas;               /* data parallel (0 = off): replicas of the model, each training a shard of
                                 * every micro-batch, gradients all-reduced per step. With a cuda device
                                 * replica r runs on GPU r (NCCL); on cpu they run in turn (same result) */
    wick_train_opts opt;        /* optimizer, schedule (total_steps is filled in), seed; lora_dropout
                                 * -1 (default) = the adapter config's lora_dropout */
    wick_train_progress_fn progress;
    void *user;
    /* Test hook: called after each file of a checkpoint is written, before the rename that publishes it. */
    void (*checkpoint_hook)(const char *path, void *user);
} wick_train_config;

wick_train_config wick_train_config_default(void);

typedef struct {
    int steps;                  /* steps done in total (including resumed ones) */
    double first_loss, last_loss, eval_loss; /* eval_loss NaN without eval data */
    double seconds, tokens_per_s;
    int64_t tokens;             /* tokens processed by this run */
    double t_data, t_forward, t_backward, t_optimizer; /* seconds spent in each part */
} wick_train_summary;

/* Runs training as configured: writes out_dir/metrics.jsonl (one line per step), checkpoints
 * (out_dir/checkpoint-N: adapter + optimizer + trainer_state.json, published by rename) and the
 * final PEFT adapter in out_dir. A NaN/Inf loss or gradient stops with WICK_ESTATE, checkpoints kept. */
wick_status wick_train_run(const wick_train_config *c, wick_train_summary *out);
/* ---------- end of section: training */



/* ========== section: embeddings — sentence embeddings (src/model/bert) */

/* A BERT-family encoder (BertModel checkpoints such as E5, all-MiniLM, BGE) loaded from a
 * Hugging Face directory: config.json + model.safetensors (keys with or without "bert.";
 * a pooler is ignored), and when present the sentence-transformers files modules.json,
 * 1_Pooling/config.json (pooling default) and sentence_bert_config.json (max_seq_length).
 * Read-only after loading; calls on one encoder must not overlap. */
typedef struct wick_encoder wick_encoder;

typedef enum {
    WICK_POOL_DEFAULT = 0,  /* the model's sentence-transformers setting; mean without one */
    WICK_POOL_MEAN = 1,     /* mean over the real (unpadded) tokens */
    WICK_POOL_CLS = 2,      /* the first token's hidden state */
    WICK_POOL_MAX = 3,      /* element-wise max over the real tokens */
} wick_pooling;

typedef struct {
    int hidden_size, num_layers, num_heads, intermediate_size, vocab_size, type_vocab_size;
    int max_position;       /* max_position_embeddings */
    int max_seq_len;        /* inputs longer than this are truncated (with a warning) */
    wick_pooling pooling;   /* the default pooling (never WICK_POOL_DEFAULT) */
    int normalize;          /* 1 when the default is L2-normalised vectors */
    int64_t n_params;
} wick_encoder_info;

/* Loads an encoder from dir. opts may be NULL; honoured: threads, device ("cpu", or "cuda[:N]": weights
 * uploaded once, each batch runs as a CUDA graph, pooling on the device) and fast_bf16 (linear layers in
 * bf16 with fp32 accumulation, on cuda or a CPU with AVX512-BF16, else ignored; vectors within ~1e-2 of
 * the exact fp32 mode). On the CPU many
 * sequences run as whole batches side by side, one per thread. */
wick_status wick_encoder_load(const char *dir, const wick_model_opts *opts, wick_encoder **out);
void wick_encoder_free(wick_encoder *e);
wick_status wick_encoder_get_info(const wick_encoder *e, wick_encoder_info *out);

/* Last hidden state out [B,T,H] of B sequences padded to T: ids [B,T]; type_ids [B,T]
 * (NULL = all 0); mask [B,T] (1 = real token, 0 = padding; NULL = all real; every
 * sequence needs at least one real token). Padded rows are computed too (as transformers
 * does). T must not exceed max_position. */
wick_status wick_encoder_forward(wick_encoder *e, const int32_t *ids, const int32_t *type_ids, const int32_t *mask,
                                 int B, int T, float *out);

typedef struct {
    wick_pooling pooling;   /* WICK_POOL_DEFAULT: the model's */
    int normalize;          /* -1: the model's default, 0: raw pooled vectors, 1: L2-normalised */
    int batch_size;         /* sequences per forward pass (0 = 32 on the CPU, 128 on a GPU) */
} wick_embed_opts;

wick_embed_opts wick_embed_opts_default(void);

/* Embeds n token-id sequences (seqs[i] holds lens[i] >= 1 ids, special tokens included)
 * into out [n,H]. Sequences are sorted by length, padded per batch and masked, and the
 * results written back in input order; a sequence longer than max_seq_len keeps its first
 * max_seq_len - 1 ids and its last id (the [SEP], as tokenizers truncate; one warning per
 * call). opts may be NULL. */
wick_status wick_embed_ids(wick_encoder *e, const int32_t *const *seqs, const int *lens, int n,
                           const wick_embed_opts *opts, float *out);

/* Text input: the tokenizer.json beside the weights, loaded on first use (NULL + error
 * when absent or unsupported). Borrowed; freed with the encoder. */
wick_tokenizer *wick_encoder_tokenizer(wick_encoder *e);
/* Tokenizes len bytes of UTF-8 text with the special tokens ([CLS] ... [SEP]) into *ids
 * (free with wick_free). */
wick_status wick_encoder_tokenize(wick_encoder *e, const char *text, size_t len, int32_t **ids, int *n);
/* Embeds n NUL-terminated texts into out [n,H]: tokenized as above, then wick_embed_ids. */
wick_status wick_embed_texts(wick_encoder *e, const char *const *texts, int n, const wick_embed_opts *opts, float *out);

/* Pools a hidden state h [T,H] of one sequence with mask [T] (NULL = all real) into
 * out [H] (WICK_POOL_DEFAULT means mean here); normalize != 0 scales it to unit L2 norm. */
wick_status wick_pool(const float *h, const int32_t *mask, int T, int H, wick_pooling pooling, int normalize,
                      float *out);

/* ---------- end of section: embeddings */



/* ========== section: gguf — GGUF and quantized weights (src/io/gguf) */

/* Writes a llama.cpp-compatible GGUF file at out_path (atomically) from src: a Hugging
 * Face checkpoint directory (config.json + model.safetensors or a sharded index; q/k
 * rows permuted for llama as convert_hf_to_gguf.py does; no tokenizer metadata), or a
 * GGUF file to re-quantize (all metadata copied). type: "f32", "f16", "bf16", "q8_0",
 * "q4_0", "q4_1", "q5_0", "q5_1" or "q4_k" for the 2-D weights; 1-D tensors stay F32;
 * rows the type's block does not divide fall back to q8_0, then f16. */
wick_status wick_gguf_quantize(const char *src, const char *type, const char *out_path);

/* ---------- end of section: gguf */



/* ========== section: bench — benchmarks (src/bench) */

/* One benchmark's figures. Times are seconds per iteration (one call of the
 * measured operation). Strings are borrowed for the duration of the callback. */
typedef struct {
    const char *name;            /* "group/function/case", e.g. "lora_forward/forward/small_512x512_r8" */
    const char *suite;           /* "inference", "sampling", "lora", "training", "adapters", "streaming", "model" */
    int samples;                 /* timed samples after warm-up */
    int64_t iters_per_sample;    /* iterations timed together in one sample */
    double median_s, mad_s;      /* median and median absolute deviation of the samples */
    double ci_lo_s, ci_hi_s;     /* distribution-free confidence interval of the median ... */
    double ci_level;             /* ... and its exact coverage (0.95 or more when samples >= 8) */
    double mean_s, min_s, max_s;
    double throughput;           /* work units per second at the median; 0 when not applicable */
    const char *throughput_unit; /* "elem/s", "tok/s", "B/s", ... ("" when none) */
    double metric;               /* one extra measured value (e.g. bytes held); 0 when none */
    const char *metric_name;     /* "bytes", ... ("" when none) */
} wick_bench_result;

/* Called after each benchmark; return nonzero to stop the run (WICK_ECANCELLED). */
typedef int (*wick_bench_fn)(const wick_bench_result *r, void *user);

typedef struct {
    const char *suite;  /* "all" (default), "inference", "sampling", "lora", "training", "adapters",
                           "streaming" or "model" */
    const char *device; /* "cpu" (default) or "cuda" (needs a CUDA build) */
    const char *filter; /* shell glob on benchmark names; NULL = every benchmark of the suite */
    int runs;           /* timed samples per benchmark, exactly; 0 = up to 20 within 15 s per benchmark
                           and at least 5 (5 with quick) */
    int quick;          /* shorter samples and warm-up: a smoke run for CI, same benchmarks and sizes */
    int threads;        /* 0 = keep the current setting */
    const char *model;  /* model suite: a model directory to measure, or NULL to use presets */
    const char *presets; /* model suite: comma-separated init-model presets, written once (bf16) under
                            $WICK_BENCH_CACHE or $TMPDIR/wick-bench-models; NULL = "qwen2.5-0.5b"
                            ("tiny" with quick) */
} wick_bench_opts;

wick_bench_opts wick_bench_opts_default(void);

/* Runs the selected benchmarks, calling fn (may be NULL) after each. On success
 * *json_out (free with wick_free) is the results document: schema_version, git
 * commit, build flags, date, machine (CPU, cores, SIMD, memory, GPU when used)
 * and one entry per benchmark with its samples. */
wick_status wick_bench_run(const wick_bench_opts *o, wick_bench_fn fn, void *user, char **json_out);

/* Writes the names of the benchmarks wick_bench_run would run with these options (suite,
 * filter, quick, model, presets), one per line, to *list_out (free with wick_free). */
wick_status wick_bench_list(const wick_bench_opts *o, char **list_out);

typedef struct {
    double threshold;    /* relative change below which nothing is reported (0 = 0.05) */
    const char *budgets; /* path of a claims file (JSON), or NULL */
    int format_json;     /* 1: the report is JSON; 0: Markdown */
} wick_bench_compare_opts;

typedef struct {
    int compared, regressions, critical, moderate, minor, improvements, within_noise;
    int only_base, only_new;                     /* benchmarks present in one file only */
    int claims_validated, claims_failed, claims_not_measured;
} wick_bench_summary;

/* Compares two results files (base may be NULL: claims only) and validates the
 * claims in opts->budgets against new_path. *report_out (free with wick_free)
 * is the Markdown or JSON report. A change is a regression or an improvement only
 * when it exceeds the threshold and the two medians' confidence intervals do not
 * overlap; regressions are critical at >= 2x, moderate at >= 1.2x, minor below.
 * Returns WICK_OK when the comparison ran (read the verdict from *sum). */
wick_status wick_bench_compare(const char *base_path, const char *new_path, const wick_bench_compare_opts *opts,
                               char **report_out, wick_bench_summary *sum);


typedef struct {
    const char *model;  /* model directory, or NULL to use preset */
    const char *preset; /* init-model preset written to the benchmark cache when model is NULL
                           (NULL = "qwen2.5-0.5b") */
    int prompt;         /* prompt tokens run (and profiled) before the decode steps; 0 = 128 */
    int steps;          /* decode steps averaged; 0 = 16 */
    int threads;        /* 0 = keep the current setting */
    int format_json;    /* 1: JSON report; 0: Markdown */
    int no_training;    /* 1: skip the training step */
} wick_bench_profile_opts;

/* Profiles a prefill, decode steps and a LoRA training step (r8, all projections, 4×64 tokens)
 * of a model: time per phase (forward, backward, optimizer, sample) and per op type (matmul,
 * lora, attention, norm, rope, act, embed, logits, loss, kv, ...), each op synced so its time
 * is its own; "untracked" is the rest of the phase. *report_out: free with wick_free. */
wick_status wick_bench_profile(const wick_bench_profile_opts *o, char **report_out);

/* ---------- end of section: bench */



/* ========== section: batch — batched decode over several sessions (src/model/batch.c) */

/* Advances each session ss[i] (all of one model, each with its own KV cache, position
 * and adapter, or none) by the one id ids[i] in ONE forward: the base weights are read
 * once for all n rows, the adapters run as one segment each (rows ordered by adapter
 * inside), attention runs against each session's own cache. logits (may be NULL) receives
 * (n, vocab) floats, row i for ss[i]; they equal each session's wick_session_eval of the
 * same id up to float rounding. WICK_EINVAL: a NULL or repeated session, sessions of
 * different models; WICK_ERANGE: an id outside the vocabulary or a full cache (nothing
 * is evaluated then). Not thread-safe with other calls on the same sessions. */
wick_status wick_session_eval_batch(wick_session *const *ss, const int32_t *ids, int n, float *logits);

/* ---------- end of section: batch */



/* ========== section: serve — OpenAI-compatible HTTP server (src/serve) */

/* Options of wick_serve_run; start from wick_serve_opts_default. Strings are borrowed. */
typedef struct {
    const char *model_dir;        /* base model (required) */
    const char *model_name;       /* name of the base in the `model` field (NULL = model_dir's base name) */
    const char *host;             /* "127.0.0.1" (default); an IPv4 address */
    int port;                     /* 8000 (default); 0 = any free port */
    const char *api_key;          /* NULL = no auth; else /v1/ needs "Authorization: Bearer KEY" */
    const char *const *adapter_names, *const *adapter_dirs; /* adapters loaded at start */
    int n_adapters;
    const char *adapter_root;     /* directory POST /v1/adapters loads from (NULL = refused) */
    const char *embed_model_dir;  /* BERT encoder for /v1/embeddings (NULL = endpoint off) */
    const char *device;           /* "cpu" (default) or "cuda[:N]"; or a comma-separated list ("cuda:0,cuda:1"):
                                     one replica of the base on each */
    int replicas;                 /* replicas of the base (0 = one per device listed); replica k runs on device
                                     k % (devices listed). Requests are routed by load and by which replica holds
                                     their adapter */
    int threads;                  /* compute threads of the scheduler's forward (0 = wick_get_threads() at start) */
    int parallel;                 /* sequences decoding at the same time, per replica, batched into shared decode steps (default 4) */
    int max_queue;                /* requests waiting for a session beyond which 429 (default 64) */
    int context;                  /* positions per session (0 = min(model max_position, 4096)) */
    int max_tokens;               /* largest max_tokens a request may ask for (default 2048) */
    int max_prompt_tokens;        /* longest prompt (0 = context - 1) */
    size_t max_body;              /* request body bytes (default 1 MiB) */
    /* called once the socket listens (port is the real one); may be NULL */
    void (*on_ready)(const char *host, int port, void *user);
    void *user;
} wick_serve_opts;

wick_serve_opts wick_serve_opts_default(void);

/* Loads the model (and adapters, encoder), serves /v1/completions, /v1/chat/completions,
 * /v1/embeddings, /v1/models, /v1/adapters, /health and /metrics until wick_serve_stop,
 * then stops accepting, ends streams in flight (finish_reason "stop", then [DONE]) and
 * returns WICK_OK. WICK_EUNSUPPORTED when built without libmicrohttpd. */
wick_status wick_serve_run(const wick_serve_opts *o);
/* Asks a running wick_serve_run to shut down gracefully. Async-signal-safe. */
void wick_serve_stop(void);

/* ---------- end of section: serve */



/* ========== section: cuda — devices */

/* Number of CUDA devices wick can use: 0 when built without the CUDA backend or when
 * there is no driver or GPU. Models go on a device with wick_model_opts.device =
 * "cuda" or "cuda:N": base model, adapters (unmerged, hot-swapped, or merged), and GGUF
 * files (quantized weights dequantized to bf16 at upload). */
int wick_cuda_device_count(void);

/* ---------- end of section: cuda */



#ifdef __cplusplus
}
#endif
#endif /* WICK_H */
