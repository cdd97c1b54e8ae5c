/*
 * test_mamba.cu — the CUDA Mamba model against the double-precision reference (test/ref_mamba.h):
 * logits, per-token losses and every parameter gradient on tiny configs, including T longer than the
 * CUDA scan chunk (state carried across chunks), T odd, tied and untied heads, ignored targets, every
 * recompute level (what backward reruns must match what forward kept); and bit-exact determinism.
 * Needs a GPU; prints SKIP without one.
 */
#define TESTING
#include "../train_mamba.cu"
#include "ref_mamba.h"
#include "model_check.cuh"

typedef struct { const char* tag; RefMambaConfig c; int B, T, recompute; } MambaCase;

/* moves parameters off init: larger A_log spread and dt biases so some channels forget fast */
static void perturb(double* p, const RefMambaTensor* ts, int nt, uint64_t seed) {
    Rng r = rng_seed(seed);
    for (int i = 0; i < nt; i++) {
        const RefMambaTensor* t = &ts[i];
        for (size_t j = 0; j < t->numel; j++) {
            double* x = &p[t->offset + j];
            if (strstr(t->name, "norm")) *x = 1.0 + 0.3 * rng_uniform_in(&r, -1, 1);
            else if (strstr(t->name, "A_log") || strstr(t->name, "dt_bias") || strstr(t->name, "Dskip"))
                *x += 0.5 * rng_uniform_in(&r, -1, 1);
            else *x += 0.02 * rng_normal(&r);
        }
    }
}

static int run_case(const MambaCase* tc) {
    const RefMambaConfig* rc = &tc->c;
    int B = tc->B, T = tc->T, M = B * T, Vc = rc->Vc;
    MambaConfig c = {rc->Vc, rc->D, rc->L, rc->Di, rc->N, rc->R, rc->W, rc->tied, (float)rc->eps};
    MambaModel m;
    mamba_create(&m, &c, B, T, tc->recompute, 1);

    int nt = ref_mamba_num_tensors(rc);
    RefMambaTensor* ts = (RefMambaTensor*)malloc_check(sizeof(RefMambaTensor) * (size_t)nt);
    ref_mamba_tensors(rc, ts);
    RefLayout rl;
    rl.n = nt;
    for (int i = 0; i < nt; i++) { rl.off[i] = ts[i].offset; rl.numel[i] = ts[i].numel; snprintf(rl.name[i], sizeof rl.name[i], "%s", ts[i].name); }
    size_t np = ref_mamba_num_params(rc);
    double* params = (double*)malloc_check(np * sizeof(double));
    double* grads = (double*)malloc_check(np * sizeof(double));
    ref_mamba_init_params(rc, params, 7);
    perturb(params, ts, nt, 11);
    int fails = load_ref_params(&m.pt, &m.p, params, &rl);
    if (fails) return fails;
    int* ids = (int*)malloc_check(sizeof(int) * (size_t)M);
    int* tg = (int*)malloc_check(sizeof(int) * (size_t)M);
    Rng r = rng_seed(3);
    for (int i = 0; i < M; i++) ids[i] = (int)rng_below(&r, (uint32_t)Vc);
    for (int i = 0; i < M; i++) tg[i] = (i % T == T - 1 || rng_uniform(&r) < 0.1) ? -1 : ids[i + 1];
    double* ref_logits = (double*)malloc_check(sizeof(double) * (size_t)M * Vc);
    double* ref_losses = (double*)malloc_check(sizeof(double) * (size_t)M);
    ref_mamba_forward_backward(rc, params, grads, ids, tg, B, T, ref_logits);
    ref_token_losses(ref_losses, ref_logits, tg, M, Vc);
    int nvalid = ref_count_valid(tg, M);

    int* d_ids = upload_ints(ids, M);
    int* d_tg = upload_ints(tg, M);
    float* d_losses;
    CUDA_CHECK(cudaMalloc((void**)&d_losses, sizeof(float) * (size_t)M));
    bf16* d_logits;
    CUDA_CHECK(cudaMalloc((void**)&d_logits, sizeof(bf16) * (size_t)M * Vc));
    CUDA_CHECK(cudaMemset(m.p.grad, 0, m.pt.total * sizeof(float)));
    mamba_step(&m, d_ids, d_tg, 1.0f / nvalid, 1, d_losses, 0);
    linear_forward(d_logits, m.a.lnf, W_(&m, m.lm_head), M, Vc, c.D, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    float* losses = (float*)malloc_check(sizeof(float) * (size_t)M);
    float* logits = (float*)malloc_check(sizeof(float) * (size_t)M * Vc);
    CUDA_CHECK(cudaMemcpy(losses, d_losses, sizeof(float) * (size_t)M, cudaMemcpyDeviceToHost));
    uint16_t* lb = (uint16_t*)malloc_check(sizeof(uint16_t) * (size_t)M * Vc);
    CUDA_CHECK(cudaMemcpy(lb, d_logits, sizeof(uint16_t) * (size_t)M * Vc, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < (size_t)M * Vc; i++) logits[i] = host_bf_bits2f(lb[i]);

    fails += compare_outputs(ref_logits, ref_losses, losses, logits, M, Vc, tc->tag);
    fails += compare_grads(&m.pt, &m.p, grads, &rl, tc->tag);
    fails += check_determinism(&m, mamba_step, &m.p, d_ids, d_tg, 1.0f / nvalid, d_losses, M, tc->tag);
    fails += check_decode(&m, mamba_decode_reset, mamba_decode_step, ids, logits, T, Vc, tc->tag);

    cudaFree(d_ids); cudaFree(d_tg); cudaFree(d_losses); cudaFree(d_logits);
    free(ts); free(params); free(grads); free(ids); free(tg); free(ref_logits); free(ref_losses); free(losses); free(logits); free(lb);
    mamba_destroy(&m);
    return fails;
}

int main(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("SKIP test_mamba: no CUDA device\n");
        return 0;
    }
    matmul_init();
    /* tag, {Vc, D, L, Di, N, R, W, tied, eps}, B, T, recompute level */
    MambaCase cases[] = {
        {"mamba tied B=2 T=37", {72, 64, 2, 128, 16, 8, 4, 1, 1e-5}, 2, 37, 0},
        {"mamba untied B=1 T=1100 Vc=61", {61, 64, 2, 128, 8, 8, 4, 0, 1e-5}, 1, 1100, 0},
        {"mamba untied B=1 T=1100 Vc=61 recompute=1", {61, 64, 2, 128, 8, 8, 4, 0, 1e-5}, 1, 1100, 1},
        {"mamba T=1 B=3 W=3 recompute=2", {64, 64, 1, 64, 16, 4, 3, 1, 1e-5}, 3, 1, 2},
        {"mamba tied B=2 T=300 L=3 recompute=2", {72, 64, 3, 128, 16, 8, 4, 1, 1e-5}, 2, 300, 2},
    };
    int fails = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) fails += run_case(&cases[i]);
    matmul_free();
    return fails ? 1 : 0;
}
