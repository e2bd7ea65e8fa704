/*
 * safetensors.c — mmap'd, fully validated safetensors reader and an atomic writer.
 *
 * Validation: the file holds at least the 8-byte header length; that length is
 * bounded (100 MB, as the reference implementation) and inside the file; the header
 * is a JSON object without duplicate keys; each entry has a known dtype, a shape of
 * non-negative dims, and data_offsets [begin,end] with end-begin == numel*dtype size,
 * inside the data section; entries do not overlap.
 */
#define _GNU_SOURCE
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u * 1024u * 1024u)

struct wick_st {
    char *path;
    uint8_t *map;
    size_t map_len;
    const uint8_t *data; /* start of the data section */
    size_t data_len;
    int n;
    wick_tensor_view *t; /* sorted by name for bsearch */
    char *names;         /* storage of the names */
};

static int dtype_from_name(const char *s) {
    for (int t = 0; t < WICK_DT_COUNT; t++)
        if (!strcmp(s, wick_dtype_name((wick_dtype)t))) return t;
    return -1;
}

static int cmp_view_name(const void *a, const void *b) {
    return strcmp(((const wick_tensor_view *)a)->name, ((const wick_tensor_view *)b)->name);
}

typedef struct {
    uint64_t b, e;
    int idx;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->b < y->b ? -1 : x->b > y->b ? 1 : (x->e < y->e ? -1 : x->e > y->e);
}

/* Parses one header entry into v (name already set). off gets its data offsets. */
static wick_status parse_entry(const char *path, const char *name, json_t *e, size_t data_len, wick_tensor_view *v,
                               span *off) {
    if (!json_is_object(e)) return wk_err(WICK_EFORMAT, "%s: tensor '%s': header entry is not an object", path, name);
    json_t *jd = json_object_get(e, "dtype"), *js = json_object_get(e, "shape"), *jo = json_object_get(e, "data_offsets");
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo) || json_array_size(jo) != 2)
        return wk_err(WICK_EFORMAT, "%s: tensor '%s': needs string dtype, array shape and 2 data_offsets", path, name);
    int dt = dtype_from_name(json_string_value(jd));
    if (dt < 0) return wk_err(WICK_EFORMAT, "%s: tensor '%s': unknown dtype '%s'", path, name, json_string_value(jd));
    v->dtype = (wick_dtype)dt;
    size_t nd = json_array_size(js);
    if (nd > WICK_MAX_DIMS) return wk_err(WICK_EFORMAT, "%s: tensor '%s': %zu dims (max %d)", path, name, nd, WICK_MAX_DIMS);
    v->ndim = (int)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return wk_err(WICK_EFORMAT, "%s: tensor '%s': shape[%zu] is not a non-negative integer", path, name, i);
        uint64_t di = (uint64_t)json_integer_value(d);
        if (di && numel > UINT64_MAX / di) return wk_err(WICK_EFORMAT, "%s: tensor '%s': shape overflows", path, name);
        numel *= di;
        v->shape[i] = (int64_t)di;
    }
    json_t *b = json_array_get(jo, 0), *en = json_array_get(jo, 1);
    if (!json_is_integer(b) || !json_is_integer(en) || json_integer_value(b) < 0 || json_integer_value(en) < json_integer_value(b))
        return wk_err(WICK_EFORMAT, "%s: tensor '%s': data_offsets must be integers with 0 <= begin <= end", path, name);
    off->b = (uint64_t)json_integer_value(b);
    off->e = (uint64_t)json_integer_value(en);
    size_t es = wick_dtype_size(v->dtype);
    if (numel > UINT64_MAX / es || numel * es != off->e - off->b)
        return wk_err(WICK_EFORMAT, "%s: tensor '%s': %s shape needs %llu bytes but data_offsets span %llu", path, name,
                      wick_dtype_name(v->dtype), (unsigned long long)(numel * es), (unsigned long long)(off->e - off->b));
    if (off->e > data_len)
        return wk_err(WICK_EFORMAT, "%s: tensor '%s': data_offsets end %llu past the end of the data (%zu bytes)", path,
                      name, (unsigned long long)off->e, data_len);
    return WICK_OK;
}

static wick_status parse_header(wick_st *f, const char *hdr, size_t hlen) {
    json_error_t jerr;
    json_t *root = json_loadb(hdr, hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return wk_err(WICK_EFORMAT, "%s: header JSON: %s (line %d column %d)", f->path, jerr.text, jerr.line, jerr.column);
    wick_status st = WICK_OK;
    span *spans = NULL;
    if (!json_is_object(root)) {
        st = wk_err(WICK_EFORMAT, "%s: header is not a JSON object", f->path);
        goto done;
    }
    size_t n = json_object_size(root), names_len = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) names_len += strlen(key) + 1;
    f->t = wk_calloc((n ? n : 1) * sizeof *f->t, "safetensors index");
    f->names = wk_malloc(names_len + 1, "safetensors names");
    spans = wk_malloc((n ? n : 1) * sizeof *spans, "safetensors spans");
    if (!f->t || !f->names || !spans) {
        st = WICK_ENOMEM;
        goto done;
    }
    char *np = f->names;
    int k = 0;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val)) {
                st = wk_err(WICK_EFORMAT, "%s: __metadata__ is not an object", f->path);
                goto done;
            }
            continue;
        }
        size_t kl = strlen(key) + 1;
        memcpy(np, key, kl);
        f->t[k].name = np;
        np += kl;
        if ((st = parse_entry(f->path, key, val, f->data_len, &f->t[k], &spans[k])) != WICK_OK) goto done;
        spans[k].idx = k;
        f->t[k].data = f->data + spans[k].b;
        k++;
    }
    f->n = k;
    qsort(spans, (size_t)k, sizeof *spans, cmp_span);
    for (int i = 1; i < k; i++) {
        if (spans[i].b < spans[i - 1].e && spans[i].e > spans[i].b) {
            st = wk_err(WICK_EFORMAT, "%s: tensors '%s' and '%s' have overlapping data_offsets", f->path,
                        f->t[spans[i - 1].idx].name, f->t[spans[i].idx].name);
            goto done;
        }
    }
    qsort(f->t, (size_t)k, sizeof *f->t, cmp_view_name);
done:
    wk_free(spans);
    json_decref(root);
    return st;
}

wick_status wick_st_open(const char *path, wick_st **out) {
    *out = NULL;
    if (!path) return wk_err(WICK_EINVAL, "safetensors: no path given");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return wk_err(WICK_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return wk_err(WICK_EIO, "%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    if (len < 8) {
        close(fd);
        return wk_err(WICK_EFORMAT, "%s: file is %zu bytes, too short for a safetensors header", path, len);
    }
    uint8_t *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return wk_err(WICK_EIO, "%s: mmap: %s", path, strerror(errno));
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | map[i];
    wick_st *f = wk_calloc(sizeof *f, "safetensors");
    if (!f) {
        munmap(map, len);
        return WICK_ENOMEM;
    }
    f->map = map;
    f->map_len = len;
    f->path = wk_strdup(path);
    wick_status st;
    if (hlen > ST_MAX_HEADER) {
        st = wk_err(WICK_EFORMAT, "%s: header length %llu exceeds the 100 MB limit", path, (unsigned long long)hlen);
    } else if (hlen > len - 8) {
        st = wk_err(WICK_EFORMAT, "%s: header length %llu runs past the end of the file (%zu bytes): truncated?", path,
                    (unsigned long long)hlen, len);
    } else {
        f->data = map + 8 + hlen;
        f->data_len = len - 8 - (size_t)hlen;
        st = parse_header(f, (const char *)map + 8, (size_t)hlen);
    }
    if (st != WICK_OK) {
        wick_st_close(f);
        return st;
    }
    madvise(map, len, MADV_WILLNEED);
    *out = f;
    return WICK_OK;
}

void wick_st_close(wick_st *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    wk_free(f->t);
    wk_free(f->names);
    wk_free(f->path);
    wk_free(f);
}

int wick_st_count(const wick_st *f) { return f ? f->n : 0; }

const char *wk_st_path(const wick_st *f) { return f->path; }

wick_status wick_st_get(const wick_st *f, int i, wick_tensor_view *out) {
    if (i < 0 || i >= f->n) return wk_err(WICK_ERANGE, "%s: tensor index %d outside [0,%d)", f->path, i, f->n);
    *out = f->t[i];
    return WICK_OK;
}

const wick_tensor_view *wk_st_lookup(const wick_st *f, const char *name) {
    wick_tensor_view key = {.name = name};
    return f->n ? bsearch(&key, f->t, (size_t)f->n, sizeof *f->t, cmp_view_name) : NULL;
}

wick_status wick_st_find(const wick_st *f, const char *name, wick_tensor_view *out) {
    const wick_tensor_view *v = wk_st_lookup(f, name);
    if (!v) return wk_err(WICK_EINVAL, "%s: no tensor named '%s'", f->path, name);
    *out = *v;
    return WICK_OK;
}

int64_t wk_numel(const wick_tensor_view *v) {
    int64_t n = 1;
    for (int i = 0; i < v->ndim; i++) n *= v->shape[i];
    return n;
}

/* ------------------------------------------------------------------ writer */

static wick_status write_all(int fd, const void *p, size_t n, const char *path) {
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return wk_err(WICK_EIO, "%s: write: %s", path, strerror(errno));
        }
        b += w;
        n -= (size_t)w;
    }
    return WICK_OK;
}

/* Builds the JSON header (padded with spaces to a multiple of 8 bytes). */
static char *build_header(const wick_tensor_view *t, int n, const char *meta, size_t *hlen) {
    json_t *root = json_object();
    if (meta) {
        json_error_t e;
        json_t *m = json_loads(meta, 0, &e);
        if (!json_is_object(m)) {
            json_decref(m);
            json_decref(root);
            wk_err(WICK_EINVAL, "safetensors metadata is not a JSON object");
            return NULL;
        }
        json_object_set_new(root, "__metadata__", m);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        json_t *e = json_object(), *shape = json_array();
        uint64_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++) {
            json_array_append_new(shape, json_integer(t[i].shape[d]));
            numel *= (uint64_t)t[i].shape[d];
        }
        uint64_t bytes = numel * wick_dtype_size(t[i].dtype);
        json_object_set_new(e, "dtype", json_string(wick_dtype_name(t[i].dtype)));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", json_pack("[II]", (json_int_t)off, (json_int_t)(off + bytes)));
        json_object_set_new(root, t[i].name, e);
        off += bytes;
    }
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s) {
        wk_err(WICK_ENOMEM, "safetensors: cannot build header");
        return NULL;
    }
    size_t l = strlen(s), padded = (l + 7) & ~(size_t)7;
    char *h = malloc(padded + 1);
    if (!h) {
        free(s);
        return NULL;
    }
    memcpy(h, s, l);
    memset(h + l, ' ', padded - l);
    h[padded] = 0;
    free(s);
    *hlen = padded;
    return h;
}

wick_status wk_atomic_write_begin(const char *path, char *tmp, size_t cap, int *fd) {
    snprintf(tmp, cap, "%s.tmp.%d", path, (int)getpid());
    *fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (*fd < 0) return wk_err(WICK_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    return WICK_OK;
}

wick_status wk_atomic_write_end(const char *path, const char *tmp, int fd, wick_status st) {
    if (st == WICK_OK && fsync(fd) != 0) st = wk_err(WICK_EIO, "%s: fsync: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == WICK_OK) st = wk_err(WICK_EIO, "%s: close: %s", tmp, strerror(errno));
    if (st == WICK_OK && rename(tmp, path) != 0) st = wk_err(WICK_EIO, "%s: rename: %s", path, strerror(errno));
    if (st != WICK_OK) {
        unlink(tmp);
        return st;
    }
    /* make the rename durable */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return WICK_OK;
}

wick_status wick_safetensors_write(const char *path, const wick_tensor_view *t, int n, const char *metadata_json) {
    for (int i = 0; i < n; i++) {
        if (!t[i].name || (unsigned)t[i].dtype >= WICK_DT_COUNT || t[i].ndim < 0 || t[i].ndim > WICK_MAX_DIMS)
            return wk_err(WICK_EINVAL, "%s: tensor %d: bad name, dtype or ndim", path, i);
        for (int j = 0; j < i; j++)
            if (!strcmp(t[i].name, t[j].name)) return wk_err(WICK_EINVAL, "%s: duplicate tensor name '%s'", path, t[i].name);
    }
    size_t hlen;
    char *hdr = build_header(t, n, metadata_json, &hlen);
    if (!hdr) return WICK_EINVAL;
    char tmp[4096];
    int fd;
    wick_status st = wk_atomic_write_begin(path, tmp, sizeof tmp, &fd);
    if (st != WICK_OK) {
        free(hdr);
        return st;
    }
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    st = write_all(fd, lenb, 8, tmp);
    if (st == WICK_OK) st = write_all(fd, hdr, hlen, tmp);
    for (int i = 0; i < n && st == WICK_OK; i++) {
        uint64_t bytes = (uint64_t)wk_numel(&t[i]) * wick_dtype_size(t[i].dtype);
        st = write_all(fd, t[i].data, (size_t)bytes, tmp);
    }
    free(hdr);
    return wk_atomic_write_end(path, tmp, fd, st);
}

/* Streams tensors to path: the header comes from t (data ignored); fill() produces
 * each tensor's bytes in chunks of up to `chunk` elements. Atomic like the writer. */
wick_status wk_st_write_stream(const char *path, const wick_tensor_view *t, int n, const char *meta,
                               wk_st_fill_fn fill, void *user) {
    size_t hlen;
    char *hdr = build_header(t, n, meta, &hlen);
    if (!hdr) return WICK_EINVAL;
    char tmp[4096];
    int fd;
    wick_status st = wk_atomic_write_begin(path, tmp, sizeof tmp, &fd);
    if (st) {
        free(hdr);
        return st;
    }
    const size_t chunk = (size_t)1 << 20;
    uint8_t *buf = wk_malloc(chunk * 8, "write buffer");
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    st = buf ? write_all(fd, lenb, 8, tmp) : WICK_ENOMEM;
    if (st == WICK_OK) st = write_all(fd, hdr, hlen, tmp);
    for (int i = 0; i < n && st == WICK_OK; i++) {
        size_t total = (size_t)wk_numel(&t[i]), es = wick_dtype_size(t[i].dtype);
        for (size_t off = 0; off < total && st == WICK_OK; off += chunk) {
            size_t cnt = WK_MIN(chunk, total - off);
            if ((st = fill(user, i, buf, off, cnt)) == WICK_OK) st = write_all(fd, buf, cnt * es, tmp);
        }
    }
    wk_free(buf);
    free(hdr);
    return wk_atomic_write_end(path, tmp, fd, st);
}
