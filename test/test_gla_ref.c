// test_gla_ref.c: checks the double-precision GLA references themselves (no GPU), so that every CUDA test
// that trusts them stands on tested ground.
//   (a) GLA operator (test/ref_gla_op.h): naive recurrence vs chunk form (forward and backward) at T not a
//       multiple of the chunk with strong and weak decay; op backward vs central finite differences.
//   (b) whole model (test/ref_gla.h): loss gradient vs central finite differences for every parameter
//       tensor (all entries of small tensors, a random subset of big ones), tied and untied.
// Build: make test/test_gla_ref (gcc -std=c11 -O2 -Wall -D_DEFAULT_SOURCE -Icommon -Itest test/test_gla_ref.c -lm)
// Prints one PASS/FAIL line per check; exit status 1 on any failure.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "ref_gla_op.h"
#include "ref_gla.h"
#include "check.h"

// one PASS/FAIL line: a relative error against its tolerance (NaN fails)
static void check_tol(const char* name, double err, double tol) {
    int ok = err <= tol && err == err;
    check_line(ok, ok ? "%s (rel err %.2e, tol %.0e)" : "%s: rel err %.3e > tol %.0e", name, err, tol);
}

// max|a-b| / max(max|b|, floor): one error scale per tensor, so entries near zero do not dominate; the
// floor keeps an all-zero reference (e.g. dg at T=1, where g_0 cannot matter) from dividing roundoff by 0.
static double rel_err(const double* a, const double* b, size_t n, double floor) {
    double num = 0.0, den = floor;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (d > num || d != d) num = d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / (den > 1e-300 ? den : 1e-300);
}

static double* alloc_doubles(size_t n) {
    double* p = (double*)calloc(n ? n : 1, sizeof(double));
    if (!p) { fprintf(stderr, "error: out of memory\n"); exit(1); }
    return p;
}

static void fill_uniform(Rng* r, double* x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = rng_uniform_in(r, lo, hi);
}

// ------------------------------------------------------------------------------------------- (a) GLA op
typedef struct { double *q, *k, *v, *g, *d_o; int T, K, V; double scale; } OpCase;

// Channels a < K/2 decay strongly (g in [strong_lo, strong_hi]); the others weakly (g in [-0.05, 0]).
static OpCase op_case_make(int T, int K, int V, double strong_lo, double strong_hi, uint64_t seed) {
    OpCase c;
    Rng r = rng_seed(seed);
    c.T = T; c.K = K; c.V = V; c.scale = 1.0 / sqrt((double)K);
    c.q = alloc_doubles((size_t)T * K); c.k = alloc_doubles((size_t)T * K); c.g = alloc_doubles((size_t)T * K);
    c.v = alloc_doubles((size_t)T * V); c.d_o = alloc_doubles((size_t)T * V);
    fill_uniform(&r, c.q, (size_t)T * K, -1, 1);
    fill_uniform(&r, c.k, (size_t)T * K, -1, 1);
    fill_uniform(&r, c.v, (size_t)T * V, -1, 1);
    fill_uniform(&r, c.d_o, (size_t)T * V, -1, 1);
    for (int t = 0; t < T; t++)
        for (int a = 0; a < K; a++)
            c.g[(size_t)t * K + a] = a < K / 2 ? rng_uniform_in(&r, strong_lo, strong_hi) : rng_uniform_in(&r, -0.05, 0.0);
    return c;
}
static void op_case_free(OpCase* c) { free(c->q); free(c->k); free(c->v); free(c->g); free(c->d_o); }

static double op_loss(const OpCase* c, double* o) {
    ref_gla_op_forward(o, c->q, c->k, c->v, c->g, c->T, c->K, c->V, c->scale);
    double L = 0.0;
    for (size_t i = 0; i < (size_t)c->T * c->V; i++) L += o[i] * c->d_o[i];
    return L;
}

static void test_op_naive_vs_chunked(int T, int K, int V, double lo, double hi, uint64_t seed) {
    OpCase c = op_case_make(T, K, V, lo, hi, seed);
    size_t nk = (size_t)T * K, nv = (size_t)T * V;
    double *o1 = alloc_doubles(nv), *o2 = alloc_doubles(nv);
    double *g1[4] = {alloc_doubles(nk), alloc_doubles(nk), alloc_doubles(nv), alloc_doubles(nk)};
    double *g2[4] = {alloc_doubles(nk), alloc_doubles(nk), alloc_doubles(nv), alloc_doubles(nk)};
    ref_gla_op_forward(o1, c.q, c.k, c.v, c.g, T, K, V, c.scale);
    ref_gla_op_forward_chunked(o2, c.q, c.k, c.v, c.g, T, K, V, c.scale);
    ref_gla_op_backward(g1[0], g1[1], g1[2], g1[3], c.d_o, c.q, c.k, c.v, c.g, T, K, V, c.scale);
    ref_gla_op_backward_chunked(g2[0], g2[1], g2[2], g2[3], c.d_o, c.q, c.k, c.v, c.g, T, K, V, c.scale);
    char name[128];
    snprintf(name, sizeof name, "op naive vs chunked fwd T=%d K=%d V=%d g[%g,%g]", T, K, V, lo, hi);
    check_tol(name, rel_err(o2, o1, nv, 1e-3), 1e-12);
    const char* gn[4] = {"dq", "dk", "dv", "dg"};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "op naive vs chunked %s T=%d K=%d V=%d g[%g,%g]", gn[i], T, K, V, lo, hi);
        check_tol(name, rel_err(g2[i], g1[i], i == 2 ? nv : nk, 1e-3), 1e-12);
    }
    for (int i = 0; i < 4; i++) { free(g1[i]); free(g2[i]); }
    free(o1); free(o2);
    op_case_free(&c);
}

static void test_op_backward_fd(int T, int K, int V, double lo, double hi, uint64_t seed) {
    OpCase c = op_case_make(T, K, V, lo, hi, seed);
    size_t nk = (size_t)T * K, nv = (size_t)T * V;
    double *o = alloc_doubles(nv);
    double *an[4] = {alloc_doubles(nk), alloc_doubles(nk), alloc_doubles(nv), alloc_doubles(nk)};
    ref_gla_op_backward(an[0], an[1], an[2], an[3], c.d_o, c.q, c.k, c.v, c.g, T, K, V, c.scale);
    double* in[4] = {c.q, c.k, c.v, c.g};
    const char* gn[4] = {"dq", "dk", "dv", "dg"};
    const double h = 1e-5;
    for (int i = 0; i < 4; i++) {
        size_t n = i == 2 ? nv : nk;
        double* fd = alloc_doubles(n);
        for (size_t e = 0; e < n; e++) {
            double old = in[i][e];
            in[i][e] = old + h; double lp = op_loss(&c, o);
            in[i][e] = old - h; double lm = op_loss(&c, o);
            in[i][e] = old;
            fd[e] = (lp - lm) / (2 * h);
        }
        char name[128];
        snprintf(name, sizeof name, "op backward vs finite diff %s T=%d K=%d V=%d g[%g,%g]", gn[i], T, K, V, lo, hi);
        check_tol(name, rel_err(an[i], fd, n, 1e-3), 1e-8);
        free(fd);
    }
    for (int i = 0; i < 4; i++) free(an[i]);
    free(o);
    op_case_free(&c);
}

// ------------------------------------------------------------------------------------------- (b) model
static RefGLATensor* tensor_table(const RefGLAConfig* c) {
    RefGLATensor* t = (RefGLATensor*)malloc(sizeof(RefGLATensor) * (size_t)ref_gla_num_tensors(c));
    if (!t || ref_gla_tensors(c, t) != ref_gla_num_tensors(c)) { fprintf(stderr, "error: tensor table\n"); exit(1); }
    return t;
}

// fla init (gla.md 1.7): decayed tensors (exactly the matrices) ~ N(0, 0.02^2), norm weights 1, gk1 bias 0.
static void test_init(void) {
    const RefGLAConfig c = {37, 16, 2, 2, 0.5, 1.0, 32, 0, 1e-6};
    size_t np = ref_gla_num_params(&c);
    int nt = ref_gla_num_tensors(&c), ok = 1;
    RefGLATensor* t = tensor_table(&c);
    double* p = alloc_doubles(np);
    double s2 = 0.0, n = 0.0;
    char why[160] = "";
    ref_gla_init_params(&c, p, 5);
    for (int i = 0; i < nt; i++) {
        int is_bias = strstr(t[i].name, "gk1_b") != NULL;
        if (t[i].decay != (t[i].rows > 1)) { ok = 0; snprintf(why, sizeof why, "%s decay flag", t[i].name); }
        if (i + 1 < nt && t[i].offset + t[i].numel != t[i + 1].offset) { ok = 0; snprintf(why, sizeof why, "%s offset", t[i].name); }
        for (size_t e = 0; e < t[i].numel; e++) {
            double x = p[t[i].offset + e];
            if (t[i].decay) { s2 += x * x; n += 1.0; }
            else if (x != (is_bias ? 0.0 : 1.0)) { ok = 0; snprintf(why, sizeof why, "%s[%zu] = %g", t[i].name, e, x); }
        }
    }
    if (fabs(sqrt(s2 / n) - 0.02) > 0.001) { ok = 0; snprintf(why, sizeof why, "matrix std %.5f", sqrt(s2 / n)); }
    if (t[nt - 1].offset + t[nt - 1].numel != np || strcmp(t[nt - 1].name, "lm_head") != 0) { ok = 0; snprintf(why, sizeof why, "table end"); }
    if (ok) check_line(1, "init constants, std, weight-decay flags, contiguous offsets");
    else check_line(0, "init: %s", why);
    free(p); free(t);
}

static void test_param_counts(void) {
    // gla.md 1.8: gla_340M.json (tied), its untied variant, and the default GLAConfig (1.3B).
    RefGLAConfig c340 = {32000, 1024, 24, 4, 0.5, 1.0, 0, 1, 1e-6};
    RefGLAConfig c1b = {32000, 2048, 24, 4, 0.5, 1.0, 0, 0, 1e-6};
    int ok = ref_gla_num_params(&c340) == 341707776ull && ref_gla_default_mlp_width(1024) == 2816 &&
             ref_gla_num_params(&c1b) == 1365514240ull && ref_gla_default_mlp_width(2048) == 5632 &&
             ref_gla_default_mlp_width(768) == 2048;
    c340.tied = 0;
    ok = ok && ref_gla_num_params(&c340) == 374475776ull;
    if (ok) check_line(1, "param counts (340M tied/untied, 1.3B) and MLP width rule");
    else check_line(0, "param counts: 340M untied %zu", ref_gla_num_params(&c340));
}

// Moves the parameters away from init so every gradient path is exercised at O(1) scale: matrices get
// entries of size ~1/sqrt(fan_in), norm weights 1 +- 0.3, and gk1_b alternates strong decay (z+b ~ -30:
// g ~ -1.9 per step), weak decay (z+b ~ +4: g ~ -1e-3) and the middle (z+b ~ -1).
static void perturb_params(const RefGLAConfig* c, double* params, uint64_t seed) {
    int nt = ref_gla_num_tensors(c);
    RefGLATensor* t = tensor_table(c);
    Rng r = rng_seed(seed);
    for (int i = 0; i < nt; i++) {
        double* p = params + t[i].offset;
        if (strstr(t[i].name, "gk1_b")) {
            for (size_t e = 0; e < t[i].numel; e++)
                p[e] = e % 3 == 0 ? rng_uniform_in(&r, -35, -25) : e % 3 == 1 ? rng_uniform_in(&r, 3, 5) : rng_uniform_in(&r, -2, 0);
        } else if (t[i].decay) {
            double a = 1.0 / sqrt((double)t[i].cols);
            for (size_t e = 0; e < t[i].numel; e++) p[e] += rng_uniform_in(&r, -a, a);
        } else {
            for (size_t e = 0; e < t[i].numel; e++) p[e] = 1.0 + rng_uniform_in(&r, -0.3, 0.3);
        }
    }
    free(t);
}

static void test_model_fd(int tied) {
    const RefGLAConfig c = {37, 16, 2, 2, 0.5, 1.0, 32, tied, 1e-6};
    const int B = 2, T = 70, M = B * T;
    size_t np = ref_gla_num_params(&c);
    int nt = ref_gla_num_tensors(&c);
    RefGLATensor* t = tensor_table(&c);
    double* params = alloc_doubles(np);
    double* grads = alloc_doubles(np);
    int* ids = (int*)malloc(sizeof(int) * M);
    int* targets = (int*)malloc(sizeof(int) * M);
    Rng r = rng_seed(100 + tied);
    for (int m = 0; m < M; m++) ids[m] = (int)rng_below(&r, (uint32_t)c.Vc);
    for (int b = 0; b < B; b++)        // next-token targets; the last position and a few others ignored
        for (int s = 0; s < T; s++)
            targets[b * T + s] = (s == T - 1 || rng_below(&r, 10) == 0) ? -1 : ids[b * T + s + 1];
    ref_gla_init_params(&c, params, 7);
    double loss0 = ref_gla_forward_backward(&c, params, NULL, ids, targets, B, T, NULL);
    char name[128];
    // At init the logits are ~0, so the loss is ~log(Vc).
    snprintf(name, sizeof name, "model %s init loss %.6f vs log(Vc) %.6f", tied ? "tied" : "untied", loss0, log((double)c.Vc));
    check_tol(name, fabs(loss0 - log((double)c.Vc)) / log((double)c.Vc), 1e-2);
    perturb_params(&c, params, 11 + tied);
    double loss = ref_gla_forward_backward(&c, params, grads, ids, targets, B, T, NULL);
    double loss_f = ref_gla_forward_backward(&c, params, NULL, ids, targets, B, T, NULL);
    snprintf(name, sizeof name, "model %s forward-only loss == forward+backward loss", tied ? "tied" : "untied");
    check_tol(name, fabs(loss - loss_f), 0.0);
    const double h = 1e-4;
    for (int i = 0; i < nt; i++) {
        int all = t[i].numel <= 64, nsamp = all ? (int)t[i].numel : 8;
        double gmax = 0.0, emax = 0.0;
        for (size_t e = 0; e < t[i].numel; e++) gmax = fmax(gmax, fabs(grads[t[i].offset + e]));
        for (int s = 0; s < nsamp; s++) {
            size_t e;
            if (all) e = (size_t)s;
            else if (i == 0) e = (size_t)ids[rng_below(&r, (uint32_t)M)] * t[i].cols + rng_below(&r, (uint32_t)t[i].cols);
            else e = (size_t)rng_below(&r, (uint32_t)t[i].numel);
            double* p = params + t[i].offset + e;
            double f[4], old = *p;   // 4-point central stencil: O(h^4) truncation, so the check is tight
            const double step[4] = {-2 * h, -h, h, 2 * h};
            for (int j = 0; j < 4; j++) {
                *p = old + step[j];
                f[j] = ref_gla_forward_backward(&c, params, NULL, ids, targets, B, T, NULL);
            }
            *p = old;
            double fd = (8.0 * (f[2] - f[1]) - (f[3] - f[0])) / (12.0 * h);
            emax = fmax(emax, fabs(fd - grads[t[i].offset + e]));
        }
        snprintf(name, sizeof name, "model %s grad vs finite diff %-12s (%s %d, max|grad| %.2e)", tied ? "tied" : "untied",
                 t[i].name, all ? "all" : "sampled", nsamp, gmax);
        check_tol(name, emax / fmax(gmax, 1e-300), 1e-6);
    }
    free(t); free(params); free(grads); free(ids); free(targets);
}

int main(int argc, char** argv) {
    (void)argc; (void)argv;
    // (a) operator: T around and across chunk boundaries; strong decay down to exp(-30) per step.
    test_op_naive_vs_chunked(150, 8, 6, -8.0, -2.0, 1);
    test_op_naive_vs_chunked(150, 8, 6, -0.2, 0.0, 2);
    test_op_naive_vs_chunked(64, 4, 5, -8.0, -2.0, 3);
    test_op_naive_vs_chunked(1, 3, 2, -1.0, 0.0, 4);
    test_op_naive_vs_chunked(200, 4, 3, -30.0, 0.0, 5);
    test_op_backward_fd(70, 4, 3, -8.0, -2.0, 6);
    test_op_backward_fd(70, 4, 3, -0.2, 0.0, 7);
    // (b) whole model
    test_param_counts();
    test_init();
    test_model_fd(1);
    test_model_fd(0);
    return check_summary(NULL);
}
