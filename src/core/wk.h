/*
 * wk.h — internal core of wick: error reporting, logging, memory accounting,
 * dtype conversions and a bump arena. Every source file includes this first.
 */
#ifndef WK_H
#define WK_H

#include "wick.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define WK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define WK_MAX(a, b) ((a) > (b) ? (a) : (b))
#define WK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Sets the thread-local error message (printf format) and returns st. */
wick_status wk_err(wick_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current error message with "prefix: ". Returns st. */
wick_status wk_err_prefix(wick_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wk_err_clear(void);

void wk_log(wick_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Accounted allocation. wk_malloc/wk_calloc set an error naming `what` and the size on
 * failure and return NULL. Memory is 64-byte aligned. wk_free(NULL) is fine. */
void *wk_malloc(size_t n, const char *what);
void *wk_calloc(size_t n, const char *what);
void *wk_realloc(void *p, size_t n, const char *what);
void wk_free(void *p);
char *wk_strdup(const char *s);

/* ---- dtype conversions (exact widening; round-to-nearest-even narrowing) */
static inline float wk_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t wk_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
float wk_f16_to_f32(uint16_t h);
uint16_t wk_f32_to_f16(float f);

/* Converts n elements of type src_t at src to f32 at dst. Returns WICK_EUNSUPPORTED for non-float types. */
wick_status wk_to_f32(float *dst, const void *src, wick_dtype src_t, size_t n);

/* ---- bump arena: one allocation, pointers carved from it, freed at once */
typedef struct {
    uint8_t *base;
    size_t cap, used, peak;
} wk_arena;

wick_status wk_arena_init(wk_arena *a, size_t cap, const char *what);
void *wk_arena_alloc(wk_arena *a, size_t n); /* 64-byte aligned; NULL (with error) when full */
void wk_arena_reset(wk_arena *a);
void wk_arena_free(wk_arena *a);

/* ---- small helpers */
double wk_now(void);                                   /* monotonic seconds */
wick_status wk_read_file(const char *path, char **out, size_t *len); /* NUL-terminated */
/* Joins dir and name into buf (returns buf). */
char *wk_path_join(char *buf, size_t cap, const char *dir, const char *name);
bool wk_file_exists(const char *path);


#endif
