/*
 * profile.cuh — per-kernel time shares of one training step, for `--profile`: CUPTI's activity API
 * records every kernel's start and end on the device; kernels are grouped by name and printed sorted by
 * total time. Then where the device sat idle between kernels: the step's kernel span, the idle time in it by
 * gap size, and the largest gaps with the kernels around them (launch gaps are a few microseconds each; a long
 * one means the host was late). libcupti is opened with dlopen only when profiling is asked for, so the
 * trainers do not depend on it otherwise (and say so when it is missing).
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
#define PROF_MAX_SPANS 16384
typedef struct { unsigned long long start, end; int entry; } ProfSpan;   /* one kernel run, device ns */
static ProfSpan g_span[PROF_MAX_SPANS];
static int g_nspan = 0;

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
/* the table entry of a kernel name (-1: table full) */
static int prof_entry(const char* mangled) {
    char nm[96];
    prof_short_name(mangled ? mangled : "?", nm, sizeof nm);
    for (int i = 0; i < g_nprof; i++)
        if (!strcmp(g_prof[i].name, nm)) return i;
    if (g_nprof == PROF_MAX_KERNELS) return -1;
    snprintf(g_prof[g_nprof].name, sizeof g_prof[g_nprof].name, "%s", nm);
    g_prof[g_nprof].count = 0;
    g_prof[g_nprof].ms = 0;
    return g_nprof++;
}
static void prof_add(const char* mangled, unsigned long long start, unsigned long long end) {
    const int e = prof_entry(mangled);
    if (e < 0) return;
    g_prof[e].count++;
    g_prof[e].ms += (double)(end - start) * 1e-6;
    if (g_nspan < PROF_MAX_SPANS) g_span[g_nspan++] = (ProfSpan){start, end, e};
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
            prof_add(k->name, k->start, k->end);
        }
    }
    free(buf);
}
static int cmp_span_start_(const void* a, const void* b) {
    unsigned long long x = ((const ProfSpan*)a)->start, y = ((const ProfSpan*)b)->start;
    return (x > y) - (x < y);
}
/* idle device time between the recorded kernels (names from g_prof, so call before sorting it) */
static void prof_print_gaps(void) {
    if (g_nspan < 2) return;
    qsort(g_span, (size_t)g_nspan, sizeof(ProfSpan), cmp_span_start_);
    static const double edge_us[] = {2, 5, 20, 100};   /* gap classes: < 2 us, 2-5, 5-20, 20-100, >= 100 */
    double idle_ms[5] = {0}, top_us[5] = {0};
    int count[5] = {0}, top_at[5] = {0};
    unsigned long long busy_end = g_span[0].end;
    for (int i = 1; i < g_nspan; i++) {
        if (g_span[i].start > busy_end) {
            const double us = (double)(g_span[i].start - busy_end) * 1e-3;
            int c = 0;
            while (c < 4 && us >= edge_us[c]) c++;
            idle_ms[c] += us * 1e-3;
            count[c]++;
            for (int k = 0; k < 5; k++)   /* keep the five largest, largest first */
                if (us > top_us[k]) {
                    for (int m = 4; m > k; m--) { top_us[m] = top_us[m - 1]; top_at[m] = top_at[m - 1]; }
                    top_us[k] = us; top_at[k] = i;
                    break;
                }
        }
        if (g_span[i].end > busy_end) busy_end = g_span[i].end;
    }
    double total = 0;
    for (int c = 0; c < 5; c++) total += idle_ms[c];
    printf("device idle between kernels: %.2f ms in a %.2f ms kernel span (%d kernels%s)\n", total,
           (double)(busy_end - g_span[0].start) * 1e-6, g_nspan, g_nspan == PROF_MAX_SPANS ? ", table full" : "");
    static const char* cls[] = {"< 2 us", "2-5 us", "5-20 us", "20-100 us", ">= 100 us"};
    for (int c = 0; c < 5; c++)
        if (count[c]) printf("  gaps %-10s %6d  %8.3f ms\n", cls[c], count[c], idle_ms[c]);
    for (int k = 0; k < 5 && top_us[k] > 0; k++)
        printf("  gap %8.1f us after %s, before %s\n", top_us[k], g_prof[g_span[top_at[k] - 1].entry].name,
               g_prof[g_span[top_at[k]].entry].name);
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
    g_nspan = 0;
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
    prof_print_gaps();
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
