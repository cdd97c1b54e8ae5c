/*
 * dev/selective_scan_bwd.cu — harness for the selective-scan backward (common/selective_scan.cuh).
 * The problem setup lives in dev/selective_scan_fwd.cu (included below, without its main).
 *   (The first backward, which loaded every input per step per lane, ran at 6.8 ms: see dev/README_mamba.md.)
 *   v1: 8 states per lane, window 8.   v2: 4 states per lane, window 16.
 *   v3: as v4 without prefetching the next window's inputs (loaded right before staging).
 *   v4: production (SCAN_G_BWD states per lane, SCAN_WIN window, SCAN_BWD_FLAGS): 4 states per lane, window 8
 *       (128 registers, 2 blocks of 256 threads per SM), per-window staging spread over all 256 threads
 *       (ScanStageBwd), the delta/A gradient algebra folded (SCAN_BF_FOLD), the two passes paired (SCAN_BF_PAIR),
 *       the staged values packed per channel (SCAN_BF_PACK), the next event's inputs prefetched, y_pre taken
 *       from the forward (SCAN_BF_YPRE), the window's exp(delta A) kept from the recompute (SCAN_BF_SHARE; flags
 *       251). 2.925 ms at the 370m shape (session 9, flags 178); 2.535
 *       (session 13: raw B/C staging, one barrier less per event, prefetch, the flush's row stores spread over the
 *       warps)
 *   v5: the previous production (ScanPrefetch staging on 64 of 256 threads, prefetch)   3.95 ms
 *   v6: v4 without prefetch 3.14.  v7: v4 + deferred dB/dC reduction (one barrier less per window) 3.27.
 *   v8: v7 without prefetch 3.30.  v9: v7 + exp(delta A) kept from the recompute (no 3rd exp) 3.32.
 *   v10-v12: 2 states per lane (8 lanes/channel, 80 registers, 3 blocks/SM; G = 4 for N != 16) 4.16-4.20.
 *   v13: v4 + shared exp 3.17.  v14: v13 without prefetch.   (H200, --reps 10/20)
 *   v15: v4 without the fold (flags 3; the production until 2026-11-30)      3.125 ms
 *   (v6-v14 were measured against v4 without the fold.)
 *   v16: the passes paired (SCAN_BF_PAIR: each pass-2 window also runs one pass-1 window of the chunk before, so a
 *        chunk costs 16 events instead of 31) with prefetch (flags 51)                                     2.965 ms
 *   v17: the same without prefetch (flags 50)                                                           2.958 ms
 *   v18: flags 19, the production before the pairing                                                   3.033 ms
 *   v19: v17 with the staged values packed per channel (SCAN_BF_PACK, flags 178: the production v4 since session
 *        9)                                                                  2.925 ms (v17 2.947 in the same run)
 *   v20, v21: v19 with the time split into 2 / 3 segments (selective_scan_carry_kernel<FWD = false>; v4 picks the count from
 *        the grid: scan_bwd_pick).
 *   v22: v4 without prefetch (flags 178, the production from session 9 to 13): 2.760 ms against 2.630 with it (session
 *        13, before the row-store spread; prefetching lost before B/C stayed raw until store, because the
 *        conversion waited for the loads anyway).
 *   v23: flags 179, the production of session 13 (y_pre recomputed in pass 2)                            2.533 ms
 *   v24: flags 243: v23 with y_pre from the forward (SCAN_BF_YPRE), which also rebuilds y (--check compares it bit
 *        for bit with the forward's)                                                                    2.380 ms
 *        and v24 with the exp kept (flags 251, now v4): 2.353 ms (session 14, H200, --reps 20, two rounds)
 *   v25: v4 with sequence 0 walked whole and the others in 2 time segments (the grid rows of scan_bwd_row that
 *        scan_bwd_pick takes at mamba-130m, where the blocks overfill one round of the SMs' slots: 11 sequences whole,
 *        5 split), so that --check covers them at its small shapes
 * Each version: the production forward produces the saved states, then the backward runs.
 * --check compares du, ddt_raw, dz, dB, dC (written) and dA_log, dD, ddt_bias (accumulated onto random
 * starting values) with the double reference, and runs the backward twice to check bitwise determinism.
 * ./dev/selective_scan_bwd [version] [--check] [-B 16 -T 2048 -D 2048 -N 16]   (D = d_inner)
 * Build: nvcc -O3 -std=c++17 -lineinfo -gencode arch=compute_90,code=sm_90 -Icommon -Itest -Idev \
 *        dev/selective_scan_bwd.cu -o dev/selective_scan_bwd
 */
#define SCAN_HARNESS_NO_MAIN
#include "selective_scan_fwd.cu"

// version -> (G, W, flags: SCAN_BF_* bits, bit 0 = prefetch; time segments, 0: the production pick; sequences
// walked whole before the split ones, with segments > 1). G = 2 is built for N = 16 only (G = 4 otherwise).
static const int BWD_CFG[][5] = {{8, 8, 1, 1, 0}, {4, 16, 1, 1, 0}, {4, 8, 0, 1, 0},
                                 {SCAN_G_BWD, SCAN_WIN, SCAN_BWD_FLAGS, 0, 0},
                                 {4, 8, 1, 1, 0}, {4, 8, 2, 1, 0}, {4, 8, 7, 1, 0}, {4, 8, 6, 1, 0}, {4, 8, 15, 1, 0},
                                 {2, 8, 7, 1, 0}, {2, 8, 15, 1, 0}, {2, 8, 14, 1, 0}, {4, 8, 11, 1, 0}, {4, 8, 10, 1, 0},
                                 {4, 8, 3, 1, 0}, {4, 8, 51, 1, 0}, {4, 8, 50, 1, 0}, {4, 8, 19, 1, 0}, {4, 8, 178, 1, 0},
                                 {4, 8, 178, 2, 0}, {4, 8, 178, 3, 0}, {4, 8, 178, 0, 0}, {4, 8, 179, 0, 0},
                                 {4, 8, 243, 0, 0}, {SCAN_G_BWD, SCAN_WIN, SCAN_BWD_FLAGS, 2, 1}};
#define BWD_NVER 25
static int bwd_g(int v, int N) { int g = BWD_CFG[v - 1][0]; return g == 2 && N != 16 ? 4 : g; }
static size_t bwd_ws_bytes(int B, int T, int Di, int N) {
    size_t mx = 0;
    for (int v = 1; v <= BWD_NVER; v++) {
        size_t x = scan_workspace_bytes_g(B, T, Di, N, scan_pick_g(N, bwd_g(v, N)));
        mx = x > mx ? x : mx;
    }
    return mx;
}

static void scan_bwd_version(ScanProblem* p, int v) {
    selective_scan_backward_g(p->du, p->ld_du, p->ddt, p->dxz + p->Di, p->ld_dz, p->dxz, p->ld_dz, p->dxdbl + p->R,
                              p->dxdbl + p->R + p->N, p->ld_bc, p->dA_log, p->dD, p->ddt_bias, p->dy, p->saved, p->u,
                              p->ld_u, p->dt, prob_z(p), p->ld_z, prob_B(p), prob_C(p), p->ld_bc, p->A_log, p->Dskip,
                              p->dt_bias, p->B, p->T, p->Di, p->N, bwd_g(v, p->N), BWD_CFG[v - 1][1], BWD_CFG[v - 1][2],
                              BWD_CFG[v - 1][3], BWD_CFG[v - 1][4], p->ws, 0);
}
static void reset_param_grads(ScanProblem* p) {
    CUDA_CHECK(cudaMemcpy(p->dA_log, p->hdA0, (size_t)p->Di * p->N * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(p->dD, p->hdD0, p->Di * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(p->ddt_bias, p->hdb0, p->Di * sizeof(float), cudaMemcpyHostToDevice));
}
static void poison_outputs(ScanProblem* p) {
    poison(p->du, p->M * p->ld_du * sizeof(bf16));
    poison(p->ddt, p->M * p->Di * sizeof(bf16));
    poison(p->dxz, p->M * p->ld_dz * sizeof(bf16));
    poison(p->dxdbl, p->M * p->ld_bc * sizeof(bf16));
    poison(p->ws, p->ws_bytes);
}

// gather a strided bf16 device matrix [M][ld] columns [c0, c0+n) into float [M][n]
static void gather(float* out, const bf16* d, size_t M, int ld, int c0, int n) {
    float* tmp = (float*)malloc_check(M * ld * sizeof(float));
    download_bf16(tmp, d, M * ld);
    for (size_t m = 0; m < M; m++)
        for (int k = 0; k < n; k++) out[m * n + k] = tmp[m * ld + c0 + k];
    free(tmp);
}

static int check_bwd(int v, int B, int T, int Di, int N) {
    ScanProblem p = scan_problem(B, T, Di, N, 500 + T * 3 + Di + N, bwd_ws_bytes(B, T, Di, N));
    size_t M = p.M, n = M * Di;
    poison(p.saved, scan_saved_bytes(B, T, Di, N));
    scan_fwd_version(&p, FWD_PROD);
    poison_outputs(&p);
    scan_bwd_version(&p, v);
    CUDA_CHECK(cudaDeviceSynchronize());
    ScanRefIn r = scan_ref_inputs(&p);
    double *du = (double*)malloc_check(n * sizeof(double)), *ddt = (double*)malloc_check(n * sizeof(double));
    double *dz = (double*)malloc_check(n * sizeof(double));
    double *dB = (double*)malloc_check(M * N * sizeof(double)), *dC = (double*)malloc_check(M * N * sizeof(double));
    double *dA = to_double(p.hdA0, (size_t)Di * N), *dD = to_double(p.hdD0, Di), *db = to_double(p.hdb0, Di);
    ref_selective_scan_backward(du, ddt, dz, dB, dC, dA, dD, db, r.dy, r.u, r.dt, r.z, r.Bm, r.Cm, r.A, r.D, r.bias,
                                B, T, Di, N);
    size_t ngot = n > (size_t)Di * N ? n : (size_t)Di * N;
    ngot = ngot > M * N ? ngot : M * N;
    float* got = (float*)malloc_check(ngot * sizeof(float));
    char what[160];
    int fails = 0;
#define REPORT(name, ref, cnt, tol)                                                                     \
    do {                                                                                                \
        snprintf(what, sizeof what, "scan bwd v%d %-8s B=%d T=%d Di=%d N=%d", v, name, B, T, Di, N);   \
        fails += check_report(what, ref, got, cnt, tol);                                                \
    } while (0)
    gather(got, p.du, M, p.ld_du, 0, Di);               REPORT("du", du, n, 1e-2);
    download_bf16(got, p.ddt, n);                        REPORT("ddt_raw", ddt, n, 1e-2);
    gather(got, p.dxz, M, p.ld_dz, Di, Di);             REPORT("dz", dz, n, 1e-2);
    gather(got, p.dxdbl, M, p.ld_bc, p.R, N);           REPORT("dB", dB, M * N, 1e-2);
    gather(got, p.dxdbl, M, p.ld_bc, p.R + N, N);       REPORT("dC", dC, M * N, 1e-2);
    download_f32(got, p.dA_log, (size_t)Di * N);         REPORT("dA_log+=", dA, (size_t)Di * N, 2e-3);
    download_f32(got, p.dD, Di);                         REPORT("dD+=", dD, Di, 2e-3);
    download_f32(got, p.ddt_bias, Di);                   REPORT("ddt_bias+=", db, Di, 2e-3);
#undef REPORT
    if (BWD_CFG[v - 1][2] & SCAN_BF_YPRE) {   // the rebuilt y (in dxz's first half, like the trainer's): the forward's bits
        float* h1 = (float*)malloc_check(n * sizeof(float));
        float* h2 = (float*)malloc_check(n * sizeof(float));
        download_bf16(h1, p.y, n);
        gather(h2, p.dxz, M, p.ld_dz, 0, Di);
        const int same = memcmp(h1, h2, n * sizeof(float)) == 0;
        printf("%s scan bwd v%d rebuilt y == forward y (bitwise) B=%d T=%d Di=%d N=%d\n", same ? "PASS" : "FAIL", v, B, T,
               Di, N);
        fails += !same;
        free(h1); free(h2);
    }
    // determinism: twice from the same starting parameter gradients => identical bits everywhere
    {
        size_t bytes_dx = M * p.ld_bc * sizeof(bf16), bytes_du = M * p.ld_du * sizeof(bf16);
        char* s1 = (char*)malloc_check(bytes_dx + bytes_du + (size_t)Di * N * 4 + 2 * (size_t)Di * 4);
        char* s2 = (char*)malloc_check(bytes_dx + bytes_du + (size_t)Di * N * 4 + 2 * (size_t)Di * 4);
        char* s[2] = {s1, s2};
        for (int rep = 0; rep < 2; rep++) {
            reset_param_grads(&p);
            poison_outputs(&p);
            scan_bwd_version(&p, v);
            CUDA_CHECK(cudaDeviceSynchronize());
            char* q = s[rep];
            CUDA_CHECK(cudaMemcpy(q, p.dxdbl, bytes_dx, cudaMemcpyDeviceToHost)); q += bytes_dx;
            CUDA_CHECK(cudaMemcpy(q, p.du, bytes_du, cudaMemcpyDeviceToHost)); q += bytes_du;
            CUDA_CHECK(cudaMemcpy(q, p.dA_log, (size_t)Di * N * 4, cudaMemcpyDeviceToHost)); q += (size_t)Di * N * 4;
            CUDA_CHECK(cudaMemcpy(q, p.dD, (size_t)Di * 4, cudaMemcpyDeviceToHost)); q += (size_t)Di * 4;
            CUDA_CHECK(cudaMemcpy(q, p.ddt_bias, (size_t)Di * 4, cudaMemcpyDeviceToHost));
        }
        int same = memcmp(s1, s2, bytes_dx + bytes_du + (size_t)Di * N * 4 + 2 * (size_t)Di * 4) == 0;
        printf("%s scan bwd v%d determinism (dB dC du dA_log dD ddt_bias bitwise) B=%d T=%d Di=%d N=%d\n",
               same ? "PASS" : "FAIL", v, B, T, Di, N);
        fails += !same;
        free(s1); free(s2);
    }
    free(du); free(ddt); free(dz); free(dB); free(dC); free(dA); free(dD); free(db); free(got);
    scan_ref_free(&r);
    scan_problem_free(&p);
    return fails;
}

// single-token form against the parallel forward: T steps of selective_scan_step reproduce y (B = 1: the
// step's dt_raw rows are contiguous, so only one sequence can be read in place from a [B,T,Di] buffer)
static int check_step(int B, int T, int Di, int N) {
    ScanProblem p = scan_problem(B, T, Di, N, 900 + T, 16);
    size_t n = p.M * Di;
    scan_fwd_version(&p, FWD_PROD);
    float* h = (float*)dmalloc((size_t)B * Di * N * sizeof(float));
    bf16* ys = (bf16*)dmalloc(n * sizeof(bf16));   // [T][B][Di] from the steps
    CUDA_CHECK(cudaMemset(h, 0, (size_t)B * Di * N * sizeof(float)));
    for (int t = 0; t < T; t++)   // row b of step t is token (b, t): row stride T * ld
        selective_scan_step(ys + (size_t)t * B * Di, h, p.u + (size_t)t * p.ld_u, p.ld_u * T,
                            p.dt + (size_t)t * Di /* dt rows are contiguous: valid for B = 1 only */,
                            prob_z(&p) + (size_t)t * p.ld_z, p.ld_z * T, prob_B(&p) + (size_t)t * p.ld_bc,
                            prob_C(&p) + (size_t)t * p.ld_bc, p.ld_bc * T, p.A_log, p.Dskip, p.dt_bias, B, Di, N, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    float* a = (float*)malloc_check(n * sizeof(float));
    float* b = (float*)malloc_check(n * sizeof(float));
    download_bf16(a, p.y, n);
    download_bf16(b, ys, n);
    double* ref = (double*)malloc_check(n * sizeof(double));
    for (int bi = 0; bi < B; bi++)
        for (int t = 0; t < T; t++)
            for (int d = 0; d < Di; d++) ref[((size_t)bi * T + t) * Di + d] = a[((size_t)bi * T + t) * Di + d];
    float* got = (float*)malloc_check(n * sizeof(float));
    for (int bi = 0; bi < B; bi++)
        for (int t = 0; t < T; t++)
            for (int d = 0; d < Di; d++) got[((size_t)bi * T + t) * Di + d] = b[((size_t)t * B + bi) * Di + d];
    char what[128];
    snprintf(what, sizeof what, "scan step x%d vs forward y B=%d Di=%d N=%d", T, B, Di, N);
    int fails = check_report(what, ref, got, n, 1e-2);
    free(a); free(b); free(ref); free(got);
    cudaFree(h); cudaFree(ys);
    scan_problem_free(&p);
    return fails;
}

typedef struct { ScanProblem* p; int v; } BwdCtx;
static void bwd_fn(void* c) { scan_bwd_version(((BwdCtx*)c)->p, ((BwdCtx*)c)->v); }

int main(int argc, char** argv) {
    harness_versions(argc, argv, BWD_NVER);
    HarnessArgs a = harness_args(argc, argv);
    require_gpu_or_skip("selective_scan_bwd");
    const int nver = BWD_NVER;
    int v0 = a.version ? a.version : 1, v1 = a.version ? a.version : nver;
    if (a.check) {
        int fails = 0;
        for (int v = v0; v <= v1; v++)
            for (int s = 0; s < SCAN_NCHECK; s++)
                fails += check_bwd(v, SCAN_CHECK_SHAPES[s][0], SCAN_CHECK_SHAPES[s][1], SCAN_CHECK_SHAPES[s][2],
                                   SCAN_CHECK_SHAPES[s][3]);
        fails += check_step(1, 40, 24, 16);
        fails += check_step(1, 7, 16, 8);
        printf("selective_scan_bwd --check: %s (%d failures)\n", fails ? "FAIL" : "PASS", fails);
        return fails ? 1 : 0;
    }
    int B = (int)harness_get(&a, 'B', 16), T = (int)harness_get(&a, 'T', 2048), Di = (int)harness_get(&a, 'D', 2048);
    int N = (int)harness_get(&a, 'N', 16);
    ScanProblem p = scan_problem(B, T, Di, N, 7, bwd_ws_bytes(B, T, Di, N));
    scan_fwd_version(&p, FWD_PROD);
    double n = (double)B * T * Di;
    // bytes: u, dt, z, dy in; du, ddt, dz out (2 B each); B, C in, dB, dC out; saved (states, y_pre) in; partials out, in
    const int gp = scan_pick_g(N, SCAN_G_BWD);
    double part = (double)scan_dblocks(Di, N, gp) * B * T * 2 * N * 4;
    double bytes = n * 14 + (double)B * T * 4 * N * 2 + (double)scan_saved_bytes(B, T, Di, N) + 2 * part;
    double exps = n * N * (2.0 - (double)SCAN_WIN / SCAN_CHUNK);   // pass 1 (all windows but a chunk's last), recompute
    double fl_mem = floor_ms(bytes, 0), fl_ex2 = exps / SCAN_EX2_PER_S * 1e3;
    printf("selective_scan_bwd B=%d T=%d Di=%d N=%d  saved %.1f MB, workspace %.1f MB  floor: bytes %.4f ms, "
           "ex2 %.4f ms (%.2e ex2)\n", B, T, Di, N, scan_saved_bytes(B, T, Di, N) / 1e6,
           scan_workspace_bytes(B, T, Di, N) / 1e6, fl_mem, fl_ex2, exps);
    for (int v = v0; v <= v1; v++) {
        BwdCtx c = {&p, v};
        char what[64];
        snprintf(what, sizeof what, "selective_scan_bwd v%d", v);
        float ms = time_kernel(bwd_fn, &c, a.reps);
        time_report(what, ms, bytes, 0);
        printf("    -> %.1f%% of the ex2 floor\n", 100.0 * fl_ex2 / ms);
    }
    scan_problem_free(&p);
    return 0;
}
