/*
 * safetensors.h — internal helpers around the public wick_st reader/writer.
 */
#ifndef WK_SAFETENSORS_H
#define WK_SAFETENSORS_H
#include "wk.h"

/* Borrowed pointer to the tensor named name, or NULL (no error set). */
const wick_tensor_view *wk_st_lookup(const wick_st *f, const char *name);
const char *wk_st_path(const wick_st *f);
int64_t wk_numel(const wick_tensor_view *v);

/* Atomic file writing: begin opens "path.tmp.PID"; end fsyncs, closes and renames
 * over path when st is WICK_OK (else removes the temp file). Returns the final status. */
wick_status wk_atomic_write_begin(const char *path, char *tmp, size_t cap, int *fd);
wick_status wk_atomic_write_end(const char *path, const char *tmp, int fd, wick_status st);
/* Produces n elements (starting at element off) of tensor i into buf, in its dtype. */
typedef wick_status (*wk_st_fill_fn)(void *user, int i, void *buf, size_t off, size_t n);
wick_status wk_st_write_stream(const char *path, const wick_tensor_view *t, int n, const char *meta,
                               wk_st_fill_fn fill, void *user);
#endif
