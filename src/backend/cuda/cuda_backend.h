/*
 * cuda_backend.h — the CUDA backend's C entry points (no CUDA types here).
 * The backend implements the whole ops table of backend.h on one device:
 * device memory through a caching allocator, cuBLAS GEMMs (fp32 exact for f32
 * weights; bf16 weights consumed directly with fp32 accumulation), fused
 * element-wise kernels, causal attention (flash or cuBLAS prefill, split-K decode) and
 * the encoder ops (LayerNorm, GELU, fused bidirectional attention, pooling).
 * One stream per device; ops are asynchronous and ordered on it, `download`
 * and `sync` wait. A backend is used by one thread at a time. Decode steps run
 * as CUDA graphs unless the environment sets WICK_CUDA_GRAPHS=0, and through the
 * fused decode ops (matvec, rope_kv) unless it sets WICK_CUDA_FUSED=0; batched decode steps
 * of several sessions run on the batched ops (cuda_batch.cu) unless it sets WICK_CUDA_BATCH=0
 * (WICK_CUDA_BATCH_SIDE=0: their LoRA shrinks on the main stream, for comparisons).
 */
#ifndef WK_CUDA_BACKEND_H
#define WK_CUDA_BACKEND_H
#include "backend/backend.h"
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The backend for CUDA device `device` (created once, lives until exit); NULL with
 * an error naming the device when it does not exist or cannot be initialised. */
wk_backend *wk_backend_cuda(int device);

/* The same device with faster, less exact prefill attention: a flash-attention kernel
 * over the KV cache on TF32 tensor cores (~1e-3 relative, cuda_prefill.cu), and 16-bit
 * products with a bias adding it in a cuBLASLt epilogue. For models with 16-bit weights,
 * whose prefill GEMMs already round activations to bf16/f16. */
wk_backend *wk_backend_cuda_fast(int device);

/* Number of usable CUDA devices (0 when there is no driver or no GPU). */
int wk_cuda_device_count(void);

/* Device memory the backend's allocator holds: in use and cached for reuse (bytes). */
void wk_cuda_mem_stats(wk_backend *be, size_t *in_use, size_t *cached);

/* Rows per block of the batched LoRA expand over more than 4 rows (1..32; 0: chosen by shape,
 * the default; WICK_BEXP_RB sets it at creation). For tests and comparisons; graphs captured
 * before keep what they recorded. */
void wk_cuda_set_bexp_rb(wk_backend *be, int rb);

/* Op timing, for explaining a decode step: between begin and end every kernel the
 * backend launches is queued behind a kernel that holds the stream (released by a host
 * thread after 200 ms), with an event after each, so the kernels then run back to back as
 * in a graph and each one's device time is the gap to the previous event. Graphs are not
 * used meanwhile. end waits, prints a table (op, rows, count, total µs) to `out`, and
 * returns the summed device time in seconds (-1 when nothing was recorded). */
void wk_cuda_optime_begin(wk_backend *be);
double wk_cuda_optime_end(wk_backend *be, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
