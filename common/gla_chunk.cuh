/*
 * gla_chunk.cuh — the gated-linear-attention operator (gla.md section 2): chunked forward and backward
 * for training, and the single-token recurrent step for sampling. Owns every GLA-op kernel.
 *
 * Math, per (batch b, head h):  S_t = diag(exp g_t) S_{t-1} + k_t^T v_t  (S: [K,V], S_0 = 0),
 *                               o_t = scale * q_t S_t,  scale = K^-0.5.
 * Chunk form (chunks of 64 tokens, chunk-local fp32 gate cumsum Gc, state H_n at chunk start):
 *   o_i = scale (q_i * exp Gc_i) H_n + sum_{j<=i in chunk} A_ij v_j,
 *   A_ij = scale sum_a q_i[a] k_j[a] exp(Gc_i[a] - Gc_j[a])        (every exponent <= 0: no overflow).
 * A's 16x16 off-diagonal tiles are matmuls on tensor cores after rescaling rows by a reference row of the
 * query sub-block (gla.md 2.4); its 4 diagonal tiles are elementwise fp32 with exact exponents.
 *
 * Production pipeline (all tensor-core products are bf16 x bf16 -> fp32, mma.sync m16n8k16):
 *   forward : state pass      H_n  -> ws (bf16 [B,H,NT,K,V])       grid (V/64, K/32, B*H), sequential in n
 *             chunk output    o = Qg H_n + A v                       grid (NT, B*H)
 *   backward: state pass (recompute H_n), reverse state pass dHe_n (gradient of the state at chunk end),
 *             chunk output kernel again for dv = A^T do + Kd dHe_n,
 *             dq/dk/dg kernel (dA = scale do v^T, intra by sub-chunks, inter, reverse-cumsum gate grad).
 * Nothing is saved between forward and backward (gla_saved_bytes = 0): states are recomputed, as fla does.
 * Deterministic: every output element has one owner thread and a fixed summation order; no atomics.
 * Rows past T in the last chunk are loaded as zeros (g = 0 keeps Gc flat there, so no exponent overflows).
 *
 * Layouts: q,k [B,T,H,K] bf16 row stride ld_qk; v [B,T,H,V] bf16 row stride ld_v; g [B,T,H,K] fp32
 * contiguous; o, d_o [B,T,H,V] bf16 contiguous; dq,dk stride ld_dqk; dv stride ld_dv; dg like g.
 * Supported head dims: K a multiple of 32 in [32,256], V a multiple of 64 in [64,512].
 *
 * Also here: the "simple" path (gla_simple_*), plain fp32 scalar kernels that follow gla.md 2.8 line by
 * line. It is v1 of the dev harnesses and a second GPU route to every intermediate; not used in training.
 */
#ifndef COMMON_GLA_CHUNK_CUH
#define COMMON_GLA_CHUNK_CUH

#include <cuda_runtime.h>
#include <stdint.h>
#include <math.h>
#include "errors.h"
#include "launch.cuh"
#include "bf16.cuh"
#include "cp_async.cuh"

#define GLA_CT 64   /* chunk length in tokens */

__host__ __device__ static inline int gla_num_chunks(int T) { return (T + GLA_CT - 1) / GLA_CT; }

/* Non-zero, with the reason in why, when the chunk kernels do not take this shape (the trainers ask
 * before the GPU is touched; gla_check_dims dies with it). B*H is a grid dimension (at most 65535). */
static inline int gla_chunk_shape_error(int B, int T, int H, int K, int V, char* why, size_t cap) {
    if (B < 1 || T < 1 || H < 1) snprintf(why, cap, "bad shape B=%d T=%d H=%d", B, T, H);
    else if (K < 32 || K > 256 || K % 32)
        snprintf(why, cap, "head key dim K=%d unsupported (need a multiple of 32 in [32,256], e.g. 64/96/128/256)", K);
    else if (V < 64 || V > 512 || V % 64) snprintf(why, cap, "head value dim V=%d unsupported (need a multiple of 64 in [64,512])", V);
    else if ((long long)B * H > 65535) snprintf(why, cap, "batch x heads = %d x %d is more than 65535 (a grid dimension)", B, H);
    else return 0;
    return 1;
}
static inline void gla_check_dims(int B, int T, int H, int K, int V, int ld_qk, int ld_v) {
    char why[160];
    if (gla_chunk_shape_error(B, T, H, K, V, why, sizeof why)) die("gla_chunk: %s", why);
    if (ld_qk % 8 || ld_v % 8 || ld_qk < H * K || ld_v < H * V)
        die("gla_chunk: row strides ld_qk=%d ld_v=%d must be multiples of 8 and cover H*K / H*V", ld_qk, ld_v);
}
static inline void gla_check_ptr(const void* p, const char* name) {
    if (((uintptr_t)p) & 15) die("gla_chunk: %s must be 16-byte aligned", name);
}

/* ================================================================================================== */
/* Simple path (v1): one thread per output element, fp32, gla.md 2.8 verbatim.                        */
/* ================================================================================================== */

/* index helpers: token-major tensors */
#define GLA_IG(b, t, h, a) ((((size_t)(b) * T + (t)) * H + (h)) * K + (a))           /* g, Gc, dg [B,T,H,K] */
#define GLA_IQ(b, t, h, a) (((size_t)(b) * T + (t)) * ld_qk + (size_t)(h) * K + (a))  /* q, k (strided) */
#define GLA_IV(b, t, h, c) (((size_t)(b) * T + (t)) * ld_v + (size_t)(h) * V + (c))  /* v (strided) */
#define GLA_IO(b, t, h, c) ((((size_t)(b) * T + (t)) * H + (h)) * V + (c))           /* o, d_o [B,T,H,V] */

/* Gc [B,T,H,K]: chunk-local inclusive cumsum of g. One thread per (b, chunk, h, a). */
__global__ void gla_simple_cumsum_kernel(float* Gc, const float* g, int B, int T, int H, int K) {
    pdl_wait_prior();
    int NT = (T + GLA_CT - 1) / GLA_CT;
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * NT * H * K) return;
    int a = (int)(idx % K); size_t r = idx / K;
    int h = (int)(r % H); r /= H;
    int n = (int)(r % NT), b = (int)(r / NT);
    float acc = 0.f;
    for (int t = n * GLA_CT; t < min(T, n * GLA_CT + GLA_CT); t++) { acc += g[GLA_IG(b, t, h, a)]; Gc[GLA_IG(b, t, h, a)] = acc; }
}

/* REV=0: hs[b,h,n] = H_n (state at chunk start), x = k, y = v.
 * REV=1: hs[b,h,n] = dHe_n (gradient of the state at chunk end), x = q, y = d_o (contiguous, ld_y = H*V).
 * hs [B,H,NT,K,V] fp32. One thread per (b,h,a,c) walks the chunks in order. */
template <bool REV>
__global__ void gla_simple_states_kernel(float* hs, const bf16* x, int ld_qk, const bf16* y, int ld_v,
                                         const float* Gc, int B, int T, int H, int K, int V, float scale) {
    pdl_wait_prior();
    int NT = (T + GLA_CT - 1) / GLA_CT;
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * H * K * V) return;
    int c = (int)(idx % V); size_t r = idx / V;
    int a = (int)(r % K); r /= K;
    int h = (int)(r % H), b = (int)(r / H);
    float S = 0.f;
    for (int step = 0; step < NT; step++) {
        int n = REV ? NT - 1 - step : step;
        hs[(((size_t)(b * H + h) * NT + n) * K + a) * V + c] = S;
        int t0 = n * GLA_CT, t1 = min(T, t0 + GLA_CT);
        float gl = Gc[GLA_IG(b, t1 - 1, h, a)];
        float acc = S * expf(gl);
        for (int t = t0; t < t1; t++) {
            float gt = Gc[GLA_IG(b, t, h, a)];
            float xs = bf2f(x[GLA_IQ(b, t, h, a)]) * (REV ? scale * expf(gt) : expf(gl - gt));
            acc += xs * bf2f(y[GLA_IV(b, t, h, c)]);
        }
        S = acc;
    }
}

/* A [B,H,T,64] fp32: A[t][j - chunk start] = scale sum_a q_t k_j exp(Gc_t - Gc_j) for j <= t, else 0.
 * DA=1 computes dA instead: scale * d_o_t . v_j (x = d_o contiguous, y = v strided). */
template <bool DA>
__global__ void gla_simple_A_kernel(float* A, const bf16* x, int ld_x, const bf16* y, int ld_y,
                                    const float* Gc, int B, int T, int H, int K, int V, float scale) {
    pdl_wait_prior();
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * H * T * GLA_CT) return;
    int jj = (int)(idx % GLA_CT); size_t r = idx / GLA_CT;
    int t = (int)(r % T); r /= T;
    int h = (int)(r % H), b = (int)(r / H);
    int j = (t / GLA_CT) * GLA_CT + jj;
    float acc = 0.f;
    if (j <= t) {
        if (DA) {
            for (int c = 0; c < V; c++)
                acc += bf2f(x[GLA_IO(b, t, h, c)]) * bf2f(y[((size_t)b * T + j) * ld_y + (size_t)h * V + c]);
        } else {
            for (int a = 0; a < K; a++)
                acc += bf2f(x[((size_t)b * T + t) * ld_x + (size_t)h * K + a]) *
                       bf2f(y[((size_t)b * T + j) * ld_y + (size_t)h * K + a]) *
                       expf(Gc[GLA_IG(b, t, h, a)] - Gc[GLA_IG(b, j, h, a)]);
        }
    }
    A[idx] = scale * acc;
}

/* o[t][c] = scale sum_a q_t[a] exp(Gc_t[a]) H_n[a][c] + sum_{j<=t in chunk} A[t][j] v_j[c] */
__global__ void gla_simple_output_kernel(bf16* o, const bf16* q, int ld_qk, const bf16* v, int ld_v,
                                         const float* Gc, const float* hs, const float* A,
                                         int B, int T, int H, int K, int V, float scale) {
    pdl_wait_prior();
    int NT = (T + GLA_CT - 1) / GLA_CT;
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * T * H * V) return;
    int c = (int)(idx % V); size_t r = idx / V;
    int h = (int)(r % H); r /= H;
    int t = (int)(r % T), b = (int)(r / T);
    int n = t / GLA_CT, n0 = n * GLA_CT;
    const float* Hn = hs + ((size_t)(b * H + h) * NT + n) * K * V;
    float acc = 0.f;
    for (int a = 0; a < K; a++) acc += bf2f(q[GLA_IQ(b, t, h, a)]) * expf(Gc[GLA_IG(b, t, h, a)]) * Hn[(size_t)a * V + c];
    acc *= scale;
    const float* At = A + ((size_t)(b * H + h) * T + t) * GLA_CT;
    for (int j = n0; j <= t; j++) acc += At[j - n0] * bf2f(v[GLA_IV(b, j, h, c)]);
    o[idx] = f2bf(acc);
}

/* dv[t][c] = sum_{i>=t in chunk} A[i][t] do_i[c] + sum_a k_t[a] exp(Gc_last[a] - Gc_t[a]) dHe_n[a][c] */
__global__ void gla_simple_dv_kernel(bf16* dv, int ld_dv, const bf16* d_o, const bf16* k, int ld_qk,
                                     const float* Gc, const float* dhs, const float* A,
                                     int B, int T, int H, int K, int V) {
    pdl_wait_prior();
    int NT = (T + GLA_CT - 1) / GLA_CT;
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * T * H * V) return;
    int c = (int)(idx % V); size_t r = idx / V;
    int h = (int)(r % H); r /= H;
    int t = (int)(r % T), b = (int)(r / T);
    int n = t / GLA_CT, n0 = n * GLA_CT, e = min(T, n0 + GLA_CT);
    float acc = 0.f;
    for (int i = t; i < e; i++) acc += A[((size_t)(b * H + h) * T + i) * GLA_CT + (t - n0)] * bf2f(d_o[GLA_IO(b, i, h, c)]);
    const float* dHn = dhs + ((size_t)(b * H + h) * NT + n) * K * V;
    for (int a = 0; a < K; a++)
        acc += bf2f(k[GLA_IQ(b, t, h, a)]) * expf(Gc[GLA_IG(b, e - 1, h, a)] - Gc[GLA_IG(b, t, h, a)]) * dHn[(size_t)a * V + c];
    dv[((size_t)b * T + t) * ld_dv + (size_t)h * V + c] = f2bf(acc);
}

/* dq, dk (bf16) and, for the gate gradient, X = q dq - k dk and KD = k dk_inter (fp32 [B,T,H,K]) */
__global__ void gla_simple_dqk_kernel(bf16* dq, bf16* dk, int ld_dqk, float* X, float* KD,
                                      const bf16* q, const bf16* k, int ld_qk, const bf16* v, int ld_v,
                                      const bf16* d_o, const float* Gc, const float* hs, const float* dhs,
                                      const float* dA, int B, int T, int H, int K, int V, float scale) {
    pdl_wait_prior();
    int NT = (T + GLA_CT - 1) / GLA_CT;
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * T * H * K) return;
    int a = (int)(idx % K); size_t r = idx / K;
    int h = (int)(r % H); r /= H;
    int t = (int)(r % T), b = (int)(r / T);
    int n = t / GLA_CT, n0 = n * GLA_CT, e = min(T, n0 + GLA_CT);
    float gt = Gc[GLA_IG(b, t, h, a)], gl = Gc[GLA_IG(b, e - 1, h, a)];
    const float* dAb = dA + (size_t)(b * H + h) * T * GLA_CT;
    float dqv = 0.f, dki = 0.f, hq = 0.f, hk = 0.f;
    for (int j = n0; j <= t; j++)
        dqv += dAb[(size_t)t * GLA_CT + (j - n0)] * bf2f(k[GLA_IQ(b, j, h, a)]) * expf(gt - Gc[GLA_IG(b, j, h, a)]);
    for (int i = t; i < e; i++)
        dki += dAb[(size_t)i * GLA_CT + (t - n0)] * bf2f(q[GLA_IQ(b, i, h, a)]) * expf(Gc[GLA_IG(b, i, h, a)] - gt);
    const float* Hn = hs + (((size_t)(b * H + h) * NT + n) * K + a) * V;
    const float* dHn = dhs + (((size_t)(b * H + h) * NT + n) * K + a) * V;
    for (int c = 0; c < V; c++) {
        hq += bf2f(d_o[GLA_IO(b, t, h, c)]) * Hn[c];
        hk += bf2f(v[GLA_IV(b, t, h, c)]) * dHn[c];
    }
    dqv += scale * expf(gt) * hq;
    float dke = expf(gl - gt) * hk, dkv = dki + dke;
    float qv = bf2f(q[GLA_IQ(b, t, h, a)]), kv = bf2f(k[GLA_IQ(b, t, h, a)]);
    dq[((size_t)b * T + t) * ld_dqk + (size_t)h * K + a] = f2bf(dqv);
    dk[((size_t)b * T + t) * ld_dqk + (size_t)h * K + a] = f2bf(dkv);
    X[GLA_IG(b, t, h, a)] = qv * dqv - kv * dkv;
    KD[GLA_IG(b, t, h, a)] = kv * dke;
}

/* dg_t = sum_{t'>=t in chunk} X_t' + exp(Gc_last) sum_c H_n dHe_n + sum_{j in chunk} KD_j. Thread per (b,n,h,a). */
__global__ void gla_simple_dg_kernel(float* dg, const float* X, const float* KD, const float* Gc, const float* hs,
                                     const float* dhs, int B, int T, int H, int K, int V) {
    pdl_wait_prior();
    int NT = (T + GLA_CT - 1) / GLA_CT;
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * NT * H * K) return;
    int a = (int)(idx % K); size_t r = idx / K;
    int h = (int)(r % H); r /= H;
    int n = (int)(r % NT), b = (int)(r / NT);
    int n0 = n * GLA_CT, e = min(T, n0 + GLA_CT);
    const float* Hn = hs + (((size_t)(b * H + h) * NT + n) * K + a) * V;
    const float* dHn = dhs + (((size_t)(b * H + h) * NT + n) * K + a) * V;
    float hdh = 0.f, kd = 0.f;
    for (int c = 0; c < V; c++) hdh += Hn[c] * dHn[c];
    for (int t = n0; t < e; t++) kd += KD[GLA_IG(b, t, h, a)];
    float dgk = expf(Gc[GLA_IG(b, e - 1, h, a)]) * hdh + kd, run = 0.f;
    for (int t = e - 1; t >= n0; t--) { run += X[GLA_IG(b, t, h, a)]; dg[GLA_IG(b, t, h, a)] = run + dgk; }
}

/* simple-path workspace (fp32): Gc, X, KD [B,T,H,K]; hs, dhs [B,H,NT,K,V]; A, dA [B,H,T,64] */
static inline size_t gla_simple_workspace_bytes(int B, int T, int H, int K, int V) {
    size_t btk = (size_t)B * T * H * K, st = (size_t)B * H * gla_num_chunks(T) * K * V, a = (size_t)B * H * T * GLA_CT;
    return (3 * btk + 2 * st + 2 * a) * sizeof(float);
}
typedef struct { float *Gc, *X, *KD, *hs, *dhs, *A, *dA; } GlaSimpleWs;
static inline GlaSimpleWs gla_simple_ws(void* ws, int B, int T, int H, int K, int V) {
    size_t btk = (size_t)B * T * H * K, st = (size_t)B * H * gla_num_chunks(T) * K * V, a = (size_t)B * H * T * GLA_CT;
    GlaSimpleWs w;
    w.Gc = (float*)ws; w.X = w.Gc + btk; w.KD = w.X + btk; w.hs = w.KD + btk; w.dhs = w.hs + st; w.A = w.dhs + st; w.dA = w.A + a;
    return w;
}
static inline unsigned gla_blocks(size_t n) { return (unsigned)((n + 255) / 256); }

static inline void gla_simple_forward(bf16* o, const bf16* q, const bf16* k, int ld_qk, const bf16* v, int ld_v,
                                      const float* g, int B, int T, int H, int K, int V, void* ws, cudaStream_t s) {
    gla_check_dims(B, T, H, K, V, ld_qk, ld_v);
    GlaSimpleWs w = gla_simple_ws(ws, B, T, H, K, V);
    float scale = 1.0f / sqrtf((float)K);
    int NT = gla_num_chunks(T);
    launch_kernel(gla_simple_cumsum_kernel, gla_blocks((size_t)B * NT * H * K), 256, 0, s, w.Gc, g, B, T, H, K);
    launch_kernel(gla_simple_states_kernel<false>, gla_blocks((size_t)B * H * K * V), 256, 0, s, w.hs, k, ld_qk, v,
                  ld_v, w.Gc, B, T, H, K, V, scale);
    launch_kernel(gla_simple_A_kernel<false>, gla_blocks((size_t)B * H * T * GLA_CT), 256, 0, s, w.A, q, ld_qk, k,
                  ld_qk, w.Gc, B, T, H, K, V, scale);
    launch_kernel(gla_simple_output_kernel, gla_blocks((size_t)B * T * H * V), 256, 0, s, o, q, ld_qk, v, ld_v, w.Gc,
                  w.hs, w.A, B, T, H, K, V, scale);
}

static inline void gla_simple_backward(bf16* dq, bf16* dk, int ld_dqk, bf16* dv, int ld_dv, float* dg, const bf16* d_o,
                                       const bf16* q, const bf16* k, int ld_qk, const bf16* v, int ld_v, const float* g,
                                       int B, int T, int H, int K, int V, void* ws, cudaStream_t s) {
    gla_check_dims(B, T, H, K, V, ld_qk, ld_v);
    GlaSimpleWs w = gla_simple_ws(ws, B, T, H, K, V);
    float scale = 1.0f / sqrtf((float)K);
    int NT = gla_num_chunks(T);
    size_t nst = (size_t)B * H * K * V, na = (size_t)B * H * T * GLA_CT;
    launch_kernel(gla_simple_cumsum_kernel, gla_blocks((size_t)B * NT * H * K), 256, 0, s, w.Gc, g, B, T, H, K);
    launch_kernel(gla_simple_states_kernel<false>, gla_blocks(nst), 256, 0, s, w.hs, k, ld_qk, v, ld_v, w.Gc, B, T, H,
                  K, V, scale);
    launch_kernel(gla_simple_states_kernel<true>, gla_blocks(nst), 256, 0, s, w.dhs, q, ld_qk, d_o, H * V, w.Gc, B, T,
                  H, K, V, scale);
    launch_kernel(gla_simple_A_kernel<false>, gla_blocks(na), 256, 0, s, w.A, q, ld_qk, k, ld_qk, w.Gc, B, T, H, K, V,
                  scale);
    launch_kernel(gla_simple_A_kernel<true>, gla_blocks(na), 256, 0, s, w.dA, d_o, H * V, v, ld_v, w.Gc, B, T, H, K, V,
                  scale);
    launch_kernel(gla_simple_dv_kernel, gla_blocks((size_t)B * T * H * V), 256, 0, s, dv, ld_dv, d_o, k, ld_qk, w.Gc,
                  w.dhs, w.A, B, T, H, K, V);
    launch_kernel(gla_simple_dqk_kernel, gla_blocks((size_t)B * T * H * K), 256, 0, s, dq, dk, ld_dqk, w.X, w.KD, q, k,
                  ld_qk, v, ld_v, d_o, w.Gc, w.hs, w.dhs, w.dA, B, T, H, K, V, scale);
    launch_kernel(gla_simple_dg_kernel, gla_blocks((size_t)B * NT * H * K), 256, 0, s, dg, w.X, w.KD, w.Gc, w.hs, w.dhs,
                  B, T, H, K, V);
}
#undef GLA_IG
#undef GLA_IQ
#undef GLA_IV
#undef GLA_IO

/* ================================================================================================== */
/* Tensor-core building blocks: ldmatrix fragment loads from shared memory and mma.sync m16n8k16.      */
/* Fragment layout of the fp32 accumulator c[4] of a 16x8 tile: c[0],c[1] at (row lane/4,            */
/* cols 2*(lane%4)+{0,1}); c[2],c[3] at row lane/4+8. Shared tiles are padded rows (+8 bf16) so that  */
/* the 8 row addresses of one ldmatrix hit 8 different 16-byte bank groups.                           */
/* ================================================================================================== */

__device__ __forceinline__ void gla_ldsm_x4(unsigned r[4], const bf16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_u32(p)));
}
__device__ __forceinline__ void gla_ldsm_x4_t(unsigned r[4], const bf16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_u32(p)));
}
__device__ __forceinline__ void gla_mma(float c[4], const unsigned a[4], unsigned b0, unsigned b1) {
    mma_bf16_16816(c, a, b0, b1);   /* bf16.cuh */
}
/* A operand (16x16 at rows m0, cols k0) of a matrix stored row-major [m][k] */
__device__ __forceinline__ void gla_frag_a(unsigned a[4], const bf16* S, int ld, int m0, int k0) {
    int lane = threadIdx.x & 31, mi = lane >> 3, r = lane & 7;
    gla_ldsm_x4(a, S + (size_t)(m0 + r + (mi & 1) * 8) * ld + k0 + (mi >> 1) * 8);
}
/* A operand of a matrix stored transposed, [k][m] */
__device__ __forceinline__ void gla_frag_a_t(unsigned a[4], const bf16* S, int ld, int m0, int k0) {
    int lane = threadIdx.x & 31, mi = lane >> 3, r = lane & 7;
    gla_ldsm_x4_t(a, S + (size_t)(k0 + r + (mi >> 1) * 8) * ld + m0 + (mi & 1) * 8);
}
/* B operands of two adjacent 8-column tiles (n0, n0+8), k-step k0, matrix stored [n][k]:
 * b[0],b[1] for tile n0 and b[2],b[3] for tile n0+8 */
__device__ __forceinline__ void gla_frag_b_nk(unsigned b[4], const bf16* S, int ld, int n0, int k0) {
    int lane = threadIdx.x & 31, mi = lane >> 3, r = lane & 7;
    gla_ldsm_x4(b, S + (size_t)(n0 + r + (mi >> 1) * 8) * ld + k0 + (mi & 1) * 8);
}
/* same, matrix stored [k][n] (row-major K x N) */
__device__ __forceinline__ void gla_frag_b_kn(unsigned b[4], const bf16* S, int ld, int n0, int k0) {
    int lane = threadIdx.x & 31, mi = lane >> 3, r = lane & 7;
    gla_ldsm_x4_t(b, S + (size_t)(k0 + r + (mi & 1) * 8) * ld + n0 + (mi >> 1) * 8);
}
__device__ __forceinline__ uint32_t gla_pack_bf16(float lo, float hi) {
    __nv_bfloat162 p = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&p);
}

/* cp.async (cp_async.cuh): a whole tile costs one memory round trip, and the next tile can load while this one
 * is used. Rows past valid_rows are zero-filled (source size 0; the source address is then row 0, always valid). */
/* rows [0,nrows) x ROWB bytes of a strided source (ld_src bytes) into shared (ld_dst bytes) */
template <int NTHR, int ROWB>
__device__ __forceinline__ void gla_cp_tile(void* dst, int ld_dst, const void* src, size_t ld_src, int nrows, int valid_rows) {
    // A thread keeps one 16-byte column of the tile and walks rows RSTEP apart with running addresses (the
    // index arithmetic per copy was most of these kernels' load-issue instructions).
    constexpr int VPR = ROWB / 16, RSTEP = NTHR / VPR;
    static_assert(NTHR % VPR == 0, "gla_cp_tile: a thread's column must stay fixed");
    const int r0 = threadIdx.x / VPR, c = (threadIdx.x % VPR) * 16;
    unsigned d = smem_u32((char*)dst + r0 * ld_dst + c);
    const char* s0 = (const char*)src + c;       // row 0: the (valid) source of zero-filled rows
    const char* s = s0 + (size_t)r0 * ld_src;
    for (int r = r0; r < nrows; r += RSTEP, d += RSTEP * ld_dst, s += RSTEP * ld_src) {
        const bool ok = r < valid_rows;
        cp_async16_s(d, ok ? s : s0, ok);
    }
}
/* In-place chunk-local inclusive cumsum of a 64-row fp32 gate tile G (row stride ldg floats, W columns)
 * already in shared memory (rows past T are zero); gl[c] = chunk total. Ends with __syncthreads. The first NTHR
 * threads do the work (the summation order is a function of W and NTHR alone), all threads of the block take the
 * barriers. */
template <int W, int NTHR>
__device__ __forceinline__ void gla_cumsum_smem(float* G, int ldg, float* gl, float* tot) {
    constexpr int P = NTHR / W, R = 64 / P;
    const int col = threadIdx.x % W, part = threadIdx.x / W;
    const bool works = threadIdx.x < NTHR;
    float x[R];
    if (works) {
#pragma unroll
        for (int r = 0; r < R; r++) x[r] = G[(part * R + r) * ldg + col];
#pragma unroll
        for (int r = 1; r < R; r++) x[r] += x[r - 1];
        tot[part * W + col] = x[R - 1];
    }
    __syncthreads();
    if (works) {
        float off = 0.f;
#pragma unroll
        for (int p = 0; p < P - 1; p++)
            if (p < part) off += tot[p * W + col];
#pragma unroll
        for (int r = 0; r < R; r++) G[(part * R + r) * ldg + col] = x[r] + off;
        if (part == P - 1) gl[col] = x[R - 1] + off;
    }
    __syncthreads();
}

/* ================================================================================================== */
/* Kernel 1: state pass. REV=0: ws_h[n] = H_n (state at chunk start), H_{n+1} = diag(e^{Gc_last}) H_n +  */
/* (k * e^{Gc_last - Gc})^T v. REV=1: ws_h[n] = dHe_n, walking n down: dHe_{n-1} = diag(e^{Gc_last})   */
/* dHe_n + (scale q * e^{Gc})^T d_o. One CTA owns a BK x VC tile of the [K,V] state in fp32 registers  */
/* for the whole sequence (64 x 256, 64 x 128, or 32 x 64 where K, V do not allow more).               */
/* ================================================================================================== */
/* Tile: BK state rows (key channels) x VC state columns per CTA, (BK/16)*(VC/64) warps, each warp 16 rows x
 * 64 columns (8 accumulator tiles). One chunk's g, x (BK columns) and y (VC columns) tiles are loaded by
 * cp.async one chunk ahead (double buffer). */
template <int BK, int VC>
struct GlaSpSmem {
    struct Stage { float G[64 * BK]; bf16 X[64 * BK]; bf16 Y[64 * (VC + 8)]; } st[2];
    bf16 Xs[64 * (BK + 8)];     /* scaled x, [t][a] */
    bf16 Hst[BK * (VC + 8)];    /* state staged as bf16 for a coalesced store, [a][c] */
    float gl[BK], tot[256];
};
template <bool REV, int BK, int VC>
__global__ void __launch_bounds__(32 * (BK / 16) * (VC / 64))
gla_state_pass_kernel(bf16* __restrict__ hs, const bf16* __restrict__ x, int ld_x, const bf16* __restrict__ y, int ld_y,
                      const float* __restrict__ g, int T, int H, int K, int V, float scale) {
    pdl_wait_prior();
    constexpr int NTHR = 32 * (BK / 16) * (VC / 64), LX = BK + 8, LY = VC + 8, RB = BK / 16;
    typedef GlaSpSmem<BK, VC> Smem;
    extern __shared__ __align__(16) unsigned char gla_smem[];
    Smem& sm = *reinterpret_cast<Smem*>(gla_smem);
    const int NT = gla_num_chunks(T);
    const int c0 = blockIdx.x * VC, a0 = blockIdx.y * BK, bh = blockIdx.z, b = bh / H, h = bh % H;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int wr = 16 * (warp % RB), wc = 64 * (warp / RB);   // this warp's rows / columns of the state tile
    auto issue = [&](int step) {
        const int n = REV ? NT - 1 - step : step, t0 = n * GLA_CT, valid = min(GLA_CT, T - t0);
        const size_t row0 = (size_t)b * T + t0;
        typename Smem::Stage& st = sm.st[step & 1];
        gla_cp_tile<NTHR, BK * 4>(st.G, BK * 4, g + (row0 * H + h) * K + a0, (size_t)H * K * 4, 64, valid);
        gla_cp_tile<NTHR, BK * 2>(st.X, BK * 2, x + row0 * ld_x + (size_t)h * K + a0, (size_t)ld_x * 2, 64, valid);
        gla_cp_tile<NTHR, VC * 2>(st.Y, LY * 2, y + row0 * ld_y + (size_t)h * V + c0, (size_t)ld_y * 2, 64, valid);
        cp_async_commit();
    };
    float acc[8][4];
#pragma unroll
    for (int j = 0; j < 8; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;

    issue(0);
    for (int step = 0; step < NT; step++) {
        const int n = REV ? NT - 1 - step : step;
        typename Smem::Stage& st = sm.st[step & 1];
        if (step + 1 < NT) { issue(step + 1); cp_async_wait<1>(); } else cp_async_wait<0>();
        // stage the state (before this chunk's update) as bf16
#pragma unroll
        for (int j = 0; j < 8; j++) {
            int r = wr + (lane >> 2), c = wc + j * 8 + (lane & 3) * 2;
            *reinterpret_cast<uint32_t*>(&sm.Hst[r * LY + c]) = gla_pack_bf16(acc[j][0], acc[j][1]);
            *reinterpret_cast<uint32_t*>(&sm.Hst[(r + 8) * LY + c]) = gla_pack_bf16(acc[j][2], acc[j][3]);
        }
        __syncthreads();
        gla_cumsum_smem<BK, (NTHR < 256 ? NTHR : 256)>(st.G, BK, sm.gl, sm.tot);   // 256 summing: VC 256's bits = VC 128's
        // scaled x: forward k * exp(Gc_last - Gc_t); reverse scale * q * exp(Gc_t); both exponents <= 0
        for (int e = threadIdx.x; e < 64 * BK; e += NTHR) {
            int t = e / BK, a = e % BK;
            float xv = bf2f(st.X[e]), gt = st.G[e];
            sm.Xs[t * LX + a] = f2bf(REV ? scale * xv * exp_ftz(gt) : xv * exp_ftz(sm.gl[a] - gt));
        }
        bf16* dst = hs + (((size_t)bh * NT + n) * K + a0) * V + c0;
        for (int v = threadIdx.x; v < BK * (VC / 8); v += NTHR) {
            int r = v / (VC / 8), c = (v % (VC / 8)) * 8;
            *reinterpret_cast<int4*>(dst + (size_t)r * V + c) = *reinterpret_cast<const int4*>(&sm.Hst[r * LY + c]);
        }
        __syncthreads();
        // decay, then add the chunk: state[a][c] += sum_t Xs[t][a] Y[t][c]
        {
            float d0 = exp_ftz(sm.gl[wr + (lane >> 2)]), d1 = exp_ftz(sm.gl[wr + (lane >> 2) + 8]);
#pragma unroll
            for (int j = 0; j < 8; j++) { acc[j][0] *= d0; acc[j][1] *= d0; acc[j][2] *= d1; acc[j][3] *= d1; }
        }
#pragma unroll
        for (int ks = 0; ks < 4; ks++) {
            unsigned af[4];
            gla_frag_a_t(af, sm.Xs, LX, wr, ks * 16);
#pragma unroll
            for (int p = 0; p < 4; p++) {
                unsigned bfr[4];
                gla_frag_b_kn(bfr, st.Y, LY, wc + p * 16, ks * 16);
                gla_mma(acc[2 * p], af, bfr[0], bfr[1]);
                gla_mma(acc[2 * p + 1], af, bfr[2], bfr[3]);
            }
        }
        __syncthreads();
    }
}

/* ================================================================================================== */
/* Intra-chunk A (64x64, lower triangle incl. diagonal), computed in K-slabs of 32 columns:            */
/*  off-diagonal 16x16 tiles (I > J): (q_I e^{Gc_I - gn_I}) (k_J e^{gn_I - Gc_J})^T, gn_I = Gc[16 I]    */
/*  diagonal tiles: elementwise fp32 with exact exponents, one thread per (I, i, j>=... ) pair.        */
/* The off-diagonal key operand depends on I: Ks holds rows j < 16I for I = 1,2,3 at row offsets      */
/* 0, 16, 48 (96 rows).                                                                                 */
/* ================================================================================================== */
__device__ __forceinline__ int gla_ks_off(int I) { return I == 1 ? 0 : (I == 2 ? 16 : 48); }
/* diagonal-tile pair p in [0, 544) -> (tile I, row i, col j), j <= i < 16 */
__device__ __forceinline__ void gla_diag_pair(int p, int& ti, int& tj) {
    int I = p / 136, r = p % 136;
    int i = (int)((sqrtf(8.f * r + 1.f) - 1.f) * 0.5f);
    while ((i + 1) * (i + 2) / 2 <= r) i++;
    while (i * (i + 1) / 2 > r) i--;
    ti = 16 * I + i;
    tj = 16 * I + (r - i * (i + 1) / 2);
}

/* ================================================================================================== */
/* Kernel 2: chunk output, one CTA (8 warps) per (chunk, b*h).                                          */
/*  BWD=0: o  = (scale q e^{Gc}) H_n + A v          (R = Qg, Y = H_n,  P = A,   X = v)                   */
/*  BWD=1: dv = (k e^{Gc_last - Gc}) dHe_n + A^T do (R = Kd, Y = dHe_n, P = A^T, X = d_o)                */
/* Phase A builds A (bf16, scaled, masked) and R [64,K] (bf16) in shared memory, K-slab by K-slab;     */
/* phase B produces 64 output columns at a time from R Y + P X.                                          */
/* ================================================================================================== */
#define GLA_CO_THREADS 256
/* shared memory: R [64][K+8] and A [64][72] (bf16) stay; U is phase A's or phase B's working set. Phase A: two
 * slab stages {Gc, q, k}, then gl and tot, then Qs, Ks, Qe, Kf. With A loaded (LOADA, the backward's dv when A was
 * saved) phase A needs only the gate cumsum and R: stages {Gc, k}, gl and tot; and phase B one stage, not two. At
 * K = 128 that is 55 KB against 98, four CTAs per SM instead of two, whose warps cover each other's loads. */
static inline size_t gla_co_phaseA_bytes(bool loada) {
    return loada ? 2 * (64 * 36 * 4 + 64 * 40 * 2) + (32 + 256) * 4
                 : 2 * (64 * 36 * 4 + 2 * 64 * 40 * 2) + (32 + 256) * 4 + 64 * 40 * 2 + 96 * 40 * 2 + 2 * 64 * 36 * 4;
}
static inline size_t gla_co_phaseB_bytes(int K, bool loada) { return (loada ? 1 : 2) * ((size_t)K * 72 * 2 + 64 * 72 * 2); }
static inline size_t gla_chunk_out_smem(int K, bool loada) {
    size_t a = gla_co_phaseA_bytes(loada), b = gla_co_phaseB_bytes(K, loada);
    return (size_t)64 * (K + 8) * 2 + 64 * 72 * 2 + (a > b ? a : b);
}
/* Aio [B,H,NT,64,64] bf16 (scaled, masked A): BWD=0 writes it when non-NULL (saved for backward);
 * LOADA=1 (backward only) reads it instead of recomputing A. */
template <bool BWD, bool LOADA>
__global__ void __launch_bounds__(GLA_CO_THREADS, LOADA ? 4 : 0)
gla_chunk_out_kernel(bf16* __restrict__ out, int ld_out, const bf16* __restrict__ q, const bf16* __restrict__ k, int ld_qk,
                     const bf16* __restrict__ xv, int ld_xv, const float* __restrict__ g, const bf16* __restrict__ hs,
                     bf16* __restrict__ Aio, int T, int H, int K, int V, float scale) {
    pdl_wait_prior();
    extern __shared__ __align__(16) unsigned char gla_smem[];
    const int ldr = K + 8;
    bf16* Rs = (bf16*)gla_smem;                    // [64][K+8]
    bf16* As = Rs + 64 * ldr;                      // [64][72]
    unsigned char* U = (unsigned char*)(As + 64 * 72);
    // phase A view: two slab stages {Gc [64][36] fp32, q [64][40] (not with LOADA), k [64][40]}, then gl, tot, and
    // (not with LOADA) Qs, Ks, Qe, Kf
    constexpr int oK = LOADA ? 64 * 36 * 4 : 64 * 36 * 4 + 64 * 40 * 2;   // k's offset in a stage
    constexpr int stA = oK + 64 * 40 * 2;
    float* gl = (float*)(U + 2 * stA);             // [32]
    float* tot = gl + 32;                          // [8][32]
    bf16* Qs = (bf16*)(tot + 256);                 // [64][40]  q e^{Gc - gn}
    bf16* Ks = Qs + 64 * 40;                       // [96][40]  k e^{gn - Gc}
    float* Qe = (float*)(Ks + 96 * 40);            // [64][36] q_t e^{Gc_t - Gc[16I]}     (fp32, diagonal tiles)
    float* Kf = Qe + 64 * 36;                      // [64][36] k_t e^{Gc[16I] - Gc_t}     (fp32, diagonal tiles)
    // phase B view: slab stages {Y [K][72], X [64][72]}, two (one with LOADA)
    constexpr int NSB = LOADA ? 1 : 2;
    const int stB = K * 72 * 2 + 64 * 72 * 2;

    const int NT = gla_num_chunks(T);
    const int n = blockIdx.x, bh = blockIdx.y, b = bh / H, h = bh % H, t0 = n * GLA_CT, valid = min(GLA_CT, T - t0);
    const size_t row0 = (size_t)b * T + t0;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const bf16* Yb = hs + (size_t)(bh * NT + n) * K * V;
    auto issueA = [&](int a0, int sidx) {
        unsigned char* st = U + sidx * stA;
        gla_cp_tile<GLA_CO_THREADS, 128>(st, 144, g + (row0 * H + h) * K + a0, (size_t)H * K * 4, 64, valid);
        if (!LOADA)
            gla_cp_tile<GLA_CO_THREADS, 64>(st + 64 * 36 * 4, 80, q + row0 * ld_qk + (size_t)h * K + a0, (size_t)ld_qk * 2, 64, valid);
        gla_cp_tile<GLA_CO_THREADS, 64>(st + oK, 80, k + row0 * ld_qk + (size_t)h * K + a0, (size_t)ld_qk * 2, 64, valid);
        cp_async_commit();
    };
    auto issueB = [&](int c0, int sidx) {
        unsigned char* st = U + sidx * stB;
        gla_cp_tile<GLA_CO_THREADS, 128>(st, 144, Yb + c0, (size_t)V * 2, K, K);
        gla_cp_tile<GLA_CO_THREADS, 128>(st + K * 72 * 2, 144, xv + row0 * ld_xv + (size_t)h * V + c0, (size_t)ld_xv * 2, 64, valid);
        cp_async_commit();
    };

    bf16* Ag = Aio ? Aio + (size_t)(bh * NT + n) * 64 * 64 : NULL;
    if (LOADA) gla_cp_tile<GLA_CO_THREADS, 128>(As, 144, Ag, 128, 64, 64);   // joins the first slab's group
    else for (int e = tid; e < 64 * 72 / 2; e += GLA_CO_THREADS) reinterpret_cast<uint32_t*>(As)[e] = 0u;
    issueA(0, 0);
    // off-diagonal tile owned by warps 0..5 and the diagonal pairs owned by each thread
    const int offI = warp < 1 ? 1 : (warp < 3 ? 2 : 3), offJ = warp < 1 ? 0 : (warp < 3 ? warp - 1 : warp - 3);
    float oacc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
    int pi[3], pj[3];
    float dacc[3] = {0.f, 0.f, 0.f};
#pragma unroll
    for (int r = 0; r < 3; r++) {
        int p = tid + r * GLA_CO_THREADS;
        if (p < 544) gla_diag_pair(p, pi[r], pj[r]); else { pi[r] = 0; pj[r] = 0; }
    }

    for (int sl = 0; sl < K / 32; sl++) {
        const int a0 = sl * 32;
        unsigned char* st = U + (sl & 1) * stA;
        float* Gc = (float*)st;
        const bf16* qS = (const bf16*)(st + 64 * 36 * 4);   // (not loaded with LOADA)
        const bf16* kS = (const bf16*)(st + oK);
        if (sl + 1 < K / 32) { issueA(a0 + 32, (sl + 1) & 1); cp_async_wait<1>(); } else cp_async_wait<0>();
        __syncthreads();
        gla_cumsum_smem<32, GLA_CO_THREADS>(Gc, 36, gl, tot);
        // staged operands: 64 rows x 32 cols, 8 per thread. Diagonal tiles use
        // e^{Gc_i - Gc_j} = e^{Gc_i - Gc[16I]} e^{Gc[16I] - Gc_j}, exact in fp32 while a sub-block's gate
        // range stays below 80 (no overflow of the second factor); otherwise the exact per-pair path runs.
        int wide = 0;
        const int col = tid & 31, tr = tid >> 5;   // rows tr + 8i: unrolled, each row's block I is a constant
        float gF[4];                             // Gc at each block's first row
#pragma unroll
        for (int J = 0; J < 4; J++) gF[J] = Gc[(16 * J) * 36 + col];
#pragma unroll
        for (int i = 0; i < 64 * 32 / GLA_CO_THREADS; i++) {
            const int t = tr + (GLA_CO_THREADS / 32) * i, I = (GLA_CO_THREADS / 32) * i / 16;
            float gt = Gc[t * 36 + col], g0 = gF[I];
            const float qv = LOADA ? 0.f : bf2f(qS[t * 40 + col]), kv = bf2f(kS[t * 40 + col]);
            Rs[t * ldr + a0 + col] = f2bf(BWD ? kv * exp_ftz(gl[col] - gt) : scale * qv * exp_ftz(gt));
            if (LOADA) continue;
            float qe = qv * exp_ftz(gt - g0);
            Qs[t * 40 + col] = f2bf(qe);
            Qe[t * 36 + col] = qe;
            Kf[t * 36 + col] = kv * exp_ftz(g0 - gt);
            wide |= (g0 - gt) >= 80.f;
#pragma unroll
            for (int J = 1; J < 4; J++)
                if (I < J) Ks[(gla_ks_off(J) + t) * 40 + col] = f2bf(kv * exp_ftz(gF[J] - gt));
        }
        wide = __syncthreads_or(wide);
        if (LOADA) continue;   // (the loop-end barrier is not needed: nothing below reads this stage)
        if (warp < 6) {
#pragma unroll
            for (int ks = 0; ks < 2; ks++) {
                unsigned af[4], bfr[4];
                gla_frag_a(af, Qs, 40, 16 * offI, ks * 16);
                gla_frag_b_nk(bfr, Ks + gla_ks_off(offI) * 40, 40, 16 * offJ, ks * 16);
                gla_mma(oacc[0], af, bfr[0], bfr[1]);
                gla_mma(oacc[1], af, bfr[2], bfr[3]);
            }
        }
#pragma unroll
        for (int r = 0; r < 3; r++) {
            if (tid + r * GLA_CO_THREADS < 544) {
                float s = 0.f;
                if (!wide) {
                    const float4* qi = reinterpret_cast<const float4*>(Qe + pi[r] * 36);
                    const float4* kj = reinterpret_cast<const float4*>(Kf + pj[r] * 36);
#pragma unroll
                    for (int a = 0; a < 8; a++) {
                        float4 x = qi[a], y = kj[a];
                        s += x.x * y.x + x.y * y.y + x.z * y.z + x.w * y.w;
                    }
                } else {
                    const bf16* qi = qS + pi[r] * 40;
                    const bf16* kj = kS + pj[r] * 40;
                    const float* gi = Gc + pi[r] * 36;
                    const float* gj = Gc + pj[r] * 36;
#pragma unroll 8
                    for (int a = 0; a < 32; a++) s += bf2f(qi[a]) * bf2f(kj[a]) * exp_ftz(gi[a] - gj[a]);
                }
                dacc[r] += s;
            }
        }
        __syncthreads();
    }
    issueB(0, 0);   // phase A's buffers are dead: the first value slab loads while A is written out
    // A (scaled, bf16): off-diagonal tiles from warps 0..5, diagonal entries from the pair owners
    if (!LOADA && warp < 6) {
#pragma unroll
        for (int j = 0; j < 2; j++) {
            int r = 16 * offI + (lane >> 2), c = 16 * offJ + 8 * j + (lane & 3) * 2;
            *reinterpret_cast<uint32_t*>(&As[r * 72 + c]) = gla_pack_bf16(scale * oacc[j][0], scale * oacc[j][1]);
            *reinterpret_cast<uint32_t*>(&As[(r + 8) * 72 + c]) = gla_pack_bf16(scale * oacc[j][2], scale * oacc[j][3]);
        }
    }
#pragma unroll
    for (int r = 0; r < 3; r++)
        if (!LOADA && tid + r * GLA_CO_THREADS < 544) As[pi[r] * 72 + pj[r]] = f2bf(scale * dacc[r]);

    // phase B: 64 output columns at a time; warp w: rows 16*(w&3), cols 32*(w>>2) of the slab
    const int m0 = 16 * (warp & 3), nb = 32 * (warp >> 2), mt = warp & 3;
    for (int sl = 0; sl < V / 64; sl++) {
        const int c0 = sl * 64;
        const bf16* Ys = (const bf16*)(U + (sl % NSB) * stB);
        const bf16* Xs = Ys + K * 72;
        if (NSB == 2 && sl + 1 < V / 64) { issueB(c0 + 64, (sl + 1) & 1); cp_async_wait<1>(); } else cp_async_wait<0>();
        __syncthreads();
        if (!BWD && Ag && sl == 0)   // save A for the backward
            for (int v = tid; v < 64 * 8; v += GLA_CO_THREADS)
                *reinterpret_cast<int4*>(Ag + (v >> 3) * 64 + (v & 7) * 8) = *reinterpret_cast<const int4*>(&As[(v >> 3) * 72 + (v & 7) * 8]);
        float acc[4][4];
#pragma unroll
        for (int j = 0; j < 4; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
        for (int ks = 0; ks < K / 16; ks++) {
            unsigned af[4], b0[4], b1[4];
            gla_frag_a(af, Rs, ldr, m0, ks * 16);
            gla_frag_b_kn(b0, Ys, 72, nb, ks * 16);
            gla_frag_b_kn(b1, Ys, 72, nb + 16, ks * 16);
            gla_mma(acc[0], af, b0[0], b0[1]);
            gla_mma(acc[1], af, b0[2], b0[3]);
            gla_mma(acc[2], af, b1[0], b1[1]);
            gla_mma(acc[3], af, b1[2], b1[3]);
        }
        // A is lower triangular: rows of block mt need column blocks <= mt (A^T: >= mt)
#pragma unroll
        for (int ks = 0; ks < 4; ks++) {
            if (BWD ? ks < mt : ks > mt) continue;
            unsigned af[4], b0[4], b1[4];
            if (BWD) gla_frag_a_t(af, As, 72, m0, ks * 16); else gla_frag_a(af, As, 72, m0, ks * 16);
            gla_frag_b_kn(b0, Xs, 72, nb, ks * 16);
            gla_frag_b_kn(b1, Xs, 72, nb + 16, ks * 16);
            gla_mma(acc[0], af, b0[0], b0[1]);
            gla_mma(acc[1], af, b0[2], b0[3]);
            gla_mma(acc[2], af, b1[0], b1[1]);
            gla_mma(acc[3], af, b1[2], b1[3]);
        }
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int r = m0 + (lane >> 2), c = c0 + nb + 8 * j + (lane & 3) * 2;
            bf16* o0 = out + (row0 + r) * ld_out + (size_t)h * V + c;
            if (r < valid) *reinterpret_cast<uint32_t*>(o0) = gla_pack_bf16(acc[j][0], acc[j][1]);
            if (r + 8 < valid) *reinterpret_cast<uint32_t*>(o0 + 8 * (size_t)ld_out) = gla_pack_bf16(acc[j][2], acc[j][3]);
        }
        __syncthreads();
        if (NSB == 1 && sl + 1 < V / 64) issueB(c0 + 64, 0);   // one stage: the next slab loads once this one is read
    }
}

/* ================================================================================================== */
/* Kernel 3: dq, dk, dg for one (K-slab of BK columns, chunk, b*h); 8 warps.                             */
/*  V loop (64 cols at a time): dA = do v^T, dq_inter = do H_n^T, dk_inter = v dHe_n^T, rowsum H dHe.    */
/*  Then dq = intra + scale e^{Gc} dq_inter; dk = intra + e^{Gc_last - Gc} dk_inter, the intra parts by  */
/*  sub-chunks (off-diagonal: mma with reference rows; diagonal: elementwise fp32); finally             */
/*  dg_t = revcumsum_chunk(q dq - k dk)_t + e^{Gc_last} sum_c H dHe + sum_t k dk_inter.                 */
/* ================================================================================================== */
#define GLA_DQK_THREADS 256
template <int BK>
struct GlaDqkSmem {
    static constexpr int LG = BK + 4, LB = BK + 8;
    // persistent
    float Gc[64 * LG];
    float gl[BK], hdh[GLA_DQK_THREADS], kdk[4 * BK], xt[4 * BK];
    bf16 qS[64 * LB], kS[64 * LB];
    bf16 Ks[96 * LB];   // k_j e^{Gc[16I] - Gc_j} for j < 16I (I = 1,2,3 at row offsets 0,16,48)
    bf16 Qs[96 * LB];   // q_i e^{Gc_i - Gc[16J+15]} for i >= 16(J+1) (J = 0,1,2 at row offsets 0,48,80)
    union {
        struct { bf16 dO[64 * 40], Vs[64 * 40], Hs[BK * 40], dH[BK * 40]; } v[2];   // V loop: 32-col slabs, 2 buffers
        struct { float dq[64 * LG], dk[64 * LG], dAd[4 * 16 * 17]; bf16 dAb[64 * 72]; } p;   // after
    } u;
};
__device__ __forceinline__ int gla_qs_off(int J) { return J == 0 ? 0 : (J == 1 ? 48 : 80); }

template <int BK>
__global__ void __launch_bounds__(GLA_DQK_THREADS, 2)
gla_dqk_kernel(bf16* __restrict__ dq, bf16* __restrict__ dk, int ld_dqk, float* __restrict__ dg,
               const bf16* __restrict__ d_o, const bf16* __restrict__ q, const bf16* __restrict__ k, int ld_qk,
               const bf16* __restrict__ v, int ld_v, const float* __restrict__ g, const bf16* __restrict__ hs,
               const bf16* __restrict__ dhs, int T, int H, int K, int V, float scale) {
    pdl_wait_prior();
    typedef GlaDqkSmem<BK> S;
    constexpr int LG = S::LG, LB = S::LB, NCT = BK / 16;   // NCT: 16-col tiles of the slab
    extern __shared__ __align__(16) unsigned char gla_smem[];
    S& sm = *reinterpret_cast<S*>(gla_smem);
    const int NT = gla_num_chunks(T);
    const int a0 = blockIdx.x * BK, n = blockIdx.y, bh = blockIdx.z, b = bh / H, h = bh % H, t0 = n * GLA_CT;
    const size_t row0 = (size_t)b * T + t0;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;

    const int valid = min(GLA_CT, T - t0);
    const bf16* Hb = hs + ((size_t)(bh * NT + n) * K + a0) * V;
    const bf16* dHb = dhs + ((size_t)(bh * NT + n) * K + a0) * V;
    // One 32-column value slab: d_o, v (64 rows), H_n, dHe_n (BK rows), 64 bytes a row: each thread copies the
    // same 16 bytes (row vr, columns vc..vc+7) of every slab, so its source rows are found once, not per slab.
    static_assert(GLA_DQK_THREADS == 64 * 4, "issueV: one 16-byte piece of each 64-row slab per thread");
    const int vr = tid >> 2, vc = (tid & 3) * 8;
    const bool vok = vr < valid;   // rows past T: zero-filled from a valid address (row 0)
    const bf16* gdo = d_o + (row0 + (vok ? vr : 0)) * ((size_t)H * V) + (size_t)h * V + vc;
    const bf16* gv = v + (row0 + (vok ? vr : 0)) * ld_v + (size_t)h * V + vc;
    const size_t hoff = (size_t)vr * V + vc;
    auto issueV = [&](int c0, int buf) {
        cp_async16(sm.u.v[buf].dO + vr * 40 + vc, gdo + c0, vok);
        cp_async16(sm.u.v[buf].Vs + vr * 40 + vc, gv + c0, vok);
        if (vr < BK) {
            cp_async16(sm.u.v[buf].Hs + vr * 40 + vc, Hb + hoff + c0, true);
            cp_async16(sm.u.v[buf].dH + vr * 40 + vc, dHb + hoff + c0, true);
        }
        cp_async_commit();
    };

    // ---- stage 0: gate cumsum, q, k, and the scaled sub-chunk operands (first value slab in flight) ----
    gla_cp_tile<GLA_DQK_THREADS, BK * 2>(sm.qS, LB * 2, q + row0 * ld_qk + (size_t)h * K + a0, (size_t)ld_qk * 2, 64, valid);
    gla_cp_tile<GLA_DQK_THREADS, BK * 2>(sm.kS, LB * 2, k + row0 * ld_qk + (size_t)h * K + a0, (size_t)ld_qk * 2, 64, valid);
    gla_cp_tile<GLA_DQK_THREADS, BK * 4>(sm.Gc, LG * 4, g + (row0 * H + h) * K + a0, (size_t)H * K * 4, 64, valid);
    cp_async_commit();
    issueV(0, 0);
    cp_async_wait<1>();
    __syncthreads();
    gla_cumsum_smem<BK, GLA_DQK_THREADS>(sm.Gc, LG, sm.gl, reinterpret_cast<float*>(sm.Qs));   // Qs is free until below
    {   // thread: column a, rows tr + RS*i; with the loop unrolled each row's block I is a constant, so the
        // conditions and row offsets below fold away (the indexing was half of this loop's instructions)
        constexpr int RS = GLA_DQK_THREADS / BK;
        const int a = tid % BK, tr = tid / BK;
        float gF[4], gL[3];   // Gc at each block's first row (the Ks reference) and last row (the Qs one)
#pragma unroll
        for (int J = 0; J < 4; J++) gF[J] = sm.Gc[(16 * J) * LG + a];
#pragma unroll
        for (int J = 0; J < 3; J++) gL[J] = sm.Gc[(16 * J + 15) * LG + a];
#pragma unroll
        for (int i = 0; i < 64 / RS; i++) {
            const int t = tr + RS * i, I = RS * i / 16;
            float gt = sm.Gc[t * LG + a], qv = bf2f(sm.qS[t * LB + a]), kv = bf2f(sm.kS[t * LB + a]);
#pragma unroll
            for (int J = 1; J < 4; J++)
                if (I < J) sm.Ks[(gla_ks_off(J) + t) * LB + a] = f2bf(kv * exp_ftz(gF[J] - gt));
#pragma unroll
            for (int J = 0; J < 3; J++)
                if (I > J) sm.Qs[(gla_qs_off(J) + t - 16 * (J + 1)) * LB + a] = f2bf(qv * exp_ftz(gt - gL[J]));
        }
    }

    // ---- V loop: warp w owns rows m0 = 16*(w&3); dA cols 32*(w>>2) (4 tiles), dq/dk_inter cols (w>>2)*BK/2 ----
    const int m0 = 16 * (warp & 3), half = warp >> 2;
    constexpr int NQ = BK / 16;   // 8-col tiles per warp for dq/dk (BK/2 cols)
    float aA[4][4], aQ[NQ][4], aK[NQ][4];
#pragma unroll
    for (int j = 0; j < 4; j++) aA[j][0] = aA[j][1] = aA[j][2] = aA[j][3] = 0.f;
#pragma unroll
    for (int j = 0; j < NQ; j++) {
        aQ[j][0] = aQ[j][1] = aQ[j][2] = aQ[j][3] = 0.f;
        aK[j][0] = aK[j][1] = aK[j][2] = aK[j][3] = 0.f;
    }
    float hdh = 0.f;   // thread (row a = tid % BK, part tid / BK) of sum_c H dHe
    for (int sl = 0; sl < V / 32; sl++) {
        if (sl + 1 < V / 32) { issueV((sl + 1) * 32, (sl + 1) & 1); cp_async_wait<1>(); } else cp_async_wait<0>();
        __syncthreads();
        const bf16* dO = sm.u.v[sl & 1].dO;
        const bf16* Vs = sm.u.v[sl & 1].Vs;
        const bf16* Hs = sm.u.v[sl & 1].Hs;
        const bf16* dH = sm.u.v[sl & 1].dH;
        {
            constexpr int PARTS = GLA_DQK_THREADS / BK, CPP = 32 / PARTS;
            int r = tid % BK, part = tid / BK;
            const __nv_bfloat162* h2 = reinterpret_cast<const __nv_bfloat162*>(Hs + r * 40 + part * CPP);
            const __nv_bfloat162* d2 = reinterpret_cast<const __nv_bfloat162*>(dH + r * 40 + part * CPP);
#pragma unroll
            for (int c = 0; c < CPP / 2; c++) {   // pairs: half the shared loads, the same sums in the same order
                __nv_bfloat162 x = h2[c], y = d2[c];
                hdh += __low2float(x) * __low2float(y);
                hdh += __high2float(x) * __high2float(y);
            }
        }
#pragma unroll
        for (int ks = 0; ks < 2; ks++) {
            unsigned fo[4], fv[4], bfr[4];
            gla_frag_a(fo, dO, 40, m0, ks * 16);
            gla_frag_a(fv, Vs, 40, m0, ks * 16);
#pragma unroll
            for (int p = 0; p < 2; p++) {   // dA[i][j] += do_i . v_j
                gla_frag_b_nk(bfr, Vs, 40, 32 * half + 16 * p, ks * 16);
                gla_mma(aA[2 * p], fo, bfr[0], bfr[1]);
                gla_mma(aA[2 * p + 1], fo, bfr[2], bfr[3]);
            }
#pragma unroll
            for (int p = 0; p < NQ / 2; p++) {
                gla_frag_b_nk(bfr, Hs, 40, half * (BK / 2) + 16 * p, ks * 16);
                gla_mma(aQ[2 * p], fo, bfr[0], bfr[1]);
                gla_mma(aQ[2 * p + 1], fo, bfr[2], bfr[3]);
                gla_frag_b_nk(bfr, dH, 40, half * (BK / 2) + 16 * p, ks * 16);
                gla_mma(aK[2 * p], fv, bfr[0], bfr[1]);
                gla_mma(aK[2 * p + 1], fv, bfr[2], bfr[3]);
            }
        }
        __syncthreads();
    }   // the V-loop slabs are dead from here; the union is reused

    // ---- stage 2: dA (scaled, masked) as bf16 (off-diagonal matmuls) and fp32 diagonal tiles;
    //      inter parts of dq, dk with their gate factors; k * dk_inter column partial sums ----
    sm.hdh[(tid / BK) * BK + tid % BK] = hdh;
    {
        const int r0 = m0 + (lane >> 2);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int c = 32 * half + 8 * j + (lane & 3) * 2;
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                int r = r0 + 8 * hh;
                float x0 = (c <= r) ? scale * aA[j][2 * hh] : 0.f, x1 = (c + 1 <= r) ? scale * aA[j][2 * hh + 1] : 0.f;
                *reinterpret_cast<uint32_t*>(&sm.u.p.dAb[r * 72 + c]) = gla_pack_bf16(x0, x1);
                if ((r >> 4) == (c >> 4)) {
                    int I = r >> 4;
                    sm.u.p.dAd[(I * 16 + (r & 15)) * 17 + (c & 15)] = x0;
                    sm.u.p.dAd[(I * 16 + (r & 15)) * 17 + (c & 15) + 1] = x1;
                }
            }
        }
        float kcol[NQ][2];
#pragma unroll
        for (int j = 0; j < NQ; j++) {
            int c = half * (BK / 2) + 8 * j + (lane & 3) * 2;
            kcol[j][0] = kcol[j][1] = 0.f;
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                int r = r0 + 8 * hh;
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    float gt = sm.Gc[r * LG + c + e];
                    sm.u.p.dq[r * LG + c + e] = scale * exp_ftz(gt) * aQ[j][2 * hh + e];
                    float dke = exp_ftz(sm.gl[c + e] - gt) * aK[j][2 * hh + e];
                    sm.u.p.dk[r * LG + c + e] = dke;
                    kcol[j][e] += bf2f(sm.kS[r * LB + c + e]) * dke;
                }
            }
        }
        // sum the 16 rows of this warp (lanes with equal lane&3) in a fixed order
#pragma unroll
        for (int j = 0; j < NQ; j++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                float s = kcol[j][e];
                s += __shfl_xor_sync(0xffffffffu, s, 4);
                s += __shfl_xor_sync(0xffffffffu, s, 8);
                s += __shfl_xor_sync(0xffffffffu, s, 16);
                if (lane < 4) sm.kdk[(warp & 3) * BK + half * (BK / 2) + 8 * j + lane * 2 + e] = s;
            }
    }
    __syncthreads();

    // ---- stage 3: off-diagonal intra parts by matmul, one (sub-block, 16-col tile) item per warp step ----
    for (int it = warp; it < 6 * NCT; it += 8) {
        const bool isq = it < 3 * NCT;
        const int blk = (isq ? it : it - 3 * NCT) / NCT, ct = (isq ? it : it - 3 * NCT) % NCT;
        float acc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
        if (isq) {   // dq rows of block I = blk+1 from key blocks J < I
            const int I = blk + 1;
            for (int J = 0; J < I; J++) {
                unsigned af[4], bfr[4];
                gla_frag_a(af, sm.u.p.dAb, 72, 16 * I, 16 * J);
                gla_frag_b_kn(bfr, sm.Ks + gla_ks_off(I) * LB, LB, 16 * ct, 16 * J);
                gla_mma(acc[0], af, bfr[0], bfr[1]);
                gla_mma(acc[1], af, bfr[2], bfr[3]);
            }
#pragma unroll
            for (int j = 0; j < 2; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int r = 16 * I + (lane >> 2) + (e >> 1) * 8, c = 16 * ct + 8 * j + (lane & 3) * 2 + (e & 1);
                    sm.u.p.dq[r * LG + c] += exp_ftz(sm.Gc[r * LG + c] - sm.Gc[(16 * I) * LG + c]) * acc[j][e];
                }
        } else {     // dk rows of block J = blk from query blocks I > J
            const int J = blk;
            for (int I = J + 1; I < 4; I++) {
                unsigned af[4], bfr[4];
                gla_frag_a_t(af, sm.u.p.dAb, 72, 16 * J, 16 * I);
                gla_frag_b_kn(bfr, sm.Qs + gla_qs_off(J) * LB, LB, 16 * ct, 16 * (I - J - 1));
                gla_mma(acc[0], af, bfr[0], bfr[1]);
                gla_mma(acc[1], af, bfr[2], bfr[3]);
            }
#pragma unroll
            for (int j = 0; j < 2; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int r = 16 * J + (lane >> 2) + (e >> 1) * 8, c = 16 * ct + 8 * j + (lane & 3) * 2 + (e & 1);
                    sm.u.p.dk[r * LG + c] += exp_ftz(sm.Gc[(16 * J + 15) * LG + c] - sm.Gc[r * LG + c]) * acc[j][e];
                }
        }
    }
    __syncthreads();

    // ---- stage 4: diagonal tiles elementwise (thread per (I, column)), outputs, gate gradient.
    //      dq_i += sum_{j<=i} dA_ij k_j e^{Gc_i-Gc_j}, dk_j += sum_{i>=j} dA_ij q_i e^{Gc_i-Gc_j}; with
    //      e^{Gc_i-Gc_j} = E_i F_j (E_i = e^{Gc_i-Gc_0}, F_j = e^{Gc_0-Gc_j}) while the block's gate range is
    //      below 80, else exact per-pair exponents. ----
    const bool active = tid < 4 * BK;
    const int I = tid / BK, a = tid % BK;
    float xr[16];
    if (active) {
        float gc[16], w[16];   // w: k_j F_j (or k_j) in the dq pass, then q_i E_i (or q_i) in the dk pass
#pragma unroll
        for (int i = 0; i < 16; i++) gc[i] = sm.Gc[(16 * I + i) * LG + a];
        const bool fast = gc[0] - gc[15] < 80.f;
        const float* dAd = sm.u.p.dAd + I * 16 * 17;
        const int nv = valid - 16 * I;   // rows of this block inside the sequence
        bf16* dqp = dq + (row0 + 16 * I) * ld_dqk + (size_t)h * K + a0 + a;   // row i of this block: + i * ld_dqk
        bf16* dkp = dk + (row0 + 16 * I) * ld_dqk + (size_t)h * K + a0 + a;
        const bf16* kc = sm.kS + 16 * I * LB + a;   // column a of this block's k, q, Gc (exact path)
        const bf16* qc = sm.qS + 16 * I * LB + a;
        const float* gcc = sm.Gc + 16 * I * LG + a;
        // dq rows
#pragma unroll
        for (int j = 0; j < 16; j++) w[j] = fast ? bf2f(kc[j * LB]) * exp_ftz(gc[0] - gc[j]) : 0.f;
#pragma unroll
        for (int i = 0; i < 16; i++) {
            const int t = 16 * I + i;
            float sq = 0.f;
            if (fast) {
#pragma unroll
                for (int j = 0; j <= i; j++) sq += dAd[i * 17 + j] * w[j];
                sq *= exp_ftz(gc[i] - gc[0]);
            } else {
#pragma unroll 1
                for (int j = 0; j <= i; j++) sq += dAd[i * 17 + j] * bf2f(kc[j * LB]) * exp_ftz(gc[i] - gcc[j * LG]);
            }
            const float dqv = sm.u.p.dq[t * LG + a] + sq;
            xr[i] = bf2f(sm.qS[t * LB + a]) * dqv;
            if (i < nv) *dqp = f2bf(dqv);
            dqp += ld_dqk;
        }
        // dk rows
#pragma unroll
        for (int i = 0; i < 16; i++) w[i] = fast ? bf2f(qc[i * LB]) * exp_ftz(gc[i] - gc[0]) : 0.f;
#pragma unroll
        for (int j = 0; j < 16; j++) {
            const int t = 16 * I + j;
            float sk = 0.f;
            if (fast) {
#pragma unroll
                for (int i = j; i < 16; i++) sk += dAd[i * 17 + j] * w[i];
                sk *= exp_ftz(gc[0] - gc[j]);
            } else {
#pragma unroll 1
                for (int i = j; i < 16; i++) sk += dAd[i * 17 + j] * bf2f(qc[i * LB]) * exp_ftz(gcc[i * LG] - gc[j]);
            }
            const float dkv = sm.u.p.dk[t * LG + a] + sk;
            xr[j] -= bf2f(sm.kS[t * LB + a]) * dkv;
            if (j < nv) *dkp = f2bf(dkv);
            dkp += ld_dqk;
        }
        float run = 0.f;   // reverse cumsum of x = q dq - k dk inside this 16-row block
#pragma unroll
        for (int i = 15; i >= 0; i--) { run += xr[i]; xr[i] = run; }
        sm.xt[I * BK + a] = run;
    }
    __syncthreads();
    if (active) {
        float hd = 0.f, kd = 0.f;
        for (int p = 0; p < GLA_DQK_THREADS / BK; p++) hd += sm.hdh[p * BK + a];
        for (int p = 0; p < 4; p++) kd += sm.kdk[p * BK + a];
        float off = exp_ftz(sm.gl[a]) * hd + kd;
        for (int p = I + 1; p < 4; p++) off += sm.xt[p * BK + a];
        float* dgp = dg + ((row0 + 16 * I) * H + h) * K + a0 + a;
        const int nv = valid - 16 * I;
#pragma unroll
        for (int i = 0; i < 16; i++, dgp += (size_t)H * K)
            if (i < nv) *dgp = xr[i] + off;
    }
}

/* ================================================================================================== */
/* Host API                                                                                            */
/* ================================================================================================== */

/* bytes kept from forward to backward, per layer: the chunk-start states H_n (bf16 [B,H,NT,K,V]) and the
 * intra-chunk matrices A (bf16 [B,H,NT,64,64]). With them the backward skips one state pass and the
 * recomputation of A. Passing saved = NULL to both calls is also valid: the backward then recomputes both. */
static inline size_t gla_saved_bytes(int B, int T, int H, int K, int V) {
    return (size_t)B * H * gla_num_chunks(T) * ((size_t)K * V + 64 * 64) * sizeof(bf16);
}
/* scratch shared by all layers: H_n (when not saved) and the state gradients dHe_n, bf16 [B,H,NT,K,V] each */
static inline size_t gla_workspace_bytes(int B, int T, int H, int K, int V) {
    return 2 * (size_t)B * H * gla_num_chunks(T) * K * V * sizeof(bf16);
}

template <bool REV, int BK, int VC>
static inline void gla_state_pass_launch(bf16* hs, const bf16* x, int ld_x, const bf16* y, int ld_y, const float* g,
                                         int B, int T, int H, int K, int V, float scale, cudaStream_t s) {
    const size_t smem = sizeof(GlaSpSmem<BK, VC>);
    smem_opt_in(gla_state_pass_kernel<REV, BK, VC>, smem);
    launch_kernel(gla_state_pass_kernel<REV, BK, VC>, dim3(V / VC, K / BK, B * H), 32 * (BK / 16) * (VC / 64), smem, s,
                  hs, x, ld_x, y, ld_y, g, T, H, K, V, scale);
}
/* State columns per CTA: 256 (16 warps, one CTA per SM) reads each chunk's g and x tiles once per 256 columns
 * instead of twice (H200, gla-340m layer: state pass 0.131 -> 0.115 ms, reverse 0.127 -> 0.119; the same bits, the
 * cumsum keeps its 256-thread order), but halves the CTAs, so it is taken only where V allows and its grid still
 * covers half the SMs (gla-340m at B=4 T=8192, 32 CTAs: 172.3 / 172.3 -> 174.6 / 175.1 ms a step with it).
 * g_gla_sp_vc: 0 = that rule, 128 or 256 = that tile wherever K and V allow (dev/gla_chunk_bwd's check compares the
 * two bit for bit); GLA_SP_VC=128|256 in the environment sets it at first use. */
static int g_gla_sp_vc = -1;
static inline bool gla_sp_wide(int B, int H, int K, int V) {
    static int sms = 0;
    if (g_gla_sp_vc < 0) {
        const char* e = getenv("GLA_SP_VC");
        g_gla_sp_vc = e ? atoi(e) : 0;
    }
    if (!sms) {
        int dev = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    }
    if (V % 256 || K % 64 || g_gla_sp_vc == 128) return false;
    return g_gla_sp_vc == 256 || 2L * (V / 256) * (K / 64) * B * H >= sms;
}
/* hs [B,H,NT,K,V] bf16: REV=0 chunk-start states H_n from (x=k, y=v); REV=1 dHe_n from (x=q, y=d_o) */
static inline void gla_state_pass(bf16* hs, bool rev, const bf16* x, int ld_x, const bf16* y, int ld_y, const float* g,
                                  int B, int T, int H, int K, int V, float scale, cudaStream_t s) {
    const bool k64 = K % 64 == 0, v128 = V % 128 == 0, v256 = gla_sp_wide(B, H, K, V);
#define GLA_SP_CASE(R, BK, VC) gla_state_pass_launch<R, BK, VC>(hs, x, ld_x, y, ld_y, g, B, T, H, K, V, scale, s)
    if (rev) {
        if (k64 && v256) GLA_SP_CASE(true, 64, 256); else
        if (k64 && v128) GLA_SP_CASE(true, 64, 128); else if (k64) GLA_SP_CASE(true, 64, 64);
        else if (v128) GLA_SP_CASE(true, 32, 128); else GLA_SP_CASE(true, 32, 64);
    } else {
        if (k64 && v256) GLA_SP_CASE(false, 64, 256); else
        if (k64 && v128) GLA_SP_CASE(false, 64, 128); else if (k64) GLA_SP_CASE(false, 64, 64);
        else if (v128) GLA_SP_CASE(false, 32, 128); else GLA_SP_CASE(false, 32, 64);
    }
#undef GLA_SP_CASE
}

template <bool BWD, bool LOADA>
static inline void gla_chunk_out_launch(bf16* out, int ld_out, const bf16* q, const bf16* k, int ld_qk, const bf16* xv,
                                        int ld_xv, const float* g, const bf16* hs, bf16* Aio, int B, int T, int H, int K,
                                        int V, float scale, cudaStream_t s) {
    const size_t smem = gla_chunk_out_smem(K, LOADA);
    smem_opt_in(gla_chunk_out_kernel<BWD, LOADA>, smem);
    launch_kernel(gla_chunk_out_kernel<BWD, LOADA>, dim3(gla_num_chunks(T), B * H), GLA_CO_THREADS, smem, s, out,
                  ld_out, q, k, ld_qk, xv, ld_xv, g, hs, Aio, T, H, K, V, scale);
}

/* o [B,T,H,V] bf16 = GLA(q, k, v, g). saved: gla_saved_bytes (kept for the backward) or NULL;
 * ws: gla_workspace_bytes (only H_n's half is used, and only when saved is NULL) */
static inline void gla_chunk_forward(bf16* o, void* saved, const bf16* q, const bf16* k, int ld_qk,
                                     const bf16* v, int ld_v, const float* g, int B, int T, int H, int K, int V,
                                     void* ws, cudaStream_t s) {
    gla_check_dims(B, T, H, K, V, ld_qk, ld_v);
    gla_check_ptr(q, "q"); gla_check_ptr(k, "k"); gla_check_ptr(v, "v"); gla_check_ptr(o, "o");
    gla_check_ptr(saved ? saved : ws, "saved/ws");
    const float scale = 1.0f / sqrtf((float)K);
    const size_t nst = (size_t)B * H * gla_num_chunks(T) * K * V;
    bf16* hs = saved ? (bf16*)saved : (bf16*)ws;
    bf16* Asv = saved ? (bf16*)saved + nst : NULL;
    gla_state_pass(hs, false, k, ld_qk, v, ld_v, g, B, T, H, K, V, scale, s);
    gla_chunk_out_launch<false, false>(o, H * V, q, k, ld_qk, v, ld_v, g, hs, Asv, B, T, H, K, V, scale, s);
}

/* dq, dk (stride ld_dqk), dv (stride ld_dv) bf16 and dg fp32 [B,T,H,K] are WRITTEN (not accumulated).
 * saved: what gla_chunk_forward stored there for the same inputs, or NULL (recompute). */
static inline void gla_chunk_backward(bf16* dq, bf16* dk, int ld_dqk, bf16* dv, int ld_dv, float* dg,
                                      const bf16* d_o, const void* saved, const bf16* q, const bf16* k, int ld_qk,
                                      const bf16* v, int ld_v, const float* g, int B, int T, int H, int K, int V,
                                      void* ws, cudaStream_t s) {
    gla_check_dims(B, T, H, K, V, ld_qk, ld_v);
    if (ld_dqk % 8 || ld_dv % 8 || ld_dqk < H * K || ld_dv < H * V) die("gla_chunk_backward: bad ld_dqk=%d / ld_dv=%d", ld_dqk, ld_dv);
    gla_check_ptr(q, "q"); gla_check_ptr(k, "k"); gla_check_ptr(v, "v"); gla_check_ptr(d_o, "d_o");
    gla_check_ptr(dv, "dv"); gla_check_ptr(ws, "ws"); gla_check_ptr(saved, "saved");
    const float scale = 1.0f / sqrtf((float)K);
    const int NT = gla_num_chunks(T);
    const size_t nst = (size_t)B * H * NT * K * V;
    bf16* dhs = (bf16*)ws + nst;
    const bf16* hs;
    if (saved) {
        hs = (const bf16*)saved;
    } else {
        gla_state_pass((bf16*)ws, false, k, ld_qk, v, ld_v, g, B, T, H, K, V, scale, s);
        hs = (const bf16*)ws;
    }
    gla_state_pass(dhs, true, q, ld_qk, d_o, H * V, g, B, T, H, K, V, scale, s);
    if (saved)
        gla_chunk_out_launch<true, true>(dv, ld_dv, q, k, ld_qk, d_o, H * V, g, dhs, (bf16*)saved + nst, B, T, H, K, V, scale, s);
    else
        gla_chunk_out_launch<true, false>(dv, ld_dv, q, k, ld_qk, d_o, H * V, g, dhs, NULL, B, T, H, K, V, scale, s);
    if (K % 64 == 0) {
        size_t sm = sizeof(GlaDqkSmem<64>);
        smem_opt_in(gla_dqk_kernel<64>, sm);
        launch_kernel(gla_dqk_kernel<64>, dim3(K / 64, NT, B * H), GLA_DQK_THREADS, sm, s, dq, dk, ld_dqk, dg, d_o, q,
                      k, ld_qk, v, ld_v, g, hs, dhs, T, H, K, V, scale);
    } else {
        size_t sm = sizeof(GlaDqkSmem<32>);
        smem_opt_in(gla_dqk_kernel<32>, sm);
        launch_kernel(gla_dqk_kernel<32>, dim3(K / 32, NT, B * H), GLA_DQK_THREADS, sm, s, dq, dk, ld_dqk, dg, d_o, q,
                      k, ld_qk, v, ld_v, g, hs, dhs, T, H, K, V, scale);
    }
}

/* ================================================================================================== */
/* Recurrent single-token step (sampling): S [B,H,K,V] fp32 updated in place,                           */
/* S = diag(e^g) S + k^T v, o = scale q S. q,k rows [B,H,K] with row (batch) stride ld_qk, v stride    */
/* ld_v, g [B,H,K] contiguous, o [B,H,V]. One CTA per (b,h), one thread per value column.             */
/* ================================================================================================== */
__global__ void gla_recurrent_step_kernel(bf16* o, float* S, const bf16* q, const bf16* k, int ld_qk, const bf16* v,
                                          int ld_v, const float* g, int H, int K, int V, float scale) {
    pdl_wait_prior();
    extern __shared__ float rs_sm[];   // q [K], k [K], decay [K]
    const int bh = blockIdx.x, b = bh / H, h = bh % H;
    for (int a = threadIdx.x; a < K; a += blockDim.x) {
        rs_sm[a] = bf2f(q[(size_t)b * ld_qk + (size_t)h * K + a]);
        rs_sm[K + a] = bf2f(k[(size_t)b * ld_qk + (size_t)h * K + a]);
        rs_sm[2 * K + a] = expf(g[(size_t)bh * K + a]);
    }
    __syncthreads();
    float* Sb = S + (size_t)bh * K * V;
    for (int c = threadIdx.x; c < V; c += blockDim.x) {
        float vc = bf2f(v[(size_t)b * ld_v + (size_t)h * V + c]), acc = 0.f;
        for (int a = 0; a < K; a++) {
            float sv = Sb[(size_t)a * V + c] * rs_sm[2 * K + a] + rs_sm[K + a] * vc;
            Sb[(size_t)a * V + c] = sv;
            acc += rs_sm[a] * sv;
        }
        o[(size_t)bh * V + c] = f2bf(scale * acc);
    }
}
static inline void gla_recurrent_step(bf16* o, float* S, const bf16* q, const bf16* k, int ld_qk, const bf16* v, int ld_v,
                                      const float* g, int B, int H, int K, int V, cudaStream_t s) {
    if (B < 1 || H < 1 || K < 1 || V < 1) die("gla_recurrent_step: bad shape B=%d H=%d K=%d V=%d", B, H, K, V);
    launch_kernel(gla_recurrent_step_kernel, B * H, 128, 3 * K * sizeof(float), s, o, S, q, k, ld_qk, v, ld_v, g, H, K,
                  V, 1.0f / sqrtf((float)K));
}

#endif /* COMMON_GLA_CHUNK_CUH */
