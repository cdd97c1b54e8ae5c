/*
 * cp_async.cuh — asynchronous global -> shared copies (cp.async, sm_80+), used by the chunked GLA and conv1d kernels. A copy
 * stays in flight while the thread goes on, without holding a register for the data: tiles for the next step of a
 * loop load while the current one is computed, and the thread waits only where it reads the tile (cp_async_wait,
 * then a barrier, since other threads wrote it).
 */
#ifndef COMMON_CP_ASYNC_CUH
#define COMMON_CP_ASYNC_CUH

#include <cuda_runtime.h>
#include "errors.h"

__device__ __forceinline__ unsigned smem_u32(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }
/* 16 bytes; with valid false the destination is zero-filled (source size 0) and src must still be a valid address */
__device__ __forceinline__ void cp_async16_s(unsigned dst_smem, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst_smem), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) { cp_async16_s(smem_u32(dst), src, valid); }
/* close the group of copies issued since the last commit */
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
/* wait until at most N of this thread's committed groups are still in flight */
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* Tiled kernels want more dynamic shared memory than the 48 KB a launch gets without asking: allow `bytes` for
 * this kernel (host side, before its launch; nothing to do below 48 KB) */
template <typename F>
static inline void smem_opt_in(F* kernel, size_t bytes) {
    if (bytes > 48 * 1024) CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

#endif /* COMMON_CP_ASYNC_CUH */
