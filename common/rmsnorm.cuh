/*
 * rmsnorm.cuh — RMSNorm over rows of the fp32 residual stream with the residual add fused in front
 * (GLA attn/mlp/final norms, Mamba block/final norms), and its backward. The trainers' block norms keep
 * xhat = bf16(x * rstd) for their backward instead of the fp32 stream (half the bytes): rmsnorm_forward_xhat
 * writes it and forms the output from it, rmsnorm_backward_xhat and rmsnorm_apply_weight rebuild that output.
 *
 * Also the one home of three small pieces the other norm/gate kernels share (gated_rmsnorm.cuh and
 * gla_gate.cuh include this file for them): vec8_* 16-byte row-chunk loads/stores in fp32 registers,
 * group/warp sums, and partials_colsum_add — the deterministic second stage of every parameter-gradient
 * reduction here (dw, db): each block writes one row of partial sums into scratch [P, C], then one
 * small kernel adds the P rows to the gradient in a fixed order. No float atomics => same bits every run.
 *
 * Memory-bound. Layout: a row (token) is handled by a "group" of GT threads (one warp for C <= 1024,
 * up to a whole 256-thread block for C <= 8192); each thread owns NCH 8-column chunks of the row and
 * keeps them in registers between the sum-of-squares pass and the output pass, so every byte crosses
 * HBM once. Requirements (checked): C % 8 == 0, C <= 8192, pointers 16-byte aligned.
 */
#ifndef COMMON_RMSNORM_CUH
#define COMMON_RMSNORM_CUH

#include <stdint.h>
#include "errors.h"
#include "launch.cuh"
#include "bf16.cuh"

/* ---------------------------------------------------------------------------------------------
 * shared helpers (also used by gated_rmsnorm.cuh, gla_gate.cuh)
 * ------------------------------------------------------------------------------------------- */

/* 8 bf16 (packed in registers) to fp32, bit for bit bf2f, but through asm the compiler cannot merge with an earlier
 * conversion of the same values: a kernel short of registers then holds the 4 packed words across its row sum, not
 * the 8 floats */
__device__ inline void vec8_unpack_again(float v[8], const x128& a) {
    const uint32_t* u = reinterpret_cast<const uint32_t*>(&a);
#pragma unroll
    for (int h = 0; h < 4; h++) {
        uint32_t lo, hi;
        asm volatile("shl.b32 %0, %2, 16;\n\tand.b32 %1, %2, 0xffff0000;" : "=r"(lo), "=r"(hi) : "r"(u[h]));
        v[2 * h] = __uint_as_float(lo);
        v[2 * h + 1] = __uint_as_float(hi);
    }
}
/* 8 consecutive elements <-> 8 fp32 registers, 16 bytes (bf16) or 2x16 bytes (fp32) per access */
__device__ inline void vec8_load(float v[8], const float* p) {
    f128 a = load128(p), b = load128(p + 4);
#pragma unroll
    for (int k = 0; k < 4; k++) { v[k] = a[k]; v[4 + k] = b[k]; }
}
__device__ inline void vec8_load_cs(float v[8], const float* p) {
    f128 a = load128cs(p), b = load128cs(p + 4);
#pragma unroll
    for (int k = 0; k < 4; k++) { v[k] = a[k]; v[4 + k] = b[k]; }
}
__device__ inline void vec8_load(float v[8], const bf16* p) {
    x128 a = load128(p);
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = bf2f(a[k]);
}
__device__ inline void vec8_load_cs(float v[8], const bf16* p) {
    x128 a = load128cs(p);
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = bf2f(a[k]);
}
__device__ inline void vec8_store(float* p, const float v[8]) {
    f128 a, b;
#pragma unroll
    for (int k = 0; k < 4; k++) { a[k] = v[k]; b[k] = v[4 + k]; }
    store128(p, a);
    store128(p + 4, b);
}
__device__ inline void vec8_store(bf16* p, const float v[8]) {
    x128 a;
#pragma unroll
    for (int k = 0; k < 8; k++) a[k] = f2bf(v[k]);
    store128(p, a);
}

/* sum over aligned groups of L consecutive lanes (L a power of two <= 32); every lane of the group
 * gets the same bits (xor butterfly, fixed order) */
template <int L>
__device__ inline float lane_group_sum(float v) {
#pragma unroll
    for (int o = L / 2; o >= 1; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
/* sum across the 32/L lane groups of a warp (lanes l, l^L, l^2L, ... hold the same columns) */
template <int L>
__device__ inline float lane_group_across(float v) {
#pragma unroll
    for (int o = L; o < 32; o *= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum over a group of GT threads (GT = 32, 64, 128 or 256; groups are consecutive threads of a
 * 256-thread block). red: 8 floats of shared memory. For GT > 32 every thread of the block must call
 * it (it has barriers). */
template <int GT>
__device__ inline float group_sum(float v, float* red) {
    v = lane_group_sum<32>(v);
    if constexpr (GT == 32) {
        return v;
    } else {
        constexpr int WPG = GT / 32;
        const int warp = threadIdx.x >> 5, first = (warp / WPG) * WPG;
        if ((threadIdx.x & 31) == 0) red[warp] = v;
        __syncthreads();
        float s = 0.f;
#pragma unroll
        for (int k = 0; k < WPG; k++) s += red[first + k];
        __syncthreads();  /* red is reused by the next call */
        return s;
    }
}

/* dst[c] += sum_{p < P} part[p*C + c], always in the same order. block (32, 32), grid ceil(C/32). */
__global__ void partials_colsum_add_kernel(float* dst, const float* part, int P, int C) {
    pdl_wait_prior();
    __shared__ float s[32][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.f;
    if (c < C) {
#pragma unroll 4
        for (int p = threadIdx.y; p < P; p += 32) acc += part[(size_t)p * C + c];
    }
    s[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float t = 0.f;
#pragma unroll
        for (int k = 0; k < 32; k++) t += s[k][threadIdx.x];
        dst[c] += t;
    }
}
static inline void partials_colsum_add(float* dst, const float* part, int P, int C, cudaStream_t s) {
    launch_kernel(partials_colsum_add_kernel, (C + 31) / 32, dim3(32, 32), 0, s, dst, part, P, C);
}

static inline int is_aligned16(const void* p) { return ((uintptr_t)p & 15) == 0; }

/* How many blocks of `kernel` the whole GPU runs at once (one full wave). The backward kernels here are
 * persistent: launching exactly one wave avoids a half-empty last wave (measured on H200: rmsnorm
 * backward 78% of copy bandwidth with 528 blocks = 2 waves, 81% with 264 = 1 wave). Cached per kernel.
 * The number of partial rows therefore depends on the GPU model, not on the run: bits stay identical
 * from run to run on one machine. */
static inline int full_wave_blocks(const void* kernel, int threads, size_t smem) {
    static const void* keys[64];
    static size_t smems[64];
    static int vals[64], n = 0;
    for (int i = 0; i < n; i++)
        if (keys[i] == kernel && smems[i] == smem) return vals[i];
    int dev = 0, sms = 0, per_sm = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
    const int v = sms * (per_sm > 0 ? per_sm : 1);
    if (n < 64) { keys[n] = kernel; smems[n] = smem; vals[n] = v; n++; }
    return v;
}

/* ---------------------------------------------------------------------------------------------
 * RMSNorm
 * ------------------------------------------------------------------------------------------- */

#define RMSNORM_THREADS 256
#define RMSNORM_MAX_C 8192

/* threads per row: the smallest of 32, 64, 128, 256 that covers C with <= 4 chunks of 8 per thread */
static inline int rmsnorm_group_threads(int C) {
    int gt = 32;
    while (gt < RMSNORM_THREADS && C > gt * 8 * 4) gt *= 2;
    return gt;
}
/* v = resid_in (or 0) + delta (if any) + delta2 (if any), added in that order in fp32, 8 columns */
__device__ inline void rmsnorm_load_residual(float v[8], const float* resid_in, const bf16* delta, const bf16* delta2,
                                             size_t off) {
    if (resid_in) vec8_load_cs(v, resid_in + off);
    else {
#pragma unroll
        for (int k = 0; k < 8; k++) v[k] = 0.f;
    }
    if (delta) {
        float d[8];
        vec8_load_cs(d, delta + off);
#pragma unroll
        for (int k = 0; k < 8; k++) v[k] += d[k];
    }
    if (delta2) {
        float d[8];
        vec8_load_cs(d, delta2 + off);
#pragma unroll
        for (int k = 0; k < 8; k++) v[k] += d[k];
    }
}

/* resid_out[M,C] = resid_in + delta + delta2 (resid_out NULL: not stored) ; out[M,C] = resid_out*rstd*w ; rstd[M].
 * resid_out may equal resid_in (in place): all loads of a row precede its stores, same thread.
 * xhat_out (or NULL): also stores xhat = resid_out*rstd rounded to bf16, and out is then formed from that rounded
 * xhat (out = bf16(xhat) * w), so that the backward, given only xhat, rebuilds out bit for bit. */
template <int NCH, int GT>
__global__ void __launch_bounds__(RMSNORM_THREADS)
rmsnorm_forward_kernel(bf16* __restrict__ out, bf16* __restrict__ xhat_out, float* __restrict__ rstd, float* resid_out,
                       const float* resid_in, const bf16* __restrict__ delta, const bf16* __restrict__ delta2,
                       const float* __restrict__ w, int M, int C, float eps) {
    pdl_wait_prior();
    __shared__ float red[RMSNORM_THREADS / 32];
    const int t = threadIdx.x % GT;
    const int row = blockIdx.x * (RMSNORM_THREADS / GT) + threadIdx.x / GT;
    const bool live = row < M;  /* no early return: group_sum may hold barriers */
    const size_t base = (size_t)(live ? row : 0) * C;
    float x[NCH][8];
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < NCH; i++) {
        const int c = (i * GT + t) * 8;
        if (live && c < C) {
            rmsnorm_load_residual(x[i], resid_in, delta, delta2, base + c);
#pragma unroll
            for (int k = 0; k < 8; k++) ss += x[i][k] * x[i][k];
        }
    }
    ss = group_sum<GT>(ss, red);
    if (!live) return;
    const float r = rsqrtf(ss / (float)C + eps);
    if (rstd && t == 0) rstd[row] = r;
#pragma unroll
    for (int i = 0; i < NCH; i++) {
        const int c = (i * GT + t) * 8;
        if (c < C) {
            float wv[8], y[8];
            vec8_load(wv, w + c);
            if (resid_out) vec8_store(resid_out + base + c, x[i]);
            float xh[8];
#pragma unroll
            for (int k = 0; k < 8; k++) xh[k] = xhat_out ? bf2f(f2bf(x[i][k] * r)) : x[i][k] * r;
            if (xhat_out) vec8_store(xhat_out + base + c, xh);
#pragma unroll
            for (int k = 0; k < 8; k++) y[k] = xh[k] * wv[k];
            vec8_store(out + base + c, y);
        }
    }
}

template <int NCH, int GT>
static void rmsnorm_forward_launch(bf16* out, bf16* xhat, float* rstd, float* resid_out, const float* resid_in,
                                   const bf16* delta, const bf16* delta2, const float* w, int M, int C, float eps,
                                   cudaStream_t s) {
    const int rows_per_block = RMSNORM_THREADS / GT;
    const int grid = (M + rows_per_block - 1) / rows_per_block;
    launch_kernel(rmsnorm_forward_kernel<NCH, GT>, grid, RMSNORM_THREADS, 0, s, out, xhat, rstd, resid_out, resid_in,
                  delta, delta2, w, M, C, eps);
}

/* Non-zero, with the reason in why, when no kernel here takes rows of C channels (the trainers ask
 * before the GPU is touched; the launchers die with it). */
static inline int rmsnorm_shape_error(int C, char* why, size_t cap) {
    if (C > 0 && C % 8 == 0 && C <= RMSNORM_MAX_C) return 0;
    snprintf(why, cap, "RMSNorm needs a width that is a multiple of 8 and at most %d, not %d", RMSNORM_MAX_C, C);
    return 1;
}
static inline void rmsnorm_check_args(const char* who, int M, int C) {
    char why[160];
    if (M < 0) die("%s: bad row count M=%d", who, M);
    if (rmsnorm_shape_error(C, why, sizeof why)) die("%s: %s", who, why);
}

/* The general form. out[M,C] bf16, xhat[M,C] bf16 (or NULL; see the kernel), rstd[M] fp32 (may be NULL),
 * resid_out[M,C] fp32 = resid_in[M,C] fp32 (NULL => 0) + delta[M,C] bf16 (NULL => 0) + delta2[M,C] bf16
 * (NULL => 0), added in that order; resid_out may be resid_in, or NULL when nothing reads the sum later. w[C]
 * fp32. Two deltas: the residual stream can skip a stored point (x + mixer output + MLP output, the same fp32
 * sums as storing x + mixer output). */
static inline void rmsnorm_forward_xhat2(bf16* out, bf16* xhat, float* rstd, float* resid_out, const float* resid_in,
                                         const bf16* delta, const bf16* delta2, const float* w, int M, int C, float eps,
                                         cudaStream_t s) {
    rmsnorm_check_args("rmsnorm_forward", M, C);
    if (!resid_in && !delta) die("rmsnorm_forward: resid_in and delta are both NULL");
    if (!is_aligned16(out) || !is_aligned16(xhat) || !is_aligned16(resid_out) || !is_aligned16(resid_in) ||
        !is_aligned16(delta) || !is_aligned16(delta2) || !is_aligned16(w))
        die("rmsnorm_forward: pointers must be 16-byte aligned");
    if (M == 0) return;
    const int gt = rmsnorm_group_threads(C), nch = (C + gt * 8 - 1) / (gt * 8);
#define RMSNORM_FWD_CASE(N, G) if (nch == N && gt == G) { rmsnorm_forward_launch<N, G>(out, xhat, rstd, resid_out, resid_in, delta, delta2, w, M, C, eps, s); return; }
    RMSNORM_FWD_CASE(1, 32) RMSNORM_FWD_CASE(2, 32) RMSNORM_FWD_CASE(3, 32) RMSNORM_FWD_CASE(4, 32)
    RMSNORM_FWD_CASE(3, 64) RMSNORM_FWD_CASE(4, 64) RMSNORM_FWD_CASE(3, 128) RMSNORM_FWD_CASE(4, 128)
    RMSNORM_FWD_CASE(3, 256) RMSNORM_FWD_CASE(4, 256)
#undef RMSNORM_FWD_CASE
    die("rmsnorm_forward: no kernel for C=%d", C);
}
/* without xhat */
static inline void rmsnorm_forward2(bf16* out, float* rstd, float* resid_out, const float* resid_in, const bf16* delta,
                                    const bf16* delta2, const float* w, int M, int C, float eps, cudaStream_t s) {
    rmsnorm_forward_xhat2(out, NULL, rstd, resid_out, resid_in, delta, delta2, w, M, C, eps, s);
}
/* the one-delta form: resid_out = resid_in + delta */
static inline void rmsnorm_forward(bf16* out, float* rstd, float* resid_out, const float* resid_in, const bf16* delta,
                                   const float* w, int M, int C, float eps, cudaStream_t s) {
    rmsnorm_forward_xhat2(out, NULL, rstd, resid_out, resid_in, delta, NULL, w, M, C, eps, s);
}
/* The trainers' block norms: the one-delta form that also keeps xhat (bf16) for the backward instead of the fp32
 * stream (half the bytes; the stream itself then lives in one buffer, updated in place). */
static inline void rmsnorm_forward_xhat(bf16* out, bf16* xhat, float* rstd, float* resid_out, const float* resid_in,
                                        const bf16* delta, const float* w, int M, int C, float eps, cudaStream_t s) {
    if (!xhat) die("rmsnorm_forward_xhat: xhat is NULL");
    rmsnorm_forward_xhat2(out, xhat, rstd, resid_out, resid_in, delta, NULL, w, M, C, eps, s);
}

/* out[M,C] = bf16(xhat * w): a norm's output rebuilt from its kept xhat, bit for bit what rmsnorm_forward_xhat
 * wrote (for the recompute levels, whose backward needs the output before the norm's own backward runs).
 * 8 columns a thread; memory-bound, one pass. */
__global__ void rmsnorm_apply_weight_kernel(bf16* __restrict__ out, const bf16* __restrict__ xhat,
                                            const float* __restrict__ w, size_t n8, int C) {
    pdl_wait_prior();
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n8; i += (size_t)gridDim.x * blockDim.x) {
        const size_t off = i * 8;
        float xv[8], wv[8];
        vec8_load_cs(xv, xhat + off);
        vec8_load(wv, w + off % C);
#pragma unroll
        for (int k = 0; k < 8; k++) xv[k] *= wv[k];
        vec8_store(out + off, xv);
    }
}
static inline void rmsnorm_apply_weight(bf16* out, const bf16* xhat, const float* w, int M, int C, cudaStream_t s) {
    rmsnorm_check_args("rmsnorm_apply_weight", M, C);
    if (!is_aligned16(out) || !is_aligned16(xhat) || !is_aligned16(w)) die("rmsnorm_apply_weight: pointers must be 16-byte aligned");
    const size_t n8 = (size_t)M * C / 8;
    if (n8 == 0) return;
    const size_t want = (n8 + 255) / 256;
    const int grid = (int)(want < 4096 ? want : 4096);
    launch_kernel(rmsnorm_apply_weight_kernel, grid, 256, 0, s, out, xhat, w, n8, C);
}

/* dresid[M,C] += rstd*(w*dy - xhat*mean(xhat*w*dy)), xhat = x*rstd ; part[blockIdx.x, C] = this block's
 * sum over its rows of dy*xhat. Rows are dealt to groups round-robin: group g of P*G takes g, g+P*G, ...
 * smem: C floats (to combine the G row groups of the block in a fixed order).
 * Optional: x = x + xdelta (the forward's fused residual add, redone here instead of kept), and out =
 * the forward's output x*rstd*w rebuilt bit for bit (same fp32 operations, same stored rstd): the weight
 * gradient of the next matrix product needs it, and writing it here replaces a forward rerun. */
template <int NCH, int GT, bool XHAT>
__global__ void __launch_bounds__(RMSNORM_THREADS)
rmsnorm_backward_kernel(float* __restrict__ dresid, bf16* __restrict__ dresid_bf, float* __restrict__ part,
                        bf16* __restrict__ out, const bf16* __restrict__ dout, const float* __restrict__ x,
                        const bf16* __restrict__ xdelta, const bf16* __restrict__ xhat, const float* __restrict__ rstd,
                        const float* __restrict__ w, int M, int C) {
    pdl_wait_prior();
    extern __shared__ float4 sdw4[];  /* float4: 16-byte aligned for the final store128 copy */
    float* sdw = (float*)sdw4;
    __shared__ float red[RMSNORM_THREADS / 32];
    constexpr int G = RMSNORM_THREADS / GT;
    const int t = threadIdx.x % GT, grp = threadIdx.x / GT;
    float dw[NCH][8];
#pragma unroll
    for (int i = 0; i < NCH; i++)
#pragma unroll
        for (int k = 0; k < 8; k++) dw[i][k] = 0.f;

    const int stride = gridDim.x * G;
    /* all groups of the block run the same number of iterations (barriers inside group_sum for GT > 32) */
    for (int row0 = blockIdx.x * G; row0 < M; row0 += stride) {
        const int row = row0 + grp;
        const bool live = row < M;
        const size_t base = (size_t)(live ? row : 0) * C;
        const float r = live ? rstd[row] : 0.f;
        /* The row's xhat: from x (+ xdelta) times rstd in fp32, or (XHAT) the kept bf16 xhat, left packed until used.
         * XHAT also loads the row's dresid here with the other inputs, so that a row costs one memory round trip,
         * not two (dresid's loads would otherwise wait for the row sum); the fp32 form has no registers for that. */
        float xh[XHAT ? 1 : NCH][8];
        x128 xq[XHAT ? NCH : 1];
        float dr[XHAT ? NCH : 1][8];
        x128 dy[NCH];
        float c1 = 0.f;
#pragma unroll
        for (int i = 0; i < NCH; i++) {
            const int c = (i * GT + t) * 8;
            if (live && c < C) {
                dy[i] = load128cs(dout + base + c);
                if constexpr (XHAT) {
                    xq[i] = load128cs(xhat + base + c);
                    vec8_load(dr[i], dresid + base + c);
                } else {
                    rmsnorm_load_residual(xh[i], x, xdelta, NULL, base + c);
#pragma unroll
                    for (int k = 0; k < 8; k++) xh[i][k] *= r;
                }
            }
        }
        auto xhat_at = [&](int i, int k) -> float {   /* the row's xhat, column (i * GT + t) * 8 + k */
            if constexpr (XHAT) return bf2f(xq[i][k]);
            else return xh[i][k];
        };
#pragma unroll
        for (int i = 0; i < NCH; i++) {
            const int c = (i * GT + t) * 8;
            if (live && c < C) {
                float wv[8];
                vec8_load(wv, w + c);
#pragma unroll
                for (int k = 0; k < 8; k++) {
                    const float g = bf2f(dy[i][k]);
                    c1 += xhat_at(i, k) * wv[k] * g;
                    dw[i][k] += g * xhat_at(i, k);
                }
                if (out) {   /* exactly the forward's y = (x * r) * w */
                    float y[8];
#pragma unroll
                    for (int k = 0; k < 8; k++) y[k] = xhat_at(i, k) * wv[k];
                    vec8_store(out + base + c, y);
                }
            }
        }
        c1 = group_sum<GT>(c1, red) / (float)C;
#pragma unroll
        for (int i = 0; i < NCH; i++) {
            const int c = (i * GT + t) * 8;
            if (live && c < C) {
                float wv[8], d[8];
                vec8_load(wv, w + c);
                if constexpr (XHAT) {
                    float g[8], xv[8];
                    vec8_unpack_again(g, dy[i]);
                    vec8_unpack_again(xv, xq[i]);
#pragma unroll
                    for (int k = 0; k < 8; k++) d[k] = dr[i][k] + r * (wv[k] * g[k] - xv[k] * c1);
                } else {
                    vec8_load(d, dresid + base + c);
#pragma unroll
                    for (int k = 0; k < 8; k++) d[k] += r * (wv[k] * bf2f(dy[i][k]) - xh[i][k] * c1);
                }
                vec8_store(dresid + base + c, d);
                if (dresid_bf) vec8_store(dresid_bf + base + c, d);
            }
        }
    }

    /* this block's partial dw: combine its G row groups in order 0..G-1, then write one row */
    float* prow = part + (size_t)blockIdx.x * C;
    if constexpr (G == 1) {
#pragma unroll
        for (int i = 0; i < NCH; i++) {
            const int c = (i * GT + t) * 8;
            if (c < C) vec8_store(prow + c, dw[i]);
        }
    } else {
        for (int gi = 0; gi < G; gi++) {
            if (grp == gi) {
#pragma unroll
                for (int i = 0; i < NCH; i++) {
                    const int c = (i * GT + t) * 8;
                    if (c < C)
#pragma unroll
                        for (int k = 0; k < 8; k++) sdw[c + k] = (gi == 0 ? 0.f : sdw[c + k]) + dw[i][k];
                }
            }
            __syncthreads();
        }
        for (int c = threadIdx.x * 4; c < C; c += RMSNORM_THREADS * 4) store128(prow + c, load128(sdw + c));
    }
}

typedef void (*rmsnorm_backward_kernel_t)(float*, bf16*, float*, bf16*, const bf16*, const float*, const bf16*,
                                          const bf16*, const float*, const float*, int, int);

/* the instantiation for this C and input form (xhat or x): GT threads per row, NCH chunks of 8 per thread */
static inline rmsnorm_backward_kernel_t rmsnorm_backward_kernel_for(int C, int xhat) {
    const int gt = rmsnorm_group_threads(C), nch = (C + gt * 8 - 1) / (gt * 8);
#define RMSNORM_BWD_CASE(N, G) \
    if (nch == N && gt == G) return xhat ? rmsnorm_backward_kernel<N, G, true> : rmsnorm_backward_kernel<N, G, false>;
    RMSNORM_BWD_CASE(1, 32) RMSNORM_BWD_CASE(2, 32) RMSNORM_BWD_CASE(3, 32) RMSNORM_BWD_CASE(4, 32)
    RMSNORM_BWD_CASE(3, 64) RMSNORM_BWD_CASE(4, 64) RMSNORM_BWD_CASE(3, 128) RMSNORM_BWD_CASE(4, 128)
    RMSNORM_BWD_CASE(3, 256) RMSNORM_BWD_CASE(4, 256)
#undef RMSNORM_BWD_CASE
    die("rmsnorm_backward: no kernel for C=%d", C);
    return NULL;
}
static inline size_t rmsnorm_backward_smem(int C) {
    return rmsnorm_group_threads(C) < RMSNORM_THREADS ? (size_t)C * sizeof(float) : 0;
}
/* blocks of the backward = rows of partial dw: one full wave, fewer if M is small */
static inline int rmsnorm_bwd_parts(int M, int C) {
    const int rows_per_block = RMSNORM_THREADS / rmsnorm_group_threads(C);
    const int need = (M + rows_per_block - 1) / rows_per_block;
    const int wave = full_wave_blocks((const void*)rmsnorm_backward_kernel_for(C, 1), RMSNORM_THREADS, rmsnorm_backward_smem(C));
    return need < wave ? (need > 0 ? need : 1) : wave;
}
/* floats of scratch that rmsnorm_backward needs (needs the CUDA device selected: sized to one wave) */
static inline size_t rmsnorm_scratch_floats(int M, int C) {
    rmsnorm_check_args("rmsnorm_scratch_floats", M, C);
    return (size_t)rmsnorm_bwd_parts(M, C) * (size_t)C;
}

/* The whole backward, with an explicit number of partial rows P (scratch must hold P*C floats; the dev
 * harness times other P). dresid_bf, xdelta and out may be NULL (see rmsnorm_backward_fused). The input is
 * either x (fp32, with xdelta) or the forward's xhat (bf16, rmsnorm_forward_xhat; x and xdelta NULL). */
static inline void rmsnorm_backward_parts2(float* dresid, bf16* dresid_bf, float* dw, bf16* out, const bf16* dout,
                                           const float* x, const bf16* xdelta, const bf16* xhat, const float* rstd,
                                           const float* w, int M, int C, float* scratch, int P, cudaStream_t s) {
    rmsnorm_check_args("rmsnorm_backward", M, C);
    if (!is_aligned16(dresid) || !is_aligned16(dresid_bf) || !is_aligned16(out) || !is_aligned16(dout) || !is_aligned16(x) ||
        !is_aligned16(xdelta) || !is_aligned16(xhat) || !is_aligned16(w) || !is_aligned16(scratch))
        die("rmsnorm_backward: pointers must be 16-byte aligned");
    if (!x == !xhat || (xhat && xdelta)) die("rmsnorm_backward: give either x (and xdelta) or xhat");
    if (M == 0) return;
    launch_kernel(rmsnorm_backward_kernel_for(C, xhat != NULL), P, RMSNORM_THREADS, rmsnorm_backward_smem(C), s, dresid,
                  dresid_bf, scratch, out, dout, x, xdelta, xhat, rstd, w, M, C);
    partials_colsum_add(dw, scratch, P, C, s);
}
static inline void rmsnorm_backward_parts(float* dresid, bf16* dresid_bf, float* dw, bf16* out, const bf16* dout,
                                          const float* x, const bf16* xdelta, const float* rstd, const float* w, int M,
                                          int C, float* scratch, int P, cudaStream_t s) {
    rmsnorm_backward_parts2(dresid, dresid_bf, dw, out, dout, x, xdelta, NULL, rstd, w, M, C, scratch, P, s);
}

/* dresid[M,C] fp32 += dx ; dw[C] fp32 += sum over rows of dout*xhat (deterministic).
 * dout[M,C] bf16; x[M,C] fp32 = the forward's resid_out; rstd[M]; w[C];
 * scratch: rmsnorm_scratch_floats(M, C) floats. */
static inline void rmsnorm_backward(float* dresid, float* dw, const bf16* dout, const float* x, const float* rstd,
                                    const float* w, int M, int C, float* scratch, cudaStream_t s) {
    rmsnorm_backward_parts(dresid, NULL, dw, NULL, dout, x, NULL, rstd, w, M, C, scratch, rmsnorm_bwd_parts(M, C), s);
}
/* As rmsnorm_backward, also writing the updated dresid rounded to bf16 into dresid_bf[M,C]: the next
 * matrix product in the backward wants it in bf16, and this saves a separate pass over the stream. */
static inline void rmsnorm_backward_bf16(float* dresid, bf16* dresid_bf, float* dw, const bf16* dout, const float* x,
                                         const float* rstd, const float* w, int M, int C, float* scratch, cudaStream_t s) {
    rmsnorm_backward_parts(dresid, dresid_bf, dw, NULL, dout, x, NULL, rstd, w, M, C, scratch, rmsnorm_bwd_parts(M, C), s);
}
/* As rmsnorm_backward_bf16, for a norm whose input the forward built as x + xdelta (xdelta [M,C] bf16, or
 * NULL) and did not keep; also rebuilds the forward's output into out[M,C] bf16 (or NULL), bit for bit,
 * for the weight gradient of the matrix product that read it. One pass instead of a forward rerun
 * (read x, xdelta; write the residual sum and out) followed by this backward. */
static inline void rmsnorm_backward_fused(float* dresid, bf16* dresid_bf, float* dw, bf16* out, const bf16* dout,
                                          const float* x, const bf16* xdelta, const float* rstd, const float* w, int M,
                                          int C, float* scratch, cudaStream_t s) {
    rmsnorm_backward_parts(dresid, dresid_bf, dw, out, dout, x, xdelta, rstd, w, M, C, scratch, rmsnorm_bwd_parts(M, C), s);
}

/* The backward of rmsnorm_forward_xhat, from the kept xhat[M,C] bf16 (and rstd): as rmsnorm_backward_bf16, and with
 * out non-NULL also rebuilds the forward's output bf16(xhat * w) into out[M,C] for the weight gradient after it. */
static inline void rmsnorm_backward_xhat(float* dresid, bf16* dresid_bf, float* dw, bf16* out, const bf16* dout,
                                         const bf16* xhat, const float* rstd, const float* w, int M, int C, float* scratch,
                                         cudaStream_t s) {
    rmsnorm_backward_parts2(dresid, dresid_bf, dw, out, dout, NULL, NULL, xhat, rstd, w, M, C, scratch,
                            rmsnorm_bwd_parts(M, C), s);
}

#endif /* COMMON_RMSNORM_CUH */
