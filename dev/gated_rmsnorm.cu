/*
 * dev/gated_rmsnorm.cu — harness for GLA's gated output RMSNorm (common/gated_rmsnorm.cuh): correctness
 * against test/ref_core.h in double (gt and dgt as column slices of wider buffers, as in the trainer),
 * determinism of the dw reduction, and timing against the bytes floor.
 *
 *   ./dev/gated_rmsnorm [version] [--check] [-B 16 -T 2048 -H 4 -V 256] [--reps 50]
 * versions: 1 = simple (one warp per row, scalar accesses, dw by one thread per column over all rows)
 *           2 = the production kernel templates at TWO 8-column chunks per lane (L = V/16 lanes per row,
 *               V <= 256): more bytes in flight per warp, but 122 registers => fewer warps; slower on H200
 *           3 = production (common/gated_rmsnorm.cuh): one chunk per lane, L = V/8; also its backward that
 *               rebuilds the forward's y (gated_rmsnorm_backward_rebuild, as the GLA trainer calls it)
 * Build: nvcc -O3 -std=c++17 -lineinfo -gencode arch=compute_90,code=sm_90 -Icommon -Itest -Idev dev/gated_rmsnorm.cu -o dev/gated_rmsnorm
 */
#include "../common/gated_rmsnorm.cuh"
#include "harness.h"
#include "../test/ref_core.h"

#define NVERSIONS 3

/* ---------------- v1: simplest correct version (teaching) ---------------- */
__device__ float sigmoid_v1(float x) { return 1.f / (1.f + expf(-x)); }
__device__ float warp_sum_v1(float v) {
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__global__ void gated_forward_v1(bf16* y, float* rstd, const bf16* o, const bf16* gt, int ld_gt, const float* w, int R,
                                 int H, int V, float eps) {
    const int row = blockIdx.x * 8 + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= R) return;  /* whole warps leave together */
    const bf16* x = o + (size_t)row * V;
    const bf16* g = gt + (size_t)(row / H) * ld_gt + (size_t)(row % H) * V;
    float ss = 0.f;
    for (int d = lane; d < V; d += 32) ss += bf2f(x[d]) * bf2f(x[d]);
    const float r = rsqrtf(warp_sum_v1(ss) / V + eps);
    if (lane == 0) rstd[row] = r;
    for (int d = lane; d < V; d += 32) {
        const float gv = bf2f(g[d]);
        y[(size_t)row * V + d] = f2bf(bf2f(x[d]) * r * w[d] * gv * sigmoid_v1(gv));
    }
}
__global__ void gated_backward_v1(bf16* d_o, bf16* dgt, int ld_dgt, const bf16* dy, const bf16* o, const bf16* gt,
                                  int ld_gt, const float* rstd, const float* w, int R, int H, int V) {
    const int row = blockIdx.x * 8 + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= R) return;
    const size_t xo = (size_t)row * V, go = (size_t)(row / H) * ld_gt + (size_t)(row % H) * V;
    const size_t dgo = (size_t)(row / H) * ld_dgt + (size_t)(row % H) * V;
    const float r = rstd[row];
    float c1 = 0.f;
    for (int d = lane; d < V; d += 32) {
        const float g = bf2f(gt[go + d]), s = sigmoid_v1(g), xhat = bf2f(o[xo + d]) * r, dv = bf2f(dy[xo + d]);
        dgt[dgo + d] = f2bf(dv * xhat * w[d] * (s + g * s * (1.f - s)));
        c1 += xhat * dv * g * s * w[d];
    }
    c1 = warp_sum_v1(c1) / V;
    for (int d = lane; d < V; d += 32) {
        const float g = bf2f(gt[go + d]), s = sigmoid_v1(g);
        d_o[xo + d] = f2bf((bf2f(dy[xo + d]) * g * s * w[d] - bf2f(o[xo + d]) * r * c1) * r);
    }
}
__global__ void gated_backward_dw_v1(float* dw, const bf16* dy, const bf16* o, const bf16* gt, int ld_gt,
                                     const float* rstd, int R, int H, int V) {
    const int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= V) return;
    float acc = 0.f;
    for (int row = 0; row < R; row++) {
        const float g = bf2f(gt[(size_t)(row / H) * ld_gt + (size_t)(row % H) * V + d]);
        acc += bf2f(dy[(size_t)row * V + d]) * g * sigmoid_v1(g) * bf2f(o[(size_t)row * V + d]) * rstd[row];
    }
    dw[d] += acc;
}

/* ---------------- v2: the production templates at two chunks per lane ---------------- */
static grms_forward_kernel_t v2_forward_kernel(int V) {
    if (V <= 32) return gated_rmsnorm_forward_kernel<1, 4>;
    if (V <= 64) return gated_rmsnorm_forward_kernel<2, 4>;
    if (V <= 128) return gated_rmsnorm_forward_kernel<2, 8>;
    if (V <= 256) return gated_rmsnorm_forward_kernel<2, 16>;
    return grms_forward_kernel_for(V);
}
static grms_backward_kernel_t v2_backward_kernel(int V) {
    if (V <= 32) return gated_rmsnorm_backward_kernel<1, 4>;
    if (V <= 64) return gated_rmsnorm_backward_kernel<2, 4>;
    if (V <= 128) return gated_rmsnorm_backward_kernel<2, 8>;
    if (V <= 256) return gated_rmsnorm_backward_kernel<2, 16>;
    return grms_backward_kernel_for(V);
}
static int v2_lanes(int V) { return V <= 64 ? 4 : V <= 128 ? 8 : V <= 256 ? 16 : 32; }
static int v2_parts(int M, int H, int V) {
    const long rb = 256 / v2_lanes(V), need = ((long)M * H + rb - 1) / rb;
    const int wave = full_wave_blocks((const void*)v2_backward_kernel(V), 256, (size_t)V * 4);
    return need < wave ? (int)need : wave;
}

/* ---------------- dispatch ---------------- */
typedef struct {
    int version, M, H, V, ld_gt, ld_dgt, P;
    bf16 *y, *o, *gt, *dy, *d_o, *dgt;
    float *rstd, *w, *dw, *scratch;
} Ctx;

static void run_forward(const Ctx* c) {
    if (c->version == 1) {
        const int R = c->M * c->H;
        gated_forward_v1<<<(R + 7) / 8, 256>>>(c->y, c->rstd, c->o, c->gt, c->ld_gt, c->w, R, c->H, c->V, 1e-6f);
        CUDA_KERNEL_CHECK();
    } else if (c->version == 2) {
        const int R = c->M * c->H, rb = 256 / v2_lanes(c->V);
        v2_forward_kernel(c->V)<<<(R + rb - 1) / rb, 256>>>(c->y, c->rstd, c->o, c->gt, c->ld_gt, c->w, R, c->H, c->V, 1e-6f);
        CUDA_KERNEL_CHECK();
    } else {
        gated_rmsnorm_forward(c->y, c->rstd, c->o, c->gt, c->ld_gt, c->w, c->M, c->H, c->V, 1e-6f, 0);
    }
}
static void run_backward(const Ctx* c) {
    if (c->version == 1) {
        const int R = c->M * c->H;
        gated_backward_dw_v1<<<(c->V + 63) / 64, 64>>>(c->dw, c->dy, c->o, c->gt, c->ld_gt, c->rstd, R, c->H, c->V);
        CUDA_KERNEL_CHECK();
        gated_backward_v1<<<(R + 7) / 8, 256>>>(c->d_o, c->dgt, c->ld_dgt, c->dy, c->o, c->gt, c->ld_gt, c->rstd, c->w,
                                                R, c->H, c->V);
        CUDA_KERNEL_CHECK();
    } else if (c->version == 2) {
        const int P = c->P > 0 ? c->P : v2_parts(c->M, c->H, c->V);
        v2_backward_kernel(c->V)<<<P, 256, (size_t)c->V * 4>>>(c->d_o, c->dgt, c->ld_dgt, c->scratch, NULL, c->dy, c->o,
                                                                c->gt, c->ld_gt, c->rstd, c->w, c->M * c->H, c->H, c->V);
        CUDA_KERNEL_CHECK();
        partials_colsum_add(c->dw, c->scratch, P, c->V, 0);
    } else if (c->P > 0) {
        gated_rmsnorm_backward_parts(c->d_o, c->dgt, c->ld_dgt, c->dw, NULL, c->dy, c->o, c->gt, c->ld_gt, c->rstd, c->w,
                                     c->M, c->H, c->V, c->scratch, c->P, 0);
    } else {
        gated_rmsnorm_backward(c->d_o, c->dgt, c->ld_dgt, c->dw, c->dy, c->o, c->gt, c->ld_gt, c->rstd, c->w, c->M, c->H,
                               c->V, c->scratch, 0);
    }
}
static void fwd_fn(void* p) { run_forward((const Ctx*)p); }
static void bwd_fn(void* p) { run_backward((const Ctx*)p); }
/* the trainer's call (production): the backward also rebuilds the forward's y */
static void rebuild_run(const Ctx* c, bf16* y) {
    gated_rmsnorm_backward_rebuild(c->d_o, c->dgt, c->ld_dgt, c->dw, y, c->dy, c->o, c->gt, c->ld_gt, c->rstd, c->w, c->M, c->H,
                                   c->V, c->scratch, 0);
}
static void rebuild_fn(void* p) { const Ctx* c = (const Ctx*)p; rebuild_run(c, c->y); }

/* ---------------- check ---------------- */
/* gt lives at column goff of a [M, ld_gt] buffer, dgt at column doff of a [M, ld_dgt] buffer */
static int check_shape(int version, int M, int H, int V, uint64_t seed) {
    const int HV = H * V, ld_gt = 2 * HV + 8, goff = HV + 8, ld_dgt = HV + 16, doff = 8;
    const size_t n = (size_t)M * HV, ng = (size_t)M * ld_gt, nd = (size_t)M * ld_dgt;
    float* h_o = (float*)malloc_check(n * 4);
    float* h_gbuf = (float*)malloc_check(ng * 4);
    float* h_w = (float*)malloc_check(V * 4);
    float* h_dy = (float*)malloc_check(n * 4);
    float* h_dw0 = (float*)malloc_check(V * 4);
    fill_normal(h_o, n, 1.0f, seed);
    round_to_bf16(h_o, n);
    fill_normal(h_gbuf, ng, 2.0f, seed + 1);
    round_to_bf16(h_gbuf, ng);
    fill_uniform(h_w, V, 0.5f, 1.5f, seed + 2);
    fill_normal(h_dy, n, 1.0f, seed + 3);
    round_to_bf16(h_dy, n);
    fill_normal(h_dw0, V, 1.0f, seed + 4);

    double* ro = to_double(h_o, n);
    double* rg = (double*)malloc_check(n * 8);  /* dense [M, HV] copy of the gt slice */
    for (int m = 0; m < M; m++)
        for (int j = 0; j < HV; j++) rg[(size_t)m * HV + j] = h_gbuf[(size_t)m * ld_gt + goff + j];
    double* rw = to_double(h_w, V);
    double* ry = (double*)malloc_check(n * 8);
    double* rr = (double*)malloc_check((size_t)M * H * 8);
    ref_gated_rmsnorm_forward(ry, rr, ro, rg, rw, M, H, V, 1e-6);
    double* rdy = to_double(h_dy, n);
    double* rdo = (double*)malloc_check(n * 8);
    double* rdg = (double*)malloc_check(n * 8);
    double* rdw = to_double(h_dw0, V);
    ref_gated_rmsnorm_backward(rdo, rdg, rdw, rdy, ro, rg, rr, rw, M, H, V);

    Ctx c;
    memset(&c, 0, sizeof c);
    c.version = version; c.M = M; c.H = H; c.V = V; c.ld_gt = ld_gt; c.ld_dgt = ld_dgt;
    c.o = upload_bf16(h_o, n);
    bf16* d_gbuf = upload_bf16(h_gbuf, ng);
    c.gt = d_gbuf + goff;
    c.w = upload_f32(h_w, V);
    c.dy = upload_bf16(h_dy, n);
    c.y = (bf16*)dmalloc(n * 2);
    c.rstd = (float*)dmalloc((size_t)M * H * 4);
    c.d_o = (bf16*)dmalloc(n * 2);
    bf16* d_dgbuf = (bf16*)dmalloc(nd * 2);
    c.dgt = d_dgbuf + doff;
    c.dw = (float*)dmalloc(V * 4);
    size_t nscr = gated_rmsnorm_scratch_floats(M, H, V);
    if ((size_t)v2_parts(M, H, V) * V > nscr) nscr = (size_t)v2_parts(M, H, V) * V;
    c.scratch = (float*)dmalloc(nscr * 4);
    poison(c.y, n * 2);
    poison(c.rstd, (size_t)M * H * 4);
    run_forward(&c);

    float* g_y = (float*)malloc_check(n * 4);
    float* g_r = (float*)malloc_check((size_t)M * H * 4);
    download_bf16(g_y, c.y, n);
    download_f32(g_r, c.rstd, (size_t)M * H);
    char what[160];
    int fails = 0;
    snprintf(what, sizeof what, "v%d fwd y     M=%-5d H=%d V=%-5d", version, M, H, V);
    fails += check_report(what, ry, g_y, n, 5e-3);
    snprintf(what, sizeof what, "v%d fwd rstd  M=%-5d H=%d V=%-5d", version, M, H, V);
    fails += check_report(what, rr, g_r, (size_t)M * H, 1e-5);

    float *g_do = (float*)malloc_check(n * 4), *g_dgbuf = (float*)malloc_check(nd * 4), *g_dg = (float*)malloc_check(n * 4);
    float* g_dw[2];
    float* g_do1 = (float*)malloc_check(n * 4);
    int outside_ok = 1;
    for (int rep = 0; rep < 2; rep++) {
        CUDA_CHECK(cudaMemcpy(c.dw, h_dw0, V * 4, cudaMemcpyHostToDevice));
        poison(c.d_o, n * 2);
        poison(d_dgbuf, nd * 2);
        poison(c.scratch, nscr * 4);
        run_backward(&c);
        g_dw[rep] = (float*)malloc_check(V * 4);
        download_f32(g_dw[rep], c.dw, V);
        download_bf16(rep == 0 ? g_do : g_do1, c.d_o, n);
    }
    download_bf16(g_dgbuf, d_dgbuf, nd);
    for (int m = 0; m < M; m++)
        for (int j = 0; j < ld_dgt; j++) {
            const float v = g_dgbuf[(size_t)m * ld_dgt + j];
            if (j >= doff && j < doff + HV) g_dg[(size_t)m * HV + j - doff] = v;
            else if (!isnan(v)) outside_ok = 0;
        }
    snprintf(what, sizeof what, "v%d bwd d_o   M=%-5d H=%d V=%-5d", version, M, H, V);
    fails += check_report(what, rdo, g_do, n, 5e-3);
    snprintf(what, sizeof what, "v%d bwd dgt   M=%-5d H=%d V=%-5d", version, M, H, V);
    fails += check_report(what, rdg, g_dg, n, 5e-3);
    snprintf(what, sizeof what, "v%d bwd dw    M=%-5d H=%d V=%-5d", version, M, H, V);
    fails += check_report(what, rdw, g_dw[0], V, 3e-5);
    printf("%s v%d bwd dgt writes only its column slice\n", outside_ok ? "PASS" : "FAIL", version);
    fails += !outside_ok;
    const int same = !memcmp(g_dw[0], g_dw[1], V * 4) && !memcmp(g_do, g_do1, n * 4);
    printf("%s v%d bwd deterministic (2 runs bit-identical) M=%d H=%d V=%d\n", same ? "PASS" : "FAIL", version, M, H, V);
    fails += !same;
    if (version == NVERSIONS) {   /* rebuilt y == the forward's y and d_o == the plain backward's, bit for bit */
        bf16* y2 = (bf16*)dmalloc(n * 2);
        float* g_y2 = (float*)malloc_check(n * 4);
        poison(y2, n * 2);
        poison(c.d_o, n * 2);
        rebuild_run(&c, y2);
        download_bf16(g_y2, y2, n);
        download_bf16(g_do1, c.d_o, n);
        const int same_y = !memcmp(g_y, g_y2, n * 4), same_do = !memcmp(g_do, g_do1, n * 4);
        printf("%s v%d bwd rebuilt y == forward's y, d_o == plain backward's, bit for bit M=%d H=%d V=%d\n",
               same_y && same_do ? "PASS" : "FAIL", version, M, H, V);
        fails += !(same_y && same_do);
        free(g_y2);
        CUDA_CHECK(cudaFree(y2));
    }

    free(h_o); free(h_gbuf); free(h_w); free(h_dy); free(h_dw0); free(ro); free(rg); free(rw); free(ry); free(rr);
    free(rdy); free(rdo); free(rdg); free(rdw); free(g_y); free(g_r); free(g_do); free(g_do1); free(g_dgbuf); free(g_dg);
    free(g_dw[0]); free(g_dw[1]);
    CUDA_CHECK(cudaFree(c.o)); CUDA_CHECK(cudaFree(d_gbuf)); CUDA_CHECK(cudaFree(c.w)); CUDA_CHECK(cudaFree(c.dy));
    CUDA_CHECK(cudaFree(c.y)); CUDA_CHECK(cudaFree(c.rstd)); CUDA_CHECK(cudaFree(c.d_o)); CUDA_CHECK(cudaFree(d_dgbuf));
    CUDA_CHECK(cudaFree(c.dw)); CUDA_CHECK(cudaFree(c.scratch));
    return fails;
}

typedef struct { float* part; int P, C; float* dst; } ColsumCtx;
static void colsum_fn(void* p) {
    const ColsumCtx* c = (const ColsumCtx*)p;
    partials_colsum_add(c->dst, c->part, c->P, c->C, 0);
}

/* ---------------- timing: gt/dgt as slices of the GLA fused input projection (2Dk + 2Dv + 16 columns) ---------------- */
static void time_version(int version, int M, int H, int V, int reps, int P) {
    const int HV = H * V, ld = 2 * (HV / 2) + 2 * HV + 16;  /* expand_k = 0.5 */
    const size_t n = (size_t)M * HV, nb = (size_t)M * ld;
    float* h = (float*)malloc_check(nb * 4);
    fill_uniform(h, nb, -2.f, 2.f, 21);
    Ctx c;
    memset(&c, 0, sizeof c);
    c.version = version; c.M = M; c.H = H; c.V = V; c.ld_gt = ld; c.ld_dgt = ld; c.P = P;
    bf16* gbuf = upload_bf16(h, nb);
    bf16* dgbuf = (bf16*)dmalloc(nb * 2);
    c.gt = gbuf + 2 * (HV / 2) + HV;
    c.dgt = dgbuf + 2 * (HV / 2) + HV;
    c.o = upload_bf16(h, n);
    c.dy = upload_bf16(h + n, n);
    fill_uniform(h, V, 0.5f, 1.5f, 22);
    c.w = upload_f32(h, V);
    c.y = (bf16*)dmalloc(n * 2);
    c.d_o = (bf16*)dmalloc(n * 2);
    c.rstd = (float*)dmalloc((size_t)M * H * 4);
    c.dw = (float*)dmalloc(V * 4);
    CUDA_CHECK(cudaMemset(c.dw, 0, V * 4));
    const int Pn = P > 0 ? P : version == 2 ? v2_parts(M, H, V) : grms_bwd_parts(M, H, V);
    c.scratch = (float*)dmalloc((size_t)Pn * V * 4);
    run_forward(&c);  /* rstd for the backward */
    const double R = (double)M * H;
    const double fbytes = (double)n * 6 + 4 * R, bbytes = (double)n * 10 + 4 * R + 2.0 * Pn * V * 4 * (version != 1);
    char what[96];
    float ms = time_kernel(fwd_fn, &c, reps);
    snprintf(what, sizeof what, "v%d forward  M=%d H=%d V=%d", version, M, H, V);
    time_report(what, ms, fbytes, 0);
    printf("    floor %.4f ms (bytes %.1f MB)\n", floor_ms(fbytes, 0), fbytes / 1e6);
    ms = time_kernel(bwd_fn, &c, reps);
    if (P > 0) snprintf(what, sizeof what, "v%d backward M=%d H=%d V=%d P=%d", version, M, H, V, P);
    else if (version > 1) snprintf(what, sizeof what, "v%d backward M=%d H=%d V=%d P=%d*", version, M, H, V, Pn);
    else snprintf(what, sizeof what, "v%d backward M=%d H=%d V=%d", version, M, H, V);
    time_report(what, ms, bbytes, 0);
    printf("    floor %.4f ms (bytes %.1f MB)\n", floor_ms(bbytes, 0), bbytes / 1e6);
    if (version == NVERSIONS && P == 0) {  /* the trainer's call: backward + rebuilt y, instead of forward rerun + backward */
        ms = time_kernel(rebuild_fn, &c, reps);
        snprintf(what, sizeof what, "v%d backward + rebuilt y M=%d H=%d V=%d", version, M, H, V);
        time_report(what, ms, bbytes + 2.0 * n, 0);
        printf("    floor %.4f ms (bytes %.1f MB)\n", floor_ms(bbytes + 2.0 * n, 0), (bbytes + 2.0 * n) / 1e6);
    }
    if (version > 1 && P == 0) {  /* the second stage alone: sum of the partial rows into the gradient */
        ColsumCtx cc = {c.scratch, Pn, V, c.dw};
        ms = time_kernel(colsum_fn, &cc, reps);
        snprintf(what, sizeof what, "    of which partials_colsum_add P=%d", Pn);
        time_report(what, ms, 4.0 * Pn * V, 0);
    }
    free(h);
    CUDA_CHECK(cudaFree(gbuf)); CUDA_CHECK(cudaFree(dgbuf)); CUDA_CHECK(cudaFree(c.o)); CUDA_CHECK(cudaFree(c.dy));
    CUDA_CHECK(cudaFree(c.w)); CUDA_CHECK(cudaFree(c.y)); CUDA_CHECK(cudaFree(c.d_o)); CUDA_CHECK(cudaFree(c.rstd));
    CUDA_CHECK(cudaFree(c.dw)); CUDA_CHECK(cudaFree(c.scratch));
}

int main(int argc, char** argv) {
    HarnessArgs a = harness_args(argc, argv);
    require_gpu_or_skip("gated_rmsnorm");
    if (a.version < 0 || a.version > NVERSIONS) die("version must be 1..%d", NVERSIONS);
    const int v0 = a.version ? a.version : 1, v1 = a.version ? a.version : NVERSIONS;
    if (a.check) {
        static const int shapes[][3] = {  /* M, H, V */
            {1, 1, 16}, {3, 4, 256}, {33, 4, 256}, {17, 2, 128}, {9, 3, 64}, {5, 2, 8}, {7, 1, 512},
            {5, 2, 1024}, {3, 3, 768}, {2001, 4, 256}, {1500, 8, 64}, {999, 2, 512}};
        int fails = 0;
        uint64_t seed = 2000;
        for (int v = v0; v <= v1; v++)
            for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
                fails += check_shape(v, shapes[i][0], shapes[i][1], shapes[i][2], seed += 17);
        printf("gated_rmsnorm --check: %s (%d failed)\n", fails ? "FAIL" : "PASS", fails);
        return fails ? 1 : 0;
    }
    const int M = (int)(harness_get(&a, 'B', 16) * harness_get(&a, 'T', 2048));
    const int H = (int)harness_get(&a, 'H', 4), V = (int)harness_get(&a, 'V', 256);
    for (int v = v0; v <= v1; v++) time_version(v, M, H, V, a.reps, 0);
    if (v1 == NVERSIONS) {
        static const int Ps[] = {528, 1056};
        for (size_t i = 0; i < sizeof Ps / sizeof Ps[0]; i++) time_version(NVERSIONS, M, H, V, a.reps, Ps[i]);
    }
    return 0;
}
