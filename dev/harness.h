/*
 * harness.h — what every dev/<kernel>.cu harness shares: seeded random inputs, poisoned outputs,
 * relative-error checks against a double CPU reference, and timing (L2 flushed between runs, CUDA
 * events, median of many runs) reported against the H200's measured ceilings.
 *
 * Convention (see dev/README.md): `./dev/<kernel> [version] [--check] [-B 16 -T 2048 ...]`.
 * --check: correctness only at several shapes, one PASS/FAIL line each, exit 1 on any failure;
 * make test runs every harness this way on a GPU machine.
 */
#ifndef DEV_HARNESS_H
#define DEV_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime.h>
#include "../common/errors.h"
#include "../common/bf16.cuh"
#include "../common/rng.h"

#define H200_COPY_GBS 4300.0     /* measured device copy, bytes read + written, GB/s */
#define H200_BF16_TFLOPS 790.0   /* measured cuBLAS bf16 dense, TFLOP/s */

/* ---------------- command line: version number, --check, and -X value shape flags ---------------- */
typedef struct {
    int version;      /* 0 = all versions */
    int check;        /* --check */
    int reps;         /* timing repetitions */
    long val[26];     /* -A .. -Z integer shape flags; -1 = not given */
} HarnessArgs;

/* --versions: print how many versions the harness has and exit, before any GPU work (test/sanitize.sh runs
 * `--check` of each version as its own job). Called first by the harnesses whose --check honours a version. */
static inline void harness_versions(int argc, char** argv, int n) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--versions")) {
            printf("%d\n", n);
            exit(0);
        }
}

static inline HarnessArgs harness_args(int argc, char** argv) {
    HarnessArgs a;
    a.version = 0; a.check = 0; a.reps = 50;
    for (int i = 0; i < 26; i++) a.val[i] = -1;
    for (int i = 1; i < argc; i++) {
        const char* s = argv[i];
        if (!strcmp(s, "--check")) a.check = 1;
        else if (!strcmp(s, "--reps") && i + 1 < argc) a.reps = atoi(argv[++i]);
        else if (s[0] == '-' && s[1] >= 'A' && s[1] <= 'Z' && s[2] == 0 && i + 1 < argc) {
            char* end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v <= 0) die("flag %s wants a positive integer, got '%s'", s, argv[i]);
            a.val[s[1] - 'A'] = v;
        } else if (s[0] >= '0' && s[0] <= '9') a.version = atoi(s);
        else die("unknown argument '%s' (usage: [version] [--check] [--reps N] [-B n -T n ...])", s);
    }
    return a;
}
/* shape flag with default: harness_get(&a, 'T', 2048) */
static inline long harness_get(const HarnessArgs* a, char flag, long dflt) {
    long v = a->val[flag - 'A'];
    return v > 0 ? v : dflt;
}

/* ---------------- inputs and outputs ---------------- */
static inline void fill_uniform(float* x, size_t n, float lo, float hi, uint64_t seed) {
    Rng r = rng_seed(seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_uniform_in(&r, lo, hi);
}
static inline void fill_normal(float* x, size_t n, float std, uint64_t seed) {
    Rng r = rng_seed(seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)(std * rng_normal(&r));
}
/* round a host float array through bf16 in place, so the CPU reference sees exactly the GPU inputs */
static inline void round_to_bf16(float* x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = host_bf_bits2f(host_f2bf_bits(x[i]));
}
static inline void* dmalloc(size_t bytes) {
    void* p = NULL;
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 16));
    return p;
}
/* 0xFF bytes are NaN in fp32 and bf16: anything the kernel fails to write shows up as NaN */
static inline void poison(void* d, size_t bytes) { CUDA_CHECK(cudaMemset(d, 0xFF, bytes)); }

static inline bf16* upload_bf16(const float* h, size_t n) {
    uint16_t* tmp = (uint16_t*)malloc_check(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) tmp[i] = host_f2bf_bits(h[i]);
    bf16* d = (bf16*)dmalloc(n * sizeof(bf16));
    CUDA_CHECK(cudaMemcpy(d, tmp, n * sizeof(uint16_t), cudaMemcpyHostToDevice));
    free(tmp);
    return d;
}
static inline float* upload_f32(const float* h, size_t n) {
    float* d = (float*)dmalloc(n * sizeof(float));
    CUDA_CHECK(cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice));
    return d;
}
static inline void download_bf16(float* h, const bf16* d, size_t n) {
    uint16_t* tmp = (uint16_t*)malloc_check(n * sizeof(uint16_t));
    CUDA_CHECK(cudaMemcpy(tmp, d, n * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) h[i] = host_bf_bits2f(tmp[i]);
    free(tmp);
}
static inline void download_f32(float* h, const float* d, size_t n) {
    CUDA_CHECK(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost));
}
static inline double* to_double(const float* x, size_t n) {
    double* d = (double*)malloc_check(n * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* ||got - ref|| / ||ref||; a NaN/Inf anywhere (e.g. an unwritten poisoned element) gives INFINITY */
static inline double rel_err_norm(const double* ref, const float* got, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) return INFINITY;
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
/* prints one PASS/FAIL line; returns 1 on failure so callers can sum failures */
static inline int check_report(const char* what, const double* ref, const float* got, size_t n, double tol) {
    double e = rel_err_norm(ref, got, n);
    int ok = e <= tol;
    printf("%s %s rel_err=%.3e tol=%.1e\n", ok ? "PASS" : "FAIL", what, e, tol);
    return !ok;
}

/* ---------------- timing ---------------- */
static int cmp_float_(const void* a, const void* b) {
    float x = *(const float*)a, y = *(const float*)b;
    return (x > y) - (x < y);
}
/* Median time in ms of fn(ctx) over reps runs, after warm-up, flushing L2 (a write over 256 MiB)
 * before every run so inputs come from HBM as they would inside a training step. */
static inline float time_kernel(void (*fn)(void*), void* ctx, int reps) {
    static void* flush = NULL;
    const size_t flush_bytes = (size_t)256 << 20;
    if (!flush) flush = dmalloc(flush_bytes);
    for (int i = 0; i < 3; i++) fn(ctx);
    CUDA_CHECK(cudaDeviceSynchronize());
    cudaEvent_t t0, t1;
    CUDA_CHECK(cudaEventCreate(&t0));
    CUDA_CHECK(cudaEventCreate(&t1));
    float* ms = (float*)malloc_check(sizeof(float) * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        CUDA_CHECK(cudaMemsetAsync(flush, r & 0xff, flush_bytes));
        CUDA_CHECK(cudaEventRecord(t0));
        fn(ctx);
        CUDA_CHECK(cudaEventRecord(t1));
        CUDA_CHECK(cudaEventSynchronize(t1));
        CUDA_CHECK(cudaEventElapsedTime(&ms[r], t0, t1));
    }
    qsort(ms, (size_t)reps, sizeof(float), cmp_float_);
    float med = ms[reps / 2];
    free(ms);
    CUDA_CHECK(cudaEventDestroy(t0));
    CUDA_CHECK(cudaEventDestroy(t1));
    return med;
}
/* one timing line: time, achieved bandwidth and FLOP rate, and their fraction of the card's ceilings */
static inline void time_report(const char* what, float ms, double bytes, double flops) {
    double gbs = bytes / (ms * 1e-3) / 1e9, tfs = flops / (ms * 1e-3) / 1e12;
    printf("%-40s %9.4f ms  %8.1f GB/s (%5.1f%% of %.0f)  %7.2f TFLOP/s (%5.1f%% of %.0f)\n", what, ms, gbs,
           100.0 * gbs / H200_COPY_GBS, H200_COPY_GBS, tfs, 100.0 * tfs / H200_BF16_TFLOPS, H200_BF16_TFLOPS);
}
/* floor = max(bytes / copy bandwidth, flops / matrix rate), in ms */
static inline double floor_ms(double bytes, double flops) {
    double a = bytes / (H200_COPY_GBS * 1e9) * 1e3, b = flops / (H200_BF16_TFLOPS * 1e12) * 1e3;
    return a > b ? a : b;
}
/* A harness's cuDNN version (v_cudnn) exists only in USE_CUDNN builds: 1 when version v is built in;
 * otherwise says so (once per loop over versions) and 0. */
static inline int harness_version_built(const char* name, int v, int v_cudnn) {
#ifndef USE_CUDNN
    if (v == v_cudnn) {
        printf("%s v%d (cuDNN): not built in (built without USE_CUDNN; make turns it on when it finds cudnn.h and "
               "libcudnn.so)\n", name, v);
        return 0;
    }
#endif
    (void)name; (void)v; (void)v_cudnn;
    return 1;
}

/* exits 0 with a SKIP line when no GPU is present, so --check is harmless on CPU-only machines */
static inline void require_gpu_or_skip(const char* name) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("SKIP %s: no CUDA device\n", name);
        exit(0);
    }
}

#endif /* DEV_HARNESS_H */
