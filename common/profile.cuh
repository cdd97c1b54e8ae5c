/*
 * profile.cuh — per-kernel time shares of one training step, for `--profile`: CUPTI's activity API
 * records every kernel's start and end on the device; kernels are grouped by name and printed sorted by
 * total time. libcupti is opened with dlopen only when profiling is asked for, so the trainers do not
 * depend on it otherwise (and say so when it is missing).
 */
#ifndef COMMON_PROFILE_CUH
#define COMMON_PROFILE_CUH

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__has_include)
#if __has_include(<cupti.h>)
#include <cupti.h>
#define HAVE_CUPTI_HEADER 1
#endif
#endif

#ifdef HAVE_CUPTI_HEADER
#define PROF_MAX_KERNELS 256
typedef struct { char name[96]; int count; double ms; } ProfEntry;
static ProfEntry g_prof[PROF_MAX_KERNELS];
static int g_nprof = 0;

typedef CUptiResult (*cupti_enable_t)(CUpti_ActivityKind);
typedef CUptiResult (*cupti_register_t)(CUpti_BuffersCallbackRequestFunc, CUpti_BuffersCallbackCompleteFunc);
typedef CUptiResult (*cupti_next_t)(uint8_t*, size_t, CUpti_Activity**);
typedef CUptiResult (*cupti_flush_t)(uint32_t);
static cupti_next_t g_cupti_next = NULL;

/* kernel names are mangled C++ ("_Z21rmsnorm_forward_kernelILi4ELi64EEv..."): keep the identifier */
static void prof_short_name(const char* mangled, char* out, size_t cap) {
    const char* p = mangled;
    if (!strncmp(p, "_Z", 2)) {
        p += 2;
        if (*p == 'N') p++;
        int len = atoi(p);
        while (*p >= '0' && *p <= '9') p++;
        if (len > 0 && (size_t)len < cap && (int)strlen(p) >= len) { memcpy(out, p, (size_t)len); out[len] = 0; return; }
    }
    snprintf(out, cap, "%s", mangled);
}
static void prof_add(const char* mangled, double ms) {
    char nm[96];
    prof_short_name(mangled ? mangled : "?", nm, sizeof nm);
    for (int i = 0; i < g_nprof; i++)
        if (!strcmp(g_prof[i].name, nm)) { g_prof[i].count++; g_prof[i].ms += ms; return; }
    if (g_nprof == PROF_MAX_KERNELS) return;
    snprintf(g_prof[g_nprof].name, sizeof g_prof[g_nprof].name, "%s", nm);
    g_prof[g_nprof].count = 1;
    g_prof[g_nprof].ms = ms;
    g_nprof++;
}
static void CUPTIAPI prof_buffer_requested(uint8_t** buf, size_t* size, size_t* max_records) {
    *size = 8 << 20;
    *buf = (uint8_t*)aligned_alloc(8, *size);
    *max_records = 0;
}
static void CUPTIAPI prof_buffer_completed(CUcontext ctx, uint32_t stream, uint8_t* buf, size_t size, size_t valid) {
    (void)ctx; (void)stream; (void)size;
    CUpti_Activity* rec = NULL;
    while (g_cupti_next(buf, valid, &rec) == CUPTI_SUCCESS) {
        if (rec->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || rec->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
            const CUpti_ActivityKernel10* k = (const CUpti_ActivityKernel10*)rec;
            prof_add(k->name, (double)(k->end - k->start) * 1e-6);
        }
    }
    free(buf);
}
static int cmp_prof_(const void* a, const void* b) {
    double x = ((const ProfEntry*)a)->ms, y = ((const ProfEntry*)b)->ms;
    return (x < y) - (x > y);
}

static void* g_cupti_lib = NULL;
/* starts recording kernels; returns 0 when CUPTI is unavailable (a message says why) */
static int profile_begin(void) {
    g_cupti_lib = dlopen("libcupti.so", RTLD_NOW);
    if (!g_cupti_lib) g_cupti_lib = dlopen("libcupti.so.13", RTLD_NOW);
    if (!g_cupti_lib) { printf("--profile: libcupti not found (%s); no per-kernel profile\n", dlerror()); return 0; }
    cupti_register_t reg = (cupti_register_t)dlsym(g_cupti_lib, "cuptiActivityRegisterCallbacks");
    cupti_enable_t en = (cupti_enable_t)dlsym(g_cupti_lib, "cuptiActivityEnable");
    g_cupti_next = (cupti_next_t)dlsym(g_cupti_lib, "cuptiActivityGetNextRecord");
    if (!reg || !en || !g_cupti_next) { printf("--profile: libcupti lacks the activity API\n"); return 0; }
    g_nprof = 0;
    if (reg(prof_buffer_requested, prof_buffer_completed) != CUPTI_SUCCESS ||
        en(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS) {
        printf("--profile: CUPTI refused to record kernels\n");
        return 0;
    }
    return 1;
}
/* stops, flushes and prints the table of kernels by total time, with step_ms as the wall time */
static void profile_end_print(double step_ms) {
    cupti_flush_t flush = (cupti_flush_t)dlsym(g_cupti_lib, "cuptiActivityFlushAll");
    cupti_enable_t dis = (cupti_enable_t)dlsym(g_cupti_lib, "cuptiActivityDisable");
    if (flush) flush(1);
    if (dis) dis(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    qsort(g_prof, (size_t)g_nprof, sizeof(ProfEntry), cmp_prof_);
    double total = 0;
    for (int i = 0; i < g_nprof; i++) total += g_prof[i].ms;
    printf("per-kernel profile of one step (CUPTI): kernels %.2f ms of %.2f ms wall\n", total, step_ms);
    printf("%-52s %7s %10s %7s\n", "kernel", "calls", "ms", "share");
    for (int i = 0; i < g_nprof; i++)
        printf("%-52.52s %7d %10.3f %6.1f%%\n", g_prof[i].name, g_prof[i].count, g_prof[i].ms, 100.0 * g_prof[i].ms / total);
    fflush(stdout);
}
#else
static int profile_begin(void) { printf("--profile: built without cupti.h; no per-kernel profile\n"); return 0; }
static void profile_end_print(double step_ms) { (void)step_ms; }
#endif

#endif /* COMMON_PROFILE_CUH */
