/*
 * tok_gguf.c — a tokenizer from GGUF metadata (tokenizer.ggml.*). The GGUF
 * vocabulary, merges, token types and pre-tokenizer name are turned into the
 * equivalent Hugging Face tokenizer.json, which the regular loader then reads:
 * one tokenizer implementation for both file formats.
 *
 * Supported: tokenizer.ggml.model "gpt2" (byte-level BPE) with the pre-tokenizers
 * llama.cpp names default/gpt2, smollm, qwen2, llama3/llama-bpe. Anything else is
 * WICK_EUNSUPPORTED naming the key and value.
 */
#include "io/gguf.h"
#include "tok/tok.h"

#include <jansson.h>
#include <stdlib.h>

static const char QWEN2_RE[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                               "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3_RE[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static json_t *byte_level(int use_regex) {
    return json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex", use_regex);
}

static json_t *split_then_bytes(const char *re) {
    json_t *split = json_pack("{s:s,s:{s:s},s:s,s:b}", "type", "Split", "pattern", "Regex", re, "behavior", "Isolated",
                              "invert", 0);
    return json_pack("{s:s,s:[o,o]}", "type", "Sequence", "pretokenizers", split, byte_level(0));
}

/* The HF pre_tokenizer equivalent to llama.cpp's pre-tokenizer `pre`. */
static wick_status pre_tokenizer(const char *path, const char *pre, json_t **out) {
    if (!strcmp(pre, "default") || !strcmp(pre, "gpt2") || !strcmp(pre, "gpt-2")) *out = byte_level(1);
    else if (!strcmp(pre, "smollm"))
        *out = json_pack("{s:s,s:[{s:s,s:b},o]}", "type", "Sequence", "pretokenizers", "type", "Digits",
                         "individual_digits", 1, byte_level(1));
    else if (!strcmp(pre, "qwen2")) *out = split_then_bytes(QWEN2_RE);
    else if (!strcmp(pre, "llama3") || !strcmp(pre, "llama-bpe")) *out = split_then_bytes(LLAMA3_RE);
    else
        return wk_err(WICK_EUNSUPPORTED, "%s: tokenizer.ggml.pre '%s' is not supported (default, gpt2, smollm, qwen2, llama3)",
                      path, pre);
    return *out ? WICK_OK : wk_err(WICK_ENOMEM, "tokenizer: cannot build JSON");
}

/* vocab object and added_tokens (CONTROL = 3 and USER_DEFINED = 4 token types). */
static wick_status vocab_json(const wk_gguf *g, json_t **vocab, json_t **added) {
    const wk_gguf_val *toks, *types = NULL;
    wick_status st = wk_gguf_get_arr(g, "tokenizer.ggml.tokens", WK_GGUF_STRING, &toks);
    if (st) return st;
    if (wk_gguf_find(g, "tokenizer.ggml.token_type") && (st = wk_gguf_get_arr(g, "tokenizer.ggml.token_type", WK_GGUF_NTYPES, &types)))
        return st;
    if (types && types->n != toks->n)
        return wk_err(WICK_EFORMAT, "%s: tokenizer.ggml.token_type has %llu entries for %llu tokens", wk_gguf_path(g),
                      (unsigned long long)types->n, (unsigned long long)toks->n);
    *vocab = json_object();
    *added = json_array();
    for (uint64_t i = 0; i < toks->n; i++) {
        json_object_setn_new_nocheck(*vocab, toks->str[i], toks->str_len[i], json_integer((json_int_t)i));
        int64_t ty = types ? wk_gguf_val_int(types, i) : 1;
        if (ty == 3 || ty == 4)
            json_array_append_new(*added, json_pack("{s:I,s:s%,s:b,s:b,s:b,s:b,s:b}", "id", (json_int_t)i, "content",
                                                    toks->str[i], (size_t)toks->str_len[i], "single_word", 0, "lstrip", 0,
                                                    "rstrip", 0, "normalized", 0, "special", ty == 3));
    }
    return WICK_OK;
}

static const char *token_at(const wk_gguf *g, const char *key) {
    int64_t id;
    const wk_gguf_val *toks;
    if (!wk_gguf_find(g, key) || wk_gguf_get_int(g, key, &id) || wk_gguf_get_arr(g, "tokenizer.ggml.tokens", WK_GGUF_STRING, &toks))
        return NULL;
    return id >= 0 && (uint64_t)id < toks->n ? toks->str[id] : NULL;
}

wick_status wk_tokenizer_from_gguf(const void *gguf, wick_tokenizer **out) {
    const wk_gguf *g = gguf;
    const char *path = wk_gguf_path(g), *model, *pre = "default", *tmpl = NULL;
    *out = NULL;
    wick_status st = wk_gguf_get_str(g, "tokenizer.ggml.model", &model);
    if (st) return st;
    if (strcmp(model, "gpt2"))
        return wk_err(WICK_EUNSUPPORTED, "%s: tokenizer.ggml.model '%s' is not supported (gpt2 byte-level BPE)", path, model);
    if (wk_gguf_find(g, "tokenizer.ggml.pre") && (st = wk_gguf_get_str(g, "tokenizer.ggml.pre", &pre))) return st;
    if (wk_gguf_find(g, "tokenizer.chat_template") && (st = wk_gguf_get_str(g, "tokenizer.chat_template", &tmpl))) return st;
    const wk_gguf_val *merges;
    if ((st = wk_gguf_get_arr(g, "tokenizer.ggml.merges", WK_GGUF_STRING, &merges))) return st;
    json_t *pt = NULL, *vocab = NULL, *added = NULL;
    if ((st = pre_tokenizer(path, pre, &pt)) || (st = vocab_json(g, &vocab, &added))) {
        json_decref(pt), json_decref(vocab), json_decref(added);
        return st;
    }
    json_t *mj = json_array();
    for (uint64_t i = 0; i < merges->n; i++) json_array_append_new(mj, json_stringn(merges->str[i], merges->str_len[i]));
    json_t *root = json_pack("{s:s,s:n,s:n,s:o,s:n,s:o,s:n,s:o,s:{s:s,s:n,s:n,s:n,s:n,s:b,s:b,s:b,s:o,s:o}}", "version",
                             "1.0", "truncation", "padding", "added_tokens", added, "normalizer", "pre_tokenizer", pt,
                             "post_processor", "decoder", byte_level(1), "model", "type", "BPE", "dropout", "unk_token",
                             "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
                             "ignore_merges", 0, "vocab", vocab, "merges", mj);
    char *js = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!js) return wk_err(WICK_ENOMEM, "%s: cannot build the tokenizer", path);
    st = wk_tokenizer_from_json(js, strlen(js), path, token_at(g, "tokenizer.ggml.bos_token_id"),
                                token_at(g, "tokenizer.ggml.eos_token_id"), tmpl, out);
    free(js);
    return st;
}
