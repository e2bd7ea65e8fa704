/*
 * core.c — status strings, thread-local error messages, logging, accounted
 * memory, thread count, arena and file helpers.
 */
#define _GNU_SOURCE
#include "wk.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static _Thread_local char g_err[1024];

const char *wick_status_str(wick_status s) {
    switch (s) {
    case WICK_OK: return "ok";
    case WICK_EINVAL: return "invalid argument";
    case WICK_EIO: return "I/O error";
    case WICK_EFORMAT: return "bad file format";
    case WICK_ENOMEM: return "out of memory";
    case WICK_EUNSUPPORTED: return "unsupported";
    case WICK_ECANCELLED: return "cancelled";
    case WICK_ERANGE: return "out of range";
    case WICK_ESTATE: return "invalid state";
    }
    return "unknown status";
}

const char *wick_last_error(void) { return g_err; }
void wk_err_clear(void) { g_err[0] = 0; }

wick_status wk_err(wick_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return st;
}

wick_status wk_err_prefix(wick_status st, const char *fmt, ...) {
    char pre[512], old[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, g_err, sizeof old);
    size_t pl = strlen(pre), ol = strlen(old);
    if (pl > sizeof g_err - 3) pl = sizeof g_err - 3;
    memcpy(g_err, pre, pl);
    memcpy(g_err + pl, ": ", 2);
    if (ol > sizeof g_err - pl - 3) ol = sizeof g_err - pl - 3;
    memcpy(g_err + pl + 2, old, ol);
    g_err[pl + 2 + ol] = 0;
    return st;
}

/* ---------------------------------------------------------------- logging */
static wick_log_fn g_log_fn;
static void *g_log_user;
static wick_log_level g_log_max = WICK_LOG_WARN;

void wick_set_log(wick_log_fn fn, void *user, wick_log_level max_level) {
    g_log_fn = fn;
    g_log_user = user;
    g_log_max = max_level;
}

void wk_log(wick_log_level lvl, const char *fmt, ...) {
    if (lvl > g_log_max) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (g_log_fn) {
        g_log_fn(lvl, buf, g_log_user);
        return;
    }
    static const char *names[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "wick: %s: %s\n", names[lvl], buf);
}

/* ---------------------------------------------------------------- threads */
int wick_set_threads(int n) {
#ifdef _OPENMP
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
#else
    (void)n;
#endif
    extern void wk_blas_set_threads(int);
    wk_blas_set_threads(wick_get_threads());
    return wick_get_threads();
}

int wick_get_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* ---------------------------------------------------------------- memory */
typedef struct {
    size_t size;
    size_t pad[7]; /* keeps the user pointer 64-byte aligned */
} wk_hdr;

static atomic_size_t g_mem_now, g_mem_peak;

static void account(ptrdiff_t d) {
    size_t now = atomic_fetch_add(&g_mem_now, (size_t)d) + (size_t)d;
    size_t peak = atomic_load(&g_mem_peak);
    while (now > peak && !atomic_compare_exchange_weak(&g_mem_peak, &peak, now)) {
    }
}

size_t wick_mem_allocated(void) { return atomic_load(&g_mem_now); }
size_t wick_mem_peak(void) { return atomic_load(&g_mem_peak); }

void *wk_malloc(size_t n, const char *what) {
    void *p = NULL;
    if (n > SIZE_MAX - sizeof(wk_hdr) || posix_memalign(&p, 64, sizeof(wk_hdr) + n) != 0) {
        wk_err(WICK_ENOMEM, "%s: cannot allocate %zu bytes", what ? what : "allocation", n);
        return NULL;
    }
    ((wk_hdr *)p)->size = n;
    account((ptrdiff_t)n);
    return (uint8_t *)p + sizeof(wk_hdr);
}

void *wk_calloc(size_t n, const char *what) {
    void *p = wk_malloc(n, what);
    if (p) memset(p, 0, n);
    return p;
}

void wk_free(void *p) {
    if (!p) return;
    wk_hdr *h = (wk_hdr *)((uint8_t *)p - sizeof(wk_hdr));
    account(-(ptrdiff_t)h->size);
    free(h);
}

void wick_free(void *p) { wk_free(p); }

void *wk_realloc(void *p, size_t n, const char *what) {
    if (!p) return wk_malloc(n, what);
    wk_hdr *h = (wk_hdr *)((uint8_t *)p - sizeof(wk_hdr));
    size_t old = h->size;
    if (n <= old) return p;
    void *q = wk_malloc(n, what);
    if (!q) return NULL;
    memcpy(q, p, old);
    wk_free(p);
    return q;
}

char *wk_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = wk_malloc(n, "string");
    if (d) memcpy(d, s, n);
    return d;
}

/* ---------------------------------------------------------------- arena */
wick_status wk_arena_init(wk_arena *a, size_t cap, const char *what) {
    memset(a, 0, sizeof *a);
    a->base = wk_malloc(cap ? cap : 64, what);
    if (!a->base) return WICK_ENOMEM;
    a->cap = cap;
    return WICK_OK;
}

void *wk_arena_alloc(wk_arena *a, size_t n) {
    size_t off = (a->used + 63) & ~(size_t)63;
    if (off > a->cap || n > a->cap - off) {
        wk_err(WICK_ENOMEM, "arena: need %zu more bytes, %zu of %zu used", n, a->used, a->cap);
        return NULL;
    }
    a->used = off + n;
    if (a->used > a->peak) a->peak = a->used;
    return a->base + off;
}

void wk_arena_reset(wk_arena *a) { a->used = 0; }
void wk_arena_free(wk_arena *a) {
    wk_free(a->base);
    memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------- dtypes */
static const char *const dt_names[WICK_DT_COUNT] = {"F32", "BF16", "F16", "I64", "I32", "I8", "U8",
                                                    "F64", "BOOL", "I16", "U16", "U32", "U64"};
static const size_t dt_sizes[WICK_DT_COUNT] = {4, 2, 2, 8, 4, 1, 1, 8, 1, 2, 2, 4, 8};

const char *wick_dtype_name(wick_dtype t) { return (unsigned)t < WICK_DT_COUNT ? dt_names[t] : "?"; }
size_t wick_dtype_size(wick_dtype t) { return (unsigned)t < WICK_DT_COUNT ? dt_sizes[t] : 0; }

float wk_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t wk_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    int32_t exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    uint32_t man = u & 0x7fffff;
    if (((u >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = 1u << (shift - 1), rem = man & ((1u << shift) - 1);
        uint32_t r = man >> shift;
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((uint32_t)exp << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

wick_status wk_to_f32(float *dst, const void *src, wick_dtype t, size_t n) {
    switch (t) {
    case WICK_DT_F32: memcpy(dst, src, n * 4); return WICK_OK;
    case WICK_DT_BF16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = wk_bf16_to_f32(s[i]);
        return WICK_OK;
    }
    case WICK_DT_F16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = wk_f16_to_f32(s[i]);
        return WICK_OK;
    }
    case WICK_DT_F64: {
        const double *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
        return WICK_OK;
    }
    default: return wk_err(WICK_EUNSUPPORTED, "cannot convert %s to F32", wick_dtype_name(t));
    }
}

/* ---------------------------------------------------------------- files */
double wk_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

wick_status wk_read_file(const char *path, char **out, size_t *len) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return wk_err(WICK_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return wk_err(WICK_EIO, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    char *buf = wk_malloc(n + 1, path);
    if (!buf) {
        fclose(f);
        return WICK_ENOMEM;
    }
    if (n && fread(buf, 1, n, f) != n) {
        fclose(f);
        wk_free(buf);
        return wk_err(WICK_EIO, "%s: short read", path);
    }
    fclose(f);
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return WICK_OK;
}

char *wk_path_join(char *buf, size_t cap, const char *dir, const char *name) {
    size_t dl = strlen(dir);
    snprintf(buf, cap, "%s%s%s", dir, (dl && dir[dl - 1] == '/') ? "" : "/", name);
    return buf;
}

bool wk_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
