/*
 * launch.cuh — how this project's kernels are launched: programmatic dependent launch (PDL, sm_90).
 *
 * A plain launch starts the next kernel only after the previous one has finished and its writes are flushed, so
 * every kernel boundary costs the launch latency plus the previous kernel's tail, when its last blocks leave SMs
 * idle (1-5 us each; a gla-340m step has 894 kernels, a mamba-370m step 1,410). With PDL the next kernel may be
 * scheduled while the previous one still runs; correctness then rests on the device side: every kernel launched here
 * calls pdl_wait_prior() as its first statement, before it touches global memory (reads of the previous kernel's
 * output and writes that the previous kernel may still read alike). griddepcontrol.wait returns once every kernel this
 * one depends on has completed with its memory visible, so the results are those of plain launches, bit for bit.
 * Each kernel also lets its successor be scheduled as soon as all of its own blocks have passed that wait (the
 * successor's blocks then fill the SMs this kernel's tail leaves idle and wait there). Kernels launched any other
 * way (cuBLASLt's, cuDNN's, the harnesses' own) are ordered as plain launches always are.
 *
 * PDL=0 in the environment launches plainly (for same-binary comparisons); the device side is then a no-op.
 * Measured (H200, dev/README.md, whole-model section): the idle gaps of a mamba-370m step 2.40 -> 1.34 ms, the step
 * -0.3%; mamba-130m -0.5%; gla-340m within its spread.
 */
#ifndef COMMON_LAUNCH_CUH
#define COMMON_LAUNCH_CUH

#include <stdlib.h>
#include <string.h>
#include <utility>
#include "errors.h"

/* first statement of every kernel launched by launch_kernel */
static __device__ __forceinline__ void pdl_wait_prior() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

static inline int pdl_enabled() {
    static int on = -1;
    if (on < 0) {
        const char* e = getenv("PDL");
        on = !(e && strcmp(e, "0") == 0);
    }
    return on;
}

/* kernel<<<grid, block, smem, s>>>(args...) with PDL allowed against the previous kernel in s; checks the launch */
template <typename... Params, typename... Args>
static inline void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                                 Args&&... args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cfg.attrs = attr;
    cfg.numAttrs = pdl_enabled() ? 1 : 0;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

#endif /* COMMON_LAUNCH_CUH */
