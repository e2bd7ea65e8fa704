/*
 * tok.h — internal structures of the tokenizer (src/tok): the vocabulary and merge
 * tables, the normalizer / pre-tokenizer / decoder pipelines parsed from a Hugging
 * Face tokenizer.json, and the helpers the encode, decode and chat files share.
 *
 * Data layout: every token string lives in one byte pool (`pool`), addressed by
 * tk_str offsets; string -> id lookups go through open-addressing hash tables that
 * store ids only (keys are compared against the pool), so loading 150k tokens
 * costs two allocations, not 150k.
 */
#ifndef WICK_TOK_H
#define WICK_TOK_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include "wk.h"

typedef struct { uint32_t off, len; } tk_str;

/* Growable byte buffer. */
typedef struct { char *p; size_t len, cap; } tk_buf;
wick_status tk_buf_reserve(tk_buf *b, size_t extra);
wick_status tk_buf_put(tk_buf *b, const void *s, size_t n);
void tk_buf_free(tk_buf *b);

/* Growable int32 array. */
typedef struct { int32_t *p; int len, cap; } tk_ids;
wick_status tk_ids_push(tk_ids *v, int32_t x);

uint64_t tk_hash(const void *s, size_t n);

/* string -> id over a pool of token strings; a slot holds the hash's top 32 bits | id+1 (0 = empty). */
typedef struct {
    uint64_t *slots;
    uint32_t mask;
    const char *const *pool; /* points at the owner's pool pointer (survives realloc) */
    const tk_str *const *strs;
} tk_strmap;

/* (left id, right id) -> (rank, merged id). */
typedef struct {
    uint64_t *keys; /* UINT64_MAX = empty */
    int32_t *rank, *merged;
    uint32_t mask;
} tk_mergemap;

/* ---- pipeline steps parsed from tokenizer.json */
typedef enum {
    TK_N_NFC, TK_N_NFD, TK_N_NFKC, TK_N_NFKD, TK_N_LOWER, TK_N_STRIP, TK_N_STRIP_ACCENTS,
    TK_N_REPLACE, TK_N_PREPEND, TK_N_BERT
} tk_norm_kind;

typedef struct {
    tk_norm_kind kind;
    char *a, *b;        /* Replace: pattern (literal), content; Prepend: a = prefix */
    pcre2_code *re;     /* Replace with a Regex pattern */
    int left, right;    /* Strip */
    int clean_text, chinese, strip_accents, lowercase; /* BertNormalizer */
} tk_norm;

typedef enum { TK_P_SPLIT, TK_P_BYTELEVEL, TK_P_METASPACE, TK_P_BERT, TK_P_WHITESPACE,
               TK_P_WSSPLIT, TK_P_DIGITS } tk_pre_kind;
typedef enum { TK_B_ISOLATED, TK_B_REMOVED, TK_B_PREV, TK_B_NEXT, TK_B_CONTIG } tk_behavior;
typedef enum { TK_PS_ALWAYS, TK_PS_FIRST, TK_PS_NEVER } tk_prepend;

typedef struct {
    tk_pre_kind kind;
    pcre2_code *re;        /* Split, ByteLevel use_regex, Whitespace */
    tk_behavior behavior;
    int invert;
    int add_prefix_space;  /* ByteLevel */
    char repl[8];          /* Metaspace replacement (UTF-8) */
    tk_prepend prepend;    /* Metaspace */
    int split;             /* Metaspace */
    int individual;        /* Digits */
} tk_pre;

typedef enum { TK_D_BYTELEVEL, TK_D_METASPACE, TK_D_WORDPIECE, TK_D_BYTEFALLBACK, TK_D_FUSE,
               TK_D_STRIP, TK_D_REPLACE } tk_dec_kind;
typedef struct {
    tk_dec_kind kind;
    char *a, *b;         /* Replace: pattern, content; WordPiece: a = prefix; Strip: a = content */
    char repl[8];        /* Metaspace */
    tk_prepend prepend;
    int cleanup;         /* WordPiece */
    int start, stop;     /* Strip */
} tk_dec;

typedef enum { TK_MODEL_BPE, TK_MODEL_WORDPIECE } tk_model_kind;

typedef struct {
    int32_t id;
    int special, normalized, lstrip, rstrip, single_word;
    char *content;        /* as written */
    char *norm_content;   /* after the normalizer (normalized tokens only) */
} tk_added;

/* Word cache: raw piece bytes -> ids. Cleared when full. Guarded by a mutex (trylock). */
typedef struct {
    uint32_t *slots;    /* entry index + 1 */
    uint32_t mask, n, cap;
    uint32_t *key_off, *key_len, *val_off, *val_len;
    tk_buf keys;
    tk_ids vals;
    pthread_mutex_t mu;
} tk_cache;

struct wick_tokenizer {
    char *path;
    /* vocabulary: id -> string (pool), string -> id (map) */
    char *pool;
    size_t pool_len, pool_cap;
    tk_str *strs;
    int n_ids;             /* max id + 1 over model vocab and added tokens */
    uint8_t *is_special;   /* [n_ids] 1 for special added tokens */
    uint8_t *is_added;     /* [n_ids] */
    tk_strmap vocab;       /* model vocabulary only */

    tk_model_kind model;
    /* BPE */
    tk_mergemap merges;
    int byte_level;        /* ByteLevel pre-tokenizer present: map bytes to chars before the model */
    int32_t byte_id[256];  /* byte-level: id of each mapped byte char; byte_fallback: id of <0xXX> */
    int byte_fallback, ignore_merges, fuse_unk;
    int32_t unk_id;        /* -1 = none */
    /* WordPiece */
    char *wp_prefix;
    int wp_max_chars;

    tk_norm *norms; int n_norms;
    tk_pre *pres; int n_pres;
    tk_dec *decs; int n_decs;
    /* post-processor with add_special: ids before and after the sequence */
    tk_ids post_pre, post_post;

    tk_added *added; int n_added;
    uint8_t added_first[256]; /* bitmap of first bytes of raw-matched added tokens */
    int has_norm_added;       /* some added tokens are matched on normalized text */

    tk_cache cache;

    /* tokenizer_config.json */
    char *chat_template, *bos_token, *eos_token;
};

/* Maps byte b to its GPT-2 byte-level character; writes UTF-8 to out, returns its length. */
int tk_byte_to_utf8(uint8_t b, char out[2]);
/* Reverse: code point -> byte, or -1 when cp is not a byte-level char. */
int tk_cp_to_byte(uint32_t cp);

int tk_utf8_len(uint8_t lead);
/* Decodes one code point at s (n bytes available); returns its length (>=1) or 0 if invalid/incomplete. */
int tk_utf8_next(const uint8_t *s, size_t n, uint32_t *cp);
/* Appends s with invalid UTF-8 replaced by U+FFFD (maximal-subpart rule, as Rust's from_utf8_lossy). */
wick_status tk_utf8_lossy(tk_buf *out, const char *s, size_t n);

/* Vocabulary lookups. */
int32_t tk_vocab_get(const wick_tokenizer *t, const char *s, size_t n);
int32_t tk_vocab_get_h(const wick_tokenizer *t, const char *s, size_t n, uint64_t hash); /* hash = tk_hash(s, n) */
void tk_vocab_prefetch(const wick_tokenizer *t, uint64_t hash);
int32_t tk_merge_get(const tk_mergemap *m, int32_t a, int32_t b, int32_t *merged);

/* Builds the tables (load). */
wick_status tk_strmap_build(tk_strmap *m, const wick_tokenizer *t, int n_model);
wick_status tk_mergemap_init(tk_mergemap *m, size_t n);
void tk_mergemap_prefetch(const tk_mergemap *m, int32_t a, int32_t b);
void tk_mergemap_put(tk_mergemap *m, int32_t a, int32_t b, int32_t rank, int32_t merged);

/* Fast scans of tokenizer.json (tok_json.c). */
wick_status tk_json_parse_vocab(wick_tokenizer *t, const char *js, size_t n, int with_scores);
wick_status tk_json_parse_merges(wick_tokenizer *t, const char *js, size_t n);
/* Finds the raw text span of key `key` in the JSON object spanning [js, js+n). */
wick_status tk_json_find(const char *js, size_t n, const char *key, const char **val, size_t *vlen);
/* Calls fn for each key of the object [js, js+n) with the value's span. */
typedef wick_status (*tk_json_kv_fn)(void *user, const char *key, const char *val, size_t vlen);
wick_status tk_json_object_each(const char *js, size_t n, tk_json_kv_fn fn, void *user);

/* Model step: ids of one pre-tokenized piece appended to out. */
wick_status tk_bpe_word(const wick_tokenizer *t, const char *s, size_t n, tk_ids *out);
wick_status tk_wordpiece_word(const wick_tokenizer *t, const char *s, size_t n, tk_ids *out);
void tk_cache_free(tk_cache *c);
wick_status tk_cache_init(tk_cache *c);

/* Normalizes s into out (appends). */
wick_status tk_normalize(const wick_tokenizer *t, const char *s, size_t n, tk_buf *out);

/* Pieces: spans into a buffer. */
typedef struct { uint32_t off, len; } tk_piece;
typedef struct { tk_piece *p; int n, cap; } tk_pieces;
wick_status tk_pretokenize(const wick_tokenizer *t, tk_buf *buf, tk_pieces *pieces, int first_segment);
void tk_pieces_free(tk_pieces *p);

/* Runs the decoder chain on ids; appends UTF-8 text to out. */
wick_status tk_decode(const wick_tokenizer *t, const int32_t *ids, int n, int skip_special, tk_buf *out);

pcre2_code *tk_regex_compile(const char *pattern, int literal, const char *what);
/* A tokenizer from tokenizer.json text held in memory (name is used in messages);
 * bos/eos/chat_template play the role of tokenizer_config.json (each may be NULL). */
wick_status wk_tokenizer_from_json(const char *js, size_t n, const char *name, const char *bos, const char *eos,
                                   const char *chat_template, wick_tokenizer **out);
/* A tokenizer from a GGUF file's tokenizer.ggml.* metadata (gguf is a wk_gguf *). */
wick_status wk_tokenizer_from_gguf(const void *gguf, wick_tokenizer **out);
#endif
