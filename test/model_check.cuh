/*
 * model_check.cuh — what the GPU model tests (test/test_gla.cu, test/test_mamba.cu) share: moving a
 * double-precision reference's parameters into a CUDA model's tables, running one micro-batch, and
 * comparing loss, logits and every parameter gradient tensor by relative error norm; plus the
 * determinism check (same inputs twice -> bit-identical gradients).
 * Matrices are rounded to bf16 before both sides see them, so the comparison measures the arithmetic,
 * not the rounding of the weights.
 */
#ifndef TEST_MODEL_CHECK_CUH
#define TEST_MODEL_CHECK_CUH

#include <math.h>
#include <stdio.h>
#include "../common/tensors.cuh"
#include "../common/matmul.cuh"

typedef void (*StepFn)(void* model, const int* d_ids, const int* d_targets, float dloss, int train, float* d_losses,
                       cudaStream_t s);

typedef struct {
    int n;
    size_t off[1024], numel[1024];   /* reference layout (contiguous) */
    char name[1024][48];
} RefLayout;

static inline double bf16_round_d(double x) { return (double)host_bf_bits2f(host_f2bf_bits((float)x)); }

/* Rounds the reference's matrices to bf16 (in place) and uploads every tensor into the model's master
 * and bf16 copy. Fails when the two layouts disagree on count or sizes. */
static inline int load_ref_params(const ParamTable* pt, ParamBuffers* pb, double* ref, const RefLayout* rl) {
    if (rl->n != pt->n) {
        printf("FAIL layout: reference has %d tensors, model has %d\n", rl->n, pt->n);
        return 1;
    }
    float* host = (float*)calloc(pt->total, sizeof(float));
    for (int i = 0; i < pt->n; i++) {
        const ParamInfo* p = &pt->t[i];
        if (p->numel != rl->numel[i]) {
            printf("FAIL layout: tensor %d (%s / %s) has %zu elements in the model, %zu in the reference\n", i, p->name,
                   rl->name[i], p->numel, rl->numel[i]);
            free(host);
            return 1;
        }
        for (size_t j = 0; j < p->numel; j++) {
            double* x = &ref[rl->off[i] + j];
            if (p->ndim == 2) *x = bf16_round_d(*x);
            host[p->offset + j] = (float)*x;
        }
    }
    param_upload(pb, host);
    free(host);
    return 0;
}

/* tolerance per tensor, relative error norm: bf16 activations carry ~2^-9 relative rounding per stored
 * tensor, a few dozen such roundings stack up along a path through two layers, and bf16 matrix inputs
 * to weight gradients add the same again; 3e-2 leaves margin over the ~5e-3..1e-2 this typically gives,
 * while any wrong formula lands at O(1). */
#define GRAD_TOL 3e-2
#define LOSS_TOL 2e-3
#define LOGIT_TOL 2e-2

static inline int compare_grads(const ParamTable* pt, const ParamBuffers* pb, const double* ref_grads, const RefLayout* rl,
                                const char* tag) {
    float* g = (float*)malloc_check(pt->total * sizeof(float));
    CUDA_CHECK(cudaMemcpy(g, pb->grad, pt->total * sizeof(float), cudaMemcpyDeviceToHost));
    int fails = 0;
    double worst = 0;
    const char* worst_name = "";
    for (int i = 0; i < pt->n; i++) {
        const ParamInfo* p = &pt->t[i];
        double num = 0, den = 0;
        int finite = 1;
        for (size_t j = 0; j < p->numel; j++) {
            double r = ref_grads[rl->off[i] + j], x = g[p->offset + j];
            if (!isfinite(x)) finite = 0;
            num += (x - r) * (x - r);
            den += r * r;
        }
        double e = finite ? (den > 0 ? sqrt(num / den) : sqrt(num)) : INFINITY;
        if (e > worst) { worst = e; worst_name = p->name; }
        if (!(e <= GRAD_TOL)) {
            printf("FAIL %s grad %-24s rel_err=%.3e tol=%.0e (|ref|=%.3e)\n", tag, p->name, e, GRAD_TOL, sqrt(den));
            fails++;
        }
    }
    if (!fails) printf("PASS %s grads: all %d tensors within %.0e (worst %s %.3e)\n", tag, pt->n, GRAD_TOL, worst_name, worst);
    free(g);
    return fails;
}

/* rel error of per-token losses and of logits (model computes logits = lnf W^T in bf16) */
static inline int compare_outputs(const double* ref_logits, const double* ref_losses, const float* losses, const float* logits,
                                  int M, int Vc, const char* tag) {
    int fails = 0;
    double num = 0, den = 0;
    for (int i = 0; i < M; i++) { num += (losses[i] - ref_losses[i]) * (losses[i] - ref_losses[i]); den += ref_losses[i] * ref_losses[i]; }
    double e = sqrt(num / (den > 0 ? den : 1));
    printf("%s %s losses rel_err=%.3e tol=%.0e\n", e <= LOSS_TOL ? "PASS" : "FAIL", tag, e, LOSS_TOL);
    fails += !(e <= LOSS_TOL);
    num = den = 0;
    for (size_t i = 0; i < (size_t)M * Vc; i++) { num += (logits[i] - ref_logits[i]) * (logits[i] - ref_logits[i]); den += ref_logits[i] * ref_logits[i]; }
    e = sqrt(num / (den > 0 ? den : 1));
    printf("%s %s logits rel_err=%.3e tol=%.0e\n", e <= LOGIT_TOL ? "PASS" : "FAIL", tag, e, LOGIT_TOL);
    fails += !(e <= LOGIT_TOL);
    return fails;
}

/* per-token reference losses from reference logits */
static inline void ref_token_losses(double* out, const double* logits, const int* targets, int M, int Vc) {
    ref_ce_forward(out, logits, targets, M, Vc);
}

/* Runs one training micro-batch twice from zeroed gradients; gradients and losses must match bit for bit. */
static inline int check_determinism(void* model, StepFn step, ParamBuffers* pb, const int* d_ids, const int* d_tgt, float dloss,
                                    float* d_losses, int M, const char* tag) {
    size_t n = pb->total;
    float* g1 = (float*)malloc_check(n * sizeof(float));
    float* g2 = (float*)malloc_check(n * sizeof(float));
    float* l1 = (float*)malloc_check((size_t)M * sizeof(float));
    float* l2 = (float*)malloc_check((size_t)M * sizeof(float));
    for (int r = 0; r < 2; r++) {
        CUDA_CHECK(cudaMemset(pb->grad, 0, n * sizeof(float)));
        step(model, d_ids, d_tgt, dloss, 1, d_losses, 0);
        CUDA_CHECK(cudaDeviceSynchronize());
        CUDA_CHECK(cudaMemcpy(r ? g2 : g1, pb->grad, n * sizeof(float), cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(r ? l2 : l1, d_losses, (size_t)M * sizeof(float), cudaMemcpyDeviceToHost));
    }
    int same = !memcmp(g1, g2, n * sizeof(float)) && !memcmp(l1, l2, (size_t)M * sizeof(float));
    printf("%s %s determinism: two runs give %s gradients and losses\n", same ? "PASS" : "FAIL", tag,
           same ? "bit-identical" : "DIFFERENT");
    free(g1); free(g2); free(l1); free(l2);
    return !same;
}

/* Recurrent decoding must compute the same function as the parallel forward: feed the first sequence's
 * tokens one at a time and compare each step's logits with row t of the parallel logits[M,Vc]. */
typedef void (*DecodeResetFn)(void* model);
typedef void (*DecodeStepFn)(void* model, int token, uint16_t* logits, cudaStream_t s);
static inline int check_decode(void* model, DecodeResetFn reset, DecodeStepFn step, const int* ids, const float* logits, int T,
                               int Vc, const char* tag) {
    uint16_t* l = (uint16_t*)malloc_check(sizeof(uint16_t) * (size_t)Vc);
    double num = 0, den = 0;
    int finite = 1;
    reset(model);
    for (int t = 0; t < T; t++) {
        step(model, ids[t], l, 0);
        for (int v = 0; v < Vc; v++) {
            double x = host_bf_bits2f(l[v]), r = logits[(size_t)t * Vc + v];
            if (!isfinite(x)) finite = 0;
            num += (x - r) * (x - r);
            den += r * r;
        }
    }
    double e = finite ? sqrt(num / (den > 0 ? den : 1)) : INFINITY;
    int ok = e <= LOGIT_TOL;
    printf("%s %s recurrent decoding of %d tokens matches the parallel forward: rel_err=%.3e tol=%.0e\n", ok ? "PASS" : "FAIL",
           tag, T, e, LOGIT_TOL);
    free(l);
    return !ok;
}

static inline int* upload_ints(const int* h, int n) {
    int* d;
    CUDA_CHECK(cudaMalloc((void**)&d, sizeof(int) * (size_t)n));
    CUDA_CHECK(cudaMemcpy(d, h, sizeof(int) * (size_t)n, cudaMemcpyHostToDevice));
    return d;
}

#endif /* TEST_MODEL_CHECK_CUH */
