/*
 * conv1d.cuh — Mamba's depthwise causal conv1d + bias + SiLU (mamba.md 1.2 step 2, backward 2.2 steps 9-10) on
 * token-major activations, and its single-token form for sampling.
 *
 *   xc[b,t,d] = b[d] + sum_{k<W} w[d,k] x[b, t-(W-1)+k, d]   (x at t < 0 is 0),   u = silu(xc)
 *
 * Token-major rows make channels contiguous. A block owns CONV_TILE_C channels x CONV_TY runs of CONV_TR tokens; it
 * copies its whole input tile (with the W-1 halo rows it needs on each side) global -> shared by cp.async at once,
 * so all of the block's bytes are in flight together, then each thread (one warp per run) walks its run out of
 * shared memory, 2 channels (one 4-byte word) at a time, keeping the last W-1 inputs in registers. (The kernels
 * that streamed each thread's tokens through registers, one or two loads ahead, left DRAM idle between a thread's
 * loads: 30% slower forward, 50% slower backward; they are versions of dev/conv1d now.) The backward recomputes the
 * pre-activation (nothing is saved) and produces dx for its own run from the dxc of the run and the next W-1 tokens
 * (recomputed halo). dw, db: per-thread sums, reduced over the CONV_TY runs of a block in shared memory, written as
 * per-block partials [rows][Di][W+1] to `scratch` and summed in row order by a second kernel: deterministic, no
 * float atomics.
 * Requires Di, ld_x, ld_dx multiples of 8 and 16-byte aligned base pointers (checked).
 */
#ifndef COMMON_CONV1D_CUH
#define COMMON_CONV1D_CUH

#include <stddef.h>
#include <stdint.h>
#include "errors.h"
#include "launch.cuh"
#include "bf16.cuh"
#include "cp_async.cuh"

#define CONV_TR 32       // tokens per thread (a run)
#define CONV_TY 8        // runs per block: a block covers CONV_TY * CONV_TR tokens (one dw/db partial row)
#define CONV_TILE_C 64   // channels per block: 32 threads x 2

static inline int conv_rows_per_batch(int T) { return (T + CONV_TY * CONV_TR - 1) / (CONV_TY * CONV_TR); }
static inline size_t conv1d_scratch_floats(int B, int T, int Di, int W) {
    return (size_t)B * conv_rows_per_batch(T) * Di * (W + 1);
}

// shared memory: forward x rows [t0-(W-1), t0+TB); backward x rows [t0-(W-1), t0+TB+W-1) and du rows [t0, t0+TB+W-1),
// then the dw/db partials of the block's runs in the same space
template <int W>
static size_t conv_tile_fwd_smem() { return (size_t)(CONV_TY * CONV_TR + W - 1) * CONV_TILE_C * sizeof(bf16); }
template <int W>
static size_t conv_tile_bwd_smem() {
    size_t tiles = (size_t)(2 * (CONV_TY * CONV_TR) + 3 * (W - 1)) * CONV_TILE_C * sizeof(bf16);
    size_t red = (size_t)CONV_TY * CONV_TILE_C * (W + 1) * sizeof(float);
    return tiles > red ? tiles : red;
}

// rows [0, nrows) of the tile: token t0 + r of src (row stride ld) into dst (CONV_TILE_C bf16 per row); rows outside
// [0, T) and channel chunks outside [0, Di) are zero-filled. 16-byte copies, 8 per row.
__device__ __forceinline__ void conv_tile_load(bf16* dst, const bf16* src, int ld, int t0, int nrows, int T, int d_base,
                                               int Di, int tid, int nthr) {
    for (int i = tid; i < nrows * 8; i += nthr) {
        const int r = i >> 3, ch = (i & 7) * 8, t = t0 + r;
        const bool ok = t >= 0 && t < T && d_base + ch < Di;
        cp_async16(dst + r * CONV_TILE_C + ch, ok ? src + (size_t)t * ld + d_base + ch : src, ok);
    }
}
__device__ __forceinline__ float2 conv_word(const bf16* p) {   // 2 channels of one token from shared memory
    const unsigned v = *reinterpret_cast<const unsigned*>(p);
    return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xffff0000u));
}

// The per-token arithmetic, in one place for the kernels here and dev/conv1d's register-streaming versions (same
// order, so the same bits). Windows hold C channels: xw[k][c] = x(t-(W-1)+k) with x(t) already in xw[W-1],
// dq[k][c] = dxc(t-(W-1)+k). Each call shifts the windows by one token.
// forward: u(t) of channel c
template <int W, int C>
__device__ __forceinline__ float conv_fwd_token(float (&xw)[W][C], const float (&wr)[C][W], const float (&br)[C], int c) {
    float s = br[c];
#pragma unroll
    for (int k = 0; k < W; k++) s += wr[c][k] * xw[k][c];
    const float u = s * sigmoid_ftz(s);
#pragma unroll
    for (int k = 0; k < W - 1; k++) xw[k][c] = xw[k + 1][c];
    return u;
}
// backward: dxc(t) = du(t) silu'(pre-activation) into dq (0 for a token past T: in = false); a token of the thread's
// own run (own) adds its terms to dw, db (acc[c][k < W], acc[c][W])
template <int W, int C>
__device__ __forceinline__ void conv_bwd_token(float (&xw)[W][C], float (&dq)[W][C], float (&acc)[C][W + 1],
                                               const float (&wr)[C][W], const float (&br)[C], int c, float du, bool in,
                                               bool own) {
    float s = br[c];
#pragma unroll
    for (int k = 0; k < W; k++) s += wr[c][k] * xw[k][c];
    const float sg = sigmoid_ftz(s);
    const float dv = in ? du * sg * (1.0f + s * (1.0f - sg)) : 0.0f;
    if (own) {
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
// dx(t-(W-1)) = sum_k w[k] dxc(t-k) of channel c, from the window after conv_bwd_token of token t
template <int W, int C>
__device__ __forceinline__ float conv_dx_token(const float (&dq)[W][C], const float (&wr)[C][W], int c) {
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < W; k++) s += wr[c][k] * dq[W - 1 - k][c];
    return s;
}

template <int W>
__global__ void __launch_bounds__(32 * CONV_TY)
conv1d_silu_fwd_tile_kernel(bf16* __restrict__ u, const bf16* __restrict__ x, int ld_x, const float* __restrict__ w,
                            const float* __restrict__ bias, int T, int Di) {
    pdl_wait_prior();
    extern __shared__ __align__(16) bf16 xs_f[];   // [CONV_TY*CONV_TR + W-1][CONV_TILE_C]: row r = token t0-(W-1)+r
    const int tid = threadIdx.y * 32 + threadIdx.x, b = blockIdx.z;
    const int d_base = blockIdx.x * CONV_TILE_C, t0 = blockIdx.y * CONV_TY * CONV_TR;
    conv_tile_load(xs_f, x + (size_t)b * T * ld_x, ld_x, t0 - (W - 1), CONV_TY * CONV_TR + W - 1, T, d_base, Di, tid,
                   32 * CONV_TY);
    cp_async_commit();
    const int d = d_base + 2 * threadIdx.x, ts = t0 + threadIdx.y * CONV_TR;
    float wr[2][W], br[2];
    if (d < Di) {
#pragma unroll
        for (int c = 0; c < 2; c++) {
            br[c] = bias[d + c];
#pragma unroll
            for (int k = 0; k < W; k++) wr[c][k] = w[(size_t)(d + c) * W + k];
        }
    }
    cp_async_wait<0>();
    __syncthreads();
    if (d >= Di || ts >= T) return;
    const int te = min(T, ts + CONV_TR);
    const bf16* xr = xs_f + (ts - t0) * CONV_TILE_C + 2 * threadIdx.x;   // token ts-(W-1)
    bf16* up = u + ((size_t)b * T + ts) * Di + d;
    float xw[W][2];
#pragma unroll
    for (int k = 0; k < W - 1; k++) {
        const float2 v = conv_word(xr + k * CONV_TILE_C);
        xw[k][0] = v.x; xw[k][1] = v.y;
    }
#pragma unroll
    for (int j = 0; j < CONV_TR; j++) {
        if (ts + j >= te) break;
        const float2 v = conv_word(xr + (j + W - 1) * CONV_TILE_C);
        xw[W - 1][0] = v.x; xw[W - 1][1] = v.y;
        const float oe[2] = {conv_fwd_token<W, 2>(xw, wr, br, 0), conv_fwd_token<W, 2>(xw, wr, br, 1)};
        *reinterpret_cast<unsigned*>(up + (size_t)j * Di) = bf16_raw_pack<2>(oe);
    }
}

template <int W>
__global__ void __launch_bounds__(32 * CONV_TY)
conv1d_silu_bwd_tile_kernel(bf16* __restrict__ dx, int ld_dx, float* __restrict__ part /*[rows][Di][W+1]*/,
                            const bf16* __restrict__ du, const bf16* __restrict__ x, int ld_x,
                            const float* __restrict__ w, const float* __restrict__ bias, int T, int Di) {
    pdl_wait_prior();
    constexpr int TB = CONV_TY * CONV_TR;
    extern __shared__ __align__(16) bf16 tile_b[];
    bf16* xs = tile_b;                                  // [TB + 2(W-1)][C]: row r = token t0-(W-1)+r
    bf16* gs = tile_b + (TB + 2 * (W - 1)) * CONV_TILE_C;   // [TB + W-1][C]: row r = token t0+r (du)
    float(*red)[CONV_TILE_C][W + 1] = reinterpret_cast<float(*)[CONV_TILE_C][W + 1]>(tile_b);   // after the walk
    const int tid = threadIdx.y * 32 + threadIdx.x, b = blockIdx.z;
    const int d_base = blockIdx.x * CONV_TILE_C, t0 = blockIdx.y * TB;
    conv_tile_load(xs, x + (size_t)b * T * ld_x, ld_x, t0 - (W - 1), TB + 2 * (W - 1), T, d_base, Di, tid, 32 * CONV_TY);
    conv_tile_load(gs, du + (size_t)b * T * Di, Di, t0, TB + W - 1, T, d_base, Di, tid, 32 * CONV_TY);
    cp_async_commit();
    const int d = d_base + 2 * threadIdx.x, ts = t0 + threadIdx.y * CONV_TR;
    const bool active = d < Di && ts < T;
    float wr[2][W], br[2], acc[2][W + 1];   // acc: dw[k] for k < W, db at W
#pragma unroll
    for (int c = 0; c < 2; c++) {
#pragma unroll
        for (int k = 0; k <= W; k++) acc[c][k] = 0.0f;
        if (active) {
            br[c] = bias[d + c];
#pragma unroll
            for (int k = 0; k < W; k++) wr[c][k] = w[(size_t)(d + c) * W + k];
        }
    }
    cp_async_wait<0>();
    __syncthreads();
    if (active) {
        const int te = min(T, ts + CONV_TR);
        const bf16* xr = xs + (ts - t0) * CONV_TILE_C + 2 * threadIdx.x;   // token ts-(W-1)
        const bf16* gr = gs + (ts - t0) * CONV_TILE_C + 2 * threadIdx.x;   // token ts
        bf16* dxp = dx + ((size_t)b * T + ts) * ld_dx + d;
        float xw[W][2], dq[W][2];   // xw[k] = x(t-(W-1)+k), dq[k] = dxc(t-(W-1)+k)
#pragma unroll
        for (int k = 0; k < W; k++) {
            dq[k][0] = dq[k][1] = 0.0f;
            if (k < W - 1) {
                const float2 v = conv_word(xr + k * CONV_TILE_C);
                xw[k][0] = v.x; xw[k][1] = v.y;
            }
        }
#pragma unroll
        for (int j = 0; j < CONV_TR + W - 1; j++) {
            const int t = ts + j;
            if (t >= te + W - 1) break;
            const float2 v = conv_word(xr + (j + W - 1) * CONV_TILE_C), g = conv_word(gr + j * CONV_TILE_C);
            xw[W - 1][0] = v.x; xw[W - 1][1] = v.y;
            conv_bwd_token<W, 2>(xw, dq, acc, wr, br, 0, g.x, t < T, t < te);
            conv_bwd_token<W, 2>(xw, dq, acc, wr, br, 1, g.y, t < T, t < te);
            if (j >= W - 1) {   // dx(t-(W-1)), a token of this run
                const float oe[2] = {conv_dx_token<W, 2>(dq, wr, 0), conv_dx_token<W, 2>(dq, wr, 1)};
                *reinterpret_cast<unsigned*>(dxp + (size_t)(j - (W - 1)) * ld_dx) = bf16_raw_pack<2>(oe);
            }
        }
    }
    __syncthreads();   // the tiles are read: red reuses their space
#pragma unroll
    for (int c = 0; c < 2; c++)
#pragma unroll
        for (int k = 0; k <= W; k++) red[threadIdx.y][2 * threadIdx.x + c][k] = acc[c][k];
    __syncthreads();
    const int nval = CONV_TILE_C * (W + 1);
    const size_t row = (size_t)b * gridDim.y + blockIdx.y;
    for (int i = tid; i < nval; i += 32 * CONV_TY) {
        const int cl = i / (W + 1), k = i % (W + 1), dd = d_base + cl;
        if (dd >= Di) continue;
        float s = 0.0f;
#pragma unroll
        for (int y = 0; y < CONV_TY; y++) s += red[y][cl][k];
        part[(row * Di + dd) * (W + 1) + k] = s;
    }
}

// dw [Di,W] += sum over rows, db [Di] += likewise, rows in order
__global__ void conv1d_reduce_kernel(float* dw, float* db, const float* part, int rows, int Di, int W) {
    pdl_wait_prior();
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= Di * (W + 1)) return;
    float s = 0.0f;
    for (int r = 0; r < rows; r++) s += part[(size_t)r * Di * (W + 1) + i];
    const int d = i / (W + 1), k = i % (W + 1);
    if (k < W) dw[(size_t)d * W + k] += s;
    else db[d] += s;
}
// the partials of B * conv_rows_per_batch(T) rows in `part` into dw, db
static inline void conv1d_reduce(float* dw, float* db, const float* part, int B, int T, int Di, int W, cudaStream_t s) {
    const int n = Di * (W + 1);
    launch_kernel(conv1d_reduce_kernel, (n + 255) / 256, 256, 0, s, dw, db, part, B * conv_rows_per_batch(T), Di, W);
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

// launches: a block per (64 channels, 256 tokens, sequence); the backward's 67 KB of shared memory needs opting in
static inline dim3 conv_tile_grid(int B, int T, int Di) {
    return dim3((Di + CONV_TILE_C - 1) / CONV_TILE_C, conv_rows_per_batch(T), B);
}
template <int W>
static void conv_tile_fwd_w(bf16* u, const bf16* x, int ld_x, const float* w, const float* b, int B, int T, int Di,
                            cudaStream_t s) {
    const size_t smem = conv_tile_fwd_smem<W>();
    smem_opt_in(conv1d_silu_fwd_tile_kernel<W>, smem);
    launch_kernel(conv1d_silu_fwd_tile_kernel<W>, conv_tile_grid(B, T, Di), dim3(32, CONV_TY), smem, s, u, x, ld_x, w,
                  b, T, Di);
}
template <int W>
static void conv_tile_bwd_w(bf16* dx, int ld_dx, float* scratch, const bf16* du, const bf16* x, int ld_x,
                            const float* w, const float* b, int B, int T, int Di, cudaStream_t s) {
    const size_t smem = conv_tile_bwd_smem<W>();
    smem_opt_in(conv1d_silu_bwd_tile_kernel<W>, smem);
    launch_kernel(conv1d_silu_bwd_tile_kernel<W>, conv_tile_grid(B, T, Di), dim3(32, CONV_TY), smem, s, dx, ld_dx,
                  scratch, du, x, ld_x, w, b, T, Di);
}
static inline void conv_tile_launch_fwd(bf16* u, const bf16* x, int ld_x, const float* w, const float* b, int B, int T,
                                        int Di, int W, cudaStream_t s) {
    if (W == 4) conv_tile_fwd_w<4>(u, x, ld_x, w, b, B, T, Di, s);
    else if (W == 3) conv_tile_fwd_w<3>(u, x, ld_x, w, b, B, T, Di, s);
    else conv_tile_fwd_w<2>(u, x, ld_x, w, b, B, T, Di, s);
}
static inline void conv_tile_launch_bwd(bf16* dx, int ld_dx, float* scratch, const bf16* du, const bf16* x, int ld_x,
                                        const float* w, const float* b, int B, int T, int Di, int W, cudaStream_t s) {
    if (W == 4) conv_tile_bwd_w<4>(dx, ld_dx, scratch, du, x, ld_x, w, b, B, T, Di, s);
    else if (W == 3) conv_tile_bwd_w<3>(dx, ld_dx, scratch, du, x, ld_x, w, b, B, T, Di, s);
    else conv_tile_bwd_w<2>(dx, ld_dx, scratch, du, x, ld_x, w, b, B, T, Di, s);
}

// u [B,T,Di] = silu(conv(x) + b);  x [B,T,Di] row stride ld_x;  w [Di,W], b [Di] fp32
static inline void conv1d_silu_forward(bf16* u, const bf16* x, int ld_x, const float* w, const float* b,
                                       int B, int T, int Di, int W, cudaStream_t s) {
    conv_check_shape(B, T, Di, W);
    conv_check(x, ld_x, "x");
    conv_check(u, Di, "u");
    conv_tile_launch_fwd(u, x, ld_x, w, b, B, T, Di, W, s);
}

// dx [B,T,Di] (row stride ld_dx) WRITTEN; dw [Di,W], db [Di] ACCUMULATED; du [B,T,Di] contiguous;
// scratch: conv1d_scratch_floats(B,T,Di,W) floats
static inline void conv1d_silu_backward(bf16* dx, int ld_dx, float* dw, float* db, const bf16* du,
                                        const bf16* x, int ld_x, const float* w, const float* b,
                                        int B, int T, int Di, int W, float* scratch, cudaStream_t s) {
    conv_check_shape(B, T, Di, W);
    conv_check(x, ld_x, "x");
    conv_check(dx, ld_dx, "dx");
    conv_check(du, Di, "du");
    conv_tile_launch_bwd(dx, ld_dx, scratch, du, x, ld_x, w, b, B, T, Di, W, s);
    conv1d_reduce(dw, db, scratch, B, T, Di, W, s);
}

// single token: u [B,Di] = silu(b + sum_{k<W-1} w[k] state[k] + w[W-1] x); state [B,Di,W-1] fp32 (oldest first)
// is shifted in place to end with x. x [B,Di] row stride ld_x; u contiguous.
__global__ void conv1d_silu_step_kernel(bf16* u, float* state, const bf16* x, int ld_x, const float* w,
                                        const float* bias, int B, int Di, int W) {
    pdl_wait_prior();
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
    launch_kernel(conv1d_silu_step_kernel, (B * Di + 127) / 128, 128, 0, s, u, state, x, ld_x, w, b, B, Di, W);
}

#endif /* COMMON_CONV1D_CUH */
