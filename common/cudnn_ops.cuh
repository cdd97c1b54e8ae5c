/*
 * cudnn_ops.cuh — cuDNN's versions of two of our operations, so the dev harnesses can time them beside ours
 * (dev/conv1d.cu and dev/rmsnorm.cu, version 3). Compiled only with USE_CUDNN (the Makefile sets it when it
 * finds cudnn.h and libcudnn); nothing in the trainers uses this file.
 *
 *   conv1d:  Mamba's depthwise causal conv1d (common/conv1d.cuh) as a grouped 2-D convolution of the legacy API
 *            (groups = channels, a 1 x T image per sequence, channels-last NHWC descriptors over our token-major
 *            rows). The legacy API pads symmetrically, so the conv runs with W-1 zeros on both sides and we keep
 *            the first T of its T+W-1 outputs: exactly the causal window. Bias + SiLU (forward) and SiLU' + db
 *            (backward) have no legacy call, so they are small kernels here; the backward recomputes the
 *            pre-activation as ours does. Configs, tried in order at plan time: bf16 reading x / writing dx in
 *            our strided layout; bf16 on packed copies; fp32 on packed fp32 copies. cuDNN's Find runs every
 *            algorithm, and a config counts only if a deterministic one ran for all three calls.
 *   rmsnorm: the RMSNorm (common/rmsnorm.cuh) through the graph (backend) API, one NORM_FORWARD / NORM_BACKWARD
 *            operation per graph, the first deterministic engine from heuristics mode A, then from the fallback
 *            list. cuDNN's norm has no residual input and does not accumulate into gradients, so the residual
 *            add, dresid += dX and dw += dscale are small kernels here. Y / dY are bf16 when cuDNN accepts mixed
 *            types (X is our fp32 residual stream), else fp32 with a cast of ours.
 *
 * Same contracts as the production functions, so the harnesses check them against the same CPU reference.
 * A config cuDNN refuses is printed with the call, its status and cuDNN's own message (cudnn_refusal).
 */
#ifndef COMMON_CUDNN_OPS_CUH
#define COMMON_CUDNN_OPS_CUH

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cudnn.h>
#include "errors.h"
#include "launch.cuh"
#include "bf16.cuh"
#include "rmsnorm.cuh"   /* vec8_load / vec8_store, rmsnorm_load_residual, partials_colsum_add */
#include "conv1d.cuh"    /* conv_check_shape */

/* ---------------------------------------------------------------------------------------------
 * refusals and the handle
 * ------------------------------------------------------------------------------------------- */

/* NO_CUDNN=1 in the environment refuses every plan, so the harnesses skip their cuDNN version. make sanitize
 * sets it for racecheck and initcheck: initcheck reports reads of uninitialised memory inside cuDNN's own
 * grouped-convolution kernels while cudnnFindConvolutionForwardAlgorithm tries them (not code of this project). */
static inline int cudnn_disabled_(const char* what) {
    const char* e = getenv("NO_CUDNN");
    if (!(e && strcmp(e, "1") == 0)) return 0;
    printf("cuDNN %s: not planned (NO_CUDNN=1)\n", what);
    return 1;
}

/* The last call cuDNN refused while a plan was made: "file:line: call -> STATUS: cuDNN's message". */
static char cudnn_refusal[1024];

static inline int cudnn_try_(cudnnStatus_t s, const char* call, const char* file, int line) {
    if (s == CUDNN_STATUS_SUCCESS) return 1;
    char msg[512] = "";
    cudnnGetLastErrorString(msg, sizeof msg);
    snprintf(cudnn_refusal, sizeof cudnn_refusal, "%s:%d: %s -> %s%s%s", file, line, call, cudnnGetErrorString(s),
             msg[0] ? ": " : "", msg);
    return 0;
}
/* Like CUDNN_CHECK but for plan-time calls that may legitimately be refused: records why, returns 0. */
#define CUDNN_TRY(call) cudnn_try_((call), #call, __FILE__, __LINE__)
#define CUDNN_SET(d, name, type, n, ptr) CUDNN_TRY(cudnnBackendSetAttribute((d), (name), (type), (n), (ptr)))

/* one handle for the process: creating one costs ~0.1 s */
static inline cudnnHandle_t cudnn_handle(void) {
    static cudnnHandle_t h = NULL;
    if (!h) CUDNN_CHECK(cudnnCreate(&h));
    return h;
}
static inline size_t cudnn_dtype_bytes(cudnnDataType_t t) { return t == CUDNN_DATA_FLOAT ? 4 : 2; }

/* ---------------------------------------------------------------------------------------------
 * the small kernels around cuDNN's calls (8 consecutive elements per thread, 16-byte accesses)
 * ------------------------------------------------------------------------------------------- */

/* dst[r, 0:cols] = src[r, 0:cols] converted; cols % 8 == 0, row strides in elements */
template <typename Ts, typename Td>
__global__ void cudnn_copy_rows_kernel(Td* dst, int ld_dst, const Ts* src, int ld_src, size_t rows, int cols) {
    pdl_wait_prior();
    const size_t groups = (size_t)cols / 8, i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= rows * groups) return;
    const size_t r = i / groups, c = (i % groups) * 8;
    float v[8];
    vec8_load(v, src + r * ld_src + c);
    vec8_store(dst + r * ld_dst + c, v);
}
template <typename Ts, typename Td>
static inline void cudnn_copy_rows(Td* dst, int ld_dst, const Ts* src, int ld_src, size_t rows, int cols, cudaStream_t s) {
    const size_t n = rows * (size_t)(cols / 8);
    if (n == 0) return;
    launch_kernel(cudnn_copy_rows_kernel<Ts, Td>, (unsigned)((n + 255) / 256), 256, 0, s, dst, ld_dst, src, ld_src,
                  rows, cols);
}

/* dst[0:n] += src[0:n]; n % 8 == 0 */
template <typename Ts>
__global__ void cudnn_accumulate_kernel(float* dst, const Ts* src, size_t n) {
    pdl_wait_prior();
    const size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * 8;
    if (i >= n) return;
    float a[8], b[8];
    vec8_load(a, dst + i);
    vec8_load(b, src + i);
#pragma unroll
    for (int k = 0; k < 8; k++) a[k] += b[k];
    vec8_store(dst + i, a);
}
template <typename Ts>
static inline void cudnn_accumulate(float* dst, const Ts* src, size_t n, cudaStream_t s) {
    if (n == 0) return;
    launch_kernel(cudnn_accumulate_kernel<Ts>, (unsigned)((n / 8 + 255) / 256), 256, 0, s, dst, src, n);
}

/* ---------------------------------------------------------------------------------------------
 * conv1d: depthwise causal conv + bias + SiLU as a grouped convolution (legacy API)
 * ------------------------------------------------------------------------------------------- */

#define CUDNN_DB_ROWS 64   /* conv rows (of the padded output) per block of db partial sums */

typedef enum { CUDNN_CONV_BF16_STRIDED, CUDNN_CONV_BF16_PACKED, CUDNN_CONV_FP32_PACKED, CUDNN_CONV_NCONFIGS } CudnnConvConfig;
static const char* const cudnn_conv_config_names[CUDNN_CONV_NCONFIGS] = {
    "bf16, x and dx in our strided layout", "bf16, x and dx through packed [B,T,Di] copies",
    "fp32, x and dx through packed fp32 copies"};

typedef struct {
    CudnnConvConfig cfg;
    cudnnDataType_t dt;                     /* cuDNN's element type for x, w, y, dx, dw */
    int packed;                             /* x, dx go through xq, dxq */
    int B, T, Tp, Di, W, ld_x, ld_dx;       /* Tp = T + W - 1: the symmetric-padded conv's output length */
    cudnnTensorDescriptor_t xd, dxd, yd;    /* x, dx: [B,T,Di] NHWC (H = 1); y: [B,Tp,Di] packed NHWC */
    cudnnFilterDescriptor_t wd;             /* [Di, 1, 1, W]: one input channel per group */
    cudnnConvolutionDescriptor_t cd;        /* pad W-1 left and right, groups = Di, cross-correlation, fp32 accumulate */
    cudnnConvolutionFwdAlgo_t algo_fwd;
    cudnnConvolutionBwdDataAlgo_t algo_data;
    cudnnConvolutionBwdFilterAlgo_t algo_filter;
    cudnnMathType_t math_fwd, math_data, math_filter;  /* the math type Find ran each chosen algorithm with */
    void* ws;                               /* workspace, ws_bytes: the largest of the three chosen algorithms' */
    size_t ws_bytes;
    void* y;                                /* [B,Tp,Di] dt: the conv output; in the backward, dxc in place */
    void* wq;                               /* [Di,W] dt: w in cuDNN's type (bf16 configs) */
    void* dwq;                              /* [Di,W] dt: cuDNN's dw before we add it into ours (bf16 configs) */
    void* xq;                               /* [B,T,Di] dt: packed x (packed configs) */
    void* dxq;                              /* [B,T,Di] dt: packed dx (packed configs) */
    float* part;                            /* [P,Di]: db partial sums, P = ceil(B*Tp / CUDNN_DB_ROWS) */
    int P;
} CudnnConv1d;

/* u[b,t,:] = silu(y[b,t,:] + bias) for t < T (the causal outputs); y: [B,Tp,Di], u: [B,T,Di] */
template <typename Ty>
__global__ void cudnn_bias_silu_kernel(bf16* u, const Ty* y, const float* bias, int T, int Tp, int Di, size_t rows) {
    pdl_wait_prior();
    const size_t groups = (size_t)Di / 8, i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= rows * groups) return;
    const size_t row = i / groups, c = (i % groups) * 8, b = row / T, t = row % T;
    float v[8], bv[8];
    vec8_load(v, y + (b * Tp + t) * Di + c);
    vec8_load(bv, bias + c);
#pragma unroll
    for (int k = 0; k < 8; k++) {
        const float s = v[k] + bv[k];
        v[k] = s * sigmoid_ftz(s);
    }
    vec8_store(u + row * Di + c, v);
}

/* In place over y [B,Tp,Di]: y = du * silu'(y + bias) for t < T, 0 on the W-1 padded rows (their outputs were
 * dropped, so their gradient is zero). part[blockIdx.y, :] = this block's sums of the dxc it wrote (db), added
 * over the blocks later in a fixed order. block (32, 8): x = 8-channel groups, y = rows. */
template <typename Ty>
__global__ void __launch_bounds__(256)
cudnn_dsilu_kernel(Ty* y, float* part, const bf16* du, const float* bias, int B, int T, int Tp, int Di) {
    pdl_wait_prior();
    __shared__ float sh[8][32 * 8];
    const int c = (blockIdx.x * 32 + threadIdx.x) * 8;
    const size_t r0 = (size_t)blockIdx.y * CUDNN_DB_ROWS, all = (size_t)B * Tp, rend = r0 + CUDNN_DB_ROWS < all ? r0 + CUDNN_DB_ROWS : all;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (c < Di) {
        float bv[8];
        vec8_load(bv, bias + c);
        for (size_t r = r0 + threadIdx.y; r < rend; r += 8) {
            const size_t b = r / Tp, t = r % Tp;
            float v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            if (t < (size_t)T) {
                float g[8];
                vec8_load(v, y + r * Di + c);
                vec8_load(g, du + (b * T + t) * Di + c);
#pragma unroll
                for (int k = 0; k < 8; k++) {
                    const float s = v[k] + bv[k], sg = sigmoid_ftz(s);
                    v[k] = g[k] * sg * (1.0f + s * (1.0f - sg));
                    acc[k] += v[k];
                }
            }
            vec8_store(y + r * Di + c, v);
        }
    }
#pragma unroll
    for (int k = 0; k < 8; k++) sh[threadIdx.y][threadIdx.x * 8 + k] = acc[k];
    __syncthreads();
    if (threadIdx.y == 0 && c < Di) {
#pragma unroll
        for (int k = 0; k < 8; k++) {
            float s = 0.f;
            for (int j = 0; j < 8; j++) s += sh[j][threadIdx.x * 8 + k];
            part[(size_t)blockIdx.y * Di + c + k] = s;
        }
    }
}

/* the fastest deterministic algorithm that cuDNN's Find actually ran (Find sorts by time); -1 if none */
template <typename Perf>
static inline int cudnn_pick_algo_(const Perf* r, int n, const char* call) {
    for (int i = 0; i < n; i++)
        if (r[i].status == CUDNN_STATUS_SUCCESS && r[i].determinism == CUDNN_DETERMINISTIC) return i;
    snprintf(cudnn_refusal, sizeof cudnn_refusal, "%s: none of the %d algorithms ran deterministically (first: %s)",
             call, n, n > 0 ? cudnnGetErrorString(r[0].status) : "none returned");
    return -1;
}

/* Find runs every algorithm of the three calls on buffers it allocates itself, so a config cuDNN cannot do
 * fails here rather than in the middle of a timing loop. */
static inline int cudnn_conv1d_find_algos_(CudnnConv1d* p) {
    cudnnHandle_t h = cudnn_handle();
    cudnnConvolutionFwdAlgoPerf_t f[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnConvolutionBwdDataAlgoPerf_t d[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnConvolutionBwdFilterAlgoPerf_t g[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int nf = 0, nd = 0, ng = 0;
    if (!CUDNN_TRY(cudnnFindConvolutionForwardAlgorithm(h, p->xd, p->wd, p->cd, p->yd, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &nf, f)) ||
        !CUDNN_TRY(cudnnFindConvolutionBackwardDataAlgorithm(h, p->wd, p->yd, p->cd, p->dxd, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                             &nd, d)) ||
        !CUDNN_TRY(cudnnFindConvolutionBackwardFilterAlgorithm(h, p->xd, p->yd, p->cd, p->wd,
                                                               CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &ng, g)))
        return 0;
    const int i = cudnn_pick_algo_(f, nf, "cudnnConvolutionForward"), j = cudnn_pick_algo_(d, nd, "cudnnConvolutionBackwardData"),
              k = cudnn_pick_algo_(g, ng, "cudnnConvolutionBackwardFilter");
    if (i < 0 || j < 0 || k < 0) return 0;
    p->algo_fwd = f[i].algo;
    p->algo_data = d[j].algo;
    p->algo_filter = g[k].algo;
    p->math_fwd = f[i].mathType;
    p->math_data = d[j].mathType;
    p->math_filter = g[k].mathType;
    p->ws_bytes = f[i].memory > d[j].memory ? f[i].memory : d[j].memory;
    if (g[k].memory > p->ws_bytes) p->ws_bytes = g[k].memory;
    return 1;
}

static inline int cudnn_conv1d_try_config_(CudnnConv1d* p, CudnnConvConfig cfg) {
    p->cfg = cfg;
    p->dt = cfg == CUDNN_CONV_FP32_PACKED ? CUDNN_DATA_FLOAT : CUDNN_DATA_BFLOAT16;
    p->packed = cfg != CUDNN_CONV_BF16_STRIDED;
    const int lx = p->packed ? p->Di : p->ld_x, ldx = p->packed ? p->Di : p->ld_dx;
    /* fp32: FMA math, so no TF32 rounding; bf16: whatever cuDNN likes (accumulation is fp32 either way) */
    const cudnnMathType_t math = p->dt == CUDNN_DATA_FLOAT ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
    /* NHWC, H = 1: a token is a pixel of a 1 x T image, its channels contiguous; strides n, c, h, w */
    return CUDNN_TRY(cudnnSetTensor4dDescriptorEx(p->xd, p->dt, p->B, p->Di, 1, p->T, p->T * lx, 1, p->T * lx, lx)) &&
           CUDNN_TRY(cudnnSetTensor4dDescriptorEx(p->dxd, p->dt, p->B, p->Di, 1, p->T, p->T * ldx, 1, p->T * ldx, ldx)) &&
           CUDNN_TRY(cudnnSetTensor4dDescriptorEx(p->yd, p->dt, p->B, p->Di, 1, p->Tp, p->Tp * p->Di, 1, p->Tp * p->Di, p->Di)) &&
           CUDNN_TRY(cudnnSetFilter4dDescriptor(p->wd, p->dt, CUDNN_TENSOR_NHWC, p->Di, 1, 1, p->W)) &&
           CUDNN_TRY(cudnnSetConvolution2dDescriptor(p->cd, 0, p->W - 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT)) &&
           CUDNN_TRY(cudnnSetConvolutionGroupCount(p->cd, p->Di)) && CUDNN_TRY(cudnnSetConvolutionMathType(p->cd, math)) &&
           cudnn_conv1d_find_algos_(p);
}

static inline void cudnn_conv1d_alloc_(CudnnConv1d* p) {
    const size_t e = cudnn_dtype_bytes(p->dt), n = (size_t)p->B * p->T * p->Di;
    p->P = (int)(((size_t)p->B * p->Tp + CUDNN_DB_ROWS - 1) / CUDNN_DB_ROWS);
    if (p->P > 65535) die("cudnn_conv1d: B*(T+W-1) = %zu rows is more than the db partials' grid takes", (size_t)p->B * p->Tp);
    CUDA_CHECK(cudaMalloc(&p->y, (size_t)p->B * p->Tp * p->Di * e));
    CUDA_CHECK(cudaMalloc((void**)&p->part, (size_t)p->P * p->Di * sizeof(float)));
    if (p->ws_bytes) CUDA_CHECK(cudaMalloc(&p->ws, p->ws_bytes));
    if (p->dt == CUDNN_DATA_BFLOAT16) {
        CUDA_CHECK(cudaMalloc(&p->wq, (size_t)p->Di * p->W * e));
        CUDA_CHECK(cudaMalloc(&p->dwq, (size_t)p->Di * p->W * e));
    }
    if (p->packed) {
        CUDA_CHECK(cudaMalloc(&p->xq, n * e));
        CUDA_CHECK(cudaMalloc(&p->dxq, n * e));
    }
}

/* A plan for one shape: tries the configs in order, printing each refusal. 1 = ready, 0 = cuDNN did none. */
static inline int cudnn_conv1d_plan(CudnnConv1d* p, int B, int T, int Di, int W, int ld_x, int ld_dx) {
    conv_check_shape(B, T, Di, W);
    memset(p, 0, sizeof *p);
    p->B = B; p->T = T; p->Tp = T + W - 1; p->Di = Di; p->W = W; p->ld_x = ld_x; p->ld_dx = ld_dx;
    if (cudnn_disabled_("conv1d")) return 0;
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->xd));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->dxd));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->yd));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->wd));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->cd));
    for (int c = 0; c < CUDNN_CONV_NCONFIGS; c++) {
        if (cudnn_conv1d_try_config_(p, (CudnnConvConfig)c)) {
            cudnn_conv1d_alloc_(p);
            return 1;
        }
        printf("cuDNN conv1d B=%d T=%d Di=%d W=%d: config '%s' refused: %s\n", B, T, Di, W, cudnn_conv_config_names[c],
               cudnn_refusal);
    }
    return 0;
}

static inline void cudnn_conv1d_destroy(CudnnConv1d* p) {
    void* bufs[] = {p->ws, p->y, p->wq, p->dwq, p->xq, p->dxq, p->part};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) CUDA_CHECK(cudaFree(bufs[i]));
    CUDNN_CHECK(cudnnDestroyTensorDescriptor(p->xd));
    CUDNN_CHECK(cudnnDestroyTensorDescriptor(p->dxd));
    CUDNN_CHECK(cudnnDestroyTensorDescriptor(p->yd));
    CUDNN_CHECK(cudnnDestroyFilterDescriptor(p->wd));
    CUDNN_CHECK(cudnnDestroyConvolutionDescriptor(p->cd));
    memset(p, 0, sizeof *p);
}

/* x as cuDNN reads it: ours (strided bf16) or its packed copy in cuDNN's type, made here.
 * This copy is the whole cost of a layout cuDNN refuses. */
static inline const void* cudnn_conv1d_stage_x(CudnnConv1d* p, const bf16* x, cudaStream_t s) {
    if (!p->packed) return x;
    const size_t rows = (size_t)p->B * p->T;
    if (p->dt == CUDNN_DATA_FLOAT) cudnn_copy_rows((float*)p->xq, p->Di, x, p->ld_x, rows, p->Di, s);
    else cudnn_copy_rows((bf16*)p->xq, p->Di, x, p->ld_x, rows, p->Di, s);
    return p->xq;
}
/* w [Di,W] fp32 as cuDNN reads it: ours in fp32 configs, a bf16 copy (made here when stage) otherwise */
static inline const void* cudnn_conv1d_w(CudnnConv1d* p, const float* w, int stage, cudaStream_t s) {
    if (p->dt == CUDNN_DATA_FLOAT) return w;
    if (stage) cudnn_copy_rows((bf16*)p->wq, p->Di * p->W, w, p->Di * p->W, 1, p->Di * p->W, s);
    return p->wq;
}

/* the handle on stream s, and the conv descriptor on the math type its next call's algorithm was found with
 * (the three calls share one descriptor) */
static inline cudnnHandle_t cudnn_conv1d_prepare_(CudnnConv1d* p, cudnnMathType_t math, cudaStream_t s) {
    cudnnHandle_t h = cudnn_handle();
    CUDNN_CHECK(cudnnSetStream(h, s));
    CUDNN_CHECK(cudnnSetConvolutionMathType(p->cd, math));
    return h;
}

/* y [B,Tp,Di] = the padded grouped conv of x with w (cuDNN's part of the forward, staging included) */
static inline void cudnn_conv1d_conv_fwd(CudnnConv1d* p, const bf16* x, const float* w, cudaStream_t s) {
    cudnnHandle_t h = cudnn_conv1d_prepare_(p, p->math_fwd, s);
    const void* xin = cudnn_conv1d_stage_x(p, x, s);
    const void* win = cudnn_conv1d_w(p, w, 1, s);
    const float one = 1.f, zero = 0.f;
    CUDNN_CHECK(cudnnConvolutionForward(h, &one, p->xd, xin, p->wd, win, p->cd, p->algo_fwd, p->ws, p->ws_bytes, &zero,
                                        p->yd, p->y));
}

/* u [B,T,Di] = silu(conv(x) + b): same contract as conv1d_silu_forward */
static inline void cudnn_conv1d_forward(CudnnConv1d* p, bf16* u, const bf16* x, const float* w, const float* b,
                                        cudaStream_t s) {
    cudnn_conv1d_conv_fwd(p, x, w, s);
    const size_t rows = (size_t)p->B * p->T, n = rows * (p->Di / 8);
    const unsigned grid = (unsigned)((n + 255) / 256);
    if (p->dt == CUDNN_DATA_FLOAT)
        launch_kernel(cudnn_bias_silu_kernel<float>, grid, 256, 0, s, u, (const float*)p->y, b, p->T, p->Tp, p->Di, rows);
    else launch_kernel(cudnn_bias_silu_kernel<bf16>, grid, 256, 0, s, u, (const bf16*)p->y, b, p->T, p->Tp, p->Di, rows);
}

/* y <- dxc in place (needs y = conv output); db += its column sums, deterministically */
static inline void cudnn_conv1d_dsilu_(CudnnConv1d* p, float* db, const bf16* du, const float* b, cudaStream_t s) {
    dim3 grid((p->Di / 8 + 31) / 32, p->P), block(32, 8);
    if (p->dt == CUDNN_DATA_FLOAT)
        launch_kernel(cudnn_dsilu_kernel<float>, grid, block, 0, s, (float*)p->y, p->part, du, b, p->B, p->T, p->Tp, p->Di);
    else launch_kernel(cudnn_dsilu_kernel<bf16>, grid, block, 0, s, (bf16*)p->y, p->part, du, b, p->B, p->T, p->Tp, p->Di);
    partials_colsum_add(db, p->part, p->P, p->Di, s);
}

/* dx [B,T,Di] (row stride ld_dx) = the data gradient of dxc held in y; w must be staged (conv_fwd did it) */
static inline void cudnn_conv1d_bwd_data(CudnnConv1d* p, bf16* dx, const float* w, cudaStream_t s) {
    cudnnHandle_t h = cudnn_conv1d_prepare_(p, p->math_data, s);
    const float one = 1.f, zero = 0.f;
    void* out = p->packed ? p->dxq : (void*)dx;
    CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, p->wd, cudnn_conv1d_w(p, w, 0, s), p->yd, p->y, p->cd, p->algo_data,
                                             p->ws, p->ws_bytes, &zero, p->dxd, out));
    if (!p->packed) return;
    const size_t rows = (size_t)p->B * p->T;
    if (p->dt == CUDNN_DATA_FLOAT) cudnn_copy_rows(dx, p->ld_dx, (const float*)p->dxq, p->Di, rows, p->Di, s);
    else cudnn_copy_rows(dx, p->ld_dx, (const bf16*)p->dxq, p->Di, rows, p->Di, s);
}

/* dw [Di,W] += the filter gradient of dxc held in y; x must be staged (conv_fwd did it). fp32 configs let
 * cuDNN accumulate (beta = 1) straight into our dw; bf16 configs get dw in bf16, which we add. */
static inline void cudnn_conv1d_bwd_filter(CudnnConv1d* p, float* dw, const bf16* x, cudaStream_t s) {
    cudnnHandle_t h = cudnn_conv1d_prepare_(p, p->math_filter, s);
    const float one = 1.f, zero = 0.f;
    const void* xin = p->packed ? p->xq : (const void*)x;
    const int f32 = p->dt == CUDNN_DATA_FLOAT;
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, p->xd, xin, p->yd, p->y, p->cd, p->algo_filter, p->ws, p->ws_bytes,
                                               f32 ? &one : &zero, p->wd, f32 ? (void*)dw : p->dwq));
    if (!f32) cudnn_accumulate(dw, (const bf16*)p->dwq, (size_t)p->Di * p->W, s);
}

/* dx WRITTEN, dw and db ACCUMULATED: same contract as conv1d_silu_backward (it too recomputes the forward) */
static inline void cudnn_conv1d_backward(CudnnConv1d* p, bf16* dx, float* dw, float* db, const bf16* du, const bf16* x,
                                         const float* w, const float* b, cudaStream_t s) {
    cudnn_conv1d_conv_fwd(p, x, w, s);
    cudnn_conv1d_dsilu_(p, db, du, b, s);
    cudnn_conv1d_bwd_data(p, dx, w, s);
    cudnn_conv1d_bwd_filter(p, dw, x, s);
}

/* ---------------------------------------------------------------------------------------------
 * RMSNorm through the graph (backend) API
 * ------------------------------------------------------------------------------------------- */

/* Every backend descriptor made for a plan: an execution plan may refer to the others, so all live until
 * the plan is destroyed. */
#define CUDNN_ARENA_MAX 256
typedef struct {
    cudnnBackendDescriptor_t d[CUDNN_ARENA_MAX];
    int n;
} CudnnArena;

static inline cudnnBackendDescriptor_t cudnn_arena_new_(CudnnArena* a, cudnnBackendDescriptorType_t type) {
    if (a->n == CUDNN_ARENA_MAX) die("cudnn_ops: more than %d backend descriptors in one plan", CUDNN_ARENA_MAX);
    CUDNN_CHECK(cudnnBackendCreateDescriptor(type, &a->d[a->n]));
    return a->d[a->n++];
}
static inline void cudnn_arena_free_(CudnnArena* a) {
    while (a->n > 0) CUDNN_CHECK(cudnnBackendDestroyDescriptor(a->d[--a->n]));
}

/* A variant pack (the device pointers of one execution) kept while the pointers stay the same: a trainer's
 * activations sit at fixed addresses, so rebuilding it every call would only time host overhead. */
typedef struct {
    cudnnBackendDescriptor_t d;
    void* ptrs[8];
} CudnnVarpack;

static inline cudnnBackendDescriptor_t cudnn_varpack_(CudnnVarpack* v, const int64_t* uids, void* const* ptrs, int n,
                                                      void* ws) {
    if (v->d && !memcmp(v->ptrs, ptrs, n * sizeof(void*))) return v->d;
    if (v->d) CUDNN_CHECK(cudnnBackendDestroyDescriptor(v->d));
    CUDNN_CHECK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &v->d));
    CUDNN_CHECK(cudnnBackendSetAttribute(v->d, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids));
    CUDNN_CHECK(cudnnBackendSetAttribute(v->d, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs));
    CUDNN_CHECK(cudnnBackendSetAttribute(v->d, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws));
    CUDNN_CHECK(cudnnBackendFinalize(v->d));
    memcpy(v->ptrs, ptrs, n * sizeof(void*));
    return v->d;
}

/* a [rows, cols] row-major tensor as cuDNN's norm samples write it: dims {rows, cols, 1, 1}, 16-byte aligned.
 * by_value: a host scalar (epsilon) whose variant-pack pointer is read at execution. */
static inline int cudnn_tensor_(CudnnArena* a, cudnnBackendDescriptor_t* t, int64_t uid, cudnnDataType_t dt, int64_t rows,
                                int64_t cols, bool by_value) {
    int64_t dims[4] = {rows, cols, 1, 1}, strides[4] = {cols, 1, cols, cols}, align = 16;
    *t = cudnn_arena_new_(a, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    return CUDNN_SET(*t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt) &&
           CUDNN_SET(*t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims) &&
           CUDNN_SET(*t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides) &&
           CUDNN_SET(*t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid) &&
           CUDNN_SET(*t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align) &&
           (!by_value || CUDNN_SET(*t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value)) &&
           CUDNN_TRY(cudnnBackendFinalize(*t));
}

/* 0 if the engine of cfg says it may give different bits from run to run (training here is bitwise
 * reproducible). An engine that cannot be asked is let through: the harnesses check determinism anyway. */
static inline int cudnn_cfg_deterministic_(CudnnArena* a, cudnnBackendDescriptor_t cfg) {
    cudnnBackendDescriptor_t eng = cudnn_arena_new_(a, CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    int64_t cnt = 0, nn = 0;
    if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cnt, &eng) != CUDNN_STATUS_SUCCESS ||
        cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE, CUDNN_NUMERICAL_NOTE_TYPE_COUNT,
                                 &nn, notes) != CUDNN_STATUS_SUCCESS)
        return 1;
    for (int64_t i = 0; i < nn && i < CUDNN_NUMERICAL_NOTE_TYPE_COUNT; i++)
        if (notes[i] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) {
            snprintf(cudnn_refusal, sizeof cudnn_refusal, "every engine offered was marked NONDETERMINISTIC");
            return 0;
        }
    return 1;
}

/* one operation -> graph -> heuristics (mode A, then the fallback list) -> the first deterministic engine
 * config that finalizes as an execution plan; *ws = its workspace bytes */
static inline int cudnn_plan_for_op_(CudnnArena* a, cudnnBackendDescriptor_t op, cudnnBackendDescriptor_t* plan, int64_t* ws) {
    cudnnHandle_t h = cudnn_handle();
    cudnnBackendDescriptor_t g = cudnn_arena_new_(a, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    if (!(CUDNN_SET(g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h) &&
          CUDNN_SET(g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &op) && CUDNN_TRY(cudnnBackendFinalize(g))))
        return 0;
    const cudnnBackendHeurMode_t modes[2] = {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK};
    for (int m = 0; m < 2; m++) {
        cudnnBackendDescriptor_t heur = cudnn_arena_new_(a, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR), cfg[8];
        int64_t n = 0, got = 0, cnt = 0;
        if (!(CUDNN_SET(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g) &&
              CUDNN_SET(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &modes[m]) &&
              CUDNN_TRY(cudnnBackendFinalize(heur)) &&
              CUDNN_TRY(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n, NULL))))
            continue;
        if (n > 8) n = 8;
        for (int i = 0; i < n; i++) cfg[i] = cudnn_arena_new_(a, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
        if (n == 0 ||
            !CUDNN_TRY(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &got, cfg))) {
            if (n == 0) snprintf(cudnn_refusal, sizeof cudnn_refusal, "heuristics mode %d: no engine config", (int)modes[m]);
            continue;
        }
        for (int i = 0; i < got; i++) {
            if (!cudnn_cfg_deterministic_(a, cfg[i])) continue;
            *plan = cudnn_arena_new_(a, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
            if (CUDNN_SET(*plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h) &&
                CUDNN_SET(*plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg[i]) &&
                CUDNN_TRY(cudnnBackendFinalize(*plan)) &&
                CUDNN_TRY(cudnnBackendGetAttribute(*plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &cnt, ws)))
                return 1;
        }
    }
    return 0;
}

enum { CUDNN_UID_X = 1, CUDNN_UID_SCALE, CUDNN_UID_EPS, CUDNN_UID_Y, CUDNN_UID_RSTD, CUDNN_UID_DY, CUDNN_UID_DX, CUDNN_UID_DSCALE };

typedef struct {
    int M, C;
    alignas(16) float eps;         /* read by cuDNN from here (by-value tensor) at every execution */
    int has_fwd, has_bwd;          /* which directions cuDNN accepted */
    cudnnDataType_t yt, dyt;       /* the type cuDNN writes Y in / reads dY in: bf16, or fp32 if it refused mixed types */
    cudnnBackendDescriptor_t fwd, bwd;  /* execution plans */
    CudnnArena arena;
    CudnnVarpack vfwd, vbwd;
    void* ws;                      /* ws_bytes: the larger of the two plans' workspaces */
    size_t ws_bytes;
    float* y32;                    /* [M,C] fp32 Y when yt is fp32 (cast to bf16 by us) */
    float* dy32;                   /* [M,C] fp32 dY when dyt is fp32 (cast from bf16 by us) */
    float* dx;                     /* [M,C] cuDNN's dX, added into dresid by us */
    float* dscale;                 /* [C] cuDNN's dscale, added into dw by us */
    float* rstd;                   /* [M] the inverse RMS when the caller passes rstd = NULL */
} CudnnRmsnorm;

/* one tensor of a norm operation and the operation attribute that names it */
typedef struct {
    cudnnBackendAttributeName_t attr;
    int64_t uid;
    cudnnDataType_t dt;
    int64_t rows, cols;
    bool by_value;
} CudnnNormTensor;

/* a NORM_FORWARD / NORM_BACKWARD operation in RMS mode with its n tensors set (not finalized: the forward
 * still needs its phase) */
static inline int cudnn_norm_op_(CudnnArena* a, cudnnBackendDescriptorType_t type, cudnnBackendAttributeName_t mode_attr,
                                 const CudnnNormTensor* ts, int n, cudnnBackendDescriptor_t* op) {
    const cudnnBackendNormMode_t mode = CUDNN_RMS_NORM;
    *op = cudnn_arena_new_(a, type);
    if (!CUDNN_SET(*op, mode_attr, CUDNN_TYPE_NORM_MODE, 1, &mode)) return 0;
    for (int i = 0; i < n; i++) {
        cudnnBackendDescriptor_t t;
        if (!(cudnn_tensor_(a, &t, ts[i].uid, ts[i].dt, ts[i].rows, ts[i].cols, ts[i].by_value) &&
              CUDNN_SET(*op, ts[i].attr, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t))) {
            const size_t len = strlen(cudnn_refusal);
            snprintf(cudnn_refusal + len, sizeof cudnn_refusal - len, " [operation attribute %d, tensor uid %lld]",
                     (int)ts[i].attr, (long long)ts[i].uid);
            return 0;
        }
    }
    return 1;
}

/* NORM_FORWARD, training phase (so it writes the inverse RMS), Y in yt */
static inline int cudnn_rmsnorm_fwd_plan_(CudnnRmsnorm* p, cudnnDataType_t yt, int64_t* ws) {
    const int64_t M = p->M, C = p->C;
    const CudnnNormTensor ts[5] = {
        {CUDNN_ATTR_OPERATION_NORM_FWD_XDESC, CUDNN_UID_X, CUDNN_DATA_FLOAT, M, C, false},          /* X [M,C] */
        {CUDNN_ATTR_OPERATION_NORM_FWD_SCALE_DESC, CUDNN_UID_SCALE, CUDNN_DATA_FLOAT, 1, C, false}, /* w [1,C] */
        {CUDNN_ATTR_OPERATION_NORM_FWD_EPSILON_DESC, CUDNN_UID_EPS, CUDNN_DATA_FLOAT, 1, 1, true},  /* eps, host */
        {CUDNN_ATTR_OPERATION_NORM_FWD_YDESC, CUDNN_UID_Y, yt, M, C, false},                        /* Y [M,C] */
        {CUDNN_ATTR_OPERATION_NORM_FWD_INV_VARIANCE_DESC, CUDNN_UID_RSTD, CUDNN_DATA_FLOAT, M, 1, false}}; /* rstd [M,1] */
    const cudnnBackendNormFwdPhase_t phase = CUDNN_NORM_FWD_TRAINING;
    cudnnBackendDescriptor_t op;
    return cudnn_norm_op_(&p->arena, CUDNN_BACKEND_OPERATION_NORM_FORWARD_DESCRIPTOR, CUDNN_ATTR_OPERATION_NORM_FWD_MODE, ts, 5,
                          &op) &&
           CUDNN_SET(op, CUDNN_ATTR_OPERATION_NORM_FWD_PHASE, CUDNN_TYPE_NORM_FWD_PHASE, 1, &phase) &&
           CUDNN_TRY(cudnnBackendFinalize(op)) && cudnn_plan_for_op_(&p->arena, op, &p->fwd, ws);
}

/* NORM_BACKWARD from the saved inverse RMS (no epsilon needed then), dY in dyt */
static inline int cudnn_rmsnorm_bwd_plan_(CudnnRmsnorm* p, cudnnDataType_t dyt, int64_t* ws) {
    const int64_t M = p->M, C = p->C;
    const CudnnNormTensor ts[6] = {
        {CUDNN_ATTR_OPERATION_NORM_BWD_XDESC, CUDNN_UID_X, CUDNN_DATA_FLOAT, M, C, false},            /* X [M,C] */
        {CUDNN_ATTR_OPERATION_NORM_BWD_DYDESC, CUDNN_UID_DY, dyt, M, C, false},                        /* dY [M,C] */
        {CUDNN_ATTR_OPERATION_NORM_BWD_SCALE_DESC, CUDNN_UID_SCALE, CUDNN_DATA_FLOAT, 1, C, false},   /* w [1,C] */
        {CUDNN_ATTR_OPERATION_NORM_BWD_INV_VARIANCE_DESC, CUDNN_UID_RSTD, CUDNN_DATA_FLOAT, M, 1, false}, /* rstd [M,1] */
        {CUDNN_ATTR_OPERATION_NORM_BWD_DSCALE_DESC, CUDNN_UID_DSCALE, CUDNN_DATA_FLOAT, 1, C, false}, /* dw [1,C] */
        {CUDNN_ATTR_OPERATION_NORM_BWD_DXDESC, CUDNN_UID_DX, CUDNN_DATA_FLOAT, M, C, false}};         /* dX [M,C] */
    cudnnBackendDescriptor_t op;
    return cudnn_norm_op_(&p->arena, CUDNN_BACKEND_OPERATION_NORM_BACKWARD_DESCRIPTOR, CUDNN_ATTR_OPERATION_NORM_BWD_MODE, ts, 6,
                          &op) &&
           CUDNN_TRY(cudnnBackendFinalize(op)) && cudnn_plan_for_op_(&p->arena, op, &p->bwd, ws);
}

/* Plans for one shape, Y / dY in bf16 first, fp32 if refused; prints each refusal.
 * Returns has_fwd (the backward may still be missing: check p->has_bwd). */
static inline int cudnn_rmsnorm_plan(CudnnRmsnorm* p, int M, int C, float eps) {
    rmsnorm_check_args("cudnn_rmsnorm_plan", M, C);
    memset(p, 0, sizeof *p);
    p->M = M; p->C = C; p->eps = eps;
    if (cudnn_disabled_("rmsnorm")) return 0;
    const cudnnDataType_t types[2] = {CUDNN_DATA_BFLOAT16, CUDNN_DATA_FLOAT};
    int64_t wf = 0, wb = 0;
    for (int i = 0; i < 2 && !p->has_fwd; i++) {
        p->yt = types[i];
        p->has_fwd = cudnn_rmsnorm_fwd_plan_(p, types[i], &wf);
        if (!p->has_fwd) printf("cuDNN rmsnorm M=%d C=%d: forward with Y %s refused: %s\n", M, C, i ? "fp32" : "bf16", cudnn_refusal);
    }
    for (int i = 0; i < 2 && !p->has_bwd; i++) {
        p->dyt = types[i];
        p->has_bwd = cudnn_rmsnorm_bwd_plan_(p, types[i], &wb);
        if (!p->has_bwd) printf("cuDNN rmsnorm M=%d C=%d: backward with dY %s refused: %s\n", M, C, i ? "fp32" : "bf16", cudnn_refusal);
    }
    const size_t n = (size_t)M * C;
    p->ws_bytes = (size_t)(wf > wb ? wf : wb);
    if (p->ws_bytes) CUDA_CHECK(cudaMalloc(&p->ws, p->ws_bytes));
    if (p->has_fwd && p->yt == CUDNN_DATA_FLOAT) CUDA_CHECK(cudaMalloc((void**)&p->y32, n * 4));
    if (p->has_bwd && p->dyt == CUDNN_DATA_FLOAT) CUDA_CHECK(cudaMalloc((void**)&p->dy32, n * 4));
    CUDA_CHECK(cudaMalloc((void**)&p->dx, n * 4));
    CUDA_CHECK(cudaMalloc((void**)&p->dscale, (size_t)C * 4));
    CUDA_CHECK(cudaMalloc((void**)&p->rstd, (size_t)(M > 0 ? M : 1) * 4));
    return p->has_fwd;
}

static inline void cudnn_rmsnorm_destroy(CudnnRmsnorm* p) {
    if (p->vfwd.d) CUDNN_CHECK(cudnnBackendDestroyDescriptor(p->vfwd.d));
    if (p->vbwd.d) CUDNN_CHECK(cudnnBackendDestroyDescriptor(p->vbwd.d));
    cudnn_arena_free_(&p->arena);
    void* bufs[] = {p->ws, p->y32, p->dy32, p->dx, p->dscale, p->rstd};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) CUDA_CHECK(cudaFree(bufs[i]));
    memset(p, 0, sizeof *p);
}

/* resid_out = resid_in (NULL => 0) + delta (NULL => 0), [n] fp32 (n % 8 == 0); may be in place */
__global__ void cudnn_residual_add_kernel(float* resid_out, const float* resid_in, const bf16* delta, size_t n) {
    pdl_wait_prior();
    const size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * 8;
    if (i >= n) return;
    float v[8];
    rmsnorm_load_residual(v, resid_in, delta, NULL, i);
    vec8_store(resid_out + i, v);
}

/* out [M,C] bf16 = x * rstd * w, rstd [M] (cuDNN's part of the forward) */
static inline void cudnn_rmsnorm_norm_fwd(CudnnRmsnorm* p, bf16* out, float* rstd, const float* x, const float* w,
                                          cudaStream_t s) {
    cudnnHandle_t h = cudnn_handle();
    CUDNN_CHECK(cudnnSetStream(h, s));
    const int64_t uids[5] = {CUDNN_UID_X, CUDNN_UID_SCALE, CUDNN_UID_EPS, CUDNN_UID_Y, CUDNN_UID_RSTD};
    void* y = p->yt == CUDNN_DATA_FLOAT ? (void*)p->y32 : (void*)out;
    void* ptrs[5] = {(void*)x, (void*)w, &p->eps, y, rstd ? rstd : p->rstd};
    CUDNN_CHECK(cudnnBackendExecute(h, p->fwd, cudnn_varpack_(&p->vfwd, uids, ptrs, 5, p->ws)));
    if (p->yt == CUDNN_DATA_FLOAT) cudnn_copy_rows(out, p->C, (const float*)p->y32, p->C, (size_t)p->M, p->C, s);
}

/* same contract as rmsnorm_forward */
static inline void cudnn_rmsnorm_forward(CudnnRmsnorm* p, bf16* out, float* rstd, float* resid_out, const float* resid_in,
                                         const bf16* delta, const float* w, cudaStream_t s) {
    const size_t n = (size_t)p->M * p->C;
    if (n == 0) return;
    if (delta || resid_out != resid_in) {  /* cuDNN's norm has no residual input: the add is ours */
        launch_kernel(cudnn_residual_add_kernel, (unsigned)((n / 8 + 255) / 256), 256, 0, s, resid_out, resid_in, delta,
                      n);
    }
    cudnn_rmsnorm_norm_fwd(p, out, rstd, resid_out, w, s);
}

/* p->dx [M,C], p->dscale [C] from dout [M,C] bf16 (cuDNN's part of the backward) */
static inline void cudnn_rmsnorm_norm_bwd(CudnnRmsnorm* p, const bf16* dout, const float* x, const float* rstd,
                                          const float* w, cudaStream_t s) {
    cudnnHandle_t h = cudnn_handle();
    CUDNN_CHECK(cudnnSetStream(h, s));
    const void* dy = dout;
    if (p->dyt == CUDNN_DATA_FLOAT) {
        cudnn_copy_rows(p->dy32, p->C, dout, p->C, (size_t)p->M, p->C, s);
        dy = p->dy32;
    }
    const int64_t uids[6] = {CUDNN_UID_X, CUDNN_UID_DY, CUDNN_UID_SCALE, CUDNN_UID_RSTD, CUDNN_UID_DSCALE, CUDNN_UID_DX};
    void* ptrs[6] = {(void*)x, (void*)dy, (void*)w, (void*)rstd, p->dscale, p->dx};
    CUDNN_CHECK(cudnnBackendExecute(h, p->bwd, cudnn_varpack_(&p->vbwd, uids, ptrs, 6, p->ws)));
}

/* dresid += dX, dw += dscale: same contract as rmsnorm_backward (x = the forward's resid_out) */
static inline void cudnn_rmsnorm_backward(CudnnRmsnorm* p, float* dresid, float* dw, const bf16* dout, const float* x,
                                          const float* rstd, const float* w, cudaStream_t s) {
    if (p->M == 0) return;
    cudnn_rmsnorm_norm_bwd(p, dout, x, rstd, w, s);
    cudnn_accumulate(dresid, (const float*)p->dx, (size_t)p->M * p->C, s);
    cudnn_accumulate(dw, (const float*)p->dscale, (size_t)p->C, s);
}

#endif /* COMMON_CUDNN_OPS_CUH */
