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
#include <string.h>
#include <time.h>

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

static void optime_mark(wkc_backend *b, const char *kernel);

void wkc_launched(wkc_backend *b, const char *kernel) {
    wkc_cuda_fail(b, cudaGetLastError(), kernel);
    if (b->opt) optime_mark(b, kernel);
    b->optag = 0;
}

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

#define WKC_UP_SLOTS 16
#define WKC_UP_SLOT ((size_t)16 << 10)

/* Small uploads (a step's positions and ids) are staged through a ring of page-locked
 * slots, so the copy is truly asynchronous (a pageable one waits for the stream); a slot
 * is reused once its previous copy has completed. Large ones copy from pageable memory. */
static void c_upload(wk_backend *be, void *dst, const void *src, size_t bytes) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (bytes <= WKC_UP_SLOT && !b->up_ring) {
        if (cudaMallocHost(&b->up_ring, WKC_UP_SLOTS * WKC_UP_SLOT) != cudaSuccess) b->up_ring = NULL, cudaGetLastError();
        for (int i = 0; i < WKC_UP_SLOTS && b->up_ring; i++)
            if (cudaEventCreateWithFlags(&b->up_ev[i], cudaEventDisableTiming) != cudaSuccess) {
                cudaGetLastError();
                while (i-- > 0) cudaEventDestroy(b->up_ev[i]);
                cudaFreeHost(b->up_ring);
                b->up_ring = NULL;
            }
    }
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    cudaStreamIsCapturing(b->st, &cs);
    if (bytes > WKC_UP_SLOT || !b->up_ring || cs != cudaStreamCaptureStatusNone) {
        wkc_cuda_fail(b, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, b->st), "upload");
        return;
    }
    int i = b->up_next;
    b->up_next = (i + 1) % WKC_UP_SLOTS;
    unsigned char *slot = b->up_ring + (size_t)i * WKC_UP_SLOT;
    wkc_cuda_fail(b, cudaEventSynchronize(b->up_ev[i]), "upload (staging slot)");
    memcpy(slot, src, bytes);
    wkc_cuda_fail(b, cudaMemcpyAsync(dst, slot, bytes, cudaMemcpyHostToDevice, b->st), "upload");
    wkc_cuda_fail(b, cudaEventRecord(b->up_ev[i], b->st), "upload (event)");
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
    if (b->no_graphs || b->err || b->opt) return NULL;
    wkc_use(b);
    unsigned epoch = b->scr_epoch;
    if (cudaStreamBeginCapture(b->st, cudaStreamCaptureModeRelaxed) != cudaSuccess) {
        cudaGetLastError();
        b->no_graphs = 1;
        return NULL;
    }
    int slot = b->mv_slot; /* matvec shrink slots: a graph starts and ends with them empty (cuda_ops.cu) */
    b->capturing = 1, b->mv_cap = 0;
    fn(ctx);
    if (b->mv_cap) wkc_mv_empty_slots(b);
    b->capturing = 0, b->mv_slot = slot;
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
    if (g->epoch != b->scr_epoch || b->opt) return -1;
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

/* ------------------------------------------------------------- op timing */

#define WKC_OPT_MAX 8192

struct wkc_optime {
    volatile int *flag; /* host-mapped: the hold kernel spins until it is set */
    pthread_t releaser;
    cudaEvent_t ev[WKC_OPT_MAX + 1];
    const char *name[WKC_OPT_MAX];
    int tag[WKC_OPT_MAX];
    int n;
};

__global__ void k_hold(volatile int *flag) {
    while (*flag == 0) __nanosleep(1000);
}

static void *optime_release(void *arg) {
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    *((wkc_optime *)arg)->flag = 1;
    return NULL;
}

static void optime_mark(wkc_backend *b, const char *kernel) {
    wkc_optime *o = b->opt;
    if (o->n >= WKC_OPT_MAX) return;
    o->name[o->n] = kernel;
    o->tag[o->n] = b->optag;
    cudaEventRecord(o->ev[o->n + 1], b->st);
    o->n++;
}

extern "C" void wk_cuda_optime_begin(wk_backend *be) {
    wkc_backend *b = wkc(be);
    wkc_use(b);
    if (b->opt) return;
    wkc_optime *o = (wkc_optime *)wk_calloc(sizeof *o, "op timing");
    if (!o) return;
    int *flag = NULL;
    if (cudaHostAlloc(&flag, sizeof(int), cudaHostAllocMapped) != cudaSuccess) {
        cudaGetLastError();
        wk_free(o);
        return;
    }
    *flag = 0;
    o->flag = flag;
    for (int i = 0; i <= WKC_OPT_MAX; i++) cudaEventCreate(&o->ev[i]);
    cudaStreamSynchronize(b->st);
    int *dflag = NULL;
    cudaHostGetDevicePointer(&dflag, flag, 0);
    k_hold<<<1, 1, 0, b->st>>>(dflag);
    cudaEventRecord(o->ev[0], b->st);
    pthread_create(&o->releaser, NULL, optime_release, o);
    b->opt = o;
}

extern "C" double wk_cuda_optime_end(wk_backend *be, FILE *out) {
    wkc_backend *b = wkc(be);
    wkc_optime *o = b->opt;
    if (!o) return -1;
    b->opt = NULL;
    pthread_join(o->releaser, NULL);
    cudaStreamSynchronize(b->st);
    double total = 0;
    /* aggregate by (name, tag), in order of first appearance */
    int *first = (int *)wk_calloc(sizeof(int) * (o->n + 1), "op timing"), nu = 0;
    double *us = (double *)wk_calloc(sizeof(double) * (o->n + 1), "op timing");
    int *cnt = (int *)wk_calloc(sizeof(int) * (o->n + 1), "op timing");
    for (int i = 0; first && us && cnt && i < o->n; i++) {
        float ms = 0;
        cudaEventElapsedTime(&ms, o->ev[i], o->ev[i + 1]);
        total += ms * 1e-3;
        int j = 0;
        while (j < nu && !(o->tag[first[j]] == o->tag[i] && !strcmp(o->name[first[j]], o->name[i]))) j++;
        if (j == nu) first[nu++] = i;
        us[j] += ms * 1e3, cnt[j]++;
    }
    if (out && o->n) {
        fprintf(out, "%-14s %8s %6s %10s %8s\n", "op", "rows", "count", "total_us", "each_us");
        for (int j = 0; j < nu; j++)
            fprintf(out, "%-14s %8d %6d %10.1f %8.2f\n", o->name[first[j]], o->tag[first[j]], cnt[j], us[j], us[j] / cnt[j]);
        fprintf(out, "%-14s %8s %6d %10.1f\n", "total", "", o->n, total * 1e6);
    }
    wk_free(first), wk_free(us), wk_free(cnt);
    for (int i = 0; i <= WKC_OPT_MAX; i++) cudaEventDestroy(o->ev[i]);
    cudaFreeHost((void *)o->flag);
    int n = o->n;
    wk_free(o);
    cudaGetLastError();
    return n ? total : -1;
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
    b->be.pick = wkc_pick;
    b->be.graph_capture = c_graph_capture;
    b->be.graph_replay = c_graph_replay;
    b->be.graph_free = c_graph_free;
    const char *bo = getenv("WICK_CUDA_BATCH"); /* "0": batched steps from the per-row ops (for comparisons) */
    if (!bo || strcmp(bo, "0")) {
        b->be.bshape_ok = wkc_bshape_ok;
        b->be.bmatmul = wkc_bmatmul;
        b->be.brope_kv = wkc_brope_kv;
        b->be.battention = wkc_battention;
        b->be.brmsnorm = wkc_brmsnorm;
        b->be.bswiglu = wkc_bswiglu;
    }
    const char *pd = getenv("WICK_CUDA_PDL"); /* "0": the batched expand waits for its shrink to end (comparisons) */
    b->bpdl = !pd || strcmp(pd, "0");
    const char *rb = getenv("WICK_BEXP_RB"); /* rows per batched expand block (1..32; unset: by shape) */
    b->bexp_rb = rb && atoi(rb) >= 1 && atoi(rb) <= 32 ? atoi(rb) : 0;
    const char *g = getenv("WICK_CUDA_GRAPHS"); /* "0": run decode steps without graphs (for comparisons) */
    b->no_graphs = g && !strcmp(g, "0");
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&b->st, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        wk_err(WICK_EIO, "cuda:%d: cannot initialise the device: %s", device, cudaGetErrorString(e));
        wk_free(b);
        return NULL;
    }
    if (cudaDeviceGetAttribute(&b->sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || b->sms < 1)
        cudaGetLastError(), b->sms = 132;
    if (e == cudaSuccess) e = cudaMalloc((void **)&b->ticket, WKC_TICKET_WORDS * sizeof(unsigned));
    if (e == cudaSuccess) e = cudaMemset(b->ticket, 0, WKC_MV_SLOT * sizeof(unsigned));
    if (e == cudaSuccess) /* the matvec's shrink slots start empty */
        e = cudaMemset(b->ticket + WKC_MV_SLOT, 0xff, (WKC_TICKET_WORDS - WKC_MV_SLOT) * sizeof(unsigned));
    if (e != cudaSuccess) {
        wk_err(WICK_EIO, "cuda:%d: cannot allocate the backend's counters: %s", device, cudaGetErrorString(e));
        cudaStreamDestroy(b->st);
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

extern "C" void wk_cuda_set_bexp_rb(wk_backend *be, int rb) { wkc(be)->bexp_rb = rb >= 1 && rb <= 32 ? rb : 0; }
