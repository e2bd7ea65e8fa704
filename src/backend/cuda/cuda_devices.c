/*
 * cuda_devices.c — the public device query, present in every build (0 devices
 * when the CUDA backend is not compiled in).
 */
#include "wk.h"
#ifdef WICK_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

int wick_cuda_device_count(void) {
#ifdef WICK_HAVE_CUDA
    return wk_cuda_device_count();
#else
    return 0;
#endif
}
