/*
 * cuda_backend.cu — the CUDA backend object: device selection, the stream and
 * cuBLAS handle, a caching device allocator (freed blocks are kept and reused
 * best-fit; the cache is released and the allocation retried when the device is
 * full), host<->device copies (large downloads staged through page-locked
 * memory), error recording, CUDA graphs (capture, replay, staleness), the table.
 */
#include "backend/cuda/cuda_internal.cuh"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define WKC_MAX_DEVICES 64

static wkc_backend *g_dev[WKC_MAX_DEVICES][2]; /* [device][exact, fast] */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

int wkc_cuda_fail(wkc_backend *b, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return 0;
    if (!b->err) {
        b->err = e == cudaErrorMemoryAllocation ? WICK_ENOMEM : WICK_EIO;
        snprintf(b->errmsg, sizeof b->errmsg, "cuda:%d: %s: %s", b->device, what, cudaGetErrorString(e));
    }
    return 1;
}

int wkc_blas_fail(wkc_backend *b, cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    if (!b->err) {
        b->err = s == CUBLAS_STATUS_ALLOC_FAILED ? WICK_ENOMEM : WICK_EIO;
        snprintf(b->errmsg, sizeof b->errmsg, "cuda:%d: %s: cuBLAS status %d", b->device, what, (int)s);
    }
    return 1;
}

void wkc_launched(wkc_backend *b, const char *kernel) { wkc_cuda_fail(b, cudaGetLastError(), kernel); }

void wkc_use(wkc_backend *b) {
    b->cast_x = NULL;
    int cur = -1;
    if (cudaGetDevice(&cur) != cudaSuccess || cur != b->device) cudaSetDevice(b->device);
}

/* ------------------------------------------------------------- allocator */

/* Frees every cached (unused) block; returns the bytes given back. */
static size_t release_cache(wkc_backend *b) {
    size_t freed = 0;
    int j = 0;
    for (int i = 0; i < b->n_blocks; i++) {
        if (b->blocks[i].used) {
            b->blocks[j++] = b->blocks[i];
            continue;
        }
        cudaFree(b->blocks[i].p);
        freed += b->blocks[i].size;
    }
    b->n_blocks = j;
    b->cached -= freed;
    return freed;
}

static size_t round_size(size_t n) {
    if (n <= ((size_t)1 << 20)) return (n + 511) & ~(size_t)511;
    return (n + ((size_t)2 << 20) - 1) & ~(((size_t)2 << 20) - 1);
}

static void *c_alloc(wk_backend *be, size_t bytes) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    size_t want = round_size(bytes ? bytes : 1);
    int best = -1;
    for (int i = 0; i < b->n_blocks; i++) {
        wkc_block *k = &b->blocks[i];
        if (!k->used && k->size >= want && k->size <= 2 * want && (best < 0 || k->size < b->blocks[best].size)) best = i;
    }
    if (best >= 0) {
        b->blocks[best].used = 1;
        b->cached -= b->blocks[best].size;
        b->in_use += b->blocks[best].size;
        return b->blocks[best].p;
    }
    if (b->n_blocks == b->cap_blocks) {
        int cap = b->cap_blocks ? 2 * b->cap_blocks : 256;
        wkc_block *nb = (wkc_block *)wk_realloc(b->blocks, sizeof(wkc_block) * (size_t)cap, "cuda allocator");
        if (!nb) return NULL;
        b->blocks = nb;
        b->cap_blocks = cap;
    }
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, want);
    if (e != cudaSuccess) {
        cudaGetLastError();
        release_cache(b);
        e = cudaMalloc(&p, want);
    }
    if (e != cudaSuccess) {
        cudaGetLastError();
        wk_err(WICK_ENOMEM, "cuda:%d: out of device memory allocating %zu bytes (%zu bytes in use)", b->device, bytes,
               b->in_use);
        return NULL;
    }
    b->blocks[b->n_blocks++] = (wkc_block){p, want, 1};
    b->in_use += want;
    return p;
}

static void c_free(wk_backend *be, void *p) {
    wkc_backend *b = wkc(be);
    if (!p) return;
    for (int i = 0; i < b->n_blocks; i++)
        if (b->blocks[i].p == p && b->blocks[i].used) {
            b->blocks[i].used = 0;
            b->in_use -= b->blocks[i].size;
            b->cached += b->blocks[i].size;
            return;
        }
    wk_log(WICK_LOG_WARN, "cuda:%d: free of %p, which the allocator does not hold", b->device, p);
}

void *wkc_scratch(wkc_backend *b, int slot, size_t bytes) {
    if (b->scr_cap[slot] >= bytes) return b->scr[slot];
    if (b->scr[slot]) {
        cudaStreamSynchronize(b->st); /* the old buffer may still be read by queued work */
        c_free(&b->be, b->scr[slot]);
    }
    b->scr_epoch++;
    b->scr_cap[slot] = 0;
    b->scr[slot] = c_alloc(&b->be, bytes + bytes / 4);
    if (!b->scr[slot]) {
        if (!b->err) {
            b->err = WICK_ENOMEM;
            snprintf(b->errmsg, sizeof b->errmsg, "%s", wick_last_error());
        }
        return NULL;
    }
    b->scr_cap[slot] = bytes + bytes / 4;
    return b->scr[slot];
}

void wk_cuda_mem_stats(wk_backend *be, size_t *in_use, size_t *cached) {
    *in_use = wkc(be)->in_use;
    *cached = wkc(be)->cached;
}

/* ------------------------------------------------------------- copies */

static void c_upload(wk_backend *be, void *dst, const void *src, size_t bytes) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    wkc_cuda_fail(b, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, b->st), "upload");
}

/* Large downloads go through a grow-only page-locked buffer (DMA at full speed, then one memcpy). */
static void c_download(wk_backend *be, void *dst, const void *src, size_t bytes) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (bytes >= ((size_t)64 << 10) && b->pinned_cap < bytes) {
        if (b->pinned) cudaFreeHost(b->pinned);
        b->pinned_cap = 0;
        if (cudaMallocHost(&b->pinned, bytes) == cudaSuccess) b->pinned_cap = bytes;
        else b->pinned = NULL, cudaGetLastError();
    }
    int staged = bytes >= ((size_t)64 << 10) && b->pinned_cap >= bytes;
    wkc_cuda_fail(b, cudaMemcpyAsync(staged ? b->pinned : dst, src, bytes, cudaMemcpyDeviceToHost, b->st), "download");
    wkc_cuda_fail(b, cudaStreamSynchronize(b->st), "download (synchronize)");
    if (staged) memcpy(dst, b->pinned, bytes);
}

static void c_sync(wk_backend *be) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    wkc_cuda_fail(b, cudaStreamSynchronize(b->st), "synchronize");
}

static wick_status c_check(wk_backend *be) {
    wkc_backend *b = wkc(be);
    wkc_cuda_fail(b, cudaGetLastError(), "kernel launch");
    wick_status st = b->err;
    if (st) wk_err(st, "%s", b->errmsg);
    b->err = WICK_OK;
    return st;
}

/* ------------------------------------------------------------- graphs */

/* A captured, instantiated graph and the scratch epoch it was captured under. */
struct wkc_graph {
    cudaGraphExec_t exec;
    unsigned epoch;
};

static void *c_graph_capture(wk_backend *be, void (*fn)(void *ctx), void *ctx) {
    wkc_backend *b = wkc(be);
    if (b->no_graphs || b->err) return NULL;
    wkc_use(b);
    unsigned epoch = b->scr_epoch;
    if (cudaStreamBeginCapture(b->st, cudaStreamCaptureModeRelaxed) != cudaSuccess) {
        cudaGetLastError();
        b->no_graphs = 1;
        return NULL;
    }
    fn(ctx);
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(b->st, &g);
    cudaGraphExec_t exec = NULL;
    if (e == cudaSuccess && b->err == WICK_OK && epoch == b->scr_epoch) e = cudaGraphInstantiate(&exec, g, 0);
    else if (e == cudaSuccess) e = cudaErrorStreamCaptureInvalidated;
    if (g) cudaGraphDestroy(g);
    wkc_graph *r = e == cudaSuccess ? (wkc_graph *)wk_malloc(sizeof *r, "cuda graph") : NULL;
    if (!r) { /* nothing ran: forget errors recorded while capturing; the caller runs fn directly */
        if (exec) cudaGraphExecDestroy(exec);
        cudaGetLastError();
        b->err = WICK_OK;
        if (e != cudaSuccess && epoch == b->scr_epoch) {
            wk_log(WICK_LOG_WARN, "cuda:%d: graph capture failed (%s); running ops directly", b->device,
                   cudaGetErrorString(e));
            b->no_graphs = 1;
        }
        return NULL;
    }
    r->exec = exec;
    r->epoch = epoch;
    wkc_cuda_fail(b, cudaGraphLaunch(exec, b->st), "graph launch");
    return r;
}

static int c_graph_replay(wk_backend *be, void *graph) {
    wkc_backend *b = wkc(be);
    wkc_graph *g = (wkc_graph *)graph;
    if (g->epoch != b->scr_epoch) return -1;
    wkc_use(b);
    return wkc_cuda_fail(b, cudaGraphLaunch(g->exec, b->st), "graph launch") ? -1 : 0;
}

static void c_graph_free(wk_backend *be, void *graph) {
    wkc_graph *g = (wkc_graph *)graph;
    if (!g) return;
    wkc_use(wkc(be));
    cudaGraphExecDestroy(g->exec);
    wk_free(g);
}

/* ------------------------------------------------------------- creation */

int wk_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

static wkc_backend *create(int device, int fast) {
    wkc_backend *b = (wkc_backend *)wk_calloc(sizeof *b, "cuda backend");
    if (!b) return NULL;
    b->device = device;
    b->tf32 = fast;
    b->be.name = "cuda";
    b->be.device_memory = 1;
    b->be.check = c_check;
    b->be.alloc = c_alloc;
    b->be.free = c_free;
    b->be.upload = c_upload;
    b->be.download = c_download;
    b->be.sync = c_sync;
    b->be.matmul = wkc_matmul;
    b->be.matmul_f32 = wkc_matmul_f32;
    b->be.lora_seg = wkc_lora_seg;
    const char *fu = getenv("WICK_CUDA_FUSED"); /* "0": decode steps from the plain ops (for comparisons) */
    if (!fu || strcmp(fu, "0")) {
        b->be.matvec = wkc_matvec;
        b->be.rope_kv = wkc_rope_kv;
    }
    b->be.rmsnorm = wkc_rmsnorm;
    b->be.rope = wkc_rope;
    b->be.attention = wkc_attention;
    b->be.swiglu = wkc_swiglu;
    b->be.add = wkc_add;
    b->be.embed = wkc_embed;
    b->be.kv_store = wkc_kv_store;
    b->be.layernorm = wkc_layernorm;
    b->be.gelu = wkc_gelu;
    b->be.attention_bidir = wkc_attention_bidir;
    b->be.pool = wkc_pool;
    b->be.graph_capture = c_graph_capture;
    b->be.graph_replay = c_graph_replay;
    b->be.graph_free = c_graph_free;
    const char *g = getenv("WICK_CUDA_GRAPHS"); /* "0": run decode steps without graphs (for comparisons) */
    b->no_graphs = g && !strcmp(g, "0");
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&b->st, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        wk_err(WICK_EIO, "cuda:%d: cannot initialise the device: %s", device, cudaGetErrorString(e));
        wk_free(b);
        return NULL;
    }
    cublasStatus_t s = cublasCreate(&b->blas);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(b->blas, b->st);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetMathMode(b->blas, CUBLAS_DEFAULT_MATH); /* no TF32: fp32 GEMMs stay exact */
    if (s != CUBLAS_STATUS_SUCCESS) {
        wk_err(WICK_EIO, "cuda:%d: cannot create the cuBLAS handle (status %d)", device, (int)s);
        cudaStreamDestroy(b->st);
        wk_free(b);
        return NULL;
    }
    return b;
}

static wk_backend *get(int device, int fast) {
    int n = wk_cuda_device_count();
    if (n == 0) {
        wk_err(WICK_EUNSUPPORTED, "cuda:%d: no CUDA device is available (no driver or no GPU)", device);
        return NULL;
    }
    if (device < 0 || device >= n || device >= WKC_MAX_DEVICES) {
        wk_err(WICK_EINVAL, "cuda:%d: no such device (%d available: cuda:0..cuda:%d)", device, n, n - 1);
        return NULL;
    }
    pthread_mutex_lock(&g_lock);
    if (!g_dev[device][fast]) g_dev[device][fast] = create(device, fast);
    wkc_backend *b = g_dev[device][fast];
    pthread_mutex_unlock(&g_lock);
    return b ? &b->be : NULL;
}

wk_backend *wk_backend_cuda(int device) { return get(device, 0); }
wk_backend *wk_backend_cuda_fast(int device) { return get(device, 1); }
