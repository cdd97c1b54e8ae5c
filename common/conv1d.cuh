/*
 * conv1d.cuh — Mamba's depthwise causal conv1d + bias + SiLU (mamba.md 1.2 step 2, backward 2.2 steps 9-10) on
 * token-major activations, and its single-token form for sampling.
 *
 *   xc[b,t,d] = b[d] + sum_{k<W} w[d,k] x[b, t-(W-1)+k, d]   (x at t < 0 is 0),   u = silu(xc)
 *
 * Token-major rows make channels contiguous, so a thread owns 4 channels (one 8-byte load/store per token: fewer
 * registers per thread than 8 channels with 16-byte loads, so more blocks per SM, which measured faster) and
 * a run of CONV_TR consecutive tokens, keeping the last W-1 inputs in registers: every input is read once (plus
 * a W-1 halo per run). The backward recomputes the pre-activation (nothing is saved) and produces dx for its own
 * run from the dxc of the run and the next W-1 tokens (recomputed halo). dw, db: per-thread sums, reduced over the
 * CONV_TY runs of a block in shared memory, written as per-block partials [rows][Di][W+1] to `scratch` and summed in
 * row order by a second kernel — deterministic, no float atomics.
 * Requires Di, ld_x, ld_dx multiples of 8 and 16-byte aligned base pointers (checked).
 */
#ifndef COMMON_CONV1D_CUH
#define COMMON_CONV1D_CUH

#include <stddef.h>
#include <stdint.h>
#include "errors.h"
#include "bf16.cuh"

#define CONV_TR 32   // tokens per thread
#define CONV_DX 16   // channel groups per block (x): 128 channels forward, 64 backward
#define CONV_TY 8    // runs per block (y): a block covers CONV_TY * CONV_TR tokens


static inline int conv_rows_per_batch(int T) { return (T + CONV_TY * CONV_TR - 1) / (CONV_TY * CONV_TR); }
static inline size_t conv1d_scratch_floats(int B, int T, int Di, int W) {
    return (size_t)B * conv_rows_per_batch(T) * Di * (W + 1);
}

// CPT bf16 channels of one token as one load (16 or 8 bytes), kept raw (Bf16Raw, bf16.cuh) until used
template <int CPT>
__device__ __forceinline__ typename Bf16Raw<CPT>::T conv_ldv(const bf16* p) {
    return *reinterpret_cast<const typename Bf16Raw<CPT>::T*>(p);
}
template <int CPT>
__device__ __forceinline__ typename Bf16Raw<CPT>::T conv_ldv_cs(const bf16* p) {   // read-once data: evict first
    return __ldcs(reinterpret_cast<const typename Bf16Raw<CPT>::T*>(p));
}

// Forward, CPT channels per thread (one 16- or 8-byte load per token); the loads of the next PFD tokens are in
// flight while a token is computed (PFD 0: none; dev/conv1d v2 against v4-v6 measures the choices). x is read
// once: streaming loads.
template <int W, int CPT = 8, int PFD = 0>
__global__ void __launch_bounds__(CONV_DX * CONV_TY)
conv1d_silu_fwd_kernel(bf16* __restrict__ u, const bf16* __restrict__ x, int ld_x, const float* __restrict__ w,
                       const float* __restrict__ bias, int T, int Di) {
    typedef typename Bf16Raw<CPT>::T V;
    const int d0 = (blockIdx.x * CONV_DX + threadIdx.x) * CPT;
    const int ts = (blockIdx.y * CONV_TY + threadIdx.y) * CONV_TR, b = blockIdx.z;
    if (d0 >= Di || ts >= T) return;
    const int te = min(T, ts + CONV_TR);
    float wr[CPT][W], br[CPT], xw[W][CPT];   // xw[k] = x at t-(W-1)+k
#pragma unroll
    for (int c = 0; c < CPT; c++) {
        br[c] = bias[d0 + c];
#pragma unroll
        for (int k = 0; k < W; k++) wr[c][k] = w[(size_t)(d0 + c) * W + k];
    }
    const bf16* xb = x + (size_t)b * T * ld_x + d0;
    const V zero = {};
#pragma unroll
    for (int k = 0; k < W - 1; k++) {
        const int t = ts - (W - 1) + k;
        V v = t >= 0 ? conv_ldv_cs<CPT>(xb + (size_t)t * ld_x) : zero;
#pragma unroll
        for (int c = 0; c < CPT; c++) xw[k][c] = bf16_raw_el<CPT>(v, c);
    }
    V ahead[PFD > 0 ? PFD : 1];   // at token t: x of t .. t+PFD-1, loaded before t-1 was computed
#pragma unroll
    for (int i = 0; i < PFD; i++) ahead[i] = ts + i < te ? conv_ldv_cs<CPT>(xb + (size_t)(ts + i) * ld_x) : zero;
    const bf16* xn = xb + (size_t)(ts + PFD) * ld_x;   // x of token t + PFD (running addresses: no products per token)
    bf16* up = u + ((size_t)b * T + ts) * Di + d0;
#pragma unroll 4   // W-1 inputs shift by one register per token: unrolled, the shifts become renaming
    for (int t = ts; t < te; t++, xn += ld_x, up += Di) {
        V v;
        if constexpr (PFD > 0) {
            v = ahead[0];
#pragma unroll
            for (int i = 0; i + 1 < PFD; i++) ahead[i] = ahead[i + 1];
            ahead[PFD - 1] = t + PFD < te ? conv_ldv_cs<CPT>(xn) : zero;
        } else {
            v = conv_ldv_cs<CPT>(xn);
        }
        float oe[CPT];
#pragma unroll
        for (int c = 0; c < CPT; c++) {
            xw[W - 1][c] = bf16_raw_el<CPT>(v, c);
            float s = br[c];
#pragma unroll
            for (int k = 0; k < W; k++) s += wr[c][k] * xw[k][c];
            oe[c] = s * sigmoid_ftz(s);
#pragma unroll
            for (int k = 0; k < W - 1; k++) xw[k][c] = xw[k + 1][c];
        }
        *reinterpret_cast<V*>(up) = bf16_raw_pack<CPT>(oe);
    }
}

// Backward, CPT channels per thread (4 in production: 96 registers against 168 at 8, so 5 blocks per SM instead
// of 3), PF: the next token's x and du are loaded before the current token is computed, so the loads of one token
// overlap the arithmetic of the one before (production; dev/conv1d v2 against v4-v6 measures both choices).
template <int W, int CPT = 8, bool PF = false>
__global__ void __launch_bounds__(CONV_DX * CONV_TY)
conv1d_silu_bwd_kernel(bf16* __restrict__ dx, int ld_dx, float* __restrict__ part /*[rows][Di][W+1]*/,
                       const bf16* __restrict__ du, const bf16* __restrict__ x, int ld_x,
                       const float* __restrict__ w, const float* __restrict__ bias, int T, int Di) {
    typedef typename Bf16Raw<CPT>::T V;
    __shared__ float red[CONV_TY][CONV_DX * CPT][W + 1];
    const int d0 = (blockIdx.x * CONV_DX + threadIdx.x) * CPT;
    const int ts = (blockIdx.y * CONV_TY + threadIdx.y) * CONV_TR, b = blockIdx.z;
    const bool active = d0 < Di && ts < T;
    float acc[CPT][W + 1];   // dw[k] for k < W, db at W
#pragma unroll
    for (int c = 0; c < CPT; c++)
#pragma unroll
        for (int k = 0; k <= W; k++) acc[c][k] = 0.0f;
    if (active) {
        const int te = min(T, ts + CONV_TR);
        float wr[CPT][W], br[CPT], xw[W][CPT], dq[W][CPT];   // xw[k] = x(t-(W-1)+k), dq[k] = dxc(t-(W-1)+k)
#pragma unroll
        for (int c = 0; c < CPT; c++) {
            br[c] = bias[d0 + c];
#pragma unroll
            for (int k = 0; k < W; k++) { wr[c][k] = w[(size_t)(d0 + c) * W + k]; dq[k][c] = 0.0f; }
        }
        const bf16* xb = x + (size_t)b * T * ld_x + d0;
        const bf16* gb = du + (size_t)b * T * Di + d0;
        const V zero = {};
#pragma unroll
        for (int k = 0; k < W - 1; k++) {
            const int t = ts - (W - 1) + k;
            V v = t >= 0 ? conv_ldv<CPT>(xb + (size_t)t * ld_x) : zero;
#pragma unroll
            for (int c = 0; c < CPT; c++) xw[k][c] = bf16_raw_el<CPT>(v, c);
        }
        V vn = zero, gn = zero;   // PF: the next token's x and du
        if (PF && ts < T) { vn = conv_ldv<CPT>(xb + (size_t)ts * ld_x); gn = conv_ldv<CPT>(gb + (size_t)ts * Di); }
        // running addresses of the token loaded next (t+1 with PF, else t) and of dx(tp)
        const bf16* xn = xb + (size_t)(ts + PF) * ld_x;
        const bf16* gp = gb + (size_t)(ts + PF) * Di;
        bf16* dxp = dx + ((size_t)b * T + ts) * ld_dx + d0;
        for (int t = ts; t < te + W - 1; t++, xn += ld_x, gp += Di) {
            const bool in = t < T;
            V v, g;
            if (PF) {
                v = vn; g = gn;
                const bool nin = t + 1 < T && t + 1 < te + W - 1;
                vn = nin ? conv_ldv<CPT>(xn) : zero;
                gn = nin ? conv_ldv<CPT>(gp) : zero;
            } else {
                v = in ? conv_ldv<CPT>(xn) : zero;
                g = in ? conv_ldv<CPT>(gp) : zero;
            }
#pragma unroll
            for (int c = 0; c < CPT; c++) {
                xw[W - 1][c] = bf16_raw_el<CPT>(v, c);
                float s = br[c];
#pragma unroll
                for (int k = 0; k < W; k++) s += wr[c][k] * xw[k][c];
                const float sg = sigmoid_ftz(s);
                const float dv = in ? bf16_raw_el<CPT>(g, c) * sg * (1.0f + s * (1.0f - sg)) : 0.0f;
                if (t < te) {
#pragma unroll
                    for (int k = 0; k < W; k++) acc[c][k] += dv * xw[k][c];
                    acc[c][W] += dv;
                }
#pragma unroll
                for (int k = 0; k < W - 1; k++) dq[k][c] = dq[k + 1][c];
                dq[W - 1][c] = dv;
#pragma unroll
                for (int k = 0; k < W - 1; k++) xw[k][c] = xw[k + 1][c];
            }
            const int tp = t - (W - 1);   // dx(tp) = sum_k w[k] dxc(tp + W-1-k) = sum_k w[k] dq[W-1-k]
            if (tp >= ts) {
                float oe[CPT];
#pragma unroll
                for (int c = 0; c < CPT; c++) {
                    float s = 0.0f;
#pragma unroll
                    for (int k = 0; k < W; k++) s += wr[c][k] * dq[W - 1 - k][c];
                    oe[c] = s;
                }
                *reinterpret_cast<V*>(dxp) = bf16_raw_pack<CPT>(oe);
                dxp += ld_dx;
            }
        }
    }
#pragma unroll
    for (int c = 0; c < CPT; c++)
#pragma unroll
        for (int k = 0; k <= W; k++) red[threadIdx.y][threadIdx.x * CPT + c][k] = acc[c][k];
    __syncthreads();
    // one thread per (channel, k) of the block sums the CONV_TY runs in order
    const int nval = CONV_DX * CPT * (W + 1);
    const size_t row = (size_t)b * gridDim.y + blockIdx.y;
    for (int i = threadIdx.y * CONV_DX + threadIdx.x; i < nval; i += CONV_DX * CONV_TY) {
        const int cl = i / (W + 1), k = i % (W + 1), d = blockIdx.x * CONV_DX * CPT + cl;
        if (d >= Di) continue;
        float s = 0.0f;
#pragma unroll
        for (int y = 0; y < CONV_TY; y++) s += red[y][cl][k];
        part[(row * Di + d) * (W + 1) + k] = s;
    }
}

// dw [Di,W] += sum over rows, db [Di] += likewise, rows in order
__global__ void conv1d_reduce_kernel(float* dw, float* db, const float* part, int rows, int Di, int W) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= Di * (W + 1)) return;
    float s = 0.0f;
    for (int r = 0; r < rows; r++) s += part[(size_t)r * Di * (W + 1) + i];
    const int d = i / (W + 1), k = i % (W + 1);
    if (k < W) dw[(size_t)d * W + k] += s;
    else db[d] += s;
}

static inline void conv_check(const void* p, int ld, const char* what) {
    if ((ld % 8) != 0 || ((uintptr_t)p % 16) != 0)
        die("conv1d: %s needs a row stride multiple of 8 (got %d) and a 16-byte aligned pointer", what, ld);
}
/* Non-zero, with the reason in why, when the conv kernels do not take this shape (the trainers ask
 * before the GPU is touched; conv_check_shape dies with it). B is a grid dimension (at most 65535). */
static inline int conv1d_shape_error(int B, int T, int Di, int W, char* why, size_t cap) {
    if (B < 1 || T < 1 || Di < 8 || Di % 8) snprintf(why, cap, "bad shape B=%d T=%d d_inner=%d (d_inner: a multiple of 8)", B, T, Di);
    else if (W < 2 || W > 4) snprintf(why, cap, "causal conv width %d unsupported (2, 3 or 4)", W);
    else if (B > 65535) snprintf(why, cap, "batch %d is more than 65535 (a grid dimension)", B);
    else return 0;
    return 1;
}
static inline void conv_check_shape(int B, int T, int Di, int W) {
    char why[160];
    if (conv1d_shape_error(B, T, Di, W, why, sizeof why)) die("conv1d: %s", why);
}

// u [B,T,Di] = silu(conv(x) + b);  x [B,T,Di] row stride ld_x;  w [Di,W], b [Di] fp32. variant (dev/conv1d): 0
// production (4 channels per thread, two tokens ahead: 64 registers, 8 blocks per SM), 1: 8 channels, none ahead
// (the production until 2026-11-30; 95 registers, 5 blocks), 2: 8 channels, one ahead, 3: 4 channels, one ahead.
// The variants give the same bits.
static inline void conv1d_silu_forward_v(bf16* u, const bf16* x, int ld_x, const float* w, const float* b,
                                         int B, int T, int Di, int W, int variant, cudaStream_t s) {
    conv_check_shape(B, T, Di, W);
    conv_check(x, ld_x, "x");
    conv_check(u, Di, "u");
    const int cpt = variant == 0 || variant == 3 ? 4 : 8;
    dim3 block(CONV_DX, CONV_TY), grid((Di + CONV_DX * cpt - 1) / (CONV_DX * cpt), conv_rows_per_batch(T), B);
#define CONV_FWD(W_, C_, P_) conv1d_silu_fwd_kernel<W_, C_, P_><<<grid, block, 0, s>>>(u, x, ld_x, w, b, T, Di)
#define CONV_FWD_W(C_, P_) do { if (W == 4) CONV_FWD(4, C_, P_); else if (W == 3) CONV_FWD(3, C_, P_); else CONV_FWD(2, C_, P_); } while (0)
    if (variant == 0) CONV_FWD_W(4, 2);
    else if (variant == 1) CONV_FWD_W(8, 0);
    else if (variant == 2) CONV_FWD_W(8, 1);
    else CONV_FWD_W(4, 1);
#undef CONV_FWD_W
#undef CONV_FWD
    CUDA_KERNEL_CHECK();
}
static inline void conv1d_silu_forward(bf16* u, const bf16* x, int ld_x, const float* w, const float* b,
                                       int B, int T, int Di, int W, cudaStream_t s) {
    conv1d_silu_forward_v(u, x, ld_x, w, b, B, T, Di, W, 0, s);
}

// dx [B,T,Di] (row stride ld_dx) WRITTEN; dw [Di,W], db [Di] ACCUMULATED; du [B,T,Di] contiguous;
// scratch: conv1d_scratch_floats(B,T,Di,W) floats. variant (dev/conv1d): 0 production (4 channels per thread +
// next-token prefetch), 1: 8 channels, no prefetch (the production of 2026-11-29), 2: 4 channels, no prefetch,
// 3: 8 channels + prefetch.
static inline void conv1d_silu_backward_v(bf16* dx, int ld_dx, float* dw, float* db, const bf16* du,
                                          const bf16* x, int ld_x, const float* w, const float* b,
                                          int B, int T, int Di, int W, float* scratch, int variant, cudaStream_t s) {
    conv_check_shape(B, T, Di, W);
    conv_check(x, ld_x, "x");
    conv_check(dx, ld_dx, "dx");
    conv_check(du, Di, "du");
    const int cpt = variant == 0 || variant == 2 ? 4 : 8, pf = variant == 0 || variant == 3;
    dim3 block(CONV_DX, CONV_TY), grid((Di + CONV_DX * cpt - 1) / (CONV_DX * cpt), conv_rows_per_batch(T), B);
#define CONV_BWD(W_, C_, P_) conv1d_silu_bwd_kernel<W_, C_, P_><<<grid, block, 0, s>>>(dx, ld_dx, scratch, du, x, ld_x, w, b, T, Di)
#define CONV_BWD_W(C_, P_) do { if (W == 4) CONV_BWD(4, C_, P_); else if (W == 3) CONV_BWD(3, C_, P_); else CONV_BWD(2, C_, P_); } while (0)
    if (cpt == 8 && !pf) CONV_BWD_W(8, false);
    else if (cpt == 8) CONV_BWD_W(8, true);
    else if (!pf) CONV_BWD_W(4, false);
    else CONV_BWD_W(4, true);
#undef CONV_BWD_W
#undef CONV_BWD
    CUDA_KERNEL_CHECK();
    const int n = Di * (W + 1);
    conv1d_reduce_kernel<<<(n + 255) / 256, 256, 0, s>>>(dw, db, scratch, B * conv_rows_per_batch(T), Di, W);
    CUDA_KERNEL_CHECK();
}
static inline void conv1d_silu_backward(bf16* dx, int ld_dx, float* dw, float* db, const bf16* du,
                                        const bf16* x, int ld_x, const float* w, const float* b,
                                        int B, int T, int Di, int W, float* scratch, cudaStream_t s) {
    conv1d_silu_backward_v(dx, ld_dx, dw, db, du, x, ld_x, w, b, B, T, Di, W, scratch, 0, s);
}

// single token: u [B,Di] = silu(b + sum_{k<W-1} w[k] state[k] + w[W-1] x); state [B,Di,W-1] fp32 (oldest first)
// is shifted in place to end with x. x [B,Di] row stride ld_x; u contiguous.
__global__ void conv1d_silu_step_kernel(bf16* u, float* state, const bf16* x, int ld_x, const float* w,
                                        const float* bias, int B, int Di, int W) {
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= B * Di) return;
    const int bi = idx / Di, d = idx % Di;
    float* st = state + (size_t)idx * (W - 1);
    const float xv = bf2f(x[(size_t)bi * ld_x + d]);
    float s = bias[d] + w[(size_t)d * W + W - 1] * xv;
    for (int k = 0; k < W - 1; k++) s += w[(size_t)d * W + k] * st[k];
    for (int k = 0; k < W - 2; k++) st[k] = st[k + 1];
    st[W - 2] = xv;
    u[idx] = f2bf(s * sigmoid_ftz(s));
}
static inline void conv1d_silu_step(bf16* u, float* state, const bf16* x, int ld_x, const float* w, const float* b,
                                    int B, int Di, int W, cudaStream_t s) {
    conv1d_silu_step_kernel<<<(B * Di + 127) / 128, 128, 0, s>>>(u, state, x, ld_x, w, b, B, Di, W);
    CUDA_KERNEL_CHECK();
}

#endif /* COMMON_CONV1D_CUH */
