/*
 * gguf_write.c — the GGUF writer: metadata is serialized as it is added (into a
 * growable buffer), tensors are recorded by reference, and wk_gguf_writer_write lays
 * out header | metadata | tensor infos | aligned data into a temp file in the target
 * directory, fsyncs it and renames it over the target (all or nothing).
 */
#include "gguf.h"
#include "backend/cpu/quant.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} buf;

typedef struct {
    char *name;
    int type, ndim;
    int64_t ne[4];
    const void *data;
    size_t nbytes;
    uint64_t offset;
} wtensor;

struct wk_gguf_writer {
    uint32_t alignment;
    buf meta;
    uint64_t n_kv;
    char **keys;
    wtensor *t;
    int64_t n_t, cap_t;
    uint64_t data_size;
};

static void put(buf *b, const void *p, size_t n) {
    if (b->oom || n == 0) return;
    if (b->n + n > b->cap) {
        size_t cap = WK_MAX(b->cap * 2, b->n + n + 256);
        uint8_t *q = wk_realloc(b->p, cap, "gguf metadata buffer");
        if (!q) { b->oom = true; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

wick_status wk_gguf_writer_new(uint32_t alignment, wk_gguf_writer **out) {
    *out = NULL;
    if (alignment == 0) alignment = WK_GGUF_DEFAULT_ALIGNMENT;
    if (alignment & (alignment - 1)) return wk_err(WICK_EINVAL, "gguf writer: alignment %u is not a power of two", alignment);
    wk_gguf_writer *w = wk_calloc(sizeof *w, "gguf writer");
    if (!w) return WICK_ENOMEM;
    w->alignment = alignment;
    *out = w;
    if (alignment != WK_GGUF_DEFAULT_ALIGNMENT) return wk_gguf_w_u32(w, "general.alignment", alignment);
    return WICK_OK;
}

void wk_gguf_writer_free(wk_gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) wk_free(w->keys[i]);
    for (int64_t i = 0; i < w->n_t; i++) wk_free(w->t[i].name);
    wk_free(w->keys);
    wk_free(w->t);
    wk_free(w->meta.p);
    wk_free(w);
}

/* Writes key + type after checking the key is new. */
static wick_status begin_kv(wk_gguf_writer *w, const char *key, wk_gguf_type t) {
    if (!key || !*key) return wk_err(WICK_EINVAL, "gguf writer: empty metadata key");
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0) return wk_err(WICK_EINVAL, "gguf writer: metadata key '%s' added twice", key);
    char **k = wk_realloc(w->keys, (w->n_kv + 1) * sizeof *k, "gguf writer keys");
    if (!k) return WICK_ENOMEM;
    w->keys = k;
    if (!(k[w->n_kv] = wk_strdup(key))) return WICK_ENOMEM;
    w->n_kv++;
    put_str(&w->meta, key);
    put_u32(&w->meta, (uint32_t)t);
    return WICK_OK;
}
static wick_status end_kv(wk_gguf_writer *w) {
    return w->meta.oom ? wk_err(WICK_ENOMEM, "gguf writer: out of memory for metadata (%zu bytes)", w->meta.n) : WICK_OK;
}

wick_status wk_gguf_w_scalar(wk_gguf_writer *w, const char *key, wk_gguf_type t, const void *val) {
    size_t sz = wk_gguf_type_size(t);
    if (!sz) return wk_err(WICK_EINVAL, "gguf writer: key '%s': type %d is not a fixed-size scalar type", key, (int)t);
    wick_status st = begin_kv(w, key, t);
    if (st) return st;
    put(&w->meta, val, sz);
    return end_kv(w);
}
wick_status wk_gguf_w_u32(wk_gguf_writer *w, const char *key, uint32_t v) { return wk_gguf_w_scalar(w, key, WK_GGUF_U32, &v); }
wick_status wk_gguf_w_f32(wk_gguf_writer *w, const char *key, float v) { return wk_gguf_w_scalar(w, key, WK_GGUF_F32, &v); }
wick_status wk_gguf_w_bool(wk_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v;
    return wk_gguf_w_scalar(w, key, WK_GGUF_BOOL, &b);
}
wick_status wk_gguf_w_str(wk_gguf_writer *w, const char *key, const char *s) {
    wick_status st = begin_kv(w, key, WK_GGUF_STRING);
    if (st) return st;
    put_str(&w->meta, s);
    return end_kv(w);
}
wick_status wk_gguf_w_arr(wk_gguf_writer *w, const char *key, wk_gguf_type elem, const void *data, uint64_t n) {
    size_t sz = wk_gguf_type_size(elem);
    if (!sz) return wk_err(WICK_EINVAL, "gguf writer: key '%s': array element type %d is not fixed-size", key, (int)elem);
    wick_status st = begin_kv(w, key, WK_GGUF_ARRAY);
    if (st) return st;
    put_u32(&w->meta, (uint32_t)elem);
    put_u64(&w->meta, n);
    put(&w->meta, data, sz * n);
    return end_kv(w);
}
static void put_str_arr(buf *b, const char *const *s, uint64_t n) {
    put_u32(b, WK_GGUF_STRING);
    put_u64(b, n);
    for (uint64_t i = 0; i < n; i++) put_str(b, s[i]);
}
wick_status wk_gguf_w_arr_str(wk_gguf_writer *w, const char *key, const char *const *s, uint64_t n) {
    wick_status st = begin_kv(w, key, WK_GGUF_ARRAY);
    if (st) return st;
    put_str_arr(&w->meta, s, n);
    return end_kv(w);
}
wick_status wk_gguf_w_arr_arr_str(wk_gguf_writer *w, const char *key, const char *const *const *s,
                                  const uint64_t *lens, uint64_t n) {
    wick_status st = begin_kv(w, key, WK_GGUF_ARRAY);
    if (st) return st;
    put_u32(&w->meta, WK_GGUF_ARRAY);
    put_u64(&w->meta, n);
    for (uint64_t i = 0; i < n; i++) put_str_arr(&w->meta, s[i], lens[i]);
    return end_kv(w);
}

/* Serializes a value (type tag already written by the caller). */
static void put_val(buf *b, const wk_gguf_val *v) {
    if (v->type == WK_GGUF_STRING) {
        put_u64(b, v->str_len[0]);
        put(b, v->str[0], v->str_len[0]);
        return;
    }
    if (v->type != WK_GGUF_ARRAY) {
        put(b, v->raw, wk_gguf_type_size(v->type));
        return;
    }
    put_u32(b, v->elem);
    put_u64(b, v->n);
    for (uint64_t i = 0; i < v->n; i++) {
        if (v->elem == WK_GGUF_STRING) {
            put_u64(b, v->str_len[i]);
            put(b, v->str[i], v->str_len[i]);
        } else if (v->elem == WK_GGUF_ARRAY) {
            put_val(b, &v->items[i]);
        }
    }
    if (wk_gguf_type_size(v->elem)) put(b, v->raw, wk_gguf_type_size(v->elem) * v->n);
}
wick_status wk_gguf_w_val(wk_gguf_writer *w, const char *key, const wk_gguf_val *v) {
    wick_status st = begin_kv(w, key, v->type);
    if (st) return st;
    put_val(&w->meta, v);
    return end_kv(w);
}

wick_status wk_gguf_w_tensor(wk_gguf_writer *w, const char *name, int type, int ndim, const int64_t *ne,
                             const void *data, size_t nbytes) {
    if (!name || !*name) return wk_err(WICK_EINVAL, "gguf writer: empty tensor name");
    if (ndim < 1 || ndim > 4) return wk_err(WICK_EINVAL, "gguf writer: tensor '%s': %d dimensions (1..4 allowed)", name, ndim);
    for (int64_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0) return wk_err(WICK_EINVAL, "gguf writer: tensor '%s' added twice", name);
    int64_t nel = 1;
    for (int d = 0; d < ndim; d++) {
        if (ne[d] <= 0 || ne[d] > INT64_MAX / nel)
            return wk_err(WICK_EINVAL, "gguf writer: tensor '%s': bad dimension %lld", name, (long long)ne[d]);
        nel *= ne[d];
    }
    size_t want = wk_qtype_row_bytes(type, ne[0]);
    if (want == 0)
        return wk_err(WICK_EINVAL, "gguf writer: tensor '%s': type %s needs the first dimension (%lld) to be a multiple of %d",
                      name, wk_qtype_name(type) ? wk_qtype_name(type) : "?", (long long)ne[0], wk_qtype_block(type));
    want *= (size_t)(nel / ne[0]);
    if (want != nbytes)
        return wk_err(WICK_EINVAL, "gguf writer: tensor '%s': %zu data bytes given, %s shape needs %zu", name, nbytes,
                      wk_qtype_name(type), want);
    if (w->n_t == w->cap_t) {
        int64_t cap = WK_MAX(16, 2 * w->cap_t);
        wtensor *t = wk_realloc(w->t, (size_t)cap * sizeof *t, "gguf writer tensors");
        if (!t) return WICK_ENOMEM;
        w->t = t;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    *t = (wtensor){.name = wk_strdup(name), .type = type, .ndim = ndim, .data = data, .nbytes = nbytes, .offset = w->data_size};
    if (!t->name) return WICK_ENOMEM;
    for (int d = 0; d < 4; d++) t->ne[d] = d < ndim ? ne[d] : 1;
    w->n_t++;
    w->data_size += (nbytes + w->alignment - 1) / w->alignment * w->alignment;
    return WICK_OK;
}

static wick_status wr(FILE *f, const void *p, size_t n, const char *tmp) {
    if (n && fwrite(p, 1, n, f) != n) return wk_err(WICK_EIO, "%s: write failed: %s", tmp, strerror(errno));
    return WICK_OK;
}
static wick_status pad(FILE *f, uint64_t pos, uint32_t a, const char *tmp) {
    static const uint8_t zeros[256];
    size_t n = (size_t)((a - pos % a) % a);
    while (n) {
        size_t k = WK_MIN(n, sizeof zeros);
        if (wr(f, zeros, k, tmp)) return WICK_EIO;
        n -= k;
    }
    return WICK_OK;
}

/* Header, metadata, tensor infos, then each tensor padded to the alignment. */
static wick_status write_body(wk_gguf_writer *w, FILE *f, const char *tmp) {
    buf h = {0};
    put(&h, "GGUF", 4);
    put_u32(&h, 3);
    put_u64(&h, (uint64_t)w->n_t);
    put_u64(&h, w->n_kv);
    put(&h, w->meta.p, w->meta.n);
    for (int64_t i = 0; i < w->n_t; i++) {
        put_str(&h, w->t[i].name);
        put_u32(&h, (uint32_t)w->t[i].ndim);
        for (int d = 0; d < w->t[i].ndim; d++) put_u64(&h, (uint64_t)w->t[i].ne[d]);
        put_u32(&h, (uint32_t)w->t[i].type);
        put_u64(&h, w->t[i].offset);
    }
    wick_status st = h.oom ? wk_err(WICK_ENOMEM, "gguf writer: out of memory for the header") : wr(f, h.p, h.n, tmp);
    uint64_t pos = h.n;
    wk_free(h.p);
    if (!st) st = pad(f, pos, w->alignment, tmp);
    for (int64_t i = 0; i < w->n_t && !st; i++) {
        st = wr(f, w->t[i].data, w->t[i].nbytes, tmp);
        if (!st) st = pad(f, w->t[i].nbytes, w->alignment, tmp);
    }
    return st;
}

wick_status wk_gguf_writer_write(wk_gguf_writer *w, const char *path) {
    if (w->meta.oom) return wk_err(WICK_ENOMEM, "gguf writer: out of memory for metadata");
    size_t n = strlen(path) + 16;
    char *tmp = wk_malloc(n, "temp path");
    if (!tmp) return WICK_ENOMEM;
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        wick_status st = wk_err(WICK_EIO, "%s: cannot create temp file %s: %s", path, tmp, strerror(errno));
        wk_free(tmp);
        return st;
    }
    fchmod(fd, 0644);
    FILE *f = fdopen(fd, "wb");
    wick_status st = f ? write_body(w, f, tmp) : wk_err(WICK_EIO, "%s: fdopen failed", tmp);
    if (!st && fflush(f) != 0) st = wk_err(WICK_EIO, "%s: write failed: %s", tmp, strerror(errno));
    if (!st && fsync(fd) != 0) st = wk_err(WICK_EIO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (f ? fclose(f) != 0 : close(fd) != 0) {
        if (!st) st = wk_err(WICK_EIO, "%s: close failed: %s", tmp, strerror(errno));
    }
    if (!st && rename(tmp, path) != 0) st = wk_err(WICK_EIO, "%s: rename from %s failed: %s", path, tmp, strerror(errno));
    if (st) unlink(tmp);
    wk_free(tmp);
    return st;
}
