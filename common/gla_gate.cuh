/*
 * gla_gate.cuh — GLA's log forget gate (gla.md 1.4, backward 2.7 step 7):
 *     g[M,Dk] fp32 = logsigmoid(z + b) / 16      z [M,Dk] bf16 (= z1 @ gk1_w^T), b [Dk] fp32 (gk1_b)
 *     dz = dg * sigmoid(-(z + b)) / 16 ,   db += sum over rows of dz (deterministic, partials as in
 *     rmsnorm.cuh; the fp32 value is summed, not its bf16 rounding).
 * logsigmoid(x) = min(x,0) - log1p(e), e = exp(-|x|) in (0,1]: never overflows. log1p(e) is taken as
 * ln(1+e) (log_ftz) for e >= 2^-6 (abs. error < 4e-7, rel. < 3e-5) and as a 4-term series below (rel. < 2e-8),
 * because log1pf's ~20 instructions per element make the forward partly compute-bound (H200, M=32768,
 * Dk=512: 31.6 us with log1pf, 29.5 us with this; dev/gla_gate.cu v2 vs v3).
 * Elementwise and memory-bound: 8 columns per thread, 16-byte accesses. Requirements (checked):
 * Dk % 8 == 0, 16-byte aligned pointers.
 */
#ifndef COMMON_GLA_GATE_CUH
#define COMMON_GLA_GATE_CUH

#include "rmsnorm.cuh" /* vec8_*, partials_colsum_add, is_aligned16, full_wave_blocks */
#include "bf16.cuh"     /* sigmoid_ftz */

#define GATE_BWD_ROWS 8        /* threadIdx.y: rows handled side by side in a backward block */
#define GATE_BWD_COLS 256      /* 32 threads x 8 columns */

/* log1p(e) for e in [0, 1] */
__device__ inline float gla_log1p_unit(float e) {
    const float series = e * (1.f - e * (0.5f - e * (0.33333334f - e * 0.25f)));
    return e < 0.015625f ? series : log_ftz(1.f + e);
}
/* (the ftz exponential and log give __expf's and __logf's bits, the log's input being in [1, 2], except where e
 * would be below 2^-126, |x| > 87: there logsigmoid is x, or -0 instead of a denormal for x > 87) */
__device__ inline float gla_logsigmoid(float x) { return fminf(x, 0.f) - gla_log1p_unit(exp_ftz(-fabsf(x))); }

/* one thread per 8 consecutive elements of the flat [M*Dk] arrays */
__global__ void gla_gate_forward_kernel(float* __restrict__ g, const bf16* __restrict__ z, const float* __restrict__ b,
                                        size_t n8, int Dk) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n8) return;
    const int c = (int)((i * 8) % (size_t)Dk);
    float zv[8], bv[8], out[8];
    vec8_load_cs(zv, z + i * 8);
    vec8_load(bv, b + c);
#pragma unroll
    for (int k = 0; k < 8; k++) out[k] = gla_logsigmoid(zv[k] + bv[k]) * 0.0625f;
    vec8_store(g + i * 8, out);
}

/* dz = dg * sigmoid(-(z+b))/16 for 8 columns; acc += dz (fp32, before rounding) */
__device__ inline void gla_gate_bwd8(bf16* dz, float acc[8], const float* dg, const bf16* z, const float bv[8]) {
    float zv[8], d[8];
    vec8_load_cs(zv, z);
    vec8_load_cs(d, dg);
#pragma unroll
    for (int k = 0; k < 8; k++) {
        d[k] *= 0.0625f * sigmoid_ftz(-(zv[k] + bv[k]));
        acc[k] += d[k];
    }
    vec8_store(dz, d);
}

/* block (32, GATE_BWD_ROWS) covers 256 columns; grid (ceil(Dk/256), P). Rows dealt round-robin:
 * thread row ty of part p takes p*ROWS + ty, then + P*ROWS, ... two rows per step for bytes in flight.
 * part[p, Dk] = the block's column sums (rows summed in a fixed order). */
__global__ void __launch_bounds__(32 * GATE_BWD_ROWS)
gla_gate_backward_kernel(bf16* __restrict__ dz, float* __restrict__ part, const float* __restrict__ dg,
                         const bf16* __restrict__ z, const float* __restrict__ b, int M, int Dk) {
    __shared__ float s[GATE_BWD_ROWS][GATE_BWD_COLS];
    const int c = blockIdx.x * GATE_BWD_COLS + threadIdx.x * 8;
    const bool col_ok = c < Dk;
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (col_ok) {
        float bv[8];
        vec8_load(bv, b + c);
        const int step = gridDim.y * GATE_BWD_ROWS;
        int m = blockIdx.y * GATE_BWD_ROWS + threadIdx.y;
        for (; m + step < M; m += 2 * step) {
            const size_t o0 = (size_t)m * Dk + c, o1 = o0 + (size_t)step * Dk;
            float acc1[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
            gla_gate_bwd8(dz + o0, acc, dg + o0, z + o0, bv);
            gla_gate_bwd8(dz + o1, acc1, dg + o1, z + o1, bv);
#pragma unroll
            for (int k = 0; k < 8; k++) acc[k] += acc1[k];
        }
        if (m < M) gla_gate_bwd8(dz + (size_t)m * Dk + c, acc, dg + (size_t)m * Dk + c, z + (size_t)m * Dk + c, bv);
    }
#pragma unroll
    for (int k = 0; k < 8; k++) s[threadIdx.y][threadIdx.x * 8 + k] = acc[k];
    __syncthreads();
    if (threadIdx.y == 0 && col_ok) {
        float t[8];
#pragma unroll
        for (int k = 0; k < 8; k++) t[k] = s[0][threadIdx.x * 8 + k];
        for (int r = 1; r < GATE_BWD_ROWS; r++)
#pragma unroll
            for (int k = 0; k < 8; k++) t[k] += s[r][threadIdx.x * 8 + k];
        vec8_store(part + (size_t)blockIdx.y * Dk + c, t);
    }
}

/* rows of partials (grid.y of the backward): one full wave over the ceil(Dk/256) column blocks */
static inline int gla_gate_bwd_parts(int M, int Dk) {
    const int need = (M + GATE_BWD_ROWS - 1) / GATE_BWD_ROWS, colblocks = (Dk + GATE_BWD_COLS - 1) / GATE_BWD_COLS;
    int wave = full_wave_blocks((const void*)gla_gate_backward_kernel, 32 * GATE_BWD_ROWS, 0) / colblocks;
    if (wave < 1) wave = 1;
    return need < wave ? (need > 0 ? need : 1) : wave;
}
/* floats of scratch that gla_gate_backward needs (needs the CUDA device selected) */
static inline size_t gla_gate_scratch_floats(int M, int Dk) { return (size_t)gla_gate_bwd_parts(M, Dk) * (size_t)Dk; }

static inline void gla_gate_check_args(const char* who, int M, int Dk) {
    if (M < 0 || Dk <= 0 || Dk % 8 != 0) die("%s: need Dk %% 8 == 0 (got M=%d Dk=%d)", who, M, Dk);
}

/* g[M,Dk] fp32 = logsigmoid(z + b)/16 ; z[M,Dk] bf16, b[Dk] fp32 */
static inline void gla_gate_forward(float* g, const bf16* z, const float* b, int M, int Dk, cudaStream_t s) {
    gla_gate_check_args("gla_gate_forward", M, Dk);
    if (!is_aligned16(g) || !is_aligned16(z) || !is_aligned16(b)) die("gla_gate_forward: pointers must be 16-byte aligned");
    const size_t n8 = (size_t)M * Dk / 8;
    if (n8 == 0) return;
    gla_gate_forward_kernel<<<(unsigned)((n8 + 255) / 256), 256, 0, s>>>(g, z, b, n8, Dk);
    CUDA_KERNEL_CHECK();
}

/* As gla_gate_backward with an explicit number P of partial rows (scratch >= P*Dk floats; dev timing). */
static inline void gla_gate_backward_parts(bf16* dz, float* db, const float* dg, const bf16* z, const float* b, int M,
                                           int Dk, float* scratch, int P, cudaStream_t s) {
    gla_gate_check_args("gla_gate_backward", M, Dk);
    if (!is_aligned16(dz) || !is_aligned16(dg) || !is_aligned16(z) || !is_aligned16(b) || !is_aligned16(scratch))
        die("gla_gate_backward: pointers must be 16-byte aligned");
    if (M == 0) return;
    dim3 grid((Dk + GATE_BWD_COLS - 1) / GATE_BWD_COLS, P);
    gla_gate_backward_kernel<<<grid, dim3(32, GATE_BWD_ROWS), 0, s>>>(dz, scratch, dg, z, b, M, Dk);
    CUDA_KERNEL_CHECK();
    partials_colsum_add(db, scratch, P, Dk, s);
}

/* dz[M,Dk] bf16 written ; db[Dk] fp32 += (deterministic) ; dg[M,Dk] fp32 ; z, b as forward ;
 * scratch: gla_gate_scratch_floats(M, Dk) floats */
static inline void gla_gate_backward(bf16* dz, float* db, const float* dg, const bf16* z, const float* b, int M, int Dk,
                                     float* scratch, cudaStream_t s) {
    gla_gate_backward_parts(dz, db, dg, z, b, M, Dk, scratch, gla_gate_bwd_parts(M, Dk), s);
}

#endif /* COMMON_GLA_GATE_CUH */
