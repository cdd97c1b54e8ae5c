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
#include "../common/trainer.cuh"

typedef struct {
    int n;
    size_t off[1024], numel[1024];   /* reference layout (contiguous) */
    char name[1024][48];
} RefLayout;

/* ./test/test_gla [i j ...] runs only the cases with those indices (all without arguments): a slow tool
 * such as compute-sanitizer racecheck can then cover one case in reasonable time */
static inline int case_selected(int i, int argc, char** argv) {
    if (argc <= 1) return 1;
    for (int a = 1; a < argc; a++)
        if (atoi(argv[a]) == i) return 1;
    return 0;
}

/* The start of a model test's main: `--cases` prints how many cases there are, before any GPU work
 * (test/sanitize.sh runs each case alone); without a device it prints SKIP. 1: run the cases (matmul is ready). */
static inline int model_test_begin(const char* name, int ncases, int argc, char** argv) {
    if (argc == 2 && strcmp(argv[1], "--cases") == 0) {
        printf("%d\n", ncases);
        return 0;
    }
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("SKIP %s: no CUDA device\n", name);
        return 0;
    }
    matmul_init();
    return 1;
}

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
 * to weight gradients add the same again, while any wrong formula lands at O(1). Measured on the H200
 * (2026-11-29), the worst tensors were GLA's forget-gate bias gk1_b at 2.0-2.2e-2 (a sum over every token
 * of terms derived from the bf16 chunked-GLA gradients, so it collects the most rounding) and Mamba's
 * w_dt / w_x at 0.9-1.3e-2; 3e-2 is one tolerance for every tensor above those. */
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
    /* A gradient that is zero in exact arithmetic (the forget gate's at T=1: no later token reads the
     * state) comes out as ~1e-17 rounding in the double reference and ~1e-12 in fp32: its relative error
     * means nothing. So the denominator is floored at 1e-6 of the largest tensor's gradient norm. */
    double den_max = 0;
    for (int i = 0; i < pt->n; i++) {
        double d = 0;
        for (size_t j = 0; j < pt->t[i].numel; j++) d += ref_grads[rl->off[i] + j] * ref_grads[rl->off[i] + j];
        if (d > den_max) den_max = d;
    }
    const double den_floor = 1e-12 * den_max;   /* squared norms: (1e-6)^2 */
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
        double d = den > den_floor ? den : den_floor;
        double e = finite ? (d > 0 ? sqrt(num / d) : sqrt(num)) : INFINITY;
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
static inline int check_determinism(void* model, ModelStepFn step, ParamBuffers* pb, const int* d_ids, const int* d_tgt,
                                    float dloss, float* d_losses, int M, const char* tag) {
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
static inline int check_decode(ModelHandle* h, const int* ids, const float* logits, int T, const char* tag) {
    int Vc = h->Vc;
    uint16_t* l = (uint16_t*)malloc_check(sizeof(uint16_t) * (size_t)Vc);
    double num = 0, den = 0;
    int finite = 1;
    h->decode_reset(h->model);
    for (int t = 0; t < T; t++) {
        decode_step(h, ids[t], l, 0);
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

/* the double reference of a model: loss; grads and logits written (see test/ref_gla.h, ref_mamba.h) */
typedef double (*RefModelFn)(const void* cfg, const double* params, double* grads, const int* ids, const int* targets, int B,
                             int T, double* logits);

/* The whole comparison for one case: the reference's (perturbed) parameters go into the CUDA model,
 * both run one training micro-batch on the same random tokens (about 10% of targets ignored), and
 * logits, losses, every gradient, determinism and recurrent decoding are checked. Returns failures. */
/* Gradient accumulation: two micro-batches of B/2 rows on a second model (`half`, same weights) must
 * accumulate the gradients of one B-row batch (already in full's grad buffer), tensor by tensor, up to
 * summation order. A gradient that a kernel writes instead of adding would lose the first micro-batch. */
#define ACCUM_TOL 1e-3
static inline int check_accumulation(ModelHandle* full, ModelHandle* half, const RefLayout* rl, double* params, const int* ids,
                                     const int* tg, int B, int T, float dloss, const char* tag) {
    int Mh = (B / 2) * T;
    if (load_ref_params(half->pt, half->pb, params, rl)) return 1;
    int* d_ids = upload_ints(ids, 2 * Mh);
    int* d_tg = upload_ints(tg, 2 * Mh);
    float* d_losses;
    CUDA_CHECK(cudaMalloc((void**)&d_losses, sizeof(float) * (size_t)Mh));
    CUDA_CHECK(cudaMemset(half->pb->grad, 0, half->pt->total * sizeof(float)));
    for (int k = 0; k < 2; k++) half->step(half->model, d_ids + k * Mh, d_tg + k * Mh, dloss, 1, d_losses, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    size_t n = full->pt->total;
    float* gf = (float*)malloc_check(n * sizeof(float));
    float* gh = (float*)malloc_check(n * sizeof(float));
    CUDA_CHECK(cudaMemcpy(gf, full->pb->grad, n * sizeof(float), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(gh, half->pb->grad, n * sizeof(float), cudaMemcpyDeviceToHost));
    int fails = 0;
    double worst = 0;
    for (int i = 0; i < full->pt->n; i++) {
        const ParamInfo* p = &full->pt->t[i];
        double num = 0, den = 0;
        for (size_t j = 0; j < p->numel; j++) {
            double a = gf[p->offset + j], b = gh[p->offset + j];
            num += (a - b) * (a - b);
            den += a * a;
        }
        double e = den > 0 ? sqrt(num / den) : sqrt(num);
        if (!(e <= ACCUM_TOL)) { printf("FAIL %s accumulation grad %s rel_err=%.3e tol=%.0e\n", tag, p->name, e, ACCUM_TOL); fails++; }
        if (e > worst) worst = e;
    }
    if (!fails) printf("PASS %s gradient accumulation: 2 x B/2 equals one batch of B in every tensor (worst %.3e)\n", tag, worst);
    cudaFree(d_ids); cudaFree(d_tg); cudaFree(d_losses);
    free(gf); free(gh);
    return fails;
}

static inline int check_model_case(ModelHandle* h, const RefLayout* rl, double* params, RefModelFn ref, const void* ref_cfg,
                                   int B, int T, const char* tag, ModelHandle* half) {
    int M = B * T, Vc = h->Vc;
    if (load_ref_params(h->pt, h->pb, params, rl)) return 1;
    size_t np = rl->off[rl->n - 1] + rl->numel[rl->n - 1];
    double* grads = (double*)malloc_check(np * sizeof(double));
    int* ids = (int*)malloc_check(sizeof(int) * (size_t)M);
    int* tg = (int*)malloc_check(sizeof(int) * (size_t)M);
    Rng r = rng_seed(3);
    for (int i = 0; i < M; i++) ids[i] = (int)rng_below(&r, (uint32_t)Vc);
    /* next tokens, a random token at each sequence end (so T = 1 still has targets), ~10% ignored */
    for (int i = 0; i < M; i++)
        tg[i] = rng_uniform(&r) < 0.1 ? -1 : (i % T == T - 1 ? (int)rng_below(&r, (uint32_t)Vc) : ids[i + 1]);
    double* ref_logits = (double*)malloc_check(sizeof(double) * (size_t)M * Vc);
    double* ref_losses = (double*)malloc_check(sizeof(double) * (size_t)M);
    ref(ref_cfg, params, grads, ids, tg, B, T, ref_logits);
    ref_token_losses(ref_losses, ref_logits, tg, M, Vc);
    int nvalid = ref_count_valid(tg, M);

    int* d_ids = upload_ints(ids, M);
    int* d_tg = upload_ints(tg, M);
    float* d_losses;
    bf16* d_logits;
    CUDA_CHECK(cudaMalloc((void**)&d_losses, sizeof(float) * (size_t)M));
    CUDA_CHECK(cudaMalloc((void**)&d_logits, sizeof(bf16) * (size_t)M * Vc));
    CUDA_CHECK(cudaMemset(h->pb->grad, 0, h->pt->total * sizeof(float)));
    h->step(h->model, d_ids, d_tg, 1.0f / nvalid, 1, d_losses, 0);
    linear_forward(d_logits, h->lnf, h->lm_head, M, Vc, h->D, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    float* losses = (float*)malloc_check(sizeof(float) * (size_t)M);
    float* logits = (float*)malloc_check(sizeof(float) * (size_t)M * Vc);
    uint16_t* lb = (uint16_t*)malloc_check(sizeof(uint16_t) * (size_t)M * Vc);
    CUDA_CHECK(cudaMemcpy(losses, d_losses, sizeof(float) * (size_t)M, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(lb, d_logits, sizeof(uint16_t) * (size_t)M * Vc, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < (size_t)M * Vc; i++) logits[i] = host_bf_bits2f(lb[i]);

    int fails = compare_outputs(ref_logits, ref_losses, losses, logits, M, Vc, tag);
    fails += compare_grads(h->pt, h->pb, grads, rl, tag);
    fails += check_determinism(h->model, h->step, h->pb, d_ids, d_tg, 1.0f / nvalid, d_losses, M, tag);
    fails += check_decode(h, ids, logits, T, tag);
    if (half) fails += check_accumulation(h, half, rl, params, ids, tg, B, T, 1.0f / nvalid, tag);

    cudaFree(d_ids); cudaFree(d_tg); cudaFree(d_losses); cudaFree(d_logits);
    free(grads); free(ids); free(tg); free(ref_logits); free(ref_losses); free(losses); free(logits); free(lb);
    handle_free(h);
    return fails;
}

#endif /* TEST_MODEL_CHECK_CUH */
