/*
 * dev/rmsnorm.cu — harness for the fused residual-add RMSNorm (common/rmsnorm.cuh): correctness against
 * test/ref_core.h in double, determinism of the dw reduction, and timing against the bytes floor.
 *
 *   ./dev/rmsnorm [version] [--check] [-B 16 -T 2048 -C 1024] [--reps 50]
 * versions: 1 = simple (one block per row, scalar accesses, dw by one thread per column over all rows)
 *           2 = production (common/rmsnorm.cuh); also its fused backward (rmsnorm_backward_fused: the residual
 *               add redone and the forward's output rebuilt inside the backward) and, in --check, the xhat forms
 *               the trainers' block norms use (rmsnorm_forward_xhat, rmsnorm_apply_weight, rmsnorm_backward_xhat)
 *           3 = cuDNN's RMSNorm through its graph API + our residual add and accumulations (common/cudnn_ops.cuh);
 *               only in USE_CUDNN builds, which the Makefile makes whenever it finds cuDNN. Its timing adds
 *               cuDNN's norm calls alone.
 * Build: nvcc -O3 -std=c++17 -lineinfo -gencode arch=compute_90,code=sm_90 -Icommon -Itest -Idev dev/rmsnorm.cu -o dev/rmsnorm
 */
#include "../common/rmsnorm.cuh"
#include "harness.h"
#include "../test/ref_core.h"
#ifdef USE_CUDNN
#include "../common/cudnn_ops.cuh"
#endif

#define V_PROD 2
#define V_CUDNN 3
#define NVERSIONS 3

/* ---------------- v1: the simplest correct version (teaching, not production) ---------------- */
__device__ float block_sum_v1(float v, float* sh) {  /* blockDim.x == 256, tree in shared memory */
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int o = 128; o > 0; o /= 2) {
        if ((int)threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
        __syncthreads();
    }
    float s = sh[0];
    __syncthreads();
    return s;
}
__global__ void rmsnorm_forward_v1(bf16* out, float* rstd, float* resid_out, const float* resid_in, const bf16* delta,
                                   const float* w, int C, float eps) {
    __shared__ float sh[256];
    const size_t base = (size_t)blockIdx.x * C;
    float ss = 0.f;
    for (int c = threadIdx.x; c < C; c += 256) {
        float x = (resid_in ? resid_in[base + c] : 0.f) + (delta ? bf2f(delta[base + c]) : 0.f);
        resid_out[base + c] = x;
        ss += x * x;
    }
    const float r = rsqrtf(block_sum_v1(ss, sh) / C + eps);
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
    for (int c = threadIdx.x; c < C; c += 256) out[base + c] = f2bf(resid_out[base + c] * r * w[c]);
}
__global__ void rmsnorm_backward_dx_v1(float* dresid, const bf16* dout, const float* x, const float* rstd,
                                       const float* w, int C) {
    __shared__ float sh[256];
    const size_t base = (size_t)blockIdx.x * C;
    const float r = rstd[blockIdx.x];
    float c1 = 0.f;
    for (int c = threadIdx.x; c < C; c += 256) c1 += x[base + c] * r * w[c] * bf2f(dout[base + c]);
    c1 = block_sum_v1(c1, sh) / C;
    for (int c = threadIdx.x; c < C; c += 256)
        dresid[base + c] += r * (w[c] * bf2f(dout[base + c]) - x[base + c] * r * c1);
}
__global__ void rmsnorm_backward_dw_v1(float* dw, const bf16* dout, const float* x, const float* rstd, int M, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float acc = 0.f;
    for (int m = 0; m < M; m++) acc += bf2f(dout[(size_t)m * C + c]) * x[(size_t)m * C + c] * rstd[m];
    dw[c] += acc;
}

/* ---------------- dispatch by version ---------------- */
typedef struct {
    int version, M, C, P;  /* P: partial rows for the production backward (0 = its default) */
    bf16 *out, *dout, *delta;
    float *rstd, *resid_out, *resid_in, *w, *dresid, *dw, *scratch;
    bf16 *xhat, *dresid_bf;  /* the trainers' xhat forms (timed only for the production version) */
    void* dnn;  /* CudnnRmsnorm* of v3 (USE_CUDNN builds), NULL otherwise */
} Ctx;

/* v3's cuDNN plans for the shape; NULL when cuDNN refused the forward (its refusals are printed) */
static void* attach_cudnn(int M, int C) {
#ifdef USE_CUDNN
    CudnnRmsnorm* p = (CudnnRmsnorm*)malloc_check(sizeof *p);
    if (cudnn_rmsnorm_plan(p, M, C, 1e-6f)) {
        printf("rmsnorm v3 = cuDNN %zu (headers %d) M=%d C=%d: Y %s, dY %s, workspace %zu bytes\n", cudnnGetVersion(),
               CUDNN_VERSION, M, C, p->yt == CUDNN_DATA_FLOAT ? "fp32 + our cast" : "bf16",
               !p->has_bwd ? "(no backward)" : p->dyt == CUDNN_DATA_FLOAT ? "fp32 after our cast" : "bf16", p->ws_bytes);
        return p;
    }
    cudnn_rmsnorm_destroy(p);
    free(p);
#else
    (void)M; (void)C;
#endif
    return NULL;
}
static void detach_cudnn(void* dnn) {
#ifdef USE_CUDNN
    if (dnn) cudnn_rmsnorm_destroy((CudnnRmsnorm*)dnn);
#endif
    free(dnn);
}
/* whether this version can run the backward (cuDNN may have accepted the forward only) */
static int has_backward(const Ctx* c) {
#ifdef USE_CUDNN
    if (c->version == V_CUDNN) return ((const CudnnRmsnorm*)c->dnn)->has_bwd;
#endif
    (void)c;
    return 1;
}

static void run_forward(const Ctx* c) {
    if (c->version == 1) {
        rmsnorm_forward_v1<<<c->M, 256>>>(c->out, c->rstd, c->resid_out, c->resid_in, c->delta, c->w, c->C, 1e-6f);
        CUDA_KERNEL_CHECK();
#ifdef USE_CUDNN
    } else if (c->version == V_CUDNN) {
        cudnn_rmsnorm_forward((CudnnRmsnorm*)c->dnn, c->out, c->rstd, c->resid_out, c->resid_in, c->delta, c->w, 0);
#endif
    } else {
        rmsnorm_forward(c->out, c->rstd, c->resid_out, c->resid_in, c->delta, c->w, c->M, c->C, 1e-6f, 0);
    }
}
static void run_backward(const Ctx* c) {
    if (c->version == 1) {
        /* dw first: it reads only inputs */
        rmsnorm_backward_dw_v1<<<(c->C + 127) / 128, 128>>>(c->dw, c->dout, c->resid_out, c->rstd, c->M, c->C);
        CUDA_KERNEL_CHECK();
        rmsnorm_backward_dx_v1<<<c->M, 256>>>(c->dresid, c->dout, c->resid_out, c->rstd, c->w, c->C);
        CUDA_KERNEL_CHECK();
#ifdef USE_CUDNN
    } else if (c->version == V_CUDNN) {
        cudnn_rmsnorm_backward((CudnnRmsnorm*)c->dnn, c->dresid, c->dw, c->dout, c->resid_out, c->rstd, c->w, 0);
#endif
    } else if (c->P > 0) {
        rmsnorm_backward_parts(c->dresid, NULL, c->dw, NULL, c->dout, c->resid_out, NULL, c->rstd, c->w, c->M, c->C, c->scratch,
                               c->P, 0);
    } else {
        rmsnorm_backward(c->dresid, c->dw, c->dout, c->resid_out, c->rstd, c->w, c->M, c->C, c->scratch, 0);
    }
}
static void fwd_fn(void* p) { run_forward((const Ctx*)p); }
static void fused_fn(void* p) {
    const Ctx* c = (const Ctx*)p;
    rmsnorm_backward_fused(c->dresid, NULL, c->dw, c->out, c->dout, c->resid_in, c->delta, c->rstd, c->w, c->M, c->C, c->scratch,
                           0);
}
static void bwd_fn(void* p) { run_backward((const Ctx*)p); }
/* the trainers' calls: a block norm's forward on the stream in place, its backward from xhat without and with the
 * rebuilt output (Mamba's, GLA's), and the rebuild alone (Mamba's backward before in_proj's recompute) */
static void xhat_fwd_fn(void* p) {
    const Ctx* c = (const Ctx*)p;
    rmsnorm_forward_xhat(c->out, c->xhat, c->rstd, c->resid_out, c->resid_out, c->delta, c->w, c->M, c->C, 1e-6f, 0);
}
static void xhat_bwd_fn(void* p) {
    const Ctx* c = (const Ctx*)p;
    rmsnorm_backward_xhat(c->dresid, c->dresid_bf, c->dw, NULL, c->dout, c->xhat, c->rstd, c->w, c->M, c->C, c->scratch, 0);
}
static void xhat_bwd_out_fn(void* p) {
    const Ctx* c = (const Ctx*)p;
    rmsnorm_backward_xhat(c->dresid, c->dresid_bf, c->dw, c->out, c->dout, c->xhat, c->rstd, c->w, c->M, c->C, c->scratch, 0);
}
static void apply_weight_fn(void* p) {
    const Ctx* c = (const Ctx*)p;
    rmsnorm_apply_weight(c->out, c->xhat, c->w, c->M, c->C, 0);
}

/* ---------------- check ---------------- */
/* backward twice from the same starting point: results must match the reference and each other bitwise.
 * h_dres0 [M,C], h_dw0 [C]: the gradients it accumulates onto; rdx [M,C], rdw [C]: the reference results. */
static int check_backward(const Ctx* c, const float* h_dres0, const float* h_dw0, const double* rdx, const double* rdw,
                          const char* mname) {
    const int M = c->M, C = c->C, version = c->version;
    const size_t n = (size_t)M * C;
    char what[160];
    int fails = 0;
    float* g_dres[2];
    float* g_dw[2];
    for (int rep = 0; rep < 2; rep++) {
        CUDA_CHECK(cudaMemcpy(c->dresid, h_dres0, n * 4, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(c->dw, h_dw0, C * 4, cudaMemcpyHostToDevice));
        poison(c->scratch, rmsnorm_scratch_floats(M, C) * 4);
        run_backward(c);
        g_dres[rep] = (float*)malloc_check(n * 4);
        g_dw[rep] = (float*)malloc_check(C * 4);
        download_f32(g_dres[rep], c->dresid, n);
        download_f32(g_dw[rep], c->dw, C);
    }
    snprintf(what, sizeof what, "v%d bwd dresid   M=%-5d C=%-5d %-10s", version, M, C, mname);
    fails += check_report(what, rdx, g_dres[0], n, 1e-5);
    snprintf(what, sizeof what, "v%d bwd dw       M=%-5d C=%-5d %-10s", version, M, C, mname);
    fails += check_report(what, rdw, g_dw[0], C, 3e-5);
    const int same = !memcmp(g_dres[0], g_dres[1], n * 4) && !memcmp(g_dw[0], g_dw[1], C * 4);
    printf("%s v%d bwd deterministic (2 runs bit-identical) M=%d C=%d\n", same ? "PASS" : "FAIL", version, M, C);
    fails += !same;
    for (int rep = 0; rep < 2; rep++) { free(g_dres[rep]); free(g_dw[rep]); }
    return fails;
}

/* The trainers' fused backward (production only): x = resid_in + delta redone inside, the forward's out
 * rebuilt. Its dresid and dw must equal the plain backward's bit for bit (same arithmetic on the same x),
 * and its out the forward's. Needs the forward's inputs intact: modes 0 (res+delta) and 2 (res only). */
static int check_fused(const Ctx* c, const float* h_dres0, const float* h_dw0, int mode) {
    const int M = c->M, C = c->C;
    const size_t n = (size_t)M * C;
    float* want[3] = {(float*)malloc_check(n * 4), (float*)malloc_check(C * 4), (float*)malloc_check(n * 4)};
    float* got[3] = {(float*)malloc_check(n * 4), (float*)malloc_check(C * 4), (float*)malloc_check(n * 4)};
    bf16* out2 = (bf16*)dmalloc(n * 2);
    for (int rep = 0; rep < 2; rep++) {   /* rep 0: plain backward on resid_out; rep 1: fused */
        float** dst = rep ? got : want;
        CUDA_CHECK(cudaMemcpy(c->dresid, h_dres0, n * 4, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(c->dw, h_dw0, C * 4, cudaMemcpyHostToDevice));
        poison(out2, n * 2);
        if (rep) rmsnorm_backward_fused(c->dresid, NULL, c->dw, out2, c->dout, c->resid_in, c->delta, c->rstd, c->w, M, C,
                                        c->scratch, 0);
        else rmsnorm_backward(c->dresid, c->dw, c->dout, c->resid_out, c->rstd, c->w, M, C, c->scratch, 0);
        download_f32(dst[0], c->dresid, n);
        download_f32(dst[1], c->dw, C);
        download_bf16(dst[2], rep ? out2 : c->out, n);
    }
    const int same_d = !memcmp(want[0], got[0], n * 4) && !memcmp(want[1], got[1], C * 4);
    const int same_o = !memcmp(want[2], got[2], n * 4);
    printf("%s v%d fused bwd (x = resid_in%s) dresid, dw == plain backward's bit for bit M=%d C=%d\n", same_d ? "PASS" : "FAIL",
           V_PROD, mode == 0 ? " + delta" : "", M, C);
    printf("%s v%d fused bwd rebuilt out == forward's out bit for bit M=%d C=%d\n", same_o ? "PASS" : "FAIL", V_PROD, M, C);
    for (int i = 0; i < 3; i++) { free(want[i]); free(got[i]); }
    CUDA_CHECK(cudaFree(out2));
    return !same_d + !same_o;
}

/* The host inputs of one check, fresh random values (delta and dout exact in bf16): the stream, the delta added to
 * it, the weight, the output gradient, and the gradients the backward accumulates onto. */
typedef struct { float *res, *delta, *w, *dout, *dres0, *dw0; } HostIn;
static HostIn host_inputs(int M, int C, uint64_t seed) {
    const size_t n = (size_t)M * C;
    HostIn h = {(float*)malloc_check(n * 4), (float*)malloc_check(n * 4), (float*)malloc_check(C * 4),
                (float*)malloc_check(n * 4), (float*)malloc_check(n * 4), (float*)malloc_check(C * 4)};
    fill_normal(h.res, n, 1.0f, seed);
    fill_normal(h.delta, n, 0.5f, seed + 1);
    round_to_bf16(h.delta, n);
    fill_uniform(h.w, C, 0.5f, 1.5f, seed + 2);
    fill_normal(h.dout, n, 1.0f, seed + 3);
    round_to_bf16(h.dout, n);
    fill_normal(h.dres0, n, 0.1f, seed + 4);
    fill_normal(h.dw0, C, 1.0f, seed + 5);
    return h;
}
static void host_inputs_free(HostIn* h) { free(h->res); free(h->delta); free(h->w); free(h->dout); free(h->dres0); free(h->dw0); }

/* mode: 0 = resid_in + delta out of place, 1 = in place, 2 = resid_in only, 3 = delta only */
static int check_shape(int version, int M, int C, int mode, uint64_t seed) {
    void* dnn = NULL;
    if (version == V_CUDNN && !(dnn = attach_cudnn(M, C))) {
        printf("SKIP v3 (cuDNN) M=%d C=%d: cuDNN refused the forward (refusals above)\n", M, C);
        return 0;
    }
    const size_t n = (size_t)M * C;
    HostIn in = host_inputs(M, C, seed);
    float *h_res = in.res, *h_delta = in.delta, *h_w = in.w, *h_dout = in.dout, *h_dres0 = in.dres0, *h_dw0 = in.dw0;
    const int use_res = mode != 3, use_delta = mode != 2;

    /* reference, double */
    double* x = (double*)malloc_check(n * 8);
    for (size_t i = 0; i < n; i++) x[i] = (use_res ? (double)h_res[i] : 0.0) + (use_delta ? (double)h_delta[i] : 0.0);
    double* ry = (double*)malloc_check(n * 8);
    double* rr = (double*)malloc_check(M * 8);
    double* rw = to_double(h_w, C);
    ref_rmsnorm_forward(ry, rr, x, rw, M, C, 1e-6);
    double* rdx = to_double(h_dres0, n);
    double* rdw = to_double(h_dw0, C);
    double* rdy = to_double(h_dout, n);
    ref_rmsnorm_backward(rdx, rdw, rdy, x, rr, rw, M, C);

    Ctx c;
    memset(&c, 0, sizeof c);
    c.version = version; c.M = M; c.C = C; c.dnn = dnn;
    float* d_res = upload_f32(h_res, n);
    c.resid_in = use_res ? d_res : NULL;
    c.resid_out = mode == 1 ? d_res : (float*)dmalloc(n * 4);
    bf16* d_delta = upload_bf16(h_delta, n);
    c.delta = use_delta ? d_delta : NULL;
    c.w = upload_f32(h_w, C);
    c.out = (bf16*)dmalloc(n * 2);
    c.rstd = (float*)dmalloc(M * 4);
    c.dout = upload_bf16(h_dout, n);
    c.dresid = (float*)dmalloc(n * 4);
    c.dw = (float*)dmalloc(C * 4);
    c.scratch = (float*)dmalloc(rmsnorm_scratch_floats(M, C) * 4);
    poison(c.out, n * 2);
    poison(c.rstd, M * 4);
    if (mode != 1) poison(c.resid_out, n * 4);
    poison(c.scratch, rmsnorm_scratch_floats(M, C) * 4);
    run_forward(&c);

    float* g_out = (float*)malloc_check(n * 4);
    float* g_res = (float*)malloc_check(n * 4);
    float* g_r = (float*)malloc_check(M * 4);
    download_bf16(g_out, c.out, n);
    download_f32(g_res, c.resid_out, n);
    download_f32(g_r, c.rstd, M);
    char what[160];
    int fails = 0;
    static const char* mname[4] = {"res+delta", "in-place", "res-only", "delta-only"};
    snprintf(what, sizeof what, "v%d fwd out      M=%-5d C=%-5d %-10s", version, M, C, mname[mode]);
    fails += check_report(what, ry, g_out, n, 5e-3);
    snprintf(what, sizeof what, "v%d fwd resid    M=%-5d C=%-5d %-10s", version, M, C, mname[mode]);
    fails += check_report(what, x, g_res, n, 1e-6);
    snprintf(what, sizeof what, "v%d fwd rstd     M=%-5d C=%-5d %-10s", version, M, C, mname[mode]);
    fails += check_report(what, rr, g_r, M, 1e-5);

    if (has_backward(&c)) fails += check_backward(&c, h_dres0, h_dw0, rdx, rdw, mname[mode]);
    else printf("SKIP v%d bwd M=%d C=%d: cuDNN refused the backward (refusals above)\n", version, M, C);
    if (version == V_PROD && (mode == 0 || mode == 2)) fails += check_fused(&c, h_dres0, h_dw0, mode);

    detach_cudnn(dnn);
    host_inputs_free(&in);
    free(x); free(ry); free(rr); free(rw); free(rdx); free(rdw); free(rdy); free(g_out); free(g_res); free(g_r);
    if (mode != 1) CUDA_CHECK(cudaFree(c.resid_out));
    CUDA_CHECK(cudaFree(d_res));
    CUDA_CHECK(cudaFree(d_delta)); CUDA_CHECK(cudaFree(c.w)); CUDA_CHECK(cudaFree(c.out)); CUDA_CHECK(cudaFree(c.rstd));
    CUDA_CHECK(cudaFree(c.dout)); CUDA_CHECK(cudaFree(c.dresid)); CUDA_CHECK(cudaFree(c.dw)); CUDA_CHECK(cudaFree(c.scratch));
    return fails;
}

typedef struct { float* part; int P, C; float* dst; } ColsumCtx;
static void colsum_fn(void* p) {
    const ColsumCtx* c = (const ColsumCtx*)p;
    partials_colsum_add(c->dst, c->part, c->P, c->C, 0);
}

/* ---------------- timing ---------------- */
#ifdef USE_CUDNN
/* cuDNN's norm calls alone (on the buffers the full runs left), to tell its time from our kernels' around it */
static void dnn_fwd_fn(void* p) {
    const Ctx* c = (const Ctx*)p;
    cudnn_rmsnorm_norm_fwd((CudnnRmsnorm*)c->dnn, c->out, c->rstd, c->resid_out, c->w, 0);
}
static void dnn_bwd_fn(void* p) {
    const Ctx* c = (const Ctx*)p;
    cudnn_rmsnorm_norm_bwd((CudnnRmsnorm*)c->dnn, c->dout, c->resid_out, c->rstd, c->w, 0);
}
static void time_cudnn_parts(Ctx* c, int reps) {
    const double n = (double)c->M * c->C;
    /* bytes: forward X fp32 in, Y bf16 and rstd out; backward X fp32 and dY bf16 in, dX fp32 out */
    time_report("  cuDNN norm forward alone", time_kernel(dnn_fwd_fn, c, reps), n * (4 + 2) + 4.0 * c->M, 0);
    if (has_backward(c)) time_report("  cuDNN norm backward alone", time_kernel(dnn_bwd_fn, c, reps), n * (4 + 2 + 4) + 4.0 * c->M, 0);
}
#endif

static void time_version(int version, int M, int C, int reps, int P) {
    void* dnn = NULL;
    if (version == V_CUDNN && !(dnn = attach_cudnn(M, C))) {
        printf("v3 (cuDNN) M=%d C=%d: cuDNN refused the forward (refusals above)\n", M, C);
        return;
    }
    const size_t n = (size_t)M * C;
    float* h = (float*)malloc_check(n * 4);
    Ctx c;
    memset(&c, 0, sizeof c);
    c.version = version; c.M = M; c.C = C; c.P = P; c.dnn = dnn;
    fill_uniform(h, n, -2.f, 2.f, 11);
    c.resid_in = upload_f32(h, n);
    c.delta = upload_bf16(h, n);
    c.dout = upload_bf16(h, n);
    c.dresid = upload_f32(h, n);
    fill_uniform(h, C, 0.5f, 1.5f, 12);
    c.w = upload_f32(h, C);
    c.resid_out = (float*)dmalloc(n * 4);
    c.out = (bf16*)dmalloc(n * 2);
    c.rstd = (float*)dmalloc(M * 4);
    c.dw = (float*)dmalloc(C * 4);
    CUDA_CHECK(cudaMemset(c.dw, 0, C * 4));
    const int Pmax = P > 0 ? P : rmsnorm_bwd_parts(M, C);
    c.scratch = (float*)dmalloc((size_t)Pmax * C * 4);
    const double fbytes = (double)n * (4 + 2 + 4 + 2) + 4.0 * M;
    const double bbytes = (double)n * (2 + 4 + 4 + 4) + 4.0 * M + 2.0 * Pmax * C * 4 * (version == V_PROD);
    char what[96];
    float ms = time_kernel(fwd_fn, &c, reps);
    snprintf(what, sizeof what, "v%d forward  M=%d C=%d", version, M, C);
    time_report(what, ms, fbytes, 0);
    printf("    floor %.4f ms (bytes %.1f MB)\n", floor_ms(fbytes, 0), fbytes / 1e6);
    if (has_backward(&c)) {
        ms = time_kernel(bwd_fn, &c, reps);
        if (P > 0) snprintf(what, sizeof what, "v%d backward M=%d C=%d P=%d", version, M, C, P);
        else if (version == V_PROD) snprintf(what, sizeof what, "v%d backward M=%d C=%d P=%d*", version, M, C, Pmax);
        else snprintf(what, sizeof what, "v%d backward M=%d C=%d", version, M, C);
        time_report(what, ms, bbytes, 0);
        printf("    floor %.4f ms (bytes %.1f MB)\n", floor_ms(bbytes, 0), bbytes / 1e6);
    } else {
        printf("v%d backward M=%d C=%d: cuDNN refused it (refusals above)\n", version, M, C);
    }
#ifdef USE_CUDNN
    if (version == V_CUDNN) time_cudnn_parts(&c, reps);
#endif
    if (version == V_PROD && P == 0) {  /* the trainers' fused backward vs a forward rerun + the backward */
        ms = time_kernel(fused_fn, &c, reps);
        const double fbytes = (double)n * (2 + 4 + 2 + 4 + 4 + 2) + 4.0 * M + 2.0 * Pmax * C * 4;
        snprintf(what, sizeof what, "v%d fused backward (x = res + delta, rebuilds out) M=%d C=%d", version, M, C);
        time_report(what, ms, fbytes, 0);
        printf("    floor %.4f ms (bytes %.1f MB); it replaces the forward rerun + backward above\n", floor_ms(fbytes, 0),
               fbytes / 1e6);
    }
    if (version == V_PROD && P == 0) {  /* the trainers' xhat forms (bytes: stream fp32 in and out, delta, xhat, out) */
        c.xhat = (bf16*)dmalloc(n * 2);
        c.dresid_bf = (bf16*)dmalloc(n * 2);
        CUDA_CHECK(cudaMemcpy(c.resid_out, c.resid_in, n * 4, cudaMemcpyDeviceToDevice));
        const double part = 2.0 * Pmax * C * 4;
        static const struct { const char* what; void (*fn)(void*); double per_elem, parts; } forms[] = {
            {"xhat forward (stream in place, + delta; writes xhat, out)", xhat_fwd_fn, 4 + 2 + 4 + 2 + 2, 0},
            {"xhat backward (dout, xhat; dresid +=, dresid_bf)", xhat_bwd_fn, 2 + 2 + 4 + 4 + 2, 1},
            {"xhat backward + out (GLA's: also rebuilds out)", xhat_bwd_out_fn, 2 + 2 + 4 + 4 + 2 + 2, 1},
            {"apply_weight (out = bf16(xhat) w)", apply_weight_fn, 2 + 2, 0},
        };
        for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
            ms = time_kernel(forms[i].fn, &c, reps);
            const double b = (double)n * forms[i].per_elem + 4.0 * M + part * forms[i].parts;
            snprintf(what, sizeof what, "v%d %s M=%d C=%d", version, forms[i].what, M, C);
            time_report(what, ms, b, 0);
            printf("    floor %.4f ms (bytes %.1f MB)\n", floor_ms(b, 0), b / 1e6);
        }
        CUDA_CHECK(cudaFree(c.xhat));
        CUDA_CHECK(cudaFree(c.dresid_bf));
    }
    if (version == V_PROD && P == 0) {  /* the second stage alone: sum of the partial rows into the gradient */
        ColsumCtx cc = {c.scratch, Pmax, C, c.dw};
        ms = time_kernel(colsum_fn, &cc, reps);
        snprintf(what, sizeof what, "    of which partials_colsum_add P=%d", Pmax);
        time_report(what, ms, 4.0 * Pmax * C, 0);
    }
    free(h);
    CUDA_CHECK(cudaFree(c.resid_in)); CUDA_CHECK(cudaFree(c.delta)); CUDA_CHECK(cudaFree(c.dout));
    CUDA_CHECK(cudaFree(c.dresid)); CUDA_CHECK(cudaFree(c.w)); CUDA_CHECK(cudaFree(c.resid_out));
    CUDA_CHECK(cudaFree(c.out)); CUDA_CHECK(cudaFree(c.rstd)); CUDA_CHECK(cudaFree(c.dw)); CUDA_CHECK(cudaFree(c.scratch));
    detach_cudnn(dnn);
}

/* rmsnorm_forward2 (production): resid_out = (resid_in + delta) + delta2 in fp32, bit for bit what two
 * one-delta steps give (the GLA trainer skips storing the middle point); with resid_out NULL the same
 * out and rstd. Checked against the host's fp32 sums and the one-delta kernel run twice. */
static int check_two_deltas(int M, int C, uint64_t seed) {
    const size_t n = (size_t)M * C;
    float *h_res = (float*)malloc_check(n * 4), *h_d1 = (float*)malloc_check(n * 4), *h_d2 = (float*)malloc_check(n * 4);
    float* h_w = (float*)malloc_check(C * 4);
    fill_normal(h_res, n, 1.0f, seed);
    fill_normal(h_d1, n, 0.5f, seed + 1);
    fill_normal(h_d2, n, 0.5f, seed + 2);
    round_to_bf16(h_d1, n);
    round_to_bf16(h_d2, n);
    fill_uniform(h_w, C, 0.5f, 1.5f, seed + 3);
    float* d_res = upload_f32(h_res, n);
    bf16 *d_d1 = upload_bf16(h_d1, n), *d_d2 = upload_bf16(h_d2, n);
    float* d_w = upload_f32(h_w, C);
    float *mid = (float*)dmalloc(n * 4), *sum2 = (float*)dmalloc(n * 4), *sum1 = (float*)dmalloc(n * 4);
    bf16 *out1 = (bf16*)dmalloc(n * 2), *out2 = (bf16*)dmalloc(n * 2), *out3 = (bf16*)dmalloc(n * 2);
    float *r1 = (float*)dmalloc(M * 4), *r2 = (float*)dmalloc(M * 4), *r3 = (float*)dmalloc(M * 4);
    poison(sum2, n * 4); poison(out2, n * 2); poison(out3, n * 2); poison(r2, M * 4); poison(r3, M * 4);
    rmsnorm_forward(out1, r1, mid, d_res, d_d1, d_w, M, C, 1e-6f, 0);        /* two steps, middle stored */
    rmsnorm_forward(out1, r1, sum1, mid, d_d2, d_w, M, C, 1e-6f, 0);
    rmsnorm_forward2(out2, r2, sum2, d_res, d_d1, d_d2, d_w, M, C, 1e-6f, 0);  /* one step */
    rmsnorm_forward2(out3, r3, NULL, d_res, d_d1, d_d2, d_w, M, C, 1e-6f, 0);  /* one step, sum not stored */
    float *a = (float*)malloc_check(n * 4), *b = (float*)malloc_check(n * 4);
    int ok = 1;
    download_f32(a, sum1, n); download_f32(b, sum2, n);
    for (size_t i = 0; i < n && ok; i++) ok = a[i] == b[i] && b[i] == (h_res[i] + h_d1[i]) + h_d2[i];
    download_bf16(a, out1, n); download_bf16(b, out2, n); ok = ok && !memcmp(a, b, n * 4);
    download_bf16(b, out3, n); ok = ok && !memcmp(a, b, n * 4);
    download_f32(a, r1, M); download_f32(b, r2, M); ok = ok && !memcmp(a, b, M * 4);
    download_f32(b, r3, M); ok = ok && !memcmp(a, b, M * 4);
    printf("%s v2 forward2 (resid + delta + delta2; resid_out NULL too) == two one-delta steps, bit for bit M=%d C=%d\n",
           ok ? "PASS" : "FAIL", M, C);
    free(h_res); free(h_d1); free(h_d2); free(h_w); free(a); free(b);
    CUDA_CHECK(cudaFree(d_res)); CUDA_CHECK(cudaFree(d_d1)); CUDA_CHECK(cudaFree(d_d2)); CUDA_CHECK(cudaFree(d_w));
    CUDA_CHECK(cudaFree(mid)); CUDA_CHECK(cudaFree(sum1)); CUDA_CHECK(cudaFree(sum2));
    CUDA_CHECK(cudaFree(out1)); CUDA_CHECK(cudaFree(out2)); CUDA_CHECK(cudaFree(out3));
    CUDA_CHECK(cudaFree(r1)); CUDA_CHECK(cudaFree(r2)); CUDA_CHECK(cudaFree(r3));
    return !ok;
}

/* The trainers' block norms keep xhat = bf16(x * rstd) instead of the fp32 stream (production only):
 * rmsnorm_forward_xhat must give the plain forward's stream and rstd bit for bit, xhat and out = bf16(xhat) * w
 * bit for bit what the host forms from those, and out within the reference's tolerance; rmsnorm_apply_weight and
 * the xhat backward's rebuilt out must equal that out bit for bit; the xhat backward must match the double
 * reference (looser than the fp32 backward's: it sees x * rstd rounded to bf16) and be deterministic.
 * in_place: the stream updated in place, as the trainers do. */
static int check_xhat(int M, int C, int in_place, uint64_t seed) {
    const size_t n = (size_t)M * C;
    HostIn in = host_inputs(M, C, seed);
    float *h_res = in.res, *h_delta = in.delta, *h_w = in.w, *h_dout = in.dout, *h_dres0 = in.dres0, *h_dw0 = in.dw0;
    double* x = (double*)malloc_check(n * 8);
    for (size_t i = 0; i < n; i++) x[i] = (double)h_res[i] + (double)h_delta[i];
    double *ry = (double*)malloc_check(n * 8), *rr = (double*)malloc_check(M * 8), *rw = to_double(h_w, C);
    ref_rmsnorm_forward(ry, rr, x, rw, M, C, 1e-6);
    double *rdx = to_double(h_dres0, n), *rdw = to_double(h_dw0, C), *rdy = to_double(h_dout, n);
    ref_rmsnorm_backward(rdx, rdw, rdy, x, rr, rw, M, C);

    float *d_res = upload_f32(h_res, n), *d_res2 = upload_f32(h_res, n), *d_w = upload_f32(h_w, C);
    float* st = in_place ? d_res : (float*)dmalloc(n * 4);
    bf16 *d_delta = upload_bf16(h_delta, n), *d_dout = upload_bf16(h_dout, n);
    bf16 *out = (bf16*)dmalloc(n * 2), *xh = (bf16*)dmalloc(n * 2), *out2 = (bf16*)dmalloc(n * 2), *plain = (bf16*)dmalloc(n * 2);
    float *r = (float*)dmalloc(M * 4), *rp = (float*)dmalloc(M * 4), *stp = (float*)dmalloc(n * 4);
    float *dres = (float*)dmalloc(n * 4), *dw = (float*)dmalloc(C * 4), *scratch = (float*)dmalloc(rmsnorm_scratch_floats(M, C) * 4);
    poison(out, n * 2); poison(xh, n * 2); poison(r, M * 4);
    if (!in_place) poison(st, n * 4);
    rmsnorm_forward(plain, rp, stp, d_res2, d_delta, d_w, M, C, 1e-6f, 0);
    rmsnorm_forward_xhat(out, xh, r, st, d_res, d_delta, d_w, M, C, 1e-6f, 0);
    float *g_st = (float*)malloc_check(n * 4), *g_stp = (float*)malloc_check(n * 4), *g_r = (float*)malloc_check(M * 4);
    float *g_rp = (float*)malloc_check(M * 4), *g_xh = (float*)malloc_check(n * 4), *g_out = (float*)malloc_check(n * 4);
    float* g_o2 = (float*)malloc_check(n * 4);
    download_f32(g_st, st, n); download_f32(g_stp, stp, n); download_f32(g_r, r, M); download_f32(g_rp, rp, M);
    download_bf16(g_xh, xh, n); download_bf16(g_out, out, n);
    int fails = 0, ok = !memcmp(g_st, g_stp, n * 4) && !memcmp(g_r, g_rp, M * 4), okx = 1;
    for (size_t i = 0; i < n && okx; i++) {
        const float want_xh = host_bf_bits2f(host_f2bf_bits(g_st[i] * g_r[i / C]));
        okx = g_xh[i] == want_xh && g_out[i] == host_bf_bits2f(host_f2bf_bits(want_xh * h_w[i % C]));
    }
    printf("%s v2 fwd xhat (%s) stream, rstd == plain forward's; xhat = bf16(x r), out = bf16(xhat w) bit for bit M=%d C=%d\n",
           ok && okx ? "PASS" : "FAIL", in_place ? "in place" : "out of place", M, C);
    fails += !(ok && okx);
    char what[160];
    snprintf(what, sizeof what, "v2 fwd xhat out M=%-5d C=%-5d", M, C);
    fails += check_report(what, ry, g_out, n, 5e-3);
    poison(out2, n * 2);
    rmsnorm_apply_weight(out2, xh, d_w, M, C, 0);
    download_bf16(g_o2, out2, n);
    ok = !memcmp(g_o2, g_out, n * 4);
    printf("%s v2 apply_weight(xhat) == forward's out bit for bit M=%d C=%d\n", ok ? "PASS" : "FAIL", M, C);
    fails += !ok;
    float *gd[2] = {(float*)malloc_check(n * 4), (float*)malloc_check(n * 4)}, *gw[2] = {(float*)malloc_check(C * 4), (float*)malloc_check(C * 4)};
    int same_o = 1;
    for (int rep = 0; rep < 2; rep++) {
        CUDA_CHECK(cudaMemcpy(dres, h_dres0, n * 4, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(dw, h_dw0, C * 4, cudaMemcpyHostToDevice));
        poison(out2, n * 2);
        poison(scratch, rmsnorm_scratch_floats(M, C) * 4);
        rmsnorm_backward_xhat(dres, NULL, dw, out2, d_dout, xh, r, d_w, M, C, scratch, 0);
        download_f32(gd[rep], dres, n);
        download_f32(gw[rep], dw, C);
        download_bf16(g_o2, out2, n);
        same_o = same_o && !memcmp(g_o2, g_out, n * 4);
    }
    snprintf(what, sizeof what, "v2 bwd xhat dresid M=%-5d C=%-5d", M, C);
    fails += check_report(what, rdx, gd[0], n, 3e-3);
    snprintf(what, sizeof what, "v2 bwd xhat dw     M=%-5d C=%-5d", M, C);
    fails += check_report(what, rdw, gw[0], C, 3e-3);
    ok = !memcmp(gd[0], gd[1], n * 4) && !memcmp(gw[0], gw[1], C * 4);
    printf("%s v2 bwd xhat deterministic (2 runs bit-identical); rebuilt out %s forward's M=%d C=%d\n",
           ok && same_o ? "PASS" : "FAIL", same_o ? "==" : "!=", M, C);
    fails += !(ok && same_o);
    host_inputs_free(&in);
    free(x); free(ry); free(rr); free(rw);
    free(rdx); free(rdw); free(rdy); free(g_st); free(g_stp); free(g_r); free(g_rp); free(g_xh); free(g_out); free(g_o2);
    for (int i = 0; i < 2; i++) { free(gd[i]); free(gw[i]); }
    if (!in_place) CUDA_CHECK(cudaFree(st));
    void* dev[] = {d_res, d_res2, d_w, d_delta, d_dout, out, xh, out2, plain, r, rp, stp, dres, dw, scratch};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) CUDA_CHECK(cudaFree(dev[i]));
    return fails;
}

int main(int argc, char** argv) {
    HarnessArgs a = harness_args(argc, argv);
    require_gpu_or_skip("rmsnorm");
    const int v0 = a.version ? a.version : 1, v1 = a.version ? a.version : NVERSIONS;
    if (a.version < 0 || a.version > NVERSIONS) die("version must be 1..%d", NVERSIONS);
    if (a.check) {
        static const int shapes[][3] = {  /* M, C, mode */
            {1, 16, 0}, {7, 8, 1}, {33, 768, 0}, {257, 1024, 1}, {64, 1024, 2}, {65, 1024, 3},
            {65, 1536, 0}, {31, 2048, 1}, {17, 4096, 0}, {9, 8192, 1}, {5001, 1024, 1}, {4500, 2048, 0},
            {3001, 4096, 1}, {2, 24, 0}};
        int fails = 0;
        uint64_t seed = 1000;
        for (int v = v0; v <= v1; v++) {
            if (!harness_version_built("rmsnorm", v, V_CUDNN)) continue;
            for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
                fails += check_shape(v, shapes[i][0], shapes[i][1], shapes[i][2], seed += 17);
            if (v == V_PROD) {
                fails += check_two_deltas(33, 1024, seed += 17);
                fails += check_two_deltas(5001, 1024, seed += 17);
                fails += check_two_deltas(9, 8192, seed += 17);
                fails += check_xhat(33, 768, 1, seed += 17);
                fails += check_xhat(5001, 1024, 1, seed += 17);
                fails += check_xhat(257, 2048, 0, seed += 17);
                fails += check_xhat(9, 8192, 1, seed += 17);
            }
        }
        printf("rmsnorm --check: %s (%d failed)\n", fails ? "FAIL" : "PASS", fails);
        return fails ? 1 : 0;
    }
    const int M = (int)(harness_get(&a, 'B', 16) * harness_get(&a, 'T', 2048)), C = (int)harness_get(&a, 'C', 1024);
    for (int v = v0; v <= v1; v++)
        if (harness_version_built("rmsnorm", v, V_CUDNN)) time_version(v, M, C, a.reps, 0);
    if (a.version == 0 || a.version == V_PROD) {  /* production backward with other numbers of partial rows */
        static const int Ps[] = {132, 528};
        for (size_t i = 0; i < sizeof Ps / sizeof Ps[0]; i++) time_version(V_PROD, M, C, a.reps, Ps[i]);
    }
    return 0;
}
