/*
 * dev/swiglu.cu — harness for SwiGLU (common/swiglu.cuh): correctness against test/ref_core.h in double
 * and timing against the bytes floor.
 *
 *   ./dev/swiglu [version] [--check] [-B 16 -T 2048 -I 2816] [--reps 50]
 * versions: 1 = simple (one thread per element, scalar accesses)
 *           2 = production (common/swiglu.cuh); also swiglu_backward_rebuild (the backward rebuilding the
 *               forward's output, as the GLA trainer calls it): checked bit for bit against the forward, timed
 * Build: nvcc -O3 -std=c++17 -lineinfo -gencode arch=compute_90,code=sm_90 -Icommon -Itest -Idev dev/swiglu.cu -o dev/swiglu
 */
#include "../common/swiglu.cuh"
#include "harness.h"
#include "../test/ref_core.h"

#define NVERSIONS 2

/* ---------------- v1: simplest correct version (teaching) ---------------- */
__global__ void swiglu_forward_v1(bf16* out, const bf16* h, size_t n, int I) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const size_t m = i / I, j = i % I;
    const float a = bf2f(h[m * 2 * I + j]), u = bf2f(h[m * 2 * I + I + j]);
    out[i] = f2bf(a / (1.f + expf(-a)) * u);
}
__global__ void swiglu_backward_v1(bf16* dh, const bf16* dout, const bf16* h, size_t n, int I) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const size_t m = i / I, j = i % I;
    const float a = bf2f(h[m * 2 * I + j]), u = bf2f(h[m * 2 * I + I + j]), g = bf2f(dout[i]);
    const float s = 1.f / (1.f + expf(-a));
    dh[m * 2 * I + j] = f2bf(g * u * s * (1.f + a * (1.f - s)));
    dh[m * 2 * I + I + j] = f2bf(g * a * s);
}

typedef struct {
    int version, M, I;
    bf16 *h, *out, *dout, *dh;
} Ctx;

static void run_forward(const Ctx* c) {
    if (c->version == 1) {
        const size_t n = (size_t)c->M * c->I;
        swiglu_forward_v1<<<(unsigned)((n + 255) / 256), 256>>>(c->out, c->h, n, c->I);
        CUDA_KERNEL_CHECK();
    } else {
        swiglu_forward(c->out, c->h, c->M, c->I, 0);
    }
}
static void run_backward(const Ctx* c) {
    if (c->version == 1) {
        const size_t n = (size_t)c->M * c->I;
        swiglu_backward_v1<<<(unsigned)((n + 255) / 256), 256>>>(c->dh, c->dout, c->h, n, c->I);
        CUDA_KERNEL_CHECK();
    } else {
        swiglu_backward(c->dh, c->dout, c->h, c->M, c->I, 0);
    }
}
static void fwd_fn(void* p) { run_forward((const Ctx*)p); }
static void bwd_fn(void* p) { run_backward((const Ctx*)p); }
static void rebuild_fn(void* p) {
    const Ctx* c = (const Ctx*)p;
    swiglu_backward_rebuild(c->dh, c->out, c->dout, c->h, c->M, c->I, 0);
}

static int check_shape(int version, int M, int I, uint64_t seed) {
    const size_t n = (size_t)M * I;
    float *h_h = (float*)malloc_check(2 * n * 4), *h_dout = (float*)malloc_check(n * 4);
    fill_normal(h_h, 2 * n, 2.0f, seed);
    if (n >= 4) { h_h[0] = 90.f; h_h[1] = -90.f; h_h[2] = -30.f; h_h[3] = 30.f; }  /* saturated sigmoids */
    round_to_bf16(h_h, 2 * n);
    fill_normal(h_dout, n, 1.0f, seed + 1);
    round_to_bf16(h_dout, n);
    double *rh = to_double(h_h, 2 * n), *rdout = to_double(h_dout, n);
    double *rout = (double*)malloc_check(n * 8), *rdh = (double*)malloc_check(2 * n * 8);
    ref_swiglu_forward(rout, rh, M, I);
    ref_swiglu_backward(rdh, rdout, rh, M, I);

    Ctx c;
    memset(&c, 0, sizeof c);
    c.version = version; c.M = M; c.I = I;
    c.h = upload_bf16(h_h, 2 * n);
    c.dout = upload_bf16(h_dout, n);
    c.out = (bf16*)dmalloc(n * 2);
    c.dh = (bf16*)dmalloc(2 * n * 2);
    poison(c.out, n * 2);
    poison(c.dh, 2 * n * 2);
    run_forward(&c);
    run_backward(&c);
    float *g_out = (float*)malloc_check(n * 4), *g_dh = (float*)malloc_check(2 * n * 4);
    download_bf16(g_out, c.out, n);
    download_bf16(g_dh, c.dh, 2 * n);
    char what[128];
    int fails = 0;
    snprintf(what, sizeof what, "v%d fwd out M=%-5d I=%-5d", version, M, I);
    fails += check_report(what, rout, g_out, n, 5e-3);
    snprintf(what, sizeof what, "v%d bwd dh  M=%-5d I=%-5d", version, M, I);
    fails += check_report(what, rdh, g_dh, 2 * n, 5e-3);
    if (version == 2) {   /* the trainer's call: the backward also rebuilds the forward's output, bit for bit */
        bf16* out2 = (bf16*)dmalloc(n * 2);
        float* g_out2 = (float*)malloc_check(n * 4);
        poison(out2, n * 2);
        swiglu_backward_rebuild(c.dh, out2, c.dout, c.h, M, I, 0);
        download_bf16(g_out2, out2, n);
        const int same = !memcmp(g_out, g_out2, n * 4);
        printf("%s v2 bwd rebuilt out == forward's out bit for bit M=%d I=%d\n", same ? "PASS" : "FAIL", M, I);
        fails += !same;
        /* and in place, as the GLA trainer calls it: dh overwrites h, same bits as into a separate buffer */
        swiglu_backward_rebuild(c.h, out2, c.dout, c.h, M, I, 0);
        float* g_dh2 = (float*)malloc_check(2 * n * 4);
        download_bf16(g_dh2, c.h, 2 * n);
        const int same2 = !memcmp(g_dh, g_dh2, 2 * n * 4);
        printf("%s v2 bwd in place (dh = h) == dh into its own buffer bit for bit M=%d I=%d\n", same2 ? "PASS" : "FAIL", M, I);
        fails += !same2;
        free(g_dh2);
        free(g_out2);
        CUDA_CHECK(cudaFree(out2));
    }
    free(h_h); free(h_dout); free(rh); free(rdout); free(rout); free(rdh); free(g_out); free(g_dh);
    CUDA_CHECK(cudaFree(c.h)); CUDA_CHECK(cudaFree(c.dout)); CUDA_CHECK(cudaFree(c.out)); CUDA_CHECK(cudaFree(c.dh));
    return fails;
}

static void time_version(int version, int M, int I, int reps) {
    const size_t n = (size_t)M * I;
    float* h = (float*)malloc_check(2 * n * 4);
    fill_uniform(h, 2 * n, -4.f, 4.f, 41);
    Ctx c;
    memset(&c, 0, sizeof c);
    c.version = version; c.M = M; c.I = I;
    c.h = upload_bf16(h, 2 * n);
    c.dout = upload_bf16(h, n);
    c.out = (bf16*)dmalloc(n * 2);
    c.dh = (bf16*)dmalloc(2 * n * 2);
    const double fbytes = (double)n * 6, bbytes = (double)n * 10;
    char what[96];
    float ms = time_kernel(fwd_fn, &c, reps);
    snprintf(what, sizeof what, "v%d forward  M=%d I=%d", version, M, I);
    time_report(what, ms, fbytes, 0);
    printf("    floor %.4f ms (bytes %.1f MB)\n", floor_ms(fbytes, 0), fbytes / 1e6);
    ms = time_kernel(bwd_fn, &c, reps);
    snprintf(what, sizeof what, "v%d backward M=%d I=%d", version, M, I);
    time_report(what, ms, bbytes, 0);
    printf("    floor %.4f ms (bytes %.1f MB)\n", floor_ms(bbytes, 0), bbytes / 1e6);
    if (version == 2) {   /* the trainer's call: backward + rebuilt output, instead of a forward rerun + backward */
        ms = time_kernel(rebuild_fn, &c, reps);
        snprintf(what, sizeof what, "v%d backward + rebuilt out M=%d I=%d", version, M, I);
        time_report(what, ms, bbytes + n * 2, 0);
        printf("    floor %.4f ms (bytes %.1f MB)\n", floor_ms(bbytes + n * 2, 0), (bbytes + n * 2) / 1e6);
    }
    free(h);
    CUDA_CHECK(cudaFree(c.h)); CUDA_CHECK(cudaFree(c.dout)); CUDA_CHECK(cudaFree(c.out)); CUDA_CHECK(cudaFree(c.dh));
}

int main(int argc, char** argv) {
    harness_versions(argc, argv, NVERSIONS);
    HarnessArgs a = harness_args(argc, argv);
    require_gpu_or_skip("swiglu");
    if (a.version < 0 || a.version > NVERSIONS) die("version must be 1..%d", NVERSIONS);
    const int v0 = a.version ? a.version : 1, v1 = a.version ? a.version : NVERSIONS;
    if (a.check) {
        static const int shapes[][2] = {{1, 8}, {7, 16}, {33, 2816}, {65, 1000}, {257, 64}, {3, 5632}, {1001, 2816}};
        int fails = 0;
        uint64_t seed = 4000;
        for (int v = v0; v <= v1; v++)
            for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
                fails += check_shape(v, shapes[i][0], shapes[i][1], seed += 17);
        printf("swiglu --check: %s (%d failed)\n", fails ? "FAIL" : "PASS", fails);
        return fails ? 1 : 0;
    }
    const int M = (int)(harness_get(&a, 'B', 16) * harness_get(&a, 'T', 2048)), I = (int)harness_get(&a, 'I', 2816);
    for (int v = v0; v <= v1; v++) time_version(v, M, I, a.reps);
    return 0;
}
