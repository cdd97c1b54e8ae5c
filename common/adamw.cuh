/*
 * adamw.cuh — the optimizer step and what it needs from the gradients: the global gradient norm
 * (deterministic), the clip factor, and a non-finite check, all kept on the device so a training step
 * never waits for the host.
 *
 * The step, per element (fp32 master p, moments m, v; the bf16 copy is what matmuls read):
 *   g = grad * scale          scale = *grad_scale_dev (the clip factor, read on the device)
 *   m = b1 m + (1-b1) g ;  v = b2 v + (1-b2) g^2
 *   p = p - lr * ( (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + wd * p )      (decoupled weight decay)
 *   copy = stochastic_round_bf16(p)  with noise hash(index, seed, t): same seed => same bits
 * Skipping a bad step without a host sync: clip_factor writes a NaN scale when the norm is not finite,
 * and adamw_update leaves every buffer untouched when the scale it reads is not finite.
 *
 * Global norm: global_norm_squared sums g^2 over a fixed grid (GN_BLOCKS blocks, each a fixed slice
 * pattern), each block writes one partial to scratch, and one block adds the partials in a fixed
 * order (in double). Several separate ranges: call global_norm_squared_acc with accumulate = 1 for the
 * 2nd.. range (it adds into *out_dev, still deterministic: same call sequence, same bits).
 */
#ifndef COMMON_ADAMW_CUH
#define COMMON_ADAMW_CUH

#include <math.h>
#include <stdint.h>
#include "errors.h"
#include "launch.cuh"
#include "bf16.cuh"

#define ADAMW_THREADS 512
#define GN_BLOCKS 1024
#define GN_THREADS 512

/* ---------------- AdamW ---------------- */

struct AdamWArgs {
    float lr, beta1, beta2, eps, wd, bc1, bc2; /* bc = 1 - beta^t */
    uint32_t seed, t;
    uint64_t index0;   /* noise index of element 0 (a shard of a range continues the range's noise) */
};

__device__ inline void adamw_one_(float& p, float& m, float& v, bf16& copy, float g, const AdamWArgs& a, uint32_t key,
                                  size_t i) {
    m = a.beta1 * m + (1.0f - a.beta1) * g;
    v = a.beta2 * v + (1.0f - a.beta2) * g * g;
    float mhat = m / a.bc1, vhat = v / a.bc2;
    p = p - a.lr * (mhat / (sqrtf(vhat) + a.eps) + a.wd * p);
    copy = stochastic_round_bf16(p, hash_u32((uint32_t)i, key ^ (uint32_t)(i >> 32) * 0x85ebca6bu));
}

/* 4 consecutive elements with 16-byte accesses (all pointers 16-byte aligned); noise indices idx .. idx+3 */
__device__ __forceinline__ void adamw_four_(float* master, bf16* copy, const float* grad, float* m, float* v, float scale,
                                            const AdamWArgs& a, uint32_t key, size_t idx) {
    f128 g = load128cs(grad), mm = load128cs(m), vv = load128cs(v), p = load128cs(master);
    bf16 c[4];
    for (int k = 0; k < 4; k++) adamw_one_(p[k], mm[k], vv[k], c[k], g[k] * scale, a, key, idx + k);
    store128cs(m, mm);
    store128cs(v, vv);
    store128cs(master, p);
    *reinterpret_cast<uint2*>(copy) = *reinterpret_cast<const uint2*>(c);
}

/* 4 elements per thread with 16-byte loads: all pointers 16-byte aligned, n4 = n / 4 */
__global__ void __launch_bounds__(ADAMW_THREADS)
adamw_kernel_vec(float* master, bf16* copy, const float* grad, float* m, float* v, size_t n4,
                 const float* grad_scale_dev, AdamWArgs a) {
    pdl_wait_prior();
    const float scale = *grad_scale_dev;
    if (!isfinite(scale)) return;
    const uint32_t key = hash_u32(a.t, a.seed);
    for (size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x; q < n4; q += (size_t)gridDim.x * blockDim.x) {
        const size_t i = q * 4;
        adamw_four_(master + i, copy + i, grad + i, m + i, v + i, scale, a, key, a.index0 + i);
    }
}

/* one element per thread: any alignment; also the tail of the vector kernel (elements [start, n)) */
__global__ void __launch_bounds__(ADAMW_THREADS)
adamw_kernel_scalar(float* master, bf16* copy, const float* grad, float* m, float* v, size_t start, size_t n,
                    const float* grad_scale_dev, AdamWArgs a) {
    pdl_wait_prior();
    const float scale = *grad_scale_dev;
    if (!isfinite(scale)) return;
    const uint32_t key = hash_u32(a.t, a.seed);
    for (size_t i = start + (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        adamw_one_(master[i], m[i], v[i], copy[i], grad[i] * scale, a, key, a.index0 + i);
}

/* the step's arguments: bias corrections from t (>= 1), noise seed, index of the first element */
static inline AdamWArgs adamw_args_(float lr, float beta1, float beta2, float eps, float wd, int t, unsigned seed,
                                    size_t index0) {
    if (t < 1) die("adamw_update: step t must be >= 1 (got %d)", t);
    AdamWArgs a;
    a.lr = lr; a.beta1 = beta1; a.beta2 = beta2; a.eps = eps; a.wd = wd;
    a.bc1 = (float)(1.0 - pow((double)beta1, (double)t));
    a.bc2 = (float)(1.0 - pow((double)beta2, (double)t));
    a.seed = (uint32_t)seed;
    a.t = (uint32_t)t;
    a.index0 = index0;
    return a;
}

static inline int adamw_grid_(size_t work) {
    size_t b = (work + ADAMW_THREADS - 1) / ADAMW_THREADS;
    const size_t cap = 132 * 16; /* grid-stride beyond this: enough blocks to fill the card */
    return (int)(b < 1 ? 1 : (b > cap ? cap : b));
}

/* master, m, v [n] fp32 updated; copy [n] bf16 written; grad [n] fp32 read. t >= 1 is the step number
 * (bias correction) and enters the rounding noise; pass a different seed per call when a step updates
 * several ranges (the noise index is index0 + the position inside this call, so updating a range in
 * pieces, as ZeRO-1 shards do, gives the same bits as updating it whole). */
static inline void adamw_update_at(float* master, bf16* copy, const float* grad, float* m, float* v, size_t n, float lr,
                                   float beta1, float beta2, float eps, float wd, const float* grad_scale_dev, int t,
                                   unsigned seed, size_t index0, cudaStream_t s) {
    const AdamWArgs a = adamw_args_(lr, beta1, beta2, eps, wd, t, seed, index0);
    if (n == 0) return;
    uintptr_t al = (uintptr_t)master | (uintptr_t)grad | (uintptr_t)m | (uintptr_t)v | ((uintptr_t)copy << 1);
    size_t done = 0;
    if ((al & 15) == 0 && n >= 4) {
        size_t n4 = n / 4;
        launch_kernel(adamw_kernel_vec, adamw_grid_(n4), ADAMW_THREADS, 0, s, master, copy, grad, m, v, n4,
                      grad_scale_dev, a);
        done = n4 * 4;
    }
    if (done < n) {
        launch_kernel(adamw_kernel_scalar, adamw_grid_(n - done), ADAMW_THREADS, 0, s, master, copy, grad, m, v, done,
                      n, grad_scale_dev, a);
    }
}

static inline void adamw_update(float* master, bf16* copy, const float* grad, float* m, float* v, size_t n, float lr,
                                float beta1, float beta2, float eps, float wd, const float* grad_scale_dev, int t,
                                unsigned seed, cudaStream_t s) {
    adamw_update_at(master, copy, grad, m, v, n, lr, beta1, beta2, eps, wd, grad_scale_dev, t, seed, 0, s);
}

/* ---------------- all runs in one launch ---------------- */
/* A run: the elements [begin, end) of the flat parameter layout that share a weight-decay setting (decay: wd
 * applies) and one rounding-noise stream (seed; element e draws its noise at index e - begin). The trainer's
 * runs alternate decay / no decay tensor by tensor (norm weights, biases), about 6 per layer: one launch per
 * run was ~290 launches a mamba-370m step, most of them for a few thousand elements. adamw_update_runs updates
 * the slice [lo, hi) of every run in one launch with the arithmetic of adamw_update_at per run, element for
 * element, so the same bits. */
typedef struct {
    size_t begin, end;   /* global element range (unclipped: the noise index counts from begin) */
    uint32_t seed;
    int decay;
} AdamWRun;

#define ADAMW_RUN_ITERS 16   /* vectors per thread: a block owns ADAMW_THREADS * ADAMW_RUN_ITERS consecutive ones */

/* master, m, v [hi - lo] (the slice); copy, grad indexed by global element. lo % 4 == 0, pointers 16-byte
 * aligned (checked by the launcher). Elements of the slice in no run (padding between runs) are left alone. */
__global__ void __launch_bounds__(ADAMW_THREADS)
adamw_kernel_runs(float* master, bf16* copy, const float* grad, float* m, float* v, size_t lo, size_t hi,
                  const AdamWRun* runs, int nruns, const float* grad_scale_dev, AdamWArgs a) {
    pdl_wait_prior();
    const float scale = *grad_scale_dev;
    if (!isfinite(scale)) return;
    const size_t n4 = (hi - lo + 3) / 4, q0 = (size_t)blockIdx.x * ADAMW_THREADS * ADAMW_RUN_ITERS + threadIdx.x;
    if (q0 >= n4) return;
    int r = 0, hi_r = nruns;   /* the first run that ends after this thread's first element */
    const size_t e0 = lo + q0 * 4;
    while (r < hi_r) {
        const int mid = (r + hi_r) / 2;
        if (runs[mid].end <= e0) r = mid + 1; else hi_r = mid;
    }
    for (int it = 0; it < ADAMW_RUN_ITERS; it++) {
        const size_t q = q0 + (size_t)it * ADAMW_THREADS, e = lo + q * 4;
        if (q >= n4) break;
        while (r < nruns && runs[r].end <= e) r++;
        if (r == nruns) break;
        const AdamWRun run = runs[r];
        if (e + 4 <= run.begin) continue;   /* padding before the run */
        AdamWArgs ar = a;                   /* a.wd is the decaying runs' */
        if (!run.decay) ar.wd = 0.0f;
        const uint32_t key = hash_u32(a.t, run.seed);
        const size_t i = q * 4;   /* in the slice */
        if (e >= run.begin && e + 4 <= run.end && e + 4 <= hi) {
            adamw_four_(master + i, copy + e, grad + e, m + i, v + i, scale, ar, key, e - run.begin);
        } else {   /* a vector the run's end, its start or the slice's end cuts (the per-run launches' scalar tail) */
            for (int k = 0; k < 4; k++) {
                const size_t ek = e + k;
                if (ek < run.begin || ek >= run.end || ek >= hi) continue;
                adamw_one_(master[i + k], m[i + k], v[i + k], copy[ek], grad[ek] * scale, ar, key, ek - run.begin);
            }
        }
    }
}

/* runs_dev [nruns] sorted by begin, disjoint (device copy of the host table); wd is applied to the decay runs */
static inline void adamw_update_runs(float* master, bf16* copy, const float* grad, float* m, float* v, size_t lo,
                                     size_t hi, const AdamWRun* runs_dev, int nruns, float lr, float beta1, float beta2,
                                     float eps, float wd, const float* grad_scale_dev, int t, cudaStream_t s) {
    const AdamWArgs a = adamw_args_(lr, beta1, beta2, eps, wd, t, 0, 0);   /* seeds and indices: per run */
    if (hi <= lo || nruns == 0) return;
    uintptr_t al = (uintptr_t)master | (uintptr_t)grad | (uintptr_t)m | (uintptr_t)v | ((uintptr_t)copy << 1);
    if ((al & 15) || (lo % 4)) die("adamw_update_runs: needs 16-byte aligned buffers and a slice starting at a multiple of 4");
    const size_t n4 = (hi - lo + 3) / 4, per = (size_t)ADAMW_THREADS * ADAMW_RUN_ITERS;
    launch_kernel(adamw_kernel_runs, (unsigned)((n4 + per - 1) / per), ADAMW_THREADS, 0, s, master, copy, grad, m, v,
                  lo, hi, runs_dev, nruns, grad_scale_dev, a);
}

/* ---------------- global norm, clip factor, non-finite flag ---------------- */

/* floats of scratch that global_norm_squared needs */
static inline size_t global_norm_scratch_floats(void) { return GN_BLOCKS; }

__global__ void __launch_bounds__(GN_THREADS) global_norm_partials_kernel(float* partials, const float* g, size_t n) {
    pdl_wait_prior();
    __shared__ float s_warp[GN_THREADS / 32];
    float acc = 0.0f;
    const size_t stride = (size_t)GN_BLOCKS * GN_THREADS;
    /* fixed pattern: thread (b, t) visits b*T + t, then + stride ... independent of the device */
    for (size_t i = (size_t)blockIdx.x * GN_THREADS + threadIdx.x; i < n; i += stride) {
        float x = g[i];
        acc += x * x;
    }
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (threadIdx.x % 32 == 0) s_warp[threadIdx.x / 32] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        float b = 0.0f;
        for (int w = 0; w < GN_THREADS / 32; w++) b += s_warp[w];
        partials[blockIdx.x] = b;
    }
}

/* one warp adds the GN_BLOCKS partials in a fixed order, in double */
__global__ void global_norm_final_kernel(float* out, const float* partials, int accumulate) {
    pdl_wait_prior();
    double acc = 0.0;
    for (int i = threadIdx.x; i < GN_BLOCKS; i += 32) acc += (double)partials[i];
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (threadIdx.x == 0) *out = (float)(accumulate ? (double)*out + acc : acc);
}

/* *out_dev (=, or += when accumulate) sum of g[i]^2 over g [n] fp32; scratch: global_norm_scratch_floats() */
static inline void global_norm_squared_acc(float* out_dev, const float* g, size_t n, float* scratch, int accumulate,
                                           cudaStream_t s) {
    launch_kernel(global_norm_partials_kernel, GN_BLOCKS, GN_THREADS, 0, s, scratch, g, n);
    launch_kernel(global_norm_final_kernel, 1, 32, 0, s, out_dev, scratch, accumulate);
}
static inline void global_norm_squared(float* out_dev, const float* g, size_t n, float* scratch, cudaStream_t s) {
    global_norm_squared_acc(out_dev, g, n, scratch, 0, s);
}

/* *scale_dev = min(1, max_norm / (sqrt(norm2) + 1e-6)), 1 when max_norm <= 0, NaN when norm2 is not
 * finite (adamw_update then skips the step) */
__global__ void clip_factor_kernel(float* scale_dev, const float* norm2_dev, float max_norm) {
    pdl_wait_prior();
    float n2 = *norm2_dev;
    float sc;
    if (!isfinite(n2)) sc = NAN;
    else if (max_norm <= 0.0f) sc = 1.0f;
    else sc = fminf(1.0f, max_norm / (sqrtf(n2) + 1e-6f));
    *scale_dev = sc;
}
static inline void clip_factor(float* scale_dev, const float* norm2_dev, float max_norm, cudaStream_t s) {
    launch_kernel(clip_factor_kernel, 1, 1, 0, s, scale_dev, norm2_dev, max_norm);
}

/* *flag_dev = 1 if *x_dev is NaN or Inf, else 0 (copy it to the host whenever convenient, e.g. with the loss) */
__global__ void nonfinite_flag_kernel(int* flag_dev, const float* x_dev) {
    pdl_wait_prior();
    *flag_dev = isfinite(*x_dev) ? 0 : 1;
}
static inline void nonfinite_flag(int* flag_dev, const float* x_dev, cudaStream_t s) {
    launch_kernel(nonfinite_flag_kernel, 1, 1, 0, s, flag_dev, x_dev);
}

#endif /* COMMON_ADAMW_CUH */
