/*
 * dev/gla_gate.cu — harness for GLA's log forget gate g = logsigmoid(z + b)/16 (common/gla_gate.cuh):
 * correctness against test/ref_core.h in double (including saturated inputs, |z| up to 100),
 * determinism of the db reduction, and timing against the bytes floor.
 *
 *   ./dev/gla_gate [version] [--check] [-B 16 -T 2048 -K 512] [--reps 50]     (-K: Dk = H*K, all heads)
 * versions: 1 = simple (one thread per element, db by one thread per column over all rows)
 *           2 = vectorized, log1pf, IEEE-divide sigmoid, one row per step in the backward
 *           3 = cheap log1p and sigmoid, two rows per step (common/gla_gate.cuh's elementwise form: the trainer's
 *               until session 19, with z from a separate rank-16 matrix product)
 *           4 = production (common/gla_gate.cuh, gla_gate_lowrank_*): the rank-16 product z = bf16(z1 w^T) inside
 *               both kernels on the tensor cores, z1 a column slice (row stride ld = 3088, gla-340m's fused
 *               projection); checked against the double reference on the host's z (the exact product rounded to
 *               bf16; the kernel's fp32 sum can round the other way where the product lies within ~1e-7 of a
 *               rounding boundary, hence g's tolerance 1e-4 instead of 1e-5), timed with the product that v3 needs in
 *               front beside it
 * Build: nvcc -O3 -std=c++17 -lineinfo -gencode arch=compute_90,code=sm_90 -Icommon -Itest -Idev dev/gla_gate.cu -o dev/gla_gate
 */
#include "../common/matmul.cuh"   /* (before errors.h) v4 times the product that v3 needs in front */
#include "../common/gla_gate.cuh"
#include "harness.h"
#include "../test/ref_core.h"

#define NVERSIONS 4
#define V_LOWRANK 4
#define GATE_RANK 16
#define GATE_LD 3088   /* gla-340m's fused projection width */

/* ---------------- v1: simplest correct version (teaching) ---------------- */
__global__ void gate_forward_v1(float* g, const bf16* z, const float* b, size_t n, int Dk) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float x = bf2f(z[i]) + b[i % Dk];
    g[i] = (fminf(x, 0.f) - log1pf(expf(-fabsf(x)))) / 16.f;
}
__global__ void gate_backward_v1(bf16* dz, const float* dg, const bf16* z, const float* b, size_t n, int Dk) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float x = bf2f(z[i]) + b[i % Dk];
    dz[i] = f2bf(dg[i] / (1.f + expf(x)) / 16.f);
}
__global__ void gate_backward_db_v1(float* db, const float* dg, const bf16* z, const float* b, int M, int Dk) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= Dk) return;
    float acc = 0.f;
    for (int m = 0; m < M; m++) acc += dg[(size_t)m * Dk + c] / (1.f + expf(bf2f(z[(size_t)m * Dk + c]) + b[c])) / 16.f;
    db[c] += acc;
}

/* ---------------- v2: first vectorized version (log1pf was ~20 instructions per element) ---------------- */
__global__ void gate_forward_v2(float* g, const bf16* z, const float* b, size_t n8, int Dk) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n8) return;
    const int c = (int)((i * 8) % (size_t)Dk);
    float zv[8], bv[8], out[8];
    vec8_load_cs(zv, z + i * 8);
    vec8_load(bv, b + c);
    for (int k = 0; k < 8; k++) {
        const float x = zv[k] + bv[k];
        out[k] = (fminf(x, 0.f) - log1pf(__expf(-fabsf(x)))) * 0.0625f;
    }
    vec8_store(g + i * 8, out);
}
__global__ void gate_backward_v2(bf16* dz, float* part, const float* dg, const bf16* z, const float* b, int M, int Dk) {
    __shared__ float s[GATE_BWD_ROWS][GATE_BWD_COLS];
    const int c = blockIdx.x * GATE_BWD_COLS + threadIdx.x * 8;
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (c < Dk) {
        float bv[8];
        vec8_load(bv, b + c);
        for (int m = blockIdx.y * GATE_BWD_ROWS + threadIdx.y; m < M; m += gridDim.y * GATE_BWD_ROWS) {
            const size_t off = (size_t)m * Dk + c;
            float zv[8], d[8];
            vec8_load_cs(zv, z + off);
            vec8_load_cs(d, dg + off);
            for (int k = 0; k < 8; k++) {
                d[k] *= 0.0625f / (1.f + __expf(zv[k] + bv[k]));
                acc[k] += d[k];
            }
            vec8_store(dz + off, d);
        }
    }
    for (int k = 0; k < 8; k++) s[threadIdx.y][threadIdx.x * 8 + k] = acc[k];
    __syncthreads();
    if (threadIdx.y == 0 && c < Dk) {
        float t[8];
        for (int k = 0; k < 8; k++) t[k] = s[0][threadIdx.x * 8 + k];
        for (int r = 1; r < GATE_BWD_ROWS; r++)
            for (int k = 0; k < 8; k++) t[k] += s[r][threadIdx.x * 8 + k];
        vec8_store(part + (size_t)blockIdx.y * Dk + c, t);
    }
}

/* ---------------- dispatch ---------------- */
typedef struct {
    int version, M, Dk, P;
    bf16 *z, *dz;
    float *g, *b, *dg, *db, *scratch;
} Ctx;

static void run_forward(const Ctx* c) {
    if (c->version == 1) {
        const size_t n = (size_t)c->M * c->Dk;
        gate_forward_v1<<<(unsigned)((n + 255) / 256), 256>>>(c->g, c->z, c->b, n, c->Dk);
        CUDA_KERNEL_CHECK();
    } else if (c->version == 2) {
        const size_t n8 = (size_t)c->M * c->Dk / 8;
        gate_forward_v2<<<(unsigned)((n8 + 255) / 256), 256>>>(c->g, c->z, c->b, n8, c->Dk);
        CUDA_KERNEL_CHECK();
    } else {
        gla_gate_forward(c->g, c->z, c->b, c->M, c->Dk, 0);
    }
}
static void run_backward(const Ctx* c) {
    if (c->version == 1) {
        const size_t n = (size_t)c->M * c->Dk;
        gate_backward_db_v1<<<(c->Dk + 63) / 64, 64>>>(c->db, c->dg, c->z, c->b, c->M, c->Dk);
        CUDA_KERNEL_CHECK();
        gate_backward_v1<<<(unsigned)((n + 255) / 256), 256>>>(c->dz, c->dg, c->z, c->b, n, c->Dk);
        CUDA_KERNEL_CHECK();
    } else if (c->version == 2) {
        const int P = c->P > 0 ? c->P : gla_gate_bwd_parts(c->M, c->Dk);
        gate_backward_v2<<<dim3((c->Dk + GATE_BWD_COLS - 1) / GATE_BWD_COLS, P), dim3(32, GATE_BWD_ROWS)>>>(
            c->dz, c->scratch, c->dg, c->z, c->b, c->M, c->Dk);
        CUDA_KERNEL_CHECK();
        partials_colsum_add(c->db, c->scratch, P, c->Dk, 0);
    } else if (c->P > 0) {
        gla_gate_backward_parts(c->dz, c->db, c->dg, c->z, c->b, c->M, c->Dk, c->scratch, c->P, 0);
    } else {
        gla_gate_backward(c->dz, c->db, c->dg, c->z, c->b, c->M, c->Dk, c->scratch, 0);
    }
}
static void fwd_fn(void* p) { run_forward((const Ctx*)p); }
static void bwd_fn(void* p) { run_backward((const Ctx*)p); }

/* ---------------- check ---------------- */
static int check_shape(int version, int M, int Dk, uint64_t seed) {
    const size_t n = (size_t)M * Dk;
    float *h_z = (float*)malloc_check(n * 4), *h_b = (float*)malloc_check(Dk * 4), *h_dg = (float*)malloc_check(n * 4);
    float* h_db0 = (float*)malloc_check(Dk * 4);
    fill_normal(h_z, n, 3.0f, seed);
    static const float extremes[] = {100.f, -100.f, 40.f, -40.f, 17.f, -17.f, 0.f};
    for (size_t i = 0; i < sizeof extremes / sizeof extremes[0] && i < n; i++) h_z[(i * 7919) % n] = extremes[i];
    round_to_bf16(h_z, n);
    fill_uniform(h_b, Dk, -2.f, 2.f, seed + 1);
    fill_normal(h_dg, n, 1.0f, seed + 2);
    fill_normal(h_db0, Dk, 1.0f, seed + 3);

    double *rz = to_double(h_z, n), *rb = to_double(h_b, Dk), *rdg = to_double(h_dg, n), *rdb = to_double(h_db0, Dk);
    double *rg = (double*)malloc_check(n * 8), *rdz = (double*)malloc_check(n * 8);
    ref_gla_gate_forward(rg, rz, rb, M, Dk);
    ref_gla_gate_backward(rdz, rdb, rdg, rz, rb, M, Dk);

    Ctx c;
    memset(&c, 0, sizeof c);
    c.version = version; c.M = M; c.Dk = Dk;
    c.z = upload_bf16(h_z, n);
    c.b = upload_f32(h_b, Dk);
    c.dg = upload_f32(h_dg, n);
    c.g = (float*)dmalloc(n * 4);
    c.dz = (bf16*)dmalloc(n * 2);
    c.db = (float*)dmalloc(Dk * 4);
    const size_t nscr = gla_gate_scratch_floats(M, Dk);
    c.scratch = (float*)dmalloc(nscr * 4);
    poison(c.g, n * 4);
    run_forward(&c);
    float *g_g = (float*)malloc_check(n * 4), *g_dz[2], *g_db[2];
    download_f32(g_g, c.g, n);
    for (int rep = 0; rep < 2; rep++) {
        CUDA_CHECK(cudaMemcpy(c.db, h_db0, Dk * 4, cudaMemcpyHostToDevice));
        poison(c.dz, n * 2);
        poison(c.scratch, nscr * 4);
        run_backward(&c);
        g_dz[rep] = (float*)malloc_check(n * 4);
        g_db[rep] = (float*)malloc_check(Dk * 4);
        download_bf16(g_dz[rep], c.dz, n);
        download_f32(g_db[rep], c.db, Dk);
    }
    char what[128];
    int fails = 0;
    snprintf(what, sizeof what, "v%d fwd g   M=%-5d Dk=%-5d", version, M, Dk);
    fails += check_report(what, rg, g_g, n, 1e-5);
    snprintf(what, sizeof what, "v%d bwd dz  M=%-5d Dk=%-5d", version, M, Dk);
    fails += check_report(what, rdz, g_dz[0], n, 5e-3);
    snprintf(what, sizeof what, "v%d bwd db  M=%-5d Dk=%-5d", version, M, Dk);
    fails += check_report(what, rdb, g_db[0], Dk, 3e-5);
    const int same = !memcmp(g_db[0], g_db[1], Dk * 4) && !memcmp(g_dz[0], g_dz[1], n * 4);
    printf("%s v%d bwd deterministic (2 runs bit-identical) M=%d Dk=%d\n", same ? "PASS" : "FAIL", version, M, Dk);
    fails += !same;

    free(h_z); free(h_b); free(h_dg); free(h_db0); free(rz); free(rb); free(rdg); free(rdb); free(rg); free(rdz);
    free(g_g);
    for (int rep = 0; rep < 2; rep++) { free(g_dz[rep]); free(g_db[rep]); }
    CUDA_CHECK(cudaFree(c.z)); CUDA_CHECK(cudaFree(c.b)); CUDA_CHECK(cudaFree(c.dg)); CUDA_CHECK(cudaFree(c.g));
    CUDA_CHECK(cudaFree(c.dz)); CUDA_CHECK(cudaFree(c.db)); CUDA_CHECK(cudaFree(c.scratch));
    return fails;
}

typedef struct { float* part; int P, C; float* dst; } ColsumCtx;
static void colsum_fn(void* p) {
    const ColsumCtx* c = (const ColsumCtx*)p;
    partials_colsum_add(c->dst, c->part, c->P, c->C, 0);
}

/* ---------------- timing ---------------- */
static void time_version(int version, int M, int Dk, int reps, int P) {
    const size_t n = (size_t)M * Dk;
    float* h = (float*)malloc_check(n * 4);
    Ctx c;
    memset(&c, 0, sizeof c);
    c.version = version; c.M = M; c.Dk = Dk; c.P = P;
    fill_uniform(h, n, -4.f, 4.f, 31);
    c.z = upload_bf16(h, n);
    c.dg = upload_f32(h, n);
    fill_uniform(h, Dk, -1.f, 1.f, 32);
    c.b = upload_f32(h, Dk);
    c.g = (float*)dmalloc(n * 4);
    c.dz = (bf16*)dmalloc(n * 2);
    c.db = (float*)dmalloc(Dk * 4);
    CUDA_CHECK(cudaMemset(c.db, 0, Dk * 4));
    const int Pn = P > 0 ? P : gla_gate_bwd_parts(M, Dk);
    c.scratch = (float*)dmalloc((size_t)Pn * Dk * 4);
    const double fbytes = (double)n * 6, bbytes = (double)n * 8 + 2.0 * Pn * Dk * 4 * (version != 1);
    char what[96];
    float ms = time_kernel(fwd_fn, &c, reps);
    snprintf(what, sizeof what, "v%d forward  M=%d Dk=%d", version, M, Dk);
    time_report(what, ms, fbytes, 0);
    printf("    floor %.4f ms (bytes %.1f MB)\n", floor_ms(fbytes, 0), fbytes / 1e6);
    ms = time_kernel(bwd_fn, &c, reps);
    if (P > 0) snprintf(what, sizeof what, "v%d backward M=%d Dk=%d P=%d", version, M, Dk, P);
    else if (version > 1) snprintf(what, sizeof what, "v%d backward M=%d Dk=%d P=%d*", version, M, Dk, Pn);
    else snprintf(what, sizeof what, "v%d backward M=%d Dk=%d", version, M, Dk);
    time_report(what, ms, bbytes, 0);
    printf("    floor %.4f ms (bytes %.1f MB)\n", floor_ms(bbytes, 0), bbytes / 1e6);
    if (version > 1 && P == 0) {  /* the second stage alone: sum of the partial rows into the gradient */
        ColsumCtx cc = {c.scratch, Pn, Dk, c.db};
        ms = time_kernel(colsum_fn, &cc, reps);
        snprintf(what, sizeof what, "    of which partials_colsum_add P=%d", Pn);
        time_report(what, ms, 4.0 * Pn * Dk, 0);
    }
    free(h);
    CUDA_CHECK(cudaFree(c.z)); CUDA_CHECK(cudaFree(c.dg)); CUDA_CHECK(cudaFree(c.b)); CUDA_CHECK(cudaFree(c.g));
    CUDA_CHECK(cudaFree(c.dz)); CUDA_CHECK(cudaFree(c.db)); CUDA_CHECK(cudaFree(c.scratch));
}

/* ---------------- v4: the rank-16 product inside (production) ---------------- */
/* z1 [M][ld] with R used columns, w [Dk][R]; the host's z: the exact product (double), rounded to bf16 */
static void lowrank_host_z(float* z, const float* z1, int ld, const float* w, int M, int Dk) {
    for (int m = 0; m < M; m++)
        for (int c = 0; c < Dk; c++) {
            double acc = 0.0;
            for (int k = 0; k < GATE_RANK; k++) acc += (double)z1[(size_t)m * ld + k] * w[(size_t)c * GATE_RANK + k];
            z[(size_t)m * Dk + c] = host_bf_bits2f(host_f2bf_bits((float)acc));
        }
}
static int check_lowrank(int M, int Dk, int ld, uint64_t seed) {
    const size_t n = (size_t)M * Dk, nz1 = (size_t)M * ld, nw = (size_t)Dk * GATE_RANK;
    float *h_z1 = (float*)malloc_check(nz1 * 4), *h_w = (float*)malloc_check(nw * 4), *h_z = (float*)malloc_check(n * 4);
    float *h_b = (float*)malloc_check(Dk * 4), *h_dg = (float*)malloc_check(n * 4), *h_db0 = (float*)malloc_check(Dk * 4);
    fill_normal(h_z1, nz1, 1.0f, seed);
    for (int m = 0; m < M; m += 7) for (int k = 0; k < GATE_RANK; k++) h_z1[(size_t)m * ld + k] *= 30.f;   /* |z| to ~100 */
    round_to_bf16(h_z1, nz1);
    fill_normal(h_w, nw, 0.75f, seed + 1);
    round_to_bf16(h_w, nw);
    fill_uniform(h_b, Dk, -2.f, 2.f, seed + 2);
    fill_normal(h_dg, n, 1.0f, seed + 3);
    fill_normal(h_db0, Dk, 1.0f, seed + 4);
    lowrank_host_z(h_z, h_z1, ld, h_w, M, Dk);
    double *rz = to_double(h_z, n), *rb = to_double(h_b, Dk), *rdg = to_double(h_dg, n), *rdb = to_double(h_db0, Dk);
    double *rg = (double*)malloc_check(n * 8), *rdz = (double*)malloc_check(n * 8);
    ref_gla_gate_forward(rg, rz, rb, M, Dk);
    ref_gla_gate_backward(rdz, rdb, rdg, rz, rb, M, Dk);

    bf16 *z1 = upload_bf16(h_z1, nz1), *w = upload_bf16(h_w, nw), *dz = (bf16*)dmalloc(n * 2);
    float *b = upload_f32(h_b, Dk), *dg = upload_f32(h_dg, n), *g = (float*)dmalloc(n * 4), *db = (float*)dmalloc(Dk * 4);
    const size_t nscr = gla_gate_lowrank_scratch_floats(M, Dk);
    float* scratch = (float*)dmalloc(nscr * 4);
    poison(g, n * 4);
    gla_gate_lowrank_forward(g, z1, ld, w, b, M, Dk, GATE_RANK, 0);
    float *g_g = (float*)malloc_check(n * 4), *g_dz[2], *g_db[2];
    download_f32(g_g, g, n);
    for (int rep = 0; rep < 2; rep++) {
        CUDA_CHECK(cudaMemcpy(db, h_db0, Dk * 4, cudaMemcpyHostToDevice));
        poison(dz, n * 2);
        poison(scratch, nscr * 4);
        gla_gate_lowrank_backward(dz, db, dg, z1, ld, w, b, M, Dk, GATE_RANK, scratch, 0);
        g_dz[rep] = (float*)malloc_check(n * 4);
        g_db[rep] = (float*)malloc_check(Dk * 4);
        download_bf16(g_dz[rep], dz, n);
        download_f32(g_db[rep], db, Dk);
    }
    char what[128];
    int fails = 0;
    snprintf(what, sizeof what, "v4 fwd g   M=%-5d Dk=%-5d ld=%d", M, Dk, ld);
    fails += check_report(what, rg, g_g, n, 1e-4);
    snprintf(what, sizeof what, "v4 bwd dz  M=%-5d Dk=%-5d ld=%d", M, Dk, ld);
    fails += check_report(what, rdz, g_dz[0], n, 5e-3);
    snprintf(what, sizeof what, "v4 bwd db  M=%-5d Dk=%-5d ld=%d", M, Dk, ld);
    fails += check_report(what, rdb, g_db[0], Dk, 1e-4);
    const int same = !memcmp(g_db[0], g_db[1], Dk * 4) && !memcmp(g_dz[0], g_dz[1], n * 4);
    printf("%s v4 bwd deterministic (2 runs bit-identical) M=%d Dk=%d\n", same ? "PASS" : "FAIL", M, Dk);
    fails += !same;
    free(h_z1); free(h_w); free(h_z); free(h_b); free(h_dg); free(h_db0); free(rz); free(rb); free(rdg); free(rdb);
    free(rg); free(rdz); free(g_g);
    for (int rep = 0; rep < 2; rep++) { free(g_dz[rep]); free(g_db[rep]); }
    void* dev[] = {z1, w, dz, b, dg, g, db, scratch};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) CUDA_CHECK(cudaFree(dev[i]));
    return fails;
}

typedef struct { bf16 *z1, *w, *z, *dz; float *g, *b, *dg, *db, *scratch; int M, Dk; } LowrankCtx;
static void lr_fwd_fn(void* p) {
    const LowrankCtx* c = (const LowrankCtx*)p;
    gla_gate_lowrank_forward(c->g, c->z1, GATE_LD, c->w, c->b, c->M, c->Dk, GATE_RANK, 0);
}
static void lr_bwd_fn(void* p) {
    const LowrankCtx* c = (const LowrankCtx*)p;
    gla_gate_lowrank_backward(c->dz, c->db, c->dg, c->z1, GATE_LD, c->w, c->b, c->M, c->Dk, GATE_RANK, c->scratch, 0);
}
static void lr_product_fn(void* p) {   /* what v4 replaces in front of v3: z = z1 w^T by cuBLASLt */
    const LowrankCtx* c = (const LowrankCtx*)p;
    matmul(c->z, 0, c->Dk, c->z1, GATE_LD, 0, c->w, GATE_RANK, 1, c->M, c->Dk, GATE_RANK, 1.0f, 0.0f, 0);
}
static void time_lowrank(int M, int Dk, int reps) {
    matmul_init();
    const size_t n = (size_t)M * Dk, nz1 = (size_t)M * GATE_LD;
    float* h = (float*)malloc_check((n > nz1 ? n : nz1) * 4);
    LowrankCtx c;
    memset(&c, 0, sizeof c);
    c.M = M; c.Dk = Dk;
    fill_uniform(h, nz1, -1.f, 1.f, 41);
    c.z1 = upload_bf16(h, nz1);
    fill_uniform(h, (size_t)Dk * GATE_RANK, -0.5f, 0.5f, 42);
    c.w = upload_bf16(h, (size_t)Dk * GATE_RANK);
    fill_uniform(h, n, -1.f, 1.f, 43);
    c.dg = upload_f32(h, n);
    fill_uniform(h, Dk, -1.f, 1.f, 44);
    c.b = upload_f32(h, Dk);
    c.g = (float*)dmalloc(n * 4);
    c.z = (bf16*)dmalloc(n * 2);
    c.dz = (bf16*)dmalloc(n * 2);
    c.db = (float*)dmalloc(Dk * 4);
    CUDA_CHECK(cudaMemset(c.db, 0, Dk * 4));
    c.scratch = (float*)dmalloc(gla_gate_lowrank_scratch_floats(M, Dk) * 4);
    const double z1b = (double)M * GATE_RANK * 2, fbytes = z1b + (double)n * 4, bbytes = z1b + (double)n * (4 + 2);
    char what[96];
    snprintf(what, sizeof what, "v4 forward  M=%d Dk=%d (rank-16 product inside)", M, Dk);
    time_report(what, time_kernel(lr_fwd_fn, &c, reps), fbytes, 0);
    printf("    floor %.4f ms (bytes %.1f MB)\n", floor_ms(fbytes, 0), fbytes / 1e6);
    snprintf(what, sizeof what, "v4 backward M=%d Dk=%d (rank-16 product inside)", M, Dk);
    time_report(what, time_kernel(lr_bwd_fn, &c, reps), bbytes, 0);
    printf("    floor %.4f ms (bytes %.1f MB)\n", floor_ms(bbytes, 0), bbytes / 1e6);
    snprintf(what, sizeof what, "    the product v3 needs in front (cuBLASLt, z bf16) M=%d Dk=%d", M, Dk);
    time_report(what, time_kernel(lr_product_fn, &c, reps), z1b + (double)n * 2, 0);
    free(h);
    void* dev[] = {c.z1, c.w, c.z, c.dz, c.g, c.b, c.dg, c.db, c.scratch};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) CUDA_CHECK(cudaFree(dev[i]));
}

int main(int argc, char** argv) {
    harness_versions(argc, argv, NVERSIONS);
    HarnessArgs a = harness_args(argc, argv);
    require_gpu_or_skip("gla_gate");
    if (a.version < 0 || a.version > NVERSIONS) die("version must be 1..%d", NVERSIONS);
    const int v0 = a.version ? a.version : 1, v1 = a.version ? a.version : NVERSIONS;
    if (a.check) {
        static const int shapes[][2] = {{1, 8}, {7, 16}, {33, 512}, {129, 264}, {5001, 512}, {300, 1024}, {1, 2048}, {4243, 40}};
        int fails = 0;
        uint64_t seed = 3000;
        for (int v = v0; v <= v1; v++)
            for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
                fails += v == V_LOWRANK ? check_lowrank(shapes[i][0], shapes[i][1], i % 2 ? GATE_RANK : GATE_LD, seed += 17)
                                        : check_shape(v, shapes[i][0], shapes[i][1], seed += 17);
        printf("gla_gate --check: %s (%d failed)\n", fails ? "FAIL" : "PASS", fails);
        return fails ? 1 : 0;
    }
    const int M = (int)(harness_get(&a, 'B', 16) * harness_get(&a, 'T', 2048)), Dk = (int)harness_get(&a, 'K', 512);
    for (int v = v0; v <= v1; v++) {
        if (v == V_LOWRANK) time_lowrank(M, Dk, a.reps);
        else time_version(v, M, Dk, a.reps, 0);
    }
    if (v0 <= 3 && v1 >= 3) {   /* the elementwise form's backward with other numbers of partial rows */
        static const int Ps[] = {264, 528};
        for (size_t i = 0; i < sizeof Ps / sizeof Ps[0]; i++) time_version(3, M, Dk, a.reps, Ps[i]);
    }
    return 0;
}
