/*
 * gated_rmsnorm.cuh — the GLA output norm (gla.md 1.4, backward 2.7 step 8): for every (token m, head h)
 * row of V values x = o[m, h*V : h*V+V],
 *     y = x * rstd * w * silu(gt),   rstd = 1/sqrt(mean(x^2) + eps),   w[V] shared by all heads,
 * and its backward (d_o, dgt written; dw += deterministic via per-block partials, see rmsnorm.cuh).
 *
 * Memory-bound. A row is handled by L lanes (L = 4..32, the smallest power of two with L*8 >= V, 32 for
 * V > 256), each lane owning NCH 8-column chunks held in registers; 16-byte loads/stores throughout.
 * gt (and dgt) are column slices of a wider fused projection buffer, hence the row strides ld_gt/ld_dgt.
 * Requirements (checked): V % 8 == 0, V <= 1024, ld_gt % 8 == 0, ld_dgt % 8 == 0, 16-byte aligned pointers.
 */
#ifndef COMMON_GATED_RMSNORM_CUH
#define COMMON_GATED_RMSNORM_CUH

#include "rmsnorm.cuh" /* vec8_*, lane_group_*, partials_colsum_add, is_aligned16 */

#define GRMS_THREADS 256
#define GRMS_MAX_V 1024
#define GRMS_BWD_MAX_PARTS 528

/* lanes per row */
static inline int grms_lanes(int V) {
    int L = 4;
    while (L < 32 && L * 8 < V) L *= 2;
    return L;
}
static inline int grms_bwd_parts(int M, int H, int V) {
    const long rows = (long)M * H, rows_per_block = GRMS_THREADS / grms_lanes(V);
    const long p = (rows + rows_per_block - 1) / rows_per_block;
    return (int)(p < GRMS_BWD_MAX_PARTS ? p : GRMS_BWD_MAX_PARTS);
}
/* floats of scratch that gated_rmsnorm_backward needs */
static inline size_t gated_rmsnorm_scratch_floats(int M, int H, int V) { return (size_t)grms_bwd_parts(M, H, V) * (size_t)V; }

__device__ inline float grms_sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }

/* y[R,V] (R = M*H rows), rstd[R]; o[R,V]; gt row m at m*ld_gt, head h at +h*V */
template <int NCH, int L>
__global__ void __launch_bounds__(GRMS_THREADS)
gated_rmsnorm_forward_kernel(bf16* __restrict__ y, float* __restrict__ rstd, const bf16* __restrict__ o,
                             const bf16* __restrict__ gt, int ld_gt, const float* __restrict__ w, int R, int H, int V,
                             float eps) {
    const int t = threadIdx.x % L;
    const int row = blockIdx.x * (GRMS_THREADS / L) + threadIdx.x / L;
    const bool live = row < R;  /* no early return before the shuffles */
    const int rr = live ? row : 0, m = rr / H, h = rr % H;
    const size_t xo = (size_t)rr * V, go = (size_t)m * ld_gt + (size_t)h * V;
    float x[NCH][8];
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < NCH; i++) {
        const int c = (i * L + t) * 8;
        if (live && c < V) {
            vec8_load_cs(x[i], o + xo + c);
#pragma unroll
            for (int k = 0; k < 8; k++) ss += x[i][k] * x[i][k];
        }
    }
    ss = lane_group_sum<L>(ss);
    if (!live) return;
    const float r = rsqrtf(ss / (float)V + eps);
    if (rstd && t == 0) rstd[row] = r;
#pragma unroll
    for (int i = 0; i < NCH; i++) {
        const int c = (i * L + t) * 8;
        if (c < V) {
            float g[8], wv[8], out[8];
            vec8_load_cs(g, gt + go + c);
            vec8_load(wv, w + c);
#pragma unroll
            for (int k = 0; k < 8; k++) out[k] = x[i][k] * r * wv[k] * g[k] * grms_sigmoid(g[k]);
            vec8_store(y + xo + c, out);
        }
    }
}

/* d_o[R,V], dgt (row stride ld_dgt) written; part[blockIdx.x, V] = this block's sum of dy*gt*sig(gt)*xhat.
 * Rows dealt round-robin to the block's 256/L row groups; smem: V floats. */
template <int NCH, int L>
__global__ void __launch_bounds__(GRMS_THREADS)
gated_rmsnorm_backward_kernel(bf16* __restrict__ d_o, bf16* __restrict__ dgt, int ld_dgt, float* __restrict__ part,
                              const bf16* __restrict__ dy, const bf16* __restrict__ o, const bf16* __restrict__ gt,
                              int ld_gt, const float* __restrict__ rstd, const float* __restrict__ w, int R, int H, int V) {
    extern __shared__ float sdw[];
    constexpr int RB = GRMS_THREADS / L; /* rows per block and pass */
    const int t = threadIdx.x % L;
    float dw[NCH][8];
#pragma unroll
    for (int i = 0; i < NCH; i++)
#pragma unroll
        for (int k = 0; k < 8; k++) dw[i][k] = 0.f;

    for (int row0 = blockIdx.x * RB; row0 < R; row0 += gridDim.x * RB) {  /* same trip count for the whole warp */
        const int row = row0 + threadIdx.x / L;
        const bool live = row < R;
        const int rr = live ? row : 0, m = rr / H, h = rr % H;
        const size_t xo = (size_t)rr * V, go = (size_t)m * ld_gt + (size_t)h * V, dgo = (size_t)m * ld_dgt + (size_t)h * V;
        const float r = live ? rstd[rr] : 0.f;
        x128 dyv[NCH], ov[NCH], gv[NCH];
#pragma unroll
        for (int i = 0; i < NCH; i++) {
            const int c = (i * L + t) * 8;
            if (live && c < V) {
                dyv[i] = load128cs(dy + xo + c);
                ov[i] = load128cs(o + xo + c);
                gv[i] = load128cs(gt + go + c);
            }
        }
        float dyp[NCH][8];  /* dy * silu(gt): the gradient reaching the plain-rmsnorm output */
        float c1 = 0.f;
#pragma unroll
        for (int i = 0; i < NCH; i++) {
            const int c = (i * L + t) * 8;
            if (live && c < V) {
                float wv[8], dg[8];
                vec8_load(wv, w + c);
#pragma unroll
                for (int k = 0; k < 8; k++) {
                    const float g = bf2f(gv[i][k]), s = grms_sigmoid(g), d = bf2f(dyv[i][k]);
                    const float xhat = bf2f(ov[i][k]) * r;
                    dg[k] = d * xhat * wv[k] * (s + g * s * (1.f - s));
                    dyp[i][k] = d * g * s;
                    dw[i][k] += dyp[i][k] * xhat;
                    c1 += xhat * dyp[i][k] * wv[k];
                }
                vec8_store(dgt + dgo + c, dg);
            }
        }
        c1 = lane_group_sum<L>(c1) / (float)V;
#pragma unroll
        for (int i = 0; i < NCH; i++) {
            const int c = (i * L + t) * 8;
            if (live && c < V) {
                float wv[8], dx[8];
                vec8_load(wv, w + c);
#pragma unroll
                for (int k = 0; k < 8; k++) dx[k] = (dyp[i][k] * wv[k] - bf2f(ov[i][k]) * r * c1) * r;
                vec8_store(d_o + xo + c, dx);
            }
        }
    }

    /* combine: lane groups of a warp (shuffles), then the 8 warps in order 0..7 (shared), one row out */
#pragma unroll
    for (int i = 0; i < NCH; i++)
#pragma unroll
        for (int k = 0; k < 8; k++) dw[i][k] = lane_group_across<L>(dw[i][k]);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int wi = 0; wi < GRMS_THREADS / 32; wi++) {
        if (warp == wi && lane < L) {
#pragma unroll
            for (int i = 0; i < NCH; i++) {
                const int c = (i * L + t) * 8;
                if (c < V)
#pragma unroll
                    for (int k = 0; k < 8; k++) sdw[c + k] = (wi == 0 ? 0.f : sdw[c + k]) + dw[i][k];
            }
        }
        __syncthreads();
    }
    float* prow = part + (size_t)blockIdx.x * V;
    for (int c = threadIdx.x * 4; c < V; c += GRMS_THREADS * 4) store128(prow + c, load128(sdw + c));
}

static inline void grms_check_args(const char* who, int M, int H, int V, int ld1, int ld2) {
    if (M < 0 || H <= 0 || V <= 0 || V % 8 != 0 || V > GRMS_MAX_V || ld1 % 8 != 0 || ld2 % 8 != 0 || ld1 < H * V || ld2 < H * V)
        die("%s: need V %% 8 == 0, V <= %d, ld %% 8 == 0, ld >= H*V (got M=%d H=%d V=%d ld=%d,%d)", who, GRMS_MAX_V, M, H, V, ld1, ld2);
    if ((long)M * H > 0x7fffffffL) die("%s: M*H too large", who);
}

template <int NCH, int L>
static void gated_rmsnorm_forward_launch(bf16* y, float* rstd, const bf16* o, const bf16* gt, int ld_gt, const float* w,
                                         int M, int H, int V, float eps, cudaStream_t s) {
    const int R = M * H, rb = GRMS_THREADS / L;
    gated_rmsnorm_forward_kernel<NCH, L><<<(R + rb - 1) / rb, GRMS_THREADS, 0, s>>>(y, rstd, o, gt, ld_gt, w, R, H, V, eps);
    CUDA_KERNEL_CHECK();
}
template <int NCH, int L>
static void gated_rmsnorm_backward_launch(bf16* d_o, bf16* dgt, int ld_dgt, float* part, const bf16* dy, const bf16* o,
                                          const bf16* gt, int ld_gt, const float* rstd, const float* w, int M, int H,
                                          int V, int P, cudaStream_t s) {
    gated_rmsnorm_backward_kernel<NCH, L><<<P, GRMS_THREADS, (size_t)V * sizeof(float), s>>>(
        d_o, dgt, ld_dgt, part, dy, o, gt, ld_gt, rstd, w, M * H, H, V);
    CUDA_KERNEL_CHECK();
}

/* The (NCH, L) instantiations: V <= 256 => one chunk per lane; larger V => 32 lanes, 2..4 chunks */
#define GRMS_DISPATCH(CALL)                                                   \
    do {                                                                      \
        const int L_ = grms_lanes(V), n_ = (V + L_ * 8 - 1) / (L_ * 8);      \
        if (n_ == 1 && L_ == 4) CALL(1, 4);                                   \
        else if (n_ == 1 && L_ == 8) CALL(1, 8);                              \
        else if (n_ == 1 && L_ == 16) CALL(1, 16);                            \
        else if (n_ == 1 && L_ == 32) CALL(1, 32);                            \
        else if (n_ == 2) CALL(2, 32);                                        \
        else if (n_ == 3) CALL(3, 32);                                        \
        else if (n_ == 4) CALL(4, 32);                                        \
        else die("gated_rmsnorm: no kernel for V=%d", V);                     \
    } while (0)

/* y[M,H*V] bf16 = rmsnorm over each V-row of o[M,H*V] bf16, times w[V] fp32, times silu(gt);
 * gt [M, >= H*V] bf16 with row stride ld_gt; rstd[M*H] fp32 (may be NULL). */
static inline void gated_rmsnorm_forward(bf16* y, float* rstd, const bf16* o, const bf16* gt, int ld_gt, const float* w,
                                         int M, int H, int V, float eps, cudaStream_t s) {
    grms_check_args("gated_rmsnorm_forward", M, H, V, ld_gt, ld_gt);
    if (!is_aligned16(y) || !is_aligned16(o) || !is_aligned16(gt) || !is_aligned16(w))
        die("gated_rmsnorm_forward: pointers must be 16-byte aligned");
    if (M == 0) return;
#define GRMS_FWD(N, L) gated_rmsnorm_forward_launch<N, L>(y, rstd, o, gt, ld_gt, w, M, H, V, eps, s)
    GRMS_DISPATCH(GRMS_FWD);
#undef GRMS_FWD
}

/* As gated_rmsnorm_backward with an explicit number P of partial rows (dev harness timing). */
static inline void gated_rmsnorm_backward_parts(bf16* d_o, bf16* dgt, int ld_dgt, float* dw, const bf16* dy, const bf16* o,
                                                const bf16* gt, int ld_gt, const float* rstd, const float* w, int M,
                                                int H, int V, float* scratch, int P, cudaStream_t s) {
    grms_check_args("gated_rmsnorm_backward", M, H, V, ld_gt, ld_dgt);
    if (!is_aligned16(d_o) || !is_aligned16(dgt) || !is_aligned16(dy) || !is_aligned16(o) || !is_aligned16(gt) ||
        !is_aligned16(w) || !is_aligned16(scratch))
        die("gated_rmsnorm_backward: pointers must be 16-byte aligned");
    if (M == 0) return;
#define GRMS_BWD(N, L) gated_rmsnorm_backward_launch<N, L>(d_o, dgt, ld_dgt, scratch, dy, o, gt, ld_gt, rstd, w, M, H, V, P, s)
    GRMS_DISPATCH(GRMS_BWD);
#undef GRMS_BWD
    partials_colsum_add(dw, scratch, P, V, s);
}

/* d_o[M,H*V] bf16 and dgt (row stride ld_dgt) bf16 written; dw[V] fp32 += (over all tokens and heads,
 * deterministic). dy[M,H*V]; o, gt, rstd, w as in the forward; scratch: gated_rmsnorm_scratch_floats. */
static inline void gated_rmsnorm_backward(bf16* d_o, bf16* dgt, int ld_dgt, float* dw, const bf16* dy, const bf16* o,
                                          const bf16* gt, int ld_gt, const float* rstd, const float* w, int M, int H,
                                          int V, float* scratch, cudaStream_t s) {
    gated_rmsnorm_backward_parts(d_o, dgt, ld_dgt, dw, dy, o, gt, ld_gt, rstd, w, M, H, V, scratch,
                                 grms_bwd_parts(M, H, V), s);
}

#endif /* COMMON_GATED_RMSNORM_CUH */
