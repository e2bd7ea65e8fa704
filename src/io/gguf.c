/*
 * gguf.c — the GGUF reader: mmap, validate, index (format summary in gguf.h).
 *
 * Metadata is parsed twice with the same code: a first pass validates and counts
 * (values, strings, string bytes), then one allocation is made and the second pass
 * fills it, so a handle holds exactly one metadata block plus the mapping.
 */
#include "gguf.h"
#include "backend/cpu/quant.h"
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 8

struct wk_gguf {
    char *path;
    uint8_t *map;
    size_t size;
    uint32_t version, alignment;
    int64_t n_kv, n_tensors;
    wk_gguf_kv *kv;
    wk_gguf_tensor *tensors;
    void *block; /* metadata: values, string pointers, lengths, characters */
};

/* Parse cursor; the pools are NULL in the counting pass. */
typedef struct {
    const char *path;
    const uint8_t *p;
    size_t pos, size;
    wk_gguf_val *vals; uint64_t n_vals;
    const char **strs; uint64_t *lens; uint64_t n_strs;
    char *chars; uint64_t n_chars;
} cur;

static const uint8_t g_type_size[WK_GGUF_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
static const char *g_type_names[WK_GGUF_NTYPES] = {"UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32",
    "FLOAT32", "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"};

size_t wk_gguf_type_size(int t) { return (t >= 0 && t < WK_GGUF_NTYPES) ? g_type_size[t] : 0; }
const char *wk_gguf_type_name(int t) { return (t >= 0 && t < WK_GGUF_NTYPES) ? g_type_names[t] : "unknown"; }

static wick_status need(cur *c, uint64_t n, const char *what) {
    if (n > c->size - c->pos)
        return wk_err(WICK_EFORMAT, "%s: %s: %llu bytes needed at offset %zu but the file has %zu bytes (truncated?)",
                      c->path, what, (unsigned long long)n, c->pos, c->size);
    return WICK_OK;
}
static wick_status rd_u32(cur *c, uint32_t *v, const char *what) {
    if (need(c, 4, what)) return WICK_EFORMAT;
    memcpy(v, c->p + c->pos, 4);
    c->pos += 4;
    return WICK_OK;
}
static wick_status rd_u64(cur *c, uint64_t *v, const char *what) {
    if (need(c, 8, what)) return WICK_EFORMAT;
    memcpy(v, c->p + c->pos, 8);
    c->pos += 8;
    return WICK_OK;
}

/* Reads a string; stores a NUL-terminated copy into the pools when filling. */
static wick_status rd_str(cur *c, const char **s, uint64_t *len, const char *what) {
    uint64_t n;
    if (rd_u64(c, &n, what)) return WICK_EFORMAT;
    if (n > c->size - c->pos)
        return wk_err(WICK_EFORMAT, "%s: %s: string length %llu at offset %zu runs past the end of the file (%zu bytes)",
                      c->path, what, (unsigned long long)n, c->pos - 8, c->size);
    if (c->chars) {
        char *d = c->chars + c->n_chars;
        memcpy(d, c->p + c->pos, n);
        d[n] = 0;
        c->strs[c->n_strs] = d;
        c->lens[c->n_strs] = n;
        if (s) *s = d;
    }
    if (len) *len = n;
    c->n_strs++;
    c->n_chars += n + 1;
    c->pos += n;
    return WICK_OK;
}

static wick_status parse_val(cur *c, wk_gguf_type t, wk_gguf_val *v, int depth, const char *key);

static wick_status parse_arr(cur *c, wk_gguf_val *v, int depth, const char *key) {
    uint32_t et;
    uint64_t n;
    if (rd_u32(c, &et, key) || rd_u64(c, &n, key)) return WICK_EFORMAT;
    if (et >= WK_GGUF_NTYPES)
        return wk_err(WICK_EFORMAT, "%s: %s: unknown array element type %u", c->path, key, et);
    if (depth >= MAX_DEPTH)
        return wk_err(WICK_EFORMAT, "%s: %s: arrays nested deeper than %d", c->path, key, MAX_DEPTH);
    /* every element takes at least one byte (a string or array at least 8): bound n by the file */
    uint64_t min_el = g_type_size[et] ? g_type_size[et] : 8;
    if (n > (c->size - c->pos) / min_el)
        return wk_err(WICK_EFORMAT, "%s: %s: array of %llu %s elements runs past the end of the file",
                      c->path, key, (unsigned long long)n, g_type_names[et]);
    if (v) { v->elem = (wk_gguf_type)et; v->n = n; v->raw = c->p + c->pos; }
    if (g_type_size[et]) {
        if (et == WK_GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (c->p[c->pos + i] > 1)
                    return wk_err(WICK_EFORMAT, "%s: %s: bool element %llu has value %u (expected 0 or 1)",
                                  c->path, key, (unsigned long long)i, c->p[c->pos + i]);
        c->pos += n * g_type_size[et];
        return WICK_OK;
    }
    if (et == WK_GGUF_STRING) {
        if (v && c->strs) { v->str = c->strs + c->n_strs; v->str_len = c->lens + c->n_strs; }
        for (uint64_t i = 0; i < n; i++)
            if (rd_str(c, NULL, NULL, key)) return WICK_EFORMAT;
        return WICK_OK;
    }
    wk_gguf_val *items = c->vals ? c->vals + c->n_vals : NULL;
    if (v) v->items = items;
    c->n_vals += n;
    for (uint64_t i = 0; i < n; i++)
        if (parse_val(c, WK_GGUF_ARRAY, items ? &items[i] : NULL, depth + 1, key)) return WICK_EFORMAT;
    return WICK_OK;
}

/* Parses one value of type t (already read) into v (NULL in the counting pass). */
static wick_status parse_val(cur *c, wk_gguf_type t, wk_gguf_val *v, int depth, const char *key) {
    if (v) { memset(v, 0, sizeof *v); v->type = t; v->n = 1; v->raw = c->p + c->pos; }
    if (t == WK_GGUF_ARRAY) return parse_arr(c, v, depth, key);
    if (t == WK_GGUF_STRING) {
        if (v && c->strs) { v->str = c->strs + c->n_strs; v->str_len = c->lens + c->n_strs; }
        return rd_str(c, NULL, NULL, key);
    }
    if (need(c, g_type_size[t], key)) return WICK_EFORMAT;
    if (t == WK_GGUF_BOOL && c->p[c->pos] > 1)
        return wk_err(WICK_EFORMAT, "%s: %s: bool has value %u (expected 0 or 1)", c->path, key, c->p[c->pos]);
    c->pos += g_type_size[t];
    return WICK_OK;
}

/* One pass over the key/value section. kv is NULL in the counting pass. */
static wick_status parse_kvs(cur *c, int64_t n_kv, wk_gguf_kv *kv) {
    for (int64_t i = 0; i < n_kv; i++) {
        const char *key = NULL;
        uint64_t klen = 0;
        char name[128];
        snprintf(name, sizeof name, "key of metadata entry %lld", (long long)i);
        if (rd_str(c, &key, &klen, name)) return WICK_EFORMAT;
        snprintf(name, sizeof name, "%.*s", (int)WK_MIN(klen, 100), (const char *)c->p + c->pos - klen);
        if (klen == 0 || memchr(c->p + c->pos - klen, 0, klen))
            return wk_err(WICK_EFORMAT, "%s: metadata entry %lld: key is empty or contains a NUL byte", c->path, (long long)i);
        if (kv) kv[i].key = key;
        uint32_t t;
        if (rd_u32(c, &t, "value type")) return WICK_EFORMAT;
        if (t >= WK_GGUF_NTYPES)
            return wk_err(WICK_EFORMAT, "%s: metadata key '%s': unknown value type %u", c->path, name, t);
        char what[160];
        snprintf(what, sizeof what, "metadata key '%s'", name);
        if (parse_val(c, (wk_gguf_type)t, kv ? &kv[i].val : NULL, 0, what)) return WICK_EFORMAT;
    }
    return WICK_OK;
}

/* One pass over the tensor infos (t NULL when counting): shapes and types only. */
static wick_status parse_tensor_infos(cur *c, int64_t n, wk_gguf_tensor *t) {
    for (int64_t i = 0; i < n; i++) {
        const char *nm = NULL;
        uint64_t len = 0;
        char name[128], what[64];
        snprintf(what, sizeof what, "name of tensor %lld", (long long)i);
        if (rd_str(c, &nm, &len, what)) return WICK_EFORMAT;
        snprintf(name, sizeof name, "%.*s", (int)WK_MIN(len, 100), (const char *)c->p + c->pos - len);
        char tw[140];
        snprintf(tw, sizeof tw, "tensor '%s'", name);
        uint32_t nd, type;
        if (rd_u32(c, &nd, tw)) return WICK_EFORMAT;
        if (len == 0 || nd < 1 || nd > 4)
            return wk_err(WICK_EFORMAT, "%s: tensor %lld '%s': %s", c->path, (long long)i, name,
                          len == 0 ? "empty name" : "number of dimensions must be 1..4");
        int64_t ne[4] = {1, 1, 1, 1}, nel = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t v;
            if (rd_u64(c, &v, tw)) return WICK_EFORMAT;
            if (v == 0 || v > (uint64_t)INT64_MAX / (uint64_t)nel)
                return wk_err(WICK_EFORMAT, "%s: tensor '%s': dimension %u = %llu is zero or makes the element count overflow",
                              c->path, name, d, (unsigned long long)v);
            ne[d] = (int64_t)v;
            nel *= ne[d];
        }
        uint64_t off;
        if (rd_u32(c, &type, tw) || rd_u64(c, &off, tw)) return WICK_EFORMAT;
        int bs = wk_qtype_block((int)type);
        if (bs == 0) return wk_err(WICK_EFORMAT, "%s: tensor '%s': unknown ggml type %u", c->path, name, type);
        if (ne[0] % bs)
            return wk_err(WICK_EFORMAT, "%s: tensor '%s': first dimension %lld is not a multiple of %s's block size %d",
                          c->path, name, (long long)ne[0], wk_qtype_name((int)type), bs);
        uint64_t blocks = (uint64_t)(nel / bs), tb = (uint64_t)wk_qtype_bytes((int)type);
        if (blocks > SIZE_MAX / tb) return wk_err(WICK_EFORMAT, "%s: tensor '%s': byte size overflows", c->path, name);
        if (t) {
            t[i] = (wk_gguf_tensor){.name = nm, .type = (int)type, .ndim = (int)nd, .nelem = nel, .offset = off,
                                    .nbytes = (size_t)(blocks * tb)};
            memcpy(t[i].ne, ne, sizeof ne);
        }
    }
    return WICK_OK;
}

static int cmp_kv(const void *a, const void *b) {
    return strcmp((*(const wk_gguf_kv *const *)a)->key, (*(const wk_gguf_kv *const *)b)->key);
}
static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const wk_gguf_tensor *const *)a)->name, (*(const wk_gguf_tensor *const *)b)->name);
}
static int cmp_tensor_off(const void *a, const void *b) {
    uint64_t x = (*(const wk_gguf_tensor *const *)a)->offset, y = (*(const wk_gguf_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
}

/* Duplicate keys and tensor names, via sorted pointer arrays. */
static wick_status check_unique(wk_gguf *g) {
    size_t n = (size_t)WK_MAX(g->n_kv, g->n_tensors);
    const void **ix = wk_malloc((n ? n : 1) * sizeof *ix, "gguf index");
    if (!ix) return WICK_ENOMEM;
    wick_status st = WICK_OK;
    for (int64_t i = 0; i < g->n_kv; i++) ix[i] = &g->kv[i];
    qsort(ix, (size_t)g->n_kv, sizeof *ix, cmp_kv);
    for (int64_t i = 1; i < g->n_kv && !st; i++)
        if (!cmp_kv(&ix[i - 1], &ix[i]))
            st = wk_err(WICK_EFORMAT, "%s: metadata key '%s' appears twice", g->path, ((const wk_gguf_kv *)ix[i])->key);
    for (int64_t i = 0; i < g->n_tensors && !st; i++) ix[i] = &g->tensors[i];
    if (!st) qsort(ix, (size_t)g->n_tensors, sizeof *ix, cmp_tensor_name);
    for (int64_t i = 1; i < g->n_tensors && !st; i++)
        if (!cmp_tensor_name(&ix[i - 1], &ix[i]))
            st = wk_err(WICK_EFORMAT, "%s: tensor name '%s' appears twice", g->path, ((const wk_gguf_tensor *)ix[i])->name);
    wk_free(ix);
    return st;
}

/* general.alignment: a UINT32 power of two (default 32). */
static wick_status read_alignment(wk_gguf *g) {
    g->alignment = WK_GGUF_DEFAULT_ALIGNMENT;
    const wk_gguf_val *v = wk_gguf_find(g, "general.alignment");
    if (!v) return WICK_OK;
    if (v->type != WK_GGUF_U32)
        return wk_err(WICK_EFORMAT, "%s: metadata key 'general.alignment' is %s, expected UINT32", g->path, wk_gguf_type_name(v->type));
    uint32_t a;
    memcpy(&a, v->raw, 4);
    if (a == 0 || (a & (a - 1)))
        return wk_err(WICK_EFORMAT, "%s: general.alignment = %u is not a power of two", g->path, a);
    g->alignment = a;
    return WICK_OK;
}

/* Tensor data: offsets aligned, inside the file, not overlapping. info_end = end of tensor infos. */
static wick_status place_tensors(wk_gguf *g, size_t info_end) {
    uint64_t a = g->alignment, start = (info_end + a - 1) / a * a;
    if (g->n_tensors == 0) return WICK_OK;
    if (start > g->size)
        return wk_err(WICK_EFORMAT, "%s: data section would start at %llu, past the end of the file (%zu bytes)", g->path,
                      (unsigned long long)start, g->size);
    uint64_t avail = g->size - start;
    const wk_gguf_tensor **ix = wk_malloc((size_t)g->n_tensors * sizeof *ix, "gguf index");
    if (!ix) return WICK_ENOMEM;
    wick_status st = WICK_OK;
    for (int64_t i = 0; i < g->n_tensors && !st; i++) {
        wk_gguf_tensor *t = &g->tensors[i];
        ix[i] = t;
        if (t->offset % a)
            st = wk_err(WICK_EFORMAT, "%s: tensor '%s': data offset %llu is not a multiple of the alignment %u", g->path,
                        t->name, (unsigned long long)t->offset, g->alignment);
        else if (t->offset > avail || t->nbytes > avail - t->offset)
            st = wk_err(WICK_EFORMAT, "%s: tensor '%s': data [%llu, +%zu) runs past the end of the file (data section has %llu bytes)",
                        g->path, t->name, (unsigned long long)t->offset, t->nbytes, (unsigned long long)avail);
        else
            t->data = g->map + start + t->offset;
    }
    if (!st) qsort(ix, (size_t)g->n_tensors, sizeof *ix, cmp_tensor_off);
    for (int64_t i = 1; i < g->n_tensors && !st; i++)
        if (ix[i - 1]->offset + ix[i - 1]->nbytes > ix[i]->offset)
            st = wk_err(WICK_EFORMAT, "%s: tensors '%s' and '%s' overlap (offsets %llu +%zu and %llu)", g->path, ix[i - 1]->name,
                        ix[i]->name, (unsigned long long)ix[i - 1]->offset, ix[i - 1]->nbytes, (unsigned long long)ix[i]->offset);
    wk_free((void *)ix);
    return st;
}

static wick_status map_file(wk_gguf *g) {
    int fd = open(g->path, O_RDONLY);
    if (fd < 0) return wk_err(WICK_EIO, "%s: cannot open: %s", g->path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return wk_err(WICK_EIO, "%s: not a regular file", g->path);
    }
    g->size = (size_t)sb.st_size;
    if (g->size < 24) {
        close(fd);
        return wk_err(WICK_EFORMAT, "%s: %zu bytes is too short for a GGUF header (24 bytes)", g->path, g->size);
    }
    g->map = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (g->map == MAP_FAILED) {
        g->map = NULL;
        return wk_err(WICK_EIO, "%s: mmap failed: %s", g->path, strerror(errno));
    }
    return WICK_OK;
}

static wick_status read_header(wk_gguf *g, cur *c) {
    if (memcmp(g->map, "GGUF", 4) != 0)
        return wk_err(WICK_EFORMAT, "%s: bad magic %02x %02x %02x %02x (expected \"GGUF\")", g->path, g->map[0], g->map[1],
                      g->map[2], g->map[3]);
    c->pos = 4;
    uint64_t nt = 0, nkv = 0;
    rd_u32(c, &g->version, "version");
    if (g->version != 2 && g->version != 3)
        return wk_err(WICK_EFORMAT, "%s: GGUF version %u not supported (expected 2 or 3%s)", g->path, g->version,
                      g->version == 1 ? "; version 1 is obsolete" : g->version > 0xffff ? "; big-endian file?" : "");
    rd_u64(c, &nt, "tensor count");
    rd_u64(c, &nkv, "metadata count");
    /* each metadata entry takes >= 13 bytes, each tensor info >= 29 */
    if (nkv > (g->size - c->pos) / 13)
        return wk_err(WICK_EFORMAT, "%s: metadata count %llu is larger than the file can hold", g->path, (unsigned long long)nkv);
    if (nt > (g->size - c->pos) / 29)
        return wk_err(WICK_EFORMAT, "%s: tensor count %llu is larger than the file can hold", g->path, (unsigned long long)nt);
    g->n_tensors = (int64_t)nt;
    g->n_kv = (int64_t)nkv;
    return WICK_OK;
}

/* Both passes over metadata + tensor infos; the second fills one allocation. */
static wick_status parse_all(wk_gguf *g) {
    cur c = {.path = g->path, .p = g->map, .size = g->size};
    if (read_header(g, &c)) return WICK_EFORMAT;
    size_t start = c.pos;
    if (parse_kvs(&c, g->n_kv, NULL) || parse_tensor_infos(&c, g->n_tensors, NULL)) return WICK_EFORMAT;
    uint64_t nv = c.n_vals, ns = c.n_strs, nc = c.n_chars; /* all bounded by the file size */
    size_t bytes = (size_t)g->n_kv * sizeof(wk_gguf_kv) + (size_t)g->n_tensors * sizeof(wk_gguf_tensor) +
                   nv * sizeof(wk_gguf_val) + ns * (sizeof(char *) + sizeof(uint64_t)) + nc;
    uint8_t *b = g->block = wk_calloc(bytes ? bytes : 1, "gguf metadata");
    if (!b) return WICK_ENOMEM;
    g->kv = (wk_gguf_kv *)b;
    b += (size_t)g->n_kv * sizeof(wk_gguf_kv);
    g->tensors = (wk_gguf_tensor *)b;
    b += (size_t)g->n_tensors * sizeof(wk_gguf_tensor);
    cur f = {.path = g->path, .p = g->map, .size = g->size, .pos = start, .vals = (wk_gguf_val *)b};
    b += nv * sizeof(wk_gguf_val);
    f.strs = (const char **)b;
    b += ns * sizeof(char *);
    f.lens = (uint64_t *)b;
    f.chars = (char *)(b + ns * sizeof(uint64_t));
    if (parse_kvs(&f, g->n_kv, g->kv) || parse_tensor_infos(&f, g->n_tensors, g->tensors)) return WICK_EFORMAT;
    wick_status st = check_unique(g);
    if (!st) st = read_alignment(g);
    return st ? st : place_tensors(g, f.pos);
}

wick_status wk_gguf_open(const char *path, wk_gguf **out) {
    *out = NULL;
    wk_gguf *g = wk_calloc(sizeof *g, "gguf handle");
    if (!g) return WICK_ENOMEM;
    g->path = wk_strdup(path);
    wick_status st = g->path ? map_file(g) : WICK_ENOMEM;
    if (!st) st = parse_all(g);
    if (st) {
        wk_gguf_close(g);
        return st;
    }
    *out = g;
    return WICK_OK;
}

void wk_gguf_close(wk_gguf *g) {
    if (!g) return;
    if (g->map) munmap(g->map, g->size);
    wk_free(g->block);
    wk_free(g->path);
    wk_free(g);
}

/* ------------------------------------------------------------ accessors */
const char *wk_gguf_path(const wk_gguf *g) { return g->path; }
uint32_t wk_gguf_version(const wk_gguf *g) { return g->version; }
uint32_t wk_gguf_alignment(const wk_gguf *g) { return g->alignment; }
int64_t wk_gguf_kv_count(const wk_gguf *g) { return g->n_kv; }
int64_t wk_gguf_tensor_count(const wk_gguf *g) { return g->n_tensors; }
const wk_gguf_kv *wk_gguf_kv_at(const wk_gguf *g, int64_t i) { return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL; }
const wk_gguf_tensor *wk_gguf_tensor_at(const wk_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const wk_gguf_val *wk_gguf_find(const wk_gguf *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i].val;
    return NULL;
}

const wk_gguf_tensor *wk_gguf_find_tensor(const wk_gguf *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

static bool is_int_type(int t) {
    return t == WK_GGUF_U8 || t == WK_GGUF_I8 || t == WK_GGUF_U16 || t == WK_GGUF_I16 || t == WK_GGUF_U32 ||
           t == WK_GGUF_I32 || t == WK_GGUF_U64 || t == WK_GGUF_I64 || t == WK_GGUF_BOOL;
}

/* Reads element i of raw data of fixed-size type t as int64 (u64 above INT64_MAX saturates). */
static int64_t raw_int(const uint8_t *p, int t, uint64_t i) {
    p += i * g_type_size[t];
    uint64_t u = 0;
    memcpy(&u, p, g_type_size[t]);
    switch (t) {
    case WK_GGUF_I8: return (int8_t)u;
    case WK_GGUF_I16: return (int16_t)u;
    case WK_GGUF_I32: return (int32_t)u;
    case WK_GGUF_I64: return (int64_t)u;
    case WK_GGUF_U64: return u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
    default: return (int64_t)u;
    }
}
static double raw_float(const uint8_t *p, int t, uint64_t i) {
    if (t == WK_GGUF_F32) { float f; memcpy(&f, p + 4 * i, 4); return f; }
    if (t == WK_GGUF_F64) { double d; memcpy(&d, p + 8 * i, 8); return d; }
    return (double)raw_int(p, t, i);
}

int64_t wk_gguf_val_int(const wk_gguf_val *v, uint64_t i) {
    int t = v->type == WK_GGUF_ARRAY ? v->elem : v->type;
    if (i >= v->n || !g_type_size[t]) return 0;
    return (t == WK_GGUF_F32 || t == WK_GGUF_F64) ? (int64_t)raw_float(v->raw, t, i) : raw_int(v->raw, t, i);
}
double wk_gguf_val_float(const wk_gguf_val *v, uint64_t i) {
    int t = v->type == WK_GGUF_ARRAY ? v->elem : v->type;
    if (i >= v->n || !g_type_size[t]) return 0;
    return raw_float(v->raw, t, i);
}

static wick_status lookup(const wk_gguf *g, const char *key, const wk_gguf_val **v) {
    *v = wk_gguf_find(g, key);
    if (!*v) return wk_err(WICK_EFORMAT, "%s: metadata key '%s' missing", g->path, key);
    return WICK_OK;
}
static wick_status bad_type(const wk_gguf *g, const char *key, const wk_gguf_val *v, const char *want) {
    return wk_err(WICK_EFORMAT, "%s: metadata key '%s' is %s, expected %s", g->path, key, wk_gguf_type_name(v->type), want);
}

wick_status wk_gguf_get_int(const wk_gguf *g, const char *key, int64_t *out) {
    const wk_gguf_val *v;
    if (lookup(g, key, &v)) return WICK_EFORMAT;
    if (!is_int_type(v->type)) return bad_type(g, key, v, "an integer");
    uint64_t u = 0;
    if (v->type == WK_GGUF_U64 && (memcpy(&u, v->raw, 8), u > (uint64_t)INT64_MAX))
        return wk_err(WICK_EFORMAT, "%s: metadata key '%s' = %llu is out of range", g->path, key, (unsigned long long)u);
    *out = raw_int(v->raw, v->type, 0);
    return WICK_OK;
}
wick_status wk_gguf_get_uint(const wk_gguf *g, const char *key, uint64_t *out) {
    const wk_gguf_val *v;
    if (lookup(g, key, &v)) return WICK_EFORMAT;
    if (!is_int_type(v->type)) return bad_type(g, key, v, "an unsigned integer");
    if (v->type == WK_GGUF_U64) { memcpy(out, v->raw, 8); return WICK_OK; }
    int64_t i = raw_int(v->raw, v->type, 0);
    if (i < 0) return wk_err(WICK_EFORMAT, "%s: metadata key '%s' = %lld is negative", g->path, key, (long long)i);
    *out = (uint64_t)i;
    return WICK_OK;
}
wick_status wk_gguf_get_float(const wk_gguf *g, const char *key, double *out) {
    const wk_gguf_val *v;
    if (lookup(g, key, &v)) return WICK_EFORMAT;
    if (!g_type_size[v->type] || v->type == WK_GGUF_BOOL) return bad_type(g, key, v, "a number");
    *out = raw_float(v->raw, v->type, 0);
    return WICK_OK;
}
wick_status wk_gguf_get_bool(const wk_gguf *g, const char *key, bool *out) {
    const wk_gguf_val *v;
    if (lookup(g, key, &v)) return WICK_EFORMAT;
    if (v->type != WK_GGUF_BOOL) return bad_type(g, key, v, "BOOL");
    *out = v->raw[0] != 0;
    return WICK_OK;
}
wick_status wk_gguf_get_str(const wk_gguf *g, const char *key, const char **out) {
    const wk_gguf_val *v;
    if (lookup(g, key, &v)) return WICK_EFORMAT;
    if (v->type != WK_GGUF_STRING) return bad_type(g, key, v, "STRING");
    *out = v->str[0];
    return WICK_OK;
}
wick_status wk_gguf_get_arr(const wk_gguf *g, const char *key, wk_gguf_type elem, const wk_gguf_val **out) {
    const wk_gguf_val *v;
    if (lookup(g, key, &v)) return WICK_EFORMAT;
    if (v->type != WK_GGUF_ARRAY) return bad_type(g, key, v, "ARRAY");
    if (elem != WK_GGUF_NTYPES && v->elem != elem)
        return wk_err(WICK_EFORMAT, "%s: metadata key '%s' is an array of %s, expected an array of %s", g->path, key,
                      wk_gguf_type_name(v->elem), wk_gguf_type_name(elem));
    *out = v;
    return WICK_OK;
}
