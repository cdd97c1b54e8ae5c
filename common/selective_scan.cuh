/*
 * selective_scan.cuh — the Mamba-1 selective scan (mamba.md 1.2 steps 4-8, backward 2.2 steps 2-6), forward and
 * backward, on token-major activations, plus the single-token recurrent form used for sampling.
 *
 *   delta = softplus(dt_raw + dt_bias) (threshold 20), A = -exp(A_log), per (b, d, n):
 *   h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,  y_t = (C_t . h_t + D u_t) * silu(z_t)   (fp32 state)
 *
 * Parallelisation: one channel (b, d) is split over LC = N/G lanes of a warp, each lane owning G of the N states
 * in registers and walking the whole sequence in time order (the forward) or reverse order (the backward). With
 * B*Di*N/G threads (131k at the mamba-370m shape, G = 4) the card is full without cutting time into independent
 * chunks, so every exp(delta A) is evaluated once in the forward (chunk-parallel schemes need two passes).
 * Per step the lanes of a channel combine their partial C.h (and in the backward their du, ddelta) with xor
 * shuffles. Token-major rows make u, dt, z loads contiguous across d (coalesced across the warp).
 *
 * Saved (forward -> backward): only the state at the end of every SCAN_CHUNK = 128 steps,
 * fp32 [B][nchunks][Di][N] (33.5 MB per layer at B=16, T=2048, Di=2048, N=16). Not saved: y_pre (needed for dz)
 * costs 2 bytes/element to store (134 MB) but is free to recompute, because the backward recomputes h anyway.
 * Backward, per chunk last-to-first: a forward pass from the saved start state writes checkpoints every
 * SCAN_WIN = 16 steps to shared memory; then per window (last first) the 16 states are recomputed into
 * registers and the reverse recurrence runs over them (mamba.md 2.2: exp(delta A) h_{t-1} is formed as
 * h_t - delta B u, never by dividing by exp(delta A)). ~3 exp per (t, d, n) in the backward, 1 in the forward.
 * Deterministic: dB, dC (sums over d) are reduced in-warp by a shuffle reduce-scatter, across warps in shared
 * memory in fixed order, written as per-block partials to the workspace and summed in block order by a second
 * kernel; dA, dD, ddt_bias partials per (b, d) are summed over b in order by the same kernel. No float atomics.
 */
#ifndef COMMON_SELECTIVE_SCAN_CUH
#define COMMON_SELECTIVE_SCAN_CUH

#include <stddef.h>
#include <stdint.h>
#include "errors.h"
#include "bf16.cuh"

#define SCAN_CHUNK 128   // steps between saved states (forward -> backward)
#define SCAN_WIN 16      // backward recompute window: states of SCAN_WIN steps live in registers
#define SCAN_THREADS 256 // threads per block, both directions
#define SCAN_G 4         // production: states per lane (N/SCAN_G lanes per channel)

// every pointer and stride a scan kernel needs (passed by value)
struct ScanArgs {
    const bf16* u; int ld_u;       // [B,T,Di]
    const bf16* dt_raw;            // [B,T,Di] contiguous
    const bf16* z; int ld_z;       // [B,T,Di]
    const bf16* Bm; const bf16* Cm; int ld_bc;   // [B,T,N]
    const float* A_log;            // [Di,N]
    const float* Dskip;            // [Di]
    const float* dt_bias;          // [Di]
    int B, T, Di, N, nch;
};

// ---------------------------------------------------------------------------------------------------------------
// small device helpers

__device__ __forceinline__ float scan_ex2(float x) {   // 2^x, MUFU.EX2 (rel err ~2^-22); x <= 0 here
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ float scan_sigmoid(float v) { return __fdividef(1.0f, 1.0f + __expf(-v)); }
__device__ __forceinline__ float scan_softplus(float v) { return v <= 20.0f ? log1pf(__expf(v)) : v; }
__device__ __forceinline__ float scan_dsoftplus(float v) { return v <= 20.0f ? scan_sigmoid(v) : 1.0f; }
__device__ __forceinline__ float scan_ld(const bf16* p) { return __bfloat162float(__ldg(p)); }

// sum over the LC lanes of one channel (lanes differ in the low log2(LC) bits); every lane gets the total
template <int LC>
__device__ __forceinline__ float scan_group_sum(float x) {
#pragma unroll
    for (int m = 1; m < LC; m <<= 1) x += __shfl_xor_sync(0xffffffffu, x, m);
    return x;
}

static inline int scan_num_chunks(int T) { return (T + SCAN_CHUNK - 1) / SCAN_CHUNK; }
static inline size_t scan_saved_bytes(int B, int T, int Di, int N) {
    return (size_t)B * scan_num_chunks(T) * Di * N * sizeof(float);
}

// ---------------------------------------------------------------------------------------------------------------
// forward. Thread = (b, d, state group g). Grid (ceil(Di / DL), B).

template <int N, int G>
__global__ void __launch_bounds__(SCAN_THREADS)
selective_scan_fwd_kernel(bf16* __restrict__ y, float* __restrict__ saved, const ScanArgs p) {
    constexpr int LC = N / G, DL = SCAN_THREADS / LC;
    const int g = threadIdx.x % LC, d = blockIdx.x * DL + threadIdx.x / LC, b = blockIdx.y;
    const bool valid = d < p.Di;
    const int dc = valid ? d : p.Di - 1;   // idle lanes compute on a real channel and store nothing
    const float LOG2E = 1.4426950408889634f;
    float A2[G], h[G];
#pragma unroll
    for (int i = 0; i < G; i++) {
        A2[i] = -expf(p.A_log[(size_t)dc * N + g * G + i]) * LOG2E;
        h[i] = 0.0f;
    }
    const float Dd = p.Dskip[dc], bias = p.dt_bias[dc];
    const size_t row0 = (size_t)b * p.T;
    for (int t = 0; t < p.T; t++) {
        const size_t m = row0 + t;
        const float uu = scan_ld(p.u + m * p.ld_u + dc);
        const float delta = scan_softplus(scan_ld(p.dt_raw + m * p.Di + dc) + bias);
        const float du = delta * uu;
        const bf16* Bt = p.Bm + m * p.ld_bc + g * G;
        const bf16* Ct = p.Cm + m * p.ld_bc + g * G;
        float yp = 0.0f;
#pragma unroll
        for (int i = 0; i < G; i++) {
            h[i] = scan_ex2(delta * A2[i]) * h[i] + scan_ld(Bt + i) * du;
            yp += scan_ld(Ct + i) * h[i];
        }
        yp = scan_group_sum<LC>(yp);
        if (valid && g == 0) {
            const float zz = scan_ld(p.z + m * p.ld_z + dc);
            y[m * p.Di + d] = __float2bfloat16((yp + Dd * uu) * zz * scan_sigmoid(zz));
        }
        if (valid && ((t + 1) % SCAN_CHUNK == 0 || t == p.T - 1)) {
            float* s = saved + (((size_t)b * p.nch + t / SCAN_CHUNK) * p.Di + d) * N + g * G;
#pragma unroll
            for (int i = 0; i < G; i++) s[i] = h[i];
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// backward

// Reduce-scatter of v[2G] over the channels of one warp (lane bits >= log2(LC)), fixed order. Afterwards the lane
// holds the warp's sums of local values [off, off + cnt); writes them into stage[2N] (q*N + n, q = 0: dB, 1: dC).
template <int N, int G>
__device__ __forceinline__ void scan_warp_reduce_bc(float (&v)[2 * G], float* stage, int lane) {
    constexpr int LC = N / G, CPW = 32 / LC, V = 2 * G;
    int off = 0, writer = 1;
#pragma unroll
    for (int lvl = 0; (1 << lvl) < CPW; lvl++) {
        const int m = LC << lvl, cnt = V >> lvl;
        const bool upper = (lane & m) != 0;
        if (cnt >= 2) {
            const int half = cnt >> 1;
#pragma unroll
            for (int i = 0; i < half; i++) {
                const float send = upper ? v[i] : v[i + half];
                const float keep = upper ? v[i + half] : v[i];
                v[i] = keep + __shfl_xor_sync(0xffffffffu, send, m);
            }
            if (upper) off += half;
        } else {
            v[0] += __shfl_xor_sync(0xffffffffu, v[0], m);
            if (upper) writer = 0;
        }
    }
    constexpr int CNT = V >= CPW ? V / CPW : 1;
    if (writer) {
        const int g = lane % LC;
#pragma unroll
        for (int i = 0; i < CNT; i++) {
            const int kk = off + i, q = kk / G;
            stage[q * N + g * G + kk % G] = v[i];
        }
    }
}

template <int N, int G>
static size_t scan_bwd_smem_bytes() {
    return ((size_t)(SCAN_CHUNK / SCAN_WIN) * G * SCAN_THREADS + (size_t)SCAN_WIN * (SCAN_THREADS / 32) * 2 * N)
           * sizeof(float);
}
static inline int scan_dblocks(int Di, int N, int G) { int DL = SCAN_THREADS / (N / G); return (Di + DL - 1) / DL; }

// Thread = (b, d, g); grid (ceil(Di / DL), B). Writes du, ddt_raw, dz, and partials:
// partBC [nblk][B*T][2N], partA [B][Di][N], partD [B][Di], partBias [B][Di].
template <int N, int G>
__global__ void __launch_bounds__(SCAN_THREADS)
selective_scan_bwd_kernel(bf16* __restrict__ du_out, int ld_du, bf16* __restrict__ ddt_out, bf16* __restrict__ dz_out,
                          int ld_dz, float* __restrict__ partBC, float* __restrict__ partA, float* __restrict__ partD,
                          float* __restrict__ partBias, const bf16* __restrict__ dy, const float* __restrict__ saved,
                          const ScanArgs p) {
    constexpr int LC = N / G, DL = SCAN_THREADS / LC, W = SCAN_WIN, NW = SCAN_CHUNK / SCAN_WIN;
    constexpr int NWARP = SCAN_THREADS / 32;
    extern __shared__ float smem[];
    float* ck = smem;                                   // [NW][G][SCAN_THREADS] window start states
    float* stage = smem + NW * G * SCAN_THREADS;        // [W][NWARP][2N] per-warp dB/dC sums
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int g = tid % LC, d = blockIdx.x * DL + tid / LC, b = blockIdx.y;
    const bool valid = d < p.Di;
    const int dc = valid ? d : p.Di - 1;
    const float LOG2E = 1.4426950408889634f;
    const float vmask = valid ? 1.0f : 0.0f;   // idle lanes: u = dy = 0 and h = 0 => they contribute exact zeros
    float A[G], A2[G], dh[G], dAacc[G];
#pragma unroll
    for (int i = 0; i < G; i++) {
        A[i] = -expf(p.A_log[(size_t)dc * N + g * G + i]);
        A2[i] = A[i] * LOG2E;
        dh[i] = 0.0f;
        dAacc[i] = 0.0f;
    }
    const float Dd = p.Dskip[dc], bias = p.dt_bias[dc];
    float dDacc = 0.0f, dBiasacc = 0.0f;
    const size_t row0 = (size_t)b * p.T, BT = (size_t)p.B * p.T;

    for (int c = p.nch - 1; c >= 0; c--) {
        const int t0 = c * SCAN_CHUNK, t1 = min(p.T, t0 + SCAN_CHUNK), nw = (t1 - t0 + W - 1) / W;
        float h[G];
#pragma unroll
        for (int i = 0; i < G; i++)
            h[i] = c > 0 ? vmask * saved[(((size_t)b * p.nch + c - 1) * p.Di + dc) * N + g * G + i] : 0.0f;
        // pass 1: window start states into shared memory (the last window is recomputed right away)
        for (int w = 0; w < nw; w++) {
#pragma unroll
            for (int i = 0; i < G; i++) ck[(w * G + i) * SCAN_THREADS + tid] = h[i];
            if (w == nw - 1) break;
            for (int j = 0; j < W; j++) {
                const size_t m = row0 + t0 + w * W + j;
                const float uu = vmask * scan_ld(p.u + m * p.ld_u + dc);
                const float delta = scan_softplus(scan_ld(p.dt_raw + m * p.Di + dc) + bias);
                const float du = delta * uu;
                const bf16* Bt = p.Bm + m * p.ld_bc + g * G;
#pragma unroll
                for (int i = 0; i < G; i++) h[i] = scan_ex2(delta * A2[i]) * h[i] + scan_ld(Bt + i) * du;
            }
        }
        // pass 2: windows last-to-first: recompute W states into registers, then the reverse recurrence
        for (int w = nw - 1; w >= 0; w--) {
            const int ts = t0 + w * W;
            float hs[W][G], yp[W];
#pragma unroll
            for (int i = 0; i < G; i++) h[i] = ck[(w * G + i) * SCAN_THREADS + tid];
#pragma unroll
            for (int j = 0; j < W; j++) {
                yp[j] = 0.0f;
                if (ts + j < t1) {
                    const size_t m = row0 + ts + j;
                    const float uu = vmask * scan_ld(p.u + m * p.ld_u + dc);
                    const float delta = scan_softplus(scan_ld(p.dt_raw + m * p.Di + dc) + bias);
                    const float du = delta * uu;
                    const bf16* Bt = p.Bm + m * p.ld_bc + g * G;
                    const bf16* Ct = p.Cm + m * p.ld_bc + g * G;
                    float acc = 0.0f;
#pragma unroll
                    for (int i = 0; i < G; i++) {
                        h[i] = scan_ex2(delta * A2[i]) * h[i] + scan_ld(Bt + i) * du;
                        hs[j][i] = h[i];
                        acc += scan_ld(Ct + i) * h[i];
                    }
                    yp[j] = scan_group_sum<LC>(acc) + Dd * uu;   // y_pre, for dz
                }
            }
#pragma unroll
            for (int j = W - 1; j >= 0; j--) {
                if (ts + j >= t1) continue;   // uniform over the block
                const size_t m = row0 + ts + j;
                const float uu = vmask * scan_ld(p.u + m * p.ld_u + dc);
                const float v = scan_ld(p.dt_raw + m * p.Di + dc) + bias;
                const float delta = scan_softplus(v);
                const float zz = scan_ld(p.z + m * p.ld_z + dc);
                const float dg = vmask * scan_ld(dy + m * p.Di + dc);
                const float sz = scan_sigmoid(zz);
                const float dyv = dg * zz * sz;   // gradient of y_pre
                const bf16* Bt = p.Bm + m * p.ld_bc + g * G;
                const bf16* Ct = p.Cm + m * p.ld_bc + g * G;
                const float du = delta * uu;
                float dupart = 0.0f, ddpart = 0.0f, bc[2 * G];
#pragma unroll
                for (int i = 0; i < G; i++) {
                    const float Bv = scan_ld(Bt + i), Cv = scan_ld(Ct + i);
                    dh[i] += dyv * Cv;                          // dL/dh_t
                    bc[G + i] = dyv * hs[j][i];                 // dC contribution
                    bc[i] = dh[i] * du;                         // dB contribution
                    const float ah = hs[j][i] - Bv * du;        // exp(delta A) h_{t-1}
                    dupart += dh[i] * Bv;
                    ddpart += dh[i] * (Bv * uu + A[i] * ah);
                    dAacc[i] += dh[i] * delta * ah;
                    dh[i] *= scan_ex2(delta * A2[i]);           // -> dL/dh_{t-1} (partial)
                }
                dupart = scan_group_sum<LC>(dupart) * delta;
                ddpart = scan_group_sum<LC>(ddpart);
                scan_warp_reduce_bc<N, G>(bc, stage + (j * NWARP + warp) * 2 * N, lane);
                if (valid && g == 0) {
                    const float ddt = ddpart * scan_dsoftplus(v);
                    du_out[m * ld_du + d] = __float2bfloat16(dupart + Dd * dyv);
                    ddt_out[m * p.Di + d] = __float2bfloat16(ddt);
                    dz_out[m * ld_dz + d] = __float2bfloat16(dg * yp[j] * sz * (1.0f + zz * (1.0f - sz)));
                    dDacc += dyv * uu;
                    dBiasacc += ddt;
                }
            }
            __syncthreads();
            for (int k = tid; k < W * 2 * N; k += SCAN_THREADS) {
                const int j = k / (2 * N), e = k % (2 * N);
                if (ts + j >= t1) continue;
                float s = 0.0f;
#pragma unroll
                for (int wp = 0; wp < NWARP; wp++) s += stage[(j * NWARP + wp) * 2 * N + e];
                partBC[((size_t)blockIdx.x * BT + row0 + ts + j) * 2 * N + e] = s;
            }
            __syncthreads();
        }
    }
    if (valid) {
#pragma unroll
        for (int i = 0; i < G; i++) partA[((size_t)b * p.Di + d) * N + g * G + i] = dAacc[i];
        if (g == 0) {
            partD[(size_t)b * p.Di + d] = dDacc;
            partBias[(size_t)b * p.Di + d] = dBiasacc;
        }
    }
}

// dB, dC [B*T][N] (bf16, row stride ld_dbc) = sums of the per-block partials, in block order
__global__ void selective_scan_reduce_bc_kernel(bf16* dB, bf16* dC, int ld_dbc, const float* partBC, int nblk,
                                                size_t BT, int N) {
    const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= BT * 2 * N) return;
    float s = 0.0f;
    for (int k = 0; k < nblk; k++) s += partBC[(size_t)k * BT * 2 * N + idx];
    const size_t m = idx / (2 * N);
    const int e = (int)(idx % (2 * N));
    if (e < N) dB[m * ld_dbc + e] = __float2bfloat16(s);
    else dC[m * ld_dbc + e - N] = __float2bfloat16(s);
}
// dA_log [Di,N] += A * sum_b dA;  dD, ddt_bias [Di] += sums over b
__global__ void selective_scan_reduce_params_kernel(float* dA_log, float* dD, float* ddt_bias, const float* partA,
                                                    const float* partD, const float* partBias, const float* A_log,
                                                    int B, int Di, int N) {
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx < Di * N) {
        float s = 0.0f;
        for (int b = 0; b < B; b++) s += partA[(size_t)b * Di * N + idx];
        dA_log[idx] += s * -expf(A_log[idx]);
    }
    if (idx < Di) {
        float sd = 0.0f, sb = 0.0f;
        for (int b = 0; b < B; b++) {
            sd += partD[(size_t)b * Di + idx];
            sb += partBias[(size_t)b * Di + idx];
        }
        dD[idx] += sd;
        ddt_bias[idx] += sb;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// host launchers. `G` = states per lane; the production APIs below use SCAN_G, dev harnesses try others.

static inline size_t scan_workspace_bytes_g(int B, int T, int Di, int N, int G) {
    return ((size_t)scan_dblocks(Di, N, G) * B * T * 2 * N + (size_t)B * Di * N + 2 * (size_t)B * Di) * sizeof(float);
}
static inline int scan_pick_g(int N, int G) { return G < N ? G : N; }
static inline size_t scan_workspace_bytes(int B, int T, int Di, int N) {
    return scan_workspace_bytes_g(B, T, Di, N, scan_pick_g(N, SCAN_G));
}

static inline void scan_check_args(int B, int T, int Di, int N) {
    if (B < 1 || T < 1 || Di < 1) die("selective_scan: bad shape B=%d T=%d Di=%d", B, T, Di);
    if (N != 4 && N != 8 && N != 16 && N != 32) die("selective_scan: N=%d unsupported (4, 8, 16, 32)", N);
}
static inline ScanArgs scan_make_args(const bf16* u, int ld_u, const bf16* dt_raw, const bf16* z, int ld_z,
                                      const bf16* Bm, const bf16* Cm, int ld_bc, const float* A_log,
                                      const float* Dskip, const float* dt_bias, int B, int T, int Di, int N) {
    ScanArgs a;
    a.u = u; a.ld_u = ld_u; a.dt_raw = dt_raw; a.z = z; a.ld_z = ld_z; a.Bm = Bm; a.Cm = Cm; a.ld_bc = ld_bc;
    a.A_log = A_log; a.Dskip = Dskip; a.dt_bias = dt_bias; a.B = B; a.T = T; a.Di = Di; a.N = N;
    a.nch = scan_num_chunks(T);
    return a;
}

template <int N, int G>
static void scan_fwd_launch(bf16* y, float* saved, const ScanArgs& a, cudaStream_t s) {
    constexpr int DL = SCAN_THREADS / (N / G);
    dim3 grid((a.Di + DL - 1) / DL, a.B);
    selective_scan_fwd_kernel<N, G><<<grid, SCAN_THREADS, 0, s>>>(y, saved, a);
    CUDA_KERNEL_CHECK();
}
template <int N, int G>
static void scan_bwd_launch(bf16* du, int ld_du, bf16* ddt_raw, bf16* dz, int ld_dz, float* ws, const bf16* dy,
                            const float* saved, const ScanArgs& a, cudaStream_t s) {
    constexpr int DL = SCAN_THREADS / (N / G);
    const int nblk = (a.Di + DL - 1) / DL;
    const size_t BT = (size_t)a.B * a.T;
    float* partBC = ws;
    float* partA = partBC + (size_t)nblk * BT * 2 * N;
    float* partD = partA + (size_t)a.B * a.Di * N;
    float* partBias = partD + (size_t)a.B * a.Di;
    const size_t smem = scan_bwd_smem_bytes<N, G>();
    static int attr_set = 0;   // per template instance
    if (!attr_set) {
        CUDA_CHECK(cudaFuncSetAttribute(selective_scan_bwd_kernel<N, G>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)smem));
        attr_set = 1;
    }
    dim3 grid(nblk, a.B);
    selective_scan_bwd_kernel<N, G><<<grid, SCAN_THREADS, smem, s>>>(du, ld_du, ddt_raw, dz, ld_dz, partBC, partA,
                                                                      partD, partBias, dy, saved, a);
    CUDA_KERNEL_CHECK();
}

#define SCAN_DISPATCH(N_, G_, CALL)                                                                     \
    do {                                                                                                \
        const int gg_ = scan_pick_g(N_, G_);                                                            \
        if (N_ == 4 && gg_ == 4) CALL(4, 4);                                                            \
        else if (N_ == 8 && gg_ == 4) CALL(8, 4);                                                       \
        else if (N_ == 8 && gg_ == 8) CALL(8, 8);                                                       \
        else if (N_ == 16 && gg_ == 4) CALL(16, 4);                                                     \
        else if (N_ == 16 && gg_ == 8) CALL(16, 8);                                                     \
        else if (N_ == 16 && gg_ == 16) CALL(16, 16);                                                   \
        else if (N_ == 32 && gg_ == 4) CALL(32, 4);                                                     \
        else if (N_ == 32 && gg_ == 8) CALL(32, 8);                                                     \
        else die("selective_scan: no kernel for N=%d with %d states per lane", N_, gg_);              \
    } while (0)

// forward with an explicit states-per-lane count G (4, 8, or N <= 16)
static inline void selective_scan_forward_g(bf16* y, void* saved, const bf16* u, int ld_u, const bf16* dt_raw,
                                            const bf16* z, int ld_z, const bf16* Bm, const bf16* Cm, int ld_bc,
                                            const float* A_log, const float* Dskip, const float* dt_bias,
                                            int B, int T, int Di, int N, int G, cudaStream_t s) {
    scan_check_args(B, T, Di, N);
    ScanArgs a = scan_make_args(u, ld_u, dt_raw, z, ld_z, Bm, Cm, ld_bc, A_log, Dskip, dt_bias, B, T, Di, N);
#define SCAN_FWD_CALL(n_, g_) scan_fwd_launch<n_, g_>(y, (float*)saved, a, s)
    SCAN_DISPATCH(N, G, SCAN_FWD_CALL);
#undef SCAN_FWD_CALL
}

static inline void selective_scan_backward_g(bf16* du, int ld_du, bf16* ddt_raw, bf16* dz, int ld_dz,
                                             bf16* dB, bf16* dC, int ld_dbc, float* dA_log, float* dDskip,
                                             float* ddt_bias, const bf16* dy, const void* saved,
                                             const bf16* u, int ld_u, const bf16* dt_raw, const bf16* z, int ld_z,
                                             const bf16* Bm, const bf16* Cm, int ld_bc, const float* A_log,
                                             const float* Dskip, const float* dt_bias, int B, int T, int Di, int N,
                                             int G, void* ws, cudaStream_t s) {
    scan_check_args(B, T, Di, N);
    ScanArgs a = scan_make_args(u, ld_u, dt_raw, z, ld_z, Bm, Cm, ld_bc, A_log, Dskip, dt_bias, B, T, Di, N);
    float* w = (float*)ws;
#define SCAN_BWD_CALL(n_, g_) scan_bwd_launch<n_, g_>(du, ld_du, ddt_raw, dz, ld_dz, w, dy, (const float*)saved, a, s)
    SCAN_DISPATCH(N, G, SCAN_BWD_CALL);
#undef SCAN_BWD_CALL
    const int gg = scan_pick_g(N, G), nblk = scan_dblocks(Di, N, gg);
    const size_t BT = (size_t)B * T;
    const float* partA = w + (size_t)nblk * BT * 2 * N;
    const float* partD = partA + (size_t)B * Di * N;
    const float* partBias = partD + (size_t)B * Di;
    const size_t nbc = BT * 2 * N;
    selective_scan_reduce_bc_kernel<<<(unsigned)((nbc + 255) / 256), 256, 0, s>>>(dB, dC, ld_dbc, w, nblk, BT, N);
    CUDA_KERNEL_CHECK();
    selective_scan_reduce_params_kernel<<<(Di * N + 255) / 256, 256, 0, s>>>(dA_log, dDskip, ddt_bias, partA, partD,
                                                                             partBias, A_log, B, Di, N);
    CUDA_KERNEL_CHECK();
}

// ---------------------------------------------------------------------------------------------------------------
// production API (design.md "selective_scan.cuh")

// y [B,T,Di] bf16 (gated output); saved: scan_saved_bytes; ws: unused by the forward (may be NULL)
static inline void selective_scan_forward(bf16* y, void* saved, const bf16* u, int ld_u, const bf16* dt_raw,
                                          const bf16* z, int ld_z, const bf16* Bm, const bf16* Cm, int ld_bc,
                                          const float* A_log, const float* Dskip, const float* dt_bias,
                                          int B, int T, int Di, int N, void* ws, cudaStream_t s) {
    (void)ws;
    selective_scan_forward_g(y, saved, u, ld_u, dt_raw, z, ld_z, Bm, Cm, ld_bc, A_log, Dskip, dt_bias, B, T, Di, N,
                             SCAN_G, s);
}

// du [B,T,Di] (stride ld_du), ddt_raw [B,T,Di], dz (stride ld_dz) WRITTEN; dB, dC [B,T,N] (stride ld_dbc) WRITTEN;
// dA_log [Di,N], dDskip [Di], ddt_bias [Di] ACCUMULATED. dy = gradient of the gated output y. ws: scan_workspace_bytes.
static inline void selective_scan_backward(bf16* du, int ld_du, bf16* ddt_raw, bf16* dz, int ld_dz,
                                           bf16* dB, bf16* dC, int ld_dbc, float* dA_log, float* dDskip,
                                           float* ddt_bias, const bf16* dy, const void* saved,
                                           const bf16* u, int ld_u, const bf16* dt_raw, const bf16* z, int ld_z,
                                           const bf16* Bm, const bf16* Cm, int ld_bc, const float* A_log,
                                           const float* Dskip, const float* dt_bias, int B, int T, int Di, int N,
                                           void* ws, cudaStream_t s) {
    selective_scan_backward_g(du, ld_du, ddt_raw, dz, ld_dz, dB, dC, ld_dbc, dA_log, dDskip, ddt_bias, dy, saved, u,
                              ld_u, dt_raw, z, ld_z, Bm, Cm, ld_bc, A_log, Dskip, dt_bias, B, T, Di, N, SCAN_G, ws, s);
}

// ---------------------------------------------------------------------------------------------------------------
// single-token recurrent form (sampling). h [B,Di,N] fp32 state, updated in place; u, dt_raw, z, y: [B,Di] rows
// (u, z with row strides ld_u, ld_z; dt_raw, y contiguous); Bm, Cm [B,N] with row stride ld_bc.

__global__ void selective_scan_step_kernel(bf16* y, float* h, const bf16* u, int ld_u, const bf16* dt_raw,
                                           const bf16* z, int ld_z, const bf16* Bm, const bf16* Cm, int ld_bc,
                                           const float* A_log, const float* Dskip, const float* dt_bias,
                                           int B, int Di, int N) {
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= B * Di) return;
    const int b = idx / Di, d = idx % Di;
    const float uu = bf2f(u[(size_t)b * ld_u + d]), zz = bf2f(z[(size_t)b * ld_z + d]);
    const float delta = scan_softplus(bf2f(dt_raw[(size_t)b * Di + d]) + dt_bias[d]);
    float acc = Dskip[d] * uu;
    float* hp = h + (size_t)idx * N;
    for (int n = 0; n < N; n++) {
        const float a = expf(delta * -expf(A_log[(size_t)d * N + n]));
        hp[n] = a * hp[n] + delta * bf2f(Bm[(size_t)b * ld_bc + n]) * uu;
        acc += bf2f(Cm[(size_t)b * ld_bc + n]) * hp[n];
    }
    y[(size_t)b * Di + d] = __float2bfloat16(acc * zz * scan_sigmoid(zz));
}
static inline void selective_scan_step(bf16* y, float* h, const bf16* u, int ld_u, const bf16* dt_raw,
                                       const bf16* z, int ld_z, const bf16* Bm, const bf16* Cm, int ld_bc,
                                       const float* A_log, const float* Dskip, const float* dt_bias,
                                       int B, int Di, int N, cudaStream_t s) {
    selective_scan_step_kernel<<<(B * Di + 127) / 128, 128, 0, s>>>(y, h, u, ld_u, dt_raw, z, ld_z, Bm, Cm, ld_bc,
                                                                     A_log, Dskip, dt_bias, B, Di, N);
    CUDA_KERNEL_CHECK();
}

#endif /* COMMON_SELECTIVE_SCAN_CUH */
