/*
 * gated_rmsnorm.cuh — the GLA output norm (gla.md 1.4, backward 2.7 step 8): for every (token m, head h)
 * row of V values x = o[m, h*V : h*V+V],
 *     y = x * rstd * w * silu(gt),   rstd = 1/sqrt(mean(x^2) + eps),   w[V] shared by all heads,
 * and its backward (d_o, dgt written; dw += deterministic via per-block partials, see rmsnorm.cuh).
 *
 * Memory-bound. A row is handled by L lanes (L = 4..32, the smallest power of two with L*8 >= V, 32 for
 * V > 256), each lane owning NCH 8-column chunks (1 for V <= 256) held in registers; 16-byte accesses.
 * One chunk per lane beat two (dev/gated_rmsnorm.cu v2) on H200: 74 vs 122 registers in the backward,
 * so 3 blocks per SM instead of 2, and more warps in flight matter more than more bytes per warp.
 * gt (and dgt) are column slices of a wider fused projection buffer, hence the row strides ld_gt/ld_dgt.
 * Requirements (checked): V % 8 == 0, V <= 1024, ld_gt % 8 == 0, ld_dgt % 8 == 0, 16-byte aligned pointers.
 */
#ifndef COMMON_GATED_RMSNORM_CUH
#define COMMON_GATED_RMSNORM_CUH

#include "rmsnorm.cuh" /* vec8_*, lane_group_*, partials_colsum_add, is_aligned16, full_wave_blocks */
#include "bf16.cuh"     /* sigmoid_ftz */
#include "launch.cuh"

#define GRMS_THREADS 256
#define GRMS_MAX_V 1024

/* lanes per row */
static inline int grms_lanes(int V) {
    int L = 4;
    while (L < 32 && L * 8 < V) L *= 2;
    return L;
}

/* y[R,V] (R = M*H rows), rstd[R]; o[R,V]; gt row m at m*ld_gt, head h at +h*V */
template <int NCH, int L>
__global__ void __launch_bounds__(GRMS_THREADS)
gated_rmsnorm_forward_kernel(bf16* __restrict__ y, float* __restrict__ rstd, const bf16* __restrict__ o,
                             const bf16* __restrict__ gt, int ld_gt, const float* __restrict__ w, int R, int H, int V,
                             float eps) {
    pdl_wait_prior();
    const int t = threadIdx.x % L;
    const int row = blockIdx.x * (GRMS_THREADS / L) + threadIdx.x / L;
    const bool live = row < R;  /* no early return before the shuffles */
    const int rr = live ? row : 0, m = rr / H, h = rr % H;
    const size_t xo = (size_t)rr * V, go = (size_t)m * ld_gt + (size_t)h * V;
    float x[NCH][8];
    x128 gv[NCH];  /* loaded with o, before the reduction: one memory round trip per row, not two */
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < NCH; i++) {
        const int c = (i * L + t) * 8;
        if (live && c < V) {
            vec8_load_cs(x[i], o + xo + c);
            gv[i] = load128cs(gt + go + c);
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
#pragma unroll
            for (int k = 0; k < 8; k++) g[k] = bf2f(gv[i][k]);
            vec8_load(wv, w + c);
#pragma unroll
            for (int k = 0; k < 8; k++) out[k] = x[i][k] * r * wv[k] * g[k] * sigmoid_ftz(g[k]);
            vec8_store(y + xo + c, out);
        }
    }
}

/* d_o[R,V], dgt (row stride ld_dgt) written; part[blockIdx.x, V] = this block's sum of dy*gt*sig(gt)*xhat.
 * y (if not NULL) = the forward's output, rebuilt bit for bit (same fp32 operations in the same order, the
 * stored rstd): the weight gradient of the output projection reads it, and this replaces a forward rerun.
 * Rows dealt round-robin to the block's 256/L row groups; smem: V floats. */
template <int NCH, int L>
__global__ void __launch_bounds__(GRMS_THREADS)
gated_rmsnorm_backward_kernel(bf16* __restrict__ d_o, bf16* __restrict__ dgt, int ld_dgt, float* __restrict__ part,
                              bf16* __restrict__ y, const bf16* __restrict__ dy, const bf16* __restrict__ o,
                              const bf16* __restrict__ gt, int ld_gt, const float* __restrict__ rstd,
                              const float* __restrict__ w, int R, int H, int V) {
    pdl_wait_prior();
    extern __shared__ float4 sdw4[];  /* float4: 16-byte aligned for the final store128 copy */
    float* sdw = (float*)sdw4;
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
                float wv[8], dg[8], yv[8];
                vec8_load(wv, w + c);
#pragma unroll
                for (int k = 0; k < 8; k++) {
                    const float g = bf2f(gv[i][k]), s = sigmoid_ftz(g), d = bf2f(dyv[i][k]);
                    const float xhat = bf2f(ov[i][k]) * r;
                    dg[k] = d * xhat * wv[k] * (s + g * s * (1.f - s));
                    dyp[i][k] = d * g * s;
                    dw[i][k] += dyp[i][k] * xhat;
                    c1 += xhat * dyp[i][k] * wv[k];
                    yv[k] = bf2f(ov[i][k]) * r * wv[k] * g * s;   /* the forward's expression, term by term */
                }
                vec8_store(dgt + dgo + c, dg);
                if (y) vec8_store(y + xo + c, yv);
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

/* Non-zero, with the reason in why, when no kernel here takes M tokens of H heads of width V (the
 * trainers ask before the GPU is touched). Rows (M*H) are ints with room for a grid-stride step. */
static inline int gated_rmsnorm_shape_error(long long M, int H, int V, char* why, size_t cap) {
    if (H <= 0 || V <= 0 || V % 8 != 0 || V > GRMS_MAX_V) {
        snprintf(why, cap, "the gated norm needs a head value width that is a multiple of 8 and at most %d, not %d", GRMS_MAX_V, V);
        return 1;
    }
    if (M < 0 || M * H > 0x7fffffffLL - (1LL << 24)) {
        snprintf(why, cap, "the gated norm's rows, %lld tokens x %d heads, are more than 2^31 - 2^24", M, H);
        return 1;
    }
    return 0;
}
static inline void grms_check_args(const char* who, int M, int H, int V, int ld1, int ld2) {
    char why[192];
    if (gated_rmsnorm_shape_error(M, H, V, why, sizeof why)) die("%s: %s", who, why);
    if (ld1 % 8 != 0 || ld2 % 8 != 0 || ld1 < H * V || ld2 < H * V)
        die("%s: need ld %% 8 == 0 and ld >= H*V (got H=%d V=%d ld=%d,%d)", who, H, V, ld1, ld2);
}

/* The (NCH, L) instantiations: L lanes per row, NCH chunks of 8 per lane */
#define GRMS_DISPATCH(KERNEL, V)                                              \
    do {                                                                      \
        const int L_ = grms_lanes(V), n_ = (V + L_ * 8 - 1) / (L_ * 8);      \
        if (n_ == 1 && L_ == 4) return KERNEL<1, 4>;                          \
        if (n_ == 1 && L_ == 8) return KERNEL<1, 8>;                          \
        if (n_ == 1 && L_ == 16) return KERNEL<1, 16>;                        \
        if (n_ == 1 && L_ == 32) return KERNEL<1, 32>;                        \
        if (n_ == 2 && L_ == 32) return KERNEL<2, 32>;                        \
        if (n_ == 3 && L_ == 32) return KERNEL<3, 32>;                        \
        if (n_ == 4 && L_ == 32) return KERNEL<4, 32>;                        \
        die("gated_rmsnorm: no kernel for V=%d", V);                          \
        return NULL;                                                          \
    } while (0)

typedef void (*grms_forward_kernel_t)(bf16*, float*, const bf16*, const bf16*, int, const float*, int, int, int, float);
typedef void (*grms_backward_kernel_t)(bf16*, bf16*, int, float*, bf16*, const bf16*, const bf16*, const bf16*, int,
                                       const float*, const float*, int, int, int);
static inline grms_forward_kernel_t grms_forward_kernel_for(int V) { GRMS_DISPATCH(gated_rmsnorm_forward_kernel, V); }
static inline grms_backward_kernel_t grms_backward_kernel_for(int V) { GRMS_DISPATCH(gated_rmsnorm_backward_kernel, V); }
#undef GRMS_DISPATCH

/* blocks of the backward = rows of partial dw: one full wave (see full_wave_blocks), fewer if M*H is small */
static inline int grms_bwd_parts(int M, int H, int V) {
    const long rows = (long)M * H, rows_per_block = GRMS_THREADS / grms_lanes(V);
    const long need = (rows + rows_per_block - 1) / rows_per_block;
    const int wave = full_wave_blocks((const void*)grms_backward_kernel_for(V), GRMS_THREADS, (size_t)V * sizeof(float));
    return need < wave ? (need > 0 ? (int)need : 1) : wave;
}
/* floats of scratch that gated_rmsnorm_backward needs (needs the CUDA device selected) */
static inline size_t gated_rmsnorm_scratch_floats(int M, int H, int V) {
    grms_check_args("gated_rmsnorm_scratch_floats", M, H, V, H * V, H * V);
    return (size_t)grms_bwd_parts(M, H, V) * (size_t)V;
}

/* y[M,H*V] bf16 = rmsnorm over each V-row of o[M,H*V] bf16, times w[V] fp32, times silu(gt);
 * gt [M, >= H*V] bf16 with row stride ld_gt; rstd[M*H] fp32 (may be NULL). */
static inline void gated_rmsnorm_forward(bf16* y, float* rstd, const bf16* o, const bf16* gt, int ld_gt, const float* w,
                                         int M, int H, int V, float eps, cudaStream_t s) {
    grms_check_args("gated_rmsnorm_forward", M, H, V, ld_gt, ld_gt);
    if (!is_aligned16(y) || !is_aligned16(o) || !is_aligned16(gt) || !is_aligned16(w))
        die("gated_rmsnorm_forward: pointers must be 16-byte aligned");
    if (M == 0) return;
    const int R = M * H, rb = GRMS_THREADS / grms_lanes(V);
    launch_kernel(grms_forward_kernel_for(V), (R + rb - 1) / rb, GRMS_THREADS, 0, s, y, rstd, o, gt, ld_gt, w, R, H, V,
                  eps);
}

/* The whole backward with an explicit number P of partial rows (scratch >= P*V floats; dev timing); y may be
 * NULL (see gated_rmsnorm_backward_rebuild). */
static inline void gated_rmsnorm_backward_parts(bf16* d_o, bf16* dgt, int ld_dgt, float* dw, bf16* y, const bf16* dy,
                                                const bf16* o, const bf16* gt, int ld_gt, const float* rstd, const float* w,
                                                int M, int H, int V, float* scratch, int P, cudaStream_t s) {
    grms_check_args("gated_rmsnorm_backward", M, H, V, ld_gt, ld_dgt);
    if (!is_aligned16(d_o) || !is_aligned16(dgt) || !is_aligned16(y) || !is_aligned16(dy) || !is_aligned16(o) ||
        !is_aligned16(gt) || !is_aligned16(w) || !is_aligned16(scratch))
        die("gated_rmsnorm_backward: pointers must be 16-byte aligned");
    if (M == 0) return;
    launch_kernel(grms_backward_kernel_for(V), P, GRMS_THREADS, (size_t)V * sizeof(float), s, d_o, dgt, ld_dgt, scratch,
                  y, dy, o, gt, ld_gt, rstd, w, M * H, H, V);
    partials_colsum_add(dw, scratch, P, V, s);
}

/* d_o[M,H*V] bf16 and dgt (row stride ld_dgt) bf16 written; dw[V] fp32 += (over all tokens and heads,
 * deterministic). dy[M,H*V]; o, gt, rstd, w as in the forward; scratch: gated_rmsnorm_scratch_floats. */
static inline void gated_rmsnorm_backward(bf16* d_o, bf16* dgt, int ld_dgt, float* dw, const bf16* dy, const bf16* o,
                                          const bf16* gt, int ld_gt, const float* rstd, const float* w, int M, int H,
                                          int V, float* scratch, cudaStream_t s) {
    gated_rmsnorm_backward_parts(d_o, dgt, ld_dgt, dw, NULL, dy, o, gt, ld_gt, rstd, w, M, H, V, scratch,
                                 grms_bwd_parts(M, H, V), s);
}
/* As gated_rmsnorm_backward, also rebuilding the forward's output y[M,H*V] bf16 bit for bit, for the weight
 * gradient of the product that read it (one pass instead of a forward rerun before the backward). */
static inline void gated_rmsnorm_backward_rebuild(bf16* d_o, bf16* dgt, int ld_dgt, float* dw, bf16* y, const bf16* dy,
                                                  const bf16* o, const bf16* gt, int ld_gt, const float* rstd,
                                                  const float* w, int M, int H, int V, float* scratch, cudaStream_t s) {
    gated_rmsnorm_backward_parts(d_o, dgt, ld_dgt, dw, y, dy, o, gt, ld_gt, rstd, w, M, H, V, scratch,
                                 grms_bwd_parts(M, H, V), s);
}

#endif /* COMMON_GATED_RMSNORM_CUH */
