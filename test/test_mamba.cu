/*
 * test_mamba.cu — the CUDA Mamba model against the double-precision reference (test/ref_mamba.h):
 * logits, per-token losses and every parameter gradient on tiny configs, including T longer than the
 * CUDA scan chunk (state carried across chunks), T odd, tied and untied heads, ignored targets, every
 * recompute level (what backward reruns must match what forward kept), in_proj outputs kept for some or all
 * layers (--keep-xz); and bit-exact determinism.
 * Needs a GPU; prints SKIP without one.
 */
#define TESTING
#include "../train_mamba.cu"
#include "ref_mamba.h"
#include "model_check.cuh"

typedef struct { const char* tag; RefMambaConfig c; int B, T, recompute, keep_xz, keep_ln; } MambaCase;

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

static double ref_fn(const void* cfg, const double* params, double* grads, const int* ids, const int* targets, int B, int T,
                     double* logits) {
    return ref_mamba_forward_backward((const RefMambaConfig*)cfg, params, grads, ids, targets, B, T, logits);
}

static int run_case(const MambaCase* tc) {
    const RefMambaConfig* rc = &tc->c;
    MambaConfig c = {rc->Vc, rc->D, rc->L, rc->Di, rc->N, rc->R, rc->W, rc->tied, (float)rc->eps};
    MambaModel m;
    mamba_create(&m, &c, tc->B, tc->T, tc->recompute, tc->keep_xz, tc->keep_ln, 1);
    ModelHandle h;
    memset(&h, 0, sizeof h);
    mamba_fill_handle(&h, &m);
    int nt = ref_mamba_num_tensors(rc);
    RefMambaTensor* ts = (RefMambaTensor*)malloc_check(sizeof(RefMambaTensor) * (size_t)nt);
    ref_mamba_tensors(rc, ts);
    RefLayout rl;
    rl.n = nt;
    for (int i = 0; i < nt; i++) { rl.off[i] = ts[i].offset; rl.numel[i] = ts[i].numel; snprintf(rl.name[i], sizeof rl.name[i], "%s", ts[i].name); }
    double* params = (double*)malloc_check(ref_mamba_num_params(rc) * sizeof(double));
    ref_mamba_init_params(rc, params, 7);
    perturb(params, ts, nt, 11);
    /* even batches also check gradient accumulation against a second model of B/2 rows */
    MambaModel mh;
    ModelHandle hh;
    memset(&hh, 0, sizeof hh);
    if (tc->B % 2 == 0) {
        mamba_create(&mh, &c, tc->B / 2, tc->T, tc->recompute, tc->keep_xz, tc->keep_ln, 1);
        mamba_fill_handle(&hh, &mh);
    }
    int fails = check_model_case(&h, &rl, params, ref_fn, rc, tc->B, tc->T, tc->tag, tc->B % 2 == 0 ? &hh : NULL);
    if (tc->B % 2 == 0) mamba_destroy(&mh);
    free(ts);
    free(params);
    mamba_destroy(&m);
    return fails;
}

int main(int argc, char** argv) {
    /* tag, {Vc, D, L, Di, N, R, W, tied, eps}, B, T, recompute level, layers keeping xz, level 0 keeps ln */
    MambaCase cases[] = {
        {"mamba tied B=2 T=37", {72, 64, 2, 128, 16, 8, 4, 1, 1e-5}, 2, 37, 0, 0, 1},
        {"mamba untied B=1 T=1100 Vc=61", {61, 64, 2, 128, 8, 8, 4, 0, 1e-5}, 1, 1100, 0, 0, 1},
        {"mamba untied B=1 T=1100 Vc=61 recompute=1", {61, 64, 2, 128, 8, 8, 4, 0, 1e-5}, 1, 1100, 1, 0, 1},
        {"mamba T=1 B=3 W=3 recompute=2", {64, 64, 1, 64, 16, 4, 3, 1, 1e-5}, 3, 1, 2, 0, 1},
        {"mamba tied B=2 T=300 L=3 recompute=2", {72, 64, 3, 128, 16, 8, 4, 1, 1e-5}, 2, 300, 2, 0, 1},
        {"mamba tied B=2 T=300 L=3 keep-xz=2", {72, 64, 3, 128, 16, 8, 4, 1, 1e-5}, 2, 300, 0, 2, 1},
        {"mamba tied B=2 T=300 L=3 keep-xz=2 keep-ln=0", {72, 64, 3, 128, 16, 8, 4, 1, 1e-5}, 2, 300, 0, 2, 0},
        {"mamba untied B=2 T=150 keep-xz=all recompute=1", {61, 64, 2, 128, 8, 8, 4, 0, 1e-5}, 2, 150, 1, -1, 1},
    };
    const int ncases = (int)(sizeof cases / sizeof cases[0]);
    if (!model_test_begin("test_mamba", ncases, argc, argv)) return 0;
    int fails = 0;
    for (int i = 0; i < ncases; i++)
        if (case_selected(i, argc, argv)) fails += run_case(&cases[i]);
    matmul_free();
    return fails ? 1 : 0;
}
