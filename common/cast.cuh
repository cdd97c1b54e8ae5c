/*
 * cast.cuh — elementwise precision casts: fp32 -> bf16 (round to nearest) for the residual-stream
 * gradient before it enters a bf16 matrix product, and for refreshing bf16 working copies of weights.
 */
#ifndef COMMON_CAST_CUH
#define COMMON_CAST_CUH

#include "errors.h"
#include "launch.cuh"
#include "bf16.cuh"

__global__ void cast_f32_to_bf16_kernel(bf16* __restrict__ out, const float* __restrict__ in, size_t n) {
    pdl_wait_prior();
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += stride) out[i] = __float2bfloat16_rn(in[i]);
}

/* out[n] bf16 = in[n] fp32 */
static inline void cast_f32_to_bf16(bf16* out, const float* in, size_t n, cudaStream_t s) {
    if (n == 0) return;
    size_t blocks = (n + 255) / 256;
    if (blocks > 132 * 32) blocks = 132 * 32;
    launch_kernel(cast_f32_to_bf16_kernel, (unsigned)blocks, 256, 0, s, out, in, n);
}

#endif /* COMMON_CAST_CUH */
