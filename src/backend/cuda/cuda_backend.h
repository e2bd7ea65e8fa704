/*
 * cuda_backend.h — the CUDA backend's C entry points (no CUDA types here).
 * The backend implements the whole ops table of backend.h on one device:
 * device memory through a caching allocator, cuBLAS GEMMs (fp32 exact for f32
 * weights; bf16 weights consumed directly with fp32 accumulation), fused
 * element-wise kernels, causal attention (cuBLAS prefill, split-K decode) and
 * the encoder ops (LayerNorm, GELU, fused bidirectional attention, pooling).
 * One stream per device; ops are asynchronous and ordered on it, `download`
 * and `sync` wait. A backend is used by one thread at a time. Decode steps run
 * as CUDA graphs unless the environment sets WICK_CUDA_GRAPHS=0, and through the
 * fused decode ops (matvec, rope_kv) unless it sets WICK_CUDA_FUSED=0.
 */
#ifndef WK_CUDA_BACKEND_H
#define WK_CUDA_BACKEND_H
#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The backend for CUDA device `device` (created once, lives until exit); NULL with
 * an error naming the device when it does not exist or cannot be initialised. */
wk_backend *wk_backend_cuda(int device);

/* The same device with faster, less exact prefill attention: its score and value
 * products run on TF32 tensor cores (~1e-3 relative). For models with 16-bit weights,
 * whose prefill GEMMs already round activations to bf16/f16. */
wk_backend *wk_backend_cuda_fast(int device);

/* Number of usable CUDA devices (0 when there is no driver or no GPU). */
int wk_cuda_device_count(void);

/* Device memory the backend's allocator holds: in use and cached for reuse (bytes). */
void wk_cuda_mem_stats(wk_backend *be, size_t *in_use, size_t *cached);

#ifdef __cplusplus
}
#endif
#endif
