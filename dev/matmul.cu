/*
 * dev/matmul.cu — harness for common/matmul.cuh: the three uses of a linear layer (forward y = x W^T,
 * input gradient dx = dy W, weight gradient dW += dy^T x into fp32) checked against the double CPU
 * reference and timed at the model shapes against the card's 790 TFLOP/s.
 *
 *   ./dev/matmul [1|2] [--check] [-M 32768 -N 1024 -K 1024] [--reps 50]   (env: MATMUL_ALGOS=n sweeps the heuristic's
 *   first n choices; MATMUL_DX_ACC=1 adds dx += dy W into bf16, Mamba's x_proj input gradient, and dW written)
 *   v1: matmul_simple, one thread per output (the row-major meaning spelled out; the MATMUL_SIMPLE=1 path)
 *   v2: production cuBLASLt wrapper from common/matmul.cuh
 * Default run times v2 (v1 only when asked for) at the GLA-340M / Mamba-370M layer shapes, M = B*T = 32768;
 * -M/-N/-K time one shape instead.
 */
#include "../common/matmul.cuh"
#include "harness.h"
#include "ref_core.h"

/* v1 is matmul_simple from common/matmul.cuh (the MATMUL_SIMPLE=1 path, also the teaching version) */
typedef void (*MatmulFn)(void*, int, int, const bf16*, int, int, const bf16*, int, int, int, int, int, float, float,
                         cudaStream_t);
static MatmulFn version_fn(int v) { return v == 1 ? matmul_simple : matmul; }
#define NVERSIONS 2

/* ---------------- check ---------------- */
static uint64_t g_seed = 1234;

/* random bf16-exact host array in [-1,1] and its device copy */
static float* host_rand(size_t n) {
    float* h = (float*)malloc_check(n * sizeof(float));
    fill_uniform(h, n, -1.0f, 1.0f, g_seed++);
    round_to_bf16(h, n);
    return h;
}

/* One linear layer at (M,N,K) with row strides ldx >= K, ldy >= N (column slices of wider buffers):
 * forward, dx, dW (+= onto random fp32 start). Large shapes check a sample of rows / dW rows. */
static int check_linear(int v, int M, int N, int K, int ldx, int ldy) {
    MatmulFn mm = version_fn(v);
    char what[160];
    int fails = 0;
    float* hx = host_rand((size_t)M * ldx);
    float* hW = host_rand((size_t)N * K);
    float* hdy = host_rand((size_t)M * ldy);
    float* hdW0 = host_rand((size_t)N * K);
    bf16 *dx_in = upload_bf16(hx, (size_t)M * ldx), *dW_in = upload_bf16(hW, (size_t)N * K);
    bf16* ddy = upload_bf16(hdy, (size_t)M * ldy);
    bf16* dy_out = (bf16*)dmalloc((size_t)M * ldy * sizeof(bf16));
    bf16* ddx = (bf16*)dmalloc((size_t)M * ldx * sizeof(bf16));
    float* ddW = upload_f32(hdW0, (size_t)N * K);
    poison(dy_out, (size_t)M * ldy * sizeof(bf16));
    poison(ddx, (size_t)M * ldx * sizeof(bf16));
    /* y = x W^T ; dx = dy W ; dW += dy^T x — exactly what linear_forward_ld / linear_backward_ld do */
    mm(dy_out, 0, ldy, dx_in, ldx, 0, dW_in, K, 1, M, N, K, 1.0f, 0.0f, 0);
    mm(ddx, 0, ldx, ddy, ldy, 0, dW_in, K, 0, M, K, N, 1.0f, 0.0f, 0);
    mm(ddW, 1, K, ddy, ldy, 1, dx_in, ldx, 0, N, K, M, 1.0f, 1.0f, 0);
    CUDA_CHECK(cudaDeviceSynchronize());

    /* rows of y / dx to check */
    /* all rows while the double reference stays under ~6e8 multiply-adds, else an evenly spread sample */
    double per_row = (double)N * K;
    int nr = (double)M * per_row <= 6e8 ? M : (int)fmax(8.0, fmin(256.0, 3e8 / per_row));
    int* rows = (int*)malloc_check(sizeof(int) * nr);
    for (int i = 0; i < nr; i++) rows[i] = nr == M ? i : (int)(((size_t)i * 7919u + 13u) % (size_t)M);
    /* columns (n) of dW to check */
    int nn = (size_t)N * M <= ((size_t)1 << 24) ? N : 16;
    int* ncols = (int*)malloc_check(sizeof(int) * nn);
    for (int i = 0; i < nn; i++) ncols[i] = nn == N ? i : (int)(((size_t)i * 104729u + 7u) % (size_t)N);

    double* W = to_double(hW, (size_t)N * K);
    double* xr = (double*)malloc_check(sizeof(double) * K);
    double* dyr = (double*)malloc_check(sizeof(double) * N);
    double* ref_y = (double*)malloc_check(sizeof(double) * (size_t)nr * N);
    double* ref_dx = (double*)calloc((size_t)nr * K, sizeof(double));
    float* got_y = (float*)malloc_check(sizeof(float) * (size_t)nr * N);
    float* got_dx = (float*)malloc_check(sizeof(float) * (size_t)nr * K);
    float* hy_all = (float*)malloc_check(sizeof(float) * (size_t)M * ldy);
    float* hdx_all = (float*)malloc_check(sizeof(float) * (size_t)M * ldx);
    download_bf16(hy_all, dy_out, (size_t)M * ldy);
    download_bf16(hdx_all, ddx, (size_t)M * ldx);
    for (int i = 0; i < nr; i++) {
        int m = rows[i];
        for (int k = 0; k < K; k++) xr[k] = hx[(size_t)m * ldx + k];
        for (int n = 0; n < N; n++) dyr[n] = hdy[(size_t)m * ldy + n];
        ref_linear_forward(ref_y + (size_t)i * N, xr, W, NULL, 1, N, K);
        ref_linear_backward(ref_dx + (size_t)i * K, NULL, NULL, dyr, NULL, W, 1, N, K);
        for (int n = 0; n < N; n++) got_y[(size_t)i * N + n] = hy_all[(size_t)m * ldy + n];
        for (int k = 0; k < K; k++) got_dx[(size_t)i * K + k] = hdx_all[(size_t)m * ldx + k];
    }
    snprintf(what, sizeof what, "v%d forward  M=%d N=%d K=%d ldx=%d ldy=%d (%d rows)", v, M, N, K, ldx, ldy, nr);
    fails += check_report(what, ref_y, got_y, (size_t)nr * N, 1e-2);
    snprintf(what, sizeof what, "v%d dx       M=%d N=%d K=%d ldx=%d ldy=%d (%d rows)", v, M, N, K, ldx, ldy, nr);
    fails += check_report(what, ref_dx, got_dx, (size_t)nr * K, 1e-2);

    /* dW rows ncols: dW0 + sum_m dy[m,n] x[m,:] */
    double* ref_dW = (double*)malloc_check(sizeof(double) * (size_t)nn * K);
    float* got_dW = (float*)malloc_check(sizeof(float) * (size_t)nn * K);
    float* hdW_all = (float*)malloc_check(sizeof(float) * (size_t)N * K);
    download_f32(hdW_all, ddW, (size_t)N * K);
    for (int i = 0; i < nn; i++) {
        int n = ncols[i];
        double* r = ref_dW + (size_t)i * K;
        for (int k = 0; k < K; k++) r[k] = hdW0[(size_t)n * K + k];
        for (int m = 0; m < M; m++) {
            double g = hdy[(size_t)m * ldy + n];
            const float* xm = hx + (size_t)m * ldx;
            for (int k = 0; k < K; k++) r[k] += g * xm[k];
        }
        for (int k = 0; k < K; k++) got_dW[(size_t)i * K + k] = hdW_all[(size_t)n * K + k];
    }
    snprintf(what, sizeof what, "v%d dW+=     M=%d N=%d K=%d ldx=%d ldy=%d (%d rows)", v, M, N, K, ldx, ldy, nn);
    fails += check_report(what, ref_dW, got_dW, (size_t)nn * K, 1e-4);

    /* determinism: the accumulate again from the same start gives the same bits */
    if (v == NVERSIONS) {
        float* again = (float*)malloc_check(sizeof(float) * (size_t)N * K);
        CUDA_CHECK(cudaMemcpy(ddW, hdW0, sizeof(float) * (size_t)N * K, cudaMemcpyHostToDevice));
        mm(ddW, 1, K, ddy, ldy, 1, dx_in, ldx, 0, N, K, M, 1.0f, 1.0f, 0);
        download_f32(again, ddW, (size_t)N * K);
        int same = memcmp(again, hdW_all, sizeof(float) * (size_t)N * K) == 0;
        printf("%s v%d dW+= deterministic M=%d N=%d K=%d (bit-identical rerun)\n", same ? "PASS" : "FAIL", v, M, N, K);
        fails += !same;
        free(again);
    }

    free(hx); free(hW); free(hdy); free(hdW0); free(rows); free(ncols); free(W); free(xr); free(dyr);
    free(ref_y); free(ref_dx); free(got_y); free(got_dx); free(hy_all); free(hdx_all);
    free(ref_dW); free(got_dW); free(hdW_all);
    CUDA_CHECK(cudaFree(dx_in)); CUDA_CHECK(cudaFree(dW_in)); CUDA_CHECK(cudaFree(ddy));
    CUDA_CHECK(cudaFree(dy_out)); CUDA_CHECK(cudaFree(ddx)); CUDA_CHECK(cudaFree(ddW));
    return fails;
}

/* fp32-output forward with beta = 0 and alpha != 1 (the generic entry point, other flags) */
static int check_fp32_out(int v, int M, int N, int K) {
    MatmulFn mm = version_fn(v);
    float* hA = host_rand((size_t)K * M); /* stored [K,M]: transA = 1 */
    float* hB = host_rand((size_t)K * N); /* stored [K,N]: transB = 0 */
    bf16 *dA = upload_bf16(hA, (size_t)K * M), *dB = upload_bf16(hB, (size_t)K * N);
    float* dC = (float*)dmalloc(sizeof(float) * (size_t)M * N);
    poison(dC, sizeof(float) * (size_t)M * N);
    mm(dC, 1, N, dA, M, 1, dB, N, 0, M, N, K, 0.5f, 0.0f, 0);
    float* got = (float*)malloc_check(sizeof(float) * (size_t)M * N);
    download_f32(got, dC, (size_t)M * N);
    double* ref = (double*)calloc((size_t)M * N, sizeof(double));
    for (int k = 0; k < K; k++)
        for (int m = 0; m < M; m++) {
            double a = 0.5 * hA[(size_t)k * M + m];
            for (int n = 0; n < N; n++) ref[(size_t)m * N + n] += a * hB[(size_t)k * N + n];
        }
    char what[128];
    snprintf(what, sizeof what, "v%d fp32-out transA alpha=0.5 M=%d N=%d K=%d", v, M, N, K);
    int f = check_report(what, ref, got, (size_t)M * N, 1e-5);
    free(hA); free(hB); free(got); free(ref);
    CUDA_CHECK(cudaFree(dA)); CUDA_CHECK(cudaFree(dB)); CUDA_CHECK(cudaFree(dC));
    return f;
}

/* ---------------- timing ---------------- */
typedef struct {
    MatmulFn mm;
    int M, N, K, which; /* 0 forward, 1 dx, 2 dW, 3 dx +=, 4 dW = */
    bf16 *x, *W, *dy, *y, *dx;
    float* dW;
} TimeCtx;

static void run_one(void* p) {
    TimeCtx* c = (TimeCtx*)p;
    if (c->which == 0) c->mm(c->y, 0, c->N, c->x, c->K, 0, c->W, c->K, 1, c->M, c->N, c->K, 1.0f, 0.0f, 0);
    if (c->which == 1) c->mm(c->dx, 0, c->K, c->dy, c->N, 0, c->W, c->K, 0, c->M, c->K, c->N, 1.0f, 0.0f, 0);
    if (c->which == 2) c->mm(c->dW, 1, c->K, c->dy, c->N, 1, c->x, c->K, 0, c->N, c->K, c->M, 1.0f, 1.0f, 0);
    /* dx += dy W into bf16 (beta = 1): Mamba's x_proj input gradient, added onto the scan's du */
    if (c->which == 3) c->mm(c->dx, 0, c->K, c->dy, c->N, 0, c->W, c->K, 0, c->M, c->K, c->N, 1.0f, 1.0f, 0);
    /* dW written (beta = 0), as a first contribution to a zeroed gradient could be */
    if (c->which == 4) c->mm(c->dW, 1, c->K, c->dy, c->N, 1, c->x, c->K, 0, c->N, c->K, c->M, 1.0f, 0.0f, 0);
}

/* MATMUL_ALGOS=n (environment): time each of the heuristic's first n choices of every product (instead of the
 * production's tuned choice), with its config and whether its output has the first choice's bits */
static int algo_cfg_(const cublasLtMatmulAlgo_t* al, cublasLtMatmulAlgoConfigAttributes_t a) {
    uint32_t v = 0;
    size_t got = 0;
    if (cublasLtMatmulAlgoConfigGetAttribute(al, a, &v, sizeof v, &got) != CUBLAS_STATUS_SUCCESS) return -1;
    return (int)v;
}
static void sweep_algos(TimeCtx* c, const char* what0, int nalg, int reps) {
    /* the output whose bits are compared: y, dx, or (dW+=, fp32) dW */
    const int dw = c->which == 2;
    size_t n = c->which == 0 ? (size_t)c->M * c->N : dw ? (size_t)c->N * c->K * 2 : (size_t)c->M * c->K;
    void* out = c->which == 0 ? (void*)c->y : dw ? (void*)c->dW : (void*)c->dx;   /* n counts 2-byte words */
    uint16_t* ref = (uint16_t*)malloc_check(n * 2);
    uint16_t* cur = (uint16_t*)malloc_check(n * 2);
    for (int i = 0; i < nalg; i++) {
        matmul_free();
        matmul_init();
        g_matmul_force = i;
        run_one(c);
        if (g_matmul_nplans == 0) break;   /* the list had fewer choices */
        CUDA_CHECK(cudaDeviceSynchronize());
        const cublasLtMatmulAlgo_t* al = &g_matmul_plans[0].algo;
        if (c->which >= 2) {   /* the same starting dW / dx for every choice: 0, then one accumulation */
            CUDA_CHECK(cudaMemset(out, 0, n * 2));
            run_one(c);
            CUDA_CHECK(cudaDeviceSynchronize());
        }
        CUDA_CHECK(cudaMemcpy(i == 0 ? ref : cur, out, n * 2, cudaMemcpyDeviceToHost));
        const int same = i == 0 || memcmp(ref, cur, n * 2) == 0;
        float ms = time_kernel(run_one, c, reps);
        printf("  %-40s algo#%d id %d tile %d stages %d splitK %d swizzle %d custom %d: %.4f ms %.1f TFLOP/s%s\n", what0,
               i, algo_cfg_(al, CUBLASLT_ALGO_CONFIG_ID), algo_cfg_(al, CUBLASLT_ALGO_CONFIG_TILE_ID),
               algo_cfg_(al, CUBLASLT_ALGO_CONFIG_STAGES_ID), algo_cfg_(al, CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
               algo_cfg_(al, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING), algo_cfg_(al, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION),
               ms, 2.0 * c->M * c->N * c->K / (ms * 1e9), same ? " same bits" : " OTHER BITS");
    }
    g_matmul_force = -1;
    matmul_free();
    matmul_init();
    free(ref);
    free(cur);
}

static void time_shape(int v, const char* name, int M, int N, int K, int reps) {
    TimeCtx c;
    c.mm = version_fn(v);
    c.M = M; c.N = N; c.K = K;
    size_t nx = (size_t)M * K, nW = (size_t)N * K, ny = (size_t)M * N;
    float* h = (float*)malloc_check(sizeof(float) * (nx > ny ? (nx > nW ? nx : nW) : (ny > nW ? ny : nW)));
    fill_uniform(h, nx, -1, 1, g_seed++); c.x = upload_bf16(h, nx);
    fill_uniform(h, nW, -1, 1, g_seed++); c.W = upload_bf16(h, nW);
    fill_uniform(h, ny, -1, 1, g_seed++); c.dy = upload_bf16(h, ny);
    fill_uniform(h, nW, -1, 1, g_seed++); c.dW = upload_f32(h, nW);
    c.y = (bf16*)dmalloc(ny * sizeof(bf16));
    c.dx = (bf16*)dmalloc(nx * sizeof(bf16));
    CUDA_CHECK(cudaMemset(c.dx, 0, nx * sizeof(bf16)));
    free(h);
    const char* use[5] = {"fwd", "dx", "dW+=", "dx+=", "dW="};
    double flops = 2.0 * M * N * K;
    double bytes[5] = {2.0 * (nx + nW + ny), 2.0 * (ny + nW + nx), 2.0 * (ny + nx) + 8.0 * nW, 2.0 * (ny + nW + 2 * nx),
                       2.0 * (ny + nx) + 4.0 * nW};
    const char* sweep = getenv("MATMUL_ALGOS");
    /* MATMUL_DX_ACC=1: also dx += (beta = 1, bf16) and dW written (beta = 0) */
    const int nuse = getenv("MATMUL_DX_ACC") ? 5 : 3;
    for (int w = 0; w < nuse; w++) {
        c.which = w;
        if (sweep && v == 2 && w < 4) {
            char what[96];
            snprintf(what, sizeof what, "%-7s %-4s M=%d N=%d K=%d", name, use[w], M, N, K);
            sweep_algos(&c, what, atoi(sweep), reps);
            continue;
        }
        float ms = time_kernel(run_one, &c, v == 1 ? 3 : reps);
        char what[96];
        snprintf(what, sizeof what, "v%d %-7s %-4s M=%d N=%d K=%d", v, name, use[w], M, N, K);
        time_report(what, ms, bytes[w], flops);
    }
    CUDA_CHECK(cudaFree(c.x)); CUDA_CHECK(cudaFree(c.W)); CUDA_CHECK(cudaFree(c.dy));
    CUDA_CHECK(cudaFree(c.dW)); CUDA_CHECK(cudaFree(c.y)); CUDA_CHECK(cudaFree(c.dx));
}

int main(int argc, char** argv) {
    harness_versions(argc, argv, NVERSIONS);
    HarnessArgs a = harness_args(argc, argv);
    require_gpu_or_skip("matmul");
    matmul_init();
    int v0 = a.version ? a.version : 1, v1 = a.version ? a.version : NVERSIONS;
    if (a.check) {
        int fails = 0;
        for (int v = v0; v <= v1; v++) {
            fails += check_linear(v, 64, 48, 32, 32, 48);
            fails += check_linear(v, 1, 40, 24, 24, 40);       /* one row */
            fails += check_linear(v, 100, 72, 40, 40, 72);
            fails += check_linear(v, 37, 33, 21, 21, 33);       /* odd sizes: 2-byte aligned operands */
            fails += check_linear(v, 300, 200, 136, 200, 264);  /* column slices of wider buffers */
            fails += check_linear(v, 513, 1024, 1024, 1024, 1024);
            /* the two products whose outputs compute-sanitizer initcheck reports as read uninitialised in the
             * model tests (README, Sanitizers): GLA's forget-gate gz (x = z1, K = 16, a column slice of the
             * fused projection; a product of its own until session 19) and Mamba's in_proj, at the tests' shapes. Poisoned outputs prove every element
             * is written. */
            fails += check_linear(v, 200, 128, 16, 3088, 128);
            fails += check_linear(v, 74, 256, 64, 64, 256);
            fails += check_fp32_out(v, 96, 80, 64);
            /* the model shapes check cuBLASLt's large-tile paths; MATMUL_SIMPLE=1 (racecheck, initcheck) makes
             * v2 the simple kernel of v1, which at these shapes would run for hours under the sanitizers */
            if (v == NVERSIONS && g_matmul_simple)
                printf("SKIP v2 model shapes (MATMUL_SIMPLE=1: v2 runs v1's kernel, checked above)\n");
            else if (v == NVERSIONS) {
                fails += check_linear(v, 8192, 3088, 1024, 1024, 3088); /* model shape (GLA w_in), sampled */
                fails += check_linear(v, 8192, 32000, 1024, 1024, 32000); /* lm_head shape, sampled */
            }
        }
        printf("%s matmul: %d failure(s)\n", fails ? "FAIL" : "PASS", fails);
        matmul_free();
        return fails ? 1 : 0;
    }
    int M = (int)harness_get(&a, 'M', 32768);
    if (a.val['N' - 'A'] > 0 || a.val['K' - 'A'] > 0) {
        for (int v = v0; v <= v1; v++)
            time_shape(v, "custom", M, (int)harness_get(&a, 'N', 1024), (int)harness_get(&a, 'K', 1024), a.reps);
    } else {
        struct { const char* name; int N, K; } shapes[] = {
            {"gla_in", 3088, 1024}, {"gla_o", 1024, 1024}, {"mlp_gu", 5632, 1024}, {"mlp_dn", 1024, 2816},
            {"mb_in", 4096, 1024}, {"mb_x", 96, 2048}, {"mb_dt", 2048, 64}, {"mb_out", 1024, 2048},
            {"lm_head", 32000, 1024},
        };
        for (int v = a.version ? a.version : NVERSIONS; v <= v1; v++)
            for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
                time_shape(v, shapes[i].name, M, shapes[i].N, shapes[i].K, a.reps);
    }
    matmul_free();
    return 0;
}
