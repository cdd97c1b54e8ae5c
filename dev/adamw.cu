/*
 * dev/adamw.cu — harness for adamw_update (common/adamw.cuh): master, m, v against a double CPU
 * reference of the same formula; the bf16 copy must be one of the two bf16 neighbours of the new master
 * value (stochastic rounding); a non-finite grad scale must leave everything untouched; unaligned
 * ranges (scalar path); bit-identical reruns with the same seed, different bits with another seed.
 * Timed on 374,475,776 parameters (GLA-340M untied) against the bytes it must move.
 *
 *   ./dev/adamw [--check] [-N 374475776] [--reps 20]
 *   v1: adamw_update from common/adamw.cuh over one range; also times adamw_update_runs (the trainer's path since
 *       session 15) over the same elements cut into the run table of a mamba-370m model (290 runs), against 290
 *       adamw_update_at launches. --check: adamw_update_runs against per-run launches, bit for bit.
 */
#include "../common/adamw.cuh"
#include "harness.h"

static uint64_t g_seed = 99;

typedef struct {
    size_t n;
    float *hp, *hg, *hm, *hv;          /* host start state */
    float *p, *g, *m, *v, *scale;      /* device */
    bf16* copy;
} State;

static State make_state(size_t n) {
    State s;
    s.n = n;
    s.hp = (float*)malloc_check(sizeof(float) * n);
    s.hg = (float*)malloc_check(sizeof(float) * n);
    s.hm = (float*)malloc_check(sizeof(float) * n);
    s.hv = (float*)malloc_check(sizeof(float) * n);
    fill_normal(s.hp, n, 0.02f, g_seed++);
    fill_normal(s.hg, n, 1.0f, g_seed++);
    fill_normal(s.hm, n, 0.1f, g_seed++);
    fill_uniform(s.hv, n, 0.0f, 0.05f, g_seed++);
    s.p = (float*)dmalloc(sizeof(float) * (n + 4)); /* + 4: room for the unaligned (offset 1) test */
    s.g = (float*)dmalloc(sizeof(float) * (n + 4));
    s.m = (float*)dmalloc(sizeof(float) * (n + 4));
    s.v = (float*)dmalloc(sizeof(float) * (n + 4));
    s.copy = (bf16*)dmalloc(sizeof(bf16) * (n + 4));
    s.scale = (float*)dmalloc(sizeof(float));
    return s;
}
static void free_state(State* s) {
    free(s->hp); free(s->hg); free(s->hm); free(s->hv);
    CUDA_CHECK(cudaFree(s->p)); CUDA_CHECK(cudaFree(s->g)); CUDA_CHECK(cudaFree(s->m)); CUDA_CHECK(cudaFree(s->v));
    CUDA_CHECK(cudaFree(s->copy)); CUDA_CHECK(cudaFree(s->scale));
}
/* upload the start state at element offset off (off = 1 makes every pointer 4-byte but not 16-byte aligned) */
static void load_state(State* s, int off, float scale) {
    size_t b = sizeof(float) * s->n;
    CUDA_CHECK(cudaMemcpy(s->p + off, s->hp, b, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(s->g + off, s->hg, b, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(s->m + off, s->hm, b, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(s->v + off, s->hv, b, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(s->scale, &scale, sizeof(float), cudaMemcpyHostToDevice));
    poison(s->copy, sizeof(bf16) * (s->n + 4));
}

static const float LR = 3e-4f, B1 = 0.9f, B2 = 0.95f, EPS = 1e-8f, WD = 0.1f;

static int check_case(size_t n, int off, float scale, int t) {
    int fails = 0;
    char what[160];
    State s = make_state(n);
    load_state(&s, off, scale);
    adamw_update(s.p + off, s.copy + off, s.g + off, s.m + off, s.v + off, n, LR, B1, B2, EPS, WD, s.scale, t, 1234u, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    float *p = (float*)malloc_check(sizeof(float) * n), *m = (float*)malloc_check(sizeof(float) * n);
    float *v = (float*)malloc_check(sizeof(float) * n);
    uint16_t* c = (uint16_t*)malloc_check(sizeof(uint16_t) * n);
    download_f32(p, s.p + off, n); download_f32(m, s.m + off, n); download_f32(v, s.v + off, n);
    CUDA_CHECK(cudaMemcpy(c, s.copy + off, sizeof(uint16_t) * n, cudaMemcpyDeviceToHost));

    double *rp = (double*)malloc_check(sizeof(double) * n), *rm = (double*)malloc_check(sizeof(double) * n);
    double* rv = (double*)malloc_check(sizeof(double) * n);
    double bc1 = 1.0 - pow(B1, t), bc2 = 1.0 - pow(B2, t);
    for (size_t i = 0; i < n; i++) {
        double g = (double)s.hg[i] * scale;
        rm[i] = B1 * (double)s.hm[i] + (1.0 - B1) * g;
        rv[i] = B2 * (double)s.hv[i] + (1.0 - B2) * g * g;
        rp[i] = s.hp[i] - LR * ((rm[i] / bc1) / (sqrt(rv[i] / bc2) + EPS) + WD * s.hp[i]);
    }
    snprintf(what, sizeof what, "master n=%zu offset=%d scale=%.2f t=%d", n, off, scale, t);
    fails += check_report(what, rp, p, n, 1e-6);
    snprintf(what, sizeof what, "m      n=%zu offset=%d scale=%.2f t=%d", n, off, scale, t);
    fails += check_report(what, rm, m, n, 1e-6);
    snprintf(what, sizeof what, "v      n=%zu offset=%d scale=%.2f t=%d", n, off, scale, t);
    fails += check_report(what, rv, v, n, 1e-6);
    /* the copy is master rounded down or up to a bf16 neighbour; both directions must occur */
    size_t bad = 0, up = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &p[i], 4);
        uint16_t lo = (uint16_t)(u >> 16);
        if (c[i] == lo) continue;
        if (c[i] == (uint16_t)(lo + 1) && (u & 0xffffu) != 0) { up++; continue; }
        bad++;
    }
    int ok = bad == 0 && (n < 100 || (up > n / 10 && up < n - n / 10));
    printf("%s bf16 copy stochastic rounding n=%zu offset=%d (%zu not a neighbour, %zu rounded up)\n", ok ? "PASS" : "FAIL",
           n, off, bad, up);
    fails += !ok;

    /* same seed => same bits; another seed => different copy bits */
    uint16_t* c2 = (uint16_t*)malloc_check(sizeof(uint16_t) * n);
    float* p2 = (float*)malloc_check(sizeof(float) * n);
    load_state(&s, off, scale);
    adamw_update(s.p + off, s.copy + off, s.g + off, s.m + off, s.v + off, n, LR, B1, B2, EPS, WD, s.scale, t, 1234u, 0);
    CUDA_CHECK(cudaMemcpy(c2, s.copy + off, sizeof(uint16_t) * n, cudaMemcpyDeviceToHost));
    download_f32(p2, s.p + off, n);
    int same = !memcmp(c, c2, sizeof(uint16_t) * n) && !memcmp(p, p2, sizeof(float) * n);
    load_state(&s, off, scale);
    adamw_update(s.p + off, s.copy + off, s.g + off, s.m + off, s.v + off, n, LR, B1, B2, EPS, WD, s.scale, t, 4321u, 0);
    CUDA_CHECK(cudaMemcpy(c2, s.copy + off, sizeof(uint16_t) * n, cudaMemcpyDeviceToHost));
    int differs = n < 100 || memcmp(c, c2, sizeof(uint16_t) * n) != 0;
    printf("%s deterministic n=%zu offset=%d (same seed bit-identical, other seed differs)\n",
           same && differs ? "PASS" : "FAIL", n, off);
    fails += !(same && differs);

    /* a NaN scale (what clip_factor writes for a non-finite norm) skips the step */
    load_state(&s, off, NAN);
    adamw_update(s.p + off, s.copy + off, s.g + off, s.m + off, s.v + off, n, LR, B1, B2, EPS, WD, s.scale, t, 1234u, 0);
    download_f32(p2, s.p + off, n);
    download_f32(m, s.m + off, n);
    int untouched = !memcmp(p2, s.hp, sizeof(float) * n) && !memcmp(m, s.hm, sizeof(float) * n);
    printf("%s NaN grad scale skips the step n=%zu offset=%d\n", untouched ? "PASS" : "FAIL", n, off);
    fails += !untouched;

    free(p); free(m); free(v); free(c); free(rp); free(rm); free(rv); free(c2); free(p2);
    free_state(&s);
    return fails;
}

/* adamw_update_runs against one adamw_update_at per run (the trainer's loop before session 15), clipped to the
 * slice [lo, hi), bit for bit: master, m, v of the slice and the whole copy. The runs: decay / no decay alternating,
 * odd lengths, padding between them, as the trainer's table has. */
static int check_runs(size_t lo, size_t hi, float scale, int t) {
    const size_t n = 20011;   /* layout size; the slice [lo, hi) of it */
    const AdamWRun runs[] = {{0, 1030, 11u, 1}, {1032, 1037, 22u, 0}, {1040, 5000, 33u, 1}, {5000, 5013, 44u, 0},
                             {5016, 12001, 55u, 1}, {12008, 12011, 66u, 0}, {12016, 20011, 77u, 1}};
    const int nr = (int)(sizeof runs / sizeof runs[0]);
    State s = make_state(n);
    uint16_t* c[2];
    float* f[2];
    const size_t ns = hi - lo;
    for (int way = 0; way < 2; way++) {
        load_state(&s, 0, scale);
        CUDA_CHECK(cudaMemset(s.copy, 0, sizeof(bf16) * n));
        /* master, m, v as slices: the layout's [lo, hi) moved to the front, as a rank holds them */
        CUDA_CHECK(cudaMemcpy(s.p, s.hp + lo, sizeof(float) * ns, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(s.m, s.hm + lo, sizeof(float) * ns, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(s.v, s.hv + lo, sizeof(float) * ns, cudaMemcpyHostToDevice));
        if (way == 0) {
            AdamWRun* d = (AdamWRun*)dmalloc(sizeof runs);
            CUDA_CHECK(cudaMemcpy(d, runs, sizeof runs, cudaMemcpyHostToDevice));
            adamw_update_runs(s.p, s.copy, s.g, s.m, s.v, lo, hi, d, nr, LR, B1, B2, EPS, WD, s.scale, t, 0);
            CUDA_CHECK(cudaDeviceSynchronize());
            CUDA_CHECK(cudaFree(d));
        } else {
            for (int r = 0; r < nr; r++) {
                const size_t b = runs[r].begin > lo ? runs[r].begin : lo, e = runs[r].end < hi ? runs[r].end : hi;
                if (b < e)
                    adamw_update_at(s.p + (b - lo), s.copy + b, s.g + b, s.m + (b - lo), s.v + (b - lo), e - b, LR, B1, B2,
                                    EPS, runs[r].decay ? WD : 0.0f, s.scale, t, runs[r].seed, b - runs[r].begin, 0);
            }
        }
        c[way] = (uint16_t*)malloc_check(sizeof(uint16_t) * n);
        f[way] = (float*)malloc_check(sizeof(float) * 3 * ns);
        CUDA_CHECK(cudaMemcpy(c[way], s.copy, sizeof(uint16_t) * n, cudaMemcpyDeviceToHost));
        download_f32(f[way], s.p, ns); download_f32(f[way] + ns, s.m, ns); download_f32(f[way] + 2 * ns, s.v, ns);
    }
    const int same = !memcmp(c[0], c[1], sizeof(uint16_t) * n) && !memcmp(f[0], f[1], sizeof(float) * 3 * ns);
    printf("%s adamw_update_runs == per-run adamw_update_at bit for bit, slice [%zu, %zu) of %zu, scale %.2f, t=%d\n",
           same ? "PASS" : "FAIL", lo, hi, n, scale, t);
    for (int w = 0; w < 2; w++) { free(c[w]); free(f[w]); }
    free_state(&s);
    return !same;
}

/* device-side random fill for the timing run (host RNG over 4 x 374M values would take longer than the timing) */
__global__ void fill_dev_kernel(float* x, size_t n, uint32_t seed, float lo, float hi) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = lo + (hi - lo) * (float)(hash_u32((uint32_t)i, seed) >> 8) * (1.0f / 16777216.0f);
}
static void fill_dev(float* x, size_t n, uint32_t seed, float lo, float hi) {
    fill_dev_kernel<<<1024, 256>>>(x, n, seed, lo, hi);
    CUDA_KERNEL_CHECK();
}

typedef struct { State* s; int t; const AdamWRun* runs; const AdamWRun* runs_dev; int nruns; } Ctx;
static void run_step(void* c_) {
    Ctx* c = (Ctx*)c_;
    State* s = c->s;
    adamw_update(s->p, s->copy, s->g, s->m, s->v, s->n, LR, B1, B2, EPS, WD, s->scale, ++c->t, 1234u, 0);
}
static void run_per_run(void* c_) {   /* one launch per run (the trainer before session 15) */
    Ctx* c = (Ctx*)c_;
    State* s = c->s;
    ++c->t;
    for (int r = 0; r < c->nruns; r++) {
        const AdamWRun* u = &c->runs[r];
        adamw_update_at(s->p + u->begin, s->copy + u->begin, s->g + u->begin, s->m + u->begin, s->v + u->begin,
                        u->end - u->begin, LR, B1, B2, EPS, u->decay ? WD : 0.0f, s->scale, c->t, u->seed, 0, 0);
    }
}
static void run_runs(void* c_) {   /* the same runs in one launch */
    Ctx* c = (Ctx*)c_;
    State* s = c->s;
    adamw_update_runs(s->p, s->copy, s->g, s->m, s->v, 0, s->n, c->runs_dev, c->nruns, LR, B1, B2, EPS, WD, s->scale, ++c->t, 0);
}
/* mamba-370m's run table (untied, vocab 32000): per layer norm | in_proj, conv w | conv b | x_proj, dt_proj |
 * dt bias, A_log, D | out_proj, then the final norm and lm_head after the embedding; offsets rounded to 8 */
static int mamba370m_runs(AdamWRun* out, size_t* total) {
    size_t off = 0;
    int n = 0;
    auto add = [&](size_t numel, int decay) {
        off = (off + 7) & ~(size_t)7;
        if (n > 0 && out[n - 1].decay == decay) out[n - 1].end = off + numel;
        else out[n++] = (AdamWRun){off, off + numel, 1234u * 7919u + (unsigned)off, decay};
        off += numel;
    };
    add((size_t)32000 * 1024, 1);
    for (int l = 0; l < 48; l++) {
        add(1024, 0); add((size_t)4096 * 1024, 1); add(2048 * 4, 1); add(2048, 0); add((size_t)96 * 2048, 1);
        add((size_t)2048 * 64, 1); add(2048, 0); add((size_t)2048 * 16, 0); add(2048, 0); add((size_t)1024 * 2048, 1);
    }
    add(1024, 0); add((size_t)32000 * 1024, 1);
    *total = off;
    return n;
}

int main(int argc, char** argv) {
    HarnessArgs a = harness_args(argc, argv);
    require_gpu_or_skip("adamw");
    if (a.check) {
        int fails = 0;
        fails += check_case(1, 0, 1.0f, 1);
        fails += check_case(1000, 0, 0.5f, 1);
        fails += check_case(1001, 1, 1.0f, 7);          /* unaligned + odd length: scalar path */
        fails += check_case(4 * 1000003 + 3, 0, 0.25f, 100); /* vector path + scalar tail */
        fails += check_runs(0, 20011, 1.0f, 3);            /* one rank: the whole layout (its end cuts a vector) */
        fails += check_runs(1024, 12032, 0.5f, 9);         /* a middle slice: runs cut at both ends */
        fails += check_runs(4992, 5008, 1.0f, 2);          /* inside two runs and their padding */
        fails += check_runs(12032, 20011, 0.7f, 1);
        printf("%s adamw: %d failure(s)\n", fails ? "FAIL" : "PASS", fails);
        return fails ? 1 : 0;
    }
    size_t n = (size_t)harness_get(&a, 'N', 374475776L);
    State s = make_state(0); /* device buffers only */
    s.n = n;
    CUDA_CHECK(cudaFree(s.p)); CUDA_CHECK(cudaFree(s.g)); CUDA_CHECK(cudaFree(s.m)); CUDA_CHECK(cudaFree(s.v));
    CUDA_CHECK(cudaFree(s.copy));
    s.p = (float*)dmalloc(sizeof(float) * n); s.g = (float*)dmalloc(sizeof(float) * n);
    s.m = (float*)dmalloc(sizeof(float) * n); s.v = (float*)dmalloc(sizeof(float) * n);
    s.copy = (bf16*)dmalloc(sizeof(bf16) * n);
    fill_dev(s.p, n, 1, -0.05f, 0.05f); fill_dev(s.g, n, 2, -1.0f, 1.0f);
    fill_dev(s.m, n, 3, -0.1f, 0.1f); fill_dev(s.v, n, 4, 0.0f, 0.05f);
    float scale = 0.7f;
    CUDA_CHECK(cudaMemcpy(s.scale, &scale, sizeof(float), cudaMemcpyHostToDevice));
    Ctx c = {&s, 0, NULL, NULL, 0};
    float ms = time_kernel(run_step, &c, a.reps < 20 ? a.reps : 20);
    char what[96];
    snprintf(what, sizeof what, "v1 adamw_update n=%zu", n);
    time_report(what, ms, 30.0 * n, 0); /* read p,m,v,g (16 B), write p,m,v (12 B), copy (2 B) */
    static AdamWRun runs[1024];
    size_t total;
    c.nruns = mamba370m_runs(runs, &total);
    if (total <= n) {
        c.runs = runs;
        AdamWRun* d = (AdamWRun*)dmalloc(sizeof(AdamWRun) * c.nruns);
        CUDA_CHECK(cudaMemcpy(d, runs, sizeof(AdamWRun) * c.nruns, cudaMemcpyHostToDevice));
        c.runs_dev = d;
        s.n = total;
        snprintf(what, sizeof what, "  %d runs (mamba-370m), one launch each", c.nruns);
        time_report(what, time_kernel(run_per_run, &c, a.reps < 20 ? a.reps : 20), 30.0 * total, 0);
        snprintf(what, sizeof what, "  %d runs (mamba-370m), adamw_update_runs", c.nruns);
        time_report(what, time_kernel(run_runs, &c, a.reps < 20 ? a.reps : 20), 30.0 * total, 0);
        CUDA_CHECK(cudaFree(d));
    }
    free_state(&s);
    return 0;
}
