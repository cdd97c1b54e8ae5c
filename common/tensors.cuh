/*
 * tensors.cuh — tables of tensors, allocated once, up front.
 * A model describes its parameters as a ParamTable (name, shape, weight-decay flag, init rule) and its
 * activations as an ActTable (name, bytes). From the tables come: one flat fp32 master buffer with its
 * bf16 working copy, fp32 gradients and AdamW moments of the same layout; one arena for activations;
 * the start-up memory breakdown; and the checkpoint layout. No tensor is ever located by a magic index.
 */
#ifndef COMMON_TENSORS_CUH
#define COMMON_TENSORS_CUH

#include <math.h>
#include <stdio.h>
#include <string.h>
#include "errors.h"
#include "bf16.cuh"
#include "rng.h"
#include "cast.cuh"

/* ---------------------------------------------------------------- parameters */
typedef enum { INIT_ZERO, INIT_ONE, INIT_CONST, INIT_NORMAL, INIT_UNIFORM, INIT_CUSTOM } InitKind;

typedef struct {
    char name[64];
    int ndim;
    int shape[3];
    size_t offset, numel;   /* into the flat buffers, in elements */
    int decay;              /* AdamW weight decay applies */
    int keep_f32;           /* kernels read it in fp32 (param_keep_f32) */
    InitKind init;
    float a;                /* NORMAL: std; UNIFORM: bound (U(-a,a)); CONST: value */
} ParamInfo;

typedef struct {
    ParamInfo* t;
    int n, cap;
    size_t total;           /* elements */
} ParamTable;

/* Adds one tensor; returns its offset. Offsets are rounded to 8 elements so every tensor's bf16 copy
 * is 16-byte aligned, as cuBLASLt and 128-bit loads want. */
static inline size_t param_add(ParamTable* pt, const char* name, int ndim, int d0, int d1, int d2, int decay,
                               InitKind init, float a) {
    if (pt->n == pt->cap) {
        pt->cap = pt->cap ? pt->cap * 2 : 64;
        pt->t = (ParamInfo*)realloc(pt->t, sizeof(ParamInfo) * (size_t)pt->cap);
        if (!pt->t) die("out of host memory for the parameter table");
    }
    ParamInfo* p = &pt->t[pt->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = d0; p->shape[1] = ndim > 1 ? d1 : 1; p->shape[2] = ndim > 2 ? d2 : 1;
    p->numel = (size_t)p->shape[0] * p->shape[1] * p->shape[2];
    p->offset = (pt->total + 7) & ~(size_t)7;
    p->decay = decay;
    p->init = init;
    p->a = a;
    pt->total = p->offset + p->numel;
    return p->offset;
}
/* Marks the tensor at offset as one that kernels read in fp32 (norm weights, biases, conv taps, A, D, the
 * embedding) rather than through the bf16 copy; returns offset. With several ranks these tensors stay
 * whole on every rank while the rest of the fp32 master is sharded (param_f32). */
static inline size_t param_keep_f32(ParamTable* pt, size_t offset) {
    for (int i = pt->n - 1; i >= 0; i--)   /* usually the tensor just added */
        if (pt->t[i].offset == offset) { pt->t[i].keep_f32 = 1; return offset; }
    die("internal: param_keep_f32: no tensor starts at offset %zu", offset);
    return offset;
}
static inline const ParamInfo* param_find(const ParamTable* pt, const char* name) {
    for (int i = 0; i < pt->n; i++)
        if (!strcmp(pt->t[i].name, name)) return &pt->t[i];
    return NULL;
}
/* number of real parameters (alignment padding excluded) */
static inline size_t param_count(const ParamTable* pt) {
    size_t n = 0;
    for (int i = 0; i < pt->n; i++) n += pt->t[i].numel;
    return n;
}

/* Data-parallel sharding (ZeRO-1, common/nccl.cuh): a process trains one model in one data-parallel
 * group, so the sharding is a property of the process, set once by the trainer before the model
 * allocates its buffers. One rank (the default): the shard is everything. */
static int g_param_rank = 0, g_param_world = 1;
static inline void param_set_sharding(int rank, int world) { g_param_rank = rank; g_param_world = world; }

/* The device buffers of a ParamTable. The flat layout [total] is padded to world * shard elements
 * (zeros) so every rank owns an equal, 64-element-aligned slice [shard_begin, shard_begin + shard) of
 * the fp32 master and of AdamW's moments; the bf16 copy and the gradients are whole on every rank.
 * The tensors kernels read in fp32 (param_keep_f32) are read through param_f32: with one rank that is
 * the master itself; with several, a compact whole copy of just those tensors (f32), refreshed after
 * every update from the gathered master. */
typedef struct {
    float* master;   /* [shard] fp32 weights of this rank's slice: what AdamW updates */
    bf16* copy;      /* [padded] bf16 working copy read by matrix products */
    float* grad;     /* [padded] fp32 gradients, accumulated over micro-steps */
    float* m;        /* [shard] AdamW first moment of this rank's slice */
    float* v;        /* [shard] AdamW second moment of this rank's slice */
    float* f32;      /* the kept tensors, whole: = master (one rank), else [f32_total] compact */
    size_t total;    /* elements of the layout */
    size_t padded, shard, shard_begin, f32_total;
    int rank, world;
    int nkeep;
    size_t *keep_off, *keep_numel, *keep_at;   /* host [nkeep], by offset: tensor start, size, place in f32 */
} ParamBuffers;

/* bytes per parameter on one rank beyond the kept fp32 tensors: copy 2 + grad 4, master and m, v 12 / world */
static inline double param_bytes_per_element(void) { return 6.0 + 12.0 / g_param_world; }

static inline ParamBuffers param_buffers_alloc(const ParamTable* pt) {
    ParamBuffers b;
    memset(&b, 0, sizeof b);
    b.rank = g_param_rank;
    b.world = g_param_world;
    b.total = pt->total;
    b.shard = b.world == 1 ? pt->total : ((pt->total + b.world - 1) / b.world + 63) / 64 * 64;
    b.padded = b.shard * b.world;
    b.shard_begin = b.shard * b.rank;
    b.keep_off = (size_t*)malloc_check(sizeof(size_t) * (size_t)(pt->n + 1));
    b.keep_numel = (size_t*)malloc_check(sizeof(size_t) * (size_t)(pt->n + 1));
    b.keep_at = (size_t*)malloc_check(sizeof(size_t) * (size_t)(pt->n + 1));
    for (int i = 0; i < pt->n; i++) {   /* the table is in offset order: so is this list */
        if (!pt->t[i].keep_f32) continue;
        b.keep_off[b.nkeep] = pt->t[i].offset;
        b.keep_numel[b.nkeep] = pt->t[i].numel;
        b.keep_at[b.nkeep] = b.world == 1 ? pt->t[i].offset : b.f32_total;
        b.f32_total += b.world == 1 ? 0 : (pt->t[i].numel + 7) / 8 * 8;
        b.nkeep++;
    }
    size_t n = b.padded;
    CUDA_CHECK(cudaMalloc((void**)&b.master, b.shard * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void**)&b.copy, n * sizeof(bf16)));
    CUDA_CHECK(cudaMalloc((void**)&b.grad, n * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void**)&b.m, b.shard * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void**)&b.v, b.shard * sizeof(float)));
    if (b.world == 1) b.f32 = b.master;
    else CUDA_CHECK(cudaMalloc((void**)&b.f32, (b.f32_total ? b.f32_total : 8) * sizeof(float)));
    /* padding between tensors must hold finite zeros: the global norm and AdamW sweep it too */
    CUDA_CHECK(cudaMemset(b.master, 0, b.shard * sizeof(float)));
    CUDA_CHECK(cudaMemset(b.copy, 0, n * sizeof(bf16)));
    CUDA_CHECK(cudaMemset(b.grad, 0, n * sizeof(float)));
    CUDA_CHECK(cudaMemset(b.m, 0, b.shard * sizeof(float)));
    CUDA_CHECK(cudaMemset(b.v, 0, b.shard * sizeof(float)));
    return b;
}
static inline void param_buffers_free(ParamBuffers* b) {
    if (b->f32 != b->master) cudaFree(b->f32);
    cudaFree(b->master); cudaFree(b->copy); cudaFree(b->grad); cudaFree(b->m); cudaFree(b->v);
    free(b->keep_off); free(b->keep_numel); free(b->keep_at);
    memset(b, 0, sizeof *b);
}

/* The fp32 values of the kept tensor that starts at offset [its numel] (the model's F_ accessor). */
static inline float* param_f32(const ParamBuffers* b, size_t offset) {
    int lo = 0, hi = b->nkeep - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (b->keep_off[mid] == offset) return b->f32 + b->keep_at[mid];
        if (b->keep_off[mid] < offset) lo = mid + 1;
        else hi = mid - 1;
    }
    die("internal: the tensor at offset %zu is read in fp32 but was not marked with param_keep_f32", offset);
    return NULL;
}

/* Where whole-layout fp32 weights are written before param_commit spreads them: the master itself with
 * one rank, else the gradient buffer (whole, and free outside a step). */
static inline float* param_staging(ParamBuffers* b) { return b->world == 1 ? b->master : b->grad; }

/* The kept tensors' fp32 copy from whole-layout weights in src [padded] (several ranks only). */
static inline void param_refresh_f32(ParamBuffers* b, const float* src, cudaStream_t s) {
    if (b->world == 1) return;
    for (int i = 0; i < b->nkeep; i++)
        CUDA_CHECK(cudaMemcpyAsync(b->f32 + b->keep_at[i], src + b->keep_off[i], b->keep_numel[i] * sizeof(float),
                                   cudaMemcpyDeviceToDevice, s));
}

/* Whole weights written to param_staging -> this rank's master slice, the kept fp32 tensors and (with
 * cast_copy) the bf16 copy, rounded to nearest; the staging gradient buffer is zeroed again. */
static inline void param_commit(ParamBuffers* b, int cast_copy) {
    float* src = param_staging(b);
    if (cast_copy) cast_f32_to_bf16(b->copy, src, b->total, 0);
    if (b->world > 1) {
        CUDA_CHECK(cudaMemcpy(b->master, src + b->shard_begin, b->shard * sizeof(float), cudaMemcpyDeviceToDevice));
        param_refresh_f32(b, src, 0);
        CUDA_CHECK(cudaMemset(b->grad, 0, b->padded * sizeof(float)));
    }
    CUDA_CHECK(cudaDeviceSynchronize());
}

/* Initialisation runs on the GPU (a 1.3B model would spend seconds in a host RNG otherwise): every
 * element's value is a pure function of (seed, tensor index, element index) through a counter-based hash,
 * so it is reproducible and independent of the launch shape, and adding a tensor never changes the others.
 * INIT_CUSTOM tensors are left for the model to fill (param_set_host). */
__device__ inline float init_uniform01_(uint32_t seed, uint32_t tensor, size_t j, uint32_t stream) {
    uint32_t h = hash_u32((uint32_t)j ^ (stream * 0x68E31DA4u), hash_u32((uint32_t)(j >> 32) + tensor * 0x9E3779B9u, seed));
    return ((h >> 8) + 0.5f) * (1.0f / 16777216.0f);   /* (0,1) */
}
__global__ void param_init_kernel(float* x, size_t n, int kind, float a, uint32_t seed, uint32_t tensor) {
    for (size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x; j < n; j += (size_t)gridDim.x * blockDim.x) {
        float v = 0.0f;
        if (kind == INIT_ONE) v = 1.0f;
        else if (kind == INIT_CONST) v = a;
        else if (kind == INIT_UNIFORM) v = a * (2.0f * init_uniform01_(seed, tensor, j, 0) - 1.0f);
        else if (kind == INIT_NORMAL) { /* Box-Muller from two independent uniforms */
            float u1 = init_uniform01_(seed, tensor, j, 1), u2 = init_uniform01_(seed, tensor, j, 2);
            v = a * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
        }
        x[j] = v;
    }
}
static inline void param_init_device(const ParamTable* pt, ParamBuffers* b, uint64_t seed) {
    float* dst = param_staging(b);
    CUDA_CHECK(cudaMemset(dst, 0, b->total * sizeof(float)));
    for (int i = 0; i < pt->n; i++) {
        const ParamInfo* p = &pt->t[i];
        if (p->init == INIT_CUSTOM || p->init == INIT_ZERO) continue;
        size_t blocks = (p->numel + 255) / 256;
        if (blocks > 4096) blocks = 4096;
        param_init_kernel<<<(unsigned)blocks, 256>>>(dst + p->offset, p->numel, p->init, p->a,
                                                     (uint32_t)(seed * 2654435761ull), (uint32_t)i);
        CUDA_KERNEL_CHECK();
    }
}
/* copies host values into one tensor of the staged weights (for INIT_CUSTOM tensors, before param_commit) */
static inline void param_set_host(ParamBuffers* b, const ParamInfo* p, const float* host) {
    CUDA_CHECK(cudaMemcpy(param_staging(b) + p->offset, host, p->numel * sizeof(float), cudaMemcpyHostToDevice));
}
/* after initialisation: the staged weights become the master, the kept fp32 tensors and the bf16 copy */
static inline void param_sync_copy(ParamBuffers* b) { param_commit(b, 1); }

/* host fp32 [total] -> the weights (master slice, kept fp32 tensors, bf16 copy) */
static inline void param_upload(ParamBuffers* b, const float* host) {
    CUDA_CHECK(cudaMemcpy(param_staging(b), host, b->total * sizeof(float), cudaMemcpyHostToDevice));
    param_commit(b, 1);
}

/* ---------------------------------------------------------------- activations */
typedef struct {
    char name[48];
    void** ptr;      /* where to store the device pointer */
    size_t bytes;
} ActInfo;

typedef struct {
    ActInfo t[256];
    int n;
    size_t total;
    char* base;
} ActTable;

/* Declares one activation buffer; the pointer is filled by act_alloc. 256-byte aligned. */
static inline void act_add(ActTable* at, const char* name, void** ptr, size_t bytes) {
    if (at->n == 256) die("activation table full (raise the limit in common/tensors.cuh)");
    ActInfo* a = &at->t[at->n++];
    snprintf(a->name, sizeof a->name, "%s", name);
    a->ptr = ptr;
    a->bytes = (bytes + 255) & ~(size_t)255;
    at->total += a->bytes;
}
#define ACT(at, field, count) act_add((at), #field, (void**)&(field), (size_t)(count) * sizeof(*(field)))

/* Buffers whose lifetimes do not overlap share memory by being carved out of one table entry: a layout
 * function takes its pieces in order with CARVE from a cursor over the entry (base NULL: it only measures;
 * the pointers stay NULL), is run once to size the entry and once after act_alloc to bind them. */
typedef struct { char* base; size_t off; } ActCarve;
static inline void* act_carve(ActCarve* c, size_t bytes) {
    void* p = c->base ? (void*)(c->base + c->off) : NULL;
    c->off += (bytes + 255) & ~(size_t)255;
    return p;
}
#define CARVE(cv, field, count) (*(void**)&(field) = act_carve((cv), (size_t)(count) * sizeof(*(field))))

/* A per-layer activation has L slots where it is kept and one where the recompute level rebuilds it in the
 * backward (recompute >= level): the element offset of layer l's view, slot l or slot 0. */
static inline size_t act_slot(int recompute, int level, int l, size_t per_layer) {
    return (size_t)(recompute >= level ? 0 : l) * per_layer;
}

/* One cudaMalloc for every activation; on failure, says how much was needed and what to lower. The arena is
 * zeroed once: some kernels read padding they then ignore (the classifier's 16-byte loads of a logits row past
 * Vc, masked), and those reads must not touch never-written memory (compute-sanitizer initcheck flags them). */
static inline void act_alloc(ActTable* at, size_t other_bytes) {
    cudaError_t e = cudaMalloc((void**)&at->base, at->total ? at->total : 256);
    if (e != cudaSuccess) {
        size_t freeb = 0, totalb = 0;
        cudaGetLastError();
        cudaMemGetInfo(&freeb, &totalb);
        die("cannot allocate %.2f GiB of activations (plus %.2f GiB of parameters/optimizer state already "
            "allocated); the device has %.2f GiB free of %.2f GiB. Lower --batch or --seq, or use --recompute 1",
            at->total / 1073741824.0, other_bytes / 1073741824.0, freeb / 1073741824.0, totalb / 1073741824.0);
    }
    CUDA_CHECK(cudaMemset(at->base, 0, at->total ? at->total : 256));
    size_t off = 0;
    for (int i = 0; i < at->n; i++) {
        *at->t[i].ptr = at->t[i].bytes ? (void*)(at->base + off) : NULL;
        off += at->t[i].bytes;
    }
}
static inline void act_free(ActTable* at) {
    cudaFree(at->base);
    at->base = NULL;
}

#endif /* COMMON_TENSORS_CUH */
