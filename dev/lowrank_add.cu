/*
 * dev/lowrank_add.cu — harness for common/lowrank.cuh: C[M,N] += A[M,K] B[K,N] in place in bf16 for a short K
 * (Mamba's x_proj input gradient du += dxdbl w_x), checked against the double CPU reference and timed at the
 * Mamba shapes against the bytes' floor (C read and written).
 *
 *   ./dev/lowrank_add [1|2] [--check] [-M 32768 -N 2048 -K 96] [--reps 50]
 *   v1: cuBLASLt through matmul() with beta = 1 (the production path until session 21, still the fallback)
 *   v2: production lowrank_add (its own tensor-core kernel where the shape allows: a block per 128 columns and
 *       share of the row tiles, two 64-row tiles in flight; K above 128, e.g. mamba-1.4b's 160, goes to cuBLASLt)
 * --check: random C, A, B at ragged shapes (M and N not multiples of the 128 x 128 tile, K with a half mma step,
 * column slices of wider buffers with their padding poisoned: it must stay as it was), the fallback shapes, and
 * a bit-identical rerun. The default run times both versions at mamba-370m, 130m and 1.4b.
 */
#include "../common/lowrank.cuh"
#include "harness.h"

#define NVERSIONS 2
static void run_version(int v, bf16* C, int ldc, const bf16* A, int lda, const bf16* B, int ldb, int M, int N, int K) {
    if (v == 1) {
        matmul(C, 0, ldc, A, lda, 0, B, ldb, 0, M, N, K, 1.0f, 1.0f, 0);
        return;
    }
    lowrank_add(C, ldc, A, lda, B, ldb, M, N, K, 0);
}

static uint64_t g_seed = 4242;
static float* host_rand(size_t n) {
    float* h = (float*)malloc_check(n * sizeof(float));
    fill_uniform(h, n, -1.0f, 1.0f, g_seed++);
    round_to_bf16(h, n);
    return h;
}

/* one product at (M, N, K) with row pitches lda >= K, ldb >= N, ldc >= N */
static int check_shape(int v, int M, int N, int K, int lda, int ldb, int ldc) {
    float* hA = host_rand((size_t)M * lda);
    float* hB = host_rand((size_t)K * ldb);
    float* hC = host_rand((size_t)M * ldc);
    bf16 *dA = upload_bf16(hA, (size_t)M * lda), *dB = upload_bf16(hB, (size_t)K * ldb);
    bf16* dC = upload_bf16(hC, (size_t)M * ldc);
    /* the columns beyond N of each C row belong to someone else: poisoned, they must come back poisoned */
    for (int m = 0; m < M && ldc > N; m++) poison(dC + (size_t)m * ldc + N, (size_t)(ldc - N) * sizeof(bf16));
    run_version(v, dC, ldc, dA, lda, dB, ldb, M, N, K);
    CUDA_CHECK(cudaDeviceSynchronize());

    uint16_t* raw = (uint16_t*)malloc_check((size_t)M * ldc * 2);
    CUDA_CHECK(cudaMemcpy(raw, dC, (size_t)M * ldc * 2, cudaMemcpyDeviceToHost));
    float* got = (float*)malloc_check(sizeof(float) * (size_t)M * N);
    double* ref = (double*)malloc_check(sizeof(double) * (size_t)M * N);
    int pad_ok = 1;
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            double s = hC[(size_t)m * ldc + n];
            for (int k = 0; k < K; k++) s += (double)hA[(size_t)m * lda + k] * hB[(size_t)k * ldb + n];
            ref[(size_t)m * N + n] = s;
            uint32_t bits = (uint32_t)raw[(size_t)m * ldc + n] << 16;
            memcpy(&got[(size_t)m * N + n], &bits, 4);
        }
        for (int n = N; n < ldc; n++) pad_ok &= raw[(size_t)m * ldc + n] == 0xFFFF;
    }
    char what[160];
    int path = v >= 2 && lowrank_fits(dC, ldc, dA, lda, dB, ldb, N, K);
    snprintf(what, sizeof what, "v%d C += A B  M=%d N=%d K=%d lda=%d ldb=%d ldc=%d (%s)", v, M, N, K, lda, ldb, ldc,
             v == 1 ? "cuBLASLt" : path ? "own kernel" : "fallback: cuBLASLt");
    int fails = check_report(what, ref, got, (size_t)M * N, 1e-2);
    printf("%s v%d padding columns untouched M=%d N=%d ldc=%d\n", pad_ok ? "PASS" : "FAIL", v, M, N, ldc);
    fails += !pad_ok;

    /* the same start again gives the same bits */
    uint16_t* raw2 = (uint16_t*)malloc_check((size_t)M * ldc * 2);
    bf16* dC2 = upload_bf16(hC, (size_t)M * ldc);
    for (int m = 0; m < M && ldc > N; m++) poison(dC2 + (size_t)m * ldc + N, (size_t)(ldc - N) * sizeof(bf16));
    run_version(v, dC2, ldc, dA, lda, dB, ldb, M, N, K);
    CUDA_CHECK(cudaMemcpy(raw2, dC2, (size_t)M * ldc * 2, cudaMemcpyDeviceToHost));
    int same = memcmp(raw, raw2, (size_t)M * ldc * 2) == 0;
    printf("%s v%d deterministic M=%d N=%d K=%d (bit-identical rerun)\n", same ? "PASS" : "FAIL", v, M, N, K);
    fails += !same;

    free(hA); free(hB); free(hC); free(raw); free(raw2); free(got); free(ref);
    CUDA_CHECK(cudaFree(dA)); CUDA_CHECK(cudaFree(dB)); CUDA_CHECK(cudaFree(dC)); CUDA_CHECK(cudaFree(dC2));
    return fails;
}

typedef struct { int v, M, N, K; bf16 *A, *B, *C; } TimeCtx;
static void run_one(void* p) {
    TimeCtx* c = (TimeCtx*)p;
    run_version(c->v, c->C, c->N, c->A, c->K, c->B, c->N, c->M, c->N, c->K);
}
static void time_shape(int v, const char* name, int M, int N, int K, int reps) {
    TimeCtx c = {v, M, N, K, NULL, NULL, NULL};
    size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
    float* h = (float*)malloc_check(sizeof(float) * nc);
    /* small values: C grows by A B at every timed call, and must stay finite over the repetitions */
    fill_uniform(h, na, -0.1f, 0.1f, g_seed++); c.A = upload_bf16(h, na);
    fill_uniform(h, nb, -0.1f, 0.1f, g_seed++); c.B = upload_bf16(h, nb);
    fill_uniform(h, nc, -1, 1, g_seed++); c.C = upload_bf16(h, nc);
    free(h);
    float ms = time_kernel(run_one, &c, reps);
    double bytes = 2.0 * (2.0 * nc + na + nb), flops = 2.0 * M * N * K;
    char what[96];
    snprintf(what, sizeof what, "v%d %-10s M=%d N=%d K=%d", v, name, M, N, K);
    time_report(what, ms, bytes, flops);
    printf("%-40s floor %.4f ms (C read and written, A and B once)\n", "", floor_ms(bytes, flops));
    CUDA_CHECK(cudaFree(c.A)); CUDA_CHECK(cudaFree(c.B)); CUDA_CHECK(cudaFree(c.C));
}

int main(int argc, char** argv) {
    harness_versions(argc, argv, NVERSIONS);
    HarnessArgs a = harness_args(argc, argv);
    require_gpu_or_skip("lowrank_add");
    matmul_init();
    int v0 = a.version ? a.version : 1, v1 = a.version ? a.version : NVERSIONS;
    if (a.check) {
        int fails = 0;
        for (int v = v0; v <= v1; v++) {
            fails += check_shape(v, 300, 136, 96, 96, 136, 136);    /* x_proj's K at mamba-370m, ragged M and N */
            fails += check_shape(v, 128, 128, 16, 16, 128, 128);    /* one whole tile, one mma step */
            fails += check_shape(v, 1, 8, 8, 8, 8, 8);              /* one row, a half mma step */
            fails += check_shape(v, 517, 264, 80, 96, 272, 280);    /* mamba-130m's K; slices of wider buffers */
            fails += check_shape(v, 261, 520, 160, 160, 520, 528);  /* mamba-1.4b's K: cuBLASLt */
            fails += check_shape(v, 130, 40, 128, 128, 40, 48);     /* the largest K the kernel takes */
            fails += check_shape(v, 130, 40, 120, 120, 40, 48);     /* its 4 A chunks a thread, the last half zero */
            fails += check_shape(v, 8000, 1024, 96, 96, 1024, 1024); /* about 8 row tiles a block walks */
            fails += check_shape(v, 100, 72, 45, 45, 72, 72);       /* fallback: K % 8 != 0 (an odd dt_rank) */
            fails += check_shape(v, 100, 36, 48, 48, 36, 36);       /* fallback: N % 8 != 0 */
        }
        printf("%s lowrank_add: %d failure(s)\n", fails ? "FAIL" : "PASS", fails);
        matmul_free();
        return fails ? 1 : 0;
    }
    int reps = a.reps;
    if (a.val['N' - 'A'] > 0 || a.val['K' - 'A'] > 0 || a.val['M' - 'A'] > 0) {
        for (int v = v0; v <= v1; v++)
            time_shape(v, "custom", (int)harness_get(&a, 'M', 32768), (int)harness_get(&a, 'N', 2048),
                       (int)harness_get(&a, 'K', 96), reps);
    } else {
        struct { const char* name; int M, N, K; } shapes[] = {
            {"mamba-370m", 32768, 2048, 96}, {"mamba-130m", 32768, 1536, 80}, {"mamba-1.4b", 16384, 4096, 160},
        };
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            for (int v = v0; v <= v1; v++) time_shape(v, shapes[i].name, shapes[i].M, shapes[i].N, shapes[i].K, reps);
    }
    matmul_free();
    return 0;
}
