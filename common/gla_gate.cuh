/*
 * gla_gate.cuh — GLA's log forget gate (gla.md 1.4, backward 2.7 step 7):
 *     g[M,Dk] fp32 = logsigmoid(z + b) / 16      z [M,Dk] bf16 (= z1 @ gk1_w^T), b [Dk] fp32 (gk1_b)
 *     dz = dg * sigmoid(-(z + b)) / 16 ,   db += sum over rows of dz (deterministic, partials as in
 *     rmsnorm.cuh; the fp32 value is summed, not its bf16 rounding).
 * logsigmoid(x) = min(x,0) - log1p(e), e = exp(-|x|) in (0,1]: never overflows. log1p(e) is taken as
 * ln(1+e) (log_ftz) for e >= 2^-6 (abs. error < 4e-7, rel. < 3e-5) and as a 4-term series below (rel. < 2e-8),
 * because log1pf's ~20 instructions per element make the forward partly compute-bound (H200, M=32768,
 * Dk=512: 31.6 us with log1pf, 29.5 us with this; dev/gla_gate.cu v2 vs v3).
 * The elementwise forms (gla_gate_forward / _backward, given z; the trainer's until session 19, now dev/gla_gate's v3):
 * memory-bound, 8 columns per thread, 16-byte accesses. Requirements (checked): Dk % 8 == 0, 16-byte aligned pointers.
 *
 * The trainer's forms (gla_gate_lowrank_*) also do the rank-16 product in front: z = bf16(z1 w^T), z1 [M,16] bf16 (row
 * stride ld, a column slice of the fused projection), w [Dk,16] bf16 (gk1_w), one tensor-core mma per 16x8 tile with
 * fp32 accumulation, rounded to bf16 as the matrix product's output was. That costs less than writing z (2 B) and
 * reading it back in a separate launch of a product whose K is 16; the backward rebuilds z the same way, so z is
 * never stored. A warp owns 32 columns (their w fragments in registers) and walks 16-row tiles; z1's fragments come
 * straight from global memory (32 B a row, the same for all warps of a block: L1 hits). Requirements (checked): Dk % 8
 * == 0, R == 16, 4-byte aligned z1 and w with an even ld.
 */
#ifndef COMMON_GLA_GATE_CUH
#define COMMON_GLA_GATE_CUH

#include "rmsnorm.cuh" /* vec8_*, lane_group_across, partials_colsum_add, is_aligned16, full_wave_blocks */
#include "bf16.cuh"     /* sigmoid_ftz */
#include "launch.cuh"

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
    pdl_wait_prior();
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
    pdl_wait_prior();
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
    launch_kernel(gla_gate_forward_kernel, (unsigned)((n8 + 255) / 256), 256, 0, s, g, z, b, n8, Dk);
}

/* As gla_gate_backward with an explicit number P of partial rows (scratch >= P*Dk floats; dev timing). */
static inline void gla_gate_backward_parts(bf16* dz, float* db, const float* dg, const bf16* z, const float* b, int M,
                                           int Dk, float* scratch, int P, cudaStream_t s) {
    gla_gate_check_args("gla_gate_backward", M, Dk);
    if (!is_aligned16(dz) || !is_aligned16(dg) || !is_aligned16(z) || !is_aligned16(b) || !is_aligned16(scratch))
        die("gla_gate_backward: pointers must be 16-byte aligned");
    if (M == 0) return;
    dim3 grid((Dk + GATE_BWD_COLS - 1) / GATE_BWD_COLS, P);
    launch_kernel(gla_gate_backward_kernel, grid, dim3(32, GATE_BWD_ROWS), 0, s, dz, scratch, dg, z, b, M, Dk);
    partials_colsum_add(db, scratch, P, Dk, s);
}

/* dz[M,Dk] bf16 written ; db[Dk] fp32 += (deterministic) ; dg[M,Dk] fp32 ; z, b as forward ;
 * scratch: gla_gate_scratch_floats(M, Dk) floats */
static inline void gla_gate_backward(bf16* dz, float* db, const float* dg, const bf16* z, const float* b, int M, int Dk,
                                     float* scratch, cudaStream_t s) {
    gla_gate_backward_parts(dz, db, dg, z, b, M, Dk, scratch, gla_gate_bwd_parts(M, Dk), s);
}

/* ---------------------------------------------------------------------------------------------
 * rank-16 product fused in front: z = bf16(z1 w^T) per element on the tensor cores, never stored
 * ------------------------------------------------------------------------------------------- */

#define GATE_LR_RANK 16
#define GATE_LR_THREADS 256                    /* 8 warps; warp w owns columns 32w..32w+31 of the block's 256 */
#define GATE_LR_COLS (GATE_LR_THREADS / 32 * 32)
#define GATE_LR_ROWS 64                        /* rows per forward block: 4 tiles of 16 (the backward steps by 16) */

/* The A fragment of rows m0.. of z1 (16 x 16 bf16, row stride ld): 32-bit pairs straight from global memory; rows past
 * M read 0 */
__device__ inline void gla_gate_frag_z1(unsigned a[4], const bf16* __restrict__ z1, int ld, int m0, int M) {
    const int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int r = m0 + g + (i & 1) * 8, k = 2 * q + (i >> 1) * 8;
        a[i] = r < M ? *reinterpret_cast<const unsigned*>(z1 + (size_t)r * ld + k) : 0u;
    }
}
/* the B fragments of this warp's 4 column tiles (w [Dk,16] bf16, row c = column c of z), 0 past Dk */
__device__ inline void gla_gate_frag_w(unsigned b[4][2], const bf16* __restrict__ w, int c0, int Dk) {
    const int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const int c = c0 + 8 * j + g;
#pragma unroll
        for (int h = 0; h < 2; h++)
            b[j][h] = c < Dk ? *reinterpret_cast<const unsigned*>(w + (size_t)c * GATE_LR_RANK + 2 * q + 8 * h) : 0u;
    }
}
/* z for the 16 rows m0.. and this warp's 32 columns: z[j][0..3] = rows g, g (cols 2q, 2q+1 of tile j), g+8, g+8, as a
 * product's bf16 output */
__device__ inline void gla_gate_z_tile(float z[4][4], const bf16* __restrict__ z1, int ld, const unsigned b[4][2], int m0,
                                       int M) {
    unsigned a[4];
    gla_gate_frag_z1(a, z1, ld, m0, M);
#pragma unroll
    for (int j = 0; j < 4; j++) {
#pragma unroll
        for (int e = 0; e < 4; e++) z[j][e] = 0.f;
        mma_bf16_16816(z[j], a, b[j][0], b[j][1]);
#pragma unroll
        for (int e = 0; e < 4; e++) z[j][e] = bf2f(f2bf(z[j][e]));
    }
}

/* what a warp keeps for its 32 columns c0..: their w fragments and, per accumulator column (2q + h of tile j), the bias */
__device__ inline void gla_gate_warp_setup(unsigned bw[4][2], float bias[4][2], const bf16* __restrict__ w,
                                           const float* __restrict__ b, int c0, int Dk) {
    gla_gate_frag_w(bw, w, c0, Dk);
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int c = c0 + 8 * j + 2 * (threadIdx.x & 3) + h;
            bias[j][h] = c < Dk ? b[c] : 0.f;
        }
}

/* grid (ceil(Dk/256), ceil(M/64)): block (x, y) writes columns 256x.. of rows 64y.. */
__global__ void __launch_bounds__(GATE_LR_THREADS)
gla_gate_lowrank_forward_kernel(float* __restrict__ g, const bf16* __restrict__ z1, int ld, const bf16* __restrict__ w,
                                const float* __restrict__ b, int M, int Dk) {
    pdl_wait_prior();
    const int lane = threadIdx.x & 31, c0 = blockIdx.x * GATE_LR_COLS + (threadIdx.x >> 5) * 32;
    if (c0 >= Dk) return;   /* a whole warp: Dk % 8 == 0, so tiles are whole */
    unsigned bw[4][2];
    float bias[4][2];
    gla_gate_warp_setup(bw, bias, w, b, c0, Dk);
#pragma unroll
    for (int mt = 0; mt < GATE_LR_ROWS / 16; mt++) {
        const int m0 = blockIdx.y * GATE_LR_ROWS + mt * 16;
        if (m0 >= M) break;
        float z[4][4];
        gla_gate_z_tile(z, z1, ld, bw, m0, M);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int c = c0 + 8 * j + 2 * (lane & 3);
            if (c >= Dk) continue;
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                const int r = m0 + (lane >> 2) + 8 * hr;
                if (r >= M) continue;
                float2 o;
                o.x = gla_logsigmoid(z[j][2 * hr] + bias[j][0]) * 0.0625f;
                o.y = gla_logsigmoid(z[j][2 * hr + 1] + bias[j][1]) * 0.0625f;
                *reinterpret_cast<float2*>(g + (size_t)r * Dk + c) = o;
            }
        }
    }
}

/* grid (ceil(Dk/256), P): block (x, p) takes row steps p, p + P, ... of columns 256x..; the column sums of dz (fp32:
 * per thread over its rows in increasing order, then over the 8 row groups of the warp by a fixed butterfly) go to
 * part[p, Dk] */
__global__ void __launch_bounds__(GATE_LR_THREADS)
gla_gate_lowrank_backward_kernel(bf16* __restrict__ dz, float* __restrict__ part, const float* __restrict__ dg,
                                 const bf16* __restrict__ z1, int ld, const bf16* __restrict__ w,
                                 const float* __restrict__ b, int M, int Dk) {
    pdl_wait_prior();
    const int lane = threadIdx.x & 31, c0 = blockIdx.x * GATE_LR_COLS + (threadIdx.x >> 5) * 32;
    if (c0 >= Dk) return;
    unsigned bw[4][2];
    float bias[4][2], acc[4][2] = {{0.f, 0.f}, {0.f, 0.f}, {0.f, 0.f}, {0.f, 0.f}};
    gla_gate_warp_setup(bw, bias, w, b, c0, Dk);
    for (int m0 = blockIdx.y * 16; m0 < M; m0 += gridDim.y * 16) {
        float z[4][4];
        gla_gate_z_tile(z, z1, ld, bw, m0, M);
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const int r = m0 + (lane >> 2) + 8 * hr;
            if (r >= M) continue;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int c = c0 + 8 * j + 2 * (lane & 3);
                if (c >= Dk) continue;
                const size_t o = (size_t)r * Dk + c;
                const float2 d2 = *reinterpret_cast<const float2*>(dg + o);
                const float d0 = d2.x * (0.0625f * sigmoid_ftz(-(z[j][2 * hr] + bias[j][0])));
                const float d1 = d2.y * (0.0625f * sigmoid_ftz(-(z[j][2 * hr + 1] + bias[j][1])));
                acc[j][0] += d0;
                acc[j][1] += d1;
                *reinterpret_cast<__nv_bfloat162*>(dz + o) = __floats2bfloat162_rn(d0, d1);
            }
        }
    }
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const float v = lane_group_across<4>(acc[j][h]);   /* over the warp's 8 row groups (lanes q, q+4, ...) */
            const int c = c0 + 8 * j + 2 * (lane & 3) + h;
            if (lane < 4 && c < Dk) part[(size_t)blockIdx.y * Dk + c] = v;
        }
}

/* rows of partials of the backward (its grid.y): one full wave over the column blocks, fewer if M is small */
static inline int gla_gate_lowrank_parts(int M, int Dk) {
    const int need = (M + 15) / 16, colblocks = (Dk + GATE_LR_COLS - 1) / GATE_LR_COLS;
    int wave = full_wave_blocks((const void*)gla_gate_lowrank_backward_kernel, GATE_LR_THREADS, 0) / colblocks;
    if (wave < 1) wave = 1;
    return need < wave ? (need > 0 ? need : 1) : wave;
}
/* floats of scratch that gla_gate_lowrank_backward needs (needs the CUDA device selected) */
static inline size_t gla_gate_lowrank_scratch_floats(int M, int Dk) { return (size_t)gla_gate_lowrank_parts(M, Dk) * (size_t)Dk; }
static inline void gla_gate_lowrank_check_args(const char* who, const bf16* z1, int ld, const bf16* w, int M, int Dk, int R) {
    if (M < 0 || Dk <= 0 || Dk % 8 != 0 || R != GATE_LR_RANK || ld < R || ld % 2 != 0)
        die("%s: need Dk %% 8 == 0, rank %d and an even ld >= rank (got M=%d Dk=%d R=%d ld=%d)", who, GATE_LR_RANK, M, Dk, R, ld);
    if (((uintptr_t)z1 & 3) || ((uintptr_t)w & 3)) die("%s: z1 and w must be 4-byte aligned", who);
}

/* g[M,Dk] fp32 = logsigmoid(bf16(z1 w^T) + b)/16 ; z1[M,R] bf16 (row stride ld), w[Dk,R] bf16, b[Dk] fp32 ; R = 16 */
static inline void gla_gate_lowrank_forward(float* g, const bf16* z1, int ld, const bf16* w, const float* b, int M, int Dk,
                                            int R, cudaStream_t s) {
    gla_gate_lowrank_check_args("gla_gate_lowrank_forward", z1, ld, w, M, Dk, R);
    if (!is_aligned16(g)) die("gla_gate_lowrank_forward: g must be 16-byte aligned");
    if (M == 0) return;
    dim3 grid((Dk + GATE_LR_COLS - 1) / GATE_LR_COLS, (M + GATE_LR_ROWS - 1) / GATE_LR_ROWS);
    launch_kernel(gla_gate_lowrank_forward_kernel, grid, GATE_LR_THREADS, 0, s, g, z1, ld, w, b, M, Dk);
}
/* dz[M,Dk] bf16 written = dg sigmoid(-(z + b))/16 with z rebuilt as the forward's ; db[Dk] fp32 += its column sums
 * (deterministic) ; scratch: gla_gate_lowrank_scratch_floats(M, Dk) floats */
static inline void gla_gate_lowrank_backward(bf16* dz, float* db, const float* dg, const bf16* z1, int ld, const bf16* w,
                                             const float* b, int M, int Dk, int R, float* scratch, cudaStream_t s) {
    gla_gate_lowrank_check_args("gla_gate_lowrank_backward", z1, ld, w, M, Dk, R);
    if (!is_aligned16(dz) || !is_aligned16(dg)) die("gla_gate_lowrank_backward: dz and dg must be 16-byte aligned");
    if (M == 0) return;
    const int P = gla_gate_lowrank_parts(M, Dk);
    dim3 grid((Dk + GATE_LR_COLS - 1) / GATE_LR_COLS, P);
    launch_kernel(gla_gate_lowrank_backward_kernel, grid, GATE_LR_THREADS, 0, s, dz, scratch, dg, z1, ld, w, b, M, Dk);
    partials_colsum_add(db, scratch, P, Dk, s);
}

#endif /* COMMON_GLA_GATE_CUH */
