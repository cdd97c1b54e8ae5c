/*
 * lowrank.cuh — C[M,N] += A[M,K] B[K,N] in place in bf16 for a short inner dimension K (at most 128): Mamba's
 * x_proj input gradient du += dxdbl w_x (M = B*T, N = d_inner, K = dt_rank + 2 d_state: 96 at mamba-370m), which
 * adds onto the du that the scan backward wrote.
 *
 * Why not cuBLASLt: the product is all memory (C read and written, 268 MB at mamba-370m, against 13 GFLOP), and
 * cuBLASLt with beta = 1 and C as its own output reads C slowly: 0.110 ms where writing the same product takes
 * 0.046 (dev/README.md, core kernels). Here each block keeps a 128-column block of B in shared memory and walks
 * 64-row tiles of C, double buffered: the next tile's A rows and C tile come in by cp.async while the current one
 * is multiplied on the tensor cores (mma.sync m16n8k16, fp32 accumulation), added onto its C tile in shared memory
 * and stored in 16-byte rows. 0.085 ms at mamba-370m's shape (dev/lowrank_add; session 21 in dev/README.md).
 *
 * Result: C = bf16(float(C) + sum_k A B), the sum over k in 16-wide steps in order. Deterministic and rounded
 * once like cuBLASLt's, but not its bits (its order over k is its own). Shapes the kernel does not take (K not a
 * multiple of 8 or above LOWRANK_KMAX, N or a leading dimension not a multiple of 8, a pointer not 16-byte
 * aligned) go to matmul() with beta = 1: the same sum with cuBLASLt's bits.
 */
#ifndef COMMON_LOWRANK_CUH
#define COMMON_LOWRANK_CUH

#include "matmul.cuh"
#include "launch.cuh"
#include "cp_async.cuh"

#define LOWRANK_KMAX 128   /* beyond it two blocks no longer fit an SM, and one is slower than cuBLASLt (below) */
#define LR_BM 64         /* rows of C per tile: 2 warp rows of 32 */
#define LR_BN 128        /* columns of C per block: 4 warp columns of 32 */
#define LR_THREADS 256
#define LR_PAD 8         /* bf16 of padding per shared row: the pitch is then 4 (mod 8) words, so the 8 row
                          * addresses of an ldmatrix / stmatrix phase fall in distinct banks */

__host__ __device__ static inline int lowrank_kp(int K) { return (K + 15) / 16 * 16; }   /* K in whole mma steps */
/* shared memory of a block: B's column block [Kp][128+8], then two stages of A's rows [64][Kp+8] and the C tile
 * [64][128+8] */
static inline size_t lowrank_smem_bytes(int K) {
    int Kp = lowrank_kp(K);
    return sizeof(bf16) * ((size_t)Kp * (LR_BN + LR_PAD) + (size_t)2 * LR_BM * ((Kp + LR_PAD) + (LR_BN + LR_PAD)));
}

/* 1 when lowrank_add runs its own kernel for these operands, 0 when it hands them to matmul() */
static inline int lowrank_fits(const void* C, int ldc, const void* A, int lda, const void* B, int ldb, int N, int K) {
    uintptr_t p = (uintptr_t)C | (uintptr_t)A | (uintptr_t)B;
    return K > 0 && K % 8 == 0 && K <= LOWRANK_KMAX && N % 8 == 0 && ldc % 8 == 0 && lda % 8 == 0 && ldb % 8 == 0 &&
           p % 16 == 0;
}

__device__ __forceinline__ void ldmatrix_x4(unsigned r[4], unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned r[4], unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ __forceinline__ void stmatrix_x4(unsigned addr, const unsigned r[4]) {
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(addr), "r"(r[0]), "r"(r[1]),
                 "r"(r[2]), "r"(r[3]));
}
/* bf16(float(c) + x) on a pair */
__device__ __forceinline__ unsigned lowrank_add_pair(unsigned c, float x0, float x1) {
    __nv_bfloat162 v = *reinterpret_cast<__nv_bfloat162*>(&c);
    float2 f = __bfloat1622float2(v);
    v = __floats2bfloat162_rn(f.x + x0, f.y + x1);
    return *reinterpret_cast<unsigned*>(&v);
}

/* grid (ceil(N/128), G), LR_THREADS threads, lowrank_smem_bytes(K) of shared memory, NJ = ceil(Kp / 32).
 * Block (x, y) keeps B's column block x in shared memory and walks the row tiles y, y + G, y + 2G, ... double
 * buffered: the next tile's copies are in flight while the current one is multiplied, added and stored.
 * A thread's share of every tile is fixed: C's 16-byte chunks in rows tid / 16 + 16 i (i < 4) at column
 * 8 (tid % 16), which it also stores, and A's in row tid / 4 at columns 8 (tid % 4) + 32 j (j < NJ); so the tile
 * loop does no index division. Warp w computes rows 32 (w / 4).. and columns 32 (w % 4).. of a tile: 2 x 4 mma
 * tiles of 16 x 8; it reads its C elements with ldmatrix, in the accumulators' layout, and writes the sums back
 * with stmatrix before the block stores the tile. */
template <int NJ>
__global__ void __launch_bounds__(LR_THREADS, 2)
lowrank_add_kernel(bf16* __restrict__ C, int ldc, const bf16* __restrict__ A, int lda, const bf16* __restrict__ B,
                   int ldb, int M, int N, int K) {
    pdl_wait_prior();
    extern __shared__ __align__(16) unsigned char lr_smem[];
    const int Kp = lowrank_kp(K), pa = Kp + LR_PAD, pc = LR_BN + LR_PAD;
    bf16* Bs = (bf16*)lr_smem;
    bf16* ring = Bs + Kp * pc;
    const int stage = LR_BM * (pa + pc);   /* a stage: As [64][pa], then Cs [64][pc] */
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int n0 = blockIdx.x * LR_BN;
    const long long ntiles = (M + LR_BM - 1) / LR_BM, G = gridDim.y;
    const int a_row = tid >> 2, a_col = (tid & 3) * 8, c_row = tid >> 4, c_col = (tid & 15) * 8;
    const bool c_col_ok = n0 + c_col < N;
    const size_t ldc16 = (size_t)16 * ldc;

    for (int i = tid; i < Kp * (LR_BN / 8); i += LR_THREADS) {
        int k = i / (LR_BN / 8), c = (i % (LR_BN / 8)) * 8;
        bool ok = k < K && n0 + c < N;
        cp_async16(Bs + k * pc + c, ok ? B + (size_t)k * ldb + n0 + c : B, ok);
    }
    /* the copies of the tile at row m0 into stage st: A's rows (zero beyond K and M), C's tile (zero beyond M, N) */
    auto load = [&](bf16* st, long long m0) {
        const bool full = m0 + LR_BM <= M;
        const bool arow_ok = full || m0 + a_row < M;
        const bf16* ap = A + (m0 + a_row) * lda + a_col;
        bf16* as = st + a_row * pa + a_col;
#pragma unroll
        for (int j = 0; j < NJ; j++)
            if (a_col + 32 * j < Kp) {
                bool ok = arow_ok && a_col + 32 * j < K;
                cp_async16(as + 32 * j, ok ? ap + 32 * j : A, ok);
            }
        const bf16* cp = C + (m0 + c_row) * ldc + n0 + c_col;
        bf16* cs = st + LR_BM * pa + c_row * pc + c_col;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            bool ok = c_col_ok && (full || m0 + c_row + 16 * i < M);
            cp_async16(cs + 16 * i * pc, ok ? cp + i * ldc16 : C, ok);
        }
    };
    if (blockIdx.y < ntiles) load(ring, (long long)blockIdx.y * LR_BM);
    cp_async_commit();

    const int wr = (warp >> 2) * 32, wc = (warp & 3) * 32;
    /* ldmatrix / stmatrix row addresses: rows lane % 16 at columns + 8 (lane / 16). For A: a[0..3] of an m16 k16
     * step; for B (x4.trans on k rows): b0, b1 of two neighbouring 8-column tiles; for C: rows g, g + 8 of two
     * neighbouring 8-column tiles, the accumulators' pairs */
    const int lr = lane & 15, lc = (lane >> 4) * 8;
    const unsigned b_base = smem_u32(Bs + lr * pc + wc + lc);
    int j = 0;   /* the current tile's stage */
    for (long long t = blockIdx.y; t < ntiles; t += G) {
        cp_async_wait<0>();   /* this tile's copies (and B's, in the first) have landed for this thread... */
        __syncthreads();      /* ...and for all; also every thread is past the previous tile's stores */
        if (t + G < ntiles) load(ring + (j ^ 1) * stage, (t + G) * LR_BM);
        cp_async_commit();
        bf16* As = ring + j * stage;
        bf16* Cs = As + LR_BM * pa;
        float acc[2][4][4];
#pragma unroll
        for (int i = 0; i < 2; i++)
#pragma unroll
            for (int n = 0; n < 4; n++) acc[i][n][0] = acc[i][n][1] = acc[i][n][2] = acc[i][n][3] = 0.0f;
        const unsigned a_base = smem_u32(As + (wr + lr) * pa + lc);
#pragma unroll
        for (int k = 0; k < 32 * NJ; k += 16) {
            if (k >= Kp) break;
            unsigned a[2][4], b[2][4];
#pragma unroll
            for (int i = 0; i < 2; i++) ldmatrix_x4(a[i], a_base + 2u * (i * 16 * pa + k));
#pragma unroll
            for (int n = 0; n < 2; n++) ldmatrix_x4_trans(b[n], b_base + 2u * (k * pc + n * 16));
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int n = 0; n < 4; n++) mma_bf16_16816(acc[i][n], a[i], b[n / 2][(n & 1) * 2], b[n / 2][(n & 1) * 2 + 1]);
        }
        const unsigned c_base = smem_u32(Cs + (wr + lr) * pc + wc + lc);
#pragma unroll
        for (int i = 0; i < 2; i++)
#pragma unroll
            for (int n = 0; n < 4; n += 2) {
                unsigned c[4];
                const unsigned addr = c_base + 2u * (i * 16 * pc + n * 8);
                ldmatrix_x4(c, addr);   /* c[0] row g, c[1] row g + 8 of tile n; c[2], c[3] of tile n + 1 */
                c[0] = lowrank_add_pair(c[0], acc[i][n][0], acc[i][n][1]);
                c[1] = lowrank_add_pair(c[1], acc[i][n][2], acc[i][n][3]);
                c[2] = lowrank_add_pair(c[2], acc[i][n + 1][0], acc[i][n + 1][1]);
                c[3] = lowrank_add_pair(c[3], acc[i][n + 1][2], acc[i][n + 1][3]);
                stmatrix_x4(addr, c);
            }
        __syncthreads();
        const long long m0 = t * LR_BM;
        const bool full = m0 + LR_BM <= M;
        bf16* cp = C + (m0 + c_row) * ldc + n0 + c_col;
        const bf16* cs = Cs + c_row * pc + c_col;
#pragma unroll
        for (int i = 0; i < 4; i++)
            if (c_col_ok && (full || m0 + c_row + 16 * i < M)) *(uint4*)(cp + i * ldc16) = *(const uint4*)(cs + 16 * i * pc);
        j ^= 1;
    }
    cp_async_wait<0>();   /* no copy outlives the block (B's, when the block had no tile) */
}

/* C[M,N] (row pitch ldc) += A[M,K] (lda) B[K,N] (ldb), all bf16 row-major; see the file comment */
static void lowrank_add(bf16* C, int ldc, const bf16* A, int lda, const bf16* B, int ldb, int M, int N, int K,
                        cudaStream_t s) {
    if (M <= 0 || N <= 0 || K <= 0) return;
    if (!lowrank_fits(C, ldc, A, lda, B, ldb, N, K)) {
        matmul(C, 0, ldc, A, lda, 0, B, ldb, 0, M, N, K, 1.0f, 1.0f, s);
        return;
    }
    typedef void (*Kern)(bf16*, int, const bf16*, int, const bf16*, int, int, int, int);
    const Kern kerns[4] = {lowrank_add_kernel<1>, lowrank_add_kernel<2>, lowrank_add_kernel<3>, lowrank_add_kernel<4>};
    const Kern kern = kerns[(lowrank_kp(K) + 31) / 32 - 1];
    size_t smem = lowrank_smem_bytes(K);
    smem_opt_in(kern, smem);
    int dev = 0, sms = 0, per_sm = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, LR_THREADS, smem));
    /* as many blocks as fit at once, split over the column blocks; each walks its share of the row tiles */
    int nx = (N + LR_BN - 1) / LR_BN;
    long long ntiles = (M + LR_BM - 1) / LR_BM;
    long long gy = ((long long)sms * (per_sm > 0 ? per_sm : 1)) / nx;
    if (gy < 1) gy = 1;
    if (gy > ntiles) gy = ntiles;
    if (gy > 65535) gy = 65535;
    launch_kernel(kern, dim3(nx, (unsigned)gy), LR_THREADS, smem, s, C, ldc, A, lda, B, ldb, M, N, K);
    CUDA_CHECK(cudaGetLastError());
}

#endif /* COMMON_LOWRANK_CUH */
