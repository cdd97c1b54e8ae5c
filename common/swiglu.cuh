/*
 * swiglu.cuh — the SwiGLU nonlinearity of the GLA MLP (gla.md 1.5):
 *     out[M,I] = silu(a) * u     with h [M,2I] = [a | u]  (the fused gate|up projection output)
 * and its backward (dh [M,2I] written, in place over h if the caller wants; the forward's output is not kept: the
 * backward can rebuild it).
 * Elementwise, memory-bound: one thread per 8 columns, 16-byte accesses, fp32 math.
 * Requirements (checked): I % 8 == 0, 16-byte aligned pointers.
 */
#ifndef COMMON_SWIGLU_CUH
#define COMMON_SWIGLU_CUH

#include <stdint.h>
#include "errors.h"
#include "launch.cuh"
#include "bf16.cuh"


/* thread i: row m = i / (I/8), columns j..j+7 */
__global__ void swiglu_forward_kernel(bf16* __restrict__ out, const bf16* __restrict__ h, size_t n8, int I) {
    pdl_wait_prior();
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n8) return;
    const size_t m = i / (size_t)(I / 8);
    const int j = (int)(i - m * (size_t)(I / 8)) * 8;
    const bf16* hr = h + m * 2 * (size_t)I + j;
    const x128 a = load128cs(hr), u = load128cs(hr + I);
    x128 o;
#pragma unroll
    for (int k = 0; k < 8; k++) {
        const float av = bf2f(a[k]);
        o[k] = f2bf(av * sigmoid_ftz(av) * bf2f(u[k]));
    }
    store128(out + i * 8, o);
}

/* da = dout*u*s*(1 + a*(1-s)), du = dout*a*s, s = sigmoid(a); out (if not NULL) = the forward's output, same
 * operations in the same order, so the same bits. dh may be h: each thread reads its 16 elements of h before it
 * writes the same 16 of dh, and no other thread touches them (so neither pointer is __restrict__). */
__global__ void swiglu_backward_kernel(bf16* dh, bf16* __restrict__ out, const bf16* __restrict__ dout, const bf16* h,
                                       size_t n8, int I) {
    pdl_wait_prior();
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n8) return;
    const size_t m = i / (size_t)(I / 8);
    const int j = (int)(i - m * (size_t)(I / 8)) * 8;
    const size_t off = m * 2 * (size_t)I + j;
    const x128 a = load128cs(h + off), u = load128cs(h + off + I), g = load128cs(dout + i * 8);
    x128 da, du, o;
#pragma unroll
    for (int k = 0; k < 8; k++) {
        const float av = bf2f(a[k]), uv = bf2f(u[k]), gv = bf2f(g[k]), s = sigmoid_ftz(av);
        da[k] = f2bf(gv * uv * s * (1.f + av * (1.f - s)));
        du[k] = f2bf(gv * av * s);
        o[k] = f2bf(av * s * uv);
    }
    store128(dh + off, da);
    store128(dh + off + I, du);
    if (out) store128(out + i * 8, o);
}

static inline void swiglu_check_args(const char* who, const void* p1, const void* p2, const void* p3, int M, int I) {
    if (M < 0 || I <= 0 || I % 8 != 0) die("%s: need I %% 8 == 0 (got M=%d I=%d)", who, M, I);
    if (((uintptr_t)p1 | (uintptr_t)p2 | (uintptr_t)p3) & 15) die("%s: pointers must be 16-byte aligned", who);
}

/* out[M,I] bf16 = silu(h[:, :I]) * h[:, I:] ; h[M,2I] bf16 */
static inline void swiglu_forward(bf16* out, const bf16* h, int M, int I, cudaStream_t s) {
    swiglu_check_args("swiglu_forward", out, h, h, M, I);
    const size_t n8 = (size_t)M * I / 8;
    if (n8 == 0) return;
    launch_kernel(swiglu_forward_kernel, (unsigned)((n8 + 255) / 256), 256, 0, s, out, h, n8, I);
}

/* dh[M,2I] bf16 written (may be h itself) ; dout[M,I] bf16 ; h[M,2I] bf16 (the forward's input). out[M,I] bf16, or NULL:
 * the forward's output rebuilt bit for bit while h is in registers anyway; the weight gradient of the
 * down projection needs it, and this replaces a forward rerun (a pass over h) in the backward. */
static inline void swiglu_backward_rebuild(bf16* dh, bf16* out, const bf16* dout, const bf16* h, int M, int I,
                                           cudaStream_t s) {
    swiglu_check_args("swiglu_backward", dh, dout, h, M, I);
    if ((uintptr_t)out & 15) die("swiglu_backward: pointers must be 16-byte aligned");
    const size_t n8 = (size_t)M * I / 8;
    if (n8 == 0) return;
    launch_kernel(swiglu_backward_kernel, (unsigned)((n8 + 255) / 256), 256, 0, s, dh, out, dout, h, n8, I);
}
static inline void swiglu_backward(bf16* dh, const bf16* dout, const bf16* h, int M, int I, cudaStream_t s) {
    swiglu_backward_rebuild(dh, NULL, dout, h, M, I, s);
}

#endif /* COMMON_SWIGLU_CUH */
