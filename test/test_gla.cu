/*
 * test_gla.cu — the CUDA GLA model against the double-precision reference (test/ref_gla.h): logits,
 * per-token losses and every parameter gradient on tiny configs with T not a multiple of the chunk (64),
 * strong and weak forget gates, tied and untied heads, ignored targets; and bit-exact determinism.
 * Needs a GPU; prints SKIP without one.
 */
#define TESTING
#include "../train_gla.cu"
#include "ref_gla.h"
#include "model_check.cuh"

typedef struct { const char* tag; RefGLAConfig c; int B, T, recompute, keep_states; } GLACase;

/* moves parameters off init so that every path carries signal: gate biases make some key channels decay
 * hard (g ~ -0.5 per step) and others barely; norm weights vary */
static void perturb(const RefGLAConfig* c, double* p, const RefGLATensor* ts, int nt, uint64_t seed) {
    Rng r = rng_seed(seed);
    for (int i = 0; i < nt; i++) {
        const RefGLATensor* t = &ts[i];
        int is_bias = strstr(t->name, "gk1_b") != NULL, is_norm = strstr(t->name, "norm") != NULL;
        for (size_t j = 0; j < t->numel; j++) {
            double* x = &p[t->offset + j];
            if (is_bias) *x = (j % 3 == 0) ? -8.0 : (j % 3 == 1) ? 4.0 : rng_uniform_in(&r, -1, 1);
            else if (is_norm) *x = 1.0 + 0.3 * rng_uniform_in(&r, -1, 1);
            else *x += 0.02 * rng_normal(&r);
        }
    }
    (void)c;
}

static double ref_fn(const void* cfg, const double* params, double* grads, const int* ids, const int* targets, int B, int T,
                     double* logits) {
    return ref_gla_forward_backward((const RefGLAConfig*)cfg, params, grads, ids, targets, B, T, logits);
}

static int run_case(const GLACase* tc) {
    const RefGLAConfig* rc = &tc->c;
    GLAConfig c = {rc->Vc, rc->D, rc->L, rc->H, (float)rc->expand_k, (float)rc->expand_v, rc->I, rc->tied, (float)rc->eps};
    GLAModel m;
    gla_create(&m, &c, tc->B, tc->T, tc->recompute, tc->keep_states, 1);
    ModelHandle h;
    memset(&h, 0, sizeof h);
    gla_fill_handle(&h, &m);
    int nt = ref_gla_num_tensors(rc);
    RefGLATensor* ts = (RefGLATensor*)malloc_check(sizeof(RefGLATensor) * (size_t)nt);
    ref_gla_tensors(rc, ts);
    RefLayout rl;
    rl.n = nt;
    for (int i = 0; i < nt; i++) { rl.off[i] = ts[i].offset; rl.numel[i] = ts[i].numel; snprintf(rl.name[i], sizeof rl.name[i], "%s", ts[i].name); }
    double* params = (double*)malloc_check(ref_gla_num_params(rc) * sizeof(double));
    ref_gla_init_params(rc, params, 7);
    perturb(rc, params, ts, nt, 11);
    /* even batches also check gradient accumulation against a second model of B/2 rows */
    GLAModel mh;
    ModelHandle hh;
    memset(&hh, 0, sizeof hh);
    if (tc->B % 2 == 0) {
        gla_create(&mh, &c, tc->B / 2, tc->T, tc->recompute, tc->keep_states, 1);
        gla_fill_handle(&hh, &mh);
    }
    int fails = check_model_case(&h, &rl, params, ref_fn, rc, tc->B, tc->T, tc->tag, tc->B % 2 == 0 ? &hh : NULL);
    if (tc->B % 2 == 0) gla_destroy(&mh);
    free(ts);
    free(params);
    gla_destroy(&m);
    return fails;
}

int main(int argc, char** argv) {
    /* tag, {Vc, D, L, H, expand_k, expand_v, I, tied, eps}, B, T, recompute level, layers keeping their chunk
     * states (-1: all) */
    GLACase cases[] = {
        {"gla tied B=2 T=100", {72, 256, 2, 2, 0.5, 1.0, 0, 1, 1e-6}, 2, 100, 0, -1},
        {"gla untied B=1 T=150 Vc=61 recompute=2", {61, 256, 2, 2, 0.5, 1.0, 256, 0, 1e-6}, 1, 150, 2, -1},
        {"gla T=1 B=3 recompute=1", {64, 256, 1, 2, 0.5, 1.0, 0, 1, 1e-6}, 3, 1, 1, -1},
        {"gla B=2 T=200 H=4 K=64 recompute=1", {80, 256, 2, 4, 1.0, 1.0, 0, 1, 1e-6}, 2, 200, 1, -1},
        {"gla B=2 T=130 keep-states=0", {72, 256, 2, 2, 0.5, 1.0, 0, 0, 1e-6}, 2, 130, 0, 0},
        {"gla B=2 T=150 keep-states=1", {72, 256, 2, 2, 0.5, 1.0, 0, 0, 1e-6}, 2, 150, 0, 1},
    };
    const int ncases = (int)(sizeof cases / sizeof cases[0]);
    if (!model_test_begin("test_gla", ncases, argc, argv)) return 0;
    int fails = 0;
    for (int i = 0; i < ncases; i++)
        if (case_selected(i, argc, argv)) fails += run_case(&cases[i]);
    matmul_free();
    return fails ? 1 : 0;
}
