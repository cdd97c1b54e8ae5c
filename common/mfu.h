/*
 * mfu.h — model FLOPs utilisation: the peak dense bf16 tensor-core rate of the GPU (TFLOP/s) and
 * mfu = achieved / peak. Peaks are the vendors' dense (no sparsity) bf16 numbers with fp32
 * accumulation. Unknown GPUs fall back to SMs x clock x dense bf16 FLOP per SM per clock for their
 * compute capability (a rough estimate, flagged as such). MFU_PEAK_TFLOPS=<x> in the environment
 * overrides both. The table lookup is plain C; peak_bf16_tflops_device() needs CUDA and only exists
 * under nvcc.
 */
#ifndef COMMON_MFU_H
#define COMMON_MFU_H

#include <stdlib.h>
#include <string.h>

/* dense bf16 TFLOP/s by marketing name, 0 when unknown. Order matters: more specific names first. */
static inline double peak_bf16_tflops_by_name(const char* name) {
    static const struct { const char* key; double tflops; } table[] = {
        {"GH200", 989.0}, {"H200", 989.0}, {"H100 PCIe", 756.0}, {"H100 NVL", 835.0}, {"H100", 989.0},
        {"H800", 989.0},  {"H20", 148.0},  {"GB200", 2500.0},    {"B200", 2250.0},    {"B100", 1750.0},
        {"A100", 312.0},  {"A800", 312.0}, {"A10G", 70.0},       {"A10", 125.0},      {"A30", 165.0},
        {"L40S", 362.0},  {"L40", 181.0},  {"L4", 121.0},        {"RTX 4090", 165.0}, {"RTX 3090", 71.0},
    };
    if (!name) return 0.0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strstr(name, table[i].key)) return table[i].tflops;
    return 0.0;
}

/* estimate from the device: dense bf16 FLOP per SM per clock by compute capability */
static inline double peak_bf16_tflops_from_props(int major, int minor, int sm_count, double clock_ghz) {
    double per_sm;
    if (major >= 10) per_sm = major == 10 ? 8192.0 : 1024.0;   /* B200-class vs consumer Blackwell */
    else if (major == 9) per_sm = 4096.0;                         /* H100/H200: 989 TF / (132 SM x 1.83 GHz) */
    else if (major == 8) per_sm = minor == 0 ? 2048.0 : 512.0;    /* A100 vs GA10x/AD10x (fp32 accumulate) */
    else per_sm = 0.0;                                            /* no bf16 tensor cores before Ampere */
    return per_sm * sm_count * clock_ghz * 1e9 / 1e12;
}

/* the override from MFU_PEAK_TFLOPS, or 0 */
static inline double peak_bf16_tflops_env(void) {
    const char* s = getenv("MFU_PEAK_TFLOPS");
    return s ? atof(s) : 0.0;
}

/* fraction of peak (0..1) achieved at tokens_per_s; -1 when the peak is unknown */
static inline double mfu(double flops_per_token, double tokens_per_s, double peak_tflops) {
    if (peak_tflops <= 0.0) return -1.0;
    return flops_per_token * tokens_per_s / (peak_tflops * 1e12);
}

#ifdef __CUDACC__
#include <cuda_runtime.h>
#include <stdio.h>
/* Peak for `device`: env override, then the name table, then the estimate (with a note on stderr). */
static inline double peak_bf16_tflops_device(int device) {
    double env = peak_bf16_tflops_env();
    if (env > 0.0) return env;
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, device) != cudaSuccess) return 0.0;
    double named = peak_bf16_tflops_by_name(p.name);
    if (named > 0.0) return named;
    int khz = 0;
    cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, device);
    double est = peak_bf16_tflops_from_props(p.major, p.minor, p.multiProcessorCount, khz * 1e-6);
    fprintf(stderr, "note: %s is not in the MFU table; estimated peak %.0f bf16 TFLOP/s "
                    "(set MFU_PEAK_TFLOPS to override)\n", p.name, est);
    return est;
}
#endif

#endif /* COMMON_MFU_H */
