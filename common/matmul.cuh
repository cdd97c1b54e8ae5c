/*
 * matmul.cuh — every matrix product of the trainers goes through here: one cuBLASLt wrapper, bf16
 * operands, fp32 accumulation (CUBLAS_COMPUTE_32F), output bf16 or fp32, optional accumulation
 * (beta = 1) into fp32 parameter gradients.
 *
 * Why a cache: building the matmul descriptor, three layouts and asking the heuristic for an algorithm
 * costs tens of microseconds of host time per call (llm.c pays it on every call). Here each distinct
 * problem (shape, transposes, leading dims, output type, beta zero-ness, pointer alignment) is planned
 * once and kept in a small table; later calls only look the plan up and launch.
 * Why deterministic: the same key always finds the same algorithm, with the same fixed 32 MiB workspace,
 * so a given problem always runs the same kernel with the same reduction order => same bits.
 *
 * Why tuned: the heuristic's first choice is often not the fastest kernel (dev/matmul with MATMUL_ALGOS=8:
 * Mamba's in_proj 0.374 ms with its first choice, 0.337 with its sixth). Products that write their output
 * (beta = 0) therefore time the heuristic's first MATMUL_TUNE_CANDIDATES choices once, on the call's own
 * operands, and keep the fastest of those whose output has the same bits as the first choice's (a hash of
 * the output decides): kernels without split-K sum over K in the same order, so the bits do not depend on
 * which one wins the timing (measured: every non-split-K choice of every model product gave the first's
 * bits). Accumulating products (beta = 1, the weight gradients) keep the first choice: timing them would
 * add into their output. MATMUL_TUNE=0 in the environment turns the tuning off.
 *
 * Row-major meaning throughout (the rest of the project is row-major): C[M,N] = alpha*op(A)op(B) + beta*C.
 * cuBLASLt is column-major, and a row-major X[r,c] with leading dim ld IS a column-major X^T[c,r] with
 * the same ld, so we ask cuBLASLt for C^T[N,M] = op(B)^T[N,K] op(A)^T[K,M]: the operands swap places
 * and keep their transpose flags.
 *
 * Requires matmul_init() once before the first call (on the device that will run the products).
 *
 * MATMUL_SIMPLE=1 in the environment routes every product to matmul_simple (one thread per output,
 * fp32 accumulation, plain loads and stores): slow, for compute-sanitizer's racecheck and initcheck
 * (`make sanitize`). Over cuBLASLt's kernels racecheck reports hazards inside them, and initcheck reports
 * their outputs as uninitialised although dev/matmul --check shows every element written (it seems not to
 * follow how those kernels store); with the simple path the tools check this project's kernels only.
 */
#ifndef COMMON_MATMUL_CUH
#define COMMON_MATMUL_CUH

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "errors.h"
#include "launch.cuh"
#include "bf16.cuh"
#ifndef CUBLAS_CHECK
#error "errors.h was included before <cublasLt.h>: include common/matmul.cuh (or <cublasLt.h>) first"
#endif

#define MATMUL_WORKSPACE_BYTES ((size_t)32 << 20)
#define MATMUL_CACHE_SIZE 256
#ifndef MATMUL_TUNE_CANDIDATES
#define MATMUL_TUNE_CANDIDATES 8   /* heuristic choices timed per beta = 0 product (-D for dev/matmul's sweeps) */
#endif
#define MATMUL_TUNE_REPS 3         /* timed runs per candidate (the fastest counts), after one warm-up run */

/* One planned problem. `align` = common power-of-two alignment (bytes, <= 16) of the pointers and leading
 * dims the plan was made for: cuBLASLt may pick kernels that need it, so it is part of the key. */
typedef struct {
    int M, N, K, lda, ldb, ldc, transA, transB, c_is_fp32, beta_zero, align;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
    cublasLtMatmulAlgo_t cand[MATMUL_TUNE_CANDIDATES];   /* heuristic choices, best first; ncand 0 once chosen */
    int ncand;
} MatmulPlan;

static cublasLtHandle_t g_matmul_handle = NULL;
static void* g_matmul_workspace = NULL;
static MatmulPlan g_matmul_plans[MATMUL_CACHE_SIZE];
static int g_matmul_nplans = 0;
static int g_matmul_simple = 0;   /* MATMUL_SIMPLE=1: matmul_simple instead of cuBLASLt (see above) */
static int g_matmul_tune = 1;     /* MATMUL_TUNE=0: the heuristic's first choice, untimed */
static int g_matmul_force = -1;   /* dev/matmul's sweep: >= 0 plans every product with that heuristic choice */
static unsigned long long* g_matmul_hash = NULL;   /* device, 1 word: the tuning's output hash */

static inline void matmul_init(void) {
    if (g_matmul_handle) return;
    const char* simple = getenv("MATMUL_SIMPLE");
    g_matmul_simple = simple && strcmp(simple, "1") == 0;
    if (g_matmul_simple) fprintf(stderr, "matmul: MATMUL_SIMPLE=1, every product runs the slow simple kernel\n");
    const char* tune = getenv("MATMUL_TUNE");
    g_matmul_tune = !(tune && strcmp(tune, "0") == 0);
    CUBLAS_CHECK(cublasLtCreate(&g_matmul_handle));
    CUDA_CHECK(cudaMalloc(&g_matmul_workspace, MATMUL_WORKSPACE_BYTES));
    CUDA_CHECK(cudaMalloc((void**)&g_matmul_hash, sizeof(unsigned long long)));
    g_matmul_nplans = 0;
}

static inline void matmul_plan_destroy_(MatmulPlan* p) {
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->la));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->lb));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->lc));
    CUBLAS_CHECK(cublasLtMatmulDescDestroy(p->desc));
}
static inline void matmul_free(void) {
    for (int i = 0; i < g_matmul_nplans; i++) matmul_plan_destroy_(&g_matmul_plans[i]);
    g_matmul_nplans = 0;
    if (g_matmul_workspace) CUDA_CHECK(cudaFree(g_matmul_workspace));
    if (g_matmul_hash) CUDA_CHECK(cudaFree(g_matmul_hash));
    if (g_matmul_handle) CUBLAS_CHECK(cublasLtDestroy(g_matmul_handle));
    g_matmul_workspace = NULL;
    g_matmul_hash = NULL;
    g_matmul_handle = NULL;
}

/* largest power of two <= 16 dividing every byte quantity given (addresses and row pitches) */
static inline int matmul_alignment_(const uintptr_t* x, int n) {
    uintptr_t acc = 16;
    for (int i = 0; i < n; i++) acc |= x[i];
    return (int)(acc & (~acc + 1));
}

static inline MatmulPlan* matmul_plan_(int M, int N, int K, int lda, int ldb, int ldc, int transA, int transB,
                                       int c_is_fp32, int beta_zero, int align) {
    for (int i = 0; i < g_matmul_nplans; i++) {
        MatmulPlan* p = &g_matmul_plans[i];
        if (p->M == M && p->N == N && p->K == K && p->lda == lda && p->ldb == ldb && p->ldc == ldc &&
            p->transA == transA && p->transB == transB && p->c_is_fp32 == c_is_fp32 &&
            p->beta_zero == beta_zero && p->align == align)
            return p;
    }
    if (g_matmul_nplans == MATMUL_CACHE_SIZE)
        die("matmul: more than %d distinct matmul problems; raise MATMUL_CACHE_SIZE in common/matmul.cuh", MATMUL_CACHE_SIZE);
    MatmulPlan* p = &g_matmul_plans[g_matmul_nplans];
    p->M = M; p->N = N; p->K = K; p->lda = lda; p->ldb = ldb; p->ldc = ldc;
    p->transA = transA; p->transB = transB; p->c_is_fp32 = c_is_fp32; p->beta_zero = beta_zero; p->align = align;

    /* column-major view: C^T[N,M] = opB'[N,K] * opA'[K,M]; the first cuBLAS operand is our B */
    cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opB, sizeof(opB)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opA, sizeof(opA)));
    /* stored shapes in column-major terms: B stored row-major [K,N] (or [N,K] if transB) */
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_16BF, transB ? K : N, transB ? N : K, ldb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_16BF, transA ? M : K, transA ? K : M, lda));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->lc, c_is_fp32 ? CUDA_R_32F : CUDA_R_16BF, N, M, ldc));

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = MATMUL_WORKSPACE_BYTES;
    uint32_t al = (uint32_t)align;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al, sizeof(al)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al, sizeof(al)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al, sizeof(al)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al, sizeof(al)));
    cublasLtMatmulHeuristicResult_t h[MATMUL_TUNE_CANDIDATES];
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(g_matmul_handle, p->desc, p->lb, p->la, p->lc, p->lc, pref,
                                                MATMUL_TUNE_CANDIDATES, h, &found));
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (found == 0)
        die("matmul: cuBLASLt has no algorithm for M=%d N=%d K=%d transA=%d transB=%d lda=%d ldb=%d ldc=%d fp32_out=%d align=%d",
            M, N, K, transA, transB, lda, ldb, ldc, c_is_fp32, align);
    p->algo = h[0].algo;
    p->ncand = 0;
    if (g_matmul_force >= 0) {
        if (g_matmul_force >= found) {   /* the sweep asked past the end of the list */
            matmul_plan_destroy_(p);
            return NULL;
        }
        p->algo = h[g_matmul_force].algo;
    } else if (g_matmul_tune && beta_zero && found > 1) {
        for (int i = 0; i < found; i++) p->cand[i] = h[i].algo;
        p->ncand = found;   /* chosen at the first call, on its operands (matmul_tune_) */
    }
    g_matmul_nplans++;
    return p;
}

/* 64-bit hash of the bits of C [M rows of `words` 16-bit words, row pitch ld words], added into *out with
 * integer atomics (order-independent, so the hash is deterministic) */
__global__ void matmul_hash_kernel(unsigned long long* out, const uint16_t* C, int M, int words, size_t ld) {
    pdl_wait_prior();
    unsigned long long acc = 0;
    const size_t n = (size_t)M * words;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / words, c = i % words;
        acc += ((unsigned long long)C[r * ld + c] + 0x9E3779B97F4A7C15ull * (i + 1)) * 0xFF51AFD7ED558CCDull;
    }
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if ((threadIdx.x & 31) == 0) atomicAdd(out, acc);
}
static unsigned long long matmul_output_hash_(const void* C, int c_is_fp32, int ldc, int M, int N, cudaStream_t s) {
    const int w = c_is_fp32 ? 2 : 1;
    unsigned long long h = 0;
    CUDA_CHECK(cudaMemsetAsync(g_matmul_hash, 0, sizeof h, s));
    launch_kernel(matmul_hash_kernel, 264, 256, 0, s, g_matmul_hash, (const uint16_t*)C, M, N * w, (size_t)ldc * w);
    CUDA_CHECK(cudaMemcpyAsync(&h, g_matmul_hash, sizeof h, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    return h;
}

/* Times the plan's candidates on this call's operands (C is written, never read: beta = 0) and keeps the
 * fastest whose output hashes like the first candidate's. Runs once per plan, at its first call. */
static void matmul_tune_(MatmulPlan* p, void* C, const bf16* A, const bf16* Bm, float alpha, cudaStream_t s) {
    const float beta = 0.0f;
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    unsigned long long ref = 0;
    float best = 0.0f;
    int have_ref = 0, have_best = 0;
    for (int i = 0; i < p->ncand; i++) {
        const cublasLtMatmulAlgo_t* al = &p->cand[i];
        if (cublasLtMatmul(g_matmul_handle, p->desc, &alpha, Bm, p->lb, A, p->la, &beta, C, p->lc, C, p->lc, al,
                           g_matmul_workspace, MATMUL_WORKSPACE_BYTES, s) != CUBLAS_STATUS_SUCCESS)
            continue;   /* a candidate that refuses to run is not a candidate */
        const unsigned long long hsh = matmul_output_hash_(C, p->c_is_fp32, p->ldc, p->M, p->N, s);
        if (!have_ref) { ref = hsh; have_ref = 1; }   /* the first that runs: the heuristic's own choice */
        else if (hsh != ref) continue;   /* other bits (another summation order): never chosen */
        float t = 0.0f;
        for (int r = 0; r < MATMUL_TUNE_REPS; r++) {
            CUDA_CHECK(cudaEventRecord(e0, s));
            CUBLAS_CHECK(cublasLtMatmul(g_matmul_handle, p->desc, &alpha, Bm, p->lb, A, p->la, &beta, C, p->lc, C,
                                        p->lc, al, g_matmul_workspace, MATMUL_WORKSPACE_BYTES, s));
            CUDA_CHECK(cudaEventRecord(e1, s));
            CUDA_CHECK(cudaEventSynchronize(e1));
            float ms;
            CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
            if (r == 0 || ms < t) t = ms;
        }
        if (!have_best || t < best) { best = t; p->algo = *al; have_best = 1; }
    }
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    p->ncand = 0;
}

/* The simple path, and the row-major contract of matmul() spelled out: thread (n, m) computes
 * C[m,n] = alpha * sum_k op(A)[m,k] op(B)[k,n] + beta * C[m,n] in fp32. C is not read when beta = 0
 * (it may hold garbage, as cuBLASLt allows). */
__global__ void matmul_simple_kernel(void* C, int c_is_fp32, int ldc, const bf16* A, int lda, int transA,
                                     const bf16* Bm, int ldb, int transB, int M, int N, int K, float alpha,
                                     float beta) {
    pdl_wait_prior();
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    for (int m = blockIdx.y; m < M; m += gridDim.y) {   /* the grid's y is capped at 65535 rows */
        float acc = 0.0f;
        for (int k = 0; k < K; k++) {
            float a = bf2f(transA ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k]);
            float b = bf2f(transB ? Bm[(size_t)n * ldb + k] : Bm[(size_t)k * ldb + n]);
            acc += a * b;
        }
        size_t o = (size_t)m * ldc + n;
        if (c_is_fp32) {
            float* c = (float*)C;
            c[o] = alpha * acc + (beta != 0.0f ? beta * c[o] : 0.0f);
        } else {
            bf16* c = (bf16*)C;
            c[o] = f2bf(alpha * acc + (beta != 0.0f ? beta * bf2f(c[o]) : 0.0f));
        }
    }
}
static inline void matmul_simple(void* C, int c_is_fp32, int ldc, const bf16* A, int lda, int transA,
                                 const bf16* Bm, int ldb, int transB, int M, int N, int K, float alpha, float beta,
                                 cudaStream_t s) {
    dim3 grid((N + 127) / 128, M < 65535 ? M : 65535);
    launch_kernel(matmul_simple_kernel, grid, 128, 0, s, C, c_is_fp32, ldc, A, lda, transA, Bm, ldb, transB, M, N, K,
                  alpha, beta);
}

/* C[M,N] (ldc) = alpha * op(A) @ op(B) + beta * C, row-major.
 * op(A) [M,K]: A stored [M,K] (lda), or [K,M] if transA.  op(B) [K,N]: B stored [K,N] (ldb), or [N,K] if transB.
 * C is fp32 when c_is_fp32 (e.g. parameter gradients, beta = 1 to accumulate), else bf16. */
static inline void matmul(void* C, int c_is_fp32, int ldc, const bf16* A, int lda, int transA,
                          const bf16* Bm, int ldb, int transB, int M, int N, int K,
                          float alpha, float beta, cudaStream_t s) {
    if (!g_matmul_handle) die("matmul: call matmul_init() first");
    if (M <= 0 || N <= 0 || K <= 0) die("matmul: bad shape M=%d N=%d K=%d", M, N, K);
    if (ldc < N || lda < (transA ? M : K) || ldb < (transB ? K : N))
        die("matmul: leading dims too small (M=%d N=%d K=%d lda=%d ldb=%d ldc=%d transA=%d transB=%d)",
            M, N, K, lda, ldb, ldc, transA, transB);
    uintptr_t parts[6] = {(uintptr_t)C, (uintptr_t)A, (uintptr_t)Bm, (uintptr_t)ldc * (c_is_fp32 ? 4u : 2u),
                          (uintptr_t)lda * 2u, (uintptr_t)ldb * 2u};
    int align = matmul_alignment_(parts, 6);
    if (align < 2) die("matmul: a pointer is not even 2-byte aligned");
    if (g_matmul_simple) {
        matmul_simple(C, c_is_fp32, ldc, A, lda, transA, Bm, ldb, transB, M, N, K, alpha, beta, s);
        return;
    }
    MatmulPlan* p = matmul_plan_(M, N, K, lda, ldb, ldc, transA ? 1 : 0, transB ? 1 : 0, c_is_fp32 ? 1 : 0,
                                 beta == 0.0f, align);
    if (!p) return;   /* dev/matmul's sweep only */
    if (p->ncand) matmul_tune_(p, C, A, Bm, alpha, s);
    CUBLAS_CHECK(cublasLtMatmul(g_matmul_handle, p->desc, &alpha, Bm, p->lb, A, p->la, &beta, C, p->lc, C, p->lc,
                                &p->algo, g_matmul_workspace, MATMUL_WORKSPACE_BYTES, s));
}

/* y[M,N] (row stride ldy) = x[M,K] (row stride ldx) @ W[N,K]^T   (nn.Linear, no bias) */
static inline void linear_forward_ld(bf16* y, int ldy, const bf16* x, int ldx, const bf16* W, int M, int N, int K,
                                     cudaStream_t s) {
    matmul(y, 0, ldy, x, ldx, 0, W, K, 1, M, N, K, 1.0f, 0.0f, s);
}
static inline void linear_forward(bf16* y, const bf16* x, const bf16* W, int M, int N, int K, cudaStream_t s) {
    linear_forward_ld(y, N, x, K, W, M, N, K, s);
}

/* dx[M,K] (lddx) = dy[M,N] (lddy) @ W[N,K]   (written; NULL skips it. To ADD into dx use matmul with beta=1)
 * dW[N,K] fp32 += dy^T @ x[M,K] (ldx)         (NULL skips it) */
static inline void linear_backward_ld(bf16* dx, int lddx, float* dW, const bf16* dy, int lddy, const bf16* x, int ldx,
                                      const bf16* W, int M, int N, int K, cudaStream_t s) {
    if (dx) matmul(dx, 0, lddx, dy, lddy, 0, W, K, 0, M, K, N, 1.0f, 0.0f, s);
    if (dW) matmul(dW, 1, K, dy, lddy, 1, x, ldx, 0, N, K, M, 1.0f, 1.0f, s);
}
static inline void linear_backward(bf16* dx, float* dW, const bf16* dy, const bf16* x, const bf16* W, int M, int N,
                                   int K, cudaStream_t s) {
    linear_backward_ld(dx, K, dW, dy, N, x, K, W, M, N, K, s);
}

#endif /* COMMON_MATMUL_CUH */
