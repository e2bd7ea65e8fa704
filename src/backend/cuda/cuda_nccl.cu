/*
 * cuda_nccl.cu — the NCCL communicator of src/dist/comm.h: one process drives
 * one rank per CUDA device (ncclCommInitAll) and sums the ranks' device buffers
 * with ncclAllReduce inside one group call. libnccl.so.2 is opened at run time,
 * so a build never depends on NCCL being installed; a missing library is an
 * error naming it. NVLink multicast (NVLS) is left off, as the H200 hosts need.
 *
 * The few NCCL entry points are declared here with their documented ABI
 * (ncclComm_t is a pointer, ncclFloat32 = 7, ncclSum = 0, ncclSuccess = 0).
 */
extern "C" {
#include "dist/comm.h"
}
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <stdlib.h>

typedef void *nccl_comm;
typedef int (*nccl_init_all_fn)(nccl_comm *comms, int ndev, const int *devlist);
typedef int (*nccl_allreduce_fn)(const void *send, void *recv, size_t count, int dtype, int op, nccl_comm comm,
                                 cudaStream_t stream);
typedef int (*nccl_void_fn)(void);
typedef int (*nccl_destroy_fn)(nccl_comm comm);
typedef const char *(*nccl_errstr_fn)(int res);

enum { NCCL_FLOAT32 = 7, NCCL_SUM = 0, WK_NCCL_MAX = 64 };

typedef struct {
    wk_comm base;
    void *lib;
    nccl_comm comms[WK_NCCL_MAX];
    cudaStream_t streams[WK_NCCL_MAX];
    int devs[WK_NCCL_MAX];
    nccl_allreduce_fn allreduce;
    nccl_void_fn group_start, group_end;
    nccl_destroy_fn destroy;
    nccl_errstr_fn errstr;
} wk_nccl;

static const char *nccl_msg(wk_nccl *c, int r) { return c->errstr ? c->errstr(r) : "unknown NCCL error"; }

static wick_status nccl_allreduce(wk_comm *base, float *const *bufs, size_t n) {
    wk_nccl *c = (wk_nccl *)base;
    if (n == 0) return WICK_OK;
    for (int r = 0; r < base->world; r++) { /* the ranks' backends wrote the buffers on their own streams */
        cudaSetDevice(c->devs[r]);
        cudaError_t e = cudaDeviceSynchronize();
        if (e != cudaSuccess) return wk_err(WICK_EIO, "all-reduce: device %d: %s", c->devs[r], cudaGetErrorString(e));
    }
    int res = c->group_start();
    for (int r = 0; r < base->world && res == 0; r++) {
        cudaSetDevice(c->devs[r]);
        res = c->allreduce(bufs[r], bufs[r], n, NCCL_FLOAT32, NCCL_SUM, c->comms[r], c->streams[r]);
    }
    int end = c->group_end();
    if (res == 0) res = end;
    if (res != 0) return wk_err(WICK_EIO, "all-reduce of %zu floats over %d GPUs: %s", n, base->world, nccl_msg(c, res));
    for (int r = 0; r < base->world; r++) {
        cudaSetDevice(c->devs[r]);
        cudaError_t e = cudaStreamSynchronize(c->streams[r]);
        if (e != cudaSuccess) return wk_err(WICK_EIO, "all-reduce: device %d: %s", c->devs[r], cudaGetErrorString(e));
    }
    return WICK_OK;
}

static void nccl_free(wk_comm *base) {
    wk_nccl *c = (wk_nccl *)base;
    for (int r = 0; r < base->world; r++) {
        if (c->comms[r] && c->destroy) c->destroy(c->comms[r]);
        if (c->streams[r]) cudaSetDevice(c->devs[r]), cudaStreamDestroy(c->streams[r]);
    }
    if (c->lib) dlclose(c->lib);
    free(c);
}

/* Opens libnccl and resolves the entry points; 0 on success. */
static int nccl_open(wk_nccl *c, nccl_init_all_fn *init) {
    const char *env = getenv("WICK_NCCL_LIB"); /* a libnccl.so.2 outside the loader's path (e.g. pip's) */
    const char *names[] = {env && *env ? env : "libnccl.so.2", "libnccl.so.2", "libnccl.so"};
    for (int i = 0; i < 3 && !c->lib; i++) c->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!c->lib) return wk_err(WICK_EUNSUPPORTED, "multi-GPU: cannot load NCCL (libnccl.so.2; set WICK_NCCL_LIB to its path): %s", dlerror()), -1;
    *init = (nccl_init_all_fn)dlsym(c->lib, "ncclCommInitAll");
    c->allreduce = (nccl_allreduce_fn)dlsym(c->lib, "ncclAllReduce");
    c->group_start = (nccl_void_fn)dlsym(c->lib, "ncclGroupStart");
    c->group_end = (nccl_void_fn)dlsym(c->lib, "ncclGroupEnd");
    c->destroy = (nccl_destroy_fn)dlsym(c->lib, "ncclCommDestroy");
    c->errstr = (nccl_errstr_fn)dlsym(c->lib, "ncclGetErrorString");
    if (!*init || !c->allreduce || !c->group_start || !c->group_end || !c->destroy)
        return wk_err(WICK_EUNSUPPORTED, "multi-GPU: libnccl.so.2 lacks ncclCommInitAll/ncclAllReduce"), -1;
    return 0;
}

extern "C" wick_status wk_comm_nccl(int world, const int *devs, wk_comm **out) {
    int have = 0;
    *out = NULL;
    if (world < 1 || world > WK_NCCL_MAX)
        return wk_err(WICK_EINVAL, "multi-GPU: %d GPUs requested (1..%d)", world, (int)WK_NCCL_MAX);
    if (cudaGetDeviceCount(&have) != cudaSuccess) have = 0;
    for (int r = 0; r < world; r++)
        if (devs[r] < 0 || devs[r] >= have)
            return wk_err(WICK_EINVAL, "multi-GPU: GPU %d requested, %d visible", devs[r], have);
    wk_nccl *c = (wk_nccl *)calloc(1, sizeof *c);
    if (!c) return wk_err(WICK_ENOMEM, "multi-GPU: communicator");
    c->base.name = "nccl";
    c->base.world = world;
    c->base.allreduce = nccl_allreduce;
    c->base.free = nccl_free;
    for (int r = 0; r < world; r++) c->devs[r] = devs[r];
    setenv("NCCL_NVLS_ENABLE", "0", 0); /* NVLink multicast off (see docs/MULTIGPU.md) */
    nccl_init_all_fn init = NULL;
    if (nccl_open(c, &init)) {
        nccl_free(&c->base);
        return WICK_EUNSUPPORTED;
    }
    int res = init(c->comms, world, c->devs);
    if (res != 0) {
        wick_status st = wk_err(WICK_EIO, "multi-GPU: ncclCommInitAll over %d GPUs: %s", world, nccl_msg(c, res));
        for (int r = 0; r < world; r++) c->comms[r] = NULL;
        nccl_free(&c->base);
        return st;
    }
    for (int r = 0; r < world; r++) {
        cudaSetDevice(c->devs[r]);
        if (cudaStreamCreateWithFlags(&c->streams[r], cudaStreamNonBlocking) != cudaSuccess) {
            wick_status st = wk_err(WICK_EIO, "multi-GPU: cannot create a stream on GPU %d", c->devs[r]);
            nccl_free(&c->base);
            return st;
        }
    }
    *out = &c->base;
    return WICK_OK;
}
