/*
 * dev/embedding_backward.cu — harness for common/embedding.cuh: the lookup (forward) and the
 * deterministic, atomic-free gradient scatter (backward, dE += rows of dout grouped by token id),
 * checked against ref_core.h with uniform ids, heavily repeated ids, one row, and a width that is not a
 * multiple of 4; bit-identical reruns. Timed at M=32768, D=1024, Vc=32000 with uniform and skewed ids.
 *
 *   ./dev/embedding_backward [--check] [-M 32768 -D 1024 -V 32000] [--reps 50]
 *   v1: production embedding_forward / embedding_backward from common/embedding.cuh
 */
#include "../common/embedding.cuh"
#include "harness.h"
#include "ref_core.h"

static uint64_t g_seed = 4242;

/* ids: skew 0 = uniform over [0,Vc); skew s > 0 = id 7 with probability s, else uniform over a few ids
 * (long runs of equal ids, the case that stresses the per-run loop) */
static void make_ids(int* ids, int M, int Vc, double skew) {
    Rng r = rng_seed(g_seed++);
    for (int m = 0; m < M; m++) {
        if (skew > 0 && rng_uniform(&r) < skew) ids[m] = 7 % Vc;
        else if (skew > 0) ids[m] = (int)rng_below(&r, (uint32_t)(Vc < 50 ? Vc : 50));
        else ids[m] = (int)rng_below(&r, (uint32_t)Vc);
    }
}

static int check_shape(int M, int D, int Vc, double skew) {
    int fails = 0;
    char what[160];
    size_t nE = (size_t)Vc * D, no = (size_t)M * D;
    int* hids = (int*)malloc_check(sizeof(int) * M);
    make_ids(hids, M, Vc, skew);
    float* hE = (float*)malloc_check(sizeof(float) * nE);
    float* hdE0 = (float*)malloc_check(sizeof(float) * nE);
    float* hdout = (float*)malloc_check(sizeof(float) * no);
    fill_uniform(hE, nE, -1, 1, g_seed++);
    fill_uniform(hdE0, nE, -1, 1, g_seed++);
    fill_uniform(hdout, no, -1, 1, g_seed++);
    int* ids = (int*)dmalloc(sizeof(int) * M);
    CUDA_CHECK(cudaMemcpy(ids, hids, sizeof(int) * M, cudaMemcpyHostToDevice));
    float *E = upload_f32(hE, nE), *dE = upload_f32(hdE0, nE), *dout = upload_f32(hdout, no);
    float* out = (float*)dmalloc(sizeof(float) * no);
    void* scratch = dmalloc(embedding_scratch_bytes(M, Vc));

    /* forward */
    poison(out, sizeof(float) * no);
    embedding_forward(out, ids, E, M, D, 0);
    double* ref_out = (double*)malloc_check(sizeof(double) * no);
    double* Ed = to_double(hE, nE);
    ref_embedding_forward(ref_out, hids, Ed, M, D);
    float* got = (float*)malloc_check(sizeof(float) * (no > nE ? no : nE));
    download_f32(got, out, no);
    snprintf(what, sizeof what, "forward   M=%d D=%d Vc=%d skew=%.2f", M, D, Vc, skew);
    fails += check_report(what, ref_out, got, no, 0.0);

    /* backward */
    poison(scratch, embedding_scratch_bytes(M, Vc));
    embedding_backward(dE, dout, ids, M, D, Vc, scratch, 0);
    double* ref_dE = to_double(hdE0, nE);
    double* doutd = to_double(hdout, no);
    ref_embedding_backward(ref_dE, doutd, hids, M, D);
    download_f32(got, dE, nE);
    snprintf(what, sizeof what, "backward  M=%d D=%d Vc=%d skew=%.2f (dE +=)", M, D, Vc, skew);
    fails += check_report(what, ref_dE, got, nE, 1e-6);

    /* determinism */
    float* again = (float*)malloc_check(sizeof(float) * nE);
    CUDA_CHECK(cudaMemcpy(dE, hdE0, sizeof(float) * nE, cudaMemcpyHostToDevice));
    poison(scratch, embedding_scratch_bytes(M, Vc));
    embedding_backward(dE, dout, ids, M, D, Vc, scratch, 0);
    download_f32(again, dE, nE);
    int same = !memcmp(got, again, sizeof(float) * nE);
    printf("%s backward deterministic M=%d D=%d Vc=%d (bit-identical rerun)\n", same ? "PASS" : "FAIL", M, D, Vc);
    fails += !same;

    free(hids); free(hE); free(hdE0); free(hdout); free(ref_out); free(Ed); free(got); free(ref_dE); free(doutd);
    free(again);
    CUDA_CHECK(cudaFree(ids)); CUDA_CHECK(cudaFree(E)); CUDA_CHECK(cudaFree(dE)); CUDA_CHECK(cudaFree(dout));
    CUDA_CHECK(cudaFree(out)); CUDA_CHECK(cudaFree(scratch));
    return fails;
}

typedef struct { float *dE, *dout, *out, *E; int* ids; int M, D, Vc; void* scratch; } Ctx;
static void run_bwd(void* c_) {
    Ctx* c = (Ctx*)c_;
    embedding_backward(c->dE, c->dout, c->ids, c->M, c->D, c->Vc, c->scratch, 0);
}
static void run_fwd(void* c_) {
    Ctx* c = (Ctx*)c_;
    embedding_forward(c->out, c->ids, c->E, c->M, c->D, 0);
}

int main(int argc, char** argv) {
    HarnessArgs a = harness_args(argc, argv);
    require_gpu_or_skip("embedding_backward");
    if (a.check) {
        int fails = 0;
        fails += check_shape(64, 32, 100, 0.0);
        fails += check_shape(1, 16, 10, 0.0);        /* one row */
        fails += check_shape(333, 30, 77, 0.0);      /* D not a multiple of 4 */
        fails += check_shape(2048, 64, 1000, 0.5);   /* half the rows share one id */
        fails += check_shape(4096, 1024, 32000, 0.0);
        fails += check_shape(5000, 256, 3, 0.0);     /* tiny vocabulary: very long runs */
        printf("%s embedding_backward: %d failure(s)\n", fails ? "FAIL" : "PASS", fails);
        return fails ? 1 : 0;
    }
    Ctx c;
    c.M = (int)harness_get(&a, 'M', 32768); c.D = (int)harness_get(&a, 'D', 1024); c.Vc = (int)harness_get(&a, 'V', 32000);
    size_t nE = (size_t)c.Vc * c.D, no = (size_t)c.M * c.D;
    float* h = (float*)malloc_check(sizeof(float) * (nE > no ? nE : no));
    fill_uniform(h, nE, -1, 1, g_seed++); c.E = upload_f32(h, nE); c.dE = upload_f32(h, nE);
    fill_uniform(h, no, -1, 1, g_seed++); c.dout = upload_f32(h, no);
    free(h);
    c.out = (float*)dmalloc(sizeof(float) * no);
    c.ids = (int*)dmalloc(sizeof(int) * c.M);
    c.scratch = dmalloc(embedding_scratch_bytes(c.M, c.Vc));
    printf("embedding M=%d D=%d Vc=%d: scratch %.2f MiB\n", c.M, c.D, c.Vc, embedding_scratch_bytes(c.M, c.Vc) / 1048576.0);
    int* hids = (int*)malloc_check(sizeof(int) * c.M);
    double skews[2] = {0.0, 0.05};
    for (int k = 0; k < 2; k++) {
        make_ids(hids, c.M, c.Vc, skews[k]);
        CUDA_CHECK(cudaMemcpy(c.ids, hids, sizeof(int) * c.M, cudaMemcpyHostToDevice));
        /* distinct ids touched: dE rows read + written */
        char* seen = (char*)calloc((size_t)c.Vc, 1);
        int distinct = 0;
        for (int m = 0; m < c.M; m++) if (!seen[hids[m]]) { seen[hids[m]] = 1; distinct++; }
        free(seen);
        char what[96];
        float ms = time_kernel(run_fwd, &c, a.reps);
        snprintf(what, sizeof what, "v1 forward  skew=%.2f", skews[k]);
        time_report(what, ms, 8.0 * no, 0);
        ms = time_kernel(run_bwd, &c, a.reps);
        snprintf(what, sizeof what, "v1 backward skew=%.2f (%d distinct ids)", skews[k], distinct);
        time_report(what, ms, 4.0 * no + 8.0 * distinct * c.D, 0);
    }
    free(hids);
    return 0;
}
