/*
 * embedding.cuh — token embedding lookup (forward) and its deterministic gradient (backward).
 *
 * Backward without floating-point atomics: the M token ids are sorted (CUB radix sort, stable, with the
 * row index as value), so rows that share an id become one contiguous run, ordered by row index. One
 * block per run then sums the run's dout rows in that fixed order and adds the sum into dE[id]. Each dE
 * row is touched by exactly one block, so the result is the same bits every run. A frequent id gives
 * one long run, summed by one block (per column group) with 8 row loads in flight.
 * Requires 0 <= ids[m] < Vc (not checked on the device).
 */
#ifndef COMMON_EMBEDDING_CUH
#define COMMON_EMBEDDING_CUH

#include <cub/device/device_radix_sort.cuh>
#include <stdint.h>
#include "errors.h"
#include "launch.cuh"
#include "bf16.cuh"

#define EMBEDDING_THREADS 256

/* out[m, :] = E[ids[m], :]; grid (M, ceil(D/4/threads)); f128 path when rows are 16-byte aligned */
__global__ void embedding_forward_kernel(float* out, const int* ids, const float* E, int D, int vec) {
    pdl_wait_prior();
    const int m = blockIdx.x;
    const float* src = E + (size_t)ids[m] * D;
    float* dst = out + (size_t)m * D;
    const int c = (blockIdx.y * blockDim.x + threadIdx.x) * 4;
    if (vec) {
        if (c < D) store128(dst + c, load128(src + c));
    } else {
        for (int k = c; k < c + 4 && k < D; k++) dst[k] = src[k];
    }
}

/* blocks along a row: each thread owns 4 columns */
static inline int embedding_col_blocks_(int D) {
    int groups = (D + 3) / 4;
    return (groups + EMBEDDING_THREADS - 1) / EMBEDDING_THREADS;
}

/* out [M,D] fp32 = E [Vc,D] fp32 rows picked by ids [M] */
static inline void embedding_forward(float* out, const int* ids, const float* E, int M, int D, cudaStream_t s) {
    int vec = D % 4 == 0 && ((uintptr_t)out & 15) == 0 && ((uintptr_t)E & 15) == 0;
    dim3 grid(M, embedding_col_blocks_(D));
    launch_kernel(embedding_forward_kernel, grid, EMBEDDING_THREADS, 0, s, out, ids, E, D, vec);
}

__global__ void embedding_iota_kernel(int* x, int M) {
    pdl_wait_prior();
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < M) x[i] = i;
}

/* 4 consecutive floats (fewer at the row's end), one 16-byte load when vec */
__device__ inline void embedding_load4_(float x[4], const float* src, int nc, int vec) {
    if (vec) {
        f128 v = load128cs(src);
        for (int k = 0; k < 4; k++) x[k] = v[k];
    } else {
        for (int k = 0; k < 4; k++) x[k] = k < nc ? src[k] : 0.0f;
    }
}

#define EMBEDDING_TILE 64 /* row indices staged in shared memory per step of a run */

/* grid (M, column groups). Block i works only if sorted position i starts a run of equal ids; it sums
 * that run's dout rows (in row order: the sort is stable) for its 4 columns per thread and adds into dE.
 * The run's end is found by the whole block at once; its row indices are staged EMBEDDING_TILE at a
 * time in shared memory, and 8 rows are loaded before they are added (in order), so a long run of a
 * frequent token is bounded by bandwidth more than by latency. */
__global__ void __launch_bounds__(EMBEDDING_THREADS)
embedding_backward_kernel(float* dE, const float* dout, const int* sorted_ids, const int* sorted_rows, int M, int D,
                          int vec) {
    pdl_wait_prior();
    __shared__ int s_rows[EMBEDDING_TILE];
    const int i = blockIdx.x;
    const int id = sorted_ids[i];
    if (i > 0 && sorted_ids[i - 1] == id) return; /* the same for the whole block */
    int end = i;
    for (;;) { /* matches in the window [end, end + threads) form a prefix: the ids are sorted */
        const int j = end + threadIdx.x;
        const int n = __syncthreads_count(j < M && sorted_ids[j] == id);
        end += n;
        if (n < EMBEDDING_THREADS) break;
    }
    const int c = (blockIdx.y * blockDim.x + threadIdx.x) * 4;
    const bool active = c < D;
    const int nc = D - c < 4 ? D - c : 4;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int j0 = i; j0 < end; j0 += EMBEDDING_TILE) {
        const int n = end - j0 < EMBEDDING_TILE ? end - j0 : EMBEDDING_TILE;
        __syncthreads(); /* the previous tile has been consumed */
        if (threadIdx.x < n) s_rows[threadIdx.x] = sorted_rows[j0 + threadIdx.x];
        __syncthreads();
        if (!active) continue;
        int r = 0;
        for (; r + 8 <= n; r += 8) {
            float x[8][4];
#pragma unroll
            for (int q = 0; q < 8; q++) embedding_load4_(x[q], dout + (size_t)s_rows[r + q] * D + c, nc, vec);
#pragma unroll
            for (int q = 0; q < 8; q++)
                for (int k = 0; k < 4; k++) acc[k] += x[q][k];
        }
        for (; r < n; r++) {
            float x[4];
            embedding_load4_(x, dout + (size_t)s_rows[r] * D + c, nc, vec);
            for (int k = 0; k < 4; k++) acc[k] += x[k];
        }
    }
    if (!active) return;
    float* dst = dE + (size_t)id * D + c;
    if (vec) {
        f128 v = load128(dst);
        for (int k = 0; k < 4; k++) v[k] += acc[k];
        store128(dst, v);
    } else {
        for (int k = 0; k < nc; k++) dst[k] += acc[k];
    }
}

/* scratch layout: sorted ids [M] | row index [M] | sorted row index [M] | CUB temp; each part 256-aligned */
static inline size_t embedding_align_(size_t x) { return (x + 255) & ~(size_t)255; }
static inline int embedding_sort_bits_(int Vc) {
    int bits = 1;
    while (bits < 31 && (1u << bits) < (unsigned)Vc) bits++;
    return bits;
}
static inline size_t embedding_cub_bytes_(int M, int Vc) {
    size_t bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(NULL, bytes, (const int*)NULL, (int*)NULL, (const int*)NULL, (int*)NULL,
                                               M, 0, embedding_sort_bits_(Vc)));
    return bytes;
}
static inline size_t embedding_scratch_bytes(int M, int Vc) {
    return 3 * embedding_align_((size_t)M * sizeof(int)) + embedding_align_(embedding_cub_bytes_(M, Vc));
}

/* dE [Vc,D] fp32 += scatter of dout [M,D] fp32 rows by ids [M]; scratch: embedding_scratch_bytes(M, Vc) */
static inline void embedding_backward(float* dE, const float* dout, const int* ids, int M, int D, int Vc, void* scratch,
                                      cudaStream_t s) {
    if (M <= 0 || D <= 0 || Vc <= 0) die("embedding_backward: bad shape M=%d D=%d Vc=%d", M, D, Vc);
    char* p = (char*)scratch;
    const size_t part = embedding_align_((size_t)M * sizeof(int));
    int* sorted_ids = (int*)p;
    int* rows = (int*)(p + part);
    int* sorted_rows = (int*)(p + 2 * part);
    void* temp = p + 3 * part;
    size_t temp_bytes = embedding_cub_bytes_(M, Vc);
    launch_kernel(embedding_iota_kernel, (M + 255) / 256, 256, 0, s, rows, M);
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, ids, sorted_ids, rows, sorted_rows, M, 0,
                                               embedding_sort_bits_(Vc), s));
    int vec = D % 4 == 0 && ((uintptr_t)dE & 15) == 0 && ((uintptr_t)dout & 15) == 0;
    dim3 grid(M, embedding_col_blocks_(D));
    launch_kernel(embedding_backward_kernel, grid, EMBEDDING_THREADS, 0, s, dE, dout, sorted_ids, sorted_rows, M, D,
                  vec);
}

#endif /* COMMON_EMBEDDING_CUH */
