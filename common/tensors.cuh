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

/* Data-parallel sharding of the optimizer state (ZeRO-1, common/nccl.cuh): a process trains one model
 * in one data-parallel group, so the sharding is a property of the process, set once by the trainer
 * before the model allocates its buffers. One rank (the default): the shard is everything. */
static int g_param_rank = 0, g_param_world = 1;
static inline void param_set_sharding(int rank, int world) { g_param_rank = rank; g_param_world = world; }

/* The device buffers of a ParamTable. The flat layout [total] is padded to world * shard elements
 * (zeros) so every rank owns an equal, 64-element-aligned slice [shard_begin, shard_begin + shard). */
typedef struct {
    float* master;   /* [padded] fp32 weights: what AdamW updates and checkpoints store */
    bf16* copy;      /* [padded] bf16 working copy read by matrix products */
    float* grad;     /* [padded] fp32 gradients, accumulated over micro-steps */
    float* m;        /* [shard] AdamW first moment of this rank's slice */
    float* v;        /* [shard] AdamW second moment of this rank's slice */
    size_t total;    /* elements of the layout */
    size_t padded, shard, shard_begin;
    int rank, world;
} ParamBuffers;

/* bytes per parameter on one rank: master 4 + copy 2 + grad 4, and m, v 8 / world */
static inline double param_bytes_per_element(void) { return 10.0 + 8.0 / g_param_world; }

static inline ParamBuffers param_buffers_alloc(const ParamTable* pt) {
    ParamBuffers b;
    memset(&b, 0, sizeof b);
    b.rank = g_param_rank;
    b.world = g_param_world;
    b.total = pt->total;
    b.shard = b.world == 1 ? pt->total : ((pt->total + b.world - 1) / b.world + 63) / 64 * 64;
    b.padded = b.shard * b.world;
    b.shard_begin = b.shard * b.rank;
    size_t n = b.padded;
    CUDA_CHECK(cudaMalloc((void**)&b.master, n * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void**)&b.copy, n * sizeof(bf16)));
    CUDA_CHECK(cudaMalloc((void**)&b.grad, n * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void**)&b.m, b.shard * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void**)&b.v, b.shard * sizeof(float)));
    /* padding between tensors must hold finite zeros: the global norm and AdamW sweep it too */
    CUDA_CHECK(cudaMemset(b.master, 0, n * sizeof(float)));
    CUDA_CHECK(cudaMemset(b.copy, 0, n * sizeof(bf16)));
    CUDA_CHECK(cudaMemset(b.grad, 0, n * sizeof(float)));
    CUDA_CHECK(cudaMemset(b.m, 0, b.shard * sizeof(float)));
    CUDA_CHECK(cudaMemset(b.v, 0, b.shard * sizeof(float)));
    return b;
}
static inline void param_buffers_free(ParamBuffers* b) {
    cudaFree(b->master); cudaFree(b->copy); cudaFree(b->grad); cudaFree(b->m); cudaFree(b->v);
    memset(b, 0, sizeof *b);
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
    CUDA_CHECK(cudaMemset(b->master, 0, b->total * sizeof(float)));
    for (int i = 0; i < pt->n; i++) {
        const ParamInfo* p = &pt->t[i];
        if (p->init == INIT_CUSTOM || p->init == INIT_ZERO) continue;
        size_t blocks = (p->numel + 255) / 256;
        if (blocks > 4096) blocks = 4096;
        param_init_kernel<<<(unsigned)blocks, 256>>>(b->master + p->offset, p->numel, p->init, p->a,
                                                     (uint32_t)(seed * 2654435761ull), (uint32_t)i);
        CUDA_KERNEL_CHECK();
    }
}
/* copies host values into one tensor of the master buffer (for INIT_CUSTOM tensors) */
static inline void param_set_host(ParamBuffers* b, const ParamInfo* p, const float* host) {
    CUDA_CHECK(cudaMemcpy(b->master + p->offset, host, p->numel * sizeof(float), cudaMemcpyHostToDevice));
}
/* refreshes the bf16 working copy from the master (round to nearest) */
static inline void param_sync_copy(ParamBuffers* b) {
    cast_f32_to_bf16(b->copy, b->master, b->total, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
}

/* host fp32 -> device master, and refresh the bf16 copy */
static inline void param_upload(ParamBuffers* b, const float* host) {
    CUDA_CHECK(cudaMemcpy(b->master, host, b->total * sizeof(float), cudaMemcpyHostToDevice));
    cast_f32_to_bf16(b->copy, b->master, b->total, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
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

/* One cudaMalloc for every activation; on failure, says how much was needed and what to lower. */
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
