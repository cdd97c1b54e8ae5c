/*
 * dev/classifier.cu — harness for common/classifier.cuh (lm_head + softmax cross-entropy, chunked over
 * rows): losses, dy and the dW increment checked against the double reference (ref_core.h) at small
 * shapes, including a vocabulary that is not a multiple of 8, ignored targets (-1), one row, and a batch
 * that spans two chunks; forward-only mode; bit-identical reruns. Timed at M=32768, D=1024, Vc=32000
 * against the floor of its three matmuls at 790 TFLOP/s.
 *
 *   ./dev/classifier [--check] [-M 32768 -D 1024 -V 32000] [--reps 20]
 *   v1: production classifier_forward_backward from common/classifier.cuh
 */
#include "../common/classifier.cuh"
#include "harness.h"
#include "ref_core.h"

static uint64_t g_seed = 777;

typedef struct {
    int M, D, Vc;
    float dloss;
    float *hy, *hW, *hdW0;
    int* ht;
    bf16 *y, *W, *dy, *scratch;
    float *losses, *dW;
    int* targets;
} Problem;

static Problem make_problem(int M, int D, int Vc, double ignore_frac) {
    Problem p;
    p.M = M; p.D = D; p.Vc = Vc;
    p.hy = (float*)malloc_check(sizeof(float) * (size_t)M * D);
    p.hW = (float*)malloc_check(sizeof(float) * (size_t)Vc * D);
    p.hdW0 = (float*)malloc_check(sizeof(float) * (size_t)Vc * D);
    p.ht = (int*)malloc_check(sizeof(int) * (size_t)M);
    /* logits = y W^T with entries of size ~ 3: a realistic spread for a softmax */
    float a = (float)(3.0 * sqrt(3.0 / D));
    fill_uniform(p.hy, (size_t)M * D, -1.0f, 1.0f, g_seed++);
    fill_uniform(p.hW, (size_t)Vc * D, -a, a, g_seed++);
    fill_uniform(p.hdW0, (size_t)Vc * D, -1.0f, 1.0f, g_seed++);
    round_to_bf16(p.hy, (size_t)M * D);
    round_to_bf16(p.hW, (size_t)Vc * D);
    Rng r = rng_seed(g_seed++);
    int nvalid = 0;
    for (int m = 0; m < M; m++) {
        p.ht[m] = rng_uniform(&r) < ignore_frac ? -1 : (int)rng_below(&r, (uint32_t)Vc);
        nvalid += p.ht[m] >= 0;
    }
    p.dloss = 1.0f / (float)(nvalid ? nvalid : 1);
    p.y = upload_bf16(p.hy, (size_t)M * D);
    p.W = upload_bf16(p.hW, (size_t)Vc * D);
    p.dy = (bf16*)dmalloc(sizeof(bf16) * (size_t)M * D);
    p.dW = upload_f32(p.hdW0, (size_t)Vc * D);
    p.losses = (float*)dmalloc(sizeof(float) * (size_t)M);
    p.targets = (int*)dmalloc(sizeof(int) * (size_t)M);
    CUDA_CHECK(cudaMemcpy(p.targets, p.ht, sizeof(int) * (size_t)M, cudaMemcpyHostToDevice));
    p.scratch = (bf16*)dmalloc(sizeof(bf16) * classifier_scratch_elems(M, Vc));
    return p;
}
static void free_problem(Problem* p) {
    free(p->hy); free(p->hW); free(p->hdW0); free(p->ht);
    CUDA_CHECK(cudaFree(p->y)); CUDA_CHECK(cudaFree(p->W)); CUDA_CHECK(cudaFree(p->dy)); CUDA_CHECK(cudaFree(p->dW));
    CUDA_CHECK(cudaFree(p->losses)); CUDA_CHECK(cudaFree(p->targets)); CUDA_CHECK(cudaFree(p->scratch));
}
/* dW back to its start, outputs and scratch poisoned, then one call */
static void run_problem(Problem* p, int grad) {
    CUDA_CHECK(cudaMemcpy(p->dW, p->hdW0, sizeof(float) * (size_t)p->Vc * p->D, cudaMemcpyHostToDevice));
    poison(p->dy, sizeof(bf16) * (size_t)p->M * p->D);
    poison(p->losses, sizeof(float) * (size_t)p->M);
    poison(p->scratch, sizeof(bf16) * classifier_scratch_elems(p->M, p->Vc));
    classifier_forward_backward(p->losses, grad ? p->dy : NULL, grad ? p->dW : NULL, p->y, p->W, p->targets, p->dloss,
                                p->M, p->D, p->Vc, p->scratch, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
}

static int check_shape(int M, int D, int Vc, double ignore_frac) {
    int fails = 0;
    char what[160];
    Problem p = make_problem(M, D, Vc, ignore_frac);
    size_t nl = (size_t)M * Vc, ny = (size_t)M * D, nw = (size_t)Vc * D;
    /* reference */
    double *y = to_double(p.hy, ny), *W = to_double(p.hW, nw);
    double* logits = (double*)malloc_check(sizeof(double) * nl);
    double* dlogits = (double*)malloc_check(sizeof(double) * nl);
    double* ref_losses = (double*)malloc_check(sizeof(double) * (size_t)M);
    double* ref_dy = (double*)calloc(ny, sizeof(double));
    double* ref_dW = (double*)calloc(nw, sizeof(double));
    ref_linear_forward(logits, y, W, NULL, M, Vc, D);
    ref_ce_forward(ref_losses, logits, p.ht, M, Vc);
    ref_ce_backward(dlogits, logits, p.ht, M, Vc, (double)p.dloss);
    ref_linear_backward(ref_dy, ref_dW, NULL, dlogits, y, W, M, Vc, D);

    float* losses = (float*)malloc_check(sizeof(float) * (size_t)M);
    float* dy = (float*)malloc_check(sizeof(float) * ny);
    float* dW = (float*)malloc_check(sizeof(float) * nw);
    float* inc = (float*)malloc_check(sizeof(float) * nw);
    int nchunks = (M + classifier_chunk_rows(M, Vc) - 1) / classifier_chunk_rows(M, Vc);

    /* forward only */
    run_problem(&p, 0);
    download_f32(losses, p.losses, (size_t)M);
    snprintf(what, sizeof what, "forward-only losses  M=%d D=%d Vc=%d ignore=%.0f%% chunks=%d", M, D, Vc, 100 * ignore_frac, nchunks);
    fails += check_report(what, ref_losses, losses, (size_t)M, 5e-3);

    /* forward + backward */
    run_problem(&p, 1);
    download_f32(losses, p.losses, (size_t)M);
    download_bf16(dy, p.dy, ny);
    download_f32(dW, p.dW, nw);
    for (size_t i = 0; i < nw; i++) inc[i] = (float)((double)dW[i] - (double)p.hdW0[i]);
    snprintf(what, sizeof what, "losses               M=%d D=%d Vc=%d ignore=%.0f%% chunks=%d", M, D, Vc, 100 * ignore_frac, nchunks);
    fails += check_report(what, ref_losses, losses, (size_t)M, 5e-3);
    snprintf(what, sizeof what, "dy                   M=%d D=%d Vc=%d", M, D, Vc);
    fails += check_report(what, ref_dy, dy, ny, 1e-2);
    snprintf(what, sizeof what, "dW increment (+=)    M=%d D=%d Vc=%d", M, D, Vc);
    fails += check_report(what, ref_dW, inc, nw, 1e-2);

    /* determinism: a second run gives the same bits everywhere */
    float* losses2 = (float*)malloc_check(sizeof(float) * (size_t)M);
    float* dy2 = (float*)malloc_check(sizeof(float) * ny);
    float* dW2 = (float*)malloc_check(sizeof(float) * nw);
    run_problem(&p, 1);
    download_f32(losses2, p.losses, (size_t)M);
    download_bf16(dy2, p.dy, ny);
    download_f32(dW2, p.dW, nw);
    int same = !memcmp(losses, losses2, sizeof(float) * M) && !memcmp(dy, dy2, sizeof(float) * ny) &&
               !memcmp(dW, dW2, sizeof(float) * nw);
    printf("%s deterministic        M=%d D=%d Vc=%d (bit-identical rerun)\n", same ? "PASS" : "FAIL", M, D, Vc);
    fails += !same;

    free(y); free(W); free(logits); free(dlogits); free(ref_losses); free(ref_dy); free(ref_dW);
    free(losses); free(dy); free(dW); free(inc); free(losses2); free(dy2); free(dW2);
    free_problem(&p);
    return fails;
}

/* ---------------- timing ---------------- */
typedef struct { Problem* p; int grad; } TimeCtx;
static void run_timed(void* c_) {
    TimeCtx* c = (TimeCtx*)c_;
    Problem* p = c->p;
    classifier_forward_backward(p->losses, c->grad ? p->dy : NULL, c->grad ? p->dW : NULL, p->y, p->W, p->targets,
                                p->dloss, p->M, p->D, p->Vc, p->scratch, 0);
}
typedef struct { Problem* p; int rows; } CeCtx;
static void run_ce(void* c_) {
    CeCtx* c = (CeCtx*)c_;
    Problem* p = c->p;
    classifier_ce_kernel<<<c->rows, CLASSIFIER_CE_THREADS>>>(p->scratch, classifier_padded_vocab(p->Vc), p->losses,
                                                             p->targets, p->Vc, p->dloss, 1);
    CUDA_KERNEL_CHECK();
}

int main(int argc, char** argv) {
    HarnessArgs a = harness_args(argc, argv);
    require_gpu_or_skip("classifier");
    matmul_init();
    if (a.check) {
        int fails = 0;
        fails += check_shape(64, 32, 128, 0.1);
        fails += check_shape(37, 24, 77, 0.2);      /* Vc not a multiple of 8, odd M */
        fails += check_shape(1, 16, 50, 0.0);       /* one row */
        fails += check_shape(16, 16, 40, 1.0);      /* every target ignored */
        fails += check_shape(300, 64, 1003, 0.05);
        fails += check_shape(8200, 32, 72, 0.1);    /* two chunks (8192 + 8 rows) */
        fails += check_shape(256, 128, 4099, 0.1);
        printf("%s classifier: %d failure(s)\n", fails ? "FAIL" : "PASS", fails);
        matmul_free();
        return fails ? 1 : 0;
    }
    int M = (int)harness_get(&a, 'M', 32768), D = (int)harness_get(&a, 'D', 1024), Vc = (int)harness_get(&a, 'V', 32000);
    int reps = a.reps < 20 ? a.reps : 20;
    Problem p = make_problem(M, D, Vc, 0.02);
    printf("classifier M=%d D=%d Vc=%d: chunk %d rows, scratch %.1f MiB\n", M, D, Vc, classifier_chunk_rows(M, Vc),
           classifier_scratch_elems(M, Vc) * 2.0 / (1 << 20));
    double mm = 2.0 * M * (double)Vc * D;
    double lbytes = (double)M * classifier_padded_vocab(Vc) * 2.0;
    TimeCtx c = {&p, 1};
    float ms = time_kernel(run_timed, &c, reps);
    time_report("v1 fwd+bwd (3 matmuls + CE)", ms, 0, 3 * mm);
    printf("   floor (3 matmuls at 790 TFLOP/s) %.3f ms -> %.0f%% of floor\n", floor_ms(0, 3 * mm), 100.0 * floor_ms(0, 3 * mm) / ms);
    c.grad = 0;
    ms = time_kernel(run_timed, &c, reps);
    time_report("v1 forward only (matmul + CE)", ms, 0, mm);
    printf("   floor (1 matmul at 790 TFLOP/s) %.3f ms -> %.0f%% of floor\n", floor_ms(0, mm), 100.0 * floor_ms(0, mm) / ms);
    /* the CE kernel alone on one chunk of real logits: a memory-bound pass (read + write bf16) */
    int rows = classifier_chunk_rows(M, Vc);
    matmul(p.scratch, 0, classifier_padded_vocab(Vc), p.y, D, 0, p.W, D, 1, rows, Vc, D, 1.0f, 0.0f, 0);
    CeCtx ce = {&p, rows};
    ms = time_kernel(run_ce, &ce, a.reps);
    char what[96];
    snprintf(what, sizeof what, "v1 CE kernel alone (%d rows)", rows);
    time_report(what, ms, 2.0 * lbytes * rows / M, 0);
    free_problem(&p);
    matmul_free();
    return 0;
}
