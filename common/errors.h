/*
 * errors.h — the one place that turns a failed call into a clear message and a non-zero exit.
 * Every message names file:line, the call that failed, and a hint on what to do about it.
 * Plain C (usable from gcc tests and nvcc trainers); the CUDA/cuBLAS/cuDNN/NCCL macros appear only
 * when the matching header was included before this one.
 */
#ifndef COMMON_ERRORS_H
#define COMMON_ERRORS_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* die: one "error: ..." line on stderr, exit 1. Used for user-facing errors (bad flags, bad files). */
static inline void die(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stdout);
    exit(1);
}

static inline void fail_at(const char* file, int line, const char* call, const char* what, const char* hint) {
    fprintf(stderr, "error: %s:%d: %s failed: %s\n  hint: %s\n", file, line, call, what, hint);
    fflush(stdout);
    exit(1);
}

/* ---- C I/O ---- */
static inline FILE* fopen_check_(const char* path, const char* mode, const char* file, int line) {
    FILE* f = fopen(path, mode);
    if (!f) {
        char what[512];
        snprintf(what, sizeof what, "cannot open '%s' (mode %s): %s", path, mode, strerror(errno));
        fail_at(file, line, "fopen", what, "check the path exists and is readable/writable");
    }
    return f;
}
static inline void fread_check_(void* p, size_t size, size_t n, FILE* f, const char* file, int line) {
    size_t got = fread(p, size, n, f);
    if (got != n) {
        char what[256];
        snprintf(what, sizeof what, "read %zu of %zu items (%s)", got, n, feof(f) ? "end of file" : "I/O error");
        fail_at(file, line, "fread", what, "the file is truncated or not of the expected format");
    }
}
static inline void fwrite_check_(const void* p, size_t size, size_t n, FILE* f, const char* file, int line) {
    size_t put = fwrite(p, size, n, f);
    if (put != n) {
        char what[256];
        snprintf(what, sizeof what, "wrote %zu of %zu items: %s", put, n, strerror(errno));
        fail_at(file, line, "fwrite", what, "check free disk space and permissions");
    }
}
static inline void fclose_check_(FILE* f, const char* file, int line) {
    if (fclose(f) != 0) fail_at(file, line, "fclose", strerror(errno), "check free disk space");
}
static inline void* malloc_check_(size_t n, const char* file, int line) {
    void* p = malloc(n ? n : 1);
    if (!p) {
        char what[128];
        snprintf(what, sizeof what, "out of host memory allocating %zu bytes", n);
        fail_at(file, line, "malloc", what, "lower the batch size or sequence length");
    }
    return p;
}
#define fopen_check(path, mode) fopen_check_(path, mode, __FILE__, __LINE__)
#define fread_check(p, size, n, f) fread_check_(p, size, n, f, __FILE__, __LINE__)
#define fwrite_check(p, size, n, f) fwrite_check_(p, size, n, f, __FILE__, __LINE__)
#define fclose_check(f) fclose_check_(f, __FILE__, __LINE__)
#define malloc_check(n) malloc_check_(n, __FILE__, __LINE__)

/* ---- CUDA ---- */
#ifdef __CUDACC__
#include <cuda_runtime.h>
static inline const char* cuda_hint(cudaError_t e) {
    switch (e) {
    case cudaErrorMemoryAllocation: return "out of device memory: lower --batch or --seq, or use --recompute 1";
    case cudaErrorNoDevice: return "no CUDA device visible: check nvidia-smi and CUDA_VISIBLE_DEVICES";
    case cudaErrorInsufficientDriver: return "the driver is older than this CUDA toolkit";
    case cudaErrorNoKernelImageForDevice: return "rebuild for this GPU: make clean && make GPU_ARCH=<cc, e.g. 90>";
    case cudaErrorIllegalAddress: return "a kernel read or wrote out of bounds: rerun under compute-sanitizer (make DEBUG=1)";
    default: return "rerun with CUDA_LAUNCH_BLOCKING=1 to locate the failing kernel";
    }
}
#define CUDA_CHECK(call) do { cudaError_t e_ = (call); \
    if (e_ != cudaSuccess) fail_at(__FILE__, __LINE__, #call, cudaGetErrorString(e_), cuda_hint(e_)); } while (0)
#define CUDA_KERNEL_CHECK() do { cudaError_t e_ = cudaGetLastError(); \
    if (e_ != cudaSuccess) fail_at(__FILE__, __LINE__, "kernel launch", cudaGetErrorString(e_), cuda_hint(e_)); } while (0)
#endif

#if defined(CUBLAS_VER_MAJOR) || defined(CUBLAS_V2_H_) || defined(CUBLAS_API_H_)
#define CUBLAS_CHECK(call) do { cublasStatus_t s_ = (call); if (s_ != CUBLAS_STATUS_SUCCESS) { \
    char w_[64]; snprintf(w_, sizeof w_, "cuBLAS status %d", (int)s_); \
    fail_at(__FILE__, __LINE__, #call, w_, "check matrix shapes/alignment (16-byte) and that the GPU is supported"); } } while (0)
#endif

#endif /* COMMON_ERRORS_H */

/* Outside the include guard for the same reason as CUDNN_CHECK below: nccl.h may come after errors.h. */
#if defined(NCCL_MAJOR) && !defined(NCCL_CHECK)
#define NCCL_CHECK(call) do { ncclResult_t r_ = (call); if (r_ != ncclSuccess) \
    fail_at(__FILE__, __LINE__, #call, ncclGetErrorString(r_), "check that every rank started and NCCL_DEBUG=INFO for details"); } while (0)
#endif

/* Outside the include guard: cudnn.h may be included after this file was first seen (a harness includes
 * errors.h through harness.h long before common/cudnn_ops.cuh brings cudnn.h in). */
#if defined(CUDNN_MAJOR) && !defined(CUDNN_CHECK)
#define CUDNN_CHECK(call) do { cudnnStatus_t s_ = (call); if (s_ != CUDNN_STATUS_SUCCESS) \
    fail_at(__FILE__, __LINE__, #call, cudnnGetErrorString(s_), "build with USE_CUDNN=0 to use our own kernels instead"); } while (0)
#endif
