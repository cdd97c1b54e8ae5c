/*
 * dev/conv1d.cu — harness for the depthwise causal conv1d + bias + SiLU (common/conv1d.cuh), forward and backward.
 *   v1: one thread per (b, channel) walking t with scalar loads; dw/db summed by the same thread into per-b
 *       partials (teaching version: uncoalesced 2-byte loads, B*Di threads only).
 *   v2: production (common/conv1d.cuh): a block's input tile (64 channels x 256 tokens and halos) by cp.async into
 *       shared memory, then 32 tokens x 2 channels per thread out of it; block partials.
 *   v3: cuDNN's grouped convolution + our bias/SiLU kernels (common/cudnn_ops.cuh); only in USE_CUDNN builds,
 *       which the Makefile makes whenever it finds cuDNN. Its timing adds the cuDNN calls alone.
 *   v4-v7: the register-streaming kernels (below; the production until session 15 was v7, v4 the one before):
 *       32 tokens x 4 or 8 channels per thread, streamed through registers one or two tokens ahead.
 *       --check also asks each of them for v2's bits (u, dx, dw, db).
 * ./dev/conv1d [version] [--check] [-B 16 -T 2048 -D 2048 -W 4]   (D = d_inner)
 * Build: nvcc -O3 -std=c++17 -lineinfo -gencode arch=compute_90,code=sm_90 -Icommon -Itest -Idev dev/conv1d.cu -o dev/conv1d
 */
#include "harness.h"
#include "../common/conv1d.cuh"
#include "ref_mamba_op.h"
#ifdef USE_CUDNN
#include "../common/cudnn_ops.cuh"
#endif

#define V_CUDNN 3
#define CONV_NVER 7   // v4-v7: the register-streaming kernels of this file

// ---------------- v1: one thread per (b, d) ----------------
__global__ void conv_v1_fwd_kernel(bf16* u, const bf16* x, int ld_x, const float* w, const float* b, int B, int T,
                                   int Di, int W) {
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= B * Di) return;
    const int bi = idx / Di, d = idx % Di;
    for (int t = 0; t < T; t++) {
        float s = b[d];
        for (int k = 0; k < W; k++) {
            const int tt = t - (W - 1) + k;
            if (tt >= 0) s += w[d * W + k] * bf2f(x[((size_t)bi * T + tt) * ld_x + d]);
        }
        u[((size_t)bi * T + t) * Di + d] = f2bf(s * sigmoid_ftz(s));
    }
}
// part [B][Di][W+1] per-b sums (reduced by conv1d_reduce_kernel over rows = B)
__global__ void conv_v1_bwd_kernel(bf16* dx, int ld_dx, float* part, const bf16* du, const bf16* x, int ld_x,
                                   const float* w, const float* b, int B, int T, int Di, int W) {
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= B * Di) return;
    const int bi = idx / Di, d = idx % Di;
    float acc[5] = {0, 0, 0, 0, 0};
    float dq[4] = {0, 0, 0, 0};   // dxc at t+1 .. t+W-1 (dq[k-1] = dxc(t+k))
    for (int t = T - 1; t >= 0; t--) {
        float s = b[d];
        for (int k = 0; k < W; k++) {
            const int tt = t - (W - 1) + k;
            if (tt >= 0) s += w[d * W + k] * bf2f(x[((size_t)bi * T + tt) * ld_x + d]);
        }
        const float sg = sigmoid_ftz(s);
        const float dv = bf2f(du[((size_t)bi * T + t) * Di + d]) * sg * (1.0f + s * (1.0f - sg));
        for (int k = 0; k < W; k++) {
            const int tt = t - (W - 1) + k;
            if (tt >= 0) acc[k] += dv * bf2f(x[((size_t)bi * T + tt) * ld_x + d]);
        }
        acc[W] += dv;
        // dx(t) = sum_k w[k] dxc(t + W-1-k)
        float o = w[d * W + W - 1] * dv;
        for (int k = 0; k < W - 1; k++) o += w[d * W + k] * dq[W - 2 - k];
        dx[((size_t)bi * T + t) * ld_dx + d] = f2bf(o);
        for (int k = W - 2; k > 0; k--) dq[k] = dq[k - 1];
        dq[0] = dv;
    }
    for (int k = 0; k <= W; k++) part[((size_t)bi * Di + d) * (W + 1) + k] = acc[k];
}

// ---------------- v4-v7: the register-streaming kernels (common/conv1d.cuh's production until session 15) ----------------
// Each thread owns CPT channels (one 8- or 16-byte load per token) of a run of CONV_TR tokens and streams it through
// registers, one or two tokens' loads ahead; the same partition into runs, arithmetic and partials as the tiled
// production, so the same bits. Forward: v4 8 channels, none ahead, v5 8 channels, one ahead, v6 4 channels, one
// ahead, v7 4 channels, two ahead. Backward: v4 8 channels, no prefetch, v5 4 channels, no prefetch, v6 8 channels +
// next-token prefetch, v7 4 channels + prefetch.
#define CONV_DX 16   // channel groups per block (x)

// CPT bf16 channels of one token as one load (16 or 8 bytes), kept raw (Bf16Raw, bf16.cuh) until used
template <int CPT>
__device__ __forceinline__ typename Bf16Raw<CPT>::T conv_ldv(const bf16* p) {
    return *reinterpret_cast<const typename Bf16Raw<CPT>::T*>(p);
}
template <int CPT>
__device__ __forceinline__ typename Bf16Raw<CPT>::T conv_ldv_cs(const bf16* p) {   // read-once data: evict first
    return __ldcs(reinterpret_cast<const typename Bf16Raw<CPT>::T*>(p));
}

// xw[k] = x of token ts-(W-1)+k for k < W-1 (0 before the sequence), from xb (token 0, row stride ld); CS: streaming loads
template <int W, int CPT, bool CS>
__device__ __forceinline__ void conv_ld_halo(float (&xw)[W][CPT], const bf16* xb, int ts, int ld) {
    typedef typename Bf16Raw<CPT>::T V;
    const V zero = {};
#pragma unroll
    for (int k = 0; k < W - 1; k++) {
        const int t = ts - (W - 1) + k;
        const bf16* p = xb + (size_t)t * ld;
        V v = t >= 0 ? (CS ? conv_ldv_cs<CPT>(p) : conv_ldv<CPT>(p)) : zero;
#pragma unroll
        for (int c = 0; c < CPT; c++) xw[k][c] = bf16_raw_el<CPT>(v, c);
    }
}

// Forward, CPT channels per thread (one 16- or 8-byte load per token); the loads of the next PFD tokens are in
// flight while a token is computed (PFD 0: none). x is read
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
    conv_ld_halo<W, CPT, true>(xw, xb, ts, ld_x);
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
            oe[c] = conv_fwd_token<W, CPT>(xw, wr, br, c);
        }
        *reinterpret_cast<V*>(up) = bf16_raw_pack<CPT>(oe);
    }
}

// Backward, CPT channels per thread (4 in v7: 96 registers against 168 at 8, so 5 blocks per SM instead of 3), PF: the next token's x and du are loaded before the current token is computed, so the loads of one token
// overlap the arithmetic of the one before (v6, v7).
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
        conv_ld_halo<W, CPT, false>(xw, xb, ts, ld_x);
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
                conv_bwd_token<W, CPT>(xw, dq, acc, wr, br, c, bf16_raw_el<CPT>(g, c), in, t < te);
            }
            const int tp = t - (W - 1);   // dx(tp) = sum_k w[k] dxc(tp + W-1-k) = sum_k w[k] dq[W-1-k]
            if (tp >= ts) {
                float oe[CPT];
#pragma unroll
                for (int c = 0; c < CPT; c++) oe[c] = conv_dx_token<W, CPT>(dq, wr, c);
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

// the variants' choices, v4..v7
typedef struct { int cpt, fwd_ahead, bwd_cpt, bwd_pf; } ConvStream;
static const ConvStream conv_stream[4] = {{8, 0, 8, 0}, {8, 1, 4, 0}, {4, 1, 8, 1}, {4, 2, 4, 1}};

static void conv_stream_forward(const ConvStream* k, bf16* u, const bf16* x, int ld_x, const float* w, const float* b,
                                int B, int T, int Di, int W) {
    dim3 block(CONV_DX, CONV_TY), grid((Di + CONV_DX * k->cpt - 1) / (CONV_DX * k->cpt), conv_rows_per_batch(T), B);
#define CONV_FWD(W_, C_, P_) conv1d_silu_fwd_kernel<W_, C_, P_><<<grid, block>>>(u, x, ld_x, w, b, T, Di)
#define CONV_FWD_W(C_, P_) do { if (W == 4) CONV_FWD(4, C_, P_); else if (W == 3) CONV_FWD(3, C_, P_); else CONV_FWD(2, C_, P_); } while (0)
    if (k->cpt == 8 && k->fwd_ahead == 0) CONV_FWD_W(8, 0);
    else if (k->cpt == 8) CONV_FWD_W(8, 1);
    else if (k->fwd_ahead == 1) CONV_FWD_W(4, 1);
    else CONV_FWD_W(4, 2);
#undef CONV_FWD_W
#undef CONV_FWD
    CUDA_KERNEL_CHECK();
}
static void conv_stream_backward(const ConvStream* k, bf16* dx, int ld_dx, float* dw, float* db, const bf16* du,
                                 const bf16* x, int ld_x, const float* w, const float* b, int B, int T, int Di, int W,
                                 float* scratch) {
    const int cpt = k->bwd_cpt;
    dim3 block(CONV_DX, CONV_TY), grid((Di + CONV_DX * cpt - 1) / (CONV_DX * cpt), conv_rows_per_batch(T), B);
#define CONV_BWD(W_, C_, P_) conv1d_silu_bwd_kernel<W_, C_, P_><<<grid, block>>>(dx, ld_dx, scratch, du, x, ld_x, w, b, T, Di)
#define CONV_BWD_W(C_, P_) do { if (W == 4) CONV_BWD(4, C_, P_); else if (W == 3) CONV_BWD(3, C_, P_); else CONV_BWD(2, C_, P_); } while (0)
    if (cpt == 8 && !k->bwd_pf) CONV_BWD_W(8, false);
    else if (cpt == 8) CONV_BWD_W(8, true);
    else if (!k->bwd_pf) CONV_BWD_W(4, false);
    else CONV_BWD_W(4, true);
#undef CONV_BWD_W
#undef CONV_BWD
    CUDA_KERNEL_CHECK();
    conv1d_reduce(dw, db, scratch, B, T, Di, W, 0);
}

typedef struct {
    int version, B, T, Di, W, ld_x, ld_dx;
    bf16 *u, *x, *du, *dx;
    float *w, *b, *dw, *db, *scratch;
    void* dnn;   // CudnnConv1d* of v3 (USE_CUDNN builds), NULL otherwise
} ConvCtx;

// v3 needs a cuDNN plan for the shape: 0 when cuDNN accepted no config (its refusals are printed)
static int attach_cudnn(ConvCtx* c) {
#ifdef USE_CUDNN
    CudnnConv1d* p = (CudnnConv1d*)malloc_check(sizeof *p);
    if (!cudnn_conv1d_plan(p, c->B, c->T, c->Di, c->W, c->ld_x, c->ld_dx)) {
        free(p);
        return 0;
    }
    c->dnn = p;
    return 1;
#else
    (void)c;
    return 0;
#endif
}
static void detach_cudnn(ConvCtx* c) {
#ifdef USE_CUDNN
    if (c->dnn) cudnn_conv1d_destroy((CudnnConv1d*)c->dnn);
#endif
    free(c->dnn);
    c->dnn = NULL;
}
// dw, db tolerance: cuDNN hands back the pre-activation and dw in its tensor type, so bf16 configs round them
// to bf16 (2^-9) where ours keeps fp32 registers
static double grad_tolerance(const ConvCtx* c) {
#ifdef USE_CUDNN
    if (c->dnn && ((const CudnnConv1d*)c->dnn)->dt == CUDNN_DATA_BFLOAT16) return 5e-3;
#endif
    (void)c;
    return 1e-4;
}
#ifdef USE_CUDNN
static void describe_cudnn(const ConvCtx* c) {
    const CudnnConv1d* p = (const CudnnConv1d*)c->dnn;
    printf("conv1d v3 = cuDNN %zu (headers %d) B=%d T=%d Di=%d W=%d: %s; algorithms fwd %d, bwd data %d, bwd filter %d; "
           "workspace %zu bytes\n", cudnnGetVersion(), CUDNN_VERSION, c->B, c->T, c->Di, c->W, cudnn_conv_config_names[p->cfg],
           (int)p->algo_fwd, (int)p->algo_data, (int)p->algo_filter, p->ws_bytes);
}
#endif

static void run_fwd(ConvCtx* c) {
    if (c->version == 1) {
        conv_v1_fwd_kernel<<<(c->B * c->Di + 127) / 128, 128>>>(c->u, c->x, c->ld_x, c->w, c->b, c->B, c->T, c->Di, c->W);
        CUDA_KERNEL_CHECK();
#ifdef USE_CUDNN
    } else if (c->version == V_CUDNN) {
        cudnn_conv1d_forward((CudnnConv1d*)c->dnn, c->u, c->x, c->w, c->b, 0);
#endif
    } else {
        if (c->version > V_CUDNN)
            conv_stream_forward(&conv_stream[c->version - V_CUDNN - 1], c->u, c->x, c->ld_x, c->w, c->b, c->B, c->T,
                                c->Di, c->W);
        else
            conv1d_silu_forward(c->u, c->x, c->ld_x, c->w, c->b, c->B, c->T, c->Di, c->W, 0);
    }
}
static void run_bwd(ConvCtx* c) {
    if (c->version == 1) {
        conv_v1_bwd_kernel<<<(c->B * c->Di + 127) / 128, 128>>>(c->dx, c->ld_dx, c->scratch, c->du, c->x, c->ld_x, c->w,
                                                                c->b, c->B, c->T, c->Di, c->W);
        CUDA_KERNEL_CHECK();
        const int n = c->Di * (c->W + 1);
        conv1d_reduce_kernel<<<(n + 255) / 256, 256>>>(c->dw, c->db, c->scratch, c->B, c->Di, c->W);
        CUDA_KERNEL_CHECK();
#ifdef USE_CUDNN
    } else if (c->version == V_CUDNN) {
        cudnn_conv1d_backward((CudnnConv1d*)c->dnn, c->dx, c->dw, c->db, c->du, c->x, c->w, c->b, 0);
#endif
    } else {
        if (c->version > V_CUDNN)
            conv_stream_backward(&conv_stream[c->version - V_CUDNN - 1], c->dx, c->ld_dx, c->dw, c->db, c->du, c->x,
                                 c->ld_x, c->w, c->b, c->B, c->T, c->Di, c->W, c->scratch);
        else
            conv1d_silu_backward(c->dx, c->ld_dx, c->dw, c->db, c->du, c->x, c->ld_x, c->w, c->b, c->B, c->T, c->Di,
                                 c->W, c->scratch, 0);
    }
}
static void fwd_fn(void* p) { run_fwd((ConvCtx*)p); }
static void bwd_fn(void* p) { run_bwd((ConvCtx*)p); }

static size_t scratch_floats(int B, int T, int Di, int W) {
    size_t a = conv1d_scratch_floats(B, T, Di, W), v1 = (size_t)B * Di * (W + 1);
    return a > v1 ? a : v1;
}

// x is the first half of an xz-like buffer (ld_x = 2 Di), dx likewise
static ConvCtx make_ctx(int version, int B, int T, int Di, int W, float** hx, float** hw, float** hb, float** hdu,
                        float** hdw0, float** hdb0, uint64_t seed) {
    ConvCtx c;
    c.version = version; c.B = B; c.T = T; c.Di = Di; c.W = W; c.ld_x = 2 * Di; c.ld_dx = 2 * Di;
    size_t M = (size_t)B * T;
    *hx = (float*)malloc_check(M * c.ld_x * sizeof(float));
    *hdu = (float*)malloc_check(M * Di * sizeof(float));
    *hw = (float*)malloc_check((size_t)Di * W * sizeof(float));
    *hb = (float*)malloc_check((size_t)Di * sizeof(float));
    *hdw0 = (float*)malloc_check((size_t)Di * W * sizeof(float));
    *hdb0 = (float*)malloc_check((size_t)Di * sizeof(float));
    fill_normal(*hx, M * c.ld_x, 1.0f, seed);
    round_to_bf16(*hx, M * c.ld_x);
    fill_normal(*hdu, M * Di, 1.0f, seed + 1);
    round_to_bf16(*hdu, M * Di);
    fill_uniform(*hw, (size_t)Di * W, -0.5f, 0.5f, seed + 2);
    fill_uniform(*hb, Di, -0.5f, 0.5f, seed + 3);
    fill_uniform(*hdw0, (size_t)Di * W, -1.0f, 1.0f, seed + 4);
    fill_uniform(*hdb0, Di, -1.0f, 1.0f, seed + 5);
    c.x = upload_bf16(*hx, M * c.ld_x);
    c.du = upload_bf16(*hdu, M * Di);
    c.w = upload_f32(*hw, (size_t)Di * W);
    c.b = upload_f32(*hb, Di);
    c.dw = upload_f32(*hdw0, (size_t)Di * W);
    c.db = upload_f32(*hdb0, Di);
    c.u = (bf16*)dmalloc(M * Di * sizeof(bf16));
    c.dx = (bf16*)dmalloc(M * c.ld_dx * sizeof(bf16));
    c.scratch = (float*)dmalloc(scratch_floats(B, T, Di, W) * sizeof(float));
    c.dnn = NULL;
    return c;
}
static void free_ctx(ConvCtx* c) {
    cudaFree(c->x); cudaFree(c->du); cudaFree(c->w); cudaFree(c->b); cudaFree(c->dw); cudaFree(c->db);
    cudaFree(c->u); cudaFree(c->dx); cudaFree(c->scratch);
    detach_cudnn(c);
}

// the variants do the production's arithmetic in its order: u, dx, dw and db must be v2's bit for bit
static int same_bits_as_production(ConvCtx* c, const float* hdw0, const float* hdb0) {
    const size_t M = (size_t)c->B * c->T, nu = M * c->Di, ndx = M * c->ld_dx, nw = (size_t)c->Di * c->W;
    const size_t bytes = (nu + ndx) * sizeof(bf16) + (nw + c->Di) * sizeof(float);
    char* run[2];
    for (int r = 0; r < 2; r++) {
        const int v = c->version;
        if (r == 1) c->version = 2;
        CUDA_CHECK(cudaMemcpy(c->dw, hdw0, nw * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(c->db, hdb0, c->Di * sizeof(float), cudaMemcpyHostToDevice));
        poison(c->u, nu * sizeof(bf16));
        poison(c->dx, ndx * sizeof(bf16));
        run_fwd(c);
        run_bwd(c);
        c->version = v;
        CUDA_CHECK(cudaDeviceSynchronize());
        char* h = run[r] = (char*)malloc_check(bytes);
        CUDA_CHECK(cudaMemcpy(h, c->u, nu * sizeof(bf16), cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(h + nu * sizeof(bf16), c->dx, ndx * sizeof(bf16), cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(h + (nu + ndx) * sizeof(bf16), c->dw, nw * sizeof(float), cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(h + (nu + ndx) * sizeof(bf16) + nw * sizeof(float), c->db, c->Di * sizeof(float),
                              cudaMemcpyDeviceToHost));
    }
    // dx's padding columns (ld_dx > Di) are written by neither: compare the rows' first Di only
    int same = memcmp(run[0], run[1], nu * sizeof(bf16)) == 0 &&
               memcmp(run[0] + (nu + ndx) * sizeof(bf16), run[1] + (nu + ndx) * sizeof(bf16),
                      (nw + c->Di) * sizeof(float)) == 0;
    for (size_t m = 0; m < M && same; m++)
        same = memcmp(run[0] + (nu + m * c->ld_dx) * sizeof(bf16), run[1] + (nu + m * c->ld_dx) * sizeof(bf16),
                      c->Di * sizeof(bf16)) == 0;
    printf("%s conv v%d u, dx, dw, db bitwise equal to v2 B=%d T=%d Di=%d W=%d\n", same ? "PASS" : "FAIL", c->version,
           c->B, c->T, c->Di, c->W);
    free(run[0]);
    free(run[1]);
    return !same;
}

static int check_shape(int version, int B, int T, int Di, int W) {
    float *hx, *hw, *hb, *hdu, *hdw0, *hdb0;
    ConvCtx c = make_ctx(version, B, T, Di, W, &hx, &hw, &hb, &hdu, &hdw0, &hdb0, 1000 + T * 7 + Di);
    size_t M = (size_t)B * T, n = M * Di;
    if (version == V_CUDNN && !attach_cudnn(&c)) {
        printf("SKIP conv v3 (cuDNN) B=%d T=%d Di=%d W=%d: no config cuDNN accepts (refusals above)\n", B, T, Di, W);
        free(hx); free(hw); free(hb); free(hdu); free(hdw0); free(hdb0);
        free_ctx(&c);
        return 0;
    }
#ifdef USE_CUDNN
    if (version == V_CUDNN) describe_cudnn(&c);
#endif
    poison(c.u, n * sizeof(bf16));
    poison(c.dx, M * c.ld_dx * sizeof(bf16));
    poison(c.scratch, scratch_floats(B, T, Di, W) * sizeof(float));
    run_fwd(&c);
    run_bwd(&c);
    CUDA_CHECK(cudaDeviceSynchronize());
    // reference on contiguous copies
    double* x = (double*)malloc_check(n * sizeof(double));
    for (size_t m = 0; m < M; m++) for (int d = 0; d < Di; d++) x[m * Di + d] = hx[m * c.ld_x + d];
    double *w = to_double(hw, (size_t)Di * W), *b = to_double(hb, Di), *du = to_double(hdu, n);
    double *dw = to_double(hdw0, (size_t)Di * W), *db = to_double(hdb0, Di);
    double* u = (double*)malloc_check(n * sizeof(double));
    double* dx = (double*)malloc_check(n * sizeof(double));
    ref_conv1d_silu_forward(u, x, w, b, B, T, Di, W);
    ref_conv1d_silu_backward(dx, dw, db, du, x, w, b, B, T, Di, W);
    float* got = (float*)malloc_check(M * c.ld_dx * sizeof(float));
    float* g2 = (float*)malloc_check((n > (size_t)Di * W ? n : (size_t)Di * W) * sizeof(float));
    char what[128];
    int fails = 0;
    download_bf16(got, c.u, n);
    snprintf(what, sizeof what, "conv v%d fwd u    B=%d T=%d Di=%d W=%d", version, B, T, Di, W);
    fails += check_report(what, u, got, n, 1e-2);
    download_bf16(got, c.dx, M * c.ld_dx);
    for (size_t m = 0; m < M; m++) for (int d = 0; d < Di; d++) g2[m * Di + d] = got[m * c.ld_dx + d];
    snprintf(what, sizeof what, "conv v%d bwd dx   B=%d T=%d Di=%d W=%d", version, B, T, Di, W);
    fails += check_report(what, dx, g2, n, 1e-2);
    download_f32(g2, c.dw, (size_t)Di * W);
    snprintf(what, sizeof what, "conv v%d bwd dw+= B=%d T=%d Di=%d W=%d", version, B, T, Di, W);
    fails += check_report(what, dw, g2, (size_t)Di * W, grad_tolerance(&c));
    download_f32(g2, c.db, Di);
    snprintf(what, sizeof what, "conv v%d bwd db+= B=%d T=%d Di=%d W=%d", version, B, T, Di, W);
    fails += check_report(what, db, g2, Di, grad_tolerance(&c));
    // determinism: the backward again from the same dw/db start gives the same bits
    {
        float* a1 = (float*)malloc_check((size_t)Di * W * sizeof(float));
        float* a2 = (float*)malloc_check((size_t)Di * W * sizeof(float));
        CUDA_CHECK(cudaMemcpy(c.dw, hdw0, (size_t)Di * W * sizeof(float), cudaMemcpyHostToDevice));
        run_bwd(&c);
        CUDA_CHECK(cudaDeviceSynchronize());
        download_f32(a1, c.dw, (size_t)Di * W);
        CUDA_CHECK(cudaMemcpy(c.dw, hdw0, (size_t)Di * W * sizeof(float), cudaMemcpyHostToDevice));
        run_bwd(&c);
        CUDA_CHECK(cudaDeviceSynchronize());
        download_f32(a2, c.dw, (size_t)Di * W);
        int same = memcmp(a1, a2, (size_t)Di * W * sizeof(float)) == 0;
        printf("%s conv v%d bwd determinism (dw bitwise) B=%d T=%d Di=%d\n", same ? "PASS" : "FAIL", version, B, T, Di);
        fails += !same;
        free(a1); free(a2);
    }
    if (version > V_CUDNN) fails += same_bits_as_production(&c, hdw0, hdb0);
    free(x); free(w); free(b); free(du); free(dw); free(db); free(u); free(dx); free(got); free(g2);
    free(hx); free(hw); free(hb); free(hdu); free(hdw0); free(hdb0);
    free_ctx(&c);
    return fails;
}


#ifdef USE_CUDNN
// cuDNN's calls alone (inputs staged by the runs before), to tell its time from that of our kernels around it
static void dnn_stage_fn(void* p) { ConvCtx* c = (ConvCtx*)p; cudnn_conv1d_stage_x((CudnnConv1d*)c->dnn, c->x, 0); }
static void dnn_conv_fn(void* p) { ConvCtx* c = (ConvCtx*)p; cudnn_conv1d_conv_fwd((CudnnConv1d*)c->dnn, c->x, c->w, 0); }
static void dnn_data_fn(void* p) { ConvCtx* c = (ConvCtx*)p; cudnn_conv1d_bwd_data((CudnnConv1d*)c->dnn, c->dx, c->w, 0); }
static void dnn_filter_fn(void* p) { ConvCtx* c = (ConvCtx*)p; cudnn_conv1d_bwd_filter((CudnnConv1d*)c->dnn, c->dw, c->x, 0); }
// bytes: the contract's forward bytes (x in, one [B,T,Di] bf16 tensor out), the same for every part
static void time_cudnn_parts(ConvCtx* c, int reps, double bytes) {
    if (((CudnnConv1d*)c->dnn)->packed) time_report("  of which packing x (layout)", time_kernel(dnn_stage_fn, c, reps), bytes, 0);
    time_report("  cuDNN fwd conv (incl. staging)", time_kernel(dnn_conv_fn, c, reps), bytes, 0);
    time_report("  cuDNN bwd data", time_kernel(dnn_data_fn, c, reps), bytes, 0);
    time_report("  cuDNN bwd filter", time_kernel(dnn_filter_fn, c, reps), bytes, 0);
}
#endif

int main(int argc, char** argv) {
    harness_versions(argc, argv, CONV_NVER);
    HarnessArgs a = harness_args(argc, argv);
    require_gpu_or_skip("conv1d");
    const int nver = CONV_NVER;
    if (a.version > nver) die("version must be 1..%d", nver);
    int v0 = a.version ? a.version : 1, v1 = a.version ? a.version : nver;
    if (a.check) {
        int fails = 0;
        const int shapes[][4] = {{2, 1, 16, 4}, {1, 37, 24, 4}, {2, 300, 16, 4}, {1, 260, 40, 3}, {3, 513, 136, 2},
                                 {2, 1000, 264, 4}};
        for (int v = v0; v <= v1; v++) {
            if (!harness_version_built("conv1d", v, V_CUDNN)) continue;
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                fails += check_shape(v, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3]);
        }
        printf("conv1d --check: %s (%d failures)\n", fails ? "FAIL" : "PASS", fails);
        return fails ? 1 : 0;
    }
    int B = (int)harness_get(&a, 'B', 16), T = (int)harness_get(&a, 'T', 2048), Di = (int)harness_get(&a, 'D', 2048);
    int W = (int)harness_get(&a, 'W', 4);
    float *hx, *hw, *hb, *hdu, *hdw0, *hdb0;
    ConvCtx c = make_ctx(1, B, T, Di, W, &hx, &hw, &hb, &hdu, &hdw0, &hdb0, 7);
    double n = (double)B * T * Di;
    double fwd_bytes = n * 4, bwd_bytes = n * 6;   // fwd: x in, u out; bwd: x, du in, dx out
    printf("conv1d B=%d T=%d Di=%d W=%d  floor: fwd %.4f ms, bwd %.4f ms (bytes / %.0f GB/s)\n", B, T, Di, W,
           floor_ms(fwd_bytes, 0), floor_ms(bwd_bytes, 0), H200_COPY_GBS);
    for (int v = v0; v <= v1; v++) {
        if (!harness_version_built("conv1d", v, V_CUDNN)) continue;
        if (v == V_CUDNN && !attach_cudnn(&c)) {
            printf("conv1d v3 (cuDNN): no config cuDNN accepts at this shape (refusals above)\n");
            continue;
        }
        c.version = v;
        char what[64];
        snprintf(what, sizeof what, "conv1d v%d forward", v);
        time_report(what, time_kernel(fwd_fn, &c, a.reps), fwd_bytes, 0);
        snprintf(what, sizeof what, "conv1d v%d backward", v);
        time_report(what, time_kernel(bwd_fn, &c, a.reps), bwd_bytes, 0);
#ifdef USE_CUDNN
        if (v == V_CUDNN) {
            describe_cudnn(&c);
            time_cudnn_parts(&c, a.reps, fwd_bytes);
        }
#endif
    }
    free_ctx(&c);
    free(hx); free(hw); free(hb); free(hdu); free(hdw0); free(hdb0);
    return 0;
}
